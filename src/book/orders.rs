//! The live orders of all books: a slab of order nodes linked into their price level's queue, found by
//! reference through a hash map.
//!
//! A removed order's slot goes on a free list and is the next one used, so memory follows the number of
//! live orders, not the number of orders ever seen.

use super::BookSide;
use crate::event::{KeyId, Price, Qty};
use rustc_hash::FxHashMap;
use std::collections::hash_map::Entry;

/// "No slot": the end of a queue or of the free list.
pub(crate) const NIL: u32 = u32::MAX;

/// One live order, linked to its neighbours in time priority at its price level.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Node {
    pub reference: u64,
    pub price: Price,
    /// Shares still resting (> 0 while live).
    pub shares: Qty,
    /// The order ahead of this one at its level (`NIL` at the front).
    pub prev: u32,
    /// The order behind this one (`NIL` at the back); for a free slot, the next free slot.
    pub next: u32,
    pub instrument: KeyId,
    pub side: BookSide,
}

#[derive(Debug)]
pub(crate) struct Orders {
    nodes: Vec<Node>,
    /// First free slot (`NIL`: none; the slab grows).
    free: u32,
    by_ref: FxHashMap<u64, u32>,
}

impl Default for Orders {
    fn default() -> Self {
        Self { nodes: Vec::new(), free: NIL, by_ref: FxHashMap::default() }
    }
}

impl Orders {
    /// Room for `orders` live orders without allocating.
    ///
    /// The map gets room for twice as many: removals leave tombstones in it, and a map more than half full
    /// of live entries clears them by growing (allocating) instead of rehashing in place.
    pub fn reserve(&mut self, orders: usize) {
        self.nodes.reserve(orders.saturating_sub(self.nodes.len()));
        let map = orders.saturating_mul(2);
        self.by_ref.reserve(map.saturating_sub(self.by_ref.len()));
    }

    pub fn len(&self) -> usize {
        self.by_ref.len()
    }

    pub fn clear(&mut self) {
        self.nodes.clear();
        self.free = NIL;
        self.by_ref.clear();
    }

    #[inline]
    pub fn slot(&self, reference: u64) -> Option<u32> {
        self.by_ref.get(&reference).copied()
    }

    #[inline]
    pub fn contains(&self, reference: u64) -> bool {
        self.by_ref.contains_key(&reference)
    }

    /// Stores `node` (unlinked) under its reference; `None` if the reference is live already.
    #[inline]
    pub fn insert(&mut self, node: Node) -> Option<u32> {
        let Entry::Vacant(v) = self.by_ref.entry(node.reference) else { return None };
        let slot = if self.free != NIL {
            let s = self.free;
            self.free = self.nodes[s as usize].next;
            self.nodes[s as usize] = node;
            s
        } else {
            // More than 2³² − 1 live orders cannot be linked; no feed comes near it.
            let s = u32::try_from(self.nodes.len()).ok().filter(|&s| s != NIL)?;
            self.nodes.push(node);
            s
        };
        v.insert(slot);
        Some(slot)
    }

    /// Forgets the order in `slot` (already unlinked from its level) and frees the slot.
    #[inline]
    pub fn free(&mut self, slot: u32) {
        let n = &mut self.nodes[slot as usize];
        self.by_ref.remove(&n.reference);
        n.next = self.free;
        n.shares = 0;
        self.free = slot;
    }

    #[inline]
    pub fn node(&self, slot: u32) -> &Node {
        &self.nodes[slot as usize]
    }

    #[inline]
    pub fn node_mut(&mut self, slot: u32) -> &mut Node {
        &mut self.nodes[slot as usize]
    }

    /// Capacity in orders the slab and the map hold without allocating.
    pub fn capacity(&self) -> usize {
        self.nodes.capacity().min(self.by_ref.capacity() / 2)
    }
}
