//! The pipeline's counters and latency histograms in Prometheus text exposition format (version 0.0.4).
//!
//! Two halves, so the hot threads never see a scrape: counters and gauges are read from the shared atomics
//! when a scrape comes; the latency families are rendered by the metrics thread once per interval, from the
//! histograms it merges anyway, into a [`Published`] text the scrape copies. docs/operations.md lists every
//! family with its meaning.

use super::{Metrics, STAGES};
use crate::checkpoint::coordinator::CheckpointStats;
use crate::event::Nanos;
use hdrhistogram::Histogram;
use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

/// Upper bounds of the latency histogram's buckets, in ns (`le` in seconds): 1-2.5-5 steps from 1 µs to
/// 10 s, wide enough for a shard's per-event time and a checkpoint's duration alike.
const BUCKETS_NS: [u64; 22] = [
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// Quantiles of the `recent` summary.
const QUANTILES: [f64; 4] = [0.5, 0.99, 0.999, 0.9999];

/// The latency families as last rendered by the metrics thread: Prometheus text, and the dashboard's JSON
/// (the last interval's percentiles per stage and its percentile distribution).
#[derive(Default)]
pub struct Published {
    text: Mutex<String>,
    json: Mutex<String>,
}

impl Published {
    fn set(&self, text: &str, json: String) {
        let mut t = self.text.lock().unwrap_or_else(|p| p.into_inner());
        t.clear();
        t.push_str(text);
        drop(t);
        *self.json.lock().unwrap_or_else(|p| p.into_inner()) = json;
    }

    fn append_to(&self, out: &mut String) {
        out.push_str(&self.text.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// The last interval's latency as JSON (`null` before the first interval ends).
    pub fn json(&self) -> String {
        let j = self.json.lock().unwrap_or_else(|p| p.into_inner());
        if j.is_empty() {
            "null".into()
        } else {
            j.clone()
        }
    }
}

/// Quantiles of the dashboard's percentile-distribution plot: 0, 50, 90, 99 … 99.999 %, spaced evenly in
/// 1 / (1 − q), as HdrHistogram's own plots are.
const DIST: [f64; 14] =
    [0.0, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9995, 0.9999, 0.99995, 0.99999, 0.999995, 1.0];

/// The dashboard's view of one interval's histograms.
fn latency_json(recent: &[Histogram<u64>], total: &[Histogram<u64>]) -> String {
    let mut stages = serde_json::Map::new();
    for (i, stage) in STAGES.iter().enumerate() {
        if *stage == "checkpoint_bytes" {
            continue;
        }
        let h = &recent[i];
        let v = if h.is_empty() {
            serde_json::json!({ "count": 0, "total": total[i].len() })
        } else {
            let q = |q: f64| h.value_at_quantile(q);
            serde_json::json!({
                "count": h.len(),
                "total": total[i].len(),
                "p50": q(0.5), "p90": q(0.9), "p99": q(0.99), "p999": q(0.999), "p9999": q(0.9999),
                "max": h.max(),
                "dist": DIST.iter().map(|&d| [d, if d >= 1.0 { h.max() as f64 } else { q(d) as f64 }]).collect::<Vec<_>>(),
            })
        };
        stages.insert((*stage).to_string(), v);
    }
    serde_json::json!({ "at_ns": crate::time::wall_now(), "stages": stages }).to_string()
}

fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// Renders the latency families from the histograms since start (`total`) and those of the interval that
/// just ended (`recent`) into `into`, reusing `buf`.
pub fn publish_latency(total: &[Histogram<u64>], recent: &[Histogram<u64>], buf: &mut String, into: &Published) {
    buf.clear();
    let timed = || STAGES.iter().enumerate().filter(|(_, s)| **s != "checkpoint_bytes");
    let _ = writeln!(
        buf,
        "# HELP ticklane_latency_seconds Time per stage since the start (stage: see docs/operations.md).\n\
         # TYPE ticklane_latency_seconds histogram"
    );
    for (i, stage) in timed() {
        let h = &total[i];
        let mut counts = [0u64; BUCKETS_NS.len()];
        for v in h.iter_recorded() {
            let at = h.highest_equivalent(v.value_iterated_to());
            if let Some(b) = BUCKETS_NS.iter().position(|&le| at <= le) {
                counts[b] += v.count_at_value();
            }
        }
        let mut cumulative = 0;
        for (le, c) in BUCKETS_NS.iter().zip(counts) {
            cumulative += c;
            let _ =
                writeln!(buf, "ticklane_latency_seconds_bucket{{stage=\"{stage}\",le=\"{}\"}} {cumulative}", secs(*le));
        }
        let _ = writeln!(buf, "ticklane_latency_seconds_bucket{{stage=\"{stage}\",le=\"+Inf\"}} {}", h.len());
        let _ = writeln!(buf, "ticklane_latency_seconds_sum{{stage=\"{stage}\"}} {}", h.mean() * h.len() as f64 / 1e9);
        let _ = writeln!(buf, "ticklane_latency_seconds_count{{stage=\"{stage}\"}} {}", h.len());
    }
    let _ = writeln!(
        buf,
        "# HELP ticklane_latency_recent_seconds Time per stage over the last metrics interval: quantiles and max \
         (NaN when the interval recorded nothing); _sum and _count since the start.\n\
         # TYPE ticklane_latency_recent_seconds summary"
    );
    for (i, stage) in timed() {
        let h = &recent[i];
        for q in QUANTILES {
            let v = if h.is_empty() { f64::NAN } else { secs(h.value_at_quantile(q)) };
            let _ =
                writeln!(buf, "ticklane_latency_recent_seconds{{stage=\"{stage}\",quantile=\"{q}\"}} {}", prom_f64(v));
        }
        let t = &total[i];
        let _ = writeln!(
            buf,
            "ticklane_latency_recent_seconds_sum{{stage=\"{stage}\"}} {}",
            t.mean() * t.len() as f64 / 1e9
        );
        let _ = writeln!(buf, "ticklane_latency_recent_seconds_count{{stage=\"{stage}\"}} {}", t.len());
    }
    let _ = writeln!(
        buf,
        "# HELP ticklane_latency_recent_max_seconds The largest time per stage over the last metrics interval.\n\
         # TYPE ticklane_latency_recent_max_seconds gauge"
    );
    for (i, stage) in timed() {
        let h = &recent[i];
        let v = if h.is_empty() { f64::NAN } else { secs(h.max()) };
        let _ = writeln!(buf, "ticklane_latency_recent_max_seconds{{stage=\"{stage}\"}} {}", prom_f64(v));
    }
    into.set(buf, latency_json(recent, total));
}

/// Prometheus spells the special values its own way.
fn prom_f64(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

/// Escapes a label value (`\`, `"` and newlines).
fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// What a scrape reads.
pub struct Exposition {
    pub metrics: Arc<Metrics>,
    pub latency: Arc<Published>,
    pub checkpoints: Option<Arc<CheckpointStats>>,
    pub alerts: Arc<super::alerts::Board>,
    /// Wall-clock ns at the start (for the uptime gauge).
    pub started: Nanos,
}

/// One family: HELP and TYPE, then its samples.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

impl Exposition {
    /// The dashboard's snapshot: counters as of now, latency as of the last interval, firing alerts.
    pub fn snapshot_json(&self) -> String {
        let m = &self.metrics;
        let now = crate::time::wall_now();
        let r = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        let sources: Vec<serde_json::Value> = m
            .sources
            .iter()
            .map(|s| {
                let parts: Vec<serde_json::Value> = s
                    .partitions
                    .iter()
                    .enumerate()
                    .map(|(p, pm)| {
                        let w = pm.watermark.load(Ordering::Relaxed);
                        let (wm, lag) = if w == Nanos::MIN {
                            (serde_json::Value::Null, serde_json::Value::Null)
                        } else {
                            (w.into(), (now.saturating_sub(w) as f64 / 1e9).into())
                        };
                        serde_json::json!({ "partition": p, "watermark_ns": wm, "lag_s": lag,
                                            "idle": pm.idle.load(Ordering::Relaxed) })
                    })
                    .collect();
                serde_json::json!({
                    "name": s.name, "live": s.live, "events": r(&s.events), "rejects": r(&s.rejects),
                    "done": s.done.load(Ordering::Relaxed),
                    "blocked_s": secs(r(&s.backpressure.blocked_ns)), "partitions": parts,
                })
            })
            .collect();
        let shards: Vec<serde_json::Value> = m
            .shards
            .iter()
            .enumerate()
            .map(|(i, sh)| {
                serde_json::json!({
                    "shard": i, "events": r(&sh.events), "outputs": r(&sh.outputs), "late": r(&sh.late),
                    "open_windows": r(&sh.open_windows), "queued": r(&sh.queued), "capacity": r(&sh.capacity),
                    "blocked_s": secs(r(&sh.backpressure.blocked_ns)),
                })
            })
            .collect();
        let alerts: Vec<serde_json::Value> = self
            .alerts
            .state()
            .firing
            .iter()
            .map(|f| serde_json::json!({ "alert": f.kind, "subject": f.subject, "detail": f.detail, "since_ns": f.since }))
            .collect();
        let checkpoints = self.checkpoints.as_ref().map(|c| {
            serde_json::json!({
                "completed": r(&c.completed), "failed": r(&c.failed), "last_id": r(&c.last_id),
                "last_bytes": r(&c.last_bytes), "last_duration_s": secs(r(&c.last_duration_ns)),
                "max_pause_s": secs(r(&c.max_pause_ns)),
            })
        });
        let latency: serde_json::Value = serde_json::from_str(&self.latency.json()).unwrap_or(serde_json::Value::Null);
        serde_json::json!({
            "now_ns": now,
            "uptime_s": secs((now - self.started).max(0) as u64),
            "events_in": m.events_in(), "rows_out": m.rows_out(), "late": m.late(), "rejects": m.rejects(),
            "emitter": { "queued": r(&m.emitter.queued), "capacity": r(&m.emitter.capacity) },
            "sources": sources, "shards": shards, "checkpoints": checkpoints, "alerts": alerts, "latency": latency,
        })
        .to_string()
    }

    /// The whole exposition, as of now.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        let m = &self.metrics;
        let now = crate::time::wall_now();
        let r = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);

        family(&mut out, "ticklane_uptime_seconds", "gauge", "Seconds since the pipeline started.");
        let _ = writeln!(out, "ticklane_uptime_seconds {}", secs((now - self.started).max(0) as u64));

        family(&mut out, "ticklane_source_events_total", "counter", "Events a source handed to the shards.");
        for s in m.sources.iter() {
            let _ = writeln!(out, "ticklane_source_events_total{{source=\"{}\"}} {}", label(&s.name), r(&s.events));
        }
        family(
            &mut out,
            "ticklane_source_rejects_total",
            "counter",
            "Input a source rejected (sent to the rejects stream).",
        );
        for s in m.sources.iter() {
            let _ = writeln!(out, "ticklane_source_rejects_total{{source=\"{}\"}} {}", label(&s.name), r(&s.rejects));
        }
        family(&mut out, "ticklane_source_done", "gauge", "1 once a source's input has ended.");
        for s in m.sources.iter() {
            let _ = writeln!(
                out,
                "ticklane_source_done{{source=\"{}\"}} {}",
                label(&s.name),
                s.done.load(Ordering::Relaxed) as u8
            );
        }
        family(
            &mut out,
            "ticklane_ring_full_waits_total",
            "counter",
            "Pushes that found the next stage's ring full, by the stage that pushed.",
        );
        for s in m.sources.iter() {
            let _ = writeln!(
                out,
                "ticklane_ring_full_waits_total{{stage=\"source\",name=\"{}\"}} {}",
                label(&s.name),
                r(&s.backpressure.full_waits)
            );
        }
        for (i, sh) in m.shards.iter().enumerate() {
            let _ = writeln!(
                out,
                "ticklane_ring_full_waits_total{{stage=\"shard\",name=\"{i}\"}} {}",
                r(&sh.backpressure.full_waits)
            );
        }
        family(
            &mut out,
            "ticklane_ring_blocked_seconds_total",
            "counter",
            "Time spent waiting for room in the next stage's ring, by the stage that waited.",
        );
        for s in m.sources.iter() {
            let _ = writeln!(
                out,
                "ticklane_ring_blocked_seconds_total{{stage=\"source\",name=\"{}\"}} {}",
                label(&s.name),
                secs(r(&s.backpressure.blocked_ns))
            );
        }
        for (i, sh) in m.shards.iter().enumerate() {
            let _ = writeln!(
                out,
                "ticklane_ring_blocked_seconds_total{{stage=\"shard\",name=\"{i}\"}} {}",
                secs(r(&sh.backpressure.blocked_ns))
            );
        }

        family(
            &mut out,
            "ticklane_ring_queued",
            "gauge",
            "Messages waiting in a stage's input rings (as of its last batch).",
        );
        for (i, sh) in m.shards.iter().enumerate() {
            let _ = writeln!(out, "ticklane_ring_queued{{stage=\"shard\",name=\"{i}\"}} {}", r(&sh.queued));
        }
        let _ = writeln!(out, "ticklane_ring_queued{{stage=\"emitter\",name=\"emitter\"}} {}", r(&m.emitter.queued));
        family(&mut out, "ticklane_ring_capacity", "gauge", "Room in a stage's input rings, in messages.");
        for (i, sh) in m.shards.iter().enumerate() {
            let _ = writeln!(out, "ticklane_ring_capacity{{stage=\"shard\",name=\"{i}\"}} {}", r(&sh.capacity));
        }
        let _ =
            writeln!(out, "ticklane_ring_capacity{{stage=\"emitter\",name=\"emitter\"}} {}", r(&m.emitter.capacity));
        family(
            &mut out,
            "ticklane_watermark_seconds",
            "gauge",
            "A source partition's watermark, seconds since the epoch (absent before its first event).",
        );
        let parts = || {
            m.sources.iter().flat_map(|s| s.partitions.iter().enumerate().map(move |(p, pm)| (s.name.as_str(), p, pm)))
        };
        for (src, p, pm) in parts() {
            let w = pm.watermark.load(Ordering::Relaxed);
            if w != Nanos::MIN {
                let _ = writeln!(
                    out,
                    "ticklane_watermark_seconds{{source=\"{}\",partition=\"{p}\"}} {}",
                    label(src),
                    w as f64 / 1e9
                );
            }
        }
        family(
            &mut out,
            "ticklane_watermark_lag_seconds",
            "gauge",
            "Wall clock minus a source partition's watermark: how far event time trails real time.",
        );
        for (src, p, pm) in parts() {
            let w = pm.watermark.load(Ordering::Relaxed);
            if w != Nanos::MIN {
                let lag = now.saturating_sub(w) as f64 / 1e9;
                let _ = writeln!(
                    out,
                    "ticklane_watermark_lag_seconds{{source=\"{}\",partition=\"{p}\"}} {lag}",
                    label(src)
                );
            }
        }
        family(
            &mut out,
            "ticklane_partition_idle",
            "gauge",
            "1 while a source partition is idle (left out of the watermark).",
        );
        for (src, p, pm) in parts() {
            let _ = writeln!(
                out,
                "ticklane_partition_idle{{source=\"{}\",partition=\"{p}\"}} {}",
                label(src),
                pm.idle.load(Ordering::Relaxed) as u8
            );
        }

        let shard_counter = |out: &mut String, name: &str, help: &str, f: &dyn Fn(&super::ShardMetrics) -> u64| {
            family(out, name, "counter", help);
            for (i, sh) in m.shards.iter().enumerate() {
                let _ = writeln!(out, "{name}{{shard=\"{i}\"}} {}", f(sh));
            }
        };
        shard_counter(&mut out, "ticklane_shard_events_total", "Events a shard processed.", &|s| r(&s.events));
        shard_counter(&mut out, "ticklane_shard_outputs_total", "Results a shard emitted.", &|s| r(&s.outputs));
        shard_counter(
            &mut out,
            "ticklane_late_events_total",
            "Events later than their window's allowed lateness.",
            &|s| r(&s.late),
        );
        family(&mut out, "ticklane_shard_open_windows", "gauge", "Windows (panes) a shard holds open.");
        for (i, sh) in m.shards.iter().enumerate() {
            let _ = writeln!(out, "ticklane_shard_open_windows{{shard=\"{i}\"}} {}", r(&sh.open_windows));
        }
        family(&mut out, "ticklane_shard_watermark_seconds", "gauge", "A shard's watermark, seconds since the epoch.");
        for (i, sh) in m.shards.iter().enumerate() {
            let w = sh.watermark.load(Ordering::Relaxed);
            if w != Nanos::MIN && w != Nanos::MAX {
                let _ = writeln!(out, "ticklane_shard_watermark_seconds{{shard=\"{i}\"}} {}", w as f64 / 1e9);
            }
        }

        family(&mut out, "ticklane_emitter_rows_total", "counter", "Result rows the emitter wrote to the sinks.");
        let _ = writeln!(out, "ticklane_emitter_rows_total {}", r(&m.emitter.rows));
        family(&mut out, "ticklane_emitter_rejects_total", "counter", "Reject rows the emitter wrote.");
        let _ = writeln!(out, "ticklane_emitter_rejects_total {}", r(&m.emitter.rejects));
        family(
            &mut out,
            "ticklane_emitter_unrouted_total",
            "counter",
            "Records of streams no sink takes (counted, not written).",
        );
        let _ = writeln!(out, "ticklane_emitter_unrouted_total {}", r(&m.emitter.unrouted));
        family(&mut out, "ticklane_stream_rows_total", "counter", "Rows written per output stream.");
        for (name, n) in m.stream_names.iter().zip(&m.stream_rows) {
            let _ = writeln!(out, "ticklane_stream_rows_total{{stream=\"{}\"}} {}", label(name), r(n));
        }
        family(
            &mut out,
            "ticklane_kafka_errors_total",
            "counter",
            "Errors librdkafka reported (broker down, transport).",
        );
        let _ = writeln!(out, "ticklane_kafka_errors_total {}", crate::kafka::broker_errors());
        crate::sink::stats::render(&mut out);

        if let Some(c) = &self.checkpoints {
            family(&mut out, "ticklane_checkpoints_completed_total", "counter", "Checkpoints completed.");
            let _ = writeln!(out, "ticklane_checkpoints_completed_total {}", r(&c.completed));
            family(
                &mut out,
                "ticklane_checkpoints_failed_total",
                "counter",
                "Checkpoints that failed or were abandoned.",
            );
            let _ = writeln!(out, "ticklane_checkpoints_failed_total {}", r(&c.failed));
            family(&mut out, "ticklane_checkpoint_last_id", "gauge", "The id of the last completed checkpoint.");
            let _ = writeln!(out, "ticklane_checkpoint_last_id {}", r(&c.last_id));
            family(&mut out, "ticklane_checkpoint_last_bytes", "gauge", "The size of the last completed checkpoint.");
            let _ = writeln!(out, "ticklane_checkpoint_last_bytes {}", r(&c.last_bytes));
            family(
                &mut out,
                "ticklane_checkpoint_last_duration_seconds",
                "gauge",
                "Start to manifest of the last completed checkpoint.",
            );
            let _ = writeln!(out, "ticklane_checkpoint_last_duration_seconds {}", secs(r(&c.last_duration_ns)));
            family(
                &mut out,
                "ticklane_checkpoint_max_pause_seconds",
                "gauge",
                "The longest shard pause for a snapshot so far.",
            );
            let _ = writeln!(out, "ticklane_checkpoint_max_pause_seconds {}", secs(r(&c.max_pause_ns)));
        }
        // Exchange feeds: one family per counter, a sample per feed source.
        let feeds: Vec<(&str, &super::FeedMetrics)> =
            m.sources.iter().filter_map(|s| s.feed.as_deref().map(|f| (s.name.as_str(), f))).collect();
        if !feeds.is_empty() {
            for c in super::FeedCounter::ALL {
                let (name, kind) = if c.is_gauge() {
                    (format!("ticklane_feed_{}", c.name()), "gauge")
                } else {
                    (format!("ticklane_feed_{}_total", c.name()), "counter")
                };
                family(&mut out, &name, kind, c.help());
                for (src, f) in &feeds {
                    let _ = writeln!(out, "{name}{{source=\"{}\"}} {}", label(src), f.get(c));
                }
            }
        }
        let al = self.alerts.state();
        family(
            &mut out,
            "ticklane_alert_firing",
            "gauge",
            "1 for each alert firing now (`[alerts]`, docs/operations.md).",
        );
        for f in &al.firing {
            let _ = writeln!(out, "ticklane_alert_firing{{alert=\"{}\",subject=\"{}\"}} 1", f.kind, label(&f.subject));
        }
        family(&mut out, "ticklane_alerts_fired_total", "counter", "Times an alert of each kind started firing.");
        for (kind, n) in super::alerts::KINDS.iter().zip(al.fired) {
            let _ = writeln!(out, "ticklane_alerts_fired_total{{alert=\"{kind}\"}} {n}");
        }
        self.latency.append_to(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{FeedCounter, FeedMetrics, PartitionMetrics, SourceMetrics};
    use crossbeam_utils::CachePadded;

    #[test]
    fn feed_counters_are_families_per_source() {
        let feed = Arc::new(FeedMetrics::default());
        feed.set(FeedCounter::Gaps, 3);
        feed.set(FeedCounter::LiveOrders, 1234);
        let metrics = Arc::new(Metrics {
            sources: vec![CachePadded::new(SourceMetrics {
                name: "nasdaq".into(),
                partitions: vec![PartitionMetrics::default()],
                feed: Some(feed),
                ..Default::default()
            })],
            ..Default::default()
        });
        let exp = Exposition {
            metrics,
            latency: Arc::new(Published::default()),
            checkpoints: None,
            alerts: Arc::new(crate::metrics::alerts::Board::default()),
            started: 0,
        };
        let text = exp.render();
        let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("parses");
        let get = |name: &str| {
            let s = scrape.samples.iter().find(|s| s.metric == name).unwrap_or_else(|| panic!("no {name}:\n{text}"));
            assert_eq!(s.labels.get("source"), Some("nasdaq"));
            s.value.clone()
        };
        assert!(matches!(get("ticklane_feed_gaps_total"), prometheus_parse::Value::Counter(v) if v == 3.0));
        assert!(matches!(get("ticklane_feed_live_orders"), prometheus_parse::Value::Gauge(v) if v == 1234.0));
        for c in FeedCounter::ALL {
            assert!(text.contains(&format!("ticklane_feed_{}", c.name())), "{}", c.name());
        }
    }
}
