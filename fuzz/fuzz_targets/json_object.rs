//! `ticklane::source::parse_json_object` on arbitrary lines.
//!
//! Input: a control byte (timestamp unit, interner limit, field names), then lines separated by `\n`, all
//! decoded with one interner. Field names are either the defaults (`ts,symbol,price,qty,side`) or short
//! ones (`t,s,p,q,side`). Checks, for every line:
//! - no panic; the result is a trade or a reject reason;
//! - an accepted line is a JSON object (its first non-blank byte is `{`);
//! - an accepted trade keeps `seq`, has an instrument id below the limit, and written back as a JSON object
//!   decodes to the same trade;
//! - `TooManyInstruments` only when the symbol table is full.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ticklane::record::RejectReason;
use ticklane::source::parse_json_object;
use ticklane::symbols::{Interner, Symbols};
use ticklane_fuzz::{limit_of, split_control, unit_of};

const DEFAULT: [&str; 5] = ["ts", "symbol", "price", "qty", "side"];
const SHORT: [&str; 5] = ["t", "s", "p", "q", "side"];

fuzz_target!(|data: &[u8]| {
    let Some((ctl, rest)) = split_control(data) else { return };
    let (unit, limit) = (unit_of(ctl), limit_of(ctl));
    let names = if ctl & 0x20 == 0 { &DEFAULT } else { &SHORT };
    let symbols = Symbols::new();
    let mut interner = Interner::new(symbols.clone(), limit);
    for (seq, line) in rest.split(|&c| c == b'\n').enumerate() {
        let seq = seq as u64;
        match parse_json_object(line, names, unit, seq, &mut interner) {
            Ok(t) => {
                assert_eq!(t.seq, seq);
                assert!((t.instrument as usize) < limit, "instrument id {} past limit {limit}", t.instrument);
                let first = line.iter().find(|c| !c.is_ascii_whitespace());
                assert_eq!(first, Some(&b'{'), "accepted a line that is not a JSON object: {line:?}");
                let name = symbols.name(t.instrument).expect("accepted trade with an unassigned instrument id");
                // Numbers as bare JSON numbers, the side as a string.
                let text = format!(
                    "{{{}:{},{}:{},{}:{},{}:{},{}:{}}}",
                    serde_json::to_string(names[0]).unwrap(),
                    unit.from_nanos(t.ts),
                    serde_json::to_string(names[1]).unwrap(),
                    serde_json::to_string(&*name).unwrap(),
                    serde_json::to_string(names[2]).unwrap(),
                    t.price,
                    serde_json::to_string(names[3]).unwrap(),
                    t.qty,
                    serde_json::to_string(names[4]).unwrap(),
                    serde_json::to_string(t.side.as_str()).unwrap(),
                );
                let again = parse_json_object(text.as_bytes(), names, unit, seq, &mut interner)
                    .unwrap_or_else(|r| panic!("re-encoded trade {text} rejected: {r:?}"));
                assert_eq!(again, t, "re-encoded trade {text} decodes differently");
            }
            Err(RejectReason::TooManyInstruments) => {
                assert!(symbols.len() >= limit, "TooManyInstruments with {} of {limit} symbols", symbols.len());
            }
            Err(_) => {}
        }
    }
});
