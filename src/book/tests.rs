use super::*;
use crate::checkpoint::codec::{Dec, DecodeError, Enc};

fn p(units_x10000: i64) -> Price {
    // Four decimals, as ITCH sends them.
    Price(units_x10000 * 100_000)
}

fn refs(b: &Books, instrument: KeyId, side: BookSide, price: Price) -> Vec<(u64, Qty)> {
    b.queue(instrument, side, price).map(|o| (o.reference, o.shares)).collect()
}

fn lv(side: BookSide, price: Price, shares: Qty, orders: u32) -> LevelChange {
    LevelChange { side, price, shares, orders }
}

fn book() -> Books {
    Books::new(2, 16)
}

#[test]
fn add_queues_in_arrival_order_and_reports_the_level() {
    let mut b = book();
    let u = b.add(1, 3, BookSide::Bid, p(100_0000), 100).unwrap();
    assert_eq!((u.instrument, u.side), (3, BookSide::Bid));
    assert_eq!(u.levels(), &[lv(BookSide::Bid, p(100_0000), 100, 1)]);
    let u = b.add(2, 3, BookSide::Bid, p(100_0000), 50).unwrap();
    assert_eq!(u.levels(), &[lv(BookSide::Bid, p(100_0000), 150, 2)]);
    b.add(3, 3, BookSide::Bid, p(99_9900), 10).unwrap();
    assert_eq!(refs(&b, 3, BookSide::Bid, p(100_0000)), vec![(1, 100), (2, 50)]);
    let levels: Vec<_> = b.levels(3, BookSide::Bid).collect();
    assert_eq!(
        levels,
        vec![Level { price: p(100_0000), shares: 150, orders: 2 }, Level { price: p(99_9900), shares: 10, orders: 1 }]
    );
    assert_eq!(b.len(), 3);
    assert_eq!(b.instruments(), 4, "instruments 0..=3 have books");
    assert_eq!(
        b.order(2),
        Some(Order { reference: 2, instrument: 3, side: BookSide::Bid, price: p(100_0000), shares: 50 })
    );
    assert_eq!(b.counters().adds, 3);
}

#[test]
fn asks_are_best_lowest_first() {
    let mut b = book();
    for (r, px) in [(1, 101_0000), (2, 100_5000), (3, 102_0000)] {
        b.add(r, 0, BookSide::Ask, p(px), 10).unwrap();
    }
    let prices: Vec<_> = b.levels(0, BookSide::Ask).map(|l| l.price).collect();
    assert_eq!(prices, vec![p(100_5000), p(101_0000), p(102_0000)]);
    assert_eq!(b.best(0, BookSide::Ask).map(|l| l.price), Some(p(100_5000)));
    let top: Vec<_> = b.top(0, BookSide::Ask, 2).map(|l| l.price).collect();
    assert_eq!(top, vec![p(100_5000), p(101_0000)]);
}

#[test]
fn partial_execution_keeps_priority_full_removes() {
    let mut b = book();
    b.add(1, 0, BookSide::Ask, p(10_0000), 100).unwrap();
    b.add(2, 0, BookSide::Ask, p(10_0000), 100).unwrap();
    let x = b.execute(1, 30).unwrap();
    assert_eq!(
        x.fill,
        Fill {
            reference: 1,
            instrument: 0,
            side: BookSide::Ask,
            resting: p(10_0000),
            price: p(10_0000),
            shares: 30,
            remaining: 70
        }
    );
    assert_eq!(x.update.levels(), &[lv(BookSide::Ask, p(10_0000), 170, 2)]);
    assert_eq!(refs(&b, 0, BookSide::Ask, p(10_0000)), vec![(1, 70), (2, 100)], "order 1 keeps its place");
    let x = b.execute(1, 70).unwrap();
    assert_eq!((x.fill.shares, x.fill.remaining), (70, 0));
    assert_eq!(x.update.levels(), &[lv(BookSide::Ask, p(10_0000), 100, 1)]);
    assert_eq!(x.update.over_execution, None);
    assert_eq!(b.order(1), None);
    assert_eq!(b.counters().executes, 2);
}

#[test]
fn execution_at_another_price_reports_both_prices() {
    let mut b = book();
    b.add(7, 1, BookSide::Bid, p(5_0000), 10).unwrap();
    let x = b.execute_at(7, 10, p(5_0100)).unwrap();
    assert_eq!((x.fill.resting, x.fill.price, x.fill.remaining), (p(5_0000), p(5_0100), 0));
    assert_eq!(x.update.levels(), &[lv(BookSide::Bid, p(5_0000), 0, 0)], "the emptied level is reported with 0");
    assert_eq!(b.levels(1, BookSide::Bid).len(), 0, "and removed");
    assert_eq!(b.counters().executes_at, 1);
}

#[test]
fn cancel_is_partial_and_keeps_priority() {
    let mut b = book();
    b.add(1, 0, BookSide::Bid, p(1_0000), 100).unwrap();
    b.add(2, 0, BookSide::Bid, p(1_0000), 100).unwrap();
    let u = b.cancel(1, 40).unwrap();
    assert_eq!(u.levels(), &[lv(BookSide::Bid, p(1_0000), 160, 2)]);
    assert_eq!(refs(&b, 0, BookSide::Bid, p(1_0000)), vec![(1, 60), (2, 100)]);
    let u = b.cancel(1, 60).unwrap();
    assert_eq!(u.levels(), &[lv(BookSide::Bid, p(1_0000), 100, 1)]);
    assert_eq!(u.over_execution, None, "cancelling exactly what is left is no over-execution");
    assert_eq!(b.counters().cancels, 2);
}

#[test]
fn delete_from_the_middle_of_a_queue() {
    let mut b = book();
    for r in 1..=4 {
        b.add(r, 0, BookSide::Bid, p(1_0000), r as Qty).unwrap();
    }
    let u = b.delete(2).unwrap();
    assert_eq!(u.levels(), &[lv(BookSide::Bid, p(1_0000), 8, 3)]);
    assert_eq!(refs(&b, 0, BookSide::Bid, p(1_0000)), vec![(1, 1), (3, 3), (4, 4)]);
    b.delete(1).unwrap();
    b.delete(4).unwrap();
    assert_eq!(refs(&b, 0, BookSide::Bid, p(1_0000)), vec![(3, 3)]);
    let u = b.delete(3).unwrap();
    assert_eq!(u.levels(), &[lv(BookSide::Bid, p(1_0000), 0, 0)]);
    assert!(b.is_empty());
    assert_eq!(b.counters().deletes, 4);
}

#[test]
fn replace_loses_priority_and_reports_both_levels() {
    let mut b = book();
    b.add(1, 0, BookSide::Ask, p(2_0000), 10).unwrap();
    b.add(2, 0, BookSide::Ask, p(2_0000), 20).unwrap();
    // Same price: one level, order at the back under its new reference.
    let u = b.replace(1, 11, p(2_0000), 15).unwrap();
    assert_eq!(u.levels(), &[lv(BookSide::Ask, p(2_0000), 35, 2)]);
    assert_eq!(refs(&b, 0, BookSide::Ask, p(2_0000)), vec![(2, 20), (11, 15)]);
    // Another price: the old level, then the new one.
    let u = b.replace(2, 12, p(2_0100), 5).unwrap();
    assert_eq!(u.levels(), &[lv(BookSide::Ask, p(2_0000), 15, 1), lv(BookSide::Ask, p(2_0100), 5, 1)]);
    assert_eq!(b.order(12).map(|o| (o.side, o.instrument)), Some((BookSide::Ask, 0)));
    assert_eq!(b.order(2), None);
    // The same reference again is allowed: it is the order that leaves.
    b.replace(12, 12, p(2_0000), 5).unwrap();
    assert_eq!(refs(&b, 0, BookSide::Ask, p(2_0000)), vec![(11, 15), (12, 5)]);
    assert_eq!(b.counters().replaces, 3);
}

#[test]
fn unknown_references_are_refused_and_counted() {
    let mut b = book();
    b.add(1, 0, BookSide::Bid, p(1_0000), 10).unwrap();
    assert_eq!(b.execute(9, 1).unwrap_err(), BookError::OrderNotFound { reference: 9, op: Op::Execute });
    assert_eq!(b.execute_at(9, 1, p(1)).unwrap_err(), BookError::OrderNotFound { reference: 9, op: Op::ExecuteAt });
    assert_eq!(b.cancel(9, 1).unwrap_err(), BookError::OrderNotFound { reference: 9, op: Op::Cancel });
    assert_eq!(b.delete(9).unwrap_err(), BookError::OrderNotFound { reference: 9, op: Op::Delete });
    assert_eq!(b.replace(9, 10, p(1), 1).unwrap_err(), BookError::OrderNotFound { reference: 9, op: Op::Replace });
    assert_eq!(b.counters().unknown_reference, 5);
    assert_eq!(b.counters().rejected(), 5);
    assert_eq!(b.delete(9).unwrap_err().to_string(), "delete: order 9 is not in the book");
    assert_eq!(refs(&b, 0, BookSide::Bid, p(1_0000)), vec![(1, 10)], "unchanged");
}

#[test]
fn duplicate_references_are_refused_and_counted() {
    let mut b = book();
    b.add(1, 0, BookSide::Bid, p(1_0000), 10).unwrap();
    b.add(2, 5, BookSide::Ask, p(2_0000), 10).unwrap();
    // Unique across instruments.
    assert_eq!(
        b.add(1, 5, BookSide::Ask, p(3_0000), 1).unwrap_err(),
        BookError::DuplicateReference { reference: 1, op: Op::Add }
    );
    assert_eq!(
        b.replace(2, 1, p(3_0000), 1).unwrap_err(),
        BookError::DuplicateReference { reference: 1, op: Op::Replace }
    );
    assert_eq!(b.counters().duplicate_reference, 2);
    assert_eq!(b.order(2).map(|o| o.price), Some(p(2_0000)), "a refused replace leaves the old order");
    assert_eq!(b.levels(5, BookSide::Ask).len(), 1);
}

#[test]
fn invalid_shares_and_instruments_are_refused() {
    let mut b = book();
    assert_eq!(
        b.add(1, 0, BookSide::Bid, p(1), 0).unwrap_err(),
        BookError::InvalidShares { reference: 1, op: Op::Add, shares: 0 }
    );
    assert!(b.add(1, 0, BookSide::Bid, p(1), MAX_SHARES + 1).is_err());
    assert_eq!(
        b.add(1, 16, BookSide::Bid, p(1), 1).unwrap_err(),
        BookError::InstrumentOutOfRange { reference: 1, op: Op::Add, instrument: 16, limit: 16 }
    );
    b.add(1, 0, BookSide::Bid, p(1), 5).unwrap();
    assert!(matches!(b.execute(1, 0), Err(BookError::InvalidShares { op: Op::Execute, .. })));
    assert!(matches!(b.cancel(1, -1), Err(BookError::InvalidShares { op: Op::Cancel, .. })));
    assert!(matches!(b.replace(1, 2, p(1), 0), Err(BookError::InvalidShares { reference: 2, op: Op::Replace, .. })));
    assert_eq!(b.counters().invalid, 6);
    assert_eq!(b.order(1).map(|o| o.shares), Some(5));
}

#[test]
fn over_execution_removes_the_order_and_is_reported() {
    let mut b = book();
    b.add(1, 0, BookSide::Bid, p(1_0000), 10).unwrap();
    b.add(2, 0, BookSide::Bid, p(1_0000), 10).unwrap();
    let x = b.execute(1, 15).unwrap();
    assert_eq!((x.fill.shares, x.fill.remaining), (15, 0));
    assert_eq!(
        x.update.over_execution,
        Some(BookError::OverExecution { reference: 1, op: Op::Execute, requested: 15, remaining: 10 })
    );
    assert_eq!(x.update.levels(), &[lv(BookSide::Bid, p(1_0000), 10, 1)]);
    let u = b.cancel(2, 11).unwrap();
    assert!(matches!(u.over_execution, Some(BookError::OverExecution { op: Op::Cancel, .. })));
    assert_eq!(u.levels(), &[lv(BookSide::Bid, p(1_0000), 0, 0)]);
    assert!(b.is_empty());
    assert_eq!(b.counters().over_executions, 2);
}

#[test]
fn crossed_and_locked_books_are_reported_and_counted() {
    let mut b = book();
    assert_eq!(b.add(1, 2, BookSide::Bid, p(10_0000), 1).unwrap().crossed, None);
    assert_eq!(b.add(2, 2, BookSide::Ask, p(10_0100), 1).unwrap().crossed, None);
    let u = b.add(3, 2, BookSide::Ask, p(10_0000), 1).unwrap();
    assert_eq!(u.crossed, Some(BookError::Crossed { instrument: 2, bid: p(10_0000), ask: p(10_0000) }), "locked");
    let u = b.add(4, 2, BookSide::Bid, p(10_0200), 1).unwrap();
    assert_eq!(u.crossed, Some(BookError::Crossed { instrument: 2, bid: p(10_0200), ask: p(10_0000) }));
    assert_eq!(b.metrics(2).spread, Some(Price(-200 * 100_000)));
    // Another instrument's book is its own.
    assert_eq!(b.add(5, 3, BookSide::Ask, p(1_0000), 1).unwrap().crossed, None);
    assert_eq!((b.counters().locked, b.counters().crossed), (1, 1));
    // Still crossed: not counted again.
    assert!(b.add(6, 2, BookSide::Bid, p(10_0300), 1).unwrap().crossed.is_some());
    assert_eq!(b.crossing(2), Crossing::Crossed);
    b.delete(6).unwrap();
    b.delete(4).unwrap();
    assert_eq!(b.crossing(2), Crossing::Locked);
    assert!(b.delete(3).unwrap().crossed.is_none());
    assert_eq!(b.crossing(2), Crossing::Normal);
    // Crossed again: a new episode.
    b.add(7, 2, BookSide::Ask, p(9_0000), 1).unwrap();
    let c = b.counters();
    assert_eq!((c.locked, c.crossed), (2, 2), "once each time a book became locked or crossed");
    // A restore takes the crossing from the levels, and does not count it again.
    let mut e = crate::checkpoint::codec::Enc::new();
    b.snapshot(&mut e);
    let mut r = book();
    r.restore(&mut crate::checkpoint::codec::Dec::new(e.bytes())).unwrap();
    assert_eq!(r.crossing(2), Crossing::Crossed);
    r.add(8, 2, BookSide::Bid, p(10_0400), 1).unwrap();
    assert_eq!(r.counters().crossed, 2);
}

#[test]
fn metrics_in_fixed_point() {
    let mut b = Books::new(2, 4);
    assert_eq!(b.metrics(0), Metrics::EMPTY);
    b.add(1, 0, BookSide::Bid, p(10_0000), 300).unwrap();
    let m = b.metrics(0);
    assert_eq!(m.bid, Some(Level { price: p(10_0000), shares: 300, orders: 1 }));
    assert_eq!((m.ask, m.spread, m.mid, m.microprice), (None, None, None, None), "no asks: undefined, not 0");
    assert_eq!(m.imbalance, Some(IMBALANCE_SCALE));
    b.add(2, 0, BookSide::Ask, p(10_0100), 100).unwrap();
    b.add(3, 0, BookSide::Bid, p(9_9900), 200).unwrap();
    b.add(4, 0, BookSide::Bid, p(9_9800), 1000).unwrap();
    b.add(5, 0, BookSide::Ask, p(10_0300), 100).unwrap();
    let m = b.metrics(0);
    assert_eq!(m.spread, Some(p(100)));
    assert_eq!(m.mid, Some(p(10_0050)));
    // (10 × 100 + 10.01 × 300) / 400 = 10.0075
    assert_eq!(m.microprice, Some(p(10_0075)));
    // Top 2 levels: bids 300 + 200, asks 100 + 100; (500 − 200) / 700.
    assert_eq!((m.bid_depth, m.ask_depth), (500, 200));
    assert_eq!(m.imbalance, Some(428_571_429));
    // Microprice rounding: (10 × 1 + 10.01 × 2) / 3 = 10.00666… → 10.006666667
    let mut b = Books::new(1, 1);
    b.add(1, 0, BookSide::Bid, p(10_0000), 2).unwrap();
    b.add(2, 0, BookSide::Ask, p(10_0100), 1).unwrap();
    assert_eq!(b.metrics(0).microprice, Some(Price(10_006_666_667)));
    assert_eq!(b.metrics(0).imbalance, Some(333_333_333));
    b.add(3, 0, BookSide::Ask, Price(10_010_000_001), 1).unwrap();
    assert_eq!(b.metrics(0).mid, Some(Price(10_005_000_000)));
    b.delete(2).unwrap();
    assert_eq!(b.metrics(0).mid, Some(Price(10_005_000_001)), "half a raw unit rounds away from zero");
}

#[test]
fn snapshot_restores_the_same_books() {
    let mut b = book();
    b.add(1, 0, BookSide::Bid, p(1_0000), 10).unwrap();
    b.add(2, 0, BookSide::Bid, p(1_0000), 20).unwrap();
    b.add(3, 0, BookSide::Bid, p(9000), 30).unwrap();
    b.add(4, 2, BookSide::Ask, p(2_0000), 40).unwrap();
    b.add(5, 2, BookSide::Ask, p(2_0000), 50).unwrap();
    b.replace(4, 6, p(2_0000), 45).unwrap();
    b.delete(99).unwrap_err();
    let mut e = Enc::new();
    b.snapshot(&mut e);
    let mut r = book();
    r.restore(&mut Dec::new(e.bytes())).unwrap();
    assert_eq!(refs(&r, 0, BookSide::Bid, p(1_0000)), vec![(1, 10), (2, 20)]);
    assert_eq!(refs(&r, 2, BookSide::Ask, p(2_0000)), vec![(5, 50), (6, 45)]);
    assert_eq!(r.counters(), b.counters());
    assert_eq!(r.instruments(), 3);
    assert_eq!(r.metrics(0), b.metrics(0));
    let mut again = Enc::new();
    r.snapshot(&mut again);
    assert_eq!(again.bytes(), e.bytes(), "the encoding is canonical");
    // The restored books go on as the original would.
    r.add(7, 0, BookSide::Bid, p(1_0000), 1).unwrap();
    assert_eq!(refs(&r, 0, BookSide::Bid, p(1_0000)), vec![(1, 10), (2, 20), (7, 1)]);
}

#[test]
fn corrupt_snapshots_are_errors() {
    let mut b = book();
    b.add(1, 0, BookSide::Bid, p(1_0000), 10).unwrap();
    b.add(2, 0, BookSide::Bid, p(9000), 10).unwrap();
    let mut e = Enc::new();
    b.snapshot(&mut e);
    let bytes = e.bytes().to_vec();
    for cut in 0..bytes.len() {
        let mut r = book();
        assert!(r.restore(&mut Dec::new(&bytes[..cut])).is_err(), "cut at {cut}");
        assert!(r.is_empty());
    }
    // Levels are written worst first: swapping the two prices puts them out of order.
    let head = 1 + 12 * 8 + 8 + 8;
    let mut bad = bytes.clone();
    let (a, z) = (head, head + 8 + 8 + 16);
    let pa: [u8; 8] = bad[a..a + 8].try_into().unwrap();
    let pz: [u8; 8] = bad[z..z + 8].try_into().unwrap();
    bad[a..a + 8].copy_from_slice(&pz);
    bad[z..z + 8].copy_from_slice(&pa);
    let err = book().restore(&mut Dec::new(&bad)).unwrap_err();
    assert!(matches!(err, DecodeError::Invalid { at, .. } if at == z), "{err}");
    // The same reference twice.
    let mut bad = bytes.clone();
    let (ra, rz) = (head + 16, z + 16);
    bad.copy_within(ra..ra + 8, rz);
    assert!(matches!(book().restore(&mut Dec::new(&bad)), Err(DecodeError::Invalid { .. })));
    // More instruments than the limit.
    let mut small = Books::new(2, 0);
    assert!(matches!(small.restore(&mut Dec::new(&bytes)), Err(DecodeError::Invalid { .. })));
}

#[test]
fn memory_follows_live_orders() {
    let mut b = book();
    b.reserve(64, 8);
    for round in 0..100u64 {
        for i in 0..50 {
            b.add(round * 100 + i, (i % 3) as KeyId, BookSide::Bid, p(1_0000 + i as i64), 1).unwrap();
        }
        for i in 0..50 {
            b.delete(round * 100 + i).unwrap();
        }
    }
    assert!(b.is_empty());
    assert!(b.order_capacity() >= 64 && b.order_capacity() < 128, "slots are reused: {}", b.order_capacity());
    assert_eq!(b.levels(0, BookSide::Bid).len(), 0, "empty levels are removed");
}
