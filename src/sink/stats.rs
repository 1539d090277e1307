//! Counters of the sinks that write through a thread of their own (the database sinks), registered when the
//! sink opens so that the metrics endpoint shows them without the pipeline knowing each kind of sink.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

/// One sink's counters; the emitter and the sink's writer thread update them, a scrape reads them.
#[derive(Debug, Default)]
pub struct SinkStats {
    /// The sink type (`influxdb`) and its stream, the labels of its samples.
    pub kind: &'static str,
    pub stream: String,
    /// Rows the database acknowledged.
    pub rows_written: AtomicU64,
    /// Batches handed to the writer thread and not written yet (the one being written included).
    pub batches_queued: AtomicU64,
    /// Requests that failed and were tried again.
    pub retries: AtomicU64,
    /// Rows given up on (`drop_after`, `shutdown_timeout`, or a row without any field).
    pub rows_dropped: AtomicU64,
    /// Time the emitter waited for the writer thread to free a batch buffer (every one queued), ns.
    pub blocked_ns: AtomicU64,
}

/// A metric family: name, type, help, and the value of one sink's sample.
type Family = (&'static str, &'static str, &'static str, fn(&SinkStats) -> String);

static REGISTRY: Mutex<Vec<Weak<SinkStats>>> = Mutex::new(Vec::new());

/// New counters for a sink of `kind` on `stream`, shown by [`render`] while the returned `Arc` lives.
pub fn register(kind: &'static str, stream: &str) -> Arc<SinkStats> {
    let s = Arc::new(SinkStats { kind, stream: stream.to_string(), ..SinkStats::default() });
    let mut r = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    r.retain(|w| w.strong_count() > 0);
    r.push(Arc::downgrade(&s));
    s
}

/// The live sinks' counters, in Prometheus text exposition (nothing when no such sink is open).
pub fn render(out: &mut String) {
    let live: Vec<Arc<SinkStats>> =
        REGISTRY.lock().unwrap_or_else(|e| e.into_inner()).iter().filter_map(Weak::upgrade).collect();
    if live.is_empty() {
        return;
    }
    let families: [Family; 5] = [
        ("ticklane_sink_rows_written_total", "counter", "Rows a database sink's server acknowledged.", |s| {
            s.rows_written.load(Ordering::Relaxed).to_string()
        }),
        (
            "ticklane_sink_batches_queued",
            "gauge",
            "Batches handed to a database sink's writer thread and not yet written.",
            |s| s.batches_queued.load(Ordering::Relaxed).to_string(),
        ),
        ("ticklane_sink_retries_total", "counter", "Failed writes of a database sink that were retried.", |s| {
            s.retries.load(Ordering::Relaxed).to_string()
        }),
        (
            "ticklane_sink_rows_dropped_total",
            "counter",
            "Rows a database sink gave up on (see docs/operations.md).",
            |s| s.rows_dropped.load(Ordering::Relaxed).to_string(),
        ),
        (
            "ticklane_sink_blocked_seconds_total",
            "counter",
            "Time the emitter waited for a database sink's writer thread (every batch buffer queued).",
            |s| (s.blocked_ns.load(Ordering::Relaxed) as f64 / 1e9).to_string(),
        ),
    ];
    for (name, kind, help, value) in families {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for s in &live {
            let stream = s.stream.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
            let _ = writeln!(out, "{name}{{type=\"{}\",stream=\"{stream}\"}} {}", s.kind, value(s));
        }
    }
}
