//! Sources: read or generate events at the edge and hand them to the shards.
//!
//! A source only decodes; [`SourceOut`] does the rest the same way for every source: it stamps each event
//! with the watermark made by the events before it, routes it to the shard that owns its key, keeps the
//! per-partition watermarks (with idleness), broadcasts watermark progress to the other shards, and sends
//! malformed records to the rejects stream.

mod csv;
mod file;
pub mod itch;
pub mod itch_prefetch;
mod jsonl;
mod kafka;
mod lines;
pub mod parse;
mod synthetic;

pub use self::csv::{parse_line as parse_csv_line, Csv};
pub use file::{FileSource, LineFormat};
pub use itch::ItchSource;
pub use jsonl::{parse_object as parse_json_object, Json};
pub use kafka::KafkaSource;
pub use lines::LineReader;
pub use synthetic::SyntheticSource;

use crate::checkpoint::codec::{Dec, DecodeError, Enc};
use crate::checkpoint::manifest::SourcePosition;
use crate::event::{Event, KeyBy, Nanos, Trade, WATERMARK_MAX};
use crate::metrics::Metrics;
use crate::pipeline::{Ack, RejectMsg, Sender, ShardMsg};
use crate::record::RejectRow;
use crate::time::watermark::PartitionWatermarks;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// What a poll found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Poll {
    /// Events were handed over; call again.
    More,
    /// Nothing available right now (the caller checks idleness and comes back).
    Idle,
    /// The input is exhausted (bounded sources only).
    Done,
}

/// Why a source stopped.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("source `{source_name}`: {context}: {error}")]
    Io { source_name: String, context: String, error: std::io::Error },
    #[error("source `{source_name}`: {message}")]
    Other { source_name: String, message: String },
    #[error("source `{0}`: the pipeline stopped")]
    Disconnected(String),
}

impl SourceError {
    pub fn io(name: &str, context: impl Into<String>, error: std::io::Error) -> Self {
        SourceError::Io { source_name: name.to_string(), context: context.into(), error }
    }
}

/// An event producer at the edge.
pub trait Source: Send {
    /// Number of watermark partitions (a file has one).
    fn partitions(&self) -> usize {
        1
    }

    /// True if partitions come and go while running (Kafka assigns them): none holds the watermark back
    /// until it joins.
    fn partitions_start_empty(&self) -> bool {
        false
    }

    /// Reads or generates a batch of events and hands them to `out`.
    fn poll(&mut self, out: &mut SourceOut) -> Result<Poll, SourceError>;

    /// At a checkpoint barrier: writes what this source needs to go on from exactly after the last event it
    /// handed over, and returns that position for the manifest. `Err` (naming why) if this source cannot be
    /// checkpointed; the checkpoint then fails.
    fn checkpoint(&mut self, _id: u64, _e: &mut Enc) -> Result<SourcePosition, String> {
        Err("this kind of source cannot be checkpointed yet".into())
    }

    /// Starts at a position from the job's start record (docs/checkpoints.md), before the first poll: a Kafka
    /// source at the offsets it resolved when the job first started. Other sources always start at the
    /// same place.
    fn resume_at(&mut self, _pos: &SourcePosition) -> Result<(), SourceError> {
        Ok(())
    }

    /// Checkpoint `id` is complete on disk (a Kafka source commits its offsets to the group, for
    /// monitoring: the checkpoint, not the group, is where it resumes from).
    fn checkpoint_complete(&mut self, _id: u64) {}

    /// Goes back to a position written by [`Source::checkpoint`] (before the first poll).
    fn restore(&mut self, _d: &mut Dec<'_>) -> Result<(), SourceError> {
        Err(SourceError::Other {
            source_name: String::new(),
            message: "this kind of source cannot be restored from a checkpoint yet".into(),
        })
    }

    /// The feed counters of an exchange-feed source (decoder, books, transport), which it keeps current
    /// between batches; `None` for sources of trade records.
    fn feed_metrics(&self) -> Option<std::sync::Arc<crate::metrics::FeedMetrics>> {
        None
    }

    /// The instrument reference data an exchange-feed source keeps from the venue's directory; `None` for
    /// other sources.
    fn directory(&self) -> Option<std::sync::Arc<crate::refdata::Directory>> {
        None
    }

    /// Called once when the pipeline is asked to stop, before end-of-input is sent: a source that commits
    /// its input positions makes what it has read durable here, waiting at most `timeout`.
    fn close(&mut self, _out: &mut SourceOut, _timeout: std::time::Duration) -> Result<(), SourceError> {
        Ok(())
    }
}

/// Watermark broadcasts to shards that did not get the latest event happen at most once per this many
/// events (and whenever the source pauses), so quiet shards still fire their windows promptly.
const BROADCAST_EVERY: u32 = 256;

/// Which events a source times: one in n on average, at gaps drawn uniformly from 1..=2n−1, not every n-th.
/// A fixed period lines up with a periodic input: a watermark that moves on every 20th trade, sampled on
/// every 4th, is seen on all of its moves or on none of them. Seeded by the source's index, so which events
/// a run times is the same every run.
#[derive(Debug, Clone)]
struct Sampler {
    /// n; 0 times nothing (`[metrics] latency = false`), 1 every event.
    every: u32,
    /// Events until the next timed one (1: the next); 0 when nothing is timed.
    left: u32,
    rng: fastrand::Rng,
}

impl Sampler {
    fn new(every: u32, seed: u64) -> Self {
        let mut s = Self { every, left: 0, rng: fastrand::Rng::with_seed(0x5eed_0000 ^ seed) };
        s.left = s.gap();
        s
    }

    /// Whether the event at hand is timed (call once per event).
    #[inline]
    fn timed(&mut self) -> bool {
        if self.left > 1 {
            self.left -= 1;
            false
        } else if self.left == 1 {
            self.left = self.gap();
            true
        } else {
            false
        }
    }

    fn gap(&mut self) -> u32 {
        match self.every {
            0 | 1 => self.every,
            n => self.rng.u32(1..2 * n.min(u32::MAX / 2)),
        }
    }
}

/// A source's hand-off into the pipeline.
pub struct SourceOut {
    idx: usize,
    name: String,
    shards: Vec<Sender<ShardMsg>>,
    rejects: Sender<RejectMsg>,
    key_by: KeyBy,
    wms: PartitionWatermarks,
    wm_dirty: bool,
    since_broadcast: u32,
    /// Which events are timed.
    sample: Sampler,
    /// The ingest time of the first event that moved the watermark after the last broadcast, if that event
    /// was timed (0 otherwise, and 0 when a broadcast was already due for another reason: a partition went
    /// idle, joined or left). The next broadcast carries it, and the window results it fires are timed from
    /// there: no window it fires was closed by an earlier event (those fired with the broadcast before), so
    /// this is the most their latency can be. Taking it only from a timed event keeps the sampling even: a
    /// broadcast's results are timed one time in n, as results fired by an event's watermark are.
    wm_t0: u64,
    events: u64,
    rejected: u64,
    metrics: Arc<Metrics>,
    /// Acknowledgements of this source's commit markers.
    acks: rtrb::Consumer<Ack>,
    next_marker: u64,
}

impl SourceOut {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        idx: usize,
        name: String,
        shards: Vec<Sender<ShardMsg>>,
        rejects: Sender<RejectMsg>,
        acks: rtrb::Consumer<Ack>,
        wms: PartitionWatermarks,
        sample_every: u32,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            idx,
            name,
            shards,
            rejects,
            acks,
            next_marker: 0,
            key_by: KeyBy::Instrument,
            wms,
            wm_dirty: false,
            since_broadcast: 0,
            sample: Sampler::new(sample_every, idx as u64),
            wm_t0: 0,
            events: 0,
            rejected: 0,
            metrics,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// This source's counters, for a source that keeps some of its own (a MoldUDP64 stream's gaps).
    pub fn metrics(&self) -> &crate::metrics::SourceMetrics {
        &self.metrics.sources[self.idx]
    }

    /// The shard that owns `key` (a multiplicative hash, so dense ids spread evenly).
    #[inline]
    pub fn shard_of(key: u32, shards: usize) -> usize {
        if shards == 1 {
            0
        } else {
            (((key as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) % shards as u64) as usize
        }
    }

    /// Hands one event of `partition` to its shard. `intended` is when it was due (monotonic ns, for
    /// paced sources: latency is measured from there so a stalled pipeline cannot hide its delay), or 0
    /// to measure from now.
    #[inline]
    pub fn emit(&mut self, partition: usize, ev: Event, intended: u64) -> Result<(), SourceError> {
        let t0 = if !self.sample.timed() {
            0
        } else if intended != 0 {
            intended
        } else {
            crate::time::mono_now()
        };
        let wm = self.wms.current();
        let shard = Self::shard_of(ev.key(self.key_by), self.shards.len());
        self.shards[shard]
            .send(ShardMsg::Event { ev, part: partition as u16, wm, t0 })
            .map_err(|_| self.disconnected())?;
        self.events += 1;
        if self.wms.on_event(partition, ev.ts()) {
            if !self.wm_dirty {
                self.wm_t0 = t0;
            }
            self.wm_dirty = true;
        }
        self.since_broadcast += 1;
        if self.wm_dirty && self.since_broadcast >= BROADCAST_EVERY {
            self.broadcast()?;
        }
        Ok(())
    }

    /// Sends commit marker to every shard: once it has passed them all and the sinks hold every result
    /// before it durably, an [`Ack`] with its id comes back (see [`SourceOut::ack`]). Returns its id.
    pub fn marker(&mut self) -> Result<u64, SourceError> {
        self.next_marker += 1;
        let id = self.next_marker;
        for s in &mut self.shards {
            s.send(ShardMsg::Marker { id }).map_err(|_| SourceError::Disconnected(self.name.clone()))?;
        }
        Ok(id)
    }

    /// Checkpoint `id`'s barrier: into every shard's ring and the rejects ring, behind everything handed
    /// over before it.
    pub fn barrier(&mut self, id: u64) -> Result<(), SourceError> {
        for s in &mut self.shards {
            s.send(ShardMsg::Barrier { id }).map_err(|_| SourceError::Disconnected(self.name.clone()))?;
        }
        self.rejects.send(RejectMsg::Barrier { id }).map_err(|_| self.disconnected())
    }

    /// Checkpoint form of what this hand-off keeps: the partitions' watermarks and the broadcast cadence
    /// (so a restored run broadcasts where the uninterrupted one would have), and the counters.
    pub fn encode(&self, e: &mut Enc) {
        self.wms.encode(e);
        e.bool(self.wm_dirty);
        e.u32(self.since_broadcast);
        e.u64(self.events);
        e.u64(self.rejected);
    }

    /// Restores what [`SourceOut::encode`] wrote.
    pub fn decode_into(&mut self, d: &mut Dec<'_>) -> Result<(), DecodeError> {
        self.wms.decode_into(d)?;
        self.wm_dirty = d.bool("watermark pending")?;
        self.since_broadcast = d.u32("events since broadcast")?;
        self.events = d.u64("events")?;
        self.rejected = d.u64("rejects")?;
        Ok(())
    }

    /// The next acknowledgement of a commit marker, if one has come back.
    pub fn ack(&mut self) -> Option<Ack> {
        self.acks.pop().ok()
    }

    /// Partition `p` has left this source (Kafka revoked it): every shard drops the state of the keys it
    /// fed, and the partition no longer holds the watermark back.
    pub fn forget(&mut self, p: usize) -> Result<(), SourceError> {
        for s in &mut self.shards {
            s.send(ShardMsg::Forget { part: p as u16 }).map_err(|_| SourceError::Disconnected(self.name.clone()))?;
        }
        if self.wms.remove(p) {
            self.wm_dirty = true;
        }
        Ok(())
    }

    /// Partition `p` has joined this source (Kafka assigned it): it holds the watermark back until it has
    /// data or goes idle. With `resume` (the largest event time read before the committed offset it starts
    /// from), its watermark starts there, and every shard drops results of windows of its keys that start at
    /// or before it (they were written in full before the commit).
    pub fn join(&mut self, p: usize, resume: Option<Nanos>) -> Result<(), SourceError> {
        self.wms.add(p);
        if let Some(ts) = resume {
            self.wms.on_event(p, ts);
            for s in &mut self.shards {
                s.send(ShardMsg::Resume { part: p as u16, from: ts })
                    .map_err(|_| SourceError::Disconnected(self.name.clone()))?;
            }
        }
        self.wm_dirty = true;
        Ok(())
    }

    /// Sends a malformed record to the rejects stream (waiting for room: rejects are never dropped).
    pub fn reject(&mut self, row: RejectRow) -> Result<(), SourceError> {
        self.rejected += 1;
        self.rejects.send(RejectMsg::Row(row)).map_err(|_| self.disconnected())
    }

    fn disconnected(&self) -> SourceError {
        SourceError::Disconnected(self.name.clone())
    }

    fn broadcast(&mut self) -> Result<(), SourceError> {
        let (wm, idle, t0) = (self.wms.current(), self.wms.is_idle(), std::mem::take(&mut self.wm_t0));
        for s in &mut self.shards {
            s.send(ShardMsg::Watermark { wm, idle, t0 }).map_err(|_| SourceError::Disconnected(self.name.clone()))?;
        }
        self.wm_dirty = false;
        self.since_broadcast = 0;
        Ok(())
    }

    /// Periodic housekeeping (after every poll): idleness, watermark broadcast, counters.
    pub fn tick(&mut self, now: u64) -> Result<(), SourceError> {
        if self.wms.check_idle(now) {
            self.wm_dirty = true;
        }
        if self.wm_dirty {
            self.broadcast()?;
        }
        self.publish();
        Ok(())
    }

    fn publish(&self) {
        let m = &self.metrics.sources[self.idx];
        m.events.store(self.events, Ordering::Relaxed);
        m.rejects.store(self.rejected, Ordering::Relaxed);
        let (mut waits, mut blocked) = (0, 0);
        for s in &self.shards {
            waits += s.full_waits;
            blocked += s.blocked_ns;
        }
        m.backpressure.full_waits.store(waits, Ordering::Relaxed);
        m.backpressure.blocked_ns.store(blocked, Ordering::Relaxed);
        for (p, pm) in m.partitions.iter().enumerate() {
            pm.watermark.store(self.wms.partition(p), Ordering::Relaxed);
            pm.idle.store(self.wms.partition_is_idle(p), Ordering::Relaxed);
        }
    }

    /// Sends a watermark of +∞: every shard fires every window (what the end of a bounded input does).
    pub fn final_watermark(&mut self) -> Result<(), SourceError> {
        for s in &mut self.shards {
            s.send(ShardMsg::Watermark { wm: WATERMARK_MAX, idle: false, t0: 0 })
                .map_err(|_| SourceError::Disconnected(self.name.clone()))?;
        }
        Ok(())
    }

    /// Ends this source's input: with `final_watermark`, first a watermark of +∞ (bounded input ended: fire
    /// every window, as Flink does); then end-of-input to every shard and the emitter.
    pub fn finish(&mut self, final_watermark: bool) -> Result<(), SourceError> {
        if final_watermark {
            self.final_watermark()?;
        }
        for s in &mut self.shards {
            s.send(ShardMsg::End).map_err(|_| SourceError::Disconnected(self.name.clone()))?;
        }
        self.rejects.send(RejectMsg::End).map_err(|_| SourceError::Disconnected(self.name.clone()))?;
        self.publish();
        self.metrics.sources[self.idx].done.store(true, Ordering::Relaxed);
        Ok(())
    }
}

/// Waits for `due` (monotonic ns) if it is at most 2 ms away and returns true; otherwise sleeps about 1 ms and
/// returns false, so a paced source can return [`Poll::Idle`] and its thread can see a stop signal and check
/// idleness while it waits for a far-away event.
pub fn wait_briefly(due: u64) -> bool {
    let now = crate::time::mono_now();
    if due <= now + 2_000_000 {
        crate::time::wait_until(due);
        true
    } else {
        crate::time::wait_until(now + 1_000_000);
        false
    }
}

/// Paces a file replay at recorded speed × `speed`: a trade is due `(ts − first_ts) / speed` after the first,
/// measured on the largest timestamp so far (a disordered trade is not waited for). A trade that is not due
/// yet is held until it is.
#[derive(Debug, Clone)]
pub struct Pacer {
    speed: f64,
    first: Option<(Nanos, u64)>,
    max_ts: Nanos,
    held: Option<(Trade, u64)>,
}

impl Pacer {
    pub fn new(speed: f64) -> Self {
        Self { speed, first: None, max_ts: Nanos::MIN, held: None }
    }

    /// Hands `t` over when it is due; false if it is held (the source should return [`Poll::Idle`]).
    pub fn offer(&mut self, t: Trade, out: &mut SourceOut) -> Result<bool, SourceError> {
        let (t0, m0) = *self.first.get_or_insert((t.ts, crate::time::mono_now()));
        self.max_ts = self.max_ts.max(t.ts);
        let due = m0 + ((self.max_ts - t0).max(0) as f64 / self.speed) as u64;
        self.held = Some((t, due));
        self.release(out)
    }

    /// A trade is held, not yet handed over.
    pub fn holds(&self) -> bool {
        self.held.is_some()
    }

    /// Hands over the held trade if it is due; false if it is still held.
    pub fn release(&mut self, out: &mut SourceOut) -> Result<bool, SourceError> {
        let Some((t, due)) = self.held else { return Ok(true) };
        if !wait_briefly(due) {
            return Ok(false);
        }
        self.held = None;
        out.emit(0, Event::Trade(t), due)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::Sampler;

    fn draws(every: u32, seed: u64, events: usize) -> Vec<bool> {
        let mut s = Sampler::new(every, seed);
        (0..events).map(|_| s.timed()).collect()
    }

    #[test]
    fn a_sampler_times_all_none_or_one_in_n() {
        assert!(draws(1, 0, 1000).iter().all(|&t| t));
        assert!(draws(0, 0, 1000).iter().all(|&t| !t));
        for n in [2u32, 4, 16, 1024] {
            let events = 4_000 * n as usize;
            let count = draws(n, 3, events).iter().filter(|&&t| t).count();
            // Gaps of mean n and standard deviation below n / √3: the count over 4,000 × n events has a standard
            // deviation below √4,000 / √3 ≈ 37, so ±250 is over six of them (and the seed is fixed).
            assert!((3_750..=4_250).contains(&count), "n = {n}: {count} of {events} timed");
        }
    }

    #[test]
    fn a_sampler_does_not_line_up_with_a_periodic_input() {
        // Every 20th event is special (a watermark move); sampling every 4th would see all or none of them.
        // Timed one time in 4: about 5,000 of 20,000, with a standard deviation near 61.
        for seed in 0..4 {
            let t = draws(4, seed, 400_000);
            let special = t.iter().step_by(20).filter(|&&x| x).count();
            assert!((4_500..=5_500).contains(&special), "seed {seed}: {special} of 20,000 periodic events timed");
            let gaps: Vec<usize> = t.iter().enumerate().filter(|(_, &x)| x).map(|(i, _)| i).collect();
            let lengths: std::collections::BTreeSet<usize> = gaps.windows(2).map(|w| w[1] - w[0]).collect();
            assert_eq!(lengths, (1..=7).collect(), "gaps of 1..=7 events, mean 4");
        }
    }
}
