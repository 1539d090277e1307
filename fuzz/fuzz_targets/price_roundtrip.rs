//! The price text round trip for every `Price`: `parse_price(p.to_string()) == Some(p)`.
//!
//! Input: 8 bytes, little-endian, as the raw fixed-point value (scale 10⁹). Also checks that the text is the
//! canonical form a sink writes: an optional `-`, the integer part without leading zeros, and a fractional
//! part only if non-zero, of at most 9 digits and without trailing zeros.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ticklane::event::Price;
use ticklane::source::parse::parse_price;

fuzz_target!(|data: &[u8]| {
    let Some(bytes) = data.get(..8) else { return };
    let p = Price(i64::from_le_bytes(bytes.try_into().unwrap()));
    let text = p.to_string();
    let body = text.strip_prefix('-').unwrap_or(&text);
    assert_eq!(text.starts_with('-'), p.0 < 0, "sign of {p:?} written as {text:?}");
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    assert!(!int.is_empty() && int.bytes().all(|c| c.is_ascii_digit()), "{text:?}");
    assert!(int == "0" || !int.starts_with('0'), "leading zero in {text:?}");
    assert!(frac.len() <= 9 && frac.bytes().all(|c| c.is_ascii_digit()), "{text:?}");
    assert!(!frac.ends_with('0'), "trailing zero in {text:?}");
    assert_eq!(parse_price(text.as_bytes()), Some(p), "{p:?} written as {text:?} does not read back");
});
