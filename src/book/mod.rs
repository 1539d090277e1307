//! Venue-neutral limit order books built from a per-order (L3) feed: every order by reference in time
//! priority, levels by price (L2), and the top-of-book metrics derived from them.
//!
//! [`Books`] holds the books of every instrument of one feed, indexed by a dense instrument index (the
//! caller maps the venue's instrument code, e.g. ITCH's stock locate, to it), and one order store keyed by
//! order reference, which is unique across the feed's instruments. Each operation returns what changed
//! ([`Update`]: the level or levels touched, with their new aggregate shares and order counts) so a caller
//! can publish it without reading the book again. Nothing allocates per update once [`Books::reserve`] has
//! made room, and no input panics: a message the books cannot apply is a [`BookError`], counted in
//! [`BookCounters`]. docs/book.md states the model and the rules.

mod error;
pub mod flow;
mod levels;
mod metrics;
mod orders;
mod refmap;
mod snapshot;

pub use error::{BookError, Op};
pub use metrics::{BookQuote, LastQuotes, Metrics, IMBALANCE_SCALE};

use crate::event::{KeyId, Price, Qty};
use levels::Levels;
use orders::{Node, Orders, NIL};

/// The side of the book an order rests on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum BookSide {
    /// A buy order.
    Bid = 0,
    /// A sell order.
    Ask = 1,
}

impl BookSide {
    pub fn opposite(self) -> BookSide {
        match self {
            BookSide::Bid => BookSide::Ask,
            BookSide::Ask => BookSide::Bid,
        }
    }
}

/// A price level: aggregate shares and number of orders resting at one price.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Level {
    pub price: Price,
    pub shares: Qty,
    pub orders: u32,
}

/// A level as an update left it. A level that emptied (and is gone from the book) has `shares` and
/// `orders` 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LevelChange {
    pub side: BookSide,
    pub price: Price,
    pub shares: Qty,
    pub orders: u32,
}

/// What one applied operation changed in one instrument's book.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Update {
    pub instrument: KeyId,
    pub side: BookSide,
    changes: [LevelChange; 2],
    n: u8,
    /// `Some(BookError::Crossed)` when the book is crossed or locked after this update.
    pub crossed: Option<BookError>,
    /// `Some(BookError::OverExecution)` when an execution or cancel asked for more shares than the order
    /// had; the order was removed.
    pub over_execution: Option<BookError>,
    /// Whether a level changed was among the top `depth` of its side (the best at depth 0).
    top: bool,
}

impl Update {
    /// Whether the update changed one of the top [`Books::depth`] levels of its side (the best one when the
    /// depth is 0), or created or removed one. When it did not, the best levels and the depth sums, so
    /// every field of [`Metrics`] and of [`Books::quote`], are what they were before it.
    #[inline]
    pub fn touches_top(&self) -> bool {
        self.top
    }

    /// The levels changed, one or (a replace moving an order to another price: the old level first) two.
    #[inline]
    pub fn levels(&self) -> &[LevelChange] {
        &self.changes[..self.n as usize]
    }
}

/// An execution against a resting order (ITCH E and C).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fill {
    pub reference: u64,
    pub instrument: KeyId,
    /// The side of the resting order.
    pub side: BookSide,
    /// The resting order's limit price.
    pub resting: Price,
    /// The execution price: `resting` for [`Books::execute`], the message's price for [`Books::execute_at`].
    pub price: Price,
    /// Shares executed, as the message says (more than the order had on an over-execution).
    pub shares: Qty,
    /// Shares left resting (0: the order is gone).
    pub remaining: Qty,
}

/// What an execution did: the fill, and the level change of the book.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Execution {
    pub fill: Fill,
    pub update: Update,
}

/// A live order as the book holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Order {
    pub reference: u64,
    pub instrument: KeyId,
    pub side: BookSide,
    pub price: Price,
    /// Shares still resting.
    pub shares: Qty,
}

/// What the books have applied and refused since they were created (or restored, which restores these).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BookCounters {
    pub adds: u64,
    pub executes: u64,
    pub executes_at: u64,
    pub cancels: u64,
    pub deletes: u64,
    pub replaces: u64,
    /// Refused: execute, cancel, delete or replace of an unknown reference.
    pub unknown_reference: u64,
    /// Refused: add or replace to a reference that is live.
    pub duplicate_reference: u64,
    /// Refused: zero or negative shares, or an instrument beyond the limit.
    pub invalid: u64,
    /// Applied: executions and cancels of more shares than the order had (the order was removed).
    pub over_executions: u64,
    /// Times a book became crossed (best bid > best ask) after an update; a book that stays crossed over
    /// several updates counts once.
    pub crossed: u64,
    /// Times a book became locked (best bid = best ask), likewise once per episode. A crossed book that
    /// an update leaves locked counts here again.
    pub locked: u64,
}

impl BookCounters {
    /// Messages refused.
    pub fn rejected(&self) -> u64 {
        self.unknown_reference + self.duplicate_reference + self.invalid
    }
}

/// Most shares one order may have (2⁴⁰ − 1): larger adds and replaces are refused. A level's sum of up to
/// 2²³ such orders cannot overflow.
pub const MAX_SHARES: Qty = (1 << 40) - 1;

/// Largest instrument limit: 2²³ instrument indices.
pub const MAX_INSTRUMENTS: u32 = orders::INSTRUMENT_LIMIT;

/// Default number of levels per side the imbalance sums.
pub const DEFAULT_DEPTH: usize = 5;
/// Default instrument limit: every ITCH stock locate (a `u16`).
pub const DEFAULT_MAX_INSTRUMENTS: u32 = 1 << 16;

/// Whether a book's best bid is below, at or above its best ask (a side missing counts as below).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(u8)]
pub enum Crossing {
    #[default]
    Normal = 0,
    /// Best bid = best ask.
    Locked = 1,
    /// Best bid > best ask.
    Crossed = 2,
}

/// One instrument's book: both sides in one cache line.
#[derive(Clone, Debug)]
#[repr(align(64))]
struct Book {
    bids: Levels,
    asks: Levels,
}

impl Book {
    fn new(levels: usize) -> Self {
        Self { bids: Levels::with_capacity(levels), asks: Levels::with_capacity(levels) }
    }

    #[inline]
    fn side(&self, side: BookSide) -> &Levels {
        match side {
            BookSide::Bid => &self.bids,
            BookSide::Ask => &self.asks,
        }
    }

    #[inline]
    fn side_mut(&mut self, side: BookSide) -> &mut Levels {
        match side {
            BookSide::Bid => &mut self.bids,
            BookSide::Ask => &mut self.asks,
        }
    }
}

/// The books of every instrument of one feed.
#[derive(Debug)]
pub struct Books {
    /// Levels per side the imbalance sums over.
    depth: usize,
    max_instruments: u32,
    books: Vec<Book>,
    orders: Orders,
    /// Levels per side each book (existing or created later) has room for.
    level_capacity: usize,
    counters: BookCounters,
    /// Per instrument, the crossing its book was left in by its last update: kept apart from the books so
    /// that a book stays one cache line, and read only while some book is not normal (`abnormal` > 0).
    crossing: Vec<Crossing>,
    /// Books whose `crossing` is not normal.
    abnormal: u32,
}

impl Default for Books {
    fn default() -> Self {
        Books::new(DEFAULT_DEPTH, DEFAULT_MAX_INSTRUMENTS)
    }
}

impl Books {
    /// Empty books whose imbalance sums the top `depth` levels per side, for instrument indices below
    /// `max_instruments` (at most [`MAX_INSTRUMENTS`]).
    pub fn new(depth: usize, max_instruments: u32) -> Self {
        Self {
            depth,
            max_instruments: max_instruments.min(MAX_INSTRUMENTS),
            books: Vec::new(),
            orders: Orders::default(),
            level_capacity: 0,
            counters: BookCounters::default(),
            crossing: Vec::new(),
            abnormal: 0,
        }
    }

    /// Makes room for `orders` live orders in all and `levels` price levels per side of every book
    /// (including books of instruments not seen yet), so that updates allocate nothing while the books
    /// stay within these. Reserving for instruments up front is [`Books::reserve_instruments`].
    pub fn reserve(&mut self, orders: usize, levels: usize) {
        self.orders.reserve(orders);
        self.level_capacity = self.level_capacity.max(levels);
        for b in &mut self.books {
            b.bids.reserve(levels);
            b.asks.reserve(levels);
        }
    }

    /// Creates the books of instruments `0..n` (at most the limit) now rather than at their first add.
    pub fn reserve_instruments(&mut self, n: u32) {
        let n = n.min(self.max_instruments);
        if n as usize > self.books.len() {
            let cap = self.level_capacity;
            self.books.resize_with(n as usize, || Book::new(cap));
            self.crossing.resize(n as usize, Crossing::Normal);
        }
    }

    /// Levels per side the imbalance sums over.
    pub fn depth(&self) -> usize {
        self.depth
    }

    pub fn max_instruments(&self) -> u32 {
        self.max_instruments
    }

    /// Live orders.
    pub fn len(&self) -> usize {
        self.orders.len()
    }

    pub fn is_empty(&self) -> bool {
        self.orders.len() == 0
    }

    /// Instruments with a book (every index below this has one, possibly empty).
    pub fn instruments(&self) -> usize {
        self.books.len()
    }

    /// Live orders the books hold without allocating.
    pub fn order_capacity(&self) -> usize {
        self.orders.capacity()
    }

    pub fn counters(&self) -> &BookCounters {
        &self.counters
    }

    /// Whether `instrument`'s book is crossed or locked now.
    pub fn crossing(&self, instrument: KeyId) -> Crossing {
        self.crossing.get(instrument as usize).copied().unwrap_or_default()
    }

    /// Removes every order and level, keeping the capacity, the books of instruments and the counters.
    pub fn clear(&mut self) {
        self.orders.clear();
        for b in &mut self.books {
            b.bids.clear();
            b.asks.clear();
        }
        self.crossing.fill(Crossing::Normal);
        self.abnormal = 0;
    }

    /// A new order at the back of its price level (ITCH A and F).
    #[inline]
    pub fn add(
        &mut self,
        reference: u64,
        instrument: KeyId,
        side: BookSide,
        price: Price,
        shares: Qty,
    ) -> Result<Update, BookError> {
        if !(1..=MAX_SHARES).contains(&shares) {
            self.counters.invalid += 1;
            return Err(BookError::InvalidShares { reference, op: Op::Add, shares });
        }
        if instrument >= self.max_instruments {
            self.counters.invalid += 1;
            return Err(BookError::InstrumentOutOfRange {
                reference,
                op: Op::Add,
                instrument,
                limit: self.max_instruments,
            });
        }
        let node = Node::new(reference, instrument, side, price, shares);
        let Some(slot) = self.orders.insert(node) else {
            self.counters.duplicate_reference += 1;
            return Err(BookError::DuplicateReference { reference, op: Op::Add });
        };
        if instrument as usize >= self.books.len() {
            self.reserve_instruments(instrument + 1);
        }
        let (change, top) = self.link(slot);
        self.counters.adds += 1;
        Ok(self.finish(instrument, side, [change, change], 1, None, top))
    }

    /// Executes `shares` of a resting order at its own price (ITCH E). Partial executions keep the order's
    /// place; executing all of it, or more (an over-execution), removes it.
    #[inline]
    pub fn execute(&mut self, reference: u64, shares: Qty) -> Result<Execution, BookError> {
        self.execute_op(reference, shares, None, Op::Execute)
    }

    /// Executes `shares` of a resting order at `price`, which may differ from its limit (ITCH C).
    #[inline]
    pub fn execute_at(&mut self, reference: u64, shares: Qty, price: Price) -> Result<Execution, BookError> {
        self.execute_op(reference, shares, Some(price), Op::ExecuteAt)
    }

    /// Cancels `shares` of a resting order (ITCH X). A partial cancel keeps the order's place; cancelling
    /// all of it, or more (counted as an over-execution), removes it.
    #[inline]
    pub fn cancel(&mut self, reference: u64, shares: Qty) -> Result<Update, BookError> {
        let slot = self.live(reference, Op::Cancel)?;
        if shares <= 0 {
            self.counters.invalid += 1;
            return Err(BookError::InvalidShares { reference, op: Op::Cancel, shares });
        }
        let n = *self.orders.node(slot);
        let (change, _, over, top) = self.take(slot, shares, Op::Cancel);
        self.counters.cancels += 1;
        Ok(self.finish(n.instrument(), n.side(), [change, change], 1, over, top))
    }

    /// Removes a resting order (ITCH D).
    #[inline]
    pub fn delete(&mut self, reference: u64) -> Result<Update, BookError> {
        let slot = self.live(reference, Op::Delete)?;
        let n = *self.orders.node(slot);
        let (change, top) = self.unlink(slot);
        self.counters.deletes += 1;
        Ok(self.finish(n.instrument(), n.side(), [change, change], 1, None, top))
    }

    /// Replaces a resting order by a new one (ITCH U): `old` leaves, `new` joins the same instrument and
    /// side at `price` with `shares`, at the back of its level (time priority is lost, even at the same
    /// price). Refused as a whole, leaving the book unchanged, if `old` is not live, `shares` is not
    /// positive or `new` is live (and not `old`).
    #[inline]
    pub fn replace(&mut self, old: u64, new: u64, price: Price, shares: Qty) -> Result<Update, BookError> {
        let slot = self.live(old, Op::Replace)?;
        if !(1..=MAX_SHARES).contains(&shares) {
            self.counters.invalid += 1;
            return Err(BookError::InvalidShares { reference: new, op: Op::Replace, shares });
        }
        if new != old && self.orders.contains(new) {
            self.counters.duplicate_reference += 1;
            return Err(BookError::DuplicateReference { reference: new, op: Op::Replace });
        }
        let n = *self.orders.node(slot);
        let (left, left_top) = self.unlink(slot);
        let node = Node::new(new, n.instrument(), n.side(), price, shares);
        let Some(slot) = self.orders.insert(node) else {
            // Unreachable: `new` was checked free and a slot was just freed. Reported, not panicked on.
            self.counters.duplicate_reference += 1;
            return Err(BookError::DuplicateReference { reference: new, op: Op::Replace });
        };
        let (joined, joined_top) = self.link(slot);
        self.counters.replaces += 1;
        let (changes, k) = if price == n.price { ([joined, joined], 1) } else { ([left, joined], 2) };
        Ok(self.finish(n.instrument(), n.side(), changes, k, None, left_top || joined_top))
    }

    /// The live order with this reference.
    pub fn order(&self, reference: u64) -> Option<Order> {
        let n = self.orders.node(self.orders.slot(reference)?);
        Some(Order { reference, instrument: n.instrument(), side: n.side(), price: n.price, shares: n.shares() })
    }

    /// The levels of one side, best first.
    pub fn levels(&self, instrument: KeyId, side: BookSide) -> impl ExactSizeIterator<Item = Level> + '_ {
        let levels = self.books.get(instrument as usize).map(|b| b.side(side));
        levels.map_or(&[][..], |l| l.as_slice()).iter().rev().map(move |l| Level {
            price: levels::price(side, l.key),
            shares: l.shares,
            orders: l.orders,
        })
    }

    /// The best `n` levels of one side, best first.
    pub fn top(&self, instrument: KeyId, side: BookSide, n: usize) -> impl ExactSizeIterator<Item = Level> + '_ {
        self.levels(instrument, side).take(n)
    }

    /// The best level of one side.
    #[inline]
    pub fn best(&self, instrument: KeyId, side: BookSide) -> Option<Level> {
        let levels = self.books.get(instrument as usize)?.side(side);
        let l = levels.best()?;
        Some(Level { price: levels::price(side, l.key), shares: l.shares, orders: l.orders })
    }

    /// The orders resting at one price, in time priority (first to execute first).
    pub fn queue(&self, instrument: KeyId, side: BookSide, price: Price) -> Queue<'_> {
        let head = self
            .books
            .get(instrument as usize)
            .map(|b| b.side(side))
            .and_then(|l| l.find(side, price).ok().map(|i| l.as_slice()[i].head))
            .unwrap_or(NIL);
        Queue { orders: &self.orders, next: head }
    }

    /// Top of book, spread, mid, microprice and imbalance over the top [`Books::depth`] levels of one
    /// instrument, computed from its levels now (O(depth)). An instrument without a book has empty sides.
    pub fn metrics(&self, instrument: KeyId) -> Metrics {
        match self.books.get(instrument as usize) {
            Some(b) => Metrics::compute(&b.bids, &b.asks, self.depth),
            None => Metrics::EMPTY,
        }
    }

    /// The best levels and the imbalance of one instrument ([`BookQuote`]): [`Books::metrics`] without the
    /// spread, mid and microprice.
    #[inline]
    pub fn quote(&self, instrument: KeyId) -> BookQuote {
        match self.books.get(instrument as usize) {
            Some(b) => BookQuote::compute(&b.bids, &b.asks, self.depth),
            None => BookQuote { bid: None, ask: None, imbalance: None },
        }
    }

    /// Prefetching for a caller that holds a batch of messages: three steps per message, each taking the
    /// loads of the one before as done, so that the cache misses of messages to come overlap the work on
    /// the current one. [`Books::prefetch_reference`] some messages ahead (no memory read), then
    /// [`Books::prefetch_order`] (reads the map), then [`Books::prefetch_queue`] just before the message
    /// (reads the order and its book). For an add: [`Books::prefetch_book`], then [`Books::prefetch_level`].
    /// Each is only a hint: any order of calls, or none, gives the same results.
    #[inline]
    pub fn prefetch_reference(&self, reference: u64) {
        self.orders.prefetch(reference);
    }

    /// The order `reference` (read through the map).
    #[inline]
    pub fn prefetch_order(&self, reference: u64) {
        if let Some(slot) = self.orders.likely_slot(reference) {
            crate::hint::prefetch(self.orders.node(slot));
        }
    }

    /// The neighbours of order `reference` in its queue and its book (reads the map and the order).
    #[inline]
    pub fn prefetch_queue(&self, reference: u64) {
        if let Some(slot) = self.orders.slot(reference) {
            let n = self.orders.node(slot);
            for s in [n.prev, n.next] {
                if s != NIL {
                    crate::hint::prefetch(self.orders.node(s));
                }
            }
            if let Some(b) = self.books.get(n.instrument() as usize) {
                crate::hint::prefetch(b);
            }
        }
    }

    /// The book of `instrument` (no memory read).
    #[inline]
    pub fn prefetch_book(&self, instrument: KeyId) {
        if let Some(b) = self.books.get(instrument as usize) {
            crate::hint::prefetch(b);
        }
    }

    /// The best level of one side of `instrument`'s book (reads the book).
    #[inline]
    pub fn prefetch_level(&self, instrument: KeyId, side: BookSide) {
        if let Some(l) = self.books.get(instrument as usize).and_then(|b| b.side(side).best()) {
            crate::hint::prefetch(l);
        }
    }

    /// The slot of a live order, or the error (counted).
    #[inline]
    fn live(&mut self, reference: u64, op: Op) -> Result<u32, BookError> {
        match self.orders.slot(reference) {
            Some(s) => Ok(s),
            None => {
                self.counters.unknown_reference += 1;
                Err(BookError::OrderNotFound { reference, op })
            }
        }
    }

    #[inline]
    fn execute_op(&mut self, reference: u64, shares: Qty, at: Option<Price>, op: Op) -> Result<Execution, BookError> {
        let slot = self.live(reference, op)?;
        if shares <= 0 {
            self.counters.invalid += 1;
            return Err(BookError::InvalidShares { reference, op, shares });
        }
        let n = *self.orders.node(slot);
        let (change, remaining, over, top) = self.take(slot, shares, op);
        match op {
            Op::ExecuteAt => self.counters.executes_at += 1,
            _ => self.counters.executes += 1,
        }
        let fill = Fill {
            reference,
            instrument: n.instrument(),
            side: n.side(),
            resting: n.price,
            price: at.unwrap_or(n.price),
            shares,
            remaining,
        };
        Ok(Execution { fill, update: self.finish(n.instrument(), n.side(), [change, change], 1, over, top) })
    }

    /// Takes `shares` (> 0) off the order in `slot`: the level's new state, the shares left, the
    /// over-execution if there were fewer than `shares`, and whether the level is in the top `depth`.
    #[inline]
    fn take(&mut self, slot: u32, shares: Qty, op: Op) -> (LevelChange, Qty, Option<BookError>, bool) {
        let n = *self.orders.node(slot);
        if shares < n.shares() {
            self.orders.node_mut(slot).set_shares(n.shares() - shares);
            let depth = self.depth;
            let levels = self.books[n.instrument() as usize].side_mut(n.side());
            let (change, top) = match levels.find(n.side(), n.price) {
                Ok(i) => {
                    let top = in_top(levels.rank(i), depth);
                    let l = levels.at_mut(i);
                    l.shares -= shares;
                    (LevelChange { side: n.side(), price: n.price, shares: l.shares, orders: l.orders }, top)
                }
                Err(_) => (Self::lost(n), true),
            };
            return (change, n.shares() - shares, None, top);
        }
        let (change, top) = self.unlink(slot);
        let over = (shares > n.shares()).then(|| {
            self.counters.over_executions += 1;
            BookError::OverExecution { reference: n.reference, op, requested: shares, remaining: n.shares() }
        });
        (change, 0, over, top)
    }

    /// Puts the stored order in `slot` at the back of its level, creating the level if needed; whether the
    /// level is in the top `depth`.
    #[inline]
    fn link(&mut self, slot: u32) -> (LevelChange, bool) {
        let n = *self.orders.node(slot);
        let (rank, l) = self.books[n.instrument() as usize].side_mut(n.side()).get_or_insert(n.side(), n.price);
        let top = in_top(rank, self.depth);
        let tail = l.tail;
        l.tail = slot;
        if tail == NIL {
            l.head = slot;
        }
        l.shares += n.shares();
        l.orders += 1;
        let change = LevelChange { side: n.side(), price: n.price, shares: l.shares, orders: l.orders };
        if tail != NIL {
            self.orders.node_mut(tail).next = slot;
        }
        let node = self.orders.node_mut(slot);
        node.prev = tail;
        node.next = NIL;
        (change, top)
    }

    /// Takes the order in `slot` out of its level (removing the level when it empties) and frees the slot;
    /// whether the level was in the top `depth`.
    #[inline]
    fn unlink(&mut self, slot: u32) -> (LevelChange, bool) {
        let n = *self.orders.node(slot);
        let depth = self.depth;
        let levels = self.books[n.instrument() as usize].side_mut(n.side());
        let (change, top) = match levels.find(n.side(), n.price) {
            Ok(i) => {
                let top = in_top(levels.rank(i), depth);
                let l = levels.at_mut(i);
                l.shares -= n.shares();
                l.orders -= 1;
                if n.prev == NIL {
                    l.head = n.next;
                }
                if n.next == NIL {
                    l.tail = n.prev;
                }
                let change = LevelChange { side: n.side(), price: n.price, shares: l.shares, orders: l.orders };
                if l.orders == 0 {
                    levels.remove(i);
                }
                (change, top)
            }
            Err(_) => (Self::lost(n), true),
        };
        if n.prev != NIL {
            self.orders.node_mut(n.prev).next = n.next;
        }
        if n.next != NIL {
            self.orders.node_mut(n.next).prev = n.prev;
        }
        self.orders.free(slot);
        (change, top)
    }

    /// A live order whose level is missing: impossible while the books keep their invariants (the tests
    /// check them after every operation); reported as an empty level rather than panicking.
    #[cold]
    fn lost(n: Node) -> LevelChange {
        debug_assert!(false, "order {} has no level at {}", n.reference, n.price);
        LevelChange { side: n.side(), price: n.price, shares: 0, orders: 0 }
    }

    #[inline]
    fn finish(
        &mut self,
        instrument: KeyId,
        side: BookSide,
        changes: [LevelChange; 2],
        n: u8,
        over_execution: Option<BookError>,
        top: bool,
    ) -> Update {
        let b = &self.books[instrument as usize];
        let crossed = match (b.bids.best_key(), b.asks.best_key()) {
            (Some(bid), Some(ask)) if Price(bid) >= Price(!ask) => {
                let now = if Price(bid) == Price(!ask) { Crossing::Locked } else { Crossing::Crossed };
                self.set_crossing(instrument, now);
                Some(BookError::Crossed { instrument, bid: Price(bid), ask: Price(!ask) })
            }
            _ => {
                if self.abnormal > 0 {
                    self.set_crossing(instrument, Crossing::Normal);
                }
                None
            }
        };
        Update { instrument, side, changes, n, crossed, over_execution, top }
    }

    /// Records the crossing an update left `instrument`'s book in, counting a change into locked or crossed.
    #[cold]
    fn set_crossing(&mut self, instrument: KeyId, now: Crossing) {
        let Some(was) = self.crossing.get_mut(instrument as usize) else { return };
        if *was == now {
            return;
        }
        match now {
            Crossing::Crossed => self.counters.crossed += 1,
            Crossing::Locked => self.counters.locked += 1,
            Crossing::Normal => {}
        }
        match (*was, now) {
            (Crossing::Normal, _) => self.abnormal += 1,
            (_, Crossing::Normal) => self.abnormal -= 1,
            _ => {}
        }
        *was = now;
    }

    /// Sets every book's crossing from its levels, without counting (after a restore).
    pub(crate) fn recompute_crossing(&mut self) {
        self.crossing.clear();
        self.crossing.resize(self.books.len(), Crossing::Normal);
        self.abnormal = 0;
        for (b, c) in self.books.iter().zip(self.crossing.iter_mut()) {
            *c = match (b.bids.best_key(), b.asks.best_key()) {
                (Some(bid), Some(ask)) if Price(bid) > Price(!ask) => Crossing::Crossed,
                (Some(bid), Some(ask)) if Price(bid) == Price(!ask) => Crossing::Locked,
                _ => Crossing::Normal,
            };
            self.abnormal += (*c != Crossing::Normal) as u32;
        }
    }
}

/// Whether a level with `rank` better levels is among the top `depth` (the best, at depth 0).
#[inline]
fn in_top(rank: usize, depth: usize) -> bool {
    rank < depth.max(1)
}

/// The orders of one level in time priority ([`Books::queue`]).
#[derive(Clone, Debug)]
pub struct Queue<'a> {
    orders: &'a Orders,
    next: u32,
}

impl Iterator for Queue<'_> {
    type Item = Order;

    fn next(&mut self) -> Option<Order> {
        if self.next == NIL {
            return None;
        }
        let n = self.orders.node(self.next);
        self.next = n.next;
        Some(Order {
            reference: n.reference,
            instrument: n.instrument(),
            side: n.side(),
            price: n.price,
            shares: n.shares(),
        })
    }
}

#[cfg(test)]
mod tests;
