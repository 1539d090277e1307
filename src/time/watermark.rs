//! Watermarks: per-partition bounded out-of-orderness with idleness, and the frontier (minimum over inputs).
//!
//! These follow Flink exactly, because users compare results with Flink's:
//! * [`BoundedOutOfOrderness`] is `WatermarkStrategy.forBoundedOutOfOrderness(bound)` with a generator that
//!   emits on every event: `W = max_ts − bound − 1` (1 ns here, 1 ms in Flink; the firing and lateness
//!   conditions come out identical for millisecond timestamps because every comparison is shifted by the
//!   same one unit).
//! * [`PartitionWatermarks`] is Flink's split-level watermark multiplexer with `withIdleness`: the combined
//!   watermark is the minimum over partitions that are not idle, it never goes backwards, and when every
//!   partition is idle the source is idle (it holds nobody back).
//! * [`Frontier`] is the same minimum taken again downstream, over the inputs of a stage (one per source).
//!
//! Nothing here reads a clock per event: idleness counts events per partition and is checked by
//! [`PartitionWatermarks::check_idle`], which the source calls periodically with the time (Flink's
//! `IdlenessTimer` works the same way), so tests can drive it with a fake clock.

use crate::checkpoint::codec::{Dec, DecodeError, Enc};
use crate::event::{Nanos, WATERMARK_MAX, WATERMARK_MIN};

/// `W = max_ts − bound − 1`, advanced by every event.
#[derive(Clone, Copy, Debug)]
pub struct BoundedOutOfOrderness {
    bound: Nanos,
    max_ts: Nanos,
}

impl BoundedOutOfOrderness {
    pub fn new(bound: Nanos) -> Self {
        assert!(bound >= 0, "bound must not be negative");
        Self { bound, max_ts: WATERMARK_MIN }
    }

    /// Observes an event's timestamp.
    #[inline]
    pub fn on_event(&mut self, ts: Nanos) {
        if ts > self.max_ts {
            self.max_ts = ts;
        }
    }

    /// The current watermark (`WATERMARK_MIN` before the first event).
    #[inline]
    pub fn current(&self) -> Nanos {
        if self.max_ts == WATERMARK_MIN {
            WATERMARK_MIN
        } else {
            self.max_ts.saturating_sub(self.bound).saturating_sub(1)
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Partition {
    gen: BoundedOutOfOrderness,
    /// Events seen; compared between idleness checks.
    events: u64,
    events_at_check: u64,
    /// When `events` last changed, as seen by a check (monotonic ns).
    active_at: u64,
    idle: bool,
}

/// The watermark of one source over its partitions (a file is one partition; a Kafka partition is one;
/// the synthetic generator may have several). Partitions are slots that can come and go (Kafka assigns and
/// revokes them): an absent slot holds nothing back; a slot that arrives holds the watermark back until it
/// has data or goes idle; and if no partition is present the source is idle.
#[derive(Clone, Debug)]
pub struct PartitionWatermarks {
    parts: Vec<Partition>,
    /// The present slots.
    present: Vec<usize>,
    bound: Nanos,
    idle_timeout: Option<u64>,
    combined: Nanos,
    all_idle: bool,
}

impl PartitionWatermarks {
    /// `partitions` slots, all present, each with the same bound; `idle_timeout` in ns (`None` = never idle).
    pub fn new(partitions: usize, bound: Nanos, idle_timeout: Option<Nanos>) -> Self {
        let mut w = Self::empty(partitions, bound, idle_timeout);
        for p in 0..w.parts.len() {
            w.add(p);
        }
        w
    }

    /// `slots` slots, none present yet (a consumer before its first assignment: idle).
    pub fn empty(slots: usize, bound: Nanos, idle_timeout: Option<Nanos>) -> Self {
        Self {
            parts: vec![Self::fresh(bound); slots.max(1)],
            present: Vec::with_capacity(slots.max(1)),
            bound,
            idle_timeout: idle_timeout.map(|t| t.max(0) as u64),
            combined: WATERMARK_MIN,
            all_idle: true,
        }
    }

    fn fresh(bound: Nanos) -> Partition {
        Partition { gen: BoundedOutOfOrderness::new(bound), events: 0, events_at_check: 0, active_at: 0, idle: false }
    }

    /// Slot `p` starts (again) with no data: it holds the watermark back until it has data or goes idle.
    pub fn add(&mut self, p: usize) {
        self.parts[p] = Self::fresh(self.bound);
        if !self.present.contains(&p) {
            self.present.push(p);
        }
        self.all_idle = false;
    }

    /// Slot `p` leaves. Returns true if the combined watermark advanced or the source became idle.
    pub fn remove(&mut self, p: usize) -> bool {
        self.present.retain(|&q| q != p);
        let was_idle = self.all_idle;
        self.recombine() || (self.all_idle && !was_idle)
    }

    /// The combined watermark: what the next event is judged against.
    #[inline]
    pub fn current(&self) -> Nanos {
        self.combined
    }

    /// True when every present partition is idle (or none is present): downstream must not wait for this
    /// source.
    pub fn is_idle(&self) -> bool {
        self.all_idle
    }

    /// The watermark of one partition (for metrics; `WATERMARK_MIN` if absent or without data).
    pub fn partition(&self, p: usize) -> Nanos {
        if self.present.contains(&p) {
            self.parts[p].gen.current()
        } else {
            WATERMARK_MIN
        }
    }

    pub fn partition_is_idle(&self, p: usize) -> bool {
        self.parts[p].idle
    }

    /// Number of slots.
    pub fn partitions(&self) -> usize {
        self.parts.len()
    }

    /// Observes an event of partition `p` (which must be present). Returns true if the combined watermark
    /// advanced (or the source stopped being idle).
    #[inline]
    pub fn on_event(&mut self, p: usize, ts: Nanos) -> bool {
        let part = &mut self.parts[p];
        part.events += 1;
        let before = part.gen.current();
        part.gen.on_event(ts);
        let was_idle = part.idle;
        part.idle = false;
        if self.present.len() == 1 {
            // The common case (a file, one Kafka partition): no minimum to take.
            let w = self.parts[p].gen.current();
            let changed = was_idle && self.all_idle;
            self.all_idle = false;
            if w > self.combined {
                self.combined = w;
                return true;
            }
            return changed;
        }
        if was_idle || self.parts[p].gen.current() != before {
            return self.recombine() || was_idle;
        }
        false
    }

    /// Marks partitions idle whose event count has not changed for `idle_timeout`, given the monotonic time
    /// `now`. Returns true if the combined watermark advanced or the source became idle.
    pub fn check_idle(&mut self, now: u64) -> bool {
        let Some(timeout) = self.idle_timeout else {
            return false;
        };
        let mut changed = false;
        for &p in &self.present {
            let part = &mut self.parts[p];
            if part.events != part.events_at_check || part.active_at == 0 {
                part.events_at_check = part.events;
                part.active_at = now;
            } else if !part.idle && now.saturating_sub(part.active_at) >= timeout {
                part.idle = true;
                changed = true;
            }
        }
        if changed {
            let was_idle = self.all_idle;
            return self.recombine() || (self.all_idle && !was_idle);
        }
        false
    }

    /// Checkpoint form: per partition slot its largest event time, event count and idleness; the
    /// partitions present; the combined watermark. The idleness clock restarts on restore (its times are
    /// this process's monotonic clock).
    pub fn encode(&self, e: &mut Enc) {
        e.len_of(self.parts.len());
        for p in &self.parts {
            e.i64(p.gen.max_ts);
            e.u64(p.events);
            e.bool(p.idle);
        }
        e.len_of(self.present.len());
        for &p in &self.present {
            e.u64(p as u64);
        }
        e.i64(self.combined);
        e.bool(self.all_idle);
    }

    /// Restores what [`PartitionWatermarks::encode`] wrote for the same number of partition slots.
    pub fn decode_into(&mut self, d: &mut Dec<'_>) -> Result<(), DecodeError> {
        let at = d.pos();
        let n = d.count(17, "watermark partitions")?;
        if n != self.parts.len() {
            return Err(DecodeError::Mismatch {
                what: "watermark partitions",
                expected: self.parts.len().to_string(),
                found: n.to_string(),
            });
        }
        for p in &mut self.parts {
            p.gen.max_ts = d.i64("partition max event time")?;
            p.events = d.u64("partition events")?;
            p.idle = d.bool("partition idle")?;
            p.events_at_check = p.events;
            p.active_at = 0;
        }
        let present = d.count(8, "partitions present")?;
        self.present.clear();
        for _ in 0..present {
            let p = d.u64("partition")?;
            if p >= n as u64 || self.present.contains(&(p as usize)) {
                return Err(DecodeError::Invalid {
                    at,
                    what: format!("partition {p} of {n} listed twice or out of range"),
                });
            }
            self.present.push(p as usize);
        }
        self.combined = d.i64("combined watermark")?;
        self.all_idle = d.bool("all partitions idle")?;
        Ok(())
    }

    fn recombine(&mut self) -> bool {
        let mut min = WATERMARK_MAX;
        let mut all_idle = true;
        for &p in &self.present {
            let part = &self.parts[p];
            if !part.idle {
                all_idle = false;
                min = min.min(part.gen.current());
            }
        }
        self.all_idle = all_idle;
        if !all_idle && min > self.combined {
            self.combined = min;
            return true;
        }
        false
    }
}

/// The minimum over a stage's inputs, each with a watermark and an idle flag; monotonic. An input that has
/// ended reports `WATERMARK_MAX` and never holds the frontier back.
#[derive(Clone, Debug)]
pub struct Frontier {
    inputs: Vec<(Nanos, bool)>,
    current: Nanos,
}

impl Frontier {
    pub fn new(inputs: usize) -> Self {
        Self { inputs: vec![(WATERMARK_MIN, false); inputs.max(1)], current: WATERMARK_MIN }
    }

    /// A frontier over the inputs whose bit is set in `mask`; the others never hold it back.
    pub fn over(inputs: usize, mask: u64) -> Self {
        let mut f = Self::new(inputs);
        for (i, slot) in f.inputs.iter_mut().enumerate() {
            if i >= 64 || mask & (1 << i) == 0 {
                *slot = (WATERMARK_MAX, false);
            }
        }
        f
    }

    #[inline]
    pub fn current(&self) -> Nanos {
        self.current
    }

    /// Checkpoint form: per input its watermark and idleness, then the frontier.
    pub fn encode(&self, e: &mut Enc) {
        e.len_of(self.inputs.len());
        for &(w, idle) in &self.inputs {
            e.i64(w);
            e.bool(idle);
        }
        e.i64(self.current);
    }

    /// Merges a frontier written by [`Frontier::encode`] over the same inputs: per input the larger
    /// watermark (shards restored into one saw the same source up to different broadcasts; the larger is
    /// still at most the source's watermark at the barrier), and the larger frontier.
    pub fn merge_from(&mut self, d: &mut Dec<'_>) -> Result<(), DecodeError> {
        let n = d.count(9, "frontier inputs")?;
        if n != self.inputs.len() {
            return Err(DecodeError::Mismatch {
                what: "inputs of a stage",
                expected: self.inputs.len().to_string(),
                found: n.to_string(),
            });
        }
        for slot in &mut self.inputs {
            let w = d.i64("input watermark")?;
            let idle = d.bool("input idle")?;
            if w > slot.0 || (w == slot.0 && !idle) {
                *slot = (w, idle);
            }
        }
        self.current = self.current.max(d.i64("frontier")?);
        Ok(())
    }

    /// Updates input `i`; returns the new frontier if it advanced.
    #[inline]
    pub fn update(&mut self, i: usize, wm: Nanos, idle: bool) -> Option<Nanos> {
        let slot = &mut self.inputs[i];
        if slot.0 >= wm && slot.1 == idle {
            return None;
        }
        slot.0 = slot.0.max(wm);
        slot.1 = idle;
        let mut min = WATERMARK_MAX;
        let mut any_active = false;
        for &(w, idle) in &self.inputs {
            if !idle {
                any_active = true;
                min = min.min(w);
            }
        }
        if any_active && min > self.current {
            self.current = min;
            Some(min)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_out_of_orderness_is_max_minus_bound_minus_one() {
        let mut g = BoundedOutOfOrderness::new(2000);
        assert_eq!(g.current(), WATERMARK_MIN);
        g.on_event(10_000);
        assert_eq!(g.current(), 7_999);
        g.on_event(9_000); // out of order: no change
        assert_eq!(g.current(), 7_999);
        g.on_event(10_001);
        assert_eq!(g.current(), 8_000);
    }

    #[test]
    fn combined_is_min_over_partitions_and_monotonic() {
        let mut w = PartitionWatermarks::new(2, 0, None);
        assert!(!w.on_event(0, 100));
        assert_eq!(w.current(), WATERMARK_MIN, "partition 1 holds it back until it has data");
        assert!(w.on_event(1, 50));
        assert_eq!(w.current(), 49);
        assert!(w.on_event(1, 500));
        assert_eq!(w.current(), 99);
    }

    #[test]
    fn idle_partition_stops_holding_back_and_rejoins() {
        let ms = 1_000_000u64;
        let mut w = PartitionWatermarks::new(2, 0, Some(5 * ms as i64));
        w.on_event(0, 1_000);
        w.on_event(1, 10);
        assert_eq!(w.current(), 9);
        w.check_idle(ms);
        // partition 1 goes quiet; partition 0 keeps going
        w.on_event(0, 2_000);
        w.check_idle(3 * ms);
        assert_eq!(w.current(), 9);
        w.on_event(0, 3_000);
        assert!(w.check_idle(7 * ms), "partition 1 idle for 6 ms > 5 ms");
        assert_eq!(w.current(), 2_999);
        assert!(w.partition_is_idle(1));
        // it rejoins with old data: the combined watermark does not go back
        w.on_event(1, 20);
        assert!(!w.partition_is_idle(1));
        assert_eq!(w.current(), 2_999);
        w.on_event(0, 5_000);
        assert_eq!(w.current(), 2_999, "now held back by partition 1 again");
        w.on_event(1, 4_000);
        assert_eq!(w.current(), 3_999);
    }

    #[test]
    fn partitions_come_and_go() {
        let mut w = PartitionWatermarks::empty(4, 0, None);
        assert!(w.is_idle(), "no partition assigned: idle, holds nobody back");
        w.add(2);
        assert!(!w.is_idle());
        assert!(w.on_event(2, 100));
        assert_eq!(w.current(), 99);
        w.add(0);
        assert!(!w.on_event(2, 200), "slot 0 arrived without data: it holds the watermark back");
        assert_eq!(w.current(), 99);
        assert!(w.remove(0), "it leaves again: the watermark catches up");
        assert_eq!(w.current(), 199);
        assert!(w.remove(2));
        assert!(w.is_idle());
        assert_eq!(w.current(), 199, "never goes backwards");
    }

    #[test]
    fn all_idle_source_is_idle() {
        let mut w = PartitionWatermarks::new(1, 0, Some(10));
        w.on_event(0, 5);
        w.check_idle(1);
        assert!(w.check_idle(100));
        assert!(w.is_idle());
        assert!(w.on_event(0, 6));
        assert!(!w.is_idle());
    }

    #[test]
    fn frontier_over_some_inputs_ignores_the_others() {
        let mut f = Frontier::over(3, 0b101);
        assert_eq!(f.update(0, 100, false), None, "input 2 has not spoken yet");
        assert_eq!(f.update(2, 50, false), Some(50));
        assert_eq!(f.current(), 50, "input 1 is not read: it never holds the frontier back");
    }

    #[test]
    fn frontier_ignores_idle_and_ended_inputs() {
        let mut f = Frontier::new(2);
        assert_eq!(f.update(0, 100, false), None);
        assert_eq!(f.update(1, 50, false), Some(50));
        assert_eq!(f.update(1, 50, true), Some(100));
        assert_eq!(f.update(0, WATERMARK_MAX, false), Some(WATERMARK_MAX));
        assert_eq!(f.update(1, 60, false), None, "never goes backwards");
    }
}
