//! Parsing numbers from text exactly and without allocation: integers, and decimals into fixed-point
//! prices (no float ever touches a price).

use crate::event::Price;

/// A base-10 `i64` with an optional sign; `None` on anything else or on overflow.
#[inline]
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s.first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || digits.len() > 20 {
        return None;
    }
    let mut mag: u64 = 0;
    for &c in digits {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        mag = mag.checked_mul(10)?.checked_add(d as u64)?;
    }
    signed(neg, mag)
}

/// `±mag` as an `i64`, including `i64::MIN` (whose magnitude does not fit in an `i64`).
#[inline]
fn signed(neg: bool, mag: u64) -> Option<i64> {
    if neg {
        0i64.checked_sub_unsigned(mag)
    } else {
        i64::try_from(mag).ok()
    }
}

/// A decimal (`123`, `-0.5`, `321.5324`, `.25`) with at most 9 fractional digits, as a [`Price`]
/// (scale 10⁹). Exponents, more digits and overflow are `None`.
#[inline]
pub fn parse_price(s: &[u8]) -> Option<Price> {
    let (neg, body) = match s.first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let (int, frac) = match memchr::memchr(b'.', body) {
        Some(i) => (&body[..i], &body[i + 1..]),
        None => (body, &[][..]),
    };
    if (int.is_empty() && frac.is_empty()) || frac.len() > Price::DECIMALS as usize || int.len() > 10 {
        return None;
    }
    let mut units: u64 = 0;
    for &c in int {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        units = units * 10 + d as u64;
    }
    let mut f: u64 = 0;
    for &c in frac {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        f = f * 10 + d as u64;
    }
    f *= 10u64.pow(Price::DECIMALS - frac.len() as u32);
    let mag = units.checked_mul(Price::SCALE as u64)?.checked_add(f)?;
    signed(neg, mag).map(Price)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn integers() {
        assert_eq!(parse_i64(b"1700000000000"), Some(1_700_000_000_000));
        assert_eq!(parse_i64(b"-5"), Some(-5));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"9223372036854775808"), None);
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_i64(b"-9223372036854775809"), None);
        assert_eq!(parse_i64(b"99999999999999999999"), None);
        assert_eq!(parse_i64(b""), None);
        assert_eq!(parse_i64(b"-"), None);
        assert_eq!(parse_i64(b"1.0"), None);
        assert_eq!(parse_i64(b" 1"), None);
    }

    #[test]
    fn prices_are_exact() {
        assert_eq!(parse_price(b"321.5324"), Some(Price(321_532_400_000)));
        assert_eq!(parse_price(b"10"), Some(Price(10_000_000_000)));
        assert_eq!(parse_price(b"-0.5"), Some(Price(-500_000_000)));
        assert_eq!(parse_price(b".25"), Some(Price(250_000_000)));
        assert_eq!(parse_price(b"1."), Some(Price(1_000_000_000)));
        assert_eq!(parse_price(b"0.000000001"), Some(Price(1)));
        assert_eq!(parse_price(b"0.0000000001"), None, "10 decimals");
        assert_eq!(parse_price(b"1e5"), None);
        assert_eq!(parse_price(b"1.2.3"), None);
        assert_eq!(parse_price(b"."), None);
        assert_eq!(parse_price(b"99999999999"), None, "overflows i64 at scale 1e9");
        assert_eq!(parse_price(b"-9223372036.854775808"), Some(Price(i64::MIN)));
        assert_eq!(parse_price(b"9223372036.854775808"), None);
    }

    proptest! {
        #[test]
        fn price_text_roundtrips(raw in any::<i64>()) {
            let text = Price(raw).to_string();
            prop_assert_eq!(parse_price(text.as_bytes()), Some(Price(raw)));
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..32)) {
            let _ = parse_price(&bytes);
            let _ = parse_i64(&bytes);
        }
    }
}
