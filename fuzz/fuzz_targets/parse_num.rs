//! `ticklane::source::parse::{parse_price, parse_i64}` on arbitrary bytes.
//!
//! Checks:
//! - no panic;
//! - `parse_i64(s) == Some(v)` ⇒ Rust's own `i64::from_str` reads `s` as `v` too, and `v.to_string()` reads
//!   back as `v`;
//! - `parse_price` agrees with an independent reference (exact, in i128) on every input: a sign, at most 10
//!   integer digits, optional `.` and at most 9 fractional digits, not both parts empty, and the value
//!   within `i64::MIN..=i64::MAX` nano-units (so `-9223372036.854775808` is `i64::MIN`); anything else is
//!   `None`;
//! - `parse_price(s) == Some(p)` ⇒ `parse_price(p.to_string()) == Some(p)` (the text a sink writes reads back).
//!
//! `price_roundtrip` checks the same round trip for every `i64`, not only parsed ones.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ticklane::source::parse::{parse_i64, parse_price};

/// The reference reading of a price (see above).
fn reference_price(s: &[u8]) -> Option<i64> {
    let (neg, body) = match s.first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let (int, frac) = match body.iter().position(|&c| c == b'.') {
        Some(i) => (&body[..i], &body[i + 1..]),
        None => (body, &[][..]),
    };
    if int.is_empty() && frac.is_empty() || int.len() > 10 || frac.len() > 9 {
        return None;
    }
    if !int.iter().chain(frac).all(u8::is_ascii_digit) {
        return None;
    }
    let mut raw: i128 = 0;
    for &c in int {
        raw = raw * 10 + (c - b'0') as i128;
    }
    let mut f: i128 = 0;
    for &c in frac {
        f = f * 10 + (c - b'0') as i128;
    }
    raw = raw * 1_000_000_000 + f * 10i128.pow(9 - frac.len() as u32);
    let v = if neg { -raw } else { raw };
    i64::try_from(v).ok()
}

fuzz_target!(|data: &[u8]| {
    if let Some(v) = parse_i64(data) {
        let std = std::str::from_utf8(data).ok().and_then(|s| s.parse::<i64>().ok());
        assert_eq!(std, Some(v), "parse_i64 and i64::from_str disagree on {data:?}");
        assert_eq!(parse_i64(v.to_string().as_bytes()), Some(v));
    }

    let p = parse_price(data);
    assert_eq!(p.map(|p| p.0), reference_price(data), "parse_price disagrees with the reference on {data:?}");
    if let Some(p) = p {
        let text = p.to_string();
        assert_eq!(parse_price(text.as_bytes()), Some(p), "{p:?} written as {text:?} does not read back");
    }
});
