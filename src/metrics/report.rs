//! The metrics thread: once per interval, collects the threads' histograms, writes the interval log, prints
//! the live line; at the end prints the latency summary.

use super::hdrlog::IntervalLog;
use super::{Hists, LatencyHub, Metrics, STAGES};
use hdrhistogram::Histogram;
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Formats ns with a unit chosen for reading (`850ns`, `1.23µs`, `12.3ms`, `1.20s`).
pub fn human_ns(ns: u64) -> String {
    let f = ns as f64;
    if ns < 1_000 {
        format!("{ns}ns")
    } else if ns < 1_000_000 {
        format!("{:.2}µs", f / 1e3)
    } else if ns < 1_000_000_000 {
        format!("{:.2}ms", f / 1e6)
    } else {
        format!("{:.2}s", f / 1e9)
    }
}

/// Formats a byte count (`512B`, `12.3KiB`, `4.20MiB`, `1.05GiB`).
pub fn human_bytes(b: u64) -> String {
    let f = b as f64;
    if b < 1 << 10 {
        format!("{b}B")
    } else if b < 1 << 20 {
        format!("{:.1}KiB", f / 1024.0)
    } else if b < 1 << 30 {
        format!("{:.2}MiB", f / (1u64 << 20) as f64)
    } else {
        format!("{:.2}GiB", f / (1u64 << 30) as f64)
    }
}

/// The percentile table `ticklane` prints at exit and `ticklane stats` prints from a log. Rows whose name
/// ends in `_bytes` hold sizes, printed as such.
pub fn percentile_table(rows: &[(&str, &Histogram<u64>)]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<20} {:>12} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "stage", "count", "p50", "p90", "p99", "p99.9", "p99.99", "max"
    );
    for (name, h) in rows {
        if h.is_empty() {
            let _ = writeln!(s, "{:<20} {:>12}", name, 0);
            continue;
        }
        let fmt: fn(u64) -> String = if name.ends_with("_bytes") { human_bytes } else { human_ns };
        let q = |q: f64| fmt(h.value_at_quantile(q));
        let _ = writeln!(
            s,
            "{:<20} {:>12} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
            name,
            h.len(),
            q(0.5),
            q(0.9),
            q(0.99),
            q(0.999),
            q(0.9999),
            fmt(h.max())
        );
    }
    s
}

/// State of the metrics thread.
pub struct Report {
    pub hub: LatencyHub,
    pub metrics: Arc<Metrics>,
    pub log: Option<IntervalLog>,
    pub interval: Duration,
    /// Print a live line to stderr every interval.
    pub live: bool,
    pub total: Box<Hists>,
    /// The metrics endpoint is on: render the latency families for it every interval.
    pub publish: Option<Arc<super::prom::Published>>,
    /// `[alerts]`, checked every interval.
    pub alerts: super::alerts::Alerts,
    /// systemd: readiness, status, watchdog, stopping.
    pub service: crate::service::Service,
    /// Set by a signal: the pipeline drains.
    pub shutdown: Arc<AtomicBool>,
}

impl Report {
    /// Runs until `stop` is set, then collects what the finished threads handed over and returns the totals.
    pub fn run(mut self, stop: &AtomicBool) -> (Box<Hists>, Option<IntervalLog>) {
        let started = Instant::now();
        let mut from = SystemTime::now();
        let began = from;
        let mut last = Instant::now();
        let mut last_in = 0u64;
        let mut last_out = 0u64;
        let mut interval = Hists::new();
        let mut text = String::new();
        // Started last, after every pipeline thread: the job runs.
        self.service.ready(&format!(
            "running: {} sources, {} shards",
            self.metrics.sources.len(),
            self.metrics.shards.len()
        ));
        loop {
            let deadline = last + self.interval;
            while Instant::now() < deadline && !stop.load(Ordering::Acquire) {
                if self.shutdown.load(Ordering::Relaxed) {
                    self.service.stopping();
                }
                if self.service.ping_due() {
                    self.service.watchdog(&self.metrics);
                }
                std::thread::sleep(Duration::from_millis(10).min(self.interval));
            }
            // A stop that drained faster than one look: still said.
            if self.shutdown.load(Ordering::Relaxed) {
                self.service.stopping();
            }
            let finished = stop.load(Ordering::Acquire);
            self.hub.next_interval();
            if !finished {
                // Give the threads a moment to reach their next tick and hand over.
                std::thread::sleep(Duration::from_millis(2));
            }
            self.hub.collect(&mut interval);
            let now = Instant::now();
            let len = now - last;
            if let Some(log) = &mut self.log {
                for (i, tag) in STAGES.iter().enumerate() {
                    if let Err(e) = log.write(tag, &interval.0[i], from, len) {
                        tracing::warn!(error = %e, "cannot write the histogram log; not writing it any more");
                        self.log = None;
                        break;
                    }
                }
                if let Some(log) = &mut self.log {
                    let _ = log.flush();
                }
            }
            let (ev_in, ev_out) = (self.metrics.events_in(), self.metrics.rows_out());
            if !finished && !self.shutdown.load(Ordering::Relaxed) {
                let secs = len.as_secs_f64().max(1e-9);
                self.service.status(&format!(
                    "in {:.0} ev/s (total {ev_in}), out {:.0} rows/s, late {}, rejects {}",
                    (ev_in - last_in) as f64 / secs,
                    (ev_out - last_out) as f64 / secs,
                    self.metrics.late(),
                    self.metrics.rejects()
                ));
            }
            if self.live && !finished {
                let secs = len.as_secs_f64().max(1e-9);
                let e2e = &interval.0[super::Stage::EndToEnd as usize];
                let lat = if e2e.is_empty() {
                    String::from("-")
                } else {
                    format!(
                        "p50 {} p99 {} p99.99 {} max {}",
                        human_ns(e2e.value_at_quantile(0.5)),
                        human_ns(e2e.value_at_quantile(0.99)),
                        human_ns(e2e.value_at_quantile(0.9999)),
                        human_ns(e2e.max())
                    )
                };
                let lag = self
                    .metrics
                    .min_watermark()
                    .map(|w| human_ns((crate::time::wall_now() - w).max(0) as u64))
                    .unwrap_or_else(|| "-".into());
                let mut broker = match crate::kafka::broker_errors() {
                    0 => String::new(),
                    n => format!("  broker errors {n}"),
                };
                let anomalies = self.metrics.feed_anomalies();
                if anomalies > 0 {
                    let _ = write!(broker, "  feed anomalies {anomalies}");
                }
                let line = format!(
                    "[{:>7.1}s] in {:>9.0} ev/s (total {ev_in})  out {:>8.0} rows/s  late {}  rejects {}  wm lag {}  end-to-end {}{broker}",
                    started.elapsed().as_secs_f64(),
                    (ev_in - last_in) as f64 / secs,
                    (ev_out - last_out) as f64 / secs,
                    self.metrics.late(),
                    self.metrics.rejects(),
                    lag,
                    lat
                );
                let _ = writeln!(std::io::stderr(), "{line}");
            }
            last_in = ev_in;
            last_out = ev_out;
            if !finished {
                self.alerts.check(&self.metrics, &interval, crate::time::wall_now());
            }
            self.total.add(&interval);
            if let Some(p) = &self.publish {
                super::prom::publish_latency(&self.total.0, &interval.0, began, &mut text, p);
            }
            interval.reset();
            from = SystemTime::now();
            last = now;
            if finished {
                break;
            }
        }
        (self.total, self.log)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_units() {
        assert_eq!(human_ns(850), "850ns");
        assert_eq!(human_ns(1_234), "1.23µs");
        assert_eq!(human_ns(12_300_000), "12.30ms");
        assert_eq!(human_ns(1_200_000_000), "1.20s");
    }

    #[test]
    fn table_has_every_percentile() {
        let mut h = super::super::new_histogram();
        for v in 1..=10_000u64 {
            h.record(v * 100).unwrap();
        }
        let t = percentile_table(&[("end_to_end", &h)]);
        assert!(t.contains("p99.99") && t.contains("end_to_end") && t.contains("10000"), "{t}");
    }
}
