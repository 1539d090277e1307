//! The live metrics endpoint (`[metrics] listen`): what a Prometheus server scrapes, parsed by a Prometheus
//! text-format parser, with live numbers that move; errors for a bad address and a port in use.

mod common;

use common::{ticklane, wait_until, Running};
use prometheus_parse::{Sample, Scrape, Value};
use std::path::Path;
use std::time::Duration;

/// A paced job with checkpoints and an alert that cannot help firing, the endpoint at `listen`.
fn job(dir: &Path, listen: &str) -> String {
    let tables = format!(
        "[checkpoint]\ndir = \"{}\"\ninterval = \"300ms\"\n\
         [[alerts.latency]]\nstage = \"end_to_end\"\nquantile = 0.5\nabove = \"1ns\"",
        dir.join("chk").display()
    );
    common::paced_job(&format!("listen = \"{listen}\""), &tables)
}

/// GET `path`: (status, body); the endpoint answers in plain text.
fn get(addr: &str, path: &str) -> (u16, String) {
    let (status, head, body) = common::http_get(addr, path);
    assert!(head.to_ascii_lowercase().contains("content-type: text/plain"), "{head}");
    (status, body)
}

fn scrape(addr: &str) -> Scrape {
    let (status, body) = get(addr, "/metrics");
    assert_eq!(status, 200, "{body}");
    Scrape::parse(body.lines().map(|l| Ok(l.to_string())))
        .unwrap_or_else(|e| panic!("not Prometheus text: {e}\n{body}"))
}

fn value(s: &Sample) -> f64 {
    match &s.value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
        other => panic!("{}: not a single value: {other:?}", s.metric),
    }
}

/// The one sample of `metric` whose labels include every pair of `labels`.
fn one<'a>(sc: &'a Scrape, metric: &str, labels: &[(&str, &str)]) -> &'a Sample {
    let found: Vec<&Sample> = sc
        .samples
        .iter()
        .filter(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .collect();
    assert_eq!(found.len(), 1, "{metric} {labels:?}: {} samples", found.len());
    found[0]
}

#[test]
fn the_endpoint_serves_live_prometheus_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("job.toml"), job(d, "127.0.0.1:0")).unwrap();
    let r = Running::start_logging(&["run", "--config", "job.toml"], d, "info");
    assert!(wait_until(Duration::from_secs(30), || common::metrics_addr(&r).is_some()), "{}", r.stderr_so_far());
    let addr = common::metrics_addr(&r).unwrap();
    assert!(addr.starts_with("127.0.0.1:") && !addr.ends_with(":0"), "{addr}");
    // Wait for a checkpoint and a few metrics intervals.
    assert!(
        wait_until(Duration::from_secs(30), || {
            let sc = scrape(&addr);
            sc.samples.iter().any(|s| s.metric == "ticklane_checkpoints_completed_total" && value(s) >= 1.0)
                && sc.samples.iter().any(|s| {
                    s.metric == "ticklane_latency_seconds"
                        && s.labels.get("stage") == Some("end_to_end")
                        && matches!(&s.value, Value::Histogram(h) if h.iter().any(|b| b.count > 0.0))
                })
        }),
        "no checkpoint or no latency in the scrapes:\n{}",
        get(&addr, "/metrics").1
    );
    let a = scrape(&addr);
    std::thread::sleep(Duration::from_millis(600));
    let b = scrape(&addr);

    // Counters move while the job runs; the types are what Prometheus expects of them.
    let events = |sc: &Scrape| value(one(sc, "ticklane_source_events_total", &[("source", "trades")]));
    assert!(events(&b) > events(&a), "events did not move: {} then {}", events(&a), events(&b));
    assert!(matches!(one(&b, "ticklane_source_events_total", &[]).value, Value::Counter(_)));
    let shard_events: f64 =
        ["0", "1"].iter().map(|s| value(one(&b, "ticklane_shard_events_total", &[("shard", s)]))).sum();
    assert!(shard_events > 0.0);
    assert!(value(one(&b, "ticklane_stream_rows_total", &[("stream", "bars")])) > 0.0);
    let lag = value(one(&b, "ticklane_watermark_lag_seconds", &[("source", "trades"), ("partition", "0")]));
    assert!((0.0..5.0).contains(&lag), "a paced source on the wall clock lags by less than 5 s: {lag}");
    assert!(matches!(one(&b, "ticklane_watermark_lag_seconds", &[]).value, Value::Gauge(_)));
    assert!(value(one(&b, "ticklane_checkpoint_last_bytes", &[])) > 0.0);
    let cap = value(one(&b, "ticklane_ring_capacity", &[("stage", "shard"), ("name", "0")]));
    let queued = value(one(&b, "ticklane_ring_queued", &[("stage", "shard"), ("name", "0")]));
    assert!(cap > 0.0 && (0.0..=cap).contains(&queued), "shard 0's rings: {queued} of {cap}");
    assert!(value(one(&b, "ticklane_ring_capacity", &[("stage", "emitter")])) > 0.0);
    for stage in ["source", "shard"] {
        assert!(b
            .samples
            .iter()
            .any(|s| s.metric == "ticklane_ring_blocked_seconds_total" && s.labels.get("stage") == Some(stage)));
    }

    // Histograms: cumulative buckets ending at +Inf with the count; summaries with the four quantiles.
    for stage in ["ingest_to_shard", "shard", "shard_to_sink", "end_to_end", "checkpoint_pause"] {
        let s = one(&b, "ticklane_latency_seconds", &[("stage", stage)]);
        let Value::Histogram(h) = &s.value else { panic!("{stage}: not a histogram: {:?}", s.value) };
        assert!(h.windows(2).all(|w| w[0].less_than < w[1].less_than && w[0].count <= w[1].count), "{stage}: {h:?}");
        assert_eq!(h.last().map(|b| b.less_than), Some(f64::INFINITY), "{stage}");
        let q = one(&b, "ticklane_latency_recent_seconds", &[("stage", stage)]);
        let Value::Summary(qs) = &q.value else { panic!("{stage}: not a summary: {:?}", q.value) };
        let got: Vec<f64> = qs.iter().map(|c| c.quantile).collect();
        assert_eq!(got, [0.5, 0.99, 0.999, 0.9999], "{stage}");
    }
    let e2e = one(&b, "ticklane_latency_seconds", &[("stage", "end_to_end")]);
    let Value::Histogram(h) = &e2e.value else { unreachable!() };
    assert!(h.last().unwrap().count > 0.0);

    // An alert that cannot help firing (p50 above 1 ns): logged, and in the scrape.
    let firing = one(&b, "ticklane_alert_firing", &[("alert", "latency")]);
    assert_eq!(firing.labels.get("subject"), Some("end_to_end p50"));
    assert!(value(one(&b, "ticklane_alerts_fired_total", &[("alert", "latency")])) >= 1.0);
    assert_eq!(value(one(&b, "ticklane_alerts_fired_total", &[("alert", "watermark_lag")])), 0.0);
    assert!(r.stderr_so_far().contains("alert firing"), "{}", r.stderr_so_far());

    // Anything else is a 404 that says where the metrics are.
    let (status, body) = get(&addr, "/nothing");
    assert_eq!(status, 404);
    assert!(body.contains("/metrics"), "{body}");
    drop(r);
}

#[test]
fn a_bad_address_or_a_port_in_use_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("bad.toml"), job(d, "localhost")).unwrap();
    let o = ticklane(&["check", "--config", "bad.toml"], d);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("metrics.listen") && err.contains("not ADDRESS:PORT"), "{err}");

    let bad_alert = job(d, "127.0.0.1:0")
        .replace("stage = \"end_to_end\"", "stage = \"e2e\"")
        .replace("quantile = 0.5", "quantile = 99.0");
    std::fs::write(d.join("bad-alert.toml"), bad_alert).unwrap();
    let o = ticklane(&["check", "--config", "bad-alert.toml"], d);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("alerts.latency[0].stage") && err.contains("`e2e` is not a stage"), "{err}");
    assert!(err.contains("alerts.latency[0].quantile") && err.contains("not in (0, 1]"), "{err}");

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    std::fs::write(d.join("taken.toml"), job(d, &addr)).unwrap();
    let o = ticklane(&["run", "--config", "taken.toml"], d);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains(&format!("metrics.listen: cannot listen on {addr}")), "{err}");
}
