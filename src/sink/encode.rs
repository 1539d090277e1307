//! Encoding result records as CSV or JSON lines, column by column, into a reused buffer (no allocation per
//! row). docs/formats.md is the schema reference.

use crate::config::{Format, StreamKind};
use crate::event::{write_fixed, Nanos, Price, Trade, WATERMARK_MIN};
use crate::record::{Record, RejectRow};
use crate::symbols::SymbolCache;
use crate::time::TimeUnit;

/// A column a sink can write. Which columns a stream has depends on its kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Column {
    Symbol,
    WindowStart,
    WindowEnd,
    Open,
    High,
    Low,
    Close,
    Volume,
    Vwap,
    Twap,
    Count,
    Pv,
    FirstTs,
    LastTs,
    Fire,
    IsUpdate,
    Ts,
    Price,
    Qty,
    Side,
    TradeKind,
    Seq,
    Watermark,
    Reason,
    Ema,
    Line,
    Text,
    Bid,
    BidQty,
    Ask,
    AskQty,
    Mid,
    Spread,
    Microprice,
    Imbalance,
    Shares,
    Orders,
}

const WINDOW: &[Column] = &[
    Column::Symbol,
    Column::WindowStart,
    Column::WindowEnd,
    Column::Open,
    Column::High,
    Column::Low,
    Column::Close,
    Column::Volume,
    Column::Vwap,
    Column::Twap,
    Column::Count,
    Column::Pv,
    Column::FirstTs,
    Column::LastTs,
    Column::Fire,
    Column::IsUpdate,
];
const LATE: &[Column] = &[
    Column::Ts,
    Column::Symbol,
    Column::Price,
    Column::Qty,
    Column::Side,
    Column::TradeKind,
    Column::Seq,
    Column::Watermark,
    Column::Reason,
];
const TICK: &[Column] = &[
    Column::Ts,
    Column::Symbol,
    Column::Price,
    Column::Qty,
    Column::Side,
    Column::TradeKind,
    Column::Seq,
    Column::Vwap,
    Column::Ema,
    Column::Volume,
    Column::Count,
];
const REJECT: &[Column] = &[Column::Line, Column::Reason, Column::Text];
/// A trade passed through: the columns late and continuous rows share.
const TRADE: &[Column] =
    &[Column::Ts, Column::Symbol, Column::Price, Column::Qty, Column::Side, Column::TradeKind, Column::Seq];
const QUOTE: &[Column] = &[
    Column::Ts,
    Column::Symbol,
    Column::Bid,
    Column::BidQty,
    Column::Ask,
    Column::AskQty,
    Column::Mid,
    Column::Spread,
    Column::Microprice,
    Column::Imbalance,
];
const LEVEL: &[Column] = &[Column::Ts, Column::Symbol, Column::Side, Column::Price, Column::Shares, Column::Orders];

impl Column {
    pub fn name(self) -> &'static str {
        match self {
            Column::Symbol => "symbol",
            Column::WindowStart => "window_start",
            Column::WindowEnd => "window_end",
            Column::Open => "open",
            Column::High => "high",
            Column::Low => "low",
            Column::Close => "close",
            Column::Volume => "volume",
            Column::Vwap => "vwap",
            Column::Twap => "twap",
            Column::Count => "count",
            Column::Pv => "pv",
            Column::FirstTs => "first_ts",
            Column::LastTs => "last_ts",
            Column::Fire => "fire",
            Column::IsUpdate => "is_update",
            Column::Ts => "ts",
            Column::Price => "price",
            Column::Qty => "qty",
            Column::Side => "side",
            Column::TradeKind => "trade_kind",
            Column::Seq => "seq",
            Column::Watermark => "watermark",
            Column::Reason => "reason",
            Column::Ema => "ema",
            Column::Line => "line",
            Column::Text => "text",
            Column::Bid => "bid",
            Column::BidQty => "bid_qty",
            Column::Ask => "ask",
            Column::AskQty => "ask_qty",
            Column::Mid => "mid",
            Column::Spread => "spread",
            Column::Microprice => "microprice",
            Column::Imbalance => "imbalance",
            Column::Shares => "shares",
            Column::Orders => "orders",
        }
    }

    /// The columns a stream of `kind` can have.
    pub fn allowed(kind: StreamKind) -> &'static [Column] {
        match kind {
            StreamKind::Window => WINDOW,
            StreamKind::Late => LATE,
            StreamKind::Tick => TICK,
            StreamKind::Reject => REJECT,
            StreamKind::Trade => TRADE,
            StreamKind::Quote => QUOTE,
            StreamKind::Level => LEVEL,
        }
    }

    pub fn parse(name: &str, kind: StreamKind) -> Result<Column, String> {
        let allowed = Self::allowed(kind);
        allowed.iter().copied().find(|c| c.name() == name).ok_or_else(|| {
            format!(
                "`{name}` is not a column of this stream (columns: {})",
                allowed.iter().map(|c| c.name()).collect::<Vec<_>>().join(", ")
            )
        })
    }

    /// The default schema: for windows, symbol, window_start, window_end, the aggregates, fire, is_update;
    /// for the others every column, but `trade_kind` only for streams over an exchange feed (`feed`), whose
    /// trades have one (the others' are all trade records).
    pub fn defaults(kind: StreamKind, aggregates: &[String], feed: bool) -> Vec<Column> {
        match kind {
            StreamKind::Window => {
                let mut v = vec![Column::Symbol, Column::WindowStart, Column::WindowEnd];
                v.extend(aggregates.iter().filter_map(|a| Column::parse(a, kind).ok()));
                v.extend([Column::Fire, Column::IsUpdate]);
                v
            }
            _ => Self::allowed(kind).iter().copied().filter(|&c| feed || c != Column::TradeKind).collect(),
        }
    }
}

/// A value to write: numbers are written bare, text is quoted as the format needs.
pub(super) enum Val<'a> {
    Int(i64),
    Uint(u64),
    Price(Price),
    Fixed(i128),
    Str(&'a str),
    Bytes(&'a [u8]),
    Bool(bool),
    Null,
}

/// Encodes the records of one stream.
#[derive(Debug, Clone)]
pub struct Encoder {
    pub format: Format,
    pub columns: Vec<Column>,
    pub unit: TimeUnit,
}

impl Encoder {
    /// The CSV header line (with newline).
    pub fn header(&self, out: &mut Vec<u8>) {
        for (i, c) in self.columns.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(c.name().as_bytes());
        }
        out.push(b'\n');
    }

    fn ts(&self, ns: Nanos) -> Val<'static> {
        Val::Int(self.unit.from_nanos(ns))
    }

    pub(super) fn value<'a>(&self, c: Column, rec: &'a Record, syms: &'a mut SymbolCache) -> Val<'a> {
        match rec {
            Record::Window(w) => match c {
                Column::Symbol => Val::Str(syms.get(w.key)),
                Column::WindowStart => self.ts(w.start),
                Column::WindowEnd => self.ts(w.end),
                Column::Open => Val::Price(w.bar.open),
                Column::High => Val::Price(w.bar.high),
                Column::Low => Val::Price(w.bar.low),
                Column::Close => Val::Price(w.bar.close),
                Column::Volume => Val::Int(w.bar.volume),
                Column::Vwap => w.bar.vwap().map_or(Val::Null, Val::Price),
                Column::Twap => w.twap.map_or(Val::Null, Val::Price),
                Column::Count => Val::Uint(w.bar.count),
                Column::Pv => Val::Fixed(w.bar.pv),
                Column::FirstTs => self.ts(w.bar.first.0),
                Column::LastTs => self.ts(w.bar.last.0),
                Column::Fire => Val::Uint(w.fire as u64),
                Column::IsUpdate => Val::Bool(w.fire > 0),
                _ => Val::Null,
            },
            Record::Late(l) => match c {
                Column::Watermark if l.watermark == WATERMARK_MIN => Val::Null,
                Column::Watermark => self.ts(l.watermark),
                Column::Reason => Val::Str(l.reason.as_str()),
                _ => self.trade_value(c, &l.trade, syms),
            },
            Record::Tick(t) => match c {
                Column::Vwap => Val::Price(t.vwap),
                Column::Ema => Val::Price(t.ema),
                Column::Volume => Val::Int(t.volume),
                Column::Count => Val::Uint(t.count),
                _ => self.trade_value(c, &t.trade, syms),
            },
            Record::Trade(t) => self.trade_value(c, t, syms),
            Record::Quote(q) => {
                let price = |p: Option<Price>| p.map_or(Val::Null, Val::Price);
                match c {
                    Column::Ts => self.ts(q.ts),
                    Column::Symbol => Val::Str(syms.get(q.instrument)),
                    Column::Bid => price(q.has_bid().then_some(q.bid)),
                    Column::BidQty => Val::Uint(q.bid_qty as u64),
                    Column::Ask => price(q.has_ask().then_some(q.ask)),
                    Column::AskQty => Val::Uint(q.ask_qty as u64),
                    Column::Mid => price(q.mid()),
                    Column::Spread => price(q.spread()),
                    Column::Microprice => price(q.microprice()),
                    // 0 with both sides empty is no imbalance at all.
                    Column::Imbalance if !q.has_bid() && !q.has_ask() => Val::Null,
                    Column::Imbalance => Val::Fixed(q.imbalance as i128),
                    _ => Val::Null,
                }
            }
            Record::Level(l) => match c {
                Column::Ts => self.ts(l.ts),
                Column::Symbol => Val::Str(syms.get(l.instrument)),
                Column::Side => Val::Str(l.side.as_str()),
                Column::Price => Val::Price(l.price),
                Column::Shares => Val::Int(l.shares),
                Column::Orders => Val::Uint(l.orders as u64),
                _ => Val::Null,
            },
        }
    }

    /// The columns of a trade, which late, continuous and trade rows share.
    fn trade_value<'a>(&self, c: Column, t: &Trade, syms: &'a mut SymbolCache) -> Val<'a> {
        match c {
            Column::Ts => self.ts(t.ts),
            Column::Symbol => Val::Str(syms.get(t.instrument)),
            Column::Price => Val::Price(t.price),
            Column::Qty => Val::Int(t.qty),
            Column::Side => Val::Str(t.side.as_str()),
            Column::TradeKind => Val::Str(t.kind.as_str()),
            Column::Seq => Val::Uint(t.seq),
            _ => Val::Null,
        }
    }

    /// Appends one row for `rec`.
    pub fn encode(&self, rec: &Record, syms: &mut SymbolCache, out: &mut Vec<u8>) {
        match self.format {
            Format::Csv => {
                for (i, &c) in self.columns.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    let v = self.value(c, rec, syms);
                    write_csv(&v, out);
                }
                out.push(b'\n');
            }
            Format::Jsonl => {
                out.push(b'{');
                for (i, &c) in self.columns.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write_json_str(c.name().as_bytes(), out);
                    out.push(b':');
                    let v = self.value(c, rec, syms);
                    write_json(&v, out);
                }
                out.extend_from_slice(b"}\n");
            }
            Format::Binary => crate::binary::encode_record(rec, syms.get(rec.key()), out),
        }
    }

    /// Appends one row in PostgreSQL's COPY text format: tab between columns, `\\N` for null, `t`/`f`,
    /// prices as their exact decimal text (PostgreSQL reads them into `numeric` without rounding), text with
    /// backslash, tab, newline and carriage return escaped.
    pub fn encode_copy(&self, rec: &Record, syms: &mut SymbolCache, out: &mut Vec<u8>) {
        for (i, &c) in self.columns.iter().enumerate() {
            if i > 0 {
                out.push(b'\t');
            }
            let v = self.value(c, rec, syms);
            if write_num(&v, out) {
                continue;
            }
            match v {
                Val::Str(s) => write_copy_text(s.as_bytes(), out),
                Val::Bytes(b) => write_copy_text(b, out),
                Val::Bool(b) => out.push(if b { b't' } else { b'f' }),
                _ => out.extend_from_slice(b"\\N"),
            }
        }
        out.push(b'\n');
    }

    /// Appends one row for a rejected input record.
    pub fn encode_reject(&self, r: &RejectRow, out: &mut Vec<u8>) {
        if self.format == Format::Binary {
            return crate::binary::encode_reject(r, out);
        }
        let mut reason = Vec::with_capacity(64);
        r.reason.describe(&mut reason);
        let val = |c: Column| match c {
            Column::Line => Val::Uint(r.line),
            Column::Reason => Val::Bytes(&reason),
            Column::Text => Val::Bytes(r.text()),
            _ => Val::Null,
        };
        match self.format {
            Format::Csv => {
                for (i, &c) in self.columns.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write_csv(&val(c), out);
                }
                out.push(b'\n');
            }
            Format::Jsonl => {
                out.push(b'{');
                for (i, &c) in self.columns.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write_json_str(c.name().as_bytes(), out);
                    out.push(b':');
                    write_json(&val(c), out);
                }
                out.extend_from_slice(b"}\n");
            }
            Format::Binary => {} // written above
        }
    }
}

fn write_num(v: &Val<'_>, out: &mut Vec<u8>) -> bool {
    let mut b = itoa::Buffer::new();
    match v {
        Val::Int(i) => out.extend_from_slice(b.format(*i).as_bytes()),
        Val::Uint(u) => out.extend_from_slice(b.format(*u).as_bytes()),
        Val::Price(p) => p.write_to(out),
        Val::Fixed(f) => write_fixed(*f, Price::DECIMALS, out),
        _ => return false,
    }
    true
}

fn write_csv(v: &Val<'_>, out: &mut Vec<u8>) {
    if write_num(v, out) {
        return;
    }
    let bytes: &[u8] = match v {
        Val::Str(s) => s.as_bytes(),
        Val::Bytes(b) => b,
        Val::Bool(true) => b"true",
        Val::Bool(false) => b"false",
        _ => b"",
    };
    if bytes.iter().any(|&c| matches!(c, b',' | b'"' | b'\n' | b'\r')) {
        out.push(b'"');
        for &c in bytes {
            if c == b'"' {
                out.push(b'"');
            }
            out.push(c);
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(bytes);
    }
}

fn write_copy_text(s: &[u8], out: &mut Vec<u8>) {
    for &c in s {
        match c {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            c => out.push(c),
        }
    }
}

fn write_json(v: &Val<'_>, out: &mut Vec<u8>) {
    if write_num(v, out) {
        return;
    }
    match v {
        Val::Str(s) => write_json_str(s.as_bytes(), out),
        Val::Bytes(b) => write_json_str(b, out),
        Val::Bool(true) => out.extend_from_slice(b"true"),
        Val::Bool(false) => out.extend_from_slice(b"false"),
        _ => out.extend_from_slice(b"null"),
    }
}

/// A JSON string; bytes that are not valid UTF-8 are replaced so the line stays valid JSON.
fn write_json_str(s: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    for chunk in s.utf8_chunks() {
        for ch in chunk.valid().chars() {
            match ch {
                '"' => out.extend_from_slice(b"\\\""),
                '\\' => out.extend_from_slice(b"\\\\"),
                '\n' => out.extend_from_slice(b"\\n"),
                '\r' => out.extend_from_slice(b"\\r"),
                '\t' => out.extend_from_slice(b"\\t"),
                c if (c as u32) < 0x20 => {
                    out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes());
                }
                c => {
                    let mut b = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
                }
            }
        }
        if !chunk.invalid().is_empty() {
            out.extend_from_slice("\u{fffd}".as_bytes());
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agg::Bar;
    use crate::event::{Side, Trade, TradeKind};
    use crate::record::{LateReason, LateRow, RejectReason, TickRow, WindowRow};
    use crate::symbols::Symbols;

    fn setup() -> (SymbolCache, Trade) {
        let s = Symbols::new();
        s.intern("AB,C", 10);
        let t = Trade {
            ts: 1_500_000_000,
            price: Price(12_345_000_000),
            qty: 7,
            seq: 3,
            instrument: 0,
            side: Side::Buy,
            kind: TradeKind::Record,
        };
        (SymbolCache::new(s), t)
    }

    #[test]
    fn window_row_csv_and_json() {
        let (mut syms, t) = setup();
        let rec = Record::Window(WindowRow {
            key: 0,
            start: 1_000_000_000,
            end: 2_000_000_000,
            bar: Bar::of(&t, 0),
            twap: None,
            fire: 1,
        });
        let enc = Encoder {
            format: Format::Csv,
            columns: Column::defaults(StreamKind::Window, &["open".into(), "pv".into(), "twap".into()], false),
            unit: TimeUnit::Millis,
        };
        let mut out = Vec::new();
        enc.header(&mut out);
        enc.encode(&rec, &mut syms, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "symbol,window_start,window_end,open,pv,twap,fire,is_update\n\"AB,C\",1000,2000,12.345,86.415,,1,true\n"
        );
        let enc = Encoder { format: Format::Jsonl, ..enc };
        let mut out = Vec::new();
        enc.encode(&rec, &mut syms, &mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["symbol"], "AB,C");
        assert_eq!(v["pv"].to_string(), "86.415");
        assert_eq!(v["twap"], serde_json::Value::Null);
        assert_eq!(v["is_update"], true);
    }

    #[test]
    fn late_row_without_watermark_is_empty() {
        let (mut syms, t) = setup();
        let rec = Record::Late(LateRow { trade: t, watermark: WATERMARK_MIN, reason: LateReason::PreviousSession });
        let enc = Encoder {
            format: Format::Csv,
            columns: Column::defaults(StreamKind::Late, &[], false),
            unit: TimeUnit::Nanos,
        };
        let mut out = Vec::new();
        enc.encode(&rec, &mut syms, &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), "1500000000,\"AB,C\",12.345,7,B,3,,previous_session\n");
    }

    #[test]
    fn trade_kind_is_a_column_of_feed_streams() {
        let (mut syms, t) = setup();
        let t = Trade { kind: TradeKind::ExecutionWithPrice, ..t };
        let rec = Record::Late(LateRow { trade: t, watermark: 1_000, reason: LateReason::BehindWatermark });
        let cols = Column::defaults(StreamKind::Late, &[], true);
        let enc = Encoder { format: Format::Csv, columns: cols, unit: TimeUnit::Nanos };
        let mut out = Vec::new();
        enc.header(&mut out);
        enc.encode(&rec, &mut syms, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "ts,symbol,price,qty,side,trade_kind,seq,watermark,reason\n\
             1500000000,\"AB,C\",12.345,7,B,execution_with_price,3,1000,behind_watermark\n"
        );
        // Not by default over trade records, but asked for by name it is there, empty.
        assert!(!Column::defaults(StreamKind::Tick, &[], false).contains(&Column::TradeKind));
        let tick = Record::Tick(TickRow {
            trade: Trade { kind: TradeKind::Record, ..t },
            vwap: Price(1),
            ema: Price(1),
            volume: 7,
            count: 1,
        });
        let enc =
            Encoder { format: Format::Jsonl, columns: vec![Column::TradeKind, Column::Qty], unit: TimeUnit::Nanos };
        let mut out = Vec::new();
        enc.encode(&tick, &mut syms, &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), "{\"trade_kind\":\"\",\"qty\":7}\n");
    }

    #[test]
    fn quote_and_level_rows_leave_out_what_a_missing_side_makes_undefined() {
        use crate::event::{LevelUpdate, Quote};
        let (mut syms, _) = setup();
        let q = Quote {
            ts: 7,
            bid: Price(100_000_000_000),
            ask: Price(100_010_000_000),
            bid_qty: 300,
            ask_qty: 100,
            instrument: 0,
            imbalance: 500_000_000,
        };
        let enc = Encoder {
            format: Format::Csv,
            columns: Column::defaults(StreamKind::Quote, &[], true),
            unit: TimeUnit::Nanos,
        };
        let mut out = Vec::new();
        enc.header(&mut out);
        enc.encode(&Record::Quote(q), &mut syms, &mut out);
        enc.encode(&Record::Quote(Quote { ask_qty: 0, imbalance: 1_000_000_000, ..q }), &mut syms, &mut out);
        enc.encode(&Record::Quote(Quote { bid_qty: 0, ask_qty: 0, imbalance: 0, ..q }), &mut syms, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "ts,symbol,bid,bid_qty,ask,ask_qty,mid,spread,microprice,imbalance\n\
             7,\"AB,C\",100,300,100.01,100,100.005,0.01,100.0075,0.5\n\
             7,\"AB,C\",100,300,,0,,,,1\n\
             7,\"AB,C\",,0,,0,,,,\n"
        );
        let l =
            LevelUpdate { ts: 9, price: Price(12_500_000_000), shares: 0, instrument: 0, orders: 0, side: Side::Sell };
        let enc = Encoder {
            format: Format::Jsonl,
            columns: Column::defaults(StreamKind::Level, &[], true),
            unit: TimeUnit::Nanos,
        };
        let mut out = Vec::new();
        enc.encode(&Record::Level(l), &mut syms, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"ts\":9,\"symbol\":\"AB,C\",\"side\":\"S\",\"price\":12.5,\"shares\":0,\"orders\":0}\n"
        );
        let one_sided =
            Encoder { format: Format::Jsonl, columns: vec![Column::Mid, Column::Bid], unit: TimeUnit::Nanos };
        let mut out = Vec::new();
        one_sided.encode(&Record::Quote(Quote { bid_qty: 0, ..q }), &mut syms, &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), "{\"mid\":null,\"bid\":null}\n");
    }

    #[test]
    fn reject_text_is_quoted_and_json_safe() {
        let r = RejectRow::new(12, RejectReason::BadPrice, b"1,X,\"1.2.3\",5\xff");
        let enc = Encoder {
            format: Format::Csv,
            columns: Column::defaults(StreamKind::Reject, &[], false),
            unit: TimeUnit::Millis,
        };
        let mut out = Vec::new();
        enc.encode_reject(&r, &mut out);
        assert!(out.starts_with(b"12,price is not a decimal with at most 9 fractional digits,\"1,X,\"\"1.2.3\"\",5"));
        let enc = Encoder { format: Format::Jsonl, ..enc };
        let mut out = Vec::new();
        enc.encode_reject(&r, &mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["line"], 12);
    }

    #[test]
    fn copy_text_escapes_and_writes_exact_decimals() {
        let s = Symbols::new();
        s.intern("A\tB\\C", 10);
        let mut syms = SymbolCache::new(s);
        let t = Trade {
            ts: 1_500_000_001,
            price: Price(12_345_000_001),
            qty: 7,
            seq: 3,
            instrument: 0,
            side: Side::Buy,
            kind: TradeKind::Record,
        };
        let rec = Record::Window(WindowRow {
            key: 0,
            start: 1_000_000_000,
            end: 2_000_000_000,
            bar: Bar::of(&t, 0),
            twap: None,
            fire: 0,
        });
        let enc = Encoder {
            format: Format::Csv,
            columns: vec![
                Column::Symbol,
                Column::WindowStart,
                Column::Close,
                Column::Twap,
                Column::Fire,
                Column::IsUpdate,
            ],
            unit: TimeUnit::Nanos,
        };
        let mut out = Vec::new();
        enc.encode_copy(&rec, &mut syms, &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), "A\\tB\\\\C\t1000000000\t12.345000001\t\\N\t0\tf\n");
    }

    #[test]
    fn unknown_column_names_the_choices() {
        let e = Column::parse("bogus", StreamKind::Late).unwrap_err();
        assert!(e.contains("ts, symbol, price"), "{e}");
    }
}
