//! Domain types every stage shares: timestamps, fixed-point prices, keys and the events themselves.
//!
//! Everything here is `Copy` and fixed-size so events travel through the SPSC rings by value, with no
//! heap allocation per event. Strings (instrument symbols) never enter the hot path: a source interns them
//! into dense [`KeyId`]s through [`crate::symbols::Symbols`] and the emitter turns ids back into text.

use std::fmt;

/// Event time or a duration, in integer nanoseconds (since the Unix epoch for instants).
pub type Nanos = i64;

/// The watermark before any event has been seen (Flink's `Long.MIN_VALUE`).
pub const WATERMARK_MIN: Nanos = i64::MIN;
/// The watermark that ends a bounded input: fires every window (Flink's `Long.MAX_VALUE`).
pub const WATERMARK_MAX: Nanos = i64::MAX;

/// Integer quantity (shares, contracts, lots: whatever the venue counts in).
pub type Qty = i64;

/// A dense interned key: an instrument, or (for later event kinds) an account or a currency.
///
/// Ids are assigned 0, 1, 2 … in order of first appearance, so per-key state can live in a `Vec`
/// indexed by id.
pub type KeyId = u32;

/// A fixed-point price: the raw value is the price times [`Price::SCALE`] (10⁹, "nano-units").
///
/// 10⁹ represents every tick size in use (equities 10⁻⁴, FX 10⁻⁵, crypto 10⁻⁸) exactly, and still
/// covers prices up to ±9.2 × 10⁹. Sums of `price × qty` are kept in `i128` ([`Notional`]) so they are
/// exact too.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Price(pub i64);

/// `Σ price × qty` in raw price units (scale 10⁹), exact.
pub type Notional = i128;

impl Price {
    /// Raw units per 1.0.
    pub const SCALE: i64 = 1_000_000_000;
    /// Number of decimal digits the scale represents.
    pub const DECIMALS: u32 = 9;

    /// A price from whole units (for tests and examples).
    pub const fn from_units(units: i64) -> Price {
        Price(units * Self::SCALE)
    }

    /// Round `num / den` (both in raw units × something) to the nearest raw unit, halves away from zero.
    /// Used for VWAP, TWAP, mids, microprices and imbalances, which are ratios of exact sums. When both fit
    /// in 64 bits, as they do for every equity price and size, the division is done in 64 bits: a 128-bit
    /// division is a library call several times slower, and a book computes three ratios per update.
    #[inline]
    pub fn from_ratio(num: i128, den: i128) -> Price {
        debug_assert!(den > 0);
        match (i64::try_from(num), i64::try_from(den)) {
            // `den` ≤ 2⁶² keeps `2 × |r|` from overflowing.
            (Ok(n), Ok(d)) if d <= 1 << 62 && n != i64::MIN => {
                let (q, r) = (n / d, n % d);
                Price(q + if 2 * r.abs() >= d { n.signum() } else { 0 })
            }
            _ => Self::from_ratio_wide(num, den),
        }
    }

    #[cold]
    fn from_ratio_wide(num: i128, den: i128) -> Price {
        let q = num / den;
        let r = num % den;
        let adj = if 2 * r.abs() >= den { num.signum() } else { 0 };
        Price((q + adj) as i64)
    }

    /// (bid + ask) / 2, halves away from zero (exact for every price on a tick of 2 × 10⁻⁹ or coarser).
    #[inline]
    pub fn mid(bid: Price, ask: Price) -> Price {
        let sum = bid.0 as i128 + ask.0 as i128;
        // `sum / 2` rounded as `from_ratio(sum, 2)`, without a division.
        Price((if sum >= 0 { (sum + 1) >> 1 } else { -((1 - sum) >> 1) }) as i64)
    }

    /// The size-weighted mid of a top of book: (bid × ask size + ask × bid size) / (bid size + ask size).
    /// Both sizes must be positive.
    #[inline]
    pub fn microprice(bid: Price, bid_qty: Qty, ask: Price, ask_qty: Qty) -> Price {
        let (bq, aq) = (bid_qty as i128, ask_qty as i128);
        Price::from_ratio(bid.0 as i128 * aq + ask.0 as i128 * bq, bq + aq)
    }

    /// Writes the exact decimal value with trailing zeros trimmed (`321.5324`, `10`, `-0.5`).
    pub fn write_to(self, out: &mut Vec<u8>) {
        write_fixed(self.0 as i128, Self::DECIMALS, out);
    }
}

impl fmt::Display for Price {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut v = Vec::with_capacity(24);
        self.write_to(&mut v);
        f.write_str(std::str::from_utf8(&v).expect("ascii"))
    }
}

/// Writes `raw / 10^decimals` as an exact decimal, trimming trailing fractional zeros. No allocation
/// beyond `out`'s own growth.
pub fn write_fixed(raw: i128, decimals: u32, out: &mut Vec<u8>) {
    let scale = 10i128.pow(decimals);
    if raw < 0 {
        out.push(b'-');
    }
    let abs = raw.unsigned_abs();
    let int = abs / scale as u128;
    let mut frac = abs % scale as u128;
    let mut buf = itoa::Buffer::new();
    out.extend_from_slice(buf.format(int).as_bytes());
    if frac == 0 {
        return;
    }
    let mut digits = decimals;
    while frac % 10 == 0 {
        frac /= 10;
        digits -= 1;
    }
    out.push(b'.');
    let s = buf.format(frac);
    for _ in s.len()..digits as usize {
        out.push(b'0');
    }
    out.extend_from_slice(s.as_bytes());
}

/// Aggressor side of a trade, where the venue says it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Side {
    #[default]
    Unknown = 0,
    Buy = 1,
    Sell = 2,
}

impl Side {
    /// The text written by sinks (empty when unknown).
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Unknown => "",
            Side::Buy => "B",
            Side::Sell => "S",
        }
    }

    /// Parses the spellings venues and files use: `B`/`S`, `buy`/`sell`, `1`/`-1` (any case), empty = unknown.
    pub fn parse(s: &[u8]) -> Option<Side> {
        match s {
            b"" => Some(Side::Unknown),
            b"B" | b"b" | b"1" | b"+1" => Some(Side::Buy),
            b"S" | b"s" | b"-1" => Some(Side::Sell),
            _ if s.eq_ignore_ascii_case(b"buy") => Some(Side::Buy),
            _ if s.eq_ignore_ascii_case(b"sell") => Some(Side::Sell),
            _ => None,
        }
    }
}

/// Where a trade comes from: a trade record as a source read it, or a print a venue's order feed reported,
/// by the kind of message (ITCH 5.0's; docs/formats.md, "Trade kinds").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TradeKind {
    /// Not from a venue feed: a trade record of a file, a Kafka topic or the generator.
    #[default]
    Record = 0,
    /// A displayed order executed at its own price (ITCH `E`).
    Execution = 1,
    /// A displayed order executed at another price, printable (ITCH `C`).
    ExecutionWithPrice = 2,
    /// A non-displayed order executed (ITCH `P`, non-cross trade).
    NonCross = 3,
    /// The bulk print of an opening, closing or halt cross (ITCH `Q`).
    Cross = 4,
}

impl TradeKind {
    /// The text written by sinks (empty for a trade record).
    pub fn as_str(self) -> &'static str {
        match self {
            TradeKind::Record => "",
            TradeKind::Execution => "execution",
            TradeKind::ExecutionWithPrice => "execution_with_price",
            TradeKind::NonCross => "non_cross",
            TradeKind::Cross => "cross",
        }
    }

    /// The kind of a binary record's code (its `repr`), if it is one.
    pub fn from_u8(b: u8) -> Option<TradeKind> {
        Some(match b {
            0 => TradeKind::Record,
            1 => TradeKind::Execution,
            2 => TradeKind::ExecutionWithPrice,
            3 => TradeKind::NonCross,
            4 => TradeKind::Cross,
            _ => return None,
        })
    }
}

/// One trade print.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trade {
    /// Event time, ns since the epoch.
    pub ts: Nanos,
    pub price: Price,
    pub qty: Qty,
    /// The source's record index (0-based, per source partition): a file's data-row number, the
    /// generator's event number. Carried to the late output so a late row can be traced to its input.
    pub seq: u64,
    pub instrument: KeyId,
    pub side: Side,
    /// Where it comes from (in the padding: a trade stays 40 bytes).
    pub kind: TradeKind,
}

/// The top of one instrument's order book after a change (from an exchange feed's book, `src/book/`).
///
/// 40 bytes, so an [`Event`] stays 48: sizes are the venue's share counts (ITCH sizes are 32-bit), and the
/// imbalance over the book's top levels is kept as `i32` in units of 10⁻⁹ (it lies in [−1, 1]). A side with
/// no order has size 0 and its price is meaningless.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Quote {
    /// Event time, ns since the epoch.
    pub ts: Nanos,
    pub bid: Price,
    pub ask: Price,
    pub bid_qty: u32,
    pub ask_qty: u32,
    pub instrument: KeyId,
    /// (Σ bid size − Σ ask size) / (Σ bid size + Σ ask size) over the top N levels, × 10⁹; 0 when both
    /// sides are empty.
    pub imbalance: i32,
}

impl Quote {
    /// Scale of [`Quote::imbalance`]: the same as [`Price::SCALE`], so it prints as a decimal.
    pub const IMBALANCE_SCALE: i64 = Price::SCALE;

    pub fn has_bid(&self) -> bool {
        self.bid_qty > 0
    }

    pub fn has_ask(&self) -> bool {
        self.ask_qty > 0
    }

    /// (bid + ask) / 2, exact to the price scale (halves away from zero), if both sides are present.
    pub fn mid(&self) -> Option<Price> {
        (self.has_bid() && self.has_ask()).then(|| Price::from_ratio(self.bid.0 as i128 + self.ask.0 as i128, 2))
    }

    /// ask − bid, if both sides are present.
    pub fn spread(&self) -> Option<Price> {
        (self.has_bid() && self.has_ask()).then(|| Price(self.ask.0.saturating_sub(self.bid.0)))
    }

    /// [`Price::microprice`], if both sides are present.
    pub fn microprice(&self) -> Option<Price> {
        (self.has_bid() && self.has_ask())
            .then(|| Price::microprice(self.bid, self.bid_qty as Qty, self.ask, self.ask_qty as Qty))
    }
}

/// One price level of an instrument's book as a change left it (L2, from an exchange feed's book): its total
/// shares and order count, both 0 when the change removed it.
///
/// 40 bytes, so an [`Event`] stays 48.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LevelUpdate {
    /// Event time, ns since the epoch.
    pub ts: Nanos,
    pub price: Price,
    /// The level's shares after the change (0: the level is gone).
    pub shares: Qty,
    pub instrument: KeyId,
    /// Orders resting at the level after the change.
    pub orders: u32,
    /// The side of the book: [`Side::Buy`] for a bid level, [`Side::Sell`] for an ask level.
    pub side: Side,
}

/// What a stream is keyed (and so sharded) by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KeyBy {
    /// The instrument: all state of one instrument lives on one shard.
    #[default]
    Instrument,
}

/// Every kind of event the engine processes.
///
/// New kinds (order events keyed by account, reference data, FX rates) are added here as variants;
/// operators match on the kinds they consume and ignore the rest, so adding a kind does not touch the
/// pipeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Trade(Trade),
    Quote(Quote),
    /// An L2 level change; sent only to a job that writes them (`[[stream]] events = "level"`).
    Level(LevelUpdate),
}

impl Event {
    /// Event time.
    #[inline]
    pub fn ts(&self) -> Nanos {
        match self {
            Event::Trade(t) => t.ts,
            Event::Quote(q) => q.ts,
            Event::Level(l) => l.ts,
        }
    }

    /// The key this event is sharded by.
    #[inline]
    pub fn key(&self, by: KeyBy) -> KeyId {
        match (self, by) {
            (Event::Trade(t), KeyBy::Instrument) => t.instrument,
            (Event::Quote(q), KeyBy::Instrument) => q.instrument,
            (Event::Level(l), KeyBy::Instrument) => l.instrument,
        }
    }

    /// The source's record index (quotes and levels carry none: 0).
    #[inline]
    pub fn seq(&self) -> u64 {
        match self {
            Event::Trade(t) => t.seq,
            Event::Quote(_) | Event::Level(_) => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(p: Price) -> String {
        p.to_string()
    }

    #[test]
    fn price_prints_exactly() {
        assert_eq!(s(Price(321_532_400_000)), "321.5324");
        assert_eq!(s(Price(10 * Price::SCALE)), "10");
        assert_eq!(s(Price(-500_000_000)), "-0.5");
        assert_eq!(s(Price(1)), "0.000000001");
        assert_eq!(s(Price(0)), "0");
    }

    #[test]
    fn ratio_rounds_half_away_from_zero() {
        assert_eq!(Price::from_ratio(5, 2), Price(3));
        assert_eq!(Price::from_ratio(-5, 2), Price(-3));
        assert_eq!(Price::from_ratio(4, 3), Price(1));
        assert_eq!(Price::from_ratio(7, 7), Price(1));
    }

    /// The 64-bit path of `from_ratio` and `mid`'s shift round exactly as the 128-bit division does.
    #[test]
    fn fast_ratios_round_as_the_wide_division() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for i in 0..200_000 {
            let shift = (i % 60) as u32;
            let num = (next() as i64 >> shift) as i128;
            let den = ((next() >> (shift + 2)) as i128).max(1);
            assert_eq!(Price::from_ratio(num, den), Price::from_ratio_wide(num, den), "{num} / {den}");
        }
        for (n, d) in
            [(5, 2), (-5, 2), (i64::MAX as i128, 1), (i64::MIN as i128, 1), (i64::MIN as i128, 3), (1 << 100, 1 << 40)]
        {
            assert_eq!(Price::from_ratio(n, d), Price::from_ratio_wide(n, d), "{n} / {d}");
        }
        for (b, a) in [
            (-5, 0),
            (-4, 0),
            (-3, 0),
            (-1, 0),
            (0, 0),
            (1, 0),
            (3, 0),
            (4, 0),
            (5, 0),
            (i64::MAX, i64::MAX),
            (i64::MIN, i64::MIN),
            (i64::MIN, i64::MIN + 1),
        ] {
            let sum = b as i128 + a as i128;
            assert_eq!(Price::mid(Price(b), Price(a)), Price::from_ratio_wide(sum, 2), "{sum} / 2");
        }
    }

    #[test]
    fn side_spellings() {
        assert_eq!(Side::parse(b"BUY"), Some(Side::Buy));
        assert_eq!(Side::parse(b"-1"), Some(Side::Sell));
        assert_eq!(Side::parse(b""), Some(Side::Unknown));
        assert_eq!(Side::parse(b"x"), None);
    }

    #[test]
    fn events_are_small_and_copy() {
        fn is_copy<T: Copy>() {}
        is_copy::<Event>();
        assert!(std::mem::size_of::<Event>() <= 48, "{}", std::mem::size_of::<Event>());
        assert_eq!(std::mem::size_of::<Trade>(), 40, "the kind fits in the trade's padding");
        assert_eq!(std::mem::size_of::<LevelUpdate>(), 40);
        for b in 0..=255u8 {
            if let Some(k) = TradeKind::from_u8(b) {
                assert_eq!(k as u8, b);
            }
        }
    }

    #[test]
    fn quote_values_are_exact_and_absent_without_both_sides() {
        let q = Quote {
            bid: Price(100_000_000_000),
            ask: Price(100_010_000_000),
            bid_qty: 300,
            ask_qty: 100,
            ..Default::default()
        };
        assert_eq!(q.mid(), Some(Price(100_005_000_000)));
        assert_eq!(q.spread(), Some(Price(10_000_000)));
        // (100 × 100 + 100.01 × 300) / 400 = 100.0075
        assert_eq!(q.microprice(), Some(Price(100_007_500_000)));
        let one_sided = Quote { ask_qty: 0, ..q };
        assert_eq!((one_sided.mid(), one_sided.spread(), one_sided.microprice()), (None, None, None));
    }
}
