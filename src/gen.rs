//! The synthetic trade generator behind `ticklane gen` and the in-process `synthetic` source.
//!
//! Deterministic for a seed. Event time follows a clock (given by the caller: a fixed step per event, or
//! the wall clock when paced); on top of it:
//! * with probability `disorder_fraction` an event is displaced up to `disorder` behind the clock, so a
//!   watermark bound of `disorder` covers it (it is never more than `disorder` behind the newest event);
//! * with probability `late_fraction` it is 5–120 s behind the newest event (very late: for the late
//!   side output);
//! * instruments are drawn with Zipf popularity; each has its own price random walk (~5 bp steps, ticks of
//!   0.0001) and quantities are 1–1000 skewed to small.

use crate::checkpoint::codec::{Dec, DecodeError, Enc};
use crate::event::{Nanos, Price, Qty, Side};

/// One generated trade (instrument as an index `0..instruments`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GenTrade {
    pub ts: Nanos,
    pub instrument: u32,
    pub price: Price,
    pub qty: Qty,
    pub side: Side,
}

/// Generator parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct GenParams {
    pub instruments: u32,
    pub disorder: Nanos,
    pub disorder_fraction: f64,
    pub late_fraction: f64,
    pub zipf: f64,
    pub seed: u64,
    /// Timestamps are floored to a multiple of this (the output unit), in ns.
    pub granularity: Nanos,
}

/// The generator state.
pub struct TradeGen {
    p: GenParams,
    rng: fastrand::Rng,
    popularity: Alias,
    /// Current price per instrument, in ticks of 0.0001.
    ticks: Vec<i64>,
    max_seen: Nanos,
    first: Nanos,
}

const TICK: i64 = Price::SCALE / 10_000;
const LATE_MIN: Nanos = 5_000_000_000;
const LATE_MAX: Nanos = 120_000_000_000;

impl TradeGen {
    pub fn new(p: GenParams) -> Self {
        let mut rng = fastrand::Rng::with_seed(p.seed);
        let k = p.instruments.max(1) as usize;
        let w: Vec<f64> = (0..k).map(|i| 1.0 / ((i + 1) as f64).powf(p.zipf)).collect();
        let popularity = Alias::new(&w);
        let ticks = (0..k).map(|_| 100_000 + rng.i64(0..4_900_000)).collect();
        Self { p, rng, popularity, ticks, max_seen: Nanos::MIN, first: Nanos::MIN }
    }

    /// The symbol of instrument `i`.
    pub fn symbol(i: u32) -> String {
        let mut s = String::new();
        Self::write_symbol(i, &mut s);
        s
    }

    /// [`TradeGen::symbol`] into a buffer of the caller's.
    pub fn write_symbol(i: u32, out: &mut String) {
        use std::fmt::Write;
        let _ = write!(out, "SYM{i:04}");
    }

    /// Checkpoint form: the random generator's state, every instrument's price and the two event times it
    /// remembers — enough to go on with exactly the trades it would have made next.
    pub fn encode(&self, e: &mut Enc) {
        e.u64(self.rng.get_seed());
        e.len_of(self.ticks.len());
        for &t in &self.ticks {
            e.i64(t);
        }
        e.i64(self.max_seen);
        e.i64(self.first);
    }

    /// Restores what [`TradeGen::encode`] wrote for a generator of the same parameters.
    pub fn decode_into(&mut self, d: &mut Dec<'_>) -> Result<(), DecodeError> {
        let seed = d.u64("generator state")?;
        let n = d.count(8, "instrument prices")?;
        if n != self.ticks.len() {
            return Err(DecodeError::Mismatch {
                what: "synthetic instruments",
                expected: self.ticks.len().to_string(),
                found: n.to_string(),
            });
        }
        for t in &mut self.ticks {
            let at = d.pos();
            *t = d.i64("instrument price")?;
            // Prices are positive ticks whose value in raw units fits an i64.
            if !(1..=i64::MAX / TICK).contains(t) {
                return Err(DecodeError::Invalid { at, what: format!("instrument price of {t} ticks") });
            }
        }
        self.max_seen = d.i64("largest event time")?;
        self.first = d.i64("first event time")?;
        self.rng.seed(seed);
        Ok(())
    }

    /// The next trade, its event time derived from `clock` (ns).
    #[inline]
    pub fn next(&mut self, clock: Nanos) -> GenTrade {
        if self.first == Nanos::MIN {
            self.first = clock;
        }
        let u = self.rng.f64();
        let mut ts = clock;
        if u < self.p.late_fraction && self.max_seen != Nanos::MIN && self.max_seen - self.first >= LATE_MIN {
            ts = (self.max_seen - self.rng.i64(LATE_MIN..=LATE_MAX)).max(self.first);
        } else if u < self.p.late_fraction + self.p.disorder_fraction && self.p.disorder > 0 {
            // Behind the clock by up to `disorder`, and never further behind the newest event than that.
            let back = self.rng.i64(0..=self.p.disorder);
            let floor = self.max_seen.max(clock).saturating_sub(self.p.disorder);
            ts = (clock - back).max(floor).max(self.first);
        }
        let g = self.p.granularity.max(1);
        ts -= ts.rem_euclid(g);
        if ts > self.max_seen {
            self.max_seen = ts;
        }
        let s = self.popularity.sample(&mut self.rng);
        let t = &mut self.ticks[s];
        let vol = (*t / 2000).max(1);
        *t = (*t + self.rng.i64(-vol..=vol)).max(1);
        let r = self.rng.f64();
        let qty = 1 + (r * r * r * 999.0) as i64;
        let side = if self.rng.bool() { Side::Buy } else { Side::Sell };
        GenTrade { ts, instrument: s as u32, price: Price(*t * TICK), qty, side }
    }
}

/// Walker's alias method (Vose's construction): draws index i with probability `w[i] / Σw` in O(1) — one
/// random number, one table lookup. A binary search over the cumulative weights was two thirds of the
/// generator's time (a chain of dependent loads per draw).
struct Alias {
    /// Per column: the probability of keeping the column's own index, and the alias otherwise.
    prob: Vec<f64>,
    alias: Vec<u32>,
}

impl Alias {
    fn new(w: &[f64]) -> Alias {
        let n = w.len();
        let total: f64 = w.iter().sum();
        let mut scaled: Vec<f64> = w.iter().map(|x| x * n as f64 / total).collect();
        let (mut small, mut large): (Vec<usize>, Vec<usize>) = (0..n).partition(|&i| scaled[i] < 1.0);
        let mut prob = vec![1.0; n];
        let mut alias: Vec<u32> = (0..n as u32).collect();
        while let (Some(s), Some(&l)) = (small.pop(), large.last()) {
            prob[s] = scaled[s];
            alias[s] = l as u32;
            scaled[l] -= 1.0 - scaled[s];
            if scaled[l] < 1.0 {
                large.pop();
                small.push(l);
            }
        }
        // Whatever is left is 1 up to rounding.
        Alias { prob, alias }
    }

    #[inline]
    fn sample(&self, rng: &mut fastrand::Rng) -> usize {
        let x = rng.f64() * self.prob.len() as f64;
        let i = (x as usize).min(self.prob.len() - 1);
        if x - (i as f64) < self.prob[i] {
            i
        } else {
            self.alias[i] as usize
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(seed: u64) -> GenParams {
        GenParams {
            instruments: 50,
            disorder: 2_000_000_000,
            disorder_fraction: 0.2,
            late_fraction: 0.01,
            zipf: 1.0,
            seed,
            granularity: 1_000_000,
        }
    }

    #[test]
    fn alias_draws_follow_the_weights() {
        let w = [1.0, 1.0 / 2.0, 1.0 / 3.0, 1.0 / 4.0, 0.0];
        let a = Alias::new(&w);
        let mut rng = fastrand::Rng::with_seed(3);
        let mut counts = [0u32; 5];
        let n = 400_000;
        for _ in 0..n {
            counts[a.sample(&mut rng)] += 1;
        }
        let total: f64 = w.iter().sum();
        for (i, &c) in counts.iter().enumerate() {
            let expected = w[i] / total * n as f64;
            assert!(
                (c as f64 - expected).abs() <= 4.0 * expected.sqrt() + 1.0,
                "index {i}: {c} draws, expected {expected:.0}"
            );
        }
    }

    #[test]
    fn deterministic_for_a_seed() {
        let (mut a, mut b) = (TradeGen::new(params(7)), TradeGen::new(params(7)));
        for i in 0..1000 {
            assert_eq!(a.next(i * 1_000_000), b.next(i * 1_000_000));
        }
    }

    #[test]
    fn disorder_is_bounded_except_for_the_very_late() {
        let mut g = TradeGen::new(params(1));
        let mut max = i64::MIN;
        let (mut late, mut disordered) = (0, 0);
        for i in 0..200_000i64 {
            let t = g.next(1_000_000_000_000 + i * 500_000);
            assert_eq!(t.ts % 1_000_000, 0, "floored to the granularity");
            assert!(t.qty >= 1 && t.qty <= 1000 && t.price.0 > 0);
            if max != i64::MIN && t.ts < max {
                if max - t.ts > 2_000_000_000 {
                    assert!(max - t.ts >= LATE_MIN - 1_000_000);
                    late += 1;
                } else {
                    disordered += 1;
                }
            }
            max = max.max(t.ts);
        }
        assert!(late > 1000 && disordered > 10_000, "{late} {disordered}");
    }
}
