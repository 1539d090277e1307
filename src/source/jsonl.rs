//! JSON-lines trade files: one object per line, field names configurable. Values are taken as raw JSON
//! text (never through `f64`) so prices stay exact; numbers may also be given as strings.

use super::parse::{parse_i64, parse_price};
use crate::config::FieldNames;
use crate::event::{Side, Trade, TradeKind};
use crate::record::RejectReason;
use crate::symbols::Interner;
use crate::time::TimeUnit;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::fmt;

/// Which configured field a key is (0 ts, 1 symbol, 2 price, 3 qty, 4 side).
struct KeySeed<'a>(&'a [&'a str; 5]);

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Option<usize>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Option<usize>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(self.0.iter().position(|n| *n == v))
    }
}

/// The raw values of the five fields of one object.
struct Fields<'a>(&'a [&'a str; 5]);

impl<'de> DeserializeSeed<'de> for Fields<'_> {
    type Value = [Option<&'de RawValue>; 5];
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Fields<'_> {
    type Value = [Option<&'de RawValue>; 5];
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut v = [None; 5];
        while let Some(k) = map.next_key_seed(KeySeed(self.0))? {
            match k {
                Some(i) => v[i] = Some(map.next_value::<&'de RawValue>()?),
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(v)
    }
}

/// The text of a JSON number, or of a string without escapes (so `"12.5"` and `12.5` both work).
fn scalar(raw: &RawValue) -> &[u8] {
    let s = raw.get().as_bytes();
    match s {
        [b'"', inner @ .., b'"'] if !inner.contains(&b'\\') => inner,
        _ => s,
    }
}

/// Decodes one JSON line into a trade.
pub fn parse_object(
    line: &[u8],
    names: &[&str; 5],
    unit: TimeUnit,
    seq: u64,
    interner: &mut Interner,
) -> Result<Trade, RejectReason> {
    let mut de = serde_json::Deserializer::from_slice(line);
    let f = Fields(names).deserialize(&mut de).map_err(|_| RejectReason::BadJson)?;
    de.end().map_err(|_| RejectReason::BadJson)?;
    let ts = f[0].ok_or(RejectReason::MissingField("ts"))?;
    let sym = f[1].ok_or(RejectReason::MissingField("symbol"))?;
    let price = f[2].ok_or(RejectReason::MissingField("price"))?;
    let qty = f[3].ok_or(RejectReason::MissingField("qty"))?;
    let ts = parse_i64(scalar(ts)).ok_or(RejectReason::BadTimestamp)?;
    let ts = unit.to_nanos(ts).ok_or(RejectReason::TimestampOutOfRange)?;
    let price = parse_price(scalar(price)).ok_or(RejectReason::BadPrice)?;
    let qty = parse_i64(scalar(qty)).ok_or(RejectReason::BadQty)?;
    let side = match f[4] {
        None => Side::Unknown,
        Some(r) if r.get() == "null" => Side::Unknown,
        Some(r) => Side::parse(scalar(r)).ok_or(RejectReason::BadSide)?,
    };
    let instrument = {
        let raw = sym.get();
        if !raw.starts_with('"') {
            return Err(RejectReason::SymbolNotString);
        }
        if raw.contains('\\') {
            // Escaped symbols are rare: unescape them through serde (allocates, off the common path).
            let s: String = serde_json::from_str(raw).map_err(|_| RejectReason::BadJson)?;
            if s.is_empty() {
                return Err(RejectReason::EmptySymbol);
            }
            interner.id(s.as_bytes())
        } else {
            let s = &raw.as_bytes()[1..raw.len() - 1];
            if s.is_empty() {
                return Err(RejectReason::EmptySymbol);
            }
            interner.id(s)
        }
        .ok_or(RejectReason::TooManyInstruments)?
    };
    Ok(Trade { ts, price, qty, seq, instrument, side, kind: TradeKind::Record })
}

/// The JSON-lines format with its field names, for [`super::FileSource`].
pub struct Json {
    names: [String; 5],
}

impl Json {
    pub fn new(fields: &FieldNames) -> Self {
        Self {
            names: [
                fields.ts.clone(),
                fields.symbol.clone(),
                fields.price.clone(),
                fields.qty.clone(),
                fields.side.clone(),
            ],
        }
    }
}

impl super::LineFormat for Json {
    #[inline]
    fn decode(&self, line: &[u8], unit: TimeUnit, seq: u64, interner: &mut Interner) -> Result<Trade, RejectReason> {
        let names: [&str; 5] = std::array::from_fn(|i| self.names[i].as_str());
        parse_object(line, &names, unit, seq, interner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Price;
    use crate::symbols::Symbols;

    const N: [&str; 5] = ["t", "s", "p", "q", "side"];

    #[test]
    fn numbers_or_strings_exactly_and_extra_fields_ignored() {
        let mut i = Interner::new(Symbols::new(), 10);
        let t = parse_object(
            br#"{"t":1700000000000,"x":[1,{"a":2}],"s":"AAPL","p":"189.1234","q":100,"side":"sell"}"#,
            &N,
            TimeUnit::Millis,
            7,
            &mut i,
        )
        .unwrap();
        assert_eq!((t.price, t.qty, t.side, t.seq), (Price(189_123_400_000), 100, Side::Sell, 7));
        let t = parse_object(br#"{"t":"5","s":"A\u0042","p":0.1,"q":"3"}"#, &N, TimeUnit::Seconds, 0, &mut i).unwrap();
        assert_eq!((t.ts, t.price, t.side), (5_000_000_000, Price(100_000_000), Side::Unknown));
        assert_eq!(i.shared().name(t.instrument).as_deref(), Some("AB"));
    }

    #[test]
    fn rejects() {
        let mut i = Interner::new(Symbols::new(), 10);
        let mut bad = |l: &[u8]| parse_object(l, &N, TimeUnit::Millis, 0, &mut i).unwrap_err();
        assert_eq!(bad(b"not json"), RejectReason::BadJson);
        assert_eq!(bad(br#"{"t":1,"s":"A","p":1}"#), RejectReason::MissingField("qty"));
        assert_eq!(bad(br#"{"t":1,"s":"A","p":1e3,"q":1}"#), RejectReason::BadPrice);
        assert_eq!(bad(br#"{"t":1.5,"s":"A","p":1,"q":1}"#), RejectReason::BadTimestamp);
        assert_eq!(bad(br#"{"t":1,"s":7,"p":1,"q":1}"#), RejectReason::SymbolNotString);
        assert_eq!(bad(br#"{"t":1,"s":"","p":1,"q":1}"#), RejectReason::EmptySymbol);
        assert_eq!(bad(br#"{"t":1,"s":"A","p":1,"q":1} trailing"#), RejectReason::BadJson);
    }
}
