//! The order books against a plain reference written here (a `BTreeMap` of price → `Vec` of orders per
//! side, linear scans), driven by generated sequences of valid and invalid operations: after every
//! operation the result, every queue, every level, the top of book, every metric and the counters must
//! agree. Partway through each sequence the books go through a snapshot and a restore and carry on.

use proptest::prelude::*;
use std::collections::BTreeMap;
use ticklane::book::{
    BookCounters, BookError, BookQuote, BookSide, Books, Crossing, Execution, Fill, Level, LevelChange, Metrics, Op,
    Update, IMBALANCE_SCALE, MAX_SHARES,
};
use ticklane::checkpoint::codec::{Dec, Enc};
use ticklane::event::{KeyId, Price, Qty};

/// Instruments the books accept; operations name one more, to be refused.
const INSTRUMENTS: u32 = 3;
const TICK: i64 = 100 * 100_000;
const BASE: i64 = 100 * Price::SCALE;

#[derive(Clone, Debug, Default)]
struct Side {
    /// Price → orders (reference, shares) in time priority.
    levels: BTreeMap<Price, Vec<(u64, Qty)>>,
}

#[derive(Clone, Debug, Default)]
struct RefBook {
    bids: Side,
    asks: Side,
}

impl RefBook {
    fn side(&mut self, s: BookSide) -> &mut Side {
        match s {
            BookSide::Bid => &mut self.bids,
            BookSide::Ask => &mut self.asks,
        }
    }
    fn side_ref(&self, s: BookSide) -> &Side {
        match s {
            BookSide::Bid => &self.bids,
            BookSide::Ask => &self.asks,
        }
    }
    /// Levels best first.
    fn levels(&self, s: BookSide) -> Vec<Level> {
        let lv = |(p, q): (&Price, &Vec<(u64, Qty)>)| Level {
            price: *p,
            shares: q.iter().map(|o| o.1).sum(),
            orders: q.len() as u32,
        };
        match s {
            BookSide::Bid => self.bids.levels.iter().rev().map(lv).collect(),
            BookSide::Ask => self.asks.levels.iter().map(lv).collect(),
        }
    }
}

#[derive(Clone, Debug)]
struct Model {
    depth: usize,
    books: Vec<RefBook>,
    counters: BookCounters,
    /// Per instrument, the crossing its last update left it in.
    crossing: BTreeMap<KeyId, Crossing>,
}

impl Model {
    fn find(&self, r: u64) -> Option<(KeyId, BookSide, Price, usize)> {
        for (i, b) in self.books.iter().enumerate() {
            for s in [BookSide::Bid, BookSide::Ask] {
                for (p, q) in &b.side_ref(s).levels {
                    if let Some(k) = q.iter().position(|o| o.0 == r) {
                        return Some((i as KeyId, s, *p, k));
                    }
                }
            }
        }
        None
    }

    fn live(&self) -> Vec<u64> {
        let mut v = Vec::new();
        for b in &self.books {
            for s in [&b.bids, &b.asks] {
                for q in s.levels.values() {
                    v.extend(q.iter().map(|o| o.0));
                }
            }
        }
        v.sort_unstable();
        v
    }

    fn level(&self, i: KeyId, s: BookSide, p: Price) -> LevelChange {
        let q = self.books[i as usize].side_ref(s).levels.get(&p);
        LevelChange {
            side: s,
            price: p,
            shares: q.map_or(0, |q| q.iter().map(|o| o.1).sum()),
            orders: q.map_or(0, |q| q.len() as u32),
        }
    }

    fn update(&mut self, i: KeyId, s: BookSide, levels: &[LevelChange], over: Option<BookError>) -> Expected {
        let b = &self.books[i as usize];
        let (bid, ask) = (b.levels(BookSide::Bid).first().copied(), b.levels(BookSide::Ask).first().copied());
        let (now, crossed) = match (bid, ask) {
            (Some(bid), Some(ask)) if bid.price >= ask.price => (
                if bid.price == ask.price { Crossing::Locked } else { Crossing::Crossed },
                Some(BookError::Crossed { instrument: i, bid: bid.price, ask: ask.price }),
            ),
            _ => (Crossing::Normal, None),
        };
        // Counted when a book becomes locked or crossed, not again while it stays so.
        let was = self.crossing.insert(i, now).unwrap_or_default();
        if was != now {
            match now {
                Crossing::Locked => self.counters.locked += 1,
                Crossing::Crossed => self.counters.crossed += 1,
                Crossing::Normal => {}
            }
        }
        Expected::Update { instrument: i, side: s, levels: levels.to_vec(), crossed, over }
    }

    /// Removes `take` shares (or the order if that is all or more).
    fn take(&mut self, r: u64, take: Qty, op: Op) -> (KeyId, BookSide, Price, Qty, Qty, Option<BookError>) {
        let (i, s, p, k) = self.find(r).expect("live");
        let side = self.books[i as usize].side(s);
        let q = side.levels.get_mut(&p).unwrap();
        let had = q[k].1;
        let mut over = None;
        let left = if take < had {
            q[k].1 -= take;
            had - take
        } else {
            q.remove(k);
            if q.is_empty() {
                side.levels.remove(&p);
            }
            if take > had {
                self.counters.over_executions += 1;
                over = Some(BookError::OverExecution { reference: r, op, requested: take, remaining: had });
            }
            0
        };
        (i, s, p, had, left, over)
    }

    fn apply(&mut self, a: &Act) -> Expected {
        let valid = |n: Qty| (1..=MAX_SHARES).contains(&n);
        match *a {
            Act::Add { r, instrument: i, side: s, price: p, shares } => {
                if !valid(shares) {
                    self.counters.invalid += 1;
                    return Expected::Err(BookError::InvalidShares { reference: r, op: Op::Add, shares });
                }
                if i >= INSTRUMENTS {
                    self.counters.invalid += 1;
                    return Expected::Err(BookError::InstrumentOutOfRange {
                        reference: r,
                        op: Op::Add,
                        instrument: i,
                        limit: INSTRUMENTS,
                    });
                }
                if self.find(r).is_some() {
                    self.counters.duplicate_reference += 1;
                    return Expected::Err(BookError::DuplicateReference { reference: r, op: Op::Add });
                }
                if self.books.len() <= i as usize {
                    self.books.resize_with(i as usize + 1, RefBook::default);
                }
                self.books[i as usize].side(s).levels.entry(p).or_default().push((r, shares));
                self.counters.adds += 1;
                let l = self.level(i, s, p);
                self.update(i, s, &[l], None)
            }
            Act::Execute { r, shares, at } => {
                let op = if at.is_some() { Op::ExecuteAt } else { Op::Execute };
                if self.find(r).is_none() {
                    self.counters.unknown_reference += 1;
                    return Expected::Err(BookError::OrderNotFound { reference: r, op });
                }
                if shares <= 0 {
                    self.counters.invalid += 1;
                    return Expected::Err(BookError::InvalidShares { reference: r, op, shares });
                }
                let (i, s, p, _, left, over) = self.take(r, shares, op);
                match op {
                    Op::ExecuteAt => self.counters.executes_at += 1,
                    _ => self.counters.executes += 1,
                }
                let l = self.level(i, s, p);
                let Expected::Update { levels, crossed, .. } = self.update(i, s, &[l], over) else { unreachable!() };
                Expected::Fill(
                    Fill {
                        reference: r,
                        instrument: i,
                        side: s,
                        resting: p,
                        price: at.unwrap_or(p),
                        shares,
                        remaining: left,
                    },
                    levels[0],
                    crossed,
                    over,
                )
            }
            Act::Cancel { r, shares } => {
                if self.find(r).is_none() {
                    self.counters.unknown_reference += 1;
                    return Expected::Err(BookError::OrderNotFound { reference: r, op: Op::Cancel });
                }
                if shares <= 0 {
                    self.counters.invalid += 1;
                    return Expected::Err(BookError::InvalidShares { reference: r, op: Op::Cancel, shares });
                }
                let (i, s, p, _, _, over) = self.take(r, shares, Op::Cancel);
                self.counters.cancels += 1;
                let l = self.level(i, s, p);
                self.update(i, s, &[l], over)
            }
            Act::Delete { r } => {
                let Some((i, s, p, _)) = self.find(r) else {
                    self.counters.unknown_reference += 1;
                    return Expected::Err(BookError::OrderNotFound { reference: r, op: Op::Delete });
                };
                let had = self.books[i as usize].side(s).levels[&p].iter().find(|o| o.0 == r).unwrap().1;
                self.take(r, had, Op::Delete);
                self.counters.deletes += 1;
                let l = self.level(i, s, p);
                self.update(i, s, &[l], None)
            }
            Act::Replace { old, new, price, shares } => {
                let Some((i, s, p, _)) = self.find(old) else {
                    self.counters.unknown_reference += 1;
                    return Expected::Err(BookError::OrderNotFound { reference: old, op: Op::Replace });
                };
                if !valid(shares) {
                    self.counters.invalid += 1;
                    return Expected::Err(BookError::InvalidShares { reference: new, op: Op::Replace, shares });
                }
                if new != old && self.find(new).is_some() {
                    self.counters.duplicate_reference += 1;
                    return Expected::Err(BookError::DuplicateReference { reference: new, op: Op::Replace });
                }
                let had = self.books[i as usize].side(s).levels[&p].iter().find(|o| o.0 == old).unwrap().1;
                self.take(old, had, Op::Replace);
                let left = self.level(i, s, p);
                self.books[i as usize].side(s).levels.entry(price).or_default().push((new, shares));
                self.counters.replaces += 1;
                let joined = self.level(i, s, price);
                if price == p {
                    self.update(i, s, &[joined], None)
                } else {
                    self.update(i, s, &[left, joined], None)
                }
            }
        }
    }

    fn metrics(&self, i: KeyId) -> Metrics {
        let Some(b) = self.books.get(i as usize) else { return Metrics::EMPTY };
        let (bids, asks) = (b.levels(BookSide::Bid), b.levels(BookSide::Ask));
        let bd: Qty = bids.iter().take(self.depth).map(|l| l.shares).sum();
        let ad: Qty = asks.iter().take(self.depth).map(|l| l.shares).sum();
        let (bid, ask) = (bids.first().copied(), asks.first().copied());
        let both = bid.zip(ask);
        Metrics {
            bid,
            ask,
            spread: both.map(|(b, a)| Price(a.price.0 - b.price.0)),
            mid: both.map(|(b, a)| Price::from_ratio(b.price.0 as i128 + a.price.0 as i128, 2)),
            microprice: both.map(|(b, a)| {
                Price::from_ratio(
                    b.price.0 as i128 * a.shares as i128 + a.price.0 as i128 * b.shares as i128,
                    (a.shares + b.shares) as i128,
                )
            }),
            bid_depth: bd,
            ask_depth: ad,
            imbalance: (bd + ad > 0)
                .then(|| Price::from_ratio((bd - ad) as i128 * IMBALANCE_SCALE as i128, (bd + ad) as i128).0),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Expected {
    Err(BookError),
    Update {
        instrument: KeyId,
        side: BookSide,
        levels: Vec<LevelChange>,
        crossed: Option<BookError>,
        over: Option<BookError>,
    },
    Fill(Fill, LevelChange, Option<BookError>, Option<BookError>),
}

fn got_update(u: &Update) -> Expected {
    Expected::Update {
        instrument: u.instrument,
        side: u.side,
        levels: u.levels().to_vec(),
        crossed: u.crossed,
        over: u.over_execution,
    }
}

fn got_fill(x: &Execution) -> Expected {
    assert_eq!(x.update.levels().len(), 1);
    assert_eq!((x.update.instrument, x.update.side), (x.fill.instrument, x.fill.side));
    Expected::Fill(x.fill, x.update.levels()[0], x.update.crossed, x.update.over_execution)
}

#[derive(Clone, Copy, Debug)]
enum Act {
    Add { r: u64, instrument: KeyId, side: BookSide, price: Price, shares: Qty },
    Execute { r: u64, shares: Qty, at: Option<Price> },
    Cancel { r: u64, shares: Qty },
    Delete { r: u64 },
    Replace { old: u64, new: u64, price: Price, shares: Qty },
}

/// What the books returned, and for an applied update its instrument and `Update::touches_top`.
fn run(b: &mut Books, a: &Act) -> (Expected, Option<(KeyId, bool)>) {
    let e = |e: BookError| (Expected::Err(e), None);
    let u = |u: Update| (got_update(&u), Some((u.instrument, u.touches_top())));
    let x = |x: Execution| (got_fill(&x), Some((x.update.instrument, x.update.touches_top())));
    match *a {
        Act::Add { r, instrument, side, price, shares } => b.add(r, instrument, side, price, shares).map_or_else(e, u),
        Act::Execute { r, shares, at: None } => b.execute(r, shares).map_or_else(e, x),
        Act::Execute { r, shares, at: Some(p) } => b.execute_at(r, shares, p).map_or_else(e, x),
        Act::Cancel { r, shares } => b.cancel(r, shares).map_or_else(e, u),
        Act::Delete { r } => b.delete(r).map_or_else(e, u),
        Act::Replace { old, new, price, shares } => b.replace(old, new, price, shares).map_or_else(e, u),
    }
}

/// A generated step: which operation, and raw numbers it draws its arguments from. References are picked
/// at run time, mostly among the live orders (so that operations apply), otherwise from a small space that
/// holds live and unknown ones alike.
#[derive(Clone, Copy, Debug)]
struct Step {
    kind: u8,
    pick_live: bool,
    sel: u64,
    other: u64,
    instrument: KeyId,
    bid: bool,
    ticks: i64,
    shares: Qty,
}

fn step() -> impl Strategy<Value = Step> {
    (
        0u8..100,
        prop::bool::weighted(0.8),
        any::<u64>(),
        0u64..64,
        prop_oneof![20 => 0..INSTRUMENTS, 1 => Just(INSTRUMENTS)],
        any::<bool>(),
        -4i64..=4,
        prop_oneof![30 => 1i64..=120, 1 => -2i64..=0, 1 => Just(MAX_SHARES), 1 => Just(MAX_SHARES + 1)],
    )
        .prop_map(|(kind, pick_live, sel, other, instrument, bid, ticks, shares)| Step {
            kind,
            pick_live,
            sel,
            other,
            instrument,
            bid,
            ticks,
            shares,
        })
}

/// The step as an operation on the model's current state. Bids and asks draw from the same prices, so
/// books cross and lock now and then.
fn act(s: &Step, m: &Model) -> Act {
    let live = m.live();
    let r = if s.pick_live && !live.is_empty() { live[(s.sel % live.len() as u64) as usize] } else { s.other };
    let side = if s.bid { BookSide::Bid } else { BookSide::Ask };
    // Bids mostly below asks: books are crossed now and then rather than most of the time.
    let price = Price(BASE + (s.ticks + if s.bid { -3 } else { 3 }) * TICK);
    // Sizes against the order's: executions and cancels mostly within it, sometimes exactly all, sometimes more.
    let held = m.find(r).map(|(i, sd, p, k)| m.books[i as usize].side_ref(sd).levels[&p][k].1).unwrap_or(50);
    let part = match s.sel % 8 {
        0 => held,
        1 => held + 1 + (s.sel >> 8) as i64 % 10,
        _ if s.shares <= 0 => s.shares,
        _ => 1 + (s.shares - 1) % held.max(1),
    };
    match s.kind {
        0..=39 => {
            // Mostly a new reference; sometimes a live one (refused) or one of the small space.
            let r = match (s.pick_live, s.sel % 10) {
                (false, _) => s.other,
                (true, 0) => r,
                (true, _) => 1000 + s.sel % 1_000_000,
            };
            Act::Add { r, instrument: s.instrument, side, price, shares: s.shares }
        }
        40..=54 => Act::Execute { r, shares: part, at: None },
        55..=59 => Act::Execute { r, shares: part, at: Some(Price(price.0 + 1)) },
        60..=74 => Act::Cancel { r, shares: part },
        75..=87 => Act::Delete { r },
        _ => Act::Replace {
            old: r,
            new: if s.sel % 5 == 0 {
                s.other
            } else if s.sel % 7 == 0 {
                r
            } else {
                2_000_000 + s.sel % 1_000_000
            },
            price,
            shares: s.shares,
        },
    }
}

/// Everything the books show, against the model.
fn compare(b: &Books, m: &Model, ctx: &str) {
    assert_eq!(b.counters(), &m.counters, "{ctx}: counters");
    for i in 0..INSTRUMENTS {
        assert_eq!(b.crossing(i), m.crossing.get(&i).copied().unwrap_or_default(), "{ctx}: crossing of {i}");
    }
    assert_eq!(b.len(), m.live().len(), "{ctx}: live orders");
    assert_eq!(b.instruments(), m.books.len(), "{ctx}: instruments");
    for i in 0..=INSTRUMENTS {
        let empty = RefBook::default();
        let rb = m.books.get(i as usize).unwrap_or(&empty);
        for s in [BookSide::Bid, BookSide::Ask] {
            let want = rb.levels(s);
            let got: Vec<Level> = b.levels(i, s).collect();
            assert_eq!(got, want, "{ctx}: levels of instrument {i} {s:?}");
            for n in [0, 1, 3] {
                let top: Vec<Level> = b.top(i, s, n).collect();
                assert_eq!(top, want.iter().copied().take(n).collect::<Vec<_>>(), "{ctx}: top {n}");
            }
            assert_eq!(b.best(i, s), want.first().copied(), "{ctx}: best");
            for (p, q) in &rb.side_ref(s).levels {
                let got: Vec<(u64, Qty)> = b
                    .queue(i, s, *p)
                    .map(|o| {
                        assert_eq!((o.instrument, o.side, o.price), (i, s, *p));
                        (o.reference, o.shares)
                    })
                    .collect();
                assert_eq!(&got, q, "{ctx}: queue of instrument {i} {s:?} at {p}");
                for &(r, shares) in q {
                    let o = b.order(r).expect("live order");
                    assert_eq!((o.instrument, o.side, o.price, o.shares), (i, s, *p, shares));
                }
            }
            assert_eq!(b.queue(i, s, Price(BASE + 1)).count(), 0, "{ctx}: no level off the tick grid");
        }
        let metrics = m.metrics(i);
        assert_eq!(b.metrics(i), metrics, "{ctx}: metrics of instrument {i}");
        let quote = BookQuote { bid: metrics.bid, ask: metrics.ask, imbalance: metrics.imbalance };
        assert_eq!(b.quote(i), quote, "{ctx}: quote of instrument {i}");
    }
}

fn snapshot_restore(b: &Books) -> Books {
    let mut e = Enc::new();
    b.snapshot(&mut e);
    let mut r = Books::new(b.depth(), b.max_instruments());
    let mut d = Dec::new(e.bytes());
    r.restore(&mut d).expect("a snapshot restores");
    d.finish().expect("read whole");
    let mut again = Enc::new();
    r.snapshot(&mut again);
    assert_eq!(again.bytes(), e.bytes(), "a restored book snapshots to the same bytes");
    r
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn books_agree_with_the_reference(
        steps in prop::collection::vec(step(), 1..300),
        depth in 1usize..=4,
        restore_at in any::<prop::sample::Index>(),
    ) {
        let mut b = Books::new(depth, INSTRUMENTS);
        let mut m = Model { depth, books: Vec::new(), counters: BookCounters::default(), crossing: BTreeMap::new() };
        let cut = restore_at.index(steps.len());
        for (k, s) in steps.iter().enumerate() {
            if k == cut {
                b = snapshot_restore(&b);
                compare(&b, &m, "after restore");
            }
            let a = act(s, &m);
            let want = m.apply(&a);
            let before: Vec<Metrics> = (0..=INSTRUMENTS).map(|i| b.metrics(i)).collect();
            let (got, touched) = run(&mut b, &a);
            prop_assert_eq!(&got, &want, "step {}: {:?}", k, a);
            // An update that says it left the top levels alone left every metric as it was.
            if let Some((i, false)) = touched {
                prop_assert_eq!(b.metrics(i), before[i as usize], "step {}: {:?} is below the top", k, a);
            }
            compare(&b, &m, &format!("after step {k}: {a:?}"));
        }
    }
}

/// Long queues: one level of many orders, removed in an order that touches the front, the back and the
/// middle, with priority checked throughout.
#[test]
fn long_queue_keeps_time_priority() {
    let mut b = Books::new(1, 1);
    let mut want: Vec<(u64, Qty)> = Vec::new();
    let px = Price(BASE);
    for r in 0..500u64 {
        b.add(r, 0, BookSide::Bid, px, 1 + r as Qty % 7).unwrap();
        want.push((r, 1 + r as Qty % 7));
    }
    let mut x = 12345u64;
    while !want.is_empty() {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let k = (x >> 33) as usize % want.len();
        let (r, q) = want[k];
        if q > 1 && x % 3 == 0 {
            b.cancel(r, 1).unwrap();
            want[k].1 -= 1;
        } else {
            b.delete(r).unwrap();
            want.remove(k);
        }
        let got: Vec<_> = b.queue(0, BookSide::Bid, px).map(|o| (o.reference, o.shares)).collect();
        assert_eq!(got, want);
    }
    assert!(b.is_empty() && b.levels(0, BookSide::Bid).len() == 0);
}
