//! The live orders of all books: a slab of order nodes linked into their price level's queue, found by
//! reference through a hash map.
//!
//! A removed order's slot goes on a free list and is the next one used, so memory follows the number of
//! live orders, not the number of orders ever seen. The map is [`RefMap`]; it keeps a tag of each reference,
//! and the node in the slot confirms the reference.

use super::refmap::RefMap;
use super::BookSide;
use crate::event::{KeyId, Price, Qty};

/// "No slot": the end of a queue or of the free list.
pub(crate) const NIL: u32 = u32::MAX;

/// One live order, linked to its neighbours in time priority at its price level. 32 bytes, so that a
/// node never straddles two cache lines.
#[derive(Clone, Copy, Debug)]
#[repr(align(32))]
pub(crate) struct Node {
    pub reference: u64,
    pub price: Price,
    /// Shares still resting (bits 0–39, > 0 while live), side (bit 40: ask), instrument (bits 41–63).
    packed: u64,
    /// The order ahead of this one at its level (`NIL` at the front).
    pub prev: u32,
    /// The order behind this one (`NIL` at the back); for a free slot, the next free slot.
    pub next: u32,
}

/// Bits of [`Node::packed`] holding the shares.
const SHARE_BITS: u32 = 40;
const SHARE_MASK: u64 = (1 << SHARE_BITS) - 1;
/// Instrument indices a node holds: `2^23`.
pub(crate) const INSTRUMENT_LIMIT: u32 = 1 << 23;

impl Node {
    /// `shares` within `0..2^40` and `instrument` below [`INSTRUMENT_LIMIT`] (the books check both).
    #[inline]
    pub fn new(reference: u64, instrument: KeyId, side: BookSide, price: Price, shares: Qty) -> Node {
        debug_assert!((0..=SHARE_MASK as Qty).contains(&shares) && instrument < INSTRUMENT_LIMIT);
        let packed =
            (shares as u64 & SHARE_MASK) | (side as u64) << SHARE_BITS | (instrument as u64) << (SHARE_BITS + 1);
        Node { reference, price, packed, prev: NIL, next: NIL }
    }

    #[inline]
    pub fn shares(&self) -> Qty {
        (self.packed & SHARE_MASK) as Qty
    }

    #[inline]
    pub fn set_shares(&mut self, shares: Qty) {
        self.packed = (self.packed & !SHARE_MASK) | (shares as u64 & SHARE_MASK);
    }

    #[inline]
    pub fn side(&self) -> BookSide {
        if self.packed >> SHARE_BITS & 1 == 0 {
            BookSide::Bid
        } else {
            BookSide::Ask
        }
    }

    #[inline]
    pub fn instrument(&self) -> KeyId {
        (self.packed >> (SHARE_BITS + 1)) as KeyId
    }
}

#[derive(Debug)]
pub(crate) struct Orders {
    nodes: Vec<Node>,
    /// First free slot (`NIL`: none; the slab grows).
    free: u32,
    by_ref: RefMap,
}

impl Default for Orders {
    fn default() -> Self {
        Self { nodes: Vec::new(), free: NIL, by_ref: RefMap::default() }
    }
}

impl Orders {
    /// Room for `orders` live orders without allocating.
    pub fn reserve(&mut self, orders: usize) {
        self.nodes.reserve(orders.saturating_sub(self.nodes.len()));
        self.by_ref.reserve(orders);
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
        let nodes = &self.nodes;
        self.by_ref.get(reference, |s| nodes.get(s as usize).is_some_and(|n| n.reference == reference))
    }

    #[inline]
    pub fn contains(&self, reference: u64) -> bool {
        self.slot(reference).is_some()
    }

    /// The slot `reference` is probably in (not confirmed against the node): for prefetching the node.
    #[inline]
    pub fn likely_slot(&self, reference: u64) -> Option<u32> {
        self.by_ref.candidate(reference)
    }

    /// Starts loading the map's bucket for `reference`.
    #[inline]
    pub fn prefetch(&self, reference: u64) {
        self.by_ref.prefetch(reference);
    }

    /// Stores `node` (unlinked) under its reference; `None` if the reference is live already.
    #[inline]
    pub fn insert(&mut self, node: Node) -> Option<u32> {
        let slot = if self.free != NIL {
            self.free
        } else {
            // More than 2³² − 1 live orders cannot be linked; no feed comes near it.
            u32::try_from(self.nodes.len()).ok().filter(|&s| s != NIL)?
        };
        let (nodes, r) = (&self.nodes, node.reference);
        if !self.by_ref.insert(r, slot, |s| nodes.get(s as usize).is_some_and(|n| n.reference == r)) {
            return None;
        }
        if self.free != NIL {
            self.free = self.nodes[slot as usize].next;
            self.nodes[slot as usize] = node;
        } else {
            self.nodes.push(node);
        }
        Some(slot)
    }

    /// Forgets the order in `slot` (already unlinked from its level) and frees the slot.
    #[inline]
    pub fn free(&mut self, slot: u32) {
        let n = &mut self.nodes[slot as usize];
        self.by_ref.remove(n.reference, slot);
        n.next = self.free;
        n.set_shares(0);
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
        self.nodes.capacity().min(self.by_ref.capacity())
    }
}
