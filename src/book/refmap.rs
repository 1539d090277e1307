//! The map from order reference to slot: open addressing with linear probing and backward-shift
//! deletion, sized to a power of two at most half full.
//!
//! Why not `std`'s `HashMap`: a removal there can leave a tombstone, and once tombstones have used up the
//! spare room the table rehashes in place, a pause of milliseconds at a million orders that comes back
//! every few million adds. Backward-shift deletion leaves none, so after [`RefMap::reserve`] no insert or
//! removal ever does more than walk its own cluster. The hash keeps references that are close together
//! close together in the table (venues hand out references in increasing order and most messages are
//! about recent orders), and the caller can prefetch a reference's bucket before it needs it.

use super::orders::NIL;

/// One bucket: a reference and its slot (`slot == NIL`: empty).
#[derive(Clone, Copy, Debug)]
#[repr(C, align(16))]
struct Bucket {
    key: u64,
    slot: u32,
}

const EMPTY: Bucket = Bucket { key: 0, slot: NIL };

/// Smallest table: 16 buckets.
const MIN_BUCKETS: usize = 16;

#[derive(Clone, Debug)]
pub(crate) struct RefMap {
    buckets: Vec<Bucket>,
    /// `buckets.len() − 1` (the length is a power of two), or 0 while there are none.
    mask: usize,
    /// `64 − log2(buckets / 8)`: how far down the product's top bits go in [`RefMap::home`].
    shift: u32,
    len: usize,
}

impl Default for RefMap {
    fn default() -> Self {
        Self { buckets: Vec::new(), mask: 0, shift: 63, len: 0 }
    }
}

impl RefMap {
    /// The home bucket of `r`: the low 3 bits of the reference stay the low 3 bits, so 8 consecutive
    /// references share 2 cache lines of buckets; the rest is multiplied by an odd constant and the top
    /// bits of the product pick the block of 8 (Fibonacci hashing), so that blocks spread over the whole
    /// table whatever the spacing of the references.
    #[inline]
    fn home(&self, r: u64) -> usize {
        let h = (r >> 3).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        (((h >> self.shift) << 3) | (r & 7)) as usize & self.mask
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// References the map holds without growing.
    pub fn capacity(&self) -> usize {
        self.buckets.len() / 2
    }

    /// Room for `n` references without growing (an allocation, once, if there is not).
    pub fn reserve(&mut self, n: usize) {
        if n > self.capacity() {
            self.resize(n.saturating_mul(2).next_power_of_two().max(MIN_BUCKETS));
        }
    }

    pub fn clear(&mut self) {
        self.buckets.fill(EMPTY);
        self.len = 0;
    }

    fn resize(&mut self, buckets: usize) {
        let old = std::mem::replace(&mut self.buckets, vec![EMPTY; buckets]);
        self.mask = buckets - 1;
        self.shift = 64 - (buckets.trailing_zeros() - 3);
        for b in old {
            if b.slot != NIL {
                let mut i = self.home(b.key);
                while self.buckets[i].slot != NIL {
                    i = (i + 1) & self.mask;
                }
                self.buckets[i] = b;
            }
        }
    }

    /// Starts loading the bucket where `r` would be.
    #[inline]
    pub fn prefetch(&self, r: u64) {
        if let Some(b) = self.buckets.get(self.home(r)) {
            crate::hint::prefetch(b);
        }
    }

    #[inline]
    pub fn get(&self, r: u64) -> Option<u32> {
        if self.len == 0 {
            return None;
        }
        let mut i = self.home(r);
        loop {
            let b = self.buckets[i];
            if b.slot == NIL {
                return None;
            }
            if b.key == r {
                return Some(b.slot);
            }
            i = (i + 1) & self.mask;
        }
    }

    /// Maps `r` to `slot` (not `NIL`); false (and nothing changed) if `r` is there already.
    #[inline]
    pub fn insert(&mut self, r: u64, slot: u32) -> bool {
        if (self.len + 1) * 2 > self.buckets.len() {
            self.grow();
        }
        let mut i = self.home(r);
        loop {
            let b = &mut self.buckets[i];
            if b.slot == NIL {
                *b = Bucket { key: r, slot };
                self.len += 1;
                return true;
            }
            if b.key == r {
                return false;
            }
            i = (i + 1) & self.mask;
        }
    }

    #[cold]
    fn grow(&mut self) {
        self.resize((self.buckets.len() * 2).max(MIN_BUCKETS));
    }

    /// Removes `r`; its slot, if it was there.
    #[inline]
    pub fn remove(&mut self, r: u64) -> Option<u32> {
        if self.len == 0 {
            return None;
        }
        let mask = self.mask;
        let mut i = self.home(r);
        loop {
            let b = self.buckets[i];
            if b.slot == NIL {
                return None;
            }
            if b.key == r {
                break;
            }
            i = (i + 1) & mask;
        }
        let slot = self.buckets[i].slot;
        // Backward shift: pull up every later bucket of the cluster that may live in the hole.
        let mut j = i;
        loop {
            j = (j + 1) & mask;
            let b = self.buckets[j];
            if b.slot == NIL {
                break;
            }
            let k = self.home(b.key);
            // `b` stays if its home is cyclically within (i, j]: moving it to i would put it before home.
            let stays = if i <= j { i < k && k <= j } else { i < k || k <= j };
            if !stays {
                self.buckets[i] = b;
                i = j;
            }
        }
        self.buckets[i] = EMPTY;
        self.len -= 1;
        Some(slot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Against `HashMap`, with keys that collide in every pattern: consecutive, strided by powers of
    /// two, and random; tables kept small so that clusters wrap around the end.
    #[test]
    fn agrees_with_a_hash_map() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut rnd = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for pattern in 0..4u64 {
            let mut m = RefMap::default();
            let mut want: HashMap<u64, u32> = HashMap::new();
            let key = |k: u64| match pattern {
                0 => k,
                1 => k << 3,
                2 => k << 20,
                _ => k.wrapping_mul(0xd6e8_feb8_6659_fd93),
            };
            for step in 0..200_000u32 {
                let r = rnd();
                let k = key(r % 300);
                match r >> 60 {
                    0..=6 => {
                        let fresh = !want.contains_key(&k);
                        if fresh {
                            want.insert(k, step);
                        }
                        assert_eq!(m.insert(k, step), fresh);
                    }
                    7..=12 => assert_eq!(m.remove(k), want.remove(&k)),
                    _ => assert_eq!(m.get(k), want.get(&k).copied()),
                }
                assert_eq!(m.len(), want.len());
            }
            for (k, v) in &want {
                assert_eq!(m.get(*k), Some(*v));
            }
        }
    }

    #[test]
    fn reserve_then_no_growth() {
        let mut m = RefMap::default();
        m.reserve(1000);
        let cap = m.buckets.len();
        for r in 0..100_000u64 {
            assert!(m.insert(r, r as u32));
            if r >= 1000 {
                assert_eq!(m.remove(r - 1000), Some((r - 1000) as u32));
            }
        }
        assert_eq!(m.buckets.len(), cap);
        assert_eq!(m.len(), 1000);
    }
}
