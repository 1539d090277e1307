//! Instrument reference data from a venue's directory (ITCH `R`): per instrument id, the listing that
//! enrichment joins trades with, written by the feed's source and read by any thread without a lock.
//!
//! A [`Directory`] has one slot per instrument id, in chunks of [`CHUNK`] allocated when the first listing of
//! their ids arrives (a directory message, not an event: the ids of a feed are few and dense). Each slot is
//! a sequence lock over atomics: the one [`DirectoryWriter`] makes the sequence odd, stores the words, makes
//! it even; a reader retries while it is odd or changed under it. Readers never block the writer and never
//! see half a listing; a reader may spin while a write of five stores is in progress.

use crate::event::KeyId;
use std::fmt;
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

/// Ids per chunk of slots.
pub const CHUNK: usize = 1024;

/// One instrument's listing, as the venue's directory gives it. Codes are the venue's ASCII bytes (ITCH 5.0,
/// docs/formats.md "R"): e.g. market category `Q` Nasdaq Global Select, `N` NYSE; financial status `N`
/// normal; a space where the venue leaves a field blank.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Listing {
    /// The venue's symbol, space padded.
    pub symbol: [u8; 8],
    pub market_category: u8,
    pub financial_status: u8,
    /// Shares in a round lot.
    pub round_lot_size: u32,
    /// `Y`: only round lots are accepted.
    pub round_lots_only: u8,
    pub issue_classification: u8,
    pub issue_sub_type: [u8; 2],
    /// `P` live, `T` test.
    pub authenticity: u8,
    /// `Y`/`N`: on the Reg SHO threshold list; space: not applicable.
    pub short_sale_threshold: u8,
    /// `Y`: a new IPO; `N`: not; space: not applicable.
    pub ipo_flag: u8,
    /// `1` or `2`: the LULD reference price tier; space: not applicable.
    pub luld_tier: u8,
    /// `Y`: an exchange-traded product.
    pub etp_flag: u8,
    /// The ETP's leverage factor (0 if none).
    pub etp_leverage_factor: u32,
    /// `Y`: an inverse ETP.
    pub inverse: u8,
}

impl Listing {
    /// The symbol without its padding.
    pub fn symbol(&self) -> &[u8] {
        let n = self.symbol.iter().rposition(|&b| b != b' ').map_or(0, |i| i + 1);
        &self.symbol[..n]
    }

    /// The listing as four words (what a slot stores, and what a checkpoint writes).
    pub fn pack(&self) -> [u64; 4] {
        let b = |x: &[u8]| x.iter().rev().fold(0u64, |a, &c| (a << 8) | c as u64);
        [
            b(&self.symbol),
            self.round_lot_size as u64 | (self.etp_leverage_factor as u64) << 32,
            b(&[
                self.market_category,
                self.financial_status,
                self.round_lots_only,
                self.issue_classification,
                self.issue_sub_type[0],
                self.issue_sub_type[1],
                self.authenticity,
                self.short_sale_threshold,
            ]),
            b(&[self.ipo_flag, self.luld_tier, self.etp_flag, self.inverse]),
        ]
    }

    /// The listing of [`Listing::pack`]'s words.
    pub fn unpack(w: [u64; 4]) -> Listing {
        let at = |x: u64, i: u32| (x >> (8 * i)) as u8;
        Listing {
            symbol: w[0].to_le_bytes(),
            round_lot_size: w[1] as u32,
            etp_leverage_factor: (w[1] >> 32) as u32,
            market_category: at(w[2], 0),
            financial_status: at(w[2], 1),
            round_lots_only: at(w[2], 2),
            issue_classification: at(w[2], 3),
            issue_sub_type: [at(w[2], 4), at(w[2], 5)],
            authenticity: at(w[2], 6),
            short_sale_threshold: at(w[2], 7),
            ipo_flag: at(w[3], 0),
            luld_tier: at(w[3], 1),
            etp_flag: at(w[3], 2),
            inverse: at(w[3], 3),
        }
    }
}

/// `key=value` pairs, codes as their characters (a blank one as `-`).
impl fmt::Display for Listing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = |b: u8| if b.is_ascii_graphic() { b as char } else { '-' };
        write!(
            f,
            "market_category={} financial_status={} round_lot={} round_lots_only={} issue_classification={} \
             issue_sub_type={}{} authenticity={} short_sale_threshold={} ipo={} luld_tier={} etp={} \
             etp_leverage={} inverse={}",
            c(self.market_category),
            c(self.financial_status),
            self.round_lot_size,
            c(self.round_lots_only),
            c(self.issue_classification),
            c(self.issue_sub_type[0]),
            if self.issue_sub_type[1] == b' ' { String::new() } else { c(self.issue_sub_type[1]).to_string() },
            c(self.authenticity),
            c(self.short_sale_threshold),
            c(self.ipo_flag),
            c(self.luld_tier),
            c(self.etp_flag),
            self.etp_leverage_factor,
            c(self.inverse),
        )
    }
}

/// One listing under its sequence lock: 0 never written, odd while being written.
#[derive(Default)]
struct Slot {
    seq: AtomicU64,
    words: [AtomicU64; 4],
}

impl Slot {
    fn read(&self) -> Option<Listing> {
        loop {
            let s = self.seq.load(Ordering::Acquire);
            if s == 0 {
                return None;
            }
            if s & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let w = std::array::from_fn(|i| self.words[i].load(Ordering::Relaxed));
            // The words' loads happen before the second load of the sequence: if it is unchanged, no write
            // overlapped them.
            fence(Ordering::Acquire);
            if self.seq.load(Ordering::Relaxed) == s {
                return Some(Listing::unpack(w));
            }
        }
    }
}

type Chunk = Box<[Slot]>;

/// The listings of one feed's instruments, by instrument id.
pub struct Directory {
    chunks: Box<[OnceLock<Chunk>]>,
    listed: AtomicU32,
}

impl fmt::Debug for Directory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Directory").field("capacity", &self.capacity()).field("listed", &self.len()).finish()
    }
}

impl Directory {
    /// A directory for instrument ids below `capacity`, and its only writer.
    pub fn new(capacity: usize) -> (Arc<Directory>, DirectoryWriter) {
        let chunks = capacity.div_ceil(CHUNK);
        let d =
            Arc::new(Directory { chunks: (0..chunks).map(|_| OnceLock::new()).collect(), listed: AtomicU32::new(0) });
        (d.clone(), DirectoryWriter { dir: d })
    }

    /// Ids it can hold (those below this).
    pub fn capacity(&self) -> usize {
        self.chunks.len() * CHUNK
    }

    /// The listing of instrument `id`, if its directory message has come.
    pub fn get(&self, id: KeyId) -> Option<Listing> {
        let i = id as usize;
        self.chunks.get(i / CHUNK)?.get()?[i % CHUNK].read()
    }

    /// Instruments listed.
    pub fn len(&self) -> usize {
        self.listed.load(Ordering::Relaxed) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every listing, by id.
    pub fn iter(&self) -> impl Iterator<Item = (KeyId, Listing)> + '_ {
        self.chunks.iter().enumerate().filter_map(|(c, chunk)| chunk.get().map(|s| (c, s))).flat_map(|(c, slots)| {
            slots.iter().enumerate().filter_map(move |(i, s)| s.read().map(|l| ((c * CHUNK + i) as KeyId, l)))
        })
    }
}

/// The one writer of a [`Directory`] (the feed's source).
pub struct DirectoryWriter {
    dir: Arc<Directory>,
}

impl DirectoryWriter {
    /// Lists (or lists again) instrument `id`; false if `id` is beyond the capacity.
    pub fn set(&mut self, id: KeyId, l: &Listing) -> bool {
        let i = id as usize;
        let Some(chunk) = self.dir.chunks.get(i / CHUNK) else { return false };
        let slot = &chunk.get_or_init(|| (0..CHUNK).map(|_| Slot::default()).collect())[i % CHUNK];
        let s = slot.seq.load(Ordering::Relaxed);
        slot.seq.store(s + 1, Ordering::Relaxed);
        // The odd sequence is visible before any word changes.
        fence(Ordering::Release);
        for (w, v) in slot.words.iter().zip(l.pack()) {
            w.store(v, Ordering::Relaxed);
        }
        slot.seq.store(s + 2, Ordering::Release);
        if s == 0 {
            self.dir.listed.fetch_add(1, Ordering::Relaxed);
        }
        true
    }

    /// The directory it writes.
    pub fn directory(&self) -> &Arc<Directory> {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(symbol: &[u8; 8], lot: u32) -> Listing {
        Listing {
            symbol: *symbol,
            market_category: b'Q',
            financial_status: b'N',
            round_lot_size: lot,
            round_lots_only: b'N',
            issue_classification: b'C',
            issue_sub_type: *b"Z ",
            authenticity: b'P',
            short_sale_threshold: b'N',
            ipo_flag: b' ',
            luld_tier: b'1',
            etp_flag: b'Y',
            etp_leverage_factor: 3,
            inverse: b'Y',
        }
    }

    #[test]
    fn listings_by_id() {
        let (d, mut w) = Directory::new(3000);
        assert_eq!(d.capacity(), 3 * CHUNK);
        assert_eq!(d.get(5), None);
        let a = listing(b"AAPL    ", 100);
        assert!(w.set(2500, &a));
        assert!(!w.set(3072, &a), "beyond the capacity");
        assert_eq!(d.get(2500), Some(a));
        assert_eq!((d.get(2499), d.get(5), d.get(u32::MAX)), (None, None, None));
        let b = listing(b"MSFT    ", 10);
        w.set(2500, &b);
        w.set(1, &a);
        assert_eq!(d.get(2500), Some(b), "listed again: the newer listing");
        assert_eq!(d.len(), 2);
        assert_eq!(d.iter().collect::<Vec<_>>(), vec![(1, a), (2500, b)]);
        assert_eq!(b.symbol(), b"MSFT");
        assert_eq!(
            a.to_string(),
            "market_category=Q financial_status=N round_lot=100 round_lots_only=N issue_classification=C \
             issue_sub_type=Z authenticity=P short_sale_threshold=N ipo=- luld_tier=1 etp=Y etp_leverage=3 inverse=Y"
        );
    }

    /// A reader on another thread sees one listing or the other, whole, while the writer alternates them.
    #[test]
    fn readers_never_see_half_a_listing() {
        let (d, mut w) = Directory::new(1);
        let a = listing(b"AAAAAAAA", 1);
        let b =
            Listing { market_category: b'G', etp_leverage_factor: 7, inverse: b'N', ..listing(b"BBBBBBBB", u32::MAX) };
        w.set(0, &a);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reads = Arc::new(AtomicU64::new(0));
        let reader = {
            let (d, stop, reads) = (d.clone(), stop.clone(), reads.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let l = d.get(0).expect("listed");
                    assert!(l == a || l == b, "a torn listing: {l:?}");
                    reads.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        // Writes until the reader has read a good many times under them (it may start late on a busy machine).
        let started = std::time::Instant::now();
        let mut writes = 0u64;
        while writes < 100_000
            || (reads.load(Ordering::Relaxed) < 100_000 && started.elapsed() < std::time::Duration::from_secs(30))
        {
            w.set(0, if writes % 2 == 0 { &b } else { &a });
            writes += 1;
        }
        stop.store(true, Ordering::Relaxed);
        reader.join().expect("no torn listing");
        assert!(reads.load(Ordering::Relaxed) > 0);
        assert_eq!(d.len(), 1);
    }
}
