//! The event-time window engine: tumbling, sliding and session windows with Flink's DataStream semantics
//! (`EventTimeTrigger`, allowed lateness, late side output). docs/semantics.md states the contract.
//!
//! * [`AlignedWindows`] serves tumbling and sliding windows. State is kept per *pane* (width
//!   `gcd(size, slide)`), so an event costs one pane update however many windows overlap, and a window's
//!   result is the merge of its panes when it fires.
//! * [`SessionWindows`] keeps a few sessions per key and merges those an event's `[ts, ts + gap)` touches.
//!
//! Timers: aligned windows keep buckets of keys per window end ([`timers::BucketTimers`]); sessions, whose
//! ends differ per key, a binary heap ordered by (time, key, session). Either way the order in which one
//! watermark advance emits results is fixed by the input (docs/semantics.md).

mod aligned;
mod session;
mod timers;

pub use aligned::AlignedWindows;
pub use session::SessionWindows;

use crate::event::{Event, Nanos, Side, Trade, TradeKind};

/// What kind of window, with its sizes in ns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowKind {
    /// `[k·size + offset, (k+1)·size + offset)`.
    Tumbling { size: Nanos, offset: Nanos },
    /// Windows of `size` starting every `slide`, at `k·slide + offset`.
    Sliding { size: Nanos, slide: Nanos, offset: Nanos },
    /// Sessions closed by `gap` of inactivity; windows `[ts, ts + gap)` that touch merge.
    Session { gap: Nanos },
}

/// A window operator's parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowSpec {
    pub kind: WindowKind,
    /// What the window aggregates: trades, or a value of each quote.
    pub value: Value,
    /// Flink's `allowedLateness`: how long after firing a window still accepts elements (each re-fires it).
    pub lateness: Nanos,
    /// Keep the points needed for TWAP (the only aggregate that costs memory per trade).
    pub twap: bool,
}

/// What a window aggregates (`window[i].value`). Trades feed every aggregate; a quote value feeds the
/// price aggregates (open, high, low, close, TWAP) and the count, as a sample with no volume.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(u8)]
pub enum Value {
    /// Trades: their price and size.
    #[default]
    Trade,
    Bid,
    Ask,
    Mid,
    Spread,
    Microprice,
    /// The order-book imbalance over the book's top levels, in [−1, 1].
    Imbalance,
}

impl Value {
    /// The config spellings, in order.
    pub const NAMES: [&'static str; 7] = ["trade", "bid", "ask", "mid", "spread", "microprice", "imbalance"];

    /// Its number in a checkpoint (the index in [`Value::NAMES`]).
    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn parse(s: &str) -> Option<Value> {
        use Value::*;
        let all = [Trade, Bid, Ask, Mid, Spread, Microprice, Imbalance];
        Self::NAMES.iter().position(|n| *n == s).map(|i| all[i])
    }

    /// The sample `ev` gives this window, if any: a trade as it is, a quote as a trade-shaped sample at the
    /// chosen value with no size (a quote without the sides the value needs gives none).
    #[inline]
    pub fn sample(self, ev: &Event) -> Option<Trade> {
        match (self, ev) {
            (Value::Trade, Event::Trade(t)) => Some(*t),
            (Value::Trade, Event::Quote(_)) | (_, Event::Trade(_)) | (_, Event::Level(_)) => None,
            (v, Event::Quote(q)) => {
                let price = match v {
                    Value::Bid => q.has_bid().then_some(q.bid),
                    Value::Ask => q.has_ask().then_some(q.ask),
                    Value::Mid => q.mid(),
                    Value::Spread => q.spread(),
                    Value::Microprice => q.microprice(),
                    Value::Imbalance => (q.has_bid() || q.has_ask()).then_some(crate::event::Price(q.imbalance as i64)),
                    Value::Trade => None,
                }?;
                Some(Trade {
                    ts: q.ts,
                    price,
                    qty: 0,
                    seq: 0,
                    instrument: q.instrument,
                    side: Side::Unknown,
                    kind: TradeKind::Record,
                })
            }
        }
    }
}

/// Flink's `TimeWindow.getWindowStartWithOffset`: the start of the window of width `size` (aligned to
/// `offset`) that contains `ts`.
#[inline]
pub fn window_start(ts: Nanos, offset: Nanos, size: Nanos) -> Nanos {
    let rem = (ts - offset) % size;
    if rem < 0 {
        ts - (rem + size)
    } else {
        ts - rem
    }
}

/// A window `[_, end)`'s last timestamp (Flink's `maxTimestamp`).
#[inline]
pub fn max_timestamp(end: Nanos) -> Nanos {
    end - 1
}

/// When a window's state is dropped: `maxTimestamp + lateness`, or never if that overflows (as Flink).
#[inline]
pub fn cleanup_time(end: Nanos, lateness: Nanos) -> Option<Nanos> {
    max_timestamp(end).checked_add(lateness)
}

/// Flink's `isWindowLate`: the window's state is already gone (or would be) at watermark `wm`.
#[inline]
pub fn is_late(end: Nanos, lateness: Nanos, wm: Nanos) -> bool {
    match cleanup_time(end, lateness) {
        Some(t) => t <= wm,
        None => false,
    }
}

fn gcd(a: Nanos, b: Nanos) -> Nanos {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// An event-time timer: `(time, key, window id, kind)`; ordered so equal times fire by key then window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Timer {
    at: Nanos,
    key: u32,
    /// Window start (aligned windows) or session uid.
    id: i64,
    kind: TimerKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKind {
    /// Fire at `maxTimestamp`; with zero lateness also the cleanup.
    Fire,
    /// Drop the state at `maxTimestamp + lateness`.
    Cleanup,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_start_matches_flink() {
        assert_eq!(window_start(0, 0, 1000), 0);
        assert_eq!(window_start(999, 0, 1000), 0);
        assert_eq!(window_start(1000, 0, 1000), 1000);
        assert_eq!(window_start(-1, 0, 1000), -1000);
        assert_eq!(window_start(1250, 100, 1000), 1100);
        assert_eq!(window_start(50, 100, 1000), -900);
    }

    #[test]
    fn lateness_checks_saturate() {
        assert!(is_late(1000, 0, 999));
        assert!(!is_late(1000, 0, 998));
        assert!(!is_late(1000, 5, 1000));
        assert!(is_late(1000, 5, 1004));
        assert!(!is_late(i64::MAX, 10, i64::MAX - 1));
        assert_eq!(gcd(60, 10), 10);
        assert_eq!(gcd(60, 25), 5);
    }
}
