//! Time-weighted average price over a window: each trade's price weighted by how long it stood.
//!
//! Over a window `[start, end)` holding trades `t₀ ≤ t₁ ≤ … ≤ tₙ` (event-time order, ties by arrival):
//!
//! ```text
//! TWAP = ( Σᵢ₌₀ⁿ⁻¹ pᵢ · (tᵢ₊₁ − tᵢ)  +  pₙ · (end − tₙ) ) / (end − t₀)
//! ```
//!
//! The time before the first trade is not counted (there was no price), and of several trades at one
//! timestamp only the last to arrive stands. TWAP depends on the order of trades, so unlike the other
//! aggregates it cannot be folded as trades arrive out of order: a window keeps its `(ts, price)` points
//! sorted (an in-order trade is an append; a disordered one an insert near the end) and folds them when it
//! fires. The point vectors are recycled through a [`VecPool`], so steady state allocates nothing.

use crate::checkpoint::codec::{ordered, Dec, DecodeError, Enc};
use crate::event::{Nanos, Notional, Price};

/// The `(ts, price)` points of one window or pane, kept in event-time order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Twap {
    points: Vec<(Nanos, Price)>,
}

impl Twap {
    pub fn with_vec(mut points: Vec<(Nanos, Price)>) -> Twap {
        points.clear();
        Twap { points }
    }

    /// Gives the vector back for reuse.
    pub fn into_vec(self) -> Vec<(Nanos, Price)> {
        self.points
    }

    /// Inserts a point after every point with `ts' ≤ ts` (so equal timestamps stay in arrival order).
    #[inline]
    pub fn add(&mut self, ts: Nanos, price: Price) {
        match self.points.last() {
            Some(&(last, _)) if ts < last => {
                let i = self.points.partition_point(|&(t, _)| t <= ts);
                self.points.insert(i, (ts, price));
            }
            _ => self.points.push((ts, price)),
        }
    }

    /// Appends `other`'s points; both must be sorted and `other` must not start before `self` ends
    /// (sessions being merged in time order). Falls back to inserting when they interleave.
    pub fn append(&mut self, other: &Twap) {
        match (self.points.last(), other.points.first()) {
            (Some(&(a, _)), Some(&(b, _))) if b < a => {
                for &(t, p) in &other.points {
                    self.add(t, p);
                }
            }
            _ => self.points.extend_from_slice(&other.points),
        }
    }

    pub fn points(&self) -> &[(Nanos, Price)] {
        &self.points
    }

    /// Checkpoint form: the point count, then `(ts, price)` pairs in order.
    pub fn encode(&self, e: &mut Enc) {
        e.len_of(self.points.len());
        for &(t, p) in &self.points {
            e.i64(t);
            e.price(p);
        }
    }

    /// Reads the points into `self` (whose vector may come from a pool), checking they are in order.
    pub fn decode_into(&mut self, d: &mut Dec<'_>) -> Result<(), DecodeError> {
        let n = d.count(16, "twap points")?;
        self.points.clear();
        self.points.reserve(n);
        for _ in 0..n {
            let at = d.pos();
            let p = (d.i64("twap point ts")?, d.price("twap point price")?);
            if let Some(&(last, _)) = self.points.last() {
                ordered(at, last, p.0, "twap points")?;
            }
            self.points.push(p);
        }
        Ok(())
    }
}

/// Folds points given in event-time order (possibly from several panes) into a TWAP.
#[derive(Clone, Copy, Debug, Default)]
pub struct TwapFold {
    first: Option<Nanos>,
    last_ts: Nanos,
    last_price: Price,
    integral: Notional,
}

impl TwapFold {
    #[inline]
    pub fn push(&mut self, ts: Nanos, price: Price) {
        match self.first {
            None => self.first = Some(ts),
            Some(_) => self.integral += self.last_price.0 as Notional * (ts - self.last_ts) as Notional,
        }
        self.last_ts = ts;
        self.last_price = price;
    }

    pub fn extend(&mut self, points: &[(Nanos, Price)]) {
        for &(t, p) in points {
            self.push(t, p);
        }
    }

    /// The TWAP over `[first trade, end)`, or `None` if there were no trades.
    pub fn finish(&self, end: Nanos) -> Option<Price> {
        let first = self.first?;
        let span = end - first;
        if span <= 0 {
            return Some(self.last_price);
        }
        let integral = self.integral + self.last_price.0 as Notional * (end - self.last_ts) as Notional;
        Some(Price::from_ratio(integral, span as Notional))
    }
}

/// Recycles vectors so windows opened and closed in steady state allocate nothing.
///
/// A recycled vector is handed out with at least the capacity of the longest vector ever given back
/// (the high-water mark). Without that, which vector serves which window depends on the order windows
/// close, and a small one handed to a busy window grows again, over and over; with it, every vector grows
/// at most once per new high-water mark.
#[derive(Debug)]
pub struct VecPool<T> {
    free: Vec<Vec<T>>,
    high_water: usize,
}

impl<T> Default for VecPool<T> {
    fn default() -> Self {
        Self { free: Vec::new(), high_water: 0 }
    }
}

impl<T> VecPool<T> {
    #[inline]
    pub fn get(&mut self) -> Vec<T> {
        let mut v = self.free.pop().unwrap_or_default();
        if v.capacity() < self.high_water {
            v.reserve_exact(self.high_water);
        }
        v
    }

    #[inline]
    pub fn put(&mut self, mut v: Vec<T>) {
        if v.capacity() > 0 {
            self.high_water = self.high_water.max(v.len());
            v.clear();
            self.free.push(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(u: i64) -> Price {
        Price::from_units(u)
    }

    #[test]
    fn twap_weights_by_standing_time() {
        // window [0, 100): 10 stands 0..40, 20 stands 40..100  => (400 + 1200) / 100 = 16
        let mut t = Twap::default();
        t.add(40, p(20));
        t.add(0, p(10));
        let mut f = TwapFold::default();
        f.extend(t.points());
        assert_eq!(f.finish(100), Some(p(16)));
    }

    #[test]
    fn time_before_first_trade_is_not_counted() {
        let mut f = TwapFold::default();
        f.push(50, p(10));
        f.push(75, p(30));
        // 10 × 25 + 30 × 25 over 50
        assert_eq!(f.finish(100), Some(p(20)));
    }

    #[test]
    fn equal_timestamps_keep_arrival_order() {
        let mut t = Twap::default();
        t.add(10, p(1));
        t.add(20, p(2));
        t.add(10, p(3)); // arrives later at ts 10: stands after p(1)
        assert_eq!(t.points(), &[(10, p(1)), (10, p(3)), (20, p(2))]);
        let mut f = TwapFold::default();
        f.extend(t.points());
        // 3 × 10 + 2 × 10 over 20
        assert_eq!(f.finish(30), Some(Price(2_500_000_000)));
    }

    #[test]
    fn empty_has_no_twap() {
        assert_eq!(TwapFold::default().finish(10), None);
    }

    #[test]
    fn pool_recycles_with_the_high_water_capacity() {
        let mut pool: VecPool<u8> = VecPool::default();
        let mut a = pool.get();
        let mut b = pool.get();
        a.extend_from_slice(&[1, 2, 3]);
        b.extend_from_slice(&[0; 100]);
        pool.put(b);
        pool.put(a);
        let a = pool.get();
        assert!(a.is_empty() && a.capacity() >= 100, "the small vector comes back big enough for the busiest user");
        let b = pool.get();
        assert!(b.capacity() >= 100);
    }
}
