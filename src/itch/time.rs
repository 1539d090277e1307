//! ITCH timestamps (nanoseconds since midnight, venue time) to epoch nanoseconds for one trade date.
//!
//! The midnight of the trade date in the venue's time zone is computed once, with the IANA database bundled
//! in the binary (jiff's `tzdb-bundle-always`), so the result does not depend on the machine's
//! /usr/share/zoneinfo; each message then costs one addition.

use crate::event::Nanos;
use jiff::civil::{Date, Time};
use jiff::tz::{TimeZone, TimeZoneDatabase};
use thiserror::Error;

/// Nasdaq's time zone.
pub const DEFAULT_TZ: &str = "America/New_York";

/// Nanoseconds in a day of 24 hours.
pub const DAY_NS: u64 = 86_400_000_000_000;

/// A trade date or time zone the clock cannot use.
#[derive(Debug, Error)]
pub enum TimeError {
    #[error("`{0}` is not a date (YYYY-MM-DD)")]
    Date(String),
    #[error("`{0}` is not a time zone in the IANA database")]
    Zone(String),
    #[error("{0}")]
    Other(String),
}

/// Turns ITCH timestamps of one trade date into epoch nanoseconds: the epoch of local midnight of the date,
/// plus the timestamp.
#[derive(Clone, Debug)]
pub struct SessionClock {
    midnight: Nanos,
    date: Date,
    tz: TimeZone,
}

impl SessionClock {
    /// The clock of `date` (`YYYY-MM-DD`) in the IANA time zone `tz` (e.g. [`DEFAULT_TZ`]).
    pub fn new(date: &str, tz: &str) -> Result<SessionClock, TimeError> {
        let d: Date = date.parse().map_err(|_| TimeError::Date(date.to_string()))?;
        let zone = TimeZoneDatabase::bundled().get(tz).map_err(|_| TimeError::Zone(tz.to_string()))?;
        let start = d.to_zoned(zone.clone()).map_err(|e| TimeError::Other(e.to_string()))?;
        let midnight = i64::try_from(start.timestamp().as_nanosecond())
            .map_err(|_| TimeError::Other(format!("{date} is out of the range of i64 nanoseconds")))?;
        Ok(SessionClock { midnight, date: d, tz: zone })
    }

    /// Epoch nanoseconds of local midnight of the trade date.
    #[inline]
    pub fn midnight(&self) -> Nanos {
        self.midnight
    }

    /// Epoch nanoseconds of an ITCH timestamp (saturating: a timestamp cannot reach `i64::MAX` from a real
    /// date's midnight, but any `u64` is accepted).
    #[inline]
    pub fn to_epoch(&self, ns_since_midnight: u64) -> Nanos {
        self.midnight.saturating_add(i64::try_from(ns_since_midnight).unwrap_or(i64::MAX))
    }

    /// The ITCH timestamp of a local wall-clock time of the trade date (`hour:minute:second`), counted in
    /// elapsed nanoseconds from midnight: on the days clocks change, elapsed time and wall-clock time differ
    /// by the change after it happens (02:00), never in trading hours.
    pub fn local_time(&self, hour: i8, minute: i8, second: i8) -> Result<u64, TimeError> {
        let t = Time::new(hour, minute, second, 0).map_err(|e| TimeError::Other(e.to_string()))?;
        let z = self.date.to_datetime(t).to_zoned(self.tz.clone()).map_err(|e| TimeError::Other(e.to_string()))?;
        let epoch = i64::try_from(z.timestamp().as_nanosecond()).map_err(|e| TimeError::Other(e.to_string()))?;
        u64::try_from(epoch - self.midnight).map_err(|e| TimeError::Other(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_york_midnight_in_winter_and_summer() {
        // 2024-01-02 00:00 EST = 05:00 UTC; 2024-07-01 00:00 EDT = 04:00 UTC.
        let w = SessionClock::new("2024-01-02", DEFAULT_TZ).expect("clock");
        assert_eq!(w.midnight(), 1_704_171_600 * 1_000_000_000);
        let s = SessionClock::new("2024-07-01", DEFAULT_TZ).expect("clock");
        assert_eq!(s.midnight(), 1_719_806_400 * 1_000_000_000);
        // 09:30:00.000000001 local.
        assert_eq!(s.to_epoch(34_200_000_000_001), 1_719_840_600 * 1_000_000_000 + 1);
        assert_eq!(s.local_time(9, 30, 0).expect("time"), 34_200_000_000_000);
    }

    #[test]
    fn elapsed_time_on_a_clock_change_day() {
        // 2024-03-10: clocks go from 02:00 EST to 03:00 EDT; 09:30 local is 8.5 elapsed hours after midnight.
        let c = SessionClock::new("2024-03-10", DEFAULT_TZ).expect("clock");
        assert_eq!(c.local_time(9, 30, 0).expect("time"), 30_600_000_000_000);
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert!(matches!(SessionClock::new("2024-13-01", DEFAULT_TZ), Err(TimeError::Date(_))));
        assert!(matches!(SessionClock::new("2024-01-02", "Mars/Olympus"), Err(TimeError::Zone(_))));
        let c = SessionClock::new("2024-01-02", "UTC").expect("clock");
        assert_eq!(c.to_epoch(u64::MAX), i64::MAX);
    }
}
