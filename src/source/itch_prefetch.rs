//! Looking ahead in an ITCH feed: the order references and books the next messages will touch, prefetched
//! while the current message is applied, so that their cache misses overlap its work.
//!
//! With many live orders the books are bound by memory latency: a message about an order not touched
//! lately misses the cache on the reference map, then on the order, then on its queue neighbours and its
//! book, one after the other (docs/book.md, "Prefetching"). The next messages of a file are already in
//! memory, so the source reads their type and order reference before their turn and starts those loads in
//! two steps: the map bucket [`AHEAD`] messages ahead, the order halfway (reading the bucket, loaded by
//! then). These are hints only: the books change exactly as they would without them.
//!
//! The books' third step, [`Books::prefetch_queue`] (the order's queue neighbours and book, one message
//! ahead), is not taken: since the reference map is sized by the live orders, most of what it loads is in
//! L2 already, and its extra lookup cost more than it saved (BENCHMARKS.md (h)).

use crate::book::{BookSide, Books};
use crate::event::KeyId;

/// How many messages ahead the first step looks.
pub const AHEAD: usize = 8;

/// What a message ahead will touch.
#[derive(Clone, Copy, Debug)]
struct Hint {
    /// Byte offset of the message's frame.
    offset: u64,
    /// The type byte for the order messages, 0 for the others.
    kind: u8,
    side: BookSide,
    locate: u16,
    /// The order (the original one of a replace).
    reference: u64,
}

const NO_HINT: Hint = Hint { offset: 0, kind: 0, side: BookSide::Bid, locate: 0, reference: 0 };

/// The messages ahead of the reader, scanned and partly prefetched.
#[derive(Debug)]
pub struct Prefetcher {
    ring: [Hint; AHEAD],
    /// The oldest hint is `ring[head]`; `len` are pending.
    head: usize,
    len: usize,
    /// Offset of the first frame not scanned yet.
    scanned: u64,
}

impl Default for Prefetcher {
    fn default() -> Self {
        Self { ring: [NO_HINT; AHEAD], head: 0, len: 0, scanned: 0 }
    }
}

impl Prefetcher {
    pub fn new() -> Self {
        Self::default()
    }

    /// Called before reading the frame at byte `position`, `buffered` being the bytes in memory from there
    /// on (`ItchFile::buffered`) and `ids` the instrument of each stock locate: scans up to [`AHEAD`] frames
    /// ahead and advances the prefetch steps of the messages between.
    #[inline]
    pub fn step(&mut self, position: u64, buffered: &[u8], books: &Books, ids: &[KeyId]) {
        while self.len > 0 && self.ring[self.head].offset < position {
            self.head = (self.head + 1) % AHEAD;
            self.len -= 1;
        }
        if self.len == 0 {
            // At the start, or after a jump (a frame error): scan from the reader's position.
            self.scanned = position;
        }
        while self.len < AHEAD {
            let Some(rest) = buffered.get((self.scanned - position) as usize..) else { break };
            let Some((len, body)) = rest.split_first_chunk::<2>() else { break };
            let n = u16::from_be_bytes(*len) as usize;
            let Some(msg) = body.get(..n) else { break };
            let h = hint(self.scanned, msg);
            self.scanned += 2 + n as u64;
            first(&h, msg, books, ids);
            self.ring[(self.head + self.len) % AHEAD] = h;
            self.len += 1;
        }
        if self.len > AHEAD / 2 {
            second(&self.ring[(self.head + AHEAD / 2) % AHEAD], books, ids);
        }
    }
}

/// The type, order reference, and for an add its stock locate and side, at their offsets in the layouts
/// (docs/formats.md); `kind` 0 for anything else or too short.
#[inline]
fn hint(offset: u64, m: &[u8]) -> Hint {
    let reference = |m: &[u8]| m.get(11..19).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes);
    let mut h = Hint { offset, ..NO_HINT };
    match m.first() {
        Some(&k @ (b'A' | b'F')) if m.len() >= 20 => {
            h.kind = k;
            h.locate = u16::from_be_bytes([m[1], m[2]]);
            h.side = if m[19] == b'B' { BookSide::Bid } else { BookSide::Ask };
            h.reference = reference(m).unwrap_or(0);
        }
        Some(&k @ (b'E' | b'C' | b'X' | b'D' | b'U')) => {
            if let Some(r) = reference(m) {
                h.kind = k;
                h.reference = r;
            }
        }
        _ => {}
    }
    h
}

/// Step 1, no memory read: the map bucket of the reference (both of a replace; an add's, where it will go)
/// and an add's book.
#[inline]
fn first(h: &Hint, m: &[u8], books: &Books, ids: &[KeyId]) {
    match h.kind {
        0 => {}
        b'A' | b'F' => {
            books.prefetch_reference(h.reference);
            if let Some(&k) = ids.get(h.locate as usize) {
                books.prefetch_book(k);
            }
        }
        b'U' => {
            books.prefetch_reference(h.reference);
            if let Some(b) = m.get(19..27).and_then(|b| b.try_into().ok()) {
                books.prefetch_reference(u64::from_be_bytes(b));
            }
        }
        _ => books.prefetch_reference(h.reference),
    }
}

/// Step 2, reads the bucket (and an add's book): the order, an add's best level.
#[inline]
fn second(h: &Hint, books: &Books, ids: &[KeyId]) {
    match h.kind {
        0 => {}
        b'A' | b'F' => {
            if let Some(&k) = ids.get(h.locate as usize) {
                books.prefetch_level(k, h.side);
            }
        }
        _ => books.prefetch_order(h.reference),
    }
}
