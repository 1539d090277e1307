//! The books as a checkpoint section: every level of every book, worst price first, and each level's
//! orders in time priority, so a restore rebuilds the same queues.
//!
//! Layout (all integers little-endian, [`Enc`]): tag `u8` = 16; the [`BookCounters`] as 12 `u64` in
//! declaration order; `u64` instrument count; per instrument, bids then asks: `u64` level count, per level
//! `i64` price, `u64` order count, per order `u64` reference and `i64` shares.

use super::levels::{self, LevelNode};
use super::orders::{Node, NIL};
use super::{BookCounters, BookSide, Books, LastQuotes, MAX_SHARES};
use crate::checkpoint::codec::{Dec, DecodeError, Enc};
use crate::event::{KeyId, Quote};

/// First byte of the books' section.
const SNAPSHOT_TAG: u8 = 16;

/// Bytes of one level and one order, and the least a level takes (price, count, one order).
const ORDER_BYTES: usize = 16;
const LEVEL_BYTES: usize = 16;

impl BookCounters {
    fn fields(&mut self) -> [&mut u64; 12] {
        [
            &mut self.adds,
            &mut self.executes,
            &mut self.executes_at,
            &mut self.cancels,
            &mut self.deletes,
            &mut self.replaces,
            &mut self.unknown_reference,
            &mut self.duplicate_reference,
            &mut self.invalid,
            &mut self.over_executions,
            &mut self.crossed,
            &mut self.locked,
        ]
    }
}

impl Books {
    /// Appends the books' state to `e`.
    pub fn snapshot(&self, e: &mut Enc) {
        let levels: usize = self.books.iter().map(|b| b.bids.len() + b.asks.len()).sum();
        e.reserve(1 + 8 * 13 + self.books.len() * 16 + levels * LEVEL_BYTES + self.orders.len() * ORDER_BYTES);
        e.u8(SNAPSHOT_TAG);
        let mut c = self.counters;
        for v in c.fields() {
            e.u64(*v);
        }
        e.len_of(self.books.len());
        for b in &self.books {
            for (side, levels) in [(BookSide::Bid, &b.bids), (BookSide::Ask, &b.asks)] {
                e.len_of(levels.len());
                for l in levels.as_slice() {
                    e.price(levels::price(side, l.key));
                    e.u64(l.orders as u64);
                    let mut s = l.head;
                    while s != NIL {
                        let n = self.orders.node(s);
                        e.u64(n.reference);
                        e.i64(n.shares());
                        s = n.next;
                    }
                }
            }
        }
    }

    /// Replaces the books' contents by a snapshot's, keeping the depth, the instrument limit and the
    /// capacity. On an error the books are left empty.
    pub fn restore(&mut self, d: &mut Dec<'_>) -> Result<(), DecodeError> {
        self.orders.clear();
        for b in &mut self.books {
            b.bids.clear();
            b.asks.clear();
        }
        let r = self.restore_into(d);
        if r.is_err() {
            self.clear();
            self.counters = BookCounters::default();
        }
        r
    }

    fn restore_into(&mut self, d: &mut Dec<'_>) -> Result<(), DecodeError> {
        d.expect_u8("state section", SNAPSHOT_TAG)?;
        let mut c = BookCounters::default();
        for v in c.fields() {
            *v = d.u64("book counter")?;
        }
        let at = d.pos();
        let n = d.count(2 * 8, "instruments")?;
        if n > self.max_instruments as usize {
            return Err(DecodeError::Invalid {
                at,
                what: format!("{n} instruments, the limit is {}", self.max_instruments),
            });
        }
        self.books.truncate(n);
        self.reserve_instruments(n as u32);
        for instrument in 0..n as u32 {
            for side in [BookSide::Bid, BookSide::Ask] {
                let levels = d.count(LEVEL_BYTES + ORDER_BYTES, "levels")?;
                for _ in 0..levels {
                    let at = d.pos();
                    let price = d.price("level price")?;
                    let book = &mut self.books[instrument as usize];
                    let lv = book.side_mut(side);
                    let key = levels::key(side, price);
                    if lv.best().is_some_and(|b| b.key >= key) {
                        return Err(DecodeError::Invalid {
                            at,
                            what: format!("instrument {instrument}: {side:?} level {price} out of order"),
                        });
                    }
                    let at = d.pos();
                    let orders = d.count(ORDER_BYTES, "orders")?;
                    if orders == 0 || orders > u32::MAX as usize {
                        return Err(DecodeError::Invalid {
                            at,
                            what: format!("instrument {instrument}: {side:?} level {price} with {orders} orders"),
                        });
                    }
                    let mut level = LevelNode { key, shares: 0, orders: orders as u32, head: NIL, tail: NIL };
                    for _ in 0..orders {
                        let at = d.pos();
                        let reference = d.u64("order reference")?;
                        let shares = d.i64("order shares")?;
                        if !(1..=MAX_SHARES).contains(&shares) {
                            return Err(DecodeError::Invalid {
                                at,
                                what: format!("order {reference} with {shares} shares"),
                            });
                        }
                        let mut node = Node::new(reference, instrument, side, price, shares);
                        node.prev = level.tail;
                        let Some(slot) = self.orders.insert(node) else {
                            return Err(DecodeError::Invalid { at, what: format!("order {reference} twice") });
                        };
                        if level.tail == NIL {
                            level.head = slot;
                        } else {
                            self.orders.node_mut(level.tail).next = slot;
                        }
                        level.tail = slot;
                        level.shares = level.shares.checked_add(shares).ok_or_else(|| DecodeError::Invalid {
                            at,
                            what: format!("instrument {instrument}: {side:?} level {price} holds too many shares"),
                        })?;
                    }
                    self.books[instrument as usize].side_mut(side).push_best(level);
                }
            }
        }
        self.counters = c;
        self.recompute_crossing();
        Ok(())
    }
}

/// First byte of the last quotes' section.
const LAST_QUOTES_TAG: u8 = 17;

/// Bytes of one last quote: instrument, ts, bid, ask, bid_qty, ask_qty, imbalance.
const QUOTE_BYTES: usize = 4 + 8 + 8 + 8 + 4 + 4 + 4;

impl LastQuotes {
    /// Appends the last quote sent per instrument to `e`: tag `u8` = 17, `u64` slot count, per slot `u32`
    /// instrument (`u32::MAX`: no quote sent yet), `i64` ts, `i64` bid, `i64` ask, `u32` bid_qty, `u32`
    /// ask_qty, `u32` imbalance (its `i32` bits).
    pub fn snapshot(&self, e: &mut Enc) {
        e.reserve(9 + self.0.len() * QUOTE_BYTES);
        e.u8(LAST_QUOTES_TAG);
        e.len_of(self.0.len());
        for q in &self.0 {
            e.u32(q.instrument);
            e.i64(q.ts);
            e.price(q.bid);
            e.price(q.ask);
            e.u32(q.bid_qty);
            e.u32(q.ask_qty);
            e.u32(q.imbalance as u32);
        }
    }

    /// Replaces the last quotes by a snapshot's, for instrument ids below `limit`. On an error they are left
    /// empty.
    pub fn restore(&mut self, d: &mut Dec<'_>, limit: usize) -> Result<(), DecodeError> {
        self.0.clear();
        let r = self.restore_into(d, limit);
        if r.is_err() {
            self.0.clear();
        }
        r
    }

    fn restore_into(&mut self, d: &mut Dec<'_>, limit: usize) -> Result<(), DecodeError> {
        d.expect_u8("state section", LAST_QUOTES_TAG)?;
        let at = d.pos();
        let n = d.count(QUOTE_BYTES, "last quotes")?;
        if n > limit {
            return Err(DecodeError::Invalid { at, what: format!("{n} last quotes, the instrument limit is {limit}") });
        }
        self.0.reserve(n);
        for i in 0..n {
            let at = d.pos();
            let instrument = d.u32("quote instrument")?;
            if instrument != KeyId::MAX && instrument as usize != i {
                return Err(DecodeError::Invalid {
                    at,
                    what: format!("the last quote of slot {i} is of instrument {instrument}"),
                });
            }
            let q = Quote {
                instrument,
                ts: d.i64("quote ts")?,
                bid: d.price("quote bid")?,
                ask: d.price("quote ask")?,
                bid_qty: d.u32("quote bid_qty")?,
                ask_qty: d.u32("quote ask_qty")?,
                imbalance: d.u32("quote imbalance")? as i32,
            };
            self.0.push(q);
        }
        Ok(())
    }
}
