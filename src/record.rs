//! Result records: what operators emit and sinks write. Fixed-size and `Copy`, like events.

use crate::agg::Bar;
use crate::event::{KeyId, LevelUpdate, Nanos, Price, Qty, Quote, Trade};

/// Index of an output stream (a window's results, its late side output, a continuous aggregate, a
/// source's rejects), assigned when the pipeline is built.
pub type StreamId = u16;

/// One window's result for one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowRow {
    pub key: KeyId,
    /// `[start, end)` in ns; for a session, `[first_ts, last_ts + gap)`.
    pub start: Nanos,
    pub end: Nanos,
    pub bar: Bar,
    /// TWAP over `[first trade, end)` when the window computes it.
    pub twap: Option<Price>,
    /// 0 for the first emission of this window, k for the k-th re-emission (an update caused by a late
    /// element within the allowed lateness).
    pub fire: u32,
}

/// An element that was too late for every window it belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LateRow {
    pub trade: Trade,
    /// The watermark the element was judged against.
    pub watermark: Nanos,
    pub reason: LateReason,
}

/// Why an element went to a late side output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LateReason {
    /// Every window it belongs to is past `maxTimestamp + allowed lateness` at the watermark.
    BehindWatermark,
    /// Its trading session has already been replaced by a newer one (continuous aggregates).
    PreviousSession,
}

impl LateReason {
    pub fn as_str(self) -> &'static str {
        match self {
            LateReason::BehindWatermark => "behind_watermark",
            LateReason::PreviousSession => "previous_session",
        }
    }
}

/// A per-trade continuous aggregate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TickRow {
    pub trade: Trade,
    /// Running VWAP since the start of the trading session (including this trade).
    pub vwap: Price,
    /// EMA of price (including this trade).
    pub ema: Price,
    /// Session volume and trade count so far.
    pub volume: Qty,
    pub count: u64,
}

/// A rejected input record: the source, where it was, why, and the start of its text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RejectRow {
    /// Line number (1-based, counting the header) or record number.
    pub line: u64,
    pub reason: RejectReason,
    /// Up to [`RejectRow::TEXT`] bytes of the offending record.
    pub text: [u8; RejectRow::TEXT],
    pub text_len: u16,
    /// True if the record was longer than `text`.
    pub truncated: bool,
}

impl RejectRow {
    pub const TEXT: usize = 200;

    pub fn new(line: u64, reason: RejectReason, record: &[u8]) -> RejectRow {
        let n = record.len().min(Self::TEXT);
        let mut text = [0u8; Self::TEXT];
        text[..n].copy_from_slice(&record[..n]);
        RejectRow { line, reason, text, text_len: n as u16, truncated: record.len() > n }
    }

    pub fn text(&self) -> &[u8] {
        &self.text[..self.text_len as usize]
    }
}

/// Why an input record was rejected. Static text, so rejecting allocates nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RejectReason {
    MissingField(&'static str),
    BadTimestamp,
    TimestampOutOfRange,
    BadPrice,
    BadQty,
    BadSide,
    EmptySymbol,
    SymbolNotString,
    BadUtf8,
    BadJson,
    TooManyFields,
    TooManyInstruments,
    /// A binary record (src/binary.rs) that is not a well-formed ticklane trade; the text says why.
    BadBinary(&'static str),
    /// An exchange-feed message that does not decode or that the order book refuses; the text says where
    /// (byte offset) and why.
    BadFeed(&'static str),
}

impl RejectReason {
    pub fn describe(&self, out: &mut Vec<u8>) {
        match self {
            RejectReason::MissingField(f) => {
                out.extend_from_slice(b"missing field ");
                out.extend_from_slice(f.as_bytes());
            }
            RejectReason::BadTimestamp => out.extend_from_slice(b"timestamp is not an integer"),
            RejectReason::TimestampOutOfRange => out.extend_from_slice(b"timestamp out of range for i64 nanoseconds"),
            RejectReason::BadPrice => out.extend_from_slice(b"price is not a decimal with at most 9 fractional digits"),
            RejectReason::BadQty => out.extend_from_slice(b"quantity is not an integer"),
            RejectReason::BadSide => out.extend_from_slice(b"side is not one of B, S, buy, sell, 1, -1"),
            RejectReason::EmptySymbol => out.extend_from_slice(b"empty symbol"),
            RejectReason::SymbolNotString => out.extend_from_slice(b"symbol is not a JSON string"),
            RejectReason::BadUtf8 => out.extend_from_slice(b"not UTF-8"),
            RejectReason::BadJson => out.extend_from_slice(b"not a JSON object"),
            RejectReason::TooManyFields => {
                out.extend_from_slice(b"too many fields (expected ts,symbol,price,qty[,side])")
            }
            RejectReason::TooManyInstruments => {
                out.extend_from_slice(b"more distinct instruments than pipeline.max_instruments")
            }
            RejectReason::BadFeed(what) => {
                out.extend_from_slice(b"bad ");
                out.extend_from_slice(what.as_bytes());
            }
            RejectReason::BadBinary(why) => {
                out.extend_from_slice(b"not a ticklane binary record: ");
                out.extend_from_slice(why.as_bytes());
            }
        }
    }
}

/// Everything an operator or source can emit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Record {
    Window(WindowRow),
    Late(LateRow),
    Tick(TickRow),
    /// A source's event passed through as it is (`[[stream]]`, `src/stream.rs`).
    Trade(Trade),
    Quote(Quote),
    Level(LevelUpdate),
}

impl Record {
    /// The key (instrument) the record is about.
    #[inline]
    pub fn key(&self) -> crate::event::KeyId {
        match self {
            Record::Window(w) => w.key,
            Record::Late(l) => l.trade.instrument,
            Record::Tick(t) => t.trade.instrument,
            Record::Trade(t) => t.instrument,
            Record::Quote(q) => q.instrument,
            Record::Level(l) => l.instrument,
        }
    }
}

/// Where operators put their output. The shard implements it by pushing into its ring to the emitter;
/// tests implement it with a `Vec`.
pub trait Collector {
    fn emit(&mut self, stream: StreamId, rec: Record);
}

impl Collector for Vec<(StreamId, Record)> {
    fn emit(&mut self, stream: StreamId, rec: Record) {
        self.push((stream, rec));
    }
}
