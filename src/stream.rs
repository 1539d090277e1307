//! Pass-through streams (`[[stream]]`): a source's trades, quotes or L2 level updates written as rows, through
//! the shards like every result, so that they keep their order with watermarks and checkpoint barriers.

use crate::checkpoint::codec::{Dec, DecodeError, Enc};
use crate::event::{Event, KeyId, Nanos};
use crate::operator::Operator;
use crate::record::{Collector, Record, StreamId};

/// Which events a pass-through stream writes (`stream[i].events`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum EventKind {
    Trade = 0,
    /// Top-of-book quotes of an exchange feed (sent when the best levels or the imbalance change).
    Quote = 1,
    /// L2 level updates of an exchange feed.
    Level = 2,
}

impl EventKind {
    /// The config spellings, in order of the codes.
    pub const NAMES: [&'static str; 3] = ["trade", "quote", "level"];

    pub fn parse(s: &str) -> Option<EventKind> {
        Self::NAMES.iter().position(|n| *n == s).map(|i| [EventKind::Trade, EventKind::Quote, EventKind::Level][i])
    }

    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

/// First byte of this operator's checkpoint section.
const SNAPSHOT_TAG: u8 = 4;

/// Turns each event of one kind into a row of its stream. Keeps no state: its snapshot is its parameters,
/// so that a restore into a job that changed them is refused as for every operator.
#[derive(Debug)]
pub struct PassThrough {
    events: EventKind,
    stream: StreamId,
    snap: Enc,
}

impl PassThrough {
    pub fn new(events: EventKind, stream: StreamId) -> Self {
        Self { events, stream, snap: Enc::new() }
    }
}

impl Operator for PassThrough {
    #[inline]
    fn on_event(&mut self, ev: &Event, _arrival: u64, out: &mut dyn Collector) {
        let rec = match (self.events, ev) {
            (EventKind::Trade, Event::Trade(t)) => Record::Trade(*t),
            (EventKind::Quote, Event::Quote(q)) => Record::Quote(*q),
            (EventKind::Level, Event::Level(l)) => Record::Level(*l),
            _ => return,
        };
        out.emit(self.stream, rec);
    }

    fn on_watermark(&mut self, _wm: Nanos, _out: &mut dyn Collector) {}

    fn open_state(&self) -> usize {
        0
    }

    fn snapshot_begin(&mut self) {
        self.snap.clear();
        self.snap.u8(SNAPSHOT_TAG);
        self.snap.u8(self.events as u8);
    }

    fn snapshot_step(&mut self, _budget: usize) -> bool {
        true
    }

    fn snapshot_take(&mut self, spare: Vec<u8>) -> Vec<u8> {
        self.snap.swap_out(spare)
    }

    fn restore(&mut self, d: &mut Dec<'_>, _owns: &dyn Fn(KeyId) -> bool) -> Result<(), DecodeError> {
        d.expect_u8("operator", SNAPSHOT_TAG)?;
        d.expect_u8("events of the stream (0 trade, 1 quote, 2 level)", self.events as u8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{LevelUpdate, Price, Quote, Side, Trade, TradeKind};

    fn events() -> [Event; 3] {
        let t = Trade {
            ts: 5,
            price: Price(10),
            qty: 1,
            seq: 0,
            instrument: 2,
            side: Side::Buy,
            kind: TradeKind::Execution,
        };
        let q = Quote { ts: 6, instrument: 2, bid: Price(9), bid_qty: 3, ..Quote::default() };
        let l = LevelUpdate { ts: 7, price: Price(9), shares: 3, instrument: 2, orders: 1, side: Side::Buy };
        [Event::Trade(t), Event::Quote(q), Event::Level(l)]
    }

    #[test]
    fn each_stream_writes_its_kind_only() {
        for (kind, want) in [(EventKind::Trade, 0), (EventKind::Quote, 1), (EventKind::Level, 2)] {
            let mut op = PassThrough::new(kind, 7);
            let mut out: Vec<(StreamId, Record)> = Vec::new();
            for ev in events() {
                op.on_event(&ev, 0, &mut out);
            }
            let expected = match events()[want] {
                Event::Trade(t) => Record::Trade(t),
                Event::Quote(q) => Record::Quote(q),
                Event::Level(l) => Record::Level(l),
            };
            assert_eq!(out, vec![(7, expected)], "{}", kind.name());
            assert_eq!(EventKind::parse(kind.name()), Some(kind));
        }
        assert_eq!(EventKind::parse("quotes"), None);
    }

    #[test]
    fn a_snapshot_restores_into_the_same_kind_only() {
        let mut op = PassThrough::new(EventKind::Level, 1);
        let mut e = Enc::new();
        op.snapshot(&mut e);
        let bytes = e.into_vec();
        let all = |_: KeyId| true;
        PassThrough::new(EventKind::Level, 1).restore(&mut Dec::new(&bytes), &all).unwrap();
        let err = PassThrough::new(EventKind::Quote, 1).restore(&mut Dec::new(&bytes), &all).unwrap_err();
        assert!(matches!(err, DecodeError::Mismatch { .. }), "{err}");
        // Twice in a row: the spare buffer of the first comes back for the second.
        let again = op.snapshot_take(Vec::new());
        op.snapshot_begin();
        assert!(op.snapshot_step(1));
        assert_eq!(op.snapshot_take(again), bytes);
    }
}
