//! The operator interface a shard drives: events in key order per key, watermarks in between.

use crate::checkpoint::codec::{Dec, DecodeError, Enc};
use crate::event::{Event, KeyId, Nanos};
use crate::record::Collector;

/// A keyed, event-time operator living on one shard (windows, continuous aggregates; later books,
/// enrichment and pattern detection). It owns the state of the keys routed to its shard and nothing else.
///
/// The shard calls [`Operator::on_watermark`] whenever the watermark advances and then [`Operator::on_event`]
/// for each event, so an event is judged against the watermark made by the events before it. Operators
/// ignore the event kinds they do not consume.
pub trait Operator: Send {
    /// Processes one event. `arrival` increases by one per event on this shard: it breaks ties between equal
    /// timestamps by arrival order.
    fn on_event(&mut self, ev: &Event, arrival: u64, out: &mut dyn Collector);

    /// The watermark advanced to `wm`: fire what is due, purge what is expired.
    fn on_watermark(&mut self, wm: Nanos, out: &mut dyn Collector);

    /// Number of open windows (or keys with state), for metrics.
    fn open_state(&self) -> usize;

    /// The earliest event time any element held in live state can have (`WATERMARK_MAX` when none is held):
    /// an input message whose event time is below this, and below the event times of everything after it in
    /// its partition, has had all its results emitted. Sources commit offsets by it (at-least-once). An
    /// operator that keeps no state keeps the default.
    fn retained_from(&self) -> Nanos {
        crate::event::WATERMARK_MAX
    }

    /// Starts a snapshot of the state as it is now (at a checkpoint barrier): writes the parameters, the
    /// watermark and the pending timers at once; the keys follow in [`Operator::snapshot_step`]s, or just
    /// before the operator changes one of them, so the snapshot holds every key as it was here while the
    /// operator goes on. The order of timers due at the same time is kept (results depend on it).
    fn snapshot_begin(&mut self);

    /// Writes up to `budget` more keys of the snapshot begun; true when it is complete.
    fn snapshot_step(&mut self, budget: usize) -> bool;

    /// The complete snapshot's bytes; `spare` becomes the buffer of the next one.
    fn snapshot_take(&mut self, spare: Vec<u8>) -> Vec<u8>;

    /// A whole snapshot at once, appended to `e`.
    fn snapshot(&mut self, e: &mut Enc) {
        self.snapshot_begin();
        while !self.snapshot_step(usize::MAX) {}
        e.raw(&self.snapshot_take(Vec::new()));
    }

    /// Adds a snapshot written by [`Operator::snapshot`] of an operator with the same parameters (else
    /// [`DecodeError::Mismatch`]), keeping the keys `owns` accepts: all of them when the number of shards
    /// is unchanged; with a different number each new shard reads every old shard's snapshot and keeps its
    /// own keys. A fresh operator restored from a snapshot and fed what followed it emits exactly what the
    /// snapshotted one would have. Keys may come in any order.
    fn restore(&mut self, dec: &mut Dec<'_>, owns: &dyn Fn(KeyId) -> bool) -> Result<(), DecodeError>;

    /// Drops all state of `key` (its input partition moved to another instance, which recomputes it from
    /// the committed offsets); nothing is emitted for it.
    fn forget(&mut self, _key: KeyId) {}

    /// `ev` is next: start loading its key's entry in the operator's state into cache (the shard calls this
    /// while it processes the event before). Per-key state is scattered over the heap and waiting for it is
    /// most of an event's cost. On benchmark (a) this took the shard's time per event from p50 90-100 ns / p90
    /// 170-250 ns to p50 80-90 ns / p90 150-190 ns (three runs each, alternated).
    #[inline]
    fn prefetch(&self, _ev: &Event) {}
}
