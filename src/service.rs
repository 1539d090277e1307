//! The service manager's view of a running job: systemd's readiness, status, watchdog and stopping messages
//! (sd_notify), sent from the metrics thread (a reload's, from the thread that handles SIGHUP).
//!
//! Outside systemd (`NOTIFY_SOCKET` unset) every call is a no-op. Under a unit with `Type=notify` the job says
//! `READY=1` once its sources are open and every thread runs, a `STATUS=` line each metrics interval, and
//! `STOPPING=1` when a signal starts the drain; a reload (SIGHUP) is `RELOADING=1` then `READY=1` with a
//! `STATUS=` of what it applied (`crate::reload`). With `WatchdogSec=` it pings `WATCHDOG=1` at half the period —
//! but only while the shards are not stalled: they have events waiting (handed over by the sources and not
//! processed), have processed none since the last check, and were not waiting for room in the emitter's rings
//! meanwhile (backpressure from a slow sink is waiting, not a stall). A parked shard with nothing to do is not
//! stalled. So a shard stuck in a loop stops the pings, and systemd restarts the service. The emitter is not
//! judged yet: a sink waiting for its broker or database looks the same as one that hangs until the sinks
//! report their waits.

use crate::metrics::Metrics;
use sd_notify::NotifyState;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Set once the job is ready (`READY=1` sent, or due had there been a service manager).
static READY: AtomicBool = AtomicBool::new(false);

/// Whether the job has started: a reload waits for it, so that its `READY=1` cannot come before the job's own.
pub fn started() -> bool {
    READY.load(Ordering::Acquire)
}

/// The job's link to the service manager.
pub struct Service {
    /// `NOTIFY_SOCKET` is set.
    enabled: bool,
    /// Half the watchdog period, when there is one.
    ping_every: Option<Duration>,
    last_ping: Instant,
    /// The shards together: (progress, events waiting) at the last check.
    seen: Vec<(u64, u64)>,
    stalled: Option<&'static str>,
    stopping: bool,
}

impl Service {
    /// Reads `NOTIFY_SOCKET` and `WATCHDOG_USEC` (for this process only: `WATCHDOG_PID`).
    pub fn from_env() -> Service {
        let enabled = std::env::var_os("NOTIFY_SOCKET").is_some();
        let mut usec = 0;
        let ping_every = (enabled && sd_notify::watchdog_enabled(false, &mut usec) && usec > 0)
            .then(|| Duration::from_micros(usec) / 2);
        Service { enabled, ping_every, last_ping: Instant::now(), seen: Vec::new(), stalled: None, stopping: false }
    }

    fn send(&self, states: &[NotifyState]) {
        if !self.enabled {
            return;
        }
        if let Err(e) = sd_notify::notify(false, states) {
            tracing::warn!("cannot notify the service manager: {e}");
        }
    }

    /// The pipeline runs: sources are open and every thread has started.
    pub fn ready(&mut self, status: &str) {
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
        READY.store(true, Ordering::Release);
        if let Some(p) = self.ping_every {
            tracing::info!(ping_every = ?p, "systemd watchdog on");
        }
    }

    /// The drain has started (a signal).
    pub fn stopping(&mut self) {
        if !self.stopping {
            self.stopping = true;
            self.send(&[NotifyState::Stopping, NotifyState::Status("stopping: draining")]);
        }
    }

    /// A reload (SIGHUP) has started: `RELOADING=1` with the host's monotonic time, as `Type=notify-reload`
    /// requires.
    pub fn reloading(&self) {
        let usec = crate::time::host_monotonic_ns() / 1000;
        self.send(&[NotifyState::Reloading, NotifyState::MonotonicUsec(usec as i128)]);
    }

    /// The reload is done: `READY=1` and what it applied.
    pub fn reloaded(&self, status: &str) {
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    pub fn status(&self, status: &str) {
        self.send(&[NotifyState::Status(status)]);
    }

    /// Whether a watchdog ping is due now.
    pub fn ping_due(&self) -> bool {
        self.ping_every.is_some_and(|p| self.last_ping.elapsed() >= p)
    }

    /// Pings the watchdog unless a stage is stalled (checked against the counters since the last call).
    pub fn watchdog(&mut self, m: &Metrics) {
        let Some(_) = self.ping_every else { return };
        let handed: u64 = m.sources.iter().map(|s| s.events.load(Ordering::Relaxed)).sum();
        let processed: u64 = m.shards.iter().map(|s| s.events.load(Ordering::Relaxed)).sum();
        let waited: u64 = m.shards.iter().map(|s| s.backpressure.blocked_ns.load(Ordering::Relaxed)).sum();
        // Progress is work done or time spent waiting on the next stage.
        let now = vec![(processed.wrapping_add(waited), handed.saturating_sub(processed))];
        let stalled = stalled_stage(&self.seen, &now);
        self.seen = now;
        match (&stalled, &self.stalled) {
            (Some(s), None) => {
                tracing::error!(stage = %s, "pipeline stalled: not pinging the systemd watchdog");
                self.status(&format!("stalled: {s}"));
            }
            (None, Some(s)) => tracing::warn!(stage = %s, "pipeline moving again: pinging the systemd watchdog"),
            _ => {}
        }
        self.stalled = stalled;
        self.last_ping = Instant::now();
        if self.stalled.is_none() {
            self.send(&[NotifyState::Watchdog]);
        }
    }
}

/// The first stage (the shards together, then the emitter) that had messages waiting at the last check and
/// has made no progress since.
fn stalled_stage(before: &[(u64, u64)], now: &[(u64, u64)]) -> Option<&'static str> {
    const NAMES: [&str; 2] = ["shards", "emitter"];
    if before.len() != now.len() {
        return None;
    }
    before.iter().zip(now).zip(NAMES).find_map(|((&(done0, waiting0), &(done1, waiting1)), name)| {
        (waiting0 > 0 && waiting1 > 0 && done1 == done0).then_some(name)
    })
}

#[cfg(test)]
mod tests {
    use super::stalled_stage;

    #[test]
    fn a_stage_with_waiting_messages_and_no_progress_is_stalled() {
        // shards, emitter: (processed, waiting)
        let a = [(10, 3), (7, 0)];
        assert_eq!(stalled_stage(&[], &a), None, "the first check has nothing to compare");
        assert_eq!(stalled_stage(&a, &[(12, 3), (7, 0)]), None, "the shards moved");
        assert_eq!(stalled_stage(&a, &[(10, 5), (7, 0)]), Some("shards"));
        assert_eq!(stalled_stage(&a, &[(10, 0), (7, 0)]), None, "nothing waiting any more");
        let b = [(10, 0), (7, 2)];
        assert_eq!(stalled_stage(&b, &b), Some("emitter"));
    }
}
