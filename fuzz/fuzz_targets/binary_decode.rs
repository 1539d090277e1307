//! The binary record format (`ticklane::binary`, docs/formats.md "Binary records").
//!
//! Every input is used twice:
//! 1. As a record: `decode` and `decode_trade` must not panic and must agree (`decode_trade` accepts exactly
//!    the trades `decode` reads with an untruncated symbol, with the same fields and the symbol interned);
//!    whatever `decode` accepts, `Decoded::encode` writes back as the input with the ignored bytes (reserved
//!    bytes, symbol and text padding, undefined flag bits) zeroed, and that decodes to the same value.
//! 2. As the source of field values (arbitrary i64/u64/i128 values, a symbol of any length, a side, a
//!    reason, a reject text): a trade, window, late, tick or reject record is encoded with the public
//!    encoders and must decode to exactly those values (symbol cut to 32 bytes at a character boundary and
//!    flagged; text cut to 200 bytes and flagged; an absent vwap/twap/watermark as `None`).
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use ticklane::agg::Bar;
use ticklane::binary::{
    decode, decode_trade, describe_reject_code, encode_record, encode_reject, encode_trade, reject_code, why, Decoded,
    Kind,
};
use ticklane::event::{Price, Side, Trade, TradeKind};
use ticklane::record::{LateReason, LateRow, Record, RejectReason, RejectRow, TickRow, WindowRow};
use ticklane::symbols::{Interner, Symbols};

fuzz_target!(|data: &[u8]| {
    check_record(data);
    let _ = round_trip(&mut Unstructured::new(data));
});

fn check_record(bytes: &[u8]) {
    let symbols = Symbols::new();
    let mut interner = Interner::new(symbols.clone(), 4);
    let d = decode(bytes);
    match (d, decode_trade(bytes, 9, &mut interner)) {
        (Ok(Decoded::Trade { symbol, truncated: false, ts, price, qty, side }), Ok(t)) => {
            assert_eq!(t, Trade { ts, price, qty, side, seq: 9, instrument: 0, kind: TradeKind::Record });
            assert_eq!(&*symbols.name(0).expect("interned"), symbol);
        }
        (Ok(Decoded::Trade { truncated: true, .. }), Err(RejectReason::BadBinary(why::TRUNCATED))) => {}
        (Ok(Decoded::Trade { .. }), r) => panic!("decode reads a trade, decode_trade gives {r:?}"),
        (_, Ok(t)) => panic!("decode_trade accepts {t:?}, decode gives {d:?}"),
        (_, Err(_)) => {}
    }
    if let Ok(d) = d {
        assert_eq!(bytes.len(), d.kind().record_len());
        if let Decoded::Reject { reason, .. } = d {
            assert_ne!(describe_reject_code(reason), "unknown reject reason");
        }
        let mut out = Vec::new();
        d.encode(&mut out);
        assert_eq!(out, canonical(bytes), "re-encoded record differs in a byte readers do not ignore");
        assert_eq!(decode(&out), Ok(d));
    }
}

/// `bytes` (a record `decode` accepted) with the bytes readers ignore set to 0, from the documented layout.
fn canonical(bytes: &[u8]) -> Vec<u8> {
    let mut b = bytes.to_vec();
    if b[0] == 5 {
        b[3] &= 0x01; // flags: bit 0 only
        b[14..16].fill(0); // reserved
        let n = u16::from_le_bytes([b[12], b[13]]) as usize;
        b[16 + n..].fill(0); // text padding
    } else {
        let n = b[3] as usize;
        b[4 + n..36].fill(0); // symbol padding
                              // Reserved 36..40, but for byte 36 of a late or tick record: the trade kind.
        let reserved = if matches!(b[0], 3 | 4) { 37 } else { 36 };
        b[reserved..40].fill(0);
        match b[0] {
            2 => {
                b[2] &= 0x81; // is_update, truncated
                b[156..160].fill(0);
            }
            3 => b[81..88].fill(0),
            4 => b[104..112].fill(0),
            _ => {}
        }
    }
    b
}

/// The symbol as stored: at most 32 bytes, cut at a character boundary.
fn stored(s: &str) -> (&str, bool) {
    let mut n = s.len().min(32);
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    (&s[..n], n < s.len())
}

const SIDES: [Side; 3] = [Side::Unknown, Side::Buy, Side::Sell];

const REASONS: [RejectReason; 11] = [
    RejectReason::MissingField("ts"),
    RejectReason::MissingField("side"),
    RejectReason::MissingField("another"),
    RejectReason::BadPrice,
    RejectReason::BadUtf8,
    RejectReason::TooManyInstruments,
    RejectReason::BadBinary(why::LENGTH),
    RejectReason::BadBinary(why::SIDE),
    RejectReason::BadBinary(why::TRUNCATED),
    RejectReason::BadBinary("another reason"),
    RejectReason::BadFeed("ITCH message"),
];

fn round_trip(u: &mut Unstructured<'_>) -> Result<()> {
    let kind = u.int_in_range(1u8..=5)?;
    let ts: i64 = u.arbitrary()?;
    let price = Price(u.arbitrary()?);
    let qty: i64 = u.arbitrary()?;
    let seq: u64 = u.arbitrary()?;
    let side = *u.choose(&SIDES)?;
    let trade_kind = TradeKind::from_u8(u.int_in_range(0u8..=4)?).expect("0 to 4");
    let t = Trade { ts, price, qty, seq, instrument: u.arbitrary()?, side, kind: trade_kind };
    let sym: &str = u.arbitrary()?;
    let (symbol, truncated) = stored(sym);
    let mut out = Vec::new();
    let want = match Kind::from_u8(kind).expect("1..=5") {
        Kind::Trade => {
            encode_trade(sym, &t, &mut out);
            if !symbol.is_empty() && !truncated {
                let symbols = Symbols::new();
                let mut interner = Interner::new(symbols.clone(), 1);
                // A trade record carries no kind: what a source reads from one is a record.
                let want = Trade { seq: 3, instrument: 0, kind: TradeKind::Record, ..t };
                assert_eq!(decode_trade(&out, 3, &mut interner), Ok(want));
                assert_eq!(&*symbols.name(0).expect("interned"), sym);
            }
            Decoded::Trade { symbol, truncated, ts, price, qty, side }
        }
        Kind::Window => {
            // Volume is kept non-negative: `Bar::vwap` debug-asserts a positive volume.
            let volume = u.arbitrary::<i64>()? & i64::MAX;
            let bar = Bar {
                open: Price(u.arbitrary()?),
                high: Price(u.arbitrary()?),
                low: Price(u.arbitrary()?),
                close: Price(u.arbitrary()?),
                volume,
                count: u.arbitrary()?,
                pv: u.arbitrary()?,
                first: (u.arbitrary()?, 0),
                last: (u.arbitrary()?, 1),
            };
            let twap: Option<i64> = u.arbitrary()?;
            let w = WindowRow {
                key: 0,
                start: u.arbitrary()?,
                end: u.arbitrary()?,
                bar,
                twap: twap.map(Price),
                fire: u.arbitrary()?,
            };
            encode_record(&Record::Window(w), sym, &mut out);
            let absent_min = |p: Option<Price>| p.filter(|p| p.0 != i64::MIN);
            Decoded::Window {
                symbol,
                truncated,
                start: w.start,
                end: w.end,
                open: bar.open,
                high: bar.high,
                low: bar.low,
                close: bar.close,
                volume,
                count: bar.count,
                pv: bar.pv,
                vwap: absent_min(bar.vwap()),
                twap: absent_min(w.twap),
                first_ts: bar.first.0,
                last_ts: bar.last.0,
                fire: w.fire,
                is_update: w.fire > 0,
            }
        }
        Kind::Late => {
            let watermark: i64 = u.arbitrary()?;
            let reason = if u.arbitrary()? { LateReason::PreviousSession } else { LateReason::BehindWatermark };
            encode_record(&Record::Late(LateRow { trade: t, watermark, reason }), sym, &mut out);
            let watermark = (watermark != i64::MIN).then_some(watermark);
            Decoded::Late { symbol, truncated, ts, price, qty, side, seq, trade_kind, watermark, reason }
        }
        Kind::Tick => {
            let k = TickRow {
                trade: t,
                vwap: Price(u.arbitrary()?),
                ema: Price(u.arbitrary()?),
                volume: u.arbitrary()?,
                count: u.arbitrary()?,
            };
            encode_record(&Record::Tick(k), sym, &mut out);
            let (vwap, ema, volume, count) = (k.vwap, k.ema, k.volume, k.count);
            Decoded::Tick { symbol, truncated, ts, price, qty, side, seq, trade_kind, vwap, ema, volume, count }
        }
        Kind::Reject => {
            let reason = *u.choose(&REASONS)?;
            let n = u.int_in_range(0..=260)?.min(u.len());
            let text = u.bytes(n)?;
            encode_reject(&RejectRow::new(seq, reason, text), &mut out);
            let code = reject_code(&reason);
            // The catch-all codes (6, 24, 25) carry their detail in the text, not in the code.
            if !matches!(
                reason,
                RejectReason::MissingField("another")
                    | RejectReason::BadBinary("another reason")
                    | RejectReason::BadFeed(_)
            ) {
                let mut describe = Vec::new();
                reason.describe(&mut describe);
                assert_eq!(describe_reject_code(code).as_bytes(), describe, "{reason:?}");
            }
            let n = text.len().min(200);
            Decoded::Reject { line: seq, reason: code, truncated: text.len() > 200, text: &text[..n] }
        }
    };
    assert_eq!(out.len(), want.kind().record_len());
    if symbol.is_empty() && kind != Kind::Reject as u8 {
        // An empty symbol is written with symbol_len 0, which readers refuse.
        assert!(decode(&out).is_err());
    } else {
        assert_eq!(decode(&out), Ok(want));
    }
    Ok(())
}
