//! CSV trade files: `ts,symbol,price,qty[,side]`, one trade per line, an optional header line.

use super::parse::{parse_i64, parse_price};
use crate::event::{Side, Trade, TradeKind};
use crate::record::RejectReason;
use crate::symbols::Interner;
use crate::time::TimeUnit;

/// Decodes one CSV line into a trade (`seq` and the interned id filled in).
#[inline]
pub fn parse_line(line: &[u8], unit: TimeUnit, seq: u64, interner: &mut Interner) -> Result<Trade, RejectReason> {
    let mut f = line.split(|&c| c == b',');
    let ts = f.next().ok_or(RejectReason::MissingField("ts"))?;
    let sym = f.next().ok_or(RejectReason::MissingField("symbol"))?;
    let price = f.next().ok_or(RejectReason::MissingField("price"))?;
    let qty = f.next().ok_or(RejectReason::MissingField("qty"))?;
    let side = f.next().unwrap_or(b"");
    if f.next().is_some() {
        return Err(RejectReason::TooManyFields);
    }
    let ts = parse_i64(ts).ok_or(RejectReason::BadTimestamp)?;
    let ts = unit.to_nanos(ts).ok_or(RejectReason::TimestampOutOfRange)?;
    let price = parse_price(price).ok_or(RejectReason::BadPrice)?;
    let qty = parse_i64(qty).ok_or(RejectReason::BadQty)?;
    let side = Side::parse(side).ok_or(RejectReason::BadSide)?;
    if sym.is_empty() {
        return Err(RejectReason::EmptySymbol);
    }
    if std::str::from_utf8(sym).is_err() {
        return Err(RejectReason::BadUtf8);
    }
    let instrument = interner.id(sym).ok_or(RejectReason::TooManyInstruments)?;
    Ok(Trade { ts, price, qty, seq, instrument, side, kind: TradeKind::Record })
}

/// The CSV line format, for [`super::FileSource`].
pub struct Csv;

impl super::LineFormat for Csv {
    #[inline]
    fn decode(&self, line: &[u8], unit: TimeUnit, seq: u64, interner: &mut Interner) -> Result<Trade, RejectReason> {
        parse_line(line, unit, seq, interner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Price;
    use crate::symbols::Symbols;

    #[test]
    fn parses_and_rejects_with_reasons() {
        let mut i = Interner::new(Symbols::new(), 2);
        let t = parse_line(b"1700000000000,SYM1,12.5,10,S", TimeUnit::Millis, 4, &mut i).unwrap();
        assert_eq!(
            (t.ts, t.price, t.qty, t.seq, t.instrument, t.side),
            (1_700_000_000_000_000_000, Price(12_500_000_000), 10, 4, 0, Side::Sell)
        );
        let mut bad = |l: &[u8]| parse_line(l, TimeUnit::Millis, 0, &mut i).unwrap_err();
        assert_eq!(bad(b"x,SYM1,1,1"), RejectReason::BadTimestamp);
        assert_eq!(bad(b"1,SYM1,1.2.3,1"), RejectReason::BadPrice);
        assert_eq!(bad(b"1,SYM1,1"), RejectReason::MissingField("qty"));
        assert_eq!(bad(b"1,SYM1,1,1.5"), RejectReason::BadQty);
        assert_eq!(bad(b"1,,1,1"), RejectReason::EmptySymbol);
        assert_eq!(bad(b"1,SYM1,1,1,Q"), RejectReason::BadSide);
        assert_eq!(bad(b"1,SYM1,1,1,B,extra"), RejectReason::TooManyFields);
        assert_eq!(bad(b"99999999999999999,SYM1,1,1"), RejectReason::TimestampOutOfRange);
        assert_eq!(bad(b"1,SYM2,1,x"), RejectReason::BadQty);
        assert!(parse_line(b"1,SYM2,1,1", TimeUnit::Millis, 0, &mut i).is_ok());
        assert_eq!(parse_line(b"1,SYM3,1,1", TimeUnit::Millis, 0, &mut i), Err(RejectReason::TooManyInstruments));
    }
}
