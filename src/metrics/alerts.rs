//! Alerts: the `[alerts]` conditions, checked by the metrics thread once per interval against the counters
//! and that interval's histograms.
//!
//! An alert fires when its condition holds at a check and clears at the first check where it does not:
//! each transition is one log line (WARN when it fires, INFO when it clears), the firing set is published
//! for the metrics endpoint and the dashboard, and a counter per alert kind counts firings. The rules sit
//! behind a lock so a reload can replace them while the job runs; the hot threads never see any of it.

use super::{Hists, Metrics, Stage, STAGES};
use crate::config::AlertsConfig;
use crate::event::Nanos;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

/// The kinds of alert (the `alert` label).
pub const KINDS: [&str; 4] = ["watermark_lag", "partition_stalled", "ring_full", "latency"];

/// One alert that is firing.
#[derive(Clone, Debug, PartialEq)]
pub struct Firing {
    /// One of [`KINDS`].
    pub kind: &'static str,
    /// What it is about: `source/partition`, a stage, `stage p99`.
    pub subject: String,
    /// What was seen, for people: "lag 7.2 s > 5 s".
    pub detail: String,
    /// Wall-clock ns when it started firing.
    pub since: Nanos,
}

/// What the endpoint and the dashboard read.
#[derive(Default)]
pub struct Board {
    inner: Mutex<BoardState>,
}

#[derive(Default, Clone)]
pub struct BoardState {
    pub firing: Vec<Firing>,
    /// Firings since the start, per kind (index into [`KINDS`]).
    pub fired: [u64; KINDS.len()],
}

impl Board {
    pub fn state(&self) -> BoardState {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Where a source partition's watermark last moved.
struct Seen {
    watermark: Nanos,
    /// Wall-clock ns of the check that saw it move.
    at: Nanos,
}

/// The metrics thread's alert state.
pub struct Alerts {
    rules: Arc<Mutex<AlertsConfig>>,
    board: Arc<Board>,
    firing: HashMap<(&'static str, String), Firing>,
    seen: HashMap<(usize, usize), Seen>,
    /// Blocked ns per (stage, index) at the last check.
    blocked: HashMap<(&'static str, usize), u64>,
}

fn secs(ns: i64) -> String {
    let s = ns as f64 / 1e9;
    if s.abs() >= 100.0 {
        format!("{s:.0} s")
    } else if s.abs() >= 1.0 {
        format!("{s:.1} s")
    } else {
        format!("{:.1} ms", s * 1e3)
    }
}

impl Alerts {
    pub fn new(rules: Arc<Mutex<AlertsConfig>>, board: Arc<Board>) -> Alerts {
        Alerts { rules, board, firing: HashMap::new(), seen: HashMap::new(), blocked: HashMap::new() }
    }

    /// Checks every rule at wall-clock `now` against the counters and the interval's histograms.
    pub fn check(&mut self, m: &Metrics, interval: &Hists, now: Nanos) {
        let rules = self.rules.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut holds: Vec<(&'static str, String, String)> = Vec::new();

        for (si, s) in m.sources.iter().enumerate() {
            let done = s.done.load(Ordering::Relaxed);
            for (pi, p) in s.partitions.iter().enumerate() {
                let wm = p.watermark.load(Ordering::Relaxed);
                let idle = p.idle.load(Ordering::Relaxed);
                let subject = format!("{}/{pi}", s.name);
                if wm == Nanos::MIN || done {
                    self.seen.remove(&(si, pi));
                    continue;
                }
                if s.live && rules.watermark_lag.0 > 0 && !idle {
                    let lag = now.saturating_sub(wm);
                    if lag > rules.watermark_lag.0 {
                        let detail = format!("watermark lag {} > {}", secs(lag), secs(rules.watermark_lag.0));
                        holds.push(("watermark_lag", subject.clone(), detail));
                    }
                }
                let seen = self.seen.entry((si, pi)).or_insert(Seen { watermark: wm, at: now });
                if seen.watermark != wm || idle {
                    *seen = Seen { watermark: wm, at: now };
                } else if rules.partition_stalled.0 > 0 && now - seen.at > rules.partition_stalled.0 {
                    let detail = format!(
                        "watermark has not moved for {} (> {}), the partition is not idle",
                        secs(now - seen.at),
                        secs(rules.partition_stalled.0)
                    );
                    holds.push(("partition_stalled", subject, detail));
                }
            }
        }

        // A replay is held back by its slowest stage by design: a full ring only means falling behind when
        // the input comes in real time.
        if rules.ring_full.0 > 0 && m.sources.iter().any(|s| s.live) {
            let stages = m
                .sources
                .iter()
                .enumerate()
                .map(|(i, s)| ("source", i, s.name.clone(), &s.backpressure))
                .chain(m.shards.iter().enumerate().map(|(i, s)| ("shard", i, i.to_string(), &s.backpressure)));
            for (stage, i, name, bp) in stages {
                let total = bp.blocked_ns.load(Ordering::Relaxed);
                let before = self.blocked.insert((stage, i), total).unwrap_or(total);
                let blocked = total.saturating_sub(before) as i64;
                if blocked > rules.ring_full.0 {
                    let detail = format!(
                        "blocked on a full ring for {} in the last interval (> {})",
                        secs(blocked),
                        secs(rules.ring_full.0)
                    );
                    holds.push(("ring_full", format!("{stage} {name}"), detail));
                }
            }
        }

        for l in &rules.latency {
            let Some(i) = STAGES.iter().position(|s| *s == l.stage) else { continue };
            if i == Stage::CheckpointBytes as usize {
                continue;
            }
            let h = &interval.0[i];
            let subject = format!("{} p{}", l.stage, l.quantile * 100.0);
            if h.is_empty() {
                // Nothing measured: an alert already firing stays as it was.
                if let Some(f) = self.firing.get(&("latency", subject.clone())) {
                    holds.push(("latency", subject, f.detail.clone()));
                }
                continue;
            }
            let v = h.value_at_quantile(l.quantile) as i64;
            if v > l.above.0 {
                holds.push(("latency", subject, format!("{} > {} over the last interval", secs(v), secs(l.above.0))));
            }
        }

        self.apply(holds, now);
    }

    /// Fires what newly holds, clears what no longer does, and publishes the firing set.
    fn apply(&mut self, holds: Vec<(&'static str, String, String)>, now: Nanos) {
        let mut fired = [0u64; KINDS.len()];
        let mut still: HashMap<(&'static str, String), Firing> = HashMap::with_capacity(holds.len());
        for (kind, subject, detail) in holds {
            let key = (kind, subject.clone());
            let since = match self.firing.remove(&key) {
                Some(f) => f.since,
                None => {
                    tracing::warn!(alert = kind, subject = %subject, "alert firing: {detail}");
                    if let Some(k) = KINDS.iter().position(|k| *k == kind) {
                        fired[k] += 1;
                    }
                    now
                }
            };
            still.insert(key, Firing { kind, subject, detail, since });
        }
        for ((kind, subject), f) in self.firing.drain() {
            tracing::info!(alert = kind, subject = %subject, "alert cleared after {}", secs(now - f.since));
        }
        self.firing = still;
        let mut list: Vec<Firing> = self.firing.values().cloned().collect();
        list.sort_by(|a, b| (a.since, a.kind, &a.subject).cmp(&(b.since, b.kind, &b.subject)));
        let mut st = self.board.inner.lock().unwrap_or_else(|p| p.into_inner());
        st.firing = list;
        for (a, b) in st.fired.iter_mut().zip(fired) {
            *a += b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LatencyAlertConfig;
    use crate::metrics::{PartitionMetrics, SourceMetrics};
    use crate::time::Dur;
    use crossbeam_utils::CachePadded;

    fn one_source(live: bool) -> Metrics {
        Metrics {
            sources: vec![CachePadded::new(SourceMetrics {
                name: "feed".into(),
                live,
                partitions: vec![PartitionMetrics::default()],
                ..Default::default()
            })],
            ..Default::default()
        }
    }

    const S: Nanos = 1_000_000_000;

    fn alerts(cfg: AlertsConfig) -> (Alerts, Arc<Board>) {
        let board = Arc::new(Board::default());
        (Alerts::new(Arc::new(Mutex::new(cfg)), board.clone()), board)
    }

    #[test]
    fn watermark_lag_fires_on_live_sources_and_clears() {
        let m = one_source(true);
        let (mut a, board) = alerts(AlertsConfig::default());
        let h = Hists::new();
        let t0 = 1_000_000 * S;
        m.sources[0].partitions[0].watermark.store(t0 - 2 * S, Ordering::Relaxed);
        a.check(&m, &h, t0);
        assert!(board.state().firing.is_empty(), "2 s of lag is under 5 s");
        a.check(&m, &h, t0 + 4 * S);
        let st = board.state();
        assert_eq!(st.firing.len(), 1);
        assert_eq!((st.firing[0].kind, st.firing[0].subject.as_str()), ("watermark_lag", "feed/0"));
        assert_eq!(st.firing[0].since, t0 + 4 * S);
        assert_eq!(st.fired[0], 1);
        // Still firing: the same alert, the same start, no new firing counted.
        m.sources[0].partitions[0].watermark.store(t0 - S, Ordering::Relaxed);
        a.check(&m, &h, t0 + 5 * S);
        let st = board.state();
        assert_eq!((st.firing.len(), st.firing[0].since, st.fired[0]), (1, t0 + 4 * S, 1));
        m.sources[0].partitions[0].watermark.store(t0 + 5 * S, Ordering::Relaxed);
        a.check(&m, &h, t0 + 6 * S);
        assert!(board.state().firing.is_empty(), "cleared");
    }

    #[test]
    fn a_replayed_file_lags_without_an_alert() {
        let m = one_source(false);
        let (mut a, board) = alerts(AlertsConfig::default());
        m.sources[0].partitions[0].watermark.store(S, Ordering::Relaxed);
        a.check(&m, &Hists::new(), 1_000_000 * S);
        assert!(board.state().firing.is_empty());
    }

    #[test]
    fn a_partition_that_stops_moving_is_stalled_unless_idle() {
        let m = one_source(false);
        let (mut a, board) = alerts(AlertsConfig { partition_stalled: Dur(10 * S), ..AlertsConfig::default() });
        let p = &m.sources[0].partitions[0];
        p.watermark.store(100 * S, Ordering::Relaxed);
        a.check(&m, &Hists::new(), 1000 * S);
        a.check(&m, &Hists::new(), 1010 * S);
        assert!(board.state().firing.is_empty(), "10 s is not more than 10 s");
        a.check(&m, &Hists::new(), 1011 * S);
        assert_eq!(board.state().firing[0].kind, "partition_stalled");
        p.idle.store(true, Ordering::Relaxed);
        a.check(&m, &Hists::new(), 1012 * S);
        assert!(board.state().firing.is_empty(), "an idle partition is not stalled");
    }

    #[test]
    fn a_full_ring_for_longer_than_the_bound_fires() {
        let m = one_source(true);
        m.sources[0].partitions[0].watermark.store(1_000_000 * S, Ordering::Relaxed);
        let (mut a, board) = alerts(AlertsConfig::default());
        let bp = &m.sources[0].backpressure;
        a.check(&m, &Hists::new(), S);
        bp.blocked_ns.store(50_000_000, Ordering::Relaxed);
        a.check(&m, &Hists::new(), 2 * S);
        assert!(board.state().firing.is_empty(), "50 ms blocked");
        bp.blocked_ns.store(300_000_000, Ordering::Relaxed);
        a.check(&m, &Hists::new(), 3 * S);
        let st = board.state();
        assert_eq!((st.firing[0].kind, st.firing[0].subject.as_str()), ("ring_full", "source feed"));
        a.check(&m, &Hists::new(), 4 * S);
        assert!(board.state().firing.is_empty(), "not blocked in the last interval");
    }

    #[test]
    fn a_latency_quantile_above_its_bound_fires() {
        let m = one_source(false);
        let rule = LatencyAlertConfig { stage: "end_to_end".into(), quantile: 0.99, above: Dur(1_000_000) };
        let (mut a, board) = alerts(AlertsConfig { latency: vec![rule], ..AlertsConfig::default() });
        let mut h = Hists::new();
        for _ in 0..98 {
            h.0[Stage::EndToEnd as usize].record(10_000).unwrap();
        }
        for _ in 0..2 {
            h.0[Stage::EndToEnd as usize].record(5_000_000).unwrap();
        }
        a.check(&m, &h, S);
        let st = board.state();
        assert_eq!((st.firing[0].kind, st.firing[0].subject.as_str()), ("latency", "end_to_end p99"));
        a.check(&m, &Hists::new(), 2 * S);
        assert_eq!(board.state().firing.len(), 1, "an interval with nothing measured keeps it");
        h.reset();
        h.0[Stage::EndToEnd as usize].record(10_000).unwrap();
        a.check(&m, &h, 3 * S);
        assert!(board.state().firing.is_empty());
    }
}
