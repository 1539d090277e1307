//! Top-of-book metrics of one instrument in fixed point: best levels, spread, mid, microprice and the
//! order-book imbalance over the top levels. What an empty side makes undefined is `None`, never 0.

use super::levels::{self, Levels};
use super::{BookSide, Level};
use crate::event::{Price, Qty};

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
        let best = |l: &Levels, side| {
            l.best().map(|b| Level { price: levels::price(side, b.key), shares: b.shares, orders: b.orders })
        };
        let (bid, ask) = (best(bids, BookSide::Bid), best(asks, BookSide::Ask));
        let sum = |l: &Levels| {
            let s = l.as_slice();
            s[s.len().saturating_sub(depth)..].iter().map(|l| l.shares).sum::<Qty>()
        };
        let (bid_depth, ask_depth) = (sum(bids), sum(asks));
        let (mut spread, mut mid, mut microprice) = (None, None, None);
        if let (Some(b), Some(a)) = (bid, ask) {
            spread = Some(Price(a.price.0.wrapping_sub(b.price.0)));
            mid = Some(Price(half(b.price.0 as i128 + a.price.0 as i128)));
            let num = b.price.0 as i128 * a.shares as i128 + a.price.0 as i128 * b.shares as i128;
            microprice = Some(Price(ratio(num, b.shares as i128 + a.shares as i128)));
        }
        Metrics { bid, ask, spread, mid, microprice, bid_depth, ask_depth, imbalance: imbalance(bid_depth, ask_depth) }
    }
}

/// `(b − a) / (b + a)` × [`IMBALANCE_SCALE`], rounded half away from zero; `None` when `b + a` is 0.
pub(crate) fn imbalance(b: Qty, a: Qty) -> Option<i64> {
    let den = b as i128 + a as i128;
    (den > 0).then(|| ratio((b as i128 - a as i128) * IMBALANCE_SCALE as i128, den))
}

/// `sum / 2` rounded half away from zero, as [`Price::from_ratio`]`(sum, 2)` without a division.
#[inline]
fn half(sum: i128) -> i64 {
    (if sum >= 0 { (sum + 1) >> 1 } else { -((1 - sum) >> 1) }) as i64
}

/// [`Price::from_ratio`]'s rounding (`den` > 0, half away from zero) in 64-bit arithmetic when both
/// operands fit, which they do for every equity price and size: a 128-bit division is a library call
/// several times slower, and three of them per update would dominate the metrics.
#[inline]
fn ratio(num: i128, den: i128) -> i64 {
    match (i64::try_from(num), i64::try_from(den)) {
        // `den` ≤ 2⁶² keeps `2 × |r|` from overflowing.
        (Ok(n), Ok(d)) if d <= 1 << 62 && n != i64::MIN => {
            let (q, r) = (n / d, n % d);
            q + if 2 * r.abs() >= d { n.signum() } else { 0 }
        }
        _ => Price::from_ratio(num, den).0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_ratio_rounds_as_from_ratio() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for i in 0..200_000 {
            let shift = (i % 60) as u32;
            let num = (next() as i64 >> shift) as i128;
            let den = ((next() >> (shift + 2)) as i128).max(1);
            assert_eq!(ratio(num, den), Price::from_ratio(num, den).0, "{num} / {den}");
        }
        for (n, d) in
            [(5, 2), (-5, 2), (i64::MAX as i128, 1), (i64::MIN as i128, 1), (i64::MIN as i128, 3), (1 << 100, 1 << 40)]
        {
            assert_eq!(ratio(n, d), Price::from_ratio(n, d).0, "{n} / {d}");
        }
        for sum in
            [-5i128, -4, -3, -1, 0, 1, 3, 4, 5, 2 * i64::MAX as i128, 2 * i64::MIN as i128, 2 * i64::MIN as i128 + 1]
        {
            assert_eq!(half(sum), Price::from_ratio(sum, 2).0, "{sum} / 2");
        }
    }
}
