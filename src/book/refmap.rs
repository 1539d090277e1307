//! The map from order reference to slot: open addressing with linear probing and backward-shift deletion
//! in 8-byte buckets, sized by the live orders and grown by doubling a little at a time, never all at once.
//!
//! A bucket holds the slot and a 32-bit tag of the reference, not the reference: the order in the slot
//! holds it, and the caller confirms a tag match against it ([`RefMap::get`] takes that check), so twice as
//! many buckets fit a cache line as with the reference in the bucket. The table is sized by the live
//! orders (at most half full), not by [`RefMap::reserve`]: a table reserved for a million orders but holding
//! twenty thousand would spread them over 32 MiB and miss the cache on nearly every message.
//!
//! Growth never stops the world. Past half full, the table's entries stay where they are (the *old* table)
//! and every insert or removal moves the next [`MIGRATE`] buckets' worth of them into a table twice the
//! size; a lookup tries the new table, then the old one, until it is drained. The new table was zeroed
//! beforehand, [`ZERO`] buckets per operation, once the current one was 3/8 full. Both rates are set so
//! that the old table is drained and the next one zeroed before the new one is half full (see
//! [`RefMap::work`]), so no operation does more than a few cache lines of that work. Backward-shift
//! deletion leaves no tombstones, so nothing else ever rehashes.
//!
//! The hash keeps references that are close together close together in the table (venues hand out
//! references mostly in increasing order, and most messages are about recent orders): the low 3 bits of a
//! reference stay the low 3 bits of its home, so 8 consecutive references share one cache line. That is
//! for speed only; any references give the same results.

/// Buckets of the smallest table.
const MIN_BUCKETS: usize = 16;
/// The largest table: a home is 32 bits of the tag (slots are `u32`, so the slab is full long before).
const MAX_BUCKETS: usize = 1 << 32;
/// Units of draining per insert or removal: a bucket of the old table looked at, or an entry moved.
const MIGRATE: usize = 8;
/// Buckets of the next table zeroed per insert or removal while it is prepared.
const ZERO: usize = 32;

/// The tag of a reference: the top 29 bits of a Fibonacci hash of all but its low 3 bits, then those
/// 3 bits. Every table's home of a reference is a function of its tag ([`Table::home`]).
#[inline]
fn tag(r: u64) -> u32 {
    let h = (r >> 3).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    ((h >> 32) as u32 & !7) | (r & 7) as u32
}

/// A bucket: the tag in the high half, slot + 1 in the low half; 0 is empty (so a zeroed table is empty).
#[inline]
fn bucket(tag: u32, slot: u32) -> u64 {
    (tag as u64) << 32 | (slot as u64 + 1)
}

#[inline]
fn is_empty(b: u64) -> bool {
    b as u32 == 0
}

#[inline]
fn slot_of(b: u64) -> u32 {
    (b as u32).wrapping_sub(1)
}

#[inline]
fn tag_of(b: u64) -> u32 {
    (b >> 32) as u32
}

/// One open-addressing table: a power of two of buckets (or none).
#[derive(Clone, Debug, Default)]
struct Table {
    b: Vec<u64>,
    /// `32 − log2(buckets)`: how far down the tag's hash bits go in [`Table::home`].
    shift: u32,
}

impl Table {
    /// Takes `b` (no buckets, or a power of two of them, at least [`MIN_BUCKETS`]) as the buckets.
    fn set(&mut self, b: Vec<u64>) {
        debug_assert!(b.is_empty() || b.len().is_power_of_two() && b.len() >= MIN_BUCKETS);
        self.shift = 32 - b.len().max(MIN_BUCKETS).trailing_zeros();
        self.b = b;
    }

    /// The top `log2(buckets) − 3` bits of the tag's hash pick the block of 8, its low 3 bits the bucket.
    #[inline]
    fn home(&self, t: u32) -> usize {
        ((((t >> 3) as u64 >> self.shift) << 3) | (t & 7) as u64) as usize
    }

    #[inline]
    fn mask(&self) -> usize {
        self.b.len() - 1
    }

    /// The index of the first bucket from `t`'s home on that `hit` accepts, or of the empty bucket that
    /// ends the search. The table must have buckets.
    #[inline]
    fn probe(&self, t: u32, mut hit: impl FnMut(u64) -> bool) -> Result<usize, usize> {
        let mask = self.mask();
        let mut i = self.home(t);
        loop {
            let b = self.b[i];
            if is_empty(b) {
                return Err(i);
            }
            if tag_of(b) == t && hit(b) {
                return Ok(i);
            }
            i = (i + 1) & mask;
        }
    }

    /// The slot of `t` that `is` confirms, if the table has one.
    #[inline]
    fn find(&self, t: u32, is: &impl Fn(u32) -> bool) -> Option<u32> {
        if self.b.is_empty() {
            return None;
        }
        self.probe(t, |b| is(slot_of(b))).ok().map(|i| slot_of(self.b[i]))
    }

    /// Stores a bucket known not to be there.
    #[inline]
    fn put(&mut self, b: u64) {
        let i = self.probe(tag_of(b), |_| false).unwrap_or_else(|i| i);
        self.b[i] = b;
    }

    /// Empties bucket `i` and pulls up every later bucket of its cluster that may live in the hole.
    #[inline]
    fn take(&mut self, mut i: usize) {
        let mask = self.mask();
        let mut j = i;
        loop {
            j = (j + 1) & mask;
            let b = self.b[j];
            if is_empty(b) {
                break;
            }
            let k = self.home(tag_of(b));
            // `b` stays if its home is cyclically within (i, j]: moving it to i would put it before home.
            let stays = if i <= j { i < k && k <= j } else { i < k || k <= j };
            if !stays {
                self.b[i] = b;
                i = j;
            }
        }
        self.b[i] = 0;
    }
}

#[derive(Clone, Debug, Default)]
pub(crate) struct RefMap {
    /// Where inserts go.
    cur: Table,
    /// The table being drained into `cur`: an entry is in one of the two. Its buffer is kept once drained.
    old: Table,
    /// Entries left in `old`.
    old_len: usize,
    /// Buckets of `old` below this are empty: draining empties them in order, and a backward shift only
    /// moves an entry down to a hole left by an entry, never below the lowest one.
    cursor: usize,
    /// The next table, zeroed a few buckets at a time up to twice `cur`'s buckets.
    spare: Vec<u64>,
    len: usize,
    /// Growths that had to finish draining or zeroing at once (only the first, from no table, may).
    #[cfg(test)]
    forced: usize,
}

impl RefMap {
    pub fn len(&self) -> usize {
        self.len
    }

    /// References the map holds without allocating: a table of `n` buckets starts preparing the next
    /// one at `3n/8` entries.
    pub fn capacity(&self) -> usize {
        self.cur.b.capacity().min(self.old.b.capacity()).min(self.spare.capacity()) / 8 * 3
    }

    /// Room for `n` references without allocating: the three buffers get room for a table that holds
    /// `n` without preparing a larger one. Allocated, not touched: the table in use stays sized by the
    /// live references, and the rest of the buffers is not resident until it is.
    pub fn reserve(&mut self, n: usize) {
        let want = n.saturating_mul(8).div_ceil(3).next_power_of_two().clamp(MIN_BUCKETS, MAX_BUCKETS);
        for v in [&mut self.cur.b, &mut self.old.b, &mut self.spare] {
            v.reserve_exact(want.saturating_sub(v.len()));
        }
    }

    pub fn clear(&mut self) {
        self.cur.b.fill(0);
        self.old.b.fill(0);
        self.old_len = 0;
        self.cursor = 0;
        self.len = 0;
    }

    /// Starts loading the buckets where `r` would be.
    #[inline]
    pub fn prefetch(&self, r: u64) {
        let t = tag(r);
        if let Some(b) = self.cur.b.get(self.cur.home(t)) {
            crate::hint::prefetch(b);
        }
        if self.old_len > 0 {
            if let Some(b) = self.old.b.get(self.old.home(t)) {
                crate::hint::prefetch(b);
            }
        }
    }

    /// The slot of `r`, `is(slot)` telling whether the order in a slot whose tag matches is `r`'s.
    #[inline]
    pub fn get(&self, r: u64, is: impl Fn(u32) -> bool) -> Option<u32> {
        let t = tag(r);
        match self.cur.find(t, &is) {
            Some(s) => Some(s),
            None if self.old_len > 0 => self.old.find(t, &is),
            None => None,
        }
    }

    /// The first slot whose tag matches `r`'s, unconfirmed: for prefetching the order before reading it.
    #[inline]
    pub fn candidate(&self, r: u64) -> Option<u32> {
        self.get(r, |_| true)
    }

    /// Maps `r` to `slot` (below `u32::MAX`); false (and nothing changed) if `r` is there already, `is`
    /// as for [`RefMap::get`].
    #[inline]
    pub fn insert(&mut self, r: u64, slot: u32, is: impl Fn(u32) -> bool) -> bool {
        if (self.len + 1) * 2 > self.cur.b.len() {
            self.grow();
        }
        let t = tag(r);
        let Err(i) = self.cur.probe(t, |b| is(slot_of(b))) else { return false };
        if self.old_len > 0 && self.old.find(t, &is).is_some() {
            return false;
        }
        self.cur.b[i] = bucket(t, slot);
        self.len += 1;
        self.work();
        true
    }

    /// Forgets `r`, which is in `slot`; false if it was not there.
    #[inline]
    pub fn remove(&mut self, r: u64, slot: u32) -> bool {
        let want = bucket(tag(r), slot);
        if let Some(i) = self.position(&self.cur, want) {
            self.cur.take(i);
        } else if let Some(i) = (self.old_len > 0).then(|| self.position(&self.old, want)).flatten() {
            self.old.take(i);
            self.old_len -= 1;
        } else {
            return false;
        }
        self.len -= 1;
        self.work();
        true
    }

    #[inline]
    fn position(&self, table: &Table, want: u64) -> Option<usize> {
        if table.b.is_empty() {
            return None;
        }
        table.probe(tag_of(want), |b| b == want).ok()
    }

    /// A step of growth after an insert or a removal: drain the old table, or else zero the next one.
    ///
    /// Why these rates suffice: a growth into a table of `n` buckets happens at `n/4` entries. Draining
    /// the old table (`n/2` buckets looked at, `n/4` entries moved), [`MIGRATE`] units per insert, is done
    /// within `3n/32` inserts, before the entries reach `3n/8` (`4n/32` inserts). From there, zeroing the
    /// next table (`2n` buckets), [`ZERO`] per insert, is done within `n/16` inserts, before the entries
    /// reach `n/2` (`n/8` inserts), when the next growth comes. Removals do the same work and only help.
    #[inline]
    fn work(&mut self) {
        if self.old_len > 0 {
            self.migrate(MIGRATE);
        } else if self.len * 8 > self.cur.b.len() * 3 && self.spare.len() < self.next_buckets() {
            self.zero(ZERO);
        }
    }

    #[inline]
    fn next_buckets(&self) -> usize {
        (self.cur.b.len() * 2).clamp(MIN_BUCKETS, MAX_BUCKETS)
    }

    /// Moves up to `units` (buckets looked at or entries moved) of the old table into the current one.
    #[cold]
    fn migrate(&mut self, mut units: usize) {
        while units > 0 && self.old_len > 0 {
            let Some(&b) = self.old.b.get(self.cursor) else {
                // Unreachable (see `cursor`); starting over keeps the map right regardless.
                debug_assert!(false, "{} entries left below the drain cursor", self.old_len);
                self.cursor = 0;
                continue;
            };
            if is_empty(b) {
                self.cursor += 1;
            } else {
                self.old.take(self.cursor);
                self.cur.put(b);
                self.old_len -= 1;
            }
            units -= 1;
        }
        if self.old_len == 0 {
            self.cursor = 0;
        }
    }

    /// Zeroes up to `n` more buckets of the next table, allocating it at its first bucket if the buffer
    /// is too small (a new peak of live references beyond what was reserved).
    #[cold]
    fn zero(&mut self, n: usize) {
        let want = self.next_buckets();
        if self.spare.capacity() < want {
            // A fresh buffer rather than growing this one: growing would copy it.
            self.spare = Vec::new();
            self.spare.reserve_exact(want);
        }
        let len = self.spare.len();
        self.spare.resize(want.min(len.saturating_add(n)), 0);
    }

    /// The next table becomes the current one, the current one the old one to drain.
    #[cold]
    fn grow(&mut self) {
        if self.cur.b.len() >= MAX_BUCKETS {
            return;
        }
        if self.old_len > 0 || self.spare.len() < self.next_buckets() {
            #[cfg(test)]
            {
                self.forced += usize::from(!self.cur.b.is_empty());
            }
            self.migrate(usize::MAX);
            self.zero(usize::MAX);
        }
        let next = std::mem::take(&mut self.spare);
        let current = std::mem::take(&mut self.cur.b);
        let drained = std::mem::take(&mut self.old.b);
        self.cur.set(next);
        self.old.set(current);
        self.old_len = self.len;
        self.cursor = 0;
        self.spare = drained;
        self.spare.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn xorshift(mut x: u64) -> impl FnMut() -> u64 {
        move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        }
    }

    /// Against `HashMap`, with keys that collide in every pattern: consecutive, strided by powers of
    /// two, random, and pairs with the same tag; tables kept small so that clusters wrap around the end
    /// and growths and drains overlap the operations.
    #[test]
    fn agrees_with_a_hash_map() {
        let mut rnd = xorshift(0x2545_f491_4f6c_dd1d);
        let twins = same_tag_keys(300);
        for pattern in 0..5u64 {
            let mut m = RefMap::default();
            let mut want: HashMap<u64, u32> = HashMap::new();
            // The key of each slot (a slot is the step that inserted it).
            let mut keys: Vec<u64> = Vec::new();
            let key = |k: u64| match pattern {
                0 => k,
                1 => k << 3,
                2 => k << 20,
                3 => k.wrapping_mul(0xd6e8_feb8_6659_fd93),
                _ => twins[k as usize],
            };
            for step in 0..200_000u32 {
                let r = rnd();
                let k = key(r % 300);
                keys.push(k);
                let is = |s: u32| keys[s as usize] == k;
                match r >> 60 {
                    0..=6 => {
                        let fresh = !want.contains_key(&k);
                        if fresh {
                            want.insert(k, step);
                        }
                        assert_eq!(m.insert(k, step, is), fresh);
                    }
                    7..=12 => {
                        let had = want.remove(&k);
                        assert_eq!(m.get(k, is), had);
                        if let Some(s) = had {
                            assert!(m.remove(k, s));
                        }
                        assert!(!m.remove(k, step));
                    }
                    _ => assert_eq!(m.get(k, is), want.get(&k).copied()),
                }
                assert_eq!(m.len(), want.len());
                if step % 50_000 == 0 {
                    m.clear();
                    want.clear();
                }
            }
            for (k, v) in &want {
                assert_eq!(m.get(*k, |s| keys[s as usize] == *k), Some(*v));
            }
            assert_eq!(m.forced, 0);
        }
    }

    /// `n` distinct keys in pairs with the same tag (so the same home in every table).
    fn same_tag_keys(n: usize) -> Vec<u64> {
        let mut rnd = xorshift(0x9e37_79b9_7f4a_7c15);
        let mut seen: HashMap<u32, u64> = HashMap::new();
        let mut out = Vec::new();
        while out.len() < n {
            let r = rnd() & !7;
            match seen.insert(tag(r), r) {
                Some(o) if o != r => out.extend([o, r]),
                _ => {}
            }
        }
        out.truncate(n);
        out
    }

    /// A day of references handed out in increasing order, each living a random while: the live set
    /// grows to a peak and falls; every growth is spread over later operations (none forced), every
    /// reference found until removed, and the buffers never exceed the tables a peak needs.
    #[test]
    fn grows_without_pause() {
        let mut rnd = xorshift(7);
        let mut m = RefMap::default();
        let mut live: Vec<u64> = Vec::new();
        let keys = |s: u32| s as u64 * 3 + 1;
        let mut next = 0u32;
        for step in 0..1_500_000u32 {
            let target = if step < 1_000_000 { 100_000 } else { 1_000 };
            if live.len() < target && rnd() % 4 != 0 || live.is_empty() {
                assert!(m.insert(keys(next), next, |s| keys(s) == keys(next)));
                live.push(keys(next));
                next += 1;
            } else {
                let i = (rnd() % live.len() as u64) as usize;
                let r = live.swap_remove(i);
                let s = ((r - 1) / 3) as u32;
                assert_eq!(m.get(r, |x| keys(x) == r), Some(s));
                assert!(m.remove(r, s));
                assert_eq!(m.get(r, |x| keys(x) == r), None);
            }
        }
        assert_eq!(m.len(), live.len());
        assert_eq!(m.forced, 0);
        assert!(m.cur.b.len() <= 4 * 100_000usize.next_power_of_two());
    }

    #[test]
    fn reserve_then_no_allocation() {
        let mut m = RefMap::default();
        m.reserve(1000);
        let caps = [m.cur.b.capacity(), m.old.b.capacity(), m.spare.capacity()];
        assert!(m.capacity() >= 1000);
        for r in 0..100_000u64 {
            let key = |s: u32| s as u64;
            assert!(m.insert(r, r as u32, |s| key(s) == r));
            if r >= 1000 {
                assert!(m.remove(r - 1000, (r - 1000) as u32));
            }
        }
        let mut now = [m.cur.b.capacity(), m.old.b.capacity(), m.spare.capacity()];
        let mut was = caps;
        now.sort_unstable();
        was.sort_unstable();
        assert_eq!(now, was);
        assert_eq!(m.len(), 1000);
        assert!(m.cur.b.len() <= 4096, "the table follows the live references, not the reservation");
    }
}
