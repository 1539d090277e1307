//! Encoding of operator state into checkpoint sections: little-endian fixed-width integers, no text.
//!
//! An operator writes its parameters first and its keys after them; restoring checks the parameters
//! against the running configuration, so a checkpoint taken with a 1 s window is never poured into a 2 s
//! one. Every length is checked against the bytes left before anything is allocated for it, so a corrupt
//! section is an error naming the offset, never a panic or a huge allocation.

use crate::event::{KeyId, Nanos, Price};
use thiserror::Error;

/// What a section could not be decoded into.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("state section truncated at byte {at}: {need} more bytes needed for {what}")]
    Truncated { at: usize, need: usize, what: &'static str },
    #[error("state section invalid at byte {at}: {what}")]
    Invalid { at: usize, what: String },
    #[error("state section has {left} bytes left over at byte {at}")]
    Trailing { at: usize, left: usize },
    #[error("checkpoint was taken with {what} = {found}, the configuration has {expected}")]
    Mismatch { what: &'static str, expected: String, found: String },
}

/// Appends fixed-width little-endian values to a reused buffer.
#[derive(Debug, Default)]
pub struct Enc {
    buf: Vec<u8>,
}

impl Enc {
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes room for `n` more bytes at once.
    pub fn reserve(&mut self, n: usize) {
        self.buf.reserve(n);
    }

    /// Empties the buffer, keeping its capacity.
    pub fn clear(&mut self) {
        self.buf.clear();
    }

    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    pub fn into_vec(self) -> Vec<u8> {
        self.buf
    }

    /// Writes into `buf` (emptied), reusing its capacity.
    pub fn from_vec(mut buf: Vec<u8>) -> Enc {
        buf.clear();
        Enc { buf }
    }

    /// Takes the bytes out, leaving `spare` (emptied) as the buffer to write into next: two buffers taking
    /// turns, so a snapshot neither copies its bytes nor writes into freshly mapped pages.
    pub fn swap_out(&mut self, mut spare: Vec<u8>) -> Vec<u8> {
        spare.clear();
        std::mem::replace(&mut self.buf, spare)
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    #[inline]
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    #[inline]
    pub fn bool(&mut self, v: bool) {
        self.buf.push(v as u8);
    }
    #[inline]
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    #[inline]
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    #[inline]
    pub fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    #[inline]
    pub fn i128(&mut self, v: i128) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    /// The exact bits: a restored EMA continues bit for bit.
    #[inline]
    pub fn f64(&mut self, v: f64) {
        self.u64(v.to_bits());
    }
    #[inline]
    pub fn price(&mut self, p: Price) {
        self.i64(p.0);
    }
    #[inline]
    pub fn key(&mut self, k: KeyId) {
        self.u32(k);
    }
    /// Many keys at once, as [`Enc::key`] would write them one by one: grown once and filled in 4-byte
    /// chunks, which the compiler turns into a copy (a snapshot's timers are a million keys at a barrier).
    pub fn keys(&mut self, ks: &[KeyId]) {
        let start = self.buf.len();
        self.buf.resize(start + ks.len() * 4, 0);
        for (dst, k) in self.buf[start..].chunks_exact_mut(4).zip(ks) {
            dst.copy_from_slice(&k.to_le_bytes());
        }
    }
    #[inline]
    pub fn len_of(&mut self, n: usize) {
        self.u64(n as u64);
    }
    /// Bytes as they are (another encoding's output).
    pub fn raw(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }

    /// Bytes with their length in front.
    pub fn blob(&mut self, b: &[u8]) {
        self.len_of(b.len());
        self.buf.extend_from_slice(b);
    }
    /// A value whose position is filled in later (a count not known until the items are written).
    pub fn placeholder_u64(&mut self) -> usize {
        let at = self.buf.len();
        self.u64(0);
        at
    }
    pub fn fill_u64(&mut self, at: usize, v: u64) {
        self.buf[at..at + 8].copy_from_slice(&v.to_le_bytes());
    }
}

/// An operator's snapshot written key by key while the operator goes on: a key is written either by the
/// cursor walking the keys a few thousand at a time between the shard's batches, or — if the operator is
/// about to change it first — right before that change. Either way it is written as it was at the barrier,
/// and the shard never stops for longer than one step.
#[derive(Debug, Default)]
pub struct Incremental {
    enc: Enc,
    /// Per key: the snapshot that has written it (a key is written at most once per snapshot).
    saved: Vec<u32>,
    epoch: u32,
    active: bool,
    cursor: usize,
    /// Keys at the barrier: ids from here on were created after it and held nothing before.
    limit: usize,
    count_at: usize,
    written: u64,
    /// Bytes and keys of the last snapshot: what the next one reserves room for.
    last: (usize, usize),
}

impl Incremental {
    /// Starts a snapshot of an operator with `keys` keys; returns the buffer for its header (parameters,
    /// watermark, timers). Call [`Incremental::keys_follow`] after writing it.
    pub fn begin(&mut self, keys: usize) -> &mut Enc {
        self.enc.clear();
        // Room for all of it now, sized by the last snapshot's bytes per key: a buffer grown by doubling
        // copies itself while the shard waits (80 MB at once, at a million windows).
        let per_key = match self.last {
            (bytes, n) if n > 0 => bytes / n + 1,
            _ => 128,
        };
        self.enc.reserve(keys.saturating_mul(per_key).saturating_add(4096));
        self.epoch = self.epoch.wrapping_add(1).max(1);
        self.active = true;
        self.cursor = 0;
        self.limit = keys;
        self.written = 0;
        &mut self.enc
    }

    /// The header is written; keys follow (their count is filled in at the end).
    pub fn keys_follow(&mut self) {
        self.count_at = self.enc.placeholder_u64();
    }

    /// A snapshot is being written.
    #[inline]
    pub fn active(&self) -> bool {
        self.active
    }

    /// True if `key` has not been written in this snapshot yet — and from now on counts as written.
    #[inline]
    pub fn claim(&mut self, key: usize) -> bool {
        if key >= self.saved.len() {
            self.saved.resize(key + 1, 0);
        }
        if self.saved[key] == self.epoch {
            return false;
        }
        self.saved[key] = self.epoch;
        true
    }

    /// The buffer to write a claimed key into; counts it.
    #[inline]
    pub fn key_enc(&mut self) -> &mut Enc {
        self.written += 1;
        &mut self.enc
    }

    /// The next keys for the cursor to write (at most `budget`); `None` once it has passed them all, which
    /// completes the snapshot.
    pub fn step(&mut self, budget: usize) -> Option<std::ops::Range<usize>> {
        if self.cursor >= self.limit {
            if self.active {
                self.enc.fill_u64(self.count_at, self.written);
                self.active = false;
                self.last = (self.enc.len(), self.written as usize);
            }
            return None;
        }
        let end = self.cursor.saturating_add(budget.max(1)).min(self.limit);
        let r = self.cursor..end;
        self.cursor = end;
        Some(r)
    }

    /// The complete snapshot's bytes, leaving `spare` as the next snapshot's buffer.
    pub fn take(&mut self, spare: Vec<u8>) -> Vec<u8> {
        self.enc.swap_out(spare)
    }
}

/// Reads what [`Enc`] wrote, checking every read against the bytes left.
#[derive(Debug)]
pub struct Dec<'a> {
    buf: &'a [u8],
    pos: usize,
    key_limit: u32,
}

/// Key ids a [`Dec`] accepts unless told the real number (per-key state lives in vectors indexed by id,
/// so an id read from a damaged section must not size one).
pub const DEFAULT_KEY_LIMIT: u32 = 1 << 24;

impl<'a> Dec<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0, key_limit: DEFAULT_KEY_LIMIT }
    }

    /// Accepts key ids below `limit` only: the number of keys the checkpoint's symbol table holds.
    pub fn with_key_limit(buf: &'a [u8], limit: u32) -> Self {
        Self { buf, pos: 0, key_limit: limit }
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Reserves `per_key` (a vector indexed by key id) to the number of keys this decoder accepts, once,
    /// instead of growing it key by key (a million keys otherwise cost a dozen reallocations and copies).
    /// Not for a decoder without a real limit ([`Dec::new`]): its default would reserve for 16 M keys.
    pub fn reserve_keys<T>(&self, per_key: &mut Vec<T>) {
        let limit = self.key_limit as usize;
        if limit > per_key.len() && self.key_limit < DEFAULT_KEY_LIMIT {
            per_key.reserve(limit - per_key.len());
        }
    }

    fn take<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let end = self.pos.checked_add(N).filter(|&e| e <= self.buf.len());
        let Some(end) = end else {
            return Err(DecodeError::Truncated { at: self.pos, need: N - (self.buf.len() - self.pos), what });
        };
        let mut a = [0u8; N];
        a.copy_from_slice(&self.buf[self.pos..end]);
        self.pos = end;
        Ok(a)
    }

    pub fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take::<1>(what)?[0])
    }
    pub fn bool(&mut self, what: &'static str) -> Result<bool, DecodeError> {
        let at = self.pos;
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(DecodeError::Invalid { at, what: format!("{what}: {v} is not a boolean") }),
        }
    }
    pub fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        self.take(what).map(u32::from_le_bytes)
    }
    pub fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        self.take(what).map(u64::from_le_bytes)
    }
    pub fn i64(&mut self, what: &'static str) -> Result<i64, DecodeError> {
        self.take(what).map(i64::from_le_bytes)
    }
    pub fn i128(&mut self, what: &'static str) -> Result<i128, DecodeError> {
        self.take(what).map(i128::from_le_bytes)
    }
    pub fn f64(&mut self, what: &'static str) -> Result<f64, DecodeError> {
        self.u64(what).map(f64::from_bits)
    }
    pub fn price(&mut self, what: &'static str) -> Result<Price, DecodeError> {
        self.i64(what).map(Price)
    }
    pub fn key(&mut self) -> Result<KeyId, DecodeError> {
        let at = self.pos;
        let k = self.u32("key")?;
        if k >= self.key_limit {
            return Err(DecodeError::Invalid {
                at,
                what: format!("key id {k}: only {} keys are known", self.key_limit),
            });
        }
        Ok(k)
    }

    /// Bytes written by [`Enc::blob`], borrowed.
    pub fn blob(&mut self, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let n = self.count(1, what)?;
        let b = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(b)
    }

    /// A count of items of at least `min_item` bytes each: rejected when the bytes left cannot hold them,
    /// so a flipped length never turns into a huge allocation.
    pub fn count(&mut self, min_item: usize, what: &'static str) -> Result<usize, DecodeError> {
        let at = self.pos;
        let n = self.u64(what)?;
        let left = self.buf.len() - self.pos;
        match usize::try_from(n) {
            Ok(n) if n.saturating_mul(min_item.max(1)) <= left => Ok(n),
            _ => Err(DecodeError::Invalid { at, what: format!("{what}: {n} items cannot fit in {left} bytes") }),
        }
    }

    /// Checks a parameter the checkpoint was taken with against the running configuration's.
    pub fn expect_i64(&mut self, what: &'static str, expected: i64) -> Result<(), DecodeError> {
        let found = self.i64(what)?;
        if found != expected {
            return Err(DecodeError::Mismatch { what, expected: expected.to_string(), found: found.to_string() });
        }
        Ok(())
    }

    pub fn expect_u8(&mut self, what: &'static str, expected: u8) -> Result<(), DecodeError> {
        let found = self.u8(what)?;
        if found != expected {
            return Err(DecodeError::Mismatch { what, expected: expected.to_string(), found: found.to_string() });
        }
        Ok(())
    }

    /// Fails if bytes are left: a section is read whole or not at all.
    pub fn finish(&self) -> Result<(), DecodeError> {
        match self.buf.len() - self.pos {
            0 => Ok(()),
            left => Err(DecodeError::Trailing { at: self.pos, left }),
        }
    }
}

/// Checks that a timestamp pair is ordered, for decoded state that must be (`what` names it).
pub fn ordered(at: usize, a: Nanos, b: Nanos, what: &'static str) -> Result<(), DecodeError> {
    if a <= b {
        Ok(())
    } else {
        Err(DecodeError::Invalid { at, what: format!("{what}: {a} after {b}") })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_at_once_are_keys_one_by_one() {
        let ks: Vec<KeyId> = (0..1000u32).map(|i| i.wrapping_mul(2_654_435_761)).collect();
        let (mut a, mut b) = (Enc::new(), Enc::new());
        a.u8(7);
        b.u8(7);
        a.keys(&ks);
        for &k in &ks {
            b.key(k);
        }
        a.keys(&[]);
        assert_eq!(a.bytes(), b.bytes());
    }

    #[test]
    fn round_trip_and_errors() {
        let mut e = Enc::new();
        e.u8(7);
        e.bool(true);
        e.u32(0xdead_beef);
        e.i64(-5);
        e.i128(-(1i128 << 100));
        e.f64(0.1);
        let at = e.placeholder_u64();
        e.fill_u64(at, 3);
        let b = e.bytes().to_vec();
        let mut d = Dec::new(&b);
        assert_eq!(d.u8("a").unwrap(), 7);
        assert!(d.bool("b").unwrap());
        assert_eq!(d.u32("c").unwrap(), 0xdead_beef);
        assert_eq!(d.i64("d").unwrap(), -5);
        assert_eq!(d.i128("e").unwrap(), -(1i128 << 100));
        assert_eq!(d.f64("f").unwrap().to_bits(), 0.1f64.to_bits());
        assert!(matches!(d.count(1, "g"), Err(DecodeError::Invalid { .. })), "3 items, 0 bytes left");
        d.finish().unwrap();

        let mut d = Dec::new(&b[..3]);
        d.u8("a").unwrap();
        assert!(matches!(d.bool("b"), Ok(true)));
        assert_eq!(d.u32("c"), Err(DecodeError::Truncated { at: 2, need: 3, what: "c" }));
        let mut d = Dec::new(&[2u8]);
        assert!(matches!(d.bool("flag"), Err(DecodeError::Invalid { at: 0, .. })));
        let d = Dec::new(&[0u8; 2]);
        assert_eq!(d.finish(), Err(DecodeError::Trailing { at: 0, left: 2 }));
        let five = 5i64.to_le_bytes();
        let mut d = Dec::new(&five);
        let err = d.expect_i64("window size", 6).unwrap_err();
        assert_eq!(err.to_string(), "checkpoint was taken with window size = 5, the configuration has 6");
    }
}
