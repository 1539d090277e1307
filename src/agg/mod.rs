//! Aggregators: small value types with `add` and `merge`, composed by the window engine and the
//! continuous operator. Every sum is exact integer arithmetic; ratios are rounded once, at the end.

pub mod twap;

pub use twap::Twap;

use crate::checkpoint::codec::{Dec, DecodeError, Enc};
use crate::event::{Nanos, Notional, Price, Qty, Trade};

/// The aggregates every window keeps: OHLC, volume, count, Σ price×qty, first and last event time.
///
/// Open and close are the prices of the trades with the smallest and largest `(ts, arrival)`: event-time
/// order, ties broken by arrival order (Flink's semantics for an order-sensitive reduce over a window).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bar {
    pub open: Price,
    pub high: Price,
    pub low: Price,
    pub close: Price,
    pub volume: Qty,
    pub count: u64,
    pub pv: Notional,
    /// `(ts, arrival)` of the open and of the close.
    pub first: (Nanos, u64),
    pub last: (Nanos, u64),
}

impl Bar {
    /// A bar of one trade; `arrival` is the shard's arrival counter (ties between equal timestamps).
    #[inline]
    pub fn of(t: &Trade, arrival: u64) -> Bar {
        Bar {
            open: t.price,
            high: t.price,
            low: t.price,
            close: t.price,
            volume: t.qty,
            count: 1,
            pv: t.price.0 as Notional * t.qty as Notional,
            first: (t.ts, arrival),
            last: (t.ts, arrival),
        }
    }

    #[inline]
    pub fn add(&mut self, t: &Trade, arrival: u64) {
        let k = (t.ts, arrival);
        if k < self.first {
            self.first = k;
            self.open = t.price;
        }
        if k >= self.last {
            self.last = k;
            self.close = t.price;
        }
        if t.price > self.high {
            self.high = t.price;
        }
        if t.price < self.low {
            self.low = t.price;
        }
        self.volume += t.qty;
        self.count += 1;
        self.pv += t.price.0 as Notional * t.qty as Notional;
    }

    /// Merges another bar of the same key (panes of a sliding window, merged sessions).
    #[inline]
    pub fn merge(&mut self, o: &Bar) {
        if o.first < self.first {
            self.first = o.first;
            self.open = o.open;
        }
        if o.last > self.last {
            self.last = o.last;
            self.close = o.close;
        }
        self.high = self.high.max(o.high);
        self.low = self.low.min(o.low);
        self.volume += o.volume;
        self.count += o.count;
        self.pv += o.pv;
    }

    /// Σ price×qty / Σ qty, or `None` when the volume is zero.
    pub fn vwap(&self) -> Option<Price> {
        (self.volume != 0).then(|| Price::from_ratio(self.pv, self.volume as Notional))
    }

    /// Checkpoint form: 96 bytes, every field as is.
    pub fn encode(&self, e: &mut Enc) {
        for p in [self.open, self.high, self.low, self.close] {
            e.price(p);
        }
        e.i64(self.volume);
        e.u64(self.count);
        e.i128(self.pv);
        e.i64(self.first.0);
        e.u64(self.first.1);
        e.i64(self.last.0);
        e.u64(self.last.1);
    }

    pub fn decode(d: &mut Dec<'_>) -> Result<Bar, DecodeError> {
        let at = d.pos();
        let b = Bar {
            open: d.price("bar open")?,
            high: d.price("bar high")?,
            low: d.price("bar low")?,
            close: d.price("bar close")?,
            volume: d.i64("bar volume")?,
            count: d.u64("bar count")?,
            pv: d.i128("bar pv")?,
            first: (d.i64("bar first ts")?, d.u64("bar first arrival")?),
            last: (d.i64("bar last ts")?, d.u64("bar last arrival")?),
        };
        if b.count == 0 || b.low > b.high || b.first > b.last {
            return Err(DecodeError::Invalid { at, what: format!("bar is inconsistent: {b:?}") });
        }
        Ok(b)
    }
}

/// Running VWAP since the start of the trading session and an EMA of price with a half-life in event time,
/// per instrument, updated on every trade.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Running {
    /// Which session the sums belong to (`floor((ts − offset) / period)`; 0 when there is no reset).
    pub session: i64,
    pub pv: Notional,
    pub volume: Qty,
    pub count: u64,
    /// EMA of price in raw price units (a float: it is a smoothing, not a sum that must be exact).
    pub ema: f64,
    pub ema_ts: Nanos,
}

impl Running {
    /// Adds a trade. The EMA moves by `α = 1 − 2^(−Δt / half_life)` towards the trade's price, where `Δt`
    /// is the event time since the newest trade seen; a trade not newer than that one does not move it.
    #[inline]
    pub fn add(&mut self, t: &Trade, half_life: Nanos) {
        if self.count == 0 {
            self.ema = t.price.0 as f64;
            self.ema_ts = t.ts;
        } else if t.ts > self.ema_ts {
            let dt = (t.ts - self.ema_ts) as f64;
            let alpha = 1.0 - (-(dt / half_life as f64) * std::f64::consts::LN_2).exp();
            self.ema += alpha * (t.price.0 as f64 - self.ema);
            self.ema_ts = t.ts;
        }
        self.pv += t.price.0 as Notional * t.qty as Notional;
        self.volume += t.qty;
        self.count += 1;
    }

    pub fn vwap(&self) -> Option<Price> {
        (self.volume != 0).then(|| Price::from_ratio(self.pv, self.volume as Notional))
    }

    /// The EMA rounded to the nearest raw price unit.
    pub fn ema_price(&self) -> Price {
        Price(self.ema.round() as i64)
    }

    /// Checkpoint form: 56 bytes; the EMA's exact bits, so a restored one continues bit for bit.
    pub fn encode(&self, e: &mut Enc) {
        e.i64(self.session);
        e.i128(self.pv);
        e.i64(self.volume);
        e.u64(self.count);
        e.f64(self.ema);
        e.i64(self.ema_ts);
    }

    pub fn decode(d: &mut Dec<'_>) -> Result<Running, DecodeError> {
        Ok(Running {
            session: d.i64("running session")?,
            pv: d.i128("running pv")?,
            volume: d.i64("running volume")?,
            count: d.u64("running count")?,
            ema: d.f64("running ema")?,
            ema_ts: d.i64("running ema ts")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tr(ts: Nanos, price: i64, qty: Qty) -> Trade {
        Trade {
            ts,
            price: Price::from_units(price),
            qty,
            seq: 0,
            instrument: 0,
            side: Default::default(),
            kind: Default::default(),
        }
    }

    #[test]
    fn bar_open_close_by_time_then_arrival() {
        let mut b = Bar::of(&tr(10, 5, 1), 0);
        b.add(&tr(5, 7, 1), 1); // earlier in event time: new open
        b.add(&tr(10, 9, 1), 2); // same ts as the last, later arrival: new close
        b.add(&tr(5, 1, 1), 3); // same ts as the open, later arrival: not the open
        assert_eq!(b.open, Price::from_units(7));
        assert_eq!(b.close, Price::from_units(9));
        assert_eq!(b.low, Price::from_units(1));
        assert_eq!(b.high, Price::from_units(9));
        assert_eq!(b.count, 4);
        assert_eq!(b.volume, 4);
    }

    #[test]
    fn merge_equals_adding_everything() {
        let trades = [tr(3, 10, 2), tr(1, 12, 3), tr(3, 11, 1), tr(2, 9, 5), tr(1, 8, 1)];
        let mut all = Bar::of(&trades[0], 0);
        for (i, t) in trades.iter().enumerate().skip(1) {
            all.add(t, i as u64);
        }
        let mut a = Bar::of(&trades[0], 0);
        a.add(&trades[2], 2);
        let mut b = Bar::of(&trades[1], 1);
        b.add(&trades[3], 3);
        b.add(&trades[4], 4);
        let mut m = b;
        m.merge(&a);
        assert_eq!(m, all);
    }

    #[test]
    fn vwap_is_exact_ratio() {
        let mut b = Bar::of(&tr(0, 10, 1), 0);
        b.add(&tr(1, 20, 2), 1);
        // (10 + 40) / 3 = 16.666666666…
        assert_eq!(b.vwap(), Some(Price(16_666_666_667)));
    }

    #[test]
    fn ema_half_life() {
        let mut r = Running::default();
        r.add(&tr(0, 100, 1), 1_000);
        r.add(&tr(1_000, 200, 1), 1_000); // one half-life later: half way
        assert_eq!(r.ema_price(), Price::from_units(150));
        r.add(&tr(500, 0, 1), 1_000); // older: does not move it
        assert_eq!(r.ema_price(), Price::from_units(150));
        assert_eq!(r.count, 3);
    }
}
