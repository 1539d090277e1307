//! The compact binary format of Kafka topics: one fixed-size, little-endian record per message.
//!
//! docs/formats.md ("Binary records") is the byte-by-byte reference; the tests below build records by hand from
//! those offsets, so the code and the document cannot drift apart. Version 1 has five kinds, each of a fixed
//! length: [`Kind::Trade`] (input), [`Kind::Window`], [`Kind::Late`], [`Kind::Tick`] (results) and
//! [`Kind::Reject`] (rejected input).
//!
//! Encoding appends to a caller's `Vec<u8>` through a fixed-size array on the stack, and [`decode_trade`]
//! reads in place, so neither allocates (beyond the caller's buffer growing, and the interner's first sight
//! of a symbol). [`decode`] reads any kind into a [`Decoded`] that borrows the symbol and text from the input,
//! for tools that print a topic.

use crate::event::{Nanos, Notional, Price, Qty, Side, Trade, TradeKind, WATERMARK_MIN};
use crate::record::{LateReason, Record, RejectReason, RejectRow};
use crate::symbols::Interner;

/// The layout version every record carries in byte 1.
pub const VERSION: u8 = 1;
/// Bytes of the symbol field; a longer symbol is cut (at a UTF-8 character boundary) and flagged.
pub const SYMBOL_MAX: usize = 32;
/// Bytes of a reject's text field (as [`RejectRow::TEXT`]).
pub const REJECT_TEXT_MAX: usize = RejectRow::TEXT;

pub const TRADE_LEN: usize = 64;
pub const WINDOW_LEN: usize = 160;
pub const LATE_LEN: usize = 88;
pub const TICK_LEN: usize = 112;
pub const REJECT_LEN: usize = 216;

/// Byte 2, bit 7, of the kinds with a symbol: the symbol was longer than [`SYMBOL_MAX`] bytes and was cut.
const SYMBOL_TRUNCATED: u8 = 0x80;
/// Byte 2, bit 0, of a window row: `fire > 0`.
const IS_UPDATE: u8 = 0x01;
/// Byte 3, bit 0, of a reject: the record was longer than the text field.
const TEXT_TRUNCATED: u8 = 0x01;
/// How an absent `vwap`, `twap` or `watermark` is written.
const ABSENT: i64 = i64::MIN;

/// The record kind, byte 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Kind {
    Trade = 1,
    Window = 2,
    Late = 3,
    Tick = 4,
    Reject = 5,
}

impl Kind {
    pub const fn from_u8(b: u8) -> Option<Kind> {
        match b {
            1 => Some(Kind::Trade),
            2 => Some(Kind::Window),
            3 => Some(Kind::Late),
            4 => Some(Kind::Tick),
            5 => Some(Kind::Reject),
            _ => None,
        }
    }

    /// The fixed length of a record of this kind.
    pub const fn record_len(self) -> usize {
        match self {
            Kind::Trade => TRADE_LEN,
            Kind::Window => WINDOW_LEN,
            Kind::Late => LATE_LEN,
            Kind::Tick => TICK_LEN,
            Kind::Reject => REJECT_LEN,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Kind::Trade => "trade",
            Kind::Window => "window",
            Kind::Late => "late",
            Kind::Tick => "tick",
            Kind::Reject => "reject",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What is wrong with bytes that [`decode`] refuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("empty record")]
    Empty,
    #[error("unknown record kind {0} (expected 1 to 5)")]
    Kind(u8),
    #[error("a {kind} record is {expected} bytes, not {got}")]
    Length { kind: Kind, expected: usize, got: usize },
    #[error("unsupported version {0} (expected 1)")]
    Version(u8),
    #[error("symbol_len {0} is not 1 to 32")]
    SymbolLen(u8),
    #[error("symbol is not UTF-8")]
    SymbolUtf8,
    #[error("side {0} is not 0 (unknown), 1 (buy) or 2 (sell)")]
    Side(u8),
    #[error("late reason {0} is not 1 (behind_watermark) or 2 (previous_session)")]
    LateReason(u8),
    #[error("trade kind {0} is not 0 (record) to 4 (cross)")]
    TradeKind(u8),
    #[error("unknown reject reason code {0}")]
    RejectCode(u8),
    #[error("text_len {0} is over 200")]
    TextLen(u16),
}

/// The fields of one record, as [`decode`] reads them (and as [`Decoded::encode`] writes them). The symbol
/// and the reject text borrow from the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    Trade {
        symbol: &'a str,
        /// The encoder cut a longer symbol to this one ([`decode_trade`] refuses such a trade).
        truncated: bool,
        ts: Nanos,
        price: Price,
        qty: Qty,
        side: Side,
    },
    Window {
        symbol: &'a str,
        truncated: bool,
        start: Nanos,
        end: Nanos,
        open: Price,
        high: Price,
        low: Price,
        close: Price,
        volume: Qty,
        count: u64,
        pv: Notional,
        vwap: Option<Price>,
        twap: Option<Price>,
        first_ts: Nanos,
        last_ts: Nanos,
        fire: u32,
        is_update: bool,
    },
    Late {
        symbol: &'a str,
        truncated: bool,
        ts: Nanos,
        price: Price,
        qty: Qty,
        side: Side,
        seq: u64,
        /// Byte 36: where the trade comes from.
        trade_kind: TradeKind,
        watermark: Option<Nanos>,
        reason: LateReason,
    },
    Tick {
        symbol: &'a str,
        truncated: bool,
        ts: Nanos,
        price: Price,
        qty: Qty,
        side: Side,
        seq: u64,
        /// Byte 36: where the trade comes from.
        trade_kind: TradeKind,
        vwap: Price,
        ema: Price,
        volume: Qty,
        count: u64,
    },
    Reject {
        /// Line number, or the Kafka offset for a Kafka source.
        line: u64,
        /// See [`reject_code`] and [`describe_reject_code`].
        reason: u8,
        /// The record was longer than `text`.
        truncated: bool,
        text: &'a [u8],
    },
}

impl Decoded<'_> {
    pub fn kind(&self) -> Kind {
        match self {
            Decoded::Trade { .. } => Kind::Trade,
            Decoded::Window { .. } => Kind::Window,
            Decoded::Late { .. } => Kind::Late,
            Decoded::Tick { .. } => Kind::Tick,
            Decoded::Reject { .. } => Kind::Reject,
        }
    }

    /// Appends the record ([`Kind::record_len`] bytes). A symbol longer than 32 bytes is cut and flagged, as is a
    /// reject text longer than 200; reserved bytes and padding are 0. `reason` of a reject is written as given.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match *self {
            Decoded::Trade { symbol, truncated, ts, price, qty, side } => {
                let mut b = [0u8; TRADE_LEN];
                head(&mut b, Kind::Trade, side as u8, symbol, truncated);
                put(&mut b, 40, ts.to_le_bytes());
                put(&mut b, 48, price.0.to_le_bytes());
                put(&mut b, 56, qty.to_le_bytes());
                out.extend_from_slice(&b);
            }
            Decoded::Window {
                symbol,
                truncated,
                start,
                end,
                open,
                high,
                low,
                close,
                volume,
                count,
                pv,
                vwap,
                twap,
                first_ts,
                last_ts,
                fire,
                is_update,
            } => {
                let mut b = [0u8; WINDOW_LEN];
                head(&mut b, Kind::Window, if is_update { IS_UPDATE } else { 0 }, symbol, truncated);
                put(&mut b, 40, start.to_le_bytes());
                put(&mut b, 48, end.to_le_bytes());
                put(&mut b, 56, open.0.to_le_bytes());
                put(&mut b, 64, high.0.to_le_bytes());
                put(&mut b, 72, low.0.to_le_bytes());
                put(&mut b, 80, close.0.to_le_bytes());
                put(&mut b, 88, volume.to_le_bytes());
                put(&mut b, 96, count.to_le_bytes());
                put(&mut b, 104, pv.to_le_bytes());
                put(&mut b, 120, vwap.map_or(ABSENT, |p| p.0).to_le_bytes());
                put(&mut b, 128, twap.map_or(ABSENT, |p| p.0).to_le_bytes());
                put(&mut b, 136, first_ts.to_le_bytes());
                put(&mut b, 144, last_ts.to_le_bytes());
                put(&mut b, 152, fire.to_le_bytes());
                out.extend_from_slice(&b);
            }
            Decoded::Late { symbol, truncated, ts, price, qty, side, seq, trade_kind, watermark, reason } => {
                let mut b = [0u8; LATE_LEN];
                head(&mut b, Kind::Late, side as u8, symbol, truncated);
                b[36] = trade_kind as u8;
                put(&mut b, 40, ts.to_le_bytes());
                put(&mut b, 48, price.0.to_le_bytes());
                put(&mut b, 56, qty.to_le_bytes());
                put(&mut b, 64, seq.to_le_bytes());
                put(&mut b, 72, watermark.unwrap_or(ABSENT).to_le_bytes());
                b[80] = late_reason_code(reason);
                out.extend_from_slice(&b);
            }
            Decoded::Tick { symbol, truncated, ts, price, qty, side, seq, trade_kind, vwap, ema, volume, count } => {
                let mut b = [0u8; TICK_LEN];
                head(&mut b, Kind::Tick, side as u8, symbol, truncated);
                b[36] = trade_kind as u8;
                put(&mut b, 40, ts.to_le_bytes());
                put(&mut b, 48, price.0.to_le_bytes());
                put(&mut b, 56, qty.to_le_bytes());
                put(&mut b, 64, seq.to_le_bytes());
                put(&mut b, 72, vwap.0.to_le_bytes());
                put(&mut b, 80, ema.0.to_le_bytes());
                put(&mut b, 88, volume.to_le_bytes());
                put(&mut b, 96, count.to_le_bytes());
                out.extend_from_slice(&b);
            }
            Decoded::Reject { line, reason, truncated, text } => {
                let n = text.len().min(REJECT_TEXT_MAX);
                let mut b = [0u8; REJECT_LEN];
                b[0] = Kind::Reject as u8;
                b[1] = VERSION;
                b[2] = reason;
                b[3] = if truncated || text.len() > n { TEXT_TRUNCATED } else { 0 };
                put(&mut b, 4, line.to_le_bytes());
                put(&mut b, 12, (n as u16).to_le_bytes());
                b[16..16 + n].copy_from_slice(&text[..n]);
                out.extend_from_slice(&b);
            }
        }
    }
}

/// Appends a trade record (64 bytes). `t.instrument` and `t.seq` are not encoded: the symbol is, and the
/// reader numbers records itself. A symbol longer than 32 bytes is cut and flagged, and [`decode_trade`]
/// refuses such a record, so producers should keep symbols to 32 bytes; an empty symbol is written with
/// `symbol_len` 0, which decoders refuse too.
pub fn encode_trade(symbol: &str, t: &Trade, out: &mut Vec<u8>) {
    Decoded::Trade { symbol, truncated: false, ts: t.ts, price: t.price, qty: t.qty, side: t.side }.encode(out);
}

/// Appends a window, late, tick or (for a trade passed through) trade record for a result whose key is
/// `symbol`. Quotes and level updates have no binary layout: the configuration refuses a binary sink of
/// their streams, and nothing is appended for them.
pub fn encode_record(rec: &Record, symbol: &str, out: &mut Vec<u8>) {
    let d = match rec {
        Record::Trade(t) => return encode_trade(symbol, t, out),
        Record::Quote(_) | Record::Level(_) => return,
        Record::Window(w) => Decoded::Window {
            symbol,
            truncated: false,
            start: w.start,
            end: w.end,
            open: w.bar.open,
            high: w.bar.high,
            low: w.bar.low,
            close: w.bar.close,
            volume: w.bar.volume,
            count: w.bar.count,
            pv: w.bar.pv,
            vwap: w.bar.vwap(),
            twap: w.twap,
            first_ts: w.bar.first.0,
            last_ts: w.bar.last.0,
            fire: w.fire,
            is_update: w.fire > 0,
        },
        Record::Late(l) => Decoded::Late {
            symbol,
            truncated: false,
            ts: l.trade.ts,
            price: l.trade.price,
            qty: l.trade.qty,
            side: l.trade.side,
            seq: l.trade.seq,
            trade_kind: l.trade.kind,
            watermark: (l.watermark != WATERMARK_MIN).then_some(l.watermark),
            reason: l.reason,
        },
        Record::Tick(t) => Decoded::Tick {
            symbol,
            truncated: false,
            ts: t.trade.ts,
            price: t.trade.price,
            qty: t.trade.qty,
            side: t.trade.side,
            seq: t.trade.seq,
            trade_kind: t.trade.kind,
            vwap: t.vwap,
            ema: t.ema,
            volume: t.volume,
            count: t.count,
        },
    };
    d.encode(out);
}

/// Appends a reject record (216 bytes): the line (or Kafka offset), [`reject_code`] of the reason, and the text.
pub fn encode_reject(r: &RejectRow, out: &mut Vec<u8>) {
    let n = (r.text_len as usize).min(REJECT_TEXT_MAX);
    Decoded::Reject { line: r.line, reason: reject_code(&r.reason), truncated: r.truncated, text: &r.text[..n] }
        .encode(out);
}

/// Reads one record of any kind. Reserved bytes, symbol padding and undefined flag bits are ignored.
pub fn decode(bytes: &[u8]) -> Result<Decoded<'_>, DecodeError> {
    let &k = bytes.first().ok_or(DecodeError::Empty)?;
    let kind = Kind::from_u8(k).ok_or(DecodeError::Kind(k))?;
    if bytes.len() != kind.record_len() {
        return Err(DecodeError::Length { kind, expected: kind.record_len(), got: bytes.len() });
    }
    if bytes[1] != VERSION {
        return Err(DecodeError::Version(bytes[1]));
    }
    if kind == Kind::Reject {
        let reason = bytes[2];
        if describe_reject_code(reason) == UNKNOWN_REJECT {
            return Err(DecodeError::RejectCode(reason));
        }
        let n = u16::from_le_bytes(get(bytes, 12));
        if n as usize > REJECT_TEXT_MAX {
            return Err(DecodeError::TextLen(n));
        }
        return Ok(Decoded::Reject {
            line: u64::from_le_bytes(get(bytes, 4)),
            reason,
            truncated: bytes[3] & TEXT_TRUNCATED != 0,
            text: &bytes[16..16 + n as usize],
        });
    }
    let n = bytes[3];
    if n == 0 || n as usize > SYMBOL_MAX {
        return Err(DecodeError::SymbolLen(n));
    }
    let symbol = std::str::from_utf8(&bytes[4..4 + n as usize]).map_err(|_| DecodeError::SymbolUtf8)?;
    let flags = bytes[2];
    let truncated = flags & SYMBOL_TRUNCATED != 0;
    let i64_at = |at: usize| i64::from_le_bytes(get(bytes, at));
    let u64_at = |at: usize| u64::from_le_bytes(get(bytes, at));
    let opt_at = |at: usize| Some(i64_at(at)).filter(|&v| v != ABSENT);
    let trade_kind = || TradeKind::from_u8(bytes[36]).ok_or(DecodeError::TradeKind(bytes[36]));
    Ok(match kind {
        Kind::Trade => Decoded::Trade {
            symbol,
            truncated,
            ts: i64_at(40),
            price: Price(i64_at(48)),
            qty: i64_at(56),
            side: side_of(flags)?,
        },
        Kind::Window => Decoded::Window {
            symbol,
            truncated,
            start: i64_at(40),
            end: i64_at(48),
            open: Price(i64_at(56)),
            high: Price(i64_at(64)),
            low: Price(i64_at(72)),
            close: Price(i64_at(80)),
            volume: i64_at(88),
            count: u64_at(96),
            pv: i128::from_le_bytes(get(bytes, 104)),
            vwap: opt_at(120).map(Price),
            twap: opt_at(128).map(Price),
            first_ts: i64_at(136),
            last_ts: i64_at(144),
            fire: u32::from_le_bytes(get(bytes, 152)),
            is_update: flags & IS_UPDATE != 0,
        },
        Kind::Late => Decoded::Late {
            symbol,
            truncated,
            ts: i64_at(40),
            price: Price(i64_at(48)),
            qty: i64_at(56),
            side: side_of(flags)?,
            seq: u64_at(64),
            trade_kind: trade_kind()?,
            watermark: opt_at(72),
            reason: match bytes[80] {
                1 => LateReason::BehindWatermark,
                2 => LateReason::PreviousSession,
                r => return Err(DecodeError::LateReason(r)),
            },
        },
        Kind::Tick => Decoded::Tick {
            symbol,
            truncated,
            ts: i64_at(40),
            price: Price(i64_at(48)),
            qty: i64_at(56),
            side: side_of(flags)?,
            seq: u64_at(64),
            trade_kind: trade_kind()?,
            vwap: Price(i64_at(72)),
            ema: Price(i64_at(80)),
            volume: i64_at(88),
            count: u64_at(96),
        },
        Kind::Reject => unreachable!("handled above"),
    })
}

/// The texts of the [`RejectReason::BadBinary`] rejects [`decode_trade`] gives (reject codes 18 to 23).
pub mod why {
    pub const LENGTH: &str = "length is not 64 bytes";
    pub const KIND: &str = "kind is not 1 (trade)";
    pub const VERSION: &str = "version is not 1";
    pub const SYMBOL_LEN: &str = "symbol_len is over 32";
    pub const SIDE: &str = "side is not 0, 1 or 2";
    pub const TRUNCATED: &str = "symbol was truncated to 32 bytes";
}

/// Reads a trade record: exactly 64 bytes of kind 1, version 1, with a side of 0 to 2 and a symbol of 1 to 32
/// bytes of UTF-8 that was not truncated. The symbol is interned; `seq` is the reader's record index (a Kafka
/// offset or a message count). No allocation once the symbol is known to `interner`.
///
/// Rejects: [`RejectReason::EmptySymbol`] for `symbol_len` 0, [`RejectReason::BadUtf8`],
/// [`RejectReason::TooManyInstruments`], and otherwise [`RejectReason::BadBinary`] with one of the [`why`] texts.
#[inline]
pub fn decode_trade(bytes: &[u8], seq: u64, interner: &mut Interner) -> Result<Trade, RejectReason> {
    match bytes.first() {
        None => return Err(RejectReason::BadBinary(why::LENGTH)),
        Some(&k) if k != Kind::Trade as u8 => return Err(RejectReason::BadBinary(why::KIND)),
        Some(_) => {}
    }
    let d = decode(bytes).map_err(|e| match e {
        DecodeError::SymbolLen(0) => RejectReason::EmptySymbol,
        DecodeError::SymbolLen(_) => RejectReason::BadBinary(why::SYMBOL_LEN),
        DecodeError::SymbolUtf8 => RejectReason::BadUtf8,
        DecodeError::Version(_) => RejectReason::BadBinary(why::VERSION),
        DecodeError::Side(_) => RejectReason::BadBinary(why::SIDE),
        DecodeError::Kind(_) => RejectReason::BadBinary(why::KIND),
        // Empty and Length, and (not reachable for kind 1) the other kinds' errors.
        _ => RejectReason::BadBinary(why::LENGTH),
    })?;
    let Decoded::Trade { symbol, truncated, ts, price, qty, side } = d else {
        return Err(RejectReason::BadBinary(why::KIND));
    };
    if truncated {
        return Err(RejectReason::BadBinary(why::TRUNCATED));
    }
    let instrument = interner.id(symbol.as_bytes()).ok_or(RejectReason::TooManyInstruments)?;
    Ok(Trade { ts, price, qty, seq, instrument, side, kind: TradeKind::Record })
}

/// The reject reason code (byte 2 of a reject record) of `r`: 1 to 25, listed in docs/formats.md.
pub fn reject_code(r: &RejectReason) -> u8 {
    match *r {
        RejectReason::MissingField("ts") => 1,
        RejectReason::MissingField("symbol") => 2,
        RejectReason::MissingField("price") => 3,
        RejectReason::MissingField("qty") => 4,
        RejectReason::MissingField("side") => 5,
        RejectReason::MissingField(_) => 6,
        RejectReason::BadTimestamp => 7,
        RejectReason::TimestampOutOfRange => 8,
        RejectReason::BadPrice => 9,
        RejectReason::BadQty => 10,
        RejectReason::BadSide => 11,
        RejectReason::EmptySymbol => 12,
        RejectReason::SymbolNotString => 13,
        RejectReason::BadUtf8 => 14,
        RejectReason::BadJson => 15,
        RejectReason::TooManyFields => 16,
        RejectReason::TooManyInstruments => 17,
        RejectReason::BadBinary(why::LENGTH) => 18,
        RejectReason::BadBinary(why::KIND) => 19,
        RejectReason::BadBinary(why::VERSION) => 20,
        RejectReason::BadBinary(why::SYMBOL_LEN) => 21,
        RejectReason::BadBinary(why::SIDE) => 22,
        RejectReason::BadBinary(why::TRUNCATED) => 23,
        RejectReason::BadBinary(_) => 24,
        RejectReason::BadFeed(_) => 25,
    }
}

const UNKNOWN_REJECT: &str = "unknown reject reason";

/// The reason text of a reject code: what [`RejectReason::describe`] writes for the reason, except for codes 6
/// (a missing field other than the five standard ones) and 24 (a binary record refused for a reason other
/// than codes 18 to 23) and 25 (an exchange-feed message), where the detail is not in the record. `"unknown reject
/// reason"` for 0 and 26 to 255.
pub fn describe_reject_code(code: u8) -> &'static str {
    match code {
        1 => "missing field ts",
        2 => "missing field symbol",
        3 => "missing field price",
        4 => "missing field qty",
        5 => "missing field side",
        6 => "missing field",
        7 => "timestamp is not an integer",
        8 => "timestamp out of range for i64 nanoseconds",
        9 => "price is not a decimal with at most 9 fractional digits",
        10 => "quantity is not an integer",
        11 => "side is not one of B, S, buy, sell, 1, -1",
        12 => "empty symbol",
        13 => "symbol is not a JSON string",
        14 => "not UTF-8",
        15 => "not a JSON object",
        16 => "too many fields (expected ts,symbol,price,qty[,side])",
        17 => "more distinct instruments than pipeline.max_instruments",
        18 => "not a ticklane binary record: length is not 64 bytes",
        19 => "not a ticklane binary record: kind is not 1 (trade)",
        20 => "not a ticklane binary record: version is not 1",
        21 => "not a ticklane binary record: symbol_len is over 32",
        22 => "not a ticklane binary record: side is not 0, 1 or 2",
        23 => "not a ticklane binary record: symbol was truncated to 32 bytes",
        24 => "not a ticklane binary record",
        25 => "bad exchange-feed message",
        _ => UNKNOWN_REJECT,
    }
}

/// Bytes 0..40 of a record with a symbol: kind, version, flags (with bit 7 set if the symbol is cut or
/// `truncated`), symbol_len, symbol (zero-padded); bytes 36..40 stay 0.
#[inline]
fn head(b: &mut [u8], kind: Kind, flags: u8, symbol: &str, truncated: bool) {
    let mut n = symbol.len().min(SYMBOL_MAX);
    while !symbol.is_char_boundary(n) {
        n -= 1;
    }
    b[0] = kind as u8;
    b[1] = VERSION;
    b[2] = flags | if truncated || n < symbol.len() { SYMBOL_TRUNCATED } else { 0 };
    b[3] = n as u8;
    b[4..4 + n].copy_from_slice(&symbol.as_bytes()[..n]);
}

#[inline]
fn put<const W: usize>(b: &mut [u8], at: usize, v: [u8; W]) {
    b[at..at + W].copy_from_slice(&v);
}

/// `W` bytes at `at` (the caller has checked the record's length).
#[inline]
fn get<const W: usize>(b: &[u8], at: usize) -> [u8; W] {
    let mut a = [0u8; W];
    a.copy_from_slice(&b[at..at + W]);
    a
}

/// The side in byte 2 (bit 7, the truncation flag, masked off).
#[inline]
fn side_of(flags: u8) -> Result<Side, DecodeError> {
    match flags & !SYMBOL_TRUNCATED {
        0 => Ok(Side::Unknown),
        1 => Ok(Side::Buy),
        2 => Ok(Side::Sell),
        s => Err(DecodeError::Side(s)),
    }
}

fn late_reason_code(r: LateReason) -> u8 {
    match r {
        LateReason::BehindWatermark => 1,
        LateReason::PreviousSession => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agg::Bar;
    use crate::record::{LateRow, TickRow, WindowRow};
    use crate::symbols::Symbols;
    use proptest::prelude::*;

    fn interner() -> Interner {
        Interner::new(Symbols::new(), 16)
    }

    /// Writes `v` little-endian at `at` of a hand-built buffer.
    fn le(buf: &mut [u8], at: usize, v: &[u8]) {
        buf[at..at + v.len()].copy_from_slice(v);
    }

    fn trade(ts: Nanos, price: i64, qty: Qty, side: Side) -> Trade {
        Trade { ts, price: Price(price), qty, seq: 0, instrument: 0, side, kind: TradeKind::Record }
    }

    #[test]
    fn trade_layout_matches_the_documentation() {
        let t = trade(1_700_000_000_123_456_789, 189_123_400_000, -100, Side::Sell);
        let mut want = [0u8; 64];
        want[0] = 1; // kind
        want[1] = 1; // version
        want[2] = 2; // side: sell
        want[3] = 4; // symbol_len
        le(&mut want, 4, b"AAPL");
        // ts 1_700_000_000_123_456_789 = 0x17979cfe3d85cd15
        le(&mut want, 40, &[0x15, 0xcd, 0x85, 0x3d, 0xfe, 0x9c, 0x97, 0x17]);
        le(&mut want, 48, &[0x40, 0x11, 0xa2, 0x08, 0x2c, 0, 0, 0]); // 189.1234 = 189_123_400_000 = 0x2c08a21140
        le(&mut want, 56, &[0x9c, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]); // -100
        let mut out = vec![0xAA]; // appends after what is there
        encode_trade("AAPL", &t, &mut out);
        assert_eq!(out.len(), 1 + TRADE_LEN);
        assert_eq!(out[1..], want[..]);

        let mut i = interner();
        let got = decode_trade(&want, 7, &mut i).unwrap();
        assert_eq!(got, Trade { seq: 7, ..t });
        assert_eq!(
            decode(&want),
            Ok(Decoded::Trade {
                symbol: "AAPL",
                truncated: false,
                ts: t.ts,
                price: t.price,
                qty: -100,
                side: Side::Sell
            })
        );
        // Reserved bytes and symbol padding are ignored when read.
        want[36..40].fill(0xEE);
        want[10] = 0xEE;
        assert_eq!(decode_trade(&want, 7, &mut i), Ok(Trade { seq: 7, ..t }));
    }

    #[test]
    fn window_layout_matches_the_documentation() {
        let t = trade(1_500, 12_345_000_000, 7, Side::Buy);
        let mut bar = Bar::of(&t, 0);
        bar.add(&trade(1_900, 12_000_000_000, 3, Side::Sell), 1);
        let w = WindowRow { key: 0, start: 1_000, end: 2_000, bar, twap: Some(Price(12_100_000_000)), fire: 2 };
        let mut want = [0u8; 160];
        want[0] = 2;
        want[1] = 1;
        want[2] = 0x01; // is_update
        want[3] = 5;
        le(&mut want, 4, b"MSFT.");
        le(&mut want, 40, &1_000i64.to_le_bytes());
        le(&mut want, 48, &2_000i64.to_le_bytes());
        le(&mut want, 56, &12_345_000_000i64.to_le_bytes()); // open
        le(&mut want, 64, &12_345_000_000i64.to_le_bytes()); // high
        le(&mut want, 72, &12_000_000_000i64.to_le_bytes()); // low
        le(&mut want, 80, &12_000_000_000i64.to_le_bytes()); // close
        le(&mut want, 88, &10i64.to_le_bytes()); // volume
        le(&mut want, 96, &2u64.to_le_bytes()); // count
        let pv: i128 = 12_345_000_000 * 7 + 12_000_000_000 * 3;
        le(&mut want, 104, &pv.to_le_bytes()); // 16 bytes
        le(&mut want, 120, &12_241_500_000i64.to_le_bytes()); // vwap = pv / 10
        le(&mut want, 128, &12_100_000_000i64.to_le_bytes()); // twap
        le(&mut want, 136, &1_500i64.to_le_bytes());
        le(&mut want, 144, &1_900i64.to_le_bytes());
        le(&mut want, 152, &2u32.to_le_bytes());
        let mut out = Vec::new();
        encode_record(&Record::Window(w), "MSFT.", &mut out);
        assert_eq!(out, want);

        // Zero volume: vwap absent (i64::MIN); no twap; first emission.
        let w0 = WindowRow { bar: Bar { volume: 0, ..bar }, twap: None, fire: 0, ..w };
        want[2] = 0;
        le(&mut want, 88, &0i64.to_le_bytes());
        le(&mut want, 120, &[0, 0, 0, 0, 0, 0, 0, 0x80]);
        le(&mut want, 128, &[0, 0, 0, 0, 0, 0, 0, 0x80]);
        le(&mut want, 152, &0u32.to_le_bytes());
        out.clear();
        encode_record(&Record::Window(w0), "MSFT.", &mut out);
        assert_eq!(out, want);
        let Ok(Decoded::Window { vwap, twap, is_update, volume, .. }) = decode(&out) else { panic!() };
        assert_eq!((vwap, twap, is_update, volume), (None, None, false, 0));
    }

    #[test]
    fn late_tick_and_reject_layouts_match_the_documentation() {
        let t = Trade { seq: 42, kind: TradeKind::NonCross, ..trade(5, 6, 7, Side::Buy) };
        let late = LateRow { trade: t, watermark: WATERMARK_MIN, reason: LateReason::PreviousSession };
        let mut want = [0u8; 88];
        want[..4].copy_from_slice(&[3, 1, 1, 1]);
        want[4] = b'X';
        want[36] = 3; // trade kind: non_cross
        le(&mut want, 40, &5i64.to_le_bytes());
        le(&mut want, 48, &6i64.to_le_bytes());
        le(&mut want, 56, &7i64.to_le_bytes());
        le(&mut want, 64, &42u64.to_le_bytes());
        le(&mut want, 72, &i64::MIN.to_le_bytes());
        want[80] = 2;
        let mut out = Vec::new();
        encode_record(&Record::Late(late), "X", &mut out);
        assert_eq!(out, want);

        let tick = TickRow { trade: t, vwap: Price(8), ema: Price(9), volume: 10, count: 11 };
        let mut want = [0u8; 112];
        want[..4].copy_from_slice(&[4, 1, 1, 1]);
        want[4] = b'X';
        want[36] = 3;
        le(&mut want, 40, &5i64.to_le_bytes());
        le(&mut want, 48, &6i64.to_le_bytes());
        le(&mut want, 56, &7i64.to_le_bytes());
        le(&mut want, 64, &42u64.to_le_bytes());
        le(&mut want, 72, &8i64.to_le_bytes());
        le(&mut want, 80, &9i64.to_le_bytes());
        le(&mut want, 88, &10i64.to_le_bytes());
        le(&mut want, 96, &11u64.to_le_bytes());
        out.clear();
        encode_record(&Record::Tick(tick), "X", &mut out);
        assert_eq!(out, want);

        let r = RejectRow::new(0x0102_0304_0506_0708, RejectReason::MissingField("qty"), &[b'z'; 250]);
        let mut want = [0u8; 216];
        want[..4].copy_from_slice(&[5, 1, 4, 1]); // reason 4 = missing field qty; text truncated
        le(&mut want, 4, &[8, 7, 6, 5, 4, 3, 2, 1]);
        le(&mut want, 12, &[200, 0]);
        want[16..216].fill(b'z');
        out.clear();
        encode_reject(&r, &mut out);
        assert_eq!(out, want);
    }

    #[test]
    fn long_symbols_are_cut_at_a_char_boundary_and_flagged() {
        // 31 ASCII bytes and a 2-byte character: 33 bytes, cut to 31.
        let sym = format!("{}é", "A".repeat(31));
        let t = trade(1, 2, 3, Side::Buy);
        let mut out = Vec::new();
        encode_trade(&sym, &t, &mut out);
        assert_eq!((out[2], out[3]), (0x81, 31));
        assert_eq!(out[35], 0);
        let Ok(Decoded::Trade { symbol, truncated: true, side: Side::Buy, .. }) = decode(&out) else { panic!() };
        assert_eq!(symbol, &sym[..31]);
        assert_eq!(decode_trade(&out, 0, &mut interner()), Err(RejectReason::BadBinary(why::TRUNCATED)));
        // Exactly 32 bytes is not cut.
        out.clear();
        encode_trade(&"B".repeat(32), &t, &mut out);
        assert_eq!((out[2], out[3]), (1, 32));
        assert!(decode_trade(&out, 0, &mut interner()).is_ok());
        // A window row with a 40-byte symbol of 4-byte characters: cut to 32.
        let w = WindowRow { key: 0, start: 0, end: 1, bar: Bar::of(&t, 0), twap: None, fire: 0 };
        out.clear();
        encode_record(&Record::Window(w), &"🦀".repeat(10), &mut out);
        assert_eq!((out[2], out[3]), (0x80, 32));
        let Ok(Decoded::Window { symbol, truncated: true, .. }) = decode(&out) else { panic!() };
        assert_eq!(symbol, "🦀".repeat(8));
    }

    #[test]
    fn malformed_records_are_refused_with_the_reason() {
        let mut good = Vec::new();
        encode_trade("AB", &trade(1, 2, 3, Side::Unknown), &mut good);
        let mut i = interner();
        let mut bad = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut b = good.clone();
            f(&mut b);
            (decode(&b).err(), decode_trade(&b, 0, &mut i).err())
        };
        let bb = |w| Some(RejectReason::BadBinary(w));
        assert_eq!(bad(&|b| b.clear()), (Some(DecodeError::Empty), bb(why::LENGTH)));
        assert_eq!(
            bad(&|b| b.truncate(63)),
            (Some(DecodeError::Length { kind: Kind::Trade, expected: 64, got: 63 }), bb(why::LENGTH))
        );
        assert_eq!(
            bad(&|b| b.push(0)),
            (Some(DecodeError::Length { kind: Kind::Trade, expected: 64, got: 65 }), bb(why::LENGTH))
        );
        assert_eq!(bad(&|b| b[0] = 0), (Some(DecodeError::Kind(0)), bb(why::KIND)));
        assert_eq!(bad(&|b| b[0] = 6), (Some(DecodeError::Kind(6)), bb(why::KIND)));
        assert_eq!(
            bad(&|b| b[0] = 2),
            (Some(DecodeError::Length { kind: Kind::Window, expected: 160, got: 64 }), bb(why::KIND))
        );
        assert_eq!(bad(&|b| b[1] = 0), (Some(DecodeError::Version(0)), bb(why::VERSION)));
        assert_eq!(bad(&|b| b[1] = 2), (Some(DecodeError::Version(2)), bb(why::VERSION)));
        assert_eq!(bad(&|b| b[2] = 3), (Some(DecodeError::Side(3)), bb(why::SIDE)));
        assert_eq!(bad(&|b| b[2] = 0x41), (Some(DecodeError::Side(0x41)), bb(why::SIDE)));
        assert_eq!(bad(&|b| b[3] = 0), (Some(DecodeError::SymbolLen(0)), Some(RejectReason::EmptySymbol)));
        assert_eq!(bad(&|b| b[3] = 33), (Some(DecodeError::SymbolLen(33)), bb(why::SYMBOL_LEN)));
        assert_eq!(bad(&|b| b[3] = 255), (Some(DecodeError::SymbolLen(255)), bb(why::SYMBOL_LEN)));
        assert_eq!(bad(&|b| b[4] = 0xFF), (Some(DecodeError::SymbolUtf8), Some(RejectReason::BadUtf8)));
        // A character split by symbol_len: "é" is 2 bytes, symbol_len says 3 of "ABé".
        assert_eq!(
            bad(&|b| {
                b[4..8].copy_from_slice("ABé".as_bytes());
                b[3] = 3;
            }),
            (Some(DecodeError::SymbolUtf8), Some(RejectReason::BadUtf8))
        );
        assert_eq!(bad(&|b| b[2] = 0x80), (None, bb(why::TRUNCATED)));
        assert_eq!(bad(&|_| {}), (None, None));

        // The other kinds.
        let t = trade(1, 2, 3, Side::Sell);
        let mut late = Vec::new();
        let row = LateRow { trade: t, watermark: 0, reason: LateReason::BehindWatermark };
        encode_record(&Record::Late(row), "AB", &mut late);
        late[80] = 3;
        assert_eq!(decode(&late), Err(DecodeError::LateReason(3)));
        late[80] = 1;
        late[36] = 5;
        assert_eq!(decode(&late), Err(DecodeError::TradeKind(5)));
        late[36] = 0;
        late[2] = 0x83;
        assert_eq!(decode(&late), Err(DecodeError::Side(3)));
        let mut rej = Vec::new();
        encode_reject(&RejectRow::new(1, RejectReason::BadQty, b"x"), &mut rej);
        for code in [0, 26, 255] {
            rej[2] = code;
            assert_eq!(decode(&rej), Err(DecodeError::RejectCode(code)));
        }
        rej[2] = 10;
        le(&mut rej, 12, &201u16.to_le_bytes());
        assert_eq!(decode(&rej), Err(DecodeError::TextLen(201)));
        le(&mut rej, 12, &200u16.to_le_bytes());
        assert!(matches!(decode(&rej), Ok(Decoded::Reject { text, .. }) if text.len() == 200));
        assert_eq!(decode_trade(&rej, 0, &mut interner()), Err(RejectReason::BadBinary(why::KIND)));
    }

    #[test]
    fn errors_and_rejects_read_well() {
        assert_eq!(
            DecodeError::Length { kind: Kind::Window, expected: 160, got: 3 }.to_string(),
            "a window record is 160 bytes, not 3"
        );
        let mut s = Vec::new();
        RejectReason::BadBinary(why::KIND).describe(&mut s);
        assert_eq!(s, b"not a ticklane binary record: kind is not 1 (trade)");
        let mut i = Interner::new(Symbols::new(), 1);
        let mut b = Vec::new();
        encode_trade("A", &trade(1, 1, 1, Side::Buy), &mut b);
        encode_trade("B", &trade(1, 1, 1, Side::Buy), &mut b);
        assert_eq!(decode_trade(&b[..64], 0, &mut i).map(|t| t.instrument), Ok(0));
        assert_eq!(decode_trade(&b[64..], 1, &mut i), Err(RejectReason::TooManyInstruments));
    }

    /// Every reject reason a source produces (each with its own code).
    const REASONS: [RejectReason; 22] = [
        RejectReason::MissingField("ts"),
        RejectReason::MissingField("symbol"),
        RejectReason::MissingField("price"),
        RejectReason::MissingField("qty"),
        RejectReason::MissingField("side"),
        RejectReason::BadTimestamp,
        RejectReason::TimestampOutOfRange,
        RejectReason::BadPrice,
        RejectReason::BadQty,
        RejectReason::BadSide,
        RejectReason::EmptySymbol,
        RejectReason::SymbolNotString,
        RejectReason::BadUtf8,
        RejectReason::BadJson,
        RejectReason::TooManyFields,
        RejectReason::TooManyInstruments,
        RejectReason::BadBinary(why::LENGTH),
        RejectReason::BadBinary(why::KIND),
        RejectReason::BadBinary(why::VERSION),
        RejectReason::BadBinary(why::SYMBOL_LEN),
        RejectReason::BadBinary(why::SIDE),
        RejectReason::BadBinary(why::TRUNCATED),
    ];

    #[test]
    fn every_reject_reason_has_a_code_that_describes_it() {
        let reasons = REASONS;
        // Reminder to list a new reason here (and give it a code).
        match reasons[0] {
            RejectReason::MissingField(_)
            | RejectReason::BadTimestamp
            | RejectReason::TimestampOutOfRange
            | RejectReason::BadPrice
            | RejectReason::BadQty
            | RejectReason::BadSide
            | RejectReason::EmptySymbol
            | RejectReason::SymbolNotString
            | RejectReason::BadUtf8
            | RejectReason::BadJson
            | RejectReason::TooManyFields
            | RejectReason::TooManyInstruments
            | RejectReason::BadBinary(_)
            | RejectReason::BadFeed(_) => {}
        }
        let mut seen = std::collections::HashSet::new();
        for r in reasons {
            let code = reject_code(&r);
            assert!(seen.insert(code), "{r:?}: code {code} used twice");
            let mut text = Vec::new();
            r.describe(&mut text);
            assert_eq!(describe_reject_code(code).as_bytes(), text, "{r:?}");
        }
        // The catch-alls, and the codes that are not in use.
        assert_eq!(reject_code(&RejectReason::MissingField("t")), 6);
        assert_eq!(reject_code(&RejectReason::BadBinary("something else")), 24);
        assert_eq!(reject_code(&RejectReason::BadFeed("ITCH message")), 25);
        assert!(seen.insert(6) && seen.insert(24) && seen.insert(25));
        assert_eq!(seen, (1..=25).collect());
        for code in (0..=255u8).filter(|c| !seen.contains(c)) {
            assert_eq!(describe_reject_code(code), "unknown reject reason");
        }
        for code in 1..=25 {
            assert_ne!(describe_reject_code(code), "unknown reject reason");
        }
    }

    #[test]
    fn encoding_appends_into_the_buffer_without_reallocating() {
        let mut out = Vec::with_capacity(1024);
        let ptr = out.as_ptr();
        let t = trade(1, 2, 3, Side::Buy);
        encode_trade("SYM", &t, &mut out);
        let w = WindowRow { key: 0, start: 0, end: 1, bar: Bar::of(&t, 0), twap: None, fire: 0 };
        encode_record(&Record::Window(w), "SYM", &mut out);
        let l = LateRow { trade: t, watermark: 0, reason: LateReason::BehindWatermark };
        encode_record(&Record::Late(l), "SYM", &mut out);
        let k = TickRow { trade: t, vwap: Price(1), ema: Price(1), volume: 1, count: 1 };
        encode_record(&Record::Tick(k), "SYM", &mut out);
        encode_reject(&RejectRow::new(1, RejectReason::BadJson, b"{"), &mut out);
        assert_eq!(out.len(), TRADE_LEN + WINDOW_LEN + LATE_LEN + TICK_LEN + REJECT_LEN);
        assert_eq!(out.as_ptr(), ptr);
        // The records lie back to back.
        let mut at = 0;
        for kind in [Kind::Trade, Kind::Window, Kind::Late, Kind::Tick, Kind::Reject] {
            let d = decode(&out[at..at + kind.record_len()]).unwrap();
            assert_eq!(d.kind(), kind);
            at += kind.record_len();
        }
    }

    // Property tests.

    fn i64s() -> impl Strategy<Value = i64> {
        prop_oneof![Just(i64::MIN), Just(i64::MAX), Just(0), Just(-1), Just(1), any::<i64>()]
    }

    fn u64s() -> impl Strategy<Value = u64> {
        prop_oneof![Just(0), Just(u64::MAX), any::<u64>()]
    }

    fn i128s() -> impl Strategy<Value = i128> {
        prop_oneof![Just(i128::MIN), Just(i128::MAX), Just(0), Just(-1), any::<i128>()]
    }

    /// Prices that are not `i64::MIN` (which means "absent" where a price is optional).
    fn present() -> impl Strategy<Value = Price> {
        prop_oneof![Just(i64::MIN + 1), Just(i64::MAX), any::<i64>().prop_filter("absent", |&v| v != i64::MIN)]
            .prop_map(Price)
    }

    fn sides() -> impl Strategy<Value = Side> {
        prop_oneof![Just(Side::Unknown), Just(Side::Buy), Just(Side::Sell)]
    }

    /// Symbols of 1 to 48 bytes: ASCII and any other characters, some longer than 32 bytes.
    fn symbols() -> impl Strategy<Value = String> {
        prop_oneof!["[A-Z0-9./:_-]{1,40}", "\\PC{1,12}", "[é🦀a]{1,20}"]
    }

    /// The symbol as it is stored: at most 32 bytes, cut at a character boundary.
    fn stored(s: &str) -> (&str, bool) {
        let mut n = s.len().min(32);
        while !s.is_char_boundary(n) {
            n -= 1;
        }
        (&s[..n], n < s.len())
    }

    fn trades() -> impl Strategy<Value = Trade> {
        (i64s(), i64s(), i64s(), u64s(), any::<u32>(), sides(), 0u8..=4).prop_map(
            |(ts, price, qty, seq, instrument, side, kind)| {
                let kind = TradeKind::from_u8(kind).expect("0 to 4");
                Trade { ts, price: Price(price), qty, seq, instrument, side, kind }
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn trades_round_trip(sym in symbols(), t in trades(), seq in u64s()) {
            let mut out = vec![9u8; 3];
            encode_trade(&sym, &t, &mut out);
            prop_assert_eq!(out.len(), 3 + TRADE_LEN);
            let rec = &out[3..];
            let (symbol, truncated) = stored(&sym);
            prop_assert_eq!(
                decode(rec),
                Ok(Decoded::Trade { symbol, truncated, ts: t.ts, price: t.price, qty: t.qty, side: t.side })
            );
            let symbols = Symbols::new();
            let mut i = Interner::new(symbols.clone(), 4);
            if truncated {
                prop_assert_eq!(decode_trade(rec, seq, &mut i), Err(RejectReason::BadBinary(why::TRUNCATED)));
            } else {
                let got = decode_trade(rec, seq, &mut i).unwrap();
                // A trade record carries no kind: what a source reads from one is a record.
                prop_assert_eq!(got, Trade { seq, instrument: 0, kind: TradeKind::Record, ..t });
                prop_assert_eq!(&*symbols.name(0).unwrap(), sym.as_str());
            }
        }

        #[test]
        fn window_rows_round_trip(
            sym in symbols(),
            (start, end, first, last) in (i64s(), i64s(), i64s(), i64s()),
            (open, high, low, close) in (i64s(), i64s(), i64s(), i64s()),
            volume in prop_oneof![Just(0), Just(1), Just(i64::MAX), 0..i64::MAX],
            (count, pv, twap, fire) in (u64s(), i128s(), proptest::option::of(present()), any::<u32>()),
        ) {
            let bar = Bar {
                open: Price(open),
                high: Price(high),
                low: Price(low),
                close: Price(close),
                volume,
                count,
                pv,
                first: (first, 5),
                last: (last, 6),
            };
            let w = WindowRow { key: 3, start, end, bar, twap, fire };
            let mut out = Vec::new();
            encode_record(&Record::Window(w), &sym, &mut out);
            prop_assert_eq!(out.len(), WINDOW_LEN);
            let (symbol, truncated) = stored(&sym);
            let want = Decoded::Window {
                symbol,
                truncated,
                start,
                end,
                open: Price(open),
                high: Price(high),
                low: Price(low),
                close: Price(close),
                volume,
                count,
                pv,
                // A computed VWAP of exactly i64::MIN would read back as absent (documented).
                vwap: bar.vwap().filter(|p| p.0 != i64::MIN),
                twap,
                first_ts: first,
                last_ts: last,
                fire,
                is_update: fire > 0,
            };
            prop_assert_eq!(decode(&out), Ok(want));
        }

        #[test]
        fn late_rows_round_trip(
            sym in symbols(),
            t in trades(),
            watermark in i64s(),
            previous in any::<bool>(),
        ) {
            let reason = if previous { LateReason::PreviousSession } else { LateReason::BehindWatermark };
            let l = LateRow { trade: t, watermark, reason };
            let mut out = Vec::new();
            encode_record(&Record::Late(l), &sym, &mut out);
            prop_assert_eq!(out.len(), LATE_LEN);
            let (symbol, truncated) = stored(&sym);
            let want = Decoded::Late {
                symbol,
                truncated,
                ts: t.ts,
                price: t.price,
                qty: t.qty,
                side: t.side,
                seq: t.seq,
                trade_kind: t.kind,
                watermark: (watermark != i64::MIN).then_some(watermark),
                reason,
            };
            prop_assert_eq!(decode(&out), Ok(want));
        }

        #[test]
        fn tick_rows_round_trip(
            sym in symbols(),
            t in trades(),
            (vwap, ema, volume, count) in (i64s(), i64s(), i64s(), u64s()),
        ) {
            let k = TickRow { trade: t, vwap: Price(vwap), ema: Price(ema), volume, count };
            let mut out = Vec::new();
            encode_record(&Record::Tick(k), &sym, &mut out);
            prop_assert_eq!(out.len(), TICK_LEN);
            let (symbol, truncated) = stored(&sym);
            let want = Decoded::Tick {
                symbol,
                truncated,
                ts: t.ts,
                price: t.price,
                qty: t.qty,
                side: t.side,
                seq: t.seq,
                trade_kind: t.kind,
                vwap: Price(vwap),
                ema: Price(ema),
                volume,
                count,
            };
            prop_assert_eq!(decode(&out), Ok(want));
        }

        #[test]
        fn rejects_round_trip(
            line in u64s(),
            code in 0usize..24,
            text in proptest::collection::vec(any::<u8>(), 0..260),
        ) {
            // The known reasons, and one of each kind that has no code of its own.
            let other = [RejectReason::MissingField("other"), RejectReason::BadBinary("other")];
            let reasons: Vec<RejectReason> = REASONS.iter().chain(&other).copied().collect();
            let r = RejectRow::new(line, reasons[code], &text);
            let mut out = Vec::new();
            encode_reject(&r, &mut out);
            prop_assert_eq!(out.len(), REJECT_LEN);
            let n = text.len().min(200);
            let (reason, truncated) = (reject_code(&r.reason), text.len() > 200);
            prop_assert_eq!(decode(&out), Ok(Decoded::Reject { line, reason, truncated, text: &text[..n] }));
        }

        /// Any bytes: no panic; `decode_trade` accepts exactly the trades `decode` reads with an untruncated
        /// symbol, and agrees on the fields; what `decode` accepts re-encodes to the same bytes, apart from the
        /// bytes that are ignored.
        #[test]
        fn arbitrary_bytes_never_panic(
            kind in 0u8..7,
            len_pick in 0usize..7,
            mut bytes in proptest::collection::vec(any::<u8>(), 0..230),
            version_ok in proptest::bool::weighted(0.9),
            sym_len in prop_oneof![0u8..=33, any::<u8>()],
            flags in prop_oneof![0u8..3, 0x80u8..0x83, 0u8..26, any::<u8>()],
            ascii in any::<bool>(),
        ) {
            // Mostly well-framed records, so the field checks are reached.
            let len = [0, 1, 63, 64, 65, Kind::from_u8(kind).map_or(64, Kind::record_len), bytes.len()][len_pick];
            bytes.resize(len, 0);
            if let Some(b) = bytes.get_mut(0) { *b = kind; }
            if let Some(b) = bytes.get_mut(1) { *b = if version_ok { 1 } else { *b }; }
            if let Some(b) = bytes.get_mut(2) { *b = flags; }
            if let Some(b) = bytes.get_mut(3) { if kind != 5 { *b = sym_len; } }
            if ascii && kind != 5 {
                bytes.iter_mut().skip(4).take(32).for_each(|b| *b &= 0x7F);
            }
            check_bytes(&bytes);
        }
    }

    proptest! {
        #[test]
        fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            check_bytes(&bytes);
        }
    }

    /// The checks of the fuzz target (fuzz/fuzz_targets/binary_decode.rs), for arbitrary bytes.
    fn check_bytes(bytes: &[u8]) {
        let symbols = Symbols::new();
        let mut i = Interner::new(symbols.clone(), 4);
        let d = decode(bytes);
        match (d, decode_trade(bytes, 9, &mut i)) {
            (Ok(Decoded::Trade { symbol, truncated: false, ts, price, qty, side }), Ok(t)) => {
                assert_eq!(t, Trade { ts, price, qty, side, seq: 9, instrument: 0, kind: TradeKind::Record });
                assert_eq!(&*symbols.name(0).unwrap(), symbol);
            }
            (Ok(Decoded::Trade { truncated: true, .. }), Err(RejectReason::BadBinary(why::TRUNCATED))) => {}
            (Ok(Decoded::Trade { .. }), r) => panic!("decode reads a trade, decode_trade gives {r:?}"),
            (_, Ok(t)) => panic!("decode_trade accepts {t:?}, decode gives {d:?}"),
            _ => {}
        }
        if let Ok(d) = d {
            let mut out = Vec::new();
            d.encode(&mut out);
            assert_eq!(out, canonical(bytes));
            assert_eq!(decode(&out), Ok(d));
        }
    }

    /// `bytes` with the bytes that readers ignore set to 0.
    fn canonical(bytes: &[u8]) -> Vec<u8> {
        let mut b = bytes.to_vec();
        if b[0] == 5 {
            b[3] &= 1;
            b[14..16].fill(0);
            let n = u16::from_le_bytes([b[12], b[13]]) as usize;
            b[16 + n..].fill(0);
        } else {
            let n = b[3] as usize;
            b[4 + n..40].fill(0);
            if b[0] == 2 {
                b[2] &= 0x81;
                b[156..160].fill(0);
            }
            if b[0] == 3 {
                b[81..88].fill(0);
            }
            if b[0] == 4 {
                b[104..112].fill(0);
            }
        }
        b
    }
}
