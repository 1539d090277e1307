//! Top-of-book metrics of one instrument in fixed point: best levels, spread, mid, microprice and the
//! order-book imbalance over the top levels. What an empty side makes undefined is `None`, never 0.

use super::levels::{self, Levels};
use super::{BookSide, Level};
use crate::event::{KeyId, Nanos, Price, Qty, Quote};

/// Units of [`Metrics::imbalance`] per 1.0: the imbalance is an `i64` in [−10⁹, 10⁹].
pub const IMBALANCE_SCALE: i64 = 1_000_000_000;

/// Derived values of one instrument's book at one moment (docs/book.md, "Metrics").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Metrics {
    /// Best bid level (`None`: no bids).
    pub bid: Option<Level>,
    /// Best ask level (`None`: no asks).
    pub ask: Option<Level>,
    /// `ask − bid` (0 when locked, negative when crossed); `None` unless both sides have a level.
    pub spread: Option<Price>,
    /// `(bid + ask) / 2`, rounded half away from zero to the raw unit (exact for prices on a tick of
    /// 2 × 10⁻⁹ or coarser, so for every equity price).
    pub mid: Option<Price>,
    /// `(bid × askShares + ask × bidShares) / (bidShares + askShares)` over the best levels, rounded with
    /// [`Price::from_ratio`].
    pub microprice: Option<Price>,
    /// Σ shares of the top `depth` bid levels (0: no bids).
    pub bid_depth: Qty,
    /// Σ shares of the top `depth` ask levels (0: no asks).
    pub ask_depth: Qty,
    /// `(bid_depth − ask_depth) / (bid_depth + ask_depth)` × [`IMBALANCE_SCALE`], rounded half away from
    /// zero; `None` when both sums are 0. +10⁹: asks empty, −10⁹: bids empty.
    pub imbalance: Option<i64>,
}

impl Metrics {
    /// An instrument with no levels.
    pub const EMPTY: Metrics = Metrics {
        bid: None,
        ask: None,
        spread: None,
        mid: None,
        microprice: None,
        bid_depth: 0,
        ask_depth: 0,
        imbalance: None,
    };

    pub(crate) fn compute(bids: &Levels, asks: &Levels, depth: usize) -> Metrics {
        let (bid, ask, bid_depth, ask_depth) = top(bids, asks, depth);
        let (mut spread, mut mid, mut microprice) = (None, None, None);
        if let (Some(b), Some(a)) = (bid, ask) {
            spread = Some(Price(a.price.0.wrapping_sub(b.price.0)));
            mid = Some(Price::mid(b.price, a.price));
            microprice = Some(Price::microprice(b.price, b.shares, a.price, a.shares));
        }
        Metrics { bid, ask, spread, mid, microprice, bid_depth, ask_depth, imbalance: imbalance(bid_depth, ask_depth) }
    }
}

/// What a top-of-book quote holds: the best levels and the imbalance, as in [`Metrics`], without the
/// spread, mid and microprice (whose divisions a caller that does not publish them need not pay for).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BookQuote {
    pub bid: Option<Level>,
    pub ask: Option<Level>,
    /// [`Metrics::imbalance`].
    pub imbalance: Option<i64>,
}

impl BookQuote {
    pub(crate) fn compute(bids: &Levels, asks: &Levels, depth: usize) -> BookQuote {
        let (bid, ask, bid_depth, ask_depth) = top(bids, asks, depth);
        BookQuote { bid, ask, imbalance: imbalance(bid_depth, ask_depth) }
    }

    /// As the event the pipeline carries: a side with no order has size 0, a size beyond `u32` is clamped.
    pub fn to_event(&self, instrument: KeyId, ts: Nanos) -> Quote {
        let size = |l: Option<Level>| l.map_or(0, |l| l.shares.clamp(0, u32::MAX as i64) as u32);
        Quote {
            ts,
            bid: self.bid.map_or(Price(0), |l| l.price),
            ask: self.ask.map_or(Price(0), |l| l.price),
            bid_qty: size(self.bid),
            ask_qty: size(self.ask),
            instrument,
            imbalance: self.imbalance.unwrap_or(0) as i32,
        }
    }
}

/// The last quote sent per instrument, so that only changes are sent: a book change that leaves the best
/// levels and the imbalance as they were is no quote.
#[derive(Debug, Default)]
pub struct LastQuotes(pub(super) Vec<Quote>);

impl LastQuotes {
    /// `q` if it differs from the last one of its instrument (it then becomes the last), else `None`.
    #[inline]
    pub fn changed(&mut self, q: Quote) -> Option<Quote> {
        let i = q.instrument as usize;
        if i >= self.0.len() {
            // New instruments only (their count is bounded): no slot yet means no quote yet.
            self.0.resize(i + 1, Quote { instrument: KeyId::MAX, ..Quote::default() });
        }
        let last = &mut self.0[i];
        if last.instrument == q.instrument
            && (last.bid, last.ask, last.bid_qty, last.ask_qty, last.imbalance)
                == (q.bid, q.ask, q.bid_qty, q.ask_qty, q.imbalance)
        {
            return None;
        }
        *last = q;
        Some(q)
    }
}

/// The best level of each side and the shares of the top `depth` levels of each.
#[inline]
fn top(bids: &Levels, asks: &Levels, depth: usize) -> (Option<Level>, Option<Level>, Qty, Qty) {
    let best = |l: &Levels, side| {
        l.best().map(|b| Level { price: levels::price(side, b.key), shares: b.shares, orders: b.orders })
    };
    let sum = |l: &Levels| {
        let s = l.as_slice();
        s[s.len().saturating_sub(depth)..].iter().map(|l| l.shares).sum::<Qty>()
    };
    (best(bids, BookSide::Bid), best(asks, BookSide::Ask), sum(bids), sum(asks))
}

/// `(b − a) / (b + a)` × [`IMBALANCE_SCALE`], rounded half away from zero; `None` when `b + a` is 0.
pub(crate) fn imbalance(b: Qty, a: Qty) -> Option<i64> {
    let den = b as i128 + a as i128;
    (den > 0).then(|| Price::from_ratio((b as i128 - a as i128) * IMBALANCE_SCALE as i128, den).0)
}
