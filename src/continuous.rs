//! Continuous aggregates: on every trade, the instrument's running VWAP since the start of its trading
//! session and an EMA of price with a half-life in event time. This is the per-event path the latency
//! benchmark measures.

use crate::agg::Running;
use crate::checkpoint::codec::{Dec, DecodeError, Incremental};
use crate::event::{Event, KeyId, Nanos, Trade, WATERMARK_MAX, WATERMARK_MIN};
use crate::operator::Operator;
use crate::record::{Collector, LateReason, LateRow, Record, StreamId, TickRow};

/// When the running sums start again, in event time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionReset {
    /// Length of a trading session (e.g. 1 day).
    pub every: Nanos,
    /// Where sessions start within `every`, from the epoch (e.g. 13h30m for 09:30 New York in winter).
    pub offset: Nanos,
}

/// Per-instrument running VWAP and EMA.
/// First byte of this operator's checkpoint section.
const SNAPSHOT_TAG: u8 = 3;

#[derive(Debug)]
pub struct Continuous {
    half_life: Nanos,
    reset: Option<SessionReset>,
    stream: StreamId,
    late_stream: StreamId,
    keys: Vec<Running>,
    /// The checkpoint snapshot being written, if any.
    snap: Incremental,
}

impl Continuous {
    pub fn new(half_life: Nanos, reset: Option<SessionReset>, stream: StreamId, late_stream: StreamId) -> Self {
        assert!(half_life > 0, "half-life must be positive");
        Self { half_life, reset, stream, late_stream, keys: Vec::new(), snap: Incremental::default() }
    }

    /// A snapshot is being written: write `key` as it is now, before it changes (once per snapshot).
    #[inline]
    fn presave(&mut self, key: usize) {
        if self.snap.active() {
            self.save_key(key);
        }
    }

    #[cold]
    fn save_key(&mut self, key: usize) {
        if !self.snap.claim(key) {
            return;
        }
        // A key with no trade counted is the same as a key never seen.
        let Some(r) = self.keys.get(key).filter(|r| r.count > 0) else { return };
        let r = *r;
        let e = self.snap.key_enc();
        e.key(key as KeyId);
        r.encode(e);
    }

    #[inline]
    fn on_trade(&mut self, t: &Trade, out: &mut dyn Collector) {
        let key = t.instrument as usize;
        self.presave(key);
        if key >= self.keys.len() {
            self.keys.resize_with(key + 1, Running::default);
        }
        let r = &mut self.keys[key];
        if let Some(reset) = self.reset {
            let session = (t.ts - reset.offset).div_euclid(reset.every);
            if r.count == 0 || session > r.session {
                *r = Running { session, ..Running::default() };
            } else if session < r.session {
                // A trade of a session that has already ended: it cannot change what was emitted.
                out.emit(
                    self.late_stream,
                    Record::Late(LateRow { trade: *t, watermark: i64::MIN, reason: LateReason::PreviousSession }),
                );
                return;
            }
        }
        r.add(t, self.half_life);
        let row = TickRow {
            trade: *t,
            vwap: r.vwap().unwrap_or(t.price),
            ema: r.ema_price(),
            volume: r.volume,
            count: r.count,
        };
        out.emit(self.stream, Record::Tick(row));
    }
}

impl Operator for Continuous {
    #[inline]
    fn on_event(&mut self, ev: &Event, _arrival: u64, out: &mut dyn Collector) {
        match ev {
            Event::Trade(t) => self.on_trade(t, out),
            Event::Quote(_) | Event::Level(_) => {}
        }
    }

    fn on_watermark(&mut self, _wm: Nanos, _out: &mut dyn Collector) {}

    #[inline]
    fn prefetch(&self, ev: &Event) {
        if let Some(k) = self.keys.get(ev.key(crate::event::KeyBy::Instrument) as usize) {
            crate::hint::prefetch(k);
        }
    }

    fn open_state(&self) -> usize {
        self.keys.len()
    }

    fn retained_from(&self) -> Nanos {
        // The running sums hold every trade since the start of the current session (of the whole run without
        // a session reset): a restart must read them again.
        let live = self.keys.iter().filter(|r| r.count > 0);
        match self.reset {
            Some(reset) => live.map(|r| reset.offset + r.session * reset.every).min().unwrap_or(WATERMARK_MAX),
            None => live.map(|_| WATERMARK_MIN).min().unwrap_or(WATERMARK_MAX),
        }
    }

    fn snapshot_begin(&mut self) {
        let e = self.snap.begin(self.keys.len());
        e.u8(SNAPSHOT_TAG);
        e.i64(self.half_life);
        e.bool(self.reset.is_some());
        if let Some(r) = self.reset {
            e.i64(r.every);
            e.i64(r.offset);
        }
        self.snap.keys_follow();
    }

    fn snapshot_step(&mut self, budget: usize) -> bool {
        let Some(keys) = self.snap.step(budget) else { return true };
        for k in keys {
            self.save_key(k);
        }
        false
    }

    fn snapshot_take(&mut self, spare: Vec<u8>) -> Vec<u8> {
        self.snap.take(spare)
    }

    fn restore(&mut self, d: &mut Dec<'_>, owns: &dyn Fn(KeyId) -> bool) -> Result<(), DecodeError> {
        d.reserve_keys(&mut self.keys);
        d.expect_u8("operator", SNAPSHOT_TAG)?;
        d.expect_i64("ema half-life", self.half_life)?;
        d.expect_u8("session reset", self.reset.is_some() as u8)?;
        if let Some(r) = self.reset {
            d.expect_i64("session reset interval", r.every)?;
            d.expect_i64("session reset offset", r.offset)?;
        }
        let n = d.count(4 + 56, "keys")?;
        for _ in 0..n {
            let at = d.pos();
            let key = d.key()?;
            let r = Running::decode(d)?;
            if r.count == 0 {
                return Err(DecodeError::Invalid { at, what: format!("key {key} with no trades") });
            }
            if !owns(key) {
                continue;
            }
            let idx = key as usize;
            if idx >= self.keys.len() {
                self.keys.resize_with(idx + 1, Running::default);
            }
            if self.keys[idx].count > 0 {
                return Err(DecodeError::Invalid { at, what: format!("key {key} restored twice") });
            }
            self.keys[idx] = r;
        }
        Ok(())
    }

    fn forget(&mut self, key: KeyId) {
        self.presave(key as usize);
        if let Some(r) = self.keys.get_mut(key as usize) {
            *r = Running::default();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Price, Side, TradeKind};

    fn trade(ts: Nanos, price: i64, qty: i64) -> Event {
        Event::Trade(Trade {
            ts,
            price: Price::from_units(price),
            qty,
            seq: 0,
            instrument: 0,
            side: Side::Unknown,
            kind: TradeKind::Record,
        })
    }

    fn ticks(op: &mut Continuous, evs: &[Event]) -> Vec<Record> {
        let mut out = Vec::new();
        for e in evs {
            op.on_event(e, 0, &mut out);
        }
        out.into_iter().map(|(_, r)| r).collect()
    }

    #[test]
    fn running_vwap_every_trade_and_resets_per_session() {
        let mut op = Continuous::new(1_000, Some(SessionReset { every: 100, offset: 0 }), 0, 1);
        let out = ticks(&mut op, &[trade(10, 10, 1), trade(20, 20, 1), trade(110, 30, 2), trade(50, 1, 1)]);
        let vwaps: Vec<_> = out
            .iter()
            .filter_map(|r| match r {
                Record::Tick(t) => Some(t.vwap),
                _ => None,
            })
            .collect();
        assert_eq!(vwaps, vec![Price::from_units(10), Price::from_units(15), Price::from_units(30)]);
        assert!(matches!(out[3], Record::Late(_)), "a trade of the previous session goes to the late output");
    }
}
