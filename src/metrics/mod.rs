//! Metrics: latency histograms recorded per thread without locks or allocation, counters, and the thread
//! that merges them, writes the HdrHistogram interval log and prints the live line and the summary.
//!
//! Each hot thread records into its own [`Counts`] through a [`LatencyRecorder`]: HdrHistogram's bucket
//! layout as a plain array, so a record is an index computation and an increment. Once per interval the
//! metrics thread bumps an epoch; a recorder that sees the new epoch hands its full counts over an SPSC ring
//! and takes a cleared set from a second ring, and the metrics thread adds them into [`Hists`]. Rotating is
//! two ring operations. Nothing is allocated after start-up and no thread ever waits for another.

pub mod alerts;
pub mod feed;
pub mod hdrlog;
pub mod http;
pub mod plot;
pub mod prom;
mod report;

pub use feed::{FeedCounter, FeedMetrics};
pub use report::{human_bytes, percentile_table, Report};

use crate::event::Nanos;
use crossbeam_utils::CachePadded;
use hdrhistogram::Histogram;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

/// The latency stages, in pipeline order. The names are the interval log's tags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Stage {
    /// Source hands the event to its shard ring → the shard takes it.
    IngestToShard = 0,
    /// The shard's processing of one event (all operators).
    Shard = 1,
    /// The shard emits a result → the emitter has written it to its sinks.
    ShardToSink = 2,
    /// Source → result written to the sinks (for results, the event that caused them).
    EndToEnd = 3,
    /// How long a shard stopped to snapshot its state at a checkpoint barrier.
    CheckpointPause = 4,
    /// A checkpoint's start → its manifest written.
    CheckpointDuration = 5,
    /// A complete checkpoint's size on disk, in bytes (not a time: tables print it as bytes).
    CheckpointBytes = 6,
}

pub const STAGES: [&str; 7] = [
    "ingest_to_shard",
    "shard",
    "shard_to_sink",
    "end_to_end",
    "checkpoint_pause",
    "checkpoint_duration",
    "checkpoint_bytes",
];

/// Stages that only checkpoints record: left out of the summary when there were none.
pub fn is_checkpoint_stage(name: &str) -> bool {
    name.starts_with("checkpoint_")
}

/// Latencies above this (60 s) are recorded as this.
pub const MAX_LATENCY_NS: u64 = 60_000_000_000;

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3).expect("valid histogram bounds")
}

/// One histogram per stage.
pub struct Hists(pub [Histogram<u64>; STAGES.len()]);

impl Hists {
    pub fn new() -> Box<Hists> {
        Box::new(Hists(std::array::from_fn(|_| new_histogram())))
    }

    pub fn add(&mut self, o: &Hists) {
        for (a, b) in self.0.iter_mut().zip(o.0.iter()) {
            a.add(b).expect("same bounds");
        }
    }

    pub fn reset(&mut self) {
        for h in &mut self.0 {
            h.reset();
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|h| h.is_empty())
    }
}

/// Buckets of one stage in [`new_histogram`]'s layout (1 ns to [`MAX_LATENCY_NS`], 3 significant digits:
/// 2,048 sub-buckets, the first bucket whole and 25 more of 1,024 each).
pub const BUCKETS: usize = 27 * 1024;

/// The same layout carried on to every u64 (54 buckets, rounded up to a power of two), so that recording
/// needs no clamping and no bounds check: what falls past [`MAX_LATENCY_NS`] is moved there when the counts
/// are handed over. The pages past the latencies that happen are never written.
const WIDE_BUCKETS: usize = 64 * 1024;

/// HdrHistogram's `sub_bucket_mask` and `leading_zero_count_base` for these bounds (2,048 sub-buckets).
const SUB_BUCKET_MASK: u64 = 2047;
const LEADING_ZERO_BASE: u32 = 64 - 11;

/// The bucket a latency falls in, as HdrHistogram's `index_for` computes it for [`new_histogram`]'s bounds
/// (not clamped: below [`WIDE_BUCKETS`] for any `ns`).
#[inline]
fn wide_bucket_of(ns: u64) -> usize {
    let b = LEADING_ZERO_BASE - (ns | SUB_BUCKET_MASK).leading_zeros();
    ((b as usize) << 10) + (ns >> b) as usize
}

/// The bucket of [`new_histogram`] a latency is recorded in (`ns` clamped to 1..=[`MAX_LATENCY_NS`]).
pub fn bucket_of(ns: u64) -> usize {
    wide_bucket_of(ns.clamp(1, MAX_LATENCY_NS))
}

/// The lowest latency in bucket `i` (HdrHistogram's `value_for`): recorded into a histogram, it lands in
/// the same bucket.
pub fn bucket_value(i: usize) -> u64 {
    let b = (i >> 10).saturating_sub(1);
    ((i - (b << 10)) as u64) << b
}

/// One thread's latency counts per stage, in HdrHistogram's bucket layout: what the hot path records into
/// (an index computation and an increment, where `Histogram::record` costs about five times as many
/// instructions). The metrics thread turns them into [`Hists`].
pub struct Counts {
    /// Stage by stage, [`WIDE_BUCKETS`] each; zeroed by the allocator, so untouched pages take no memory.
    counts: Box<[u64; STAGES.len() * WIDE_BUCKETS]>,
    /// Per stage: anything recorded since the last hand-over (so the hand-over skips empty stages).
    used: [bool; STAGES.len()],
}

impl Counts {
    pub fn new() -> Box<Counts> {
        let counts = vec![0; STAGES.len() * WIDE_BUCKETS].into_boxed_slice().try_into().expect("the array's length");
        Box::new(Counts { counts, used: [false; STAGES.len()] })
    }

    #[inline]
    fn record(&mut self, stage: Stage, ns: u64) {
        self.used[stage as usize] = true;
        // The mask is a no-op (the bucket is always below WIDE_BUCKETS); it lets the index go unchecked.
        self.counts[stage as usize * WIDE_BUCKETS + (wide_bucket_of(ns) & (WIDE_BUCKETS - 1))] += 1;
    }

    /// Adds these counts into `into` and clears them: latency 0 counts as 1 ns, and beyond
    /// [`MAX_LATENCY_NS`] as that.
    fn drain_into(&mut self, into: &mut Hists) {
        let top = bucket_of(MAX_LATENCY_NS);
        for (s, h) in into.0.iter_mut().enumerate() {
            if !std::mem::take(&mut self.used[s]) {
                continue;
            }
            let counts = &mut self.counts[s * WIDE_BUCKETS..(s + 1) * WIDE_BUCKETS];
            for (block, chunk) in counts.chunks_exact_mut(64).enumerate() {
                // Most of the array is zero: skip it 64 buckets at a time.
                if chunk.iter().fold(0, |a, &c| a | c) == 0 {
                    continue;
                }
                for (j, c) in chunk.iter_mut().enumerate().filter(|(_, c)| **c != 0) {
                    let i = (block * 64 + j).clamp(1, top);
                    h.saturating_record_n(bucket_value(i), *c);
                    *c = 0;
                }
            }
        }
    }
}

/// A thread's end of the histogram exchange.
pub struct LatencyRecorder {
    cur: Box<Counts>,
    full: rtrb::Producer<Box<Counts>>,
    free: rtrb::Consumer<Box<Counts>>,
    epoch: Arc<CachePadded<AtomicU64>>,
    seen: u64,
}

impl LatencyRecorder {
    #[inline]
    pub fn record(&mut self, stage: Stage, ns: u64) {
        self.cur.record(stage, ns);
    }

    /// Hands the counts over if the metrics thread started a new interval. Call it often (it is one
    /// relaxed load when nothing is due).
    #[inline]
    pub fn tick(&mut self) {
        let e = self.epoch.load(Ordering::Relaxed);
        if e != self.seen {
            self.rotate(e);
        }
    }

    #[cold]
    fn rotate(&mut self, e: u64) {
        if let Ok(fresh) = self.free.pop() {
            let full = std::mem::replace(&mut self.cur, fresh);
            if let Err(rtrb::PushError::Full(full)) = self.full.push(full) {
                // Cannot happen: there are as many slots as count sets. Keep recording into the full one.
                self.cur = full;
            }
            self.seen = e;
        }
        // No free set yet (the metrics thread is behind): keep recording, try again next tick.
    }

    /// Hands over what was recorded since the last rotation (at thread exit).
    pub fn finish(self) {
        let mut full = self.full;
        let _ = full.push(self.cur);
    }
}

struct Slot {
    full: rtrb::Consumer<Box<Counts>>,
    free: rtrb::Producer<Box<Counts>>,
}

/// The metrics thread's end: hands out recorders and collects their counts.
pub struct LatencyHub {
    epoch: Arc<CachePadded<AtomicU64>>,
    slots: Vec<Slot>,
}

impl Default for LatencyHub {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyHub {
    pub fn new() -> Self {
        Self { epoch: Arc::new(CachePadded::new(AtomicU64::new(0))), slots: Vec::new() }
    }

    /// A recorder for one thread, with its count sets allocated now.
    pub fn recorder(&mut self) -> LatencyRecorder {
        const SETS: usize = 3;
        let (full_tx, full_rx) = rtrb::RingBuffer::new(SETS);
        let (mut free_tx, free_rx) = rtrb::RingBuffer::new(SETS);
        for _ in 0..SETS - 1 {
            assert!(free_tx.push(Counts::new()).is_ok(), "ring has room for every set");
        }
        self.slots.push(Slot { full: full_rx, free: free_tx });
        LatencyRecorder { cur: Counts::new(), full: full_tx, free: free_rx, epoch: self.epoch.clone(), seen: 0 }
    }

    /// Starts a new interval: recorders hand over at their next tick.
    pub fn next_interval(&self) {
        self.epoch.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds every count set handed over so far into `into`, and gives the sets back cleared.
    pub fn collect(&mut self, into: &mut Hists) {
        for s in &mut self.slots {
            while let Ok(mut h) = s.full.pop() {
                h.drain_into(into);
                let _ = s.free.push(h);
            }
        }
    }
}

/// Backpressure seen by a ring producer.
#[derive(Debug, Default)]
pub struct Backpressure {
    /// Pushes that found the ring full.
    pub full_waits: AtomicU64,
    /// Time spent waiting for room, ns.
    pub blocked_ns: AtomicU64,
}

/// Counters of one source.
#[derive(Debug, Default)]
pub struct SourceMetrics {
    pub name: String,
    /// Event time follows the wall clock (a Kafka topic, a live feed, a paced generator): its watermark lag
    /// means something (a replayed file lags by its age).
    pub live: bool,
    pub events: AtomicU64,
    pub rejects: AtomicU64,
    pub backpressure: Backpressure,
    pub partitions: Vec<PartitionMetrics>,
    pub done: AtomicBool,
    /// An exchange-feed source's own counters (the source writes them).
    pub feed: Option<Arc<FeedMetrics>>,
}

/// Watermark of one source partition.
#[derive(Debug)]
pub struct PartitionMetrics {
    pub watermark: AtomicI64,
    pub idle: AtomicBool,
}

impl Default for PartitionMetrics {
    fn default() -> Self {
        Self { watermark: AtomicI64::new(Nanos::MIN), idle: AtomicBool::new(false) }
    }
}

/// Counters of one shard.
#[derive(Debug, Default)]
pub struct ShardMetrics {
    pub events: AtomicU64,
    pub outputs: AtomicU64,
    pub late: AtomicU64,
    /// Window results dropped because they were written in full before the commit a partition resumed from.
    pub rewritten: AtomicU64,
    pub watermark: AtomicI64,
    pub open_windows: AtomicU64,
    pub backpressure: Backpressure,
    /// Messages waiting in the shard's input rings, and their room in all (published between batches).
    pub queued: AtomicU64,
    pub capacity: AtomicU64,
}

/// Counters of the emitter.
#[derive(Debug, Default)]
pub struct EmitterMetrics {
    pub rows: AtomicU64,
    pub rejects: AtomicU64,
    /// Records of streams no sink takes (counted, not written).
    pub unrouted: AtomicU64,
    /// Messages waiting in the emitter's input rings (from the shards), and their room in all.
    pub queued: AtomicU64,
    pub capacity: AtomicU64,
}

/// All counters of a running pipeline, shared with the metrics thread.
#[derive(Debug, Default)]
pub struct Metrics {
    pub sources: Vec<CachePadded<SourceMetrics>>,
    pub shards: Vec<CachePadded<ShardMetrics>>,
    pub emitter: CachePadded<EmitterMetrics>,
    /// Rows written per output stream, by stream id.
    pub stream_rows: Vec<AtomicU64>,
    pub stream_names: Vec<String>,
}

impl Metrics {
    pub fn events_in(&self) -> u64 {
        self.sources.iter().map(|s| s.events.load(Ordering::Relaxed)).sum()
    }

    pub fn rejects(&self) -> u64 {
        self.sources.iter().map(|s| s.rejects.load(Ordering::Relaxed)).sum()
    }

    pub fn late(&self) -> u64 {
        self.shards.iter().map(|s| s.late.load(Ordering::Relaxed)).sum()
    }

    /// The anomalies counted by every exchange-feed source (docs/book.md, "Sanity rules and counters").
    pub fn feed_anomalies(&self) -> u64 {
        self.sources.iter().filter_map(|s| s.feed.as_ref()).map(|f| f.anomalies()).sum()
    }

    pub fn rows_out(&self) -> u64 {
        self.emitter.rows.load(Ordering::Relaxed)
    }

    /// The lowest watermark over all source partitions that are not idle.
    pub fn min_watermark(&self) -> Option<Nanos> {
        self.sources
            .iter()
            .flat_map(|s| s.partitions.iter())
            .filter(|p| !p.idle.load(Ordering::Relaxed))
            .map(|p| p.watermark.load(Ordering::Relaxed))
            .filter(|&w| w != Nanos::MIN)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorder_hands_over_on_new_interval() {
        let mut hub = LatencyHub::new();
        let mut r = hub.recorder();
        r.record(Stage::Shard, 100);
        r.tick();
        let mut into = Hists::new();
        hub.collect(&mut into);
        assert!(into.is_empty(), "nothing handed over before the interval ends");
        hub.next_interval();
        r.tick();
        r.record(Stage::Shard, 200);
        hub.collect(&mut into);
        assert_eq!(into.0[Stage::Shard as usize].len(), 1);
        r.finish();
        hub.collect(&mut into);
        assert_eq!(into.0[Stage::Shard as usize].len(), 2);
    }

    #[test]
    fn bucket_layout_is_hdrhistograms() {
        let h = new_histogram();
        assert_eq!(h.distinct_values(), BUCKETS);
        assert_eq!(bucket_of(u64::MAX), bucket_of(MAX_LATENCY_NS));
        assert!(bucket_of(MAX_LATENCY_NS) < BUCKETS);
        assert_eq!(bucket_of(0), bucket_of(1));
        assert!(wide_bucket_of(u64::MAX) < WIDE_BUCKETS);
        assert_eq!(WIDE_BUCKETS % 64, 0);
        // Bucket 0 (latency 0) is never used: latencies are recorded as at least 1 ns.
        for i in [1, 2047, 2048, 2049, 3071, 3072, 4096, 20_000, bucket_of(MAX_LATENCY_NS)] {
            assert_eq!(bucket_of(bucket_value(i)), i, "bucket {i}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Counting into buckets and handing over gives the histogram that recording each latency gives.
        #[test]
        fn counts_equal_direct_recording(lat in proptest::collection::vec(
            proptest::prop_oneof![0u64..5000, 0u64..10_000_000, 0u64..=u64::MAX], 1..200)) {
            let mut c = Counts::new();
            let mut direct = Hists::new();
            for (i, &ns) in lat.iter().enumerate() {
                let stage = if i % 2 == 0 { Stage::Shard } else { Stage::EndToEnd };
                c.record(stage, ns);
                direct.0[stage as usize].saturating_record(ns.clamp(1, MAX_LATENCY_NS));
            }
            let mut via = Hists::new();
            c.drain_into(&mut via);
            for (a, b) in via.0.iter().zip(direct.0.iter()) {
                proptest::prop_assert_eq!(a.len(), b.len());
                proptest::prop_assert_eq!(a.max(), b.max());
                proptest::prop_assert_eq!(a.min(), b.min());
                for q in [0.5, 0.9, 0.99, 0.9999, 1.0] {
                    proptest::prop_assert_eq!(a.value_at_quantile(q), b.value_at_quantile(q));
                }
                for v in b.iter_recorded() {
                    proptest::prop_assert_eq!(a.count_at(v.value_iterated_to()), v.count_at_value());
                }
            }
            proptest::prop_assert!(c.counts.iter().all(|&n| n == 0), "handed-over counts are cleared");
        }
    }

    #[test]
    fn recorder_survives_a_slow_metrics_thread() {
        let mut hub = LatencyHub::new();
        let mut r = hub.recorder();
        for i in 0..10 {
            hub.next_interval();
            r.tick();
            r.record(Stage::EndToEnd, 10 + i);
        }
        let mut into = Hists::new();
        r.finish();
        hub.collect(&mut into);
        assert_eq!(into.0[Stage::EndToEnd as usize].len(), 10, "nothing lost");
    }
}
