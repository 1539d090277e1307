//! A synthetic per-order feed for benchmarks and tests: many instruments of Zipf popularity, orders added
//! a few ticks from the touch, executions at the front of the best level, deletes, partial cancels and
//! replaces, with the number of live orders held near a target.
//!
//! Deterministic for a seed. The generator keeps a [`Books`] of its own to know what rests where, so every
//! message it makes applies cleanly (no unknown or duplicate references, no over-execution).

use super::{BookSide, Books};
use crate::event::{KeyId, Price, Qty};
use rustc_hash::FxHashMap;

/// One order message, in the terms of [`Books`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Msg {
    Add { reference: u64, instrument: KeyId, side: BookSide, price: Price, shares: Qty },
    Execute { reference: u64, shares: Qty },
    ExecuteAt { reference: u64, shares: Qty, price: Price },
    Cancel { reference: u64, shares: Qty },
    Delete { reference: u64 },
    Replace { old: u64, new: u64, price: Price, shares: Qty },
}

impl Msg {
    /// Prefetch step `step` (0: furthest ahead, 2: just before applying) of [`Books`]' three for this
    /// message (see [`Books::prefetch_reference`]).
    #[inline]
    pub fn prefetch(&self, b: &Books, step: u8) {
        match (*self, step) {
            (Msg::Add { instrument, .. }, 0) => b.prefetch_book(instrument),
            (Msg::Add { instrument, side, .. }, 1) => b.prefetch_level(instrument, side),
            (Msg::Add { .. }, _) => {}
            (_, 0) => b.prefetch_reference(self.reference()),
            (_, 1) => b.prefetch_order(self.reference()),
            _ => b.prefetch_queue(self.reference()),
        }
    }

    /// The order the message is about (the old one of a replace).
    pub fn reference(&self) -> u64 {
        match *self {
            Msg::Add { reference, .. }
            | Msg::Execute { reference, .. }
            | Msg::ExecuteAt { reference, .. }
            | Msg::Cancel { reference, .. }
            | Msg::Delete { reference }
            | Msg::Replace { old: reference, .. } => reference,
        }
    }

    /// Applies the message; an execution's fill is dropped (its update is returned).
    #[inline]
    pub fn apply(&self, b: &mut Books) -> Result<super::Update, super::BookError> {
        match *self {
            Msg::Add { reference, instrument, side, price, shares } => {
                b.add(reference, instrument, side, price, shares)
            }
            Msg::Execute { reference, shares } => b.execute(reference, shares).map(|x| x.update),
            Msg::ExecuteAt { reference, shares, price } => b.execute_at(reference, shares, price).map(|x| x.update),
            Msg::Cancel { reference, shares } => b.cancel(reference, shares),
            Msg::Delete { reference } => b.delete(reference),
            Msg::Replace { old, new, price, shares } => b.replace(old, new, price, shares),
        }
    }
}

/// What the flow looks like. The mix is in percent of messages once the target is reached; adds and
/// removals are balanced around it by turning the `spare` share into adds below the target and into
/// deletes above it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowParams {
    pub instruments: u32,
    /// Live orders the flow keeps near.
    pub live: usize,
    pub seed: u64,
    /// Percent of deletes, cancels and replaces aimed at one of the [`RECENT`] orders added last (when it
    /// is still live); the others pick any live order. Most orders on a venue are cancelled soon after
    /// they are added, so most messages touch recent orders.
    pub recent: u32,
    pub add: u32,
    pub delete: u32,
    pub cancel: u32,
    pub execute: u32,
    pub execute_at: u32,
    pub replace: u32,
}

impl Default for FlowParams {
    /// 40 % adds, 35 % deletes and cancels, 10 % executions, 10 % replaces, 5 % spare.
    fn default() -> Self {
        Self {
            instruments: 4000,
            live: 500_000,
            seed: 42,
            recent: 95,
            add: 40,
            delete: 30,
            cancel: 5,
            execute: 8,
            execute_at: 2,
            replace: 10,
        }
    }
}

/// How many of the latest adds [`FlowParams::recent`] picks among.
pub const RECENT: usize = 4096;

/// A price tick of 0.01 (US equities above $1).
const TICK: i64 = Price::SCALE / 100;

/// The generator.
pub struct OrderFlow {
    p: FlowParams,
    rng: fastrand::Rng,
    /// Cumulative Zipf weights of the instruments.
    cumulative: Vec<f64>,
    /// Mid price per instrument, in ticks.
    mid: Vec<i64>,
    book: Books,
    /// Live references, and where each is in `live`.
    live: Vec<u64>,
    at: FxHashMap<u64, usize>,
    /// The latest adds, a ring.
    recent: Vec<u64>,
    next_ref: u64,
}

impl OrderFlow {
    pub fn new(p: FlowParams) -> Self {
        let mut rng = fastrand::Rng::with_seed(p.seed);
        let k = p.instruments.max(1);
        let mut total = 0.0;
        let cumulative = (0..k)
            .map(|i| {
                total += 1.0 / (i + 1) as f64;
                total
            })
            .collect();
        let mid = (0..k).map(|_| rng.i64(1_000..50_000)).collect();
        let mut book = Books::new(1, k);
        book.reserve(p.live + p.live / 4, 64);
        Self {
            p,
            rng,
            cumulative,
            mid,
            book,
            live: Vec::new(),
            at: FxHashMap::default(),
            recent: vec![0; RECENT],
            next_ref: 1,
        }
    }

    /// Live orders in the generator's own book.
    pub fn live(&self) -> usize {
        self.live.len()
    }

    /// Adds until the target of live orders is reached.
    pub fn fill(&mut self, out: &mut Vec<Msg>) {
        while self.live.len() < self.p.live {
            let m = self.add();
            self.apply(&m);
            out.push(m);
        }
    }

    /// The next message.
    pub fn next_msg(&mut self) -> Msg {
        let p = &self.p;
        let cut = [p.add, p.delete, p.cancel, p.execute, p.execute_at, p.replace];
        let mut x = self.rng.u32(0..100);
        let mut kind = cut.len();
        for (i, c) in cut.iter().enumerate() {
            if x < *c {
                kind = i;
                break;
            }
            x -= c;
        }
        if self.live.is_empty() {
            kind = 0;
        }
        let m = match kind {
            0 => self.add(),
            1 => self.delete(),
            2 => self.cancel(),
            3 | 4 => self.execute(kind == 4),
            5 => self.replace(),
            _ if self.live.len() < self.p.live => self.add(),
            _ => self.delete(),
        };
        self.apply(&m);
        m
    }

    fn apply(&mut self, m: &Msg) {
        if m.apply(&mut self.book).is_err() {
            debug_assert!(false, "generated message refused: {m:?}");
        }
        let gone = |r: u64, s: &mut Self| {
            if s.book.order(r).is_none() {
                if let Some(i) = s.at.remove(&r) {
                    s.live.swap_remove(i);
                    if let Some(&moved) = s.live.get(i) {
                        s.at.insert(moved, i);
                    }
                }
            }
        };
        match *m {
            Msg::Add { reference, .. } => {
                self.at.insert(reference, self.live.len());
                self.live.push(reference);
                self.recent[reference as usize % RECENT] = reference;
            }
            Msg::Execute { reference, .. }
            | Msg::ExecuteAt { reference, .. }
            | Msg::Cancel { reference, .. }
            | Msg::Delete { reference } => gone(reference, self),
            Msg::Replace { old, new, .. } => {
                if let Some(i) = self.at.remove(&old) {
                    self.live[i] = new;
                    self.at.insert(new, i);
                    self.recent[new as usize % RECENT] = new;
                }
            }
        }
    }

    fn instrument(&mut self) -> KeyId {
        let total = self.cumulative.last().copied().unwrap_or(1.0);
        let u = self.rng.f64() * total;
        self.cumulative.partition_point(|&c| c <= u).min(self.cumulative.len() - 1) as KeyId
    }

    fn shares(&mut self) -> Qty {
        if self.rng.u32(0..10) == 0 {
            self.rng.i64(1..100)
        } else {
            100 * self.rng.i64(1..=10)
        }
    }

    /// A price a few ticks from the touch (geometric: half of them at the best or one better), never
    /// through the other side.
    fn price(&mut self, i: KeyId, side: BookSide) -> Price {
        let mut away = 0;
        while away < 50 && self.rng.u32(0..100) < 55 {
            away += 1;
        }
        let mid = self.mid[i as usize];
        let ticks = match side {
            BookSide::Bid => {
                let t = mid - 1 - away;
                self.book.best(i, BookSide::Ask).map_or(t, |a| t.min(a.price.0 / TICK - 1))
            }
            BookSide::Ask => {
                let t = mid + 1 + away;
                self.book.best(i, BookSide::Bid).map_or(t, |b| t.max(b.price.0 / TICK + 1))
            }
        };
        Price(ticks.max(1) * TICK)
    }

    fn side(&mut self) -> BookSide {
        if self.rng.bool() {
            BookSide::Bid
        } else {
            BookSide::Ask
        }
    }

    fn add(&mut self) -> Msg {
        let (i, side) = (self.instrument(), self.side());
        let price = self.price(i, side);
        let shares = self.shares();
        let reference = self.next_ref;
        self.next_ref += 1;
        Msg::Add { reference, instrument: i, side, price, shares }
    }

    fn random_live(&mut self) -> u64 {
        if self.rng.u32(0..100) < self.p.recent {
            let r = self.recent[self.rng.usize(0..RECENT)];
            if self.at.contains_key(&r) {
                return r;
            }
        }
        self.live[self.rng.usize(0..self.live.len())]
    }

    fn delete(&mut self) -> Msg {
        Msg::Delete { reference: self.random_live() }
    }

    fn cancel(&mut self) -> Msg {
        let reference = self.random_live();
        let had = self.book.order(reference).map_or(1, |o| o.shares);
        if had < 2 {
            return Msg::Delete { reference };
        }
        Msg::Cancel { reference, shares: self.rng.i64(1..had) }
    }

    /// Against the front order of the best level of a popular instrument; the mid follows the trades.
    fn execute(&mut self, elsewhere: bool) -> Msg {
        let (i, side) = (self.instrument(), self.side());
        let Some(best) = self.book.best(i, side) else { return self.delete() };
        let Some(front) = self.book.queue(i, side, best.price).next() else { return self.delete() };
        let shares = if self.rng.bool() { front.shares } else { self.rng.i64(1..=front.shares) };
        if self.rng.u32(0..4) == 0 {
            let m = &mut self.mid[i as usize];
            *m = match side {
                BookSide::Bid => (*m - 1).max(2),
                BookSide::Ask => *m + 1,
            };
        }
        if elsewhere {
            Msg::ExecuteAt { reference: front.reference, shares, price: Price(best.price.0 + TICK) }
        } else {
            Msg::Execute { reference: front.reference, shares }
        }
    }

    fn replace(&mut self) -> Msg {
        let old = self.random_live();
        let Some(o) = self.book.order(old) else { return self.delete() };
        let price = self.price(o.instrument, o.side);
        let shares = self.shares();
        let new = self.next_ref;
        self.next_ref += 1;
        Msg::Replace { old, new, price, shares }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_applies_cleanly_and_holds_the_target() {
        let p = FlowParams { instruments: 50, live: 2_000, ..FlowParams::default() };
        let mut f = OrderFlow::new(p.clone());
        let mut msgs = Vec::new();
        f.fill(&mut msgs);
        assert_eq!(msgs.len(), 2_000);
        for _ in 0..50_000 {
            msgs.push(f.next_msg());
        }
        let mut b = Books::new(5, p.instruments);
        for m in &msgs {
            m.apply(&mut b).unwrap_or_else(|e| panic!("{m:?}: {e}"));
        }
        let c = *b.counters();
        assert_eq!((c.rejected(), c.over_executions), (0, 0));
        assert_eq!(b.len(), f.live());
        assert!(b.len() > 1_500 && b.len() < 2_500, "{} live", b.len());
        let adds = c.adds as f64 / 52_000.0;
        assert!(adds > 0.4 && adds < 0.5, "adds {adds}");
        assert!(c.executes > 3_000 && c.executes_at > 500 && c.replaces > 4_000 && c.cancels > 2_000);
        assert_eq!(c.crossed, 0, "orders are never placed through the other side");
    }
}
