//! Time: the units timestamps arrive in, the monotonic clock latencies are measured with, and watermarks.

pub mod watermark;

use crate::event::Nanos;
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The unit of integer timestamps in a source (and of the timestamps its results are written in).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimeUnit {
    #[serde(rename = "s")]
    Seconds,
    #[default]
    #[serde(rename = "ms")]
    Millis,
    #[serde(rename = "us", alias = "µs")]
    Micros,
    #[serde(rename = "ns")]
    Nanos,
}

impl TimeUnit {
    /// Nanoseconds per unit.
    pub const fn nanos(self) -> i64 {
        match self {
            TimeUnit::Seconds => 1_000_000_000,
            TimeUnit::Millis => 1_000_000,
            TimeUnit::Micros => 1_000,
            TimeUnit::Nanos => 1,
        }
    }

    /// A timestamp in this unit as ns, or `None` if it overflows i64 nanoseconds.
    #[inline]
    pub fn to_nanos(self, v: i64) -> Option<Nanos> {
        v.checked_mul(self.nanos())
    }

    /// ns as this unit, rounding towards −∞ (exact when `ns` is a multiple of the unit).
    #[inline]
    pub fn from_nanos(self, ns: Nanos) -> i64 {
        ns.div_euclid(self.nanos())
    }

    pub fn name(self) -> &'static str {
        match self {
            TimeUnit::Seconds => "s",
            TimeUnit::Millis => "ms",
            TimeUnit::Micros => "us",
            TimeUnit::Nanos => "ns",
        }
    }
}

/// Parses a human duration (`"2s"`, `"500ms"`, `"1m 30s"`, `"250us"`, `"0s"`) into ns.
pub fn parse_duration(s: &str) -> Result<Nanos, String> {
    let d = humantime::parse_duration(s.trim())
        .map_err(|e| format!("`{s}` is not a duration ({e}); write e.g. \"2s\", \"500ms\", \"10us\""))?;
    i64::try_from(d.as_nanos()).map_err(|_| format!("`{s}` is too long"))
}

/// Formats ns as a short human duration (`2s`, `1.5ms`).
pub fn format_duration(ns: Nanos) -> String {
    humantime::format_duration(Duration::from_nanos(ns.max(0) as u64)).to_string()
}

/// A duration read from TOML as a string like `"2s"`; stored as ns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dur(pub Nanos);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s).map(Dur).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Dur {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(self.0))
    }
}

impl std::fmt::Display for Dur {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&format_duration(self.0))
    }
}

/// The process's clock: quanta's, calibrated against `CLOCK_MONOTONIC` at start-up, with its first
/// reading and its scale as a 32.32 fixed-point factor (ns per tick × 2³²).
struct Mono {
    clock: quanta::Clock,
    base: u64,
    ns_per_tick_q32: u64,
}

fn mono() -> &'static Mono {
    static MONO: OnceLock<Mono> = OnceLock::new();
    MONO.get_or_init(|| {
        let clock = quanta::Clock::new();
        // 2³² ticks (about a second of TSC) in ns: the factor to 1 part in 10⁹. Where quanta reads
        // `CLOCK_MONOTONIC` itself (no invariant TSC) a tick is a ns and this is exactly 2³².
        let ns_per_tick_q32 = clock.delta_as_nanos(0, 1 << 32);
        let base = clock.raw();
        Mono { clock, base, ns_per_tick_q32 }
    })
}

/// Monotonic nanoseconds since the first call in this process, from the TSC where the CPU has an
/// invariant one (a few ns per read, no syscall) and `CLOCK_MONOTONIC` otherwise. Comparable across
/// threads. Never returns 0 (0 means "not timed" in event envelopes).
///
/// The hot path reads it once or twice per event, so it is a counter read, a multiply and a shift:
/// `quanta::Instant::now` (a thread-local test-clock look-up, `Duration` arithmetic) cost four times
/// the instructions (BENCHMARKS.md, "Metrics cost").
#[inline]
pub fn mono_now() -> u64 {
    let m = mono();
    let ticks = m.clock.raw().saturating_sub(m.base);
    ((ticks as u128 * m.ns_per_tick_q32 as u128) >> 32) as u64 | 1
}

/// The host's `CLOCK_MONOTONIC` in ns: the one clock two processes on this host share (through the vDSO, no
/// syscall, where the kernel's clocksource allows). [`mono_now`] is this process's own and cheaper; this is
/// for times handed between processes, such as a sender's schedule (`ticklane itch-send --start-at`).
#[inline]
pub fn host_monotonic_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// Starts the monotonic clock (calibrates the TSC) so the first timed event does not pay for it.
pub fn init_clock() {
    let _ = mono_now();
}

/// Wall-clock ns since the epoch (for watermark lag and paced sources' event times).
pub fn wall_now() -> Nanos {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as Nanos).unwrap_or(0)
}

/// Offset that turns [`mono_now`] into wall-clock ns: `wall ≈ mono + offset`. Taken once so paced sources
/// can stamp event times without a syscall per event.
pub fn mono_to_wall_offset() -> Nanos {
    wall_now() - mono_now() as Nanos
}

/// Waits until `mono_now() >= deadline`: sleeps while far away, then spins, so a paced source sends on
/// time without burning a core between sparse events.
pub fn wait_until(deadline: u64) {
    wait_until_on(deadline, mono_now)
}

/// [`wait_until`] on another clock (such as [`host_monotonic_ns`]).
pub fn wait_until_on(deadline: u64, clock: fn() -> u64) {
    loop {
        let now = clock();
        if now >= deadline {
            return;
        }
        let left = deadline - now;
        if left > 200_000 {
            std::thread::sleep(Duration::from_nanos(left - 100_000));
        } else if left > 20_000 {
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("2s").unwrap(), 2_000_000_000);
        assert_eq!(parse_duration("500ms").unwrap(), 500_000_000);
        assert_eq!(parse_duration("10us").unwrap(), 10_000);
        assert_eq!(parse_duration("1m 30s").unwrap(), 90_000_000_000);
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn units() {
        assert_eq!(TimeUnit::Millis.to_nanos(1_700_000_000_000), Some(1_700_000_000_000_000_000));
        assert_eq!(TimeUnit::Millis.from_nanos(1_700_000_000_000_999_999), 1_700_000_000_000);
        assert_eq!(TimeUnit::Millis.from_nanos(-1), -1);
        assert_eq!(TimeUnit::Seconds.to_nanos(i64::MAX), None);
    }

    #[test]
    fn clock_is_monotonic_and_nonzero() {
        let a = mono_now();
        let b = mono_now();
        assert!(a != 0 && b >= a);
        let (c, d) = (host_monotonic_ns(), host_monotonic_ns());
        assert!(c != 0 && d >= c);
    }
}
