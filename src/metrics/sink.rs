//! Counters of a sink that writes through a thread of its own (a database sink): what it wrote, queued,
//! retried and dropped, and how long the emitter waited for it, as atomics any thread reads without a lock.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The counters of one sink. The emitter writes `batches_queued` and `blocked_ns`, the sink's writer thread
/// the others.
#[derive(Debug, Default)]
pub struct SinkMetrics {
    /// The sink, as its `describe` says (no password).
    pub sink: String,
    /// The stream it writes.
    pub stream: String,
    pub rows_written: AtomicU64,
    pub batches_queued: AtomicU64,
    pub batches_written: AtomicU64,
    pub retries: AtomicU64,
    pub rows_dropped: AtomicU64,
    /// Time the emitter waited for the writer thread to take a batch (backpressure from the database).
    pub blocked_ns: AtomicU64,
    /// The writer thread holds a working connection.
    pub up: AtomicBool,
}

/// How an exporter writes a counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

impl SinkMetrics {
    pub fn new(sink: String, stream: String) -> SinkMetrics {
        SinkMetrics { sink, stream, ..Default::default() }
    }

    #[inline]
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    /// Every figure as (name, kind, help, value); times in seconds. The names are the exported ones after
    /// the `ticklane_sink_` prefix.
    pub fn read(&self) -> [(&'static str, Kind, &'static str, f64); 7] {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed) as f64;
        [
            ("rows_written_total", Kind::Counter, "Rows the sink committed to its database.", r(&self.rows_written)),
            (
                "batches_queued_total",
                Kind::Counter,
                "Batches the emitter handed to the sink's writer thread.",
                r(&self.batches_queued),
            ),
            (
                "batches_written_total",
                Kind::Counter,
                "Transactions (one or more batches) the sink committed.",
                r(&self.batches_written),
            ),
            (
                "retries_total",
                Kind::Counter,
                "Failed attempts to write that were retried (database down or connection lost).",
                r(&self.retries),
            ),
            (
                "rows_dropped_total",
                Kind::Counter,
                "Rows dropped after the database was down for longer than drop_after.",
                r(&self.rows_dropped),
            ),
            (
                "blocked_seconds_total",
                Kind::Counter,
                "Time the emitter waited for the sink's writer thread (its queue full).",
                self.blocked_ns.load(Ordering::Relaxed) as f64 / 1e9,
            ),
            (
                "up",
                Kind::Gauge,
                "1 while the sink's writer thread holds a working connection.",
                self.up.load(Ordering::Relaxed) as u8 as f64,
            ),
        ]
    }
}
