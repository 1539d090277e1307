//! Counters of an exchange-feed source (ITCH over a file or MoldUDP64): what the decoder skipped, what the
//! order books refused or found wrong, what the transport lost, as atomics any thread reads without a lock.
//!
//! The source owns its [`FeedMetrics`] and publishes its plain counters into it between batches (one relaxed
//! store each); the live line, the end-of-run report and an exporter read them by [`FeedCounter`], whose
//! names and help texts are the exported ones.

use std::sync::atomic::{AtomicU64, Ordering};

/// One counter of a feed. [`FeedCounter::ALL`] lists them in the order reports print them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(usize)]
pub enum FeedCounter {
    Messages,
    UnknownTypes,
    Truncated,
    FramingErrors,
    NoDirectory,
    UnknownReference,
    DuplicateReference,
    InvalidOrders,
    OverExecutions,
    Crossed,
    Locked,
    LiveOrders,
    Packets,
    Gaps,
    Missing,
    Duplicates,
    OldPackets,
    StalePackets,
    DamagedPackets,
    Sessions,
}

impl FeedCounter {
    pub const ALL: [FeedCounter; 20] = [
        FeedCounter::Messages,
        FeedCounter::UnknownTypes,
        FeedCounter::Truncated,
        FeedCounter::FramingErrors,
        FeedCounter::NoDirectory,
        FeedCounter::UnknownReference,
        FeedCounter::DuplicateReference,
        FeedCounter::InvalidOrders,
        FeedCounter::OverExecutions,
        FeedCounter::Crossed,
        FeedCounter::Locked,
        FeedCounter::LiveOrders,
        FeedCounter::Packets,
        FeedCounter::Gaps,
        FeedCounter::Missing,
        FeedCounter::Duplicates,
        FeedCounter::OldPackets,
        FeedCounter::StalePackets,
        FeedCounter::DamagedPackets,
        FeedCounter::Sessions,
    ];

    /// The metric's name (snake case, as an exporter writes it after its prefix).
    pub fn name(self) -> &'static str {
        match self {
            FeedCounter::Messages => "messages",
            FeedCounter::UnknownTypes => "unknown_types",
            FeedCounter::Truncated => "truncated",
            FeedCounter::FramingErrors => "framing_errors",
            FeedCounter::NoDirectory => "no_directory",
            FeedCounter::UnknownReference => "unknown_reference",
            FeedCounter::DuplicateReference => "duplicate_reference",
            FeedCounter::InvalidOrders => "invalid_orders",
            FeedCounter::OverExecutions => "over_executions",
            FeedCounter::Crossed => "crossed",
            FeedCounter::Locked => "locked",
            FeedCounter::LiveOrders => "live_orders",
            FeedCounter::Packets => "packets",
            FeedCounter::Gaps => "gaps",
            FeedCounter::Missing => "missing",
            FeedCounter::Duplicates => "duplicates",
            FeedCounter::OldPackets => "old_packets",
            FeedCounter::StalePackets => "stale_packets",
            FeedCounter::DamagedPackets => "damaged_packets",
            FeedCounter::Sessions => "sessions",
        }
    }

    /// What it counts, one line.
    pub fn help(self) -> &'static str {
        match self {
            FeedCounter::Messages => "messages read (decoded or not)",
            FeedCounter::UnknownTypes => "messages of a type the decoder does not know, skipped",
            FeedCounter::Truncated => "messages shorter than their type's layout, rejected",
            FeedCounter::FramingErrors => "file framing errors: zero lengths, a cut last frame, read errors",
            FeedCounter::NoDirectory => "adds for a stock locate with no stock directory message, rejected",
            FeedCounter::UnknownReference => "executions, cancels, deletes and replaces of an unknown order",
            FeedCounter::DuplicateReference => "adds and replaces to an order reference that is live",
            FeedCounter::InvalidOrders => "orders refused for zero or too many shares",
            FeedCounter::OverExecutions => "executions and cancels of more shares than the order had",
            FeedCounter::Crossed => "times a book became crossed (best bid above best ask)",
            FeedCounter::Locked => "times a book became locked (best bid equal to best ask)",
            FeedCounter::LiveOrders => "orders in the books now (a gauge)",
            FeedCounter::Packets => "MoldUDP64 datagrams received",
            FeedCounter::Gaps => "MoldUDP64 sequence gaps",
            FeedCounter::Missing => "messages in the MoldUDP64 gaps",
            FeedCounter::Duplicates => "MoldUDP64 messages received again, dropped",
            FeedCounter::OldPackets => "MoldUDP64 packets wholly behind the expected sequence, dropped",
            FeedCounter::StalePackets => "MoldUDP64 packets of an earlier session or after its end, dropped",
            FeedCounter::DamagedPackets => "MoldUDP64 datagrams cut short or unreadable",
            FeedCounter::Sessions => "MoldUDP64 sessions seen",
        }
    }

    /// A gauge (a level now) rather than a count that only grows.
    pub fn is_gauge(self) -> bool {
        self == FeedCounter::LiveOrders
    }

    /// Whether it counts something wrong with the feed (what the live line sums as anomalies).
    pub fn is_anomaly(self) -> bool {
        !matches!(self, FeedCounter::Messages | FeedCounter::LiveOrders | FeedCounter::Packets | FeedCounter::Sessions)
    }
}

/// The counters of one feed source, written by its thread and read by any.
#[derive(Debug, Default)]
pub struct FeedMetrics {
    values: [AtomicU64; FeedCounter::ALL.len()],
}

impl FeedMetrics {
    pub fn get(&self, c: FeedCounter) -> u64 {
        self.values[c as usize].load(Ordering::Relaxed)
    }

    /// Publishes a value (the source's thread is the only writer).
    #[inline]
    pub fn set(&self, c: FeedCounter, v: u64) {
        self.values[c as usize].store(v, Ordering::Relaxed);
    }

    /// Every counter with its value, in [`FeedCounter::ALL`]'s order.
    pub fn read(&self) -> [(FeedCounter, u64); FeedCounter::ALL.len()] {
        FeedCounter::ALL.map(|c| (c, self.get(c)))
    }

    /// The sum of the anomaly counters.
    pub fn anomalies(&self) -> u64 {
        FeedCounter::ALL.iter().filter(|c| c.is_anomaly()).map(|&c| self.get(c)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_counter_is_listed_once_in_its_own_slot() {
        for (i, c) in FeedCounter::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i, "{c:?}");
        }
        let names: std::collections::HashSet<_> = FeedCounter::ALL.iter().map(|c| c.name()).collect();
        assert_eq!(names.len(), FeedCounter::ALL.len());
        let m = FeedMetrics::default();
        m.set(FeedCounter::Gaps, 3);
        m.set(FeedCounter::Messages, 100);
        m.set(FeedCounter::LiveOrders, 7);
        assert_eq!(m.anomalies(), 3);
        assert_eq!(m.read()[FeedCounter::Gaps as usize], (FeedCounter::Gaps, 3));
    }
}
