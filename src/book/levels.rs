//! One side of one instrument's book by price level (L2): a vector sorted from the worst price to the best,
//! each level holding its aggregate shares, its order count and the ends of its queue of orders.
//!
//! The best level is the last element, so the top of book is one load, and a level created or emptied
//! near the top moves only the few better levels behind it. docs/book.md has the measurement against a
//! `BTreeMap`.

use super::orders::NIL;
use super::BookSide;
use crate::event::{Price, Qty};

/// A price level and the ends of its queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LevelNode {
    /// The price as a sort key ([`key`]).
    pub key: i64,
    pub shares: Qty,
    pub orders: u32,
    /// Oldest order (first in time priority).
    pub head: u32,
    /// Newest order.
    pub tail: u32,
}

/// The sort key of a price: the price for bids, its bitwise complement for asks, so that the best price
/// is the largest key on both sides.
#[inline]
pub(crate) fn key(side: BookSide, price: Price) -> i64 {
    match side {
        BookSide::Bid => price.0,
        BookSide::Ask => !price.0,
    }
}

/// The price of a sort key ([`key`] is its own inverse).
#[inline]
pub(crate) fn price(side: BookSide, key: i64) -> Price {
    match side {
        BookSide::Bid => Price(key),
        BookSide::Ask => Price(!key),
    }
}

/// The levels of one side. The side is not stored: the book that owns both sides passes it, which keeps
/// a book's two sides in one cache line.
#[derive(Clone, Debug, Default)]
pub(crate) struct Levels {
    v: Vec<LevelNode>,
    /// Key of the best level, kept so that a crossed-book check reads no level (valid when not empty).
    best: i64,
}

impl Levels {
    pub fn with_capacity(capacity: usize) -> Self {
        Self { v: Vec::with_capacity(capacity), best: 0 }
    }

    pub fn reserve(&mut self, levels: usize) {
        self.v.reserve(levels.saturating_sub(self.v.len()));
    }

    pub fn len(&self) -> usize {
        self.v.len()
    }

    /// Worst to best.
    #[inline]
    pub fn as_slice(&self) -> &[LevelNode] {
        &self.v
    }

    #[inline]
    pub fn best(&self) -> Option<&LevelNode> {
        self.v.last()
    }

    /// The key of the best level, from the cached copy.
    #[inline]
    pub fn best_key(&self) -> Option<i64> {
        (!self.v.is_empty()).then_some(self.best)
    }

    /// The index of the level at `price`, or where it would be inserted.
    #[inline]
    pub fn find(&self, side: BookSide, price: Price) -> Result<usize, usize> {
        let k = key(side, price);
        // Most updates are at the best level: one comparison before the search.
        match self.v.last() {
            Some(l) if l.key == k => Ok(self.v.len() - 1),
            Some(l) if l.key < k => Err(self.v.len()),
            _ => self.v.binary_search_by(|l| l.key.cmp(&k)),
        }
    }

    /// How many levels are better than the one at index `i` (0: the best).
    #[inline]
    pub fn rank(&self, i: usize) -> usize {
        self.v.len() - 1 - i
    }

    /// The level at `price`, created empty where it belongs if there is none, and its [`Levels::rank`].
    #[inline]
    pub fn get_or_insert(&mut self, side: BookSide, price: Price) -> (usize, &mut LevelNode) {
        let i = match self.find(side, price) {
            Ok(i) => i,
            Err(i) => {
                let key = key(side, price);
                if i == self.v.len() {
                    self.best = key;
                }
                self.v.insert(i, LevelNode { key, shares: 0, orders: 0, head: NIL, tail: NIL });
                i
            }
        };
        (self.v.len() - 1 - i, &mut self.v[i])
    }

    #[inline]
    pub fn at_mut(&mut self, i: usize) -> &mut LevelNode {
        &mut self.v[i]
    }

    #[inline]
    pub fn remove(&mut self, i: usize) {
        self.v.remove(i);
        if i == self.v.len() {
            if let Some(l) = self.v.last() {
                self.best = l.key;
            }
        }
    }

    pub fn clear(&mut self) {
        self.v.clear();
    }

    /// Appends a level better than all (restore writes levels worst first).
    pub fn push_best(&mut self, l: LevelNode) {
        self.best = l.key;
        self.v.push(l);
    }
}
