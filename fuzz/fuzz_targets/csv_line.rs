//! `ticklane::source::parse_csv_line` on arbitrary lines.
//!
//! Input: a control byte (timestamp unit, interner limit), then lines separated by `\n`, all decoded with one
//! interner (so its state carries across lines, as in a file). Checks, for every line:
//! - no panic; the result is a trade or a reject reason;
//! - an accepted trade keeps `seq`, has an instrument id below the limit whose symbol is the line's symbol
//!   field, and its fields written back as `ts,symbol,price,qty,side` decode to the same trade;
//! - `TooManyInstruments` only when the symbol table is full.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ticklane::record::RejectReason;
use ticklane::source::parse_csv_line;
use ticklane::symbols::{Interner, Symbols};
use ticklane_fuzz::{limit_of, split_control, unit_of};

fuzz_target!(|data: &[u8]| {
    let Some((ctl, rest)) = split_control(data) else { return };
    let (unit, limit) = (unit_of(ctl), limit_of(ctl));
    let symbols = Symbols::new();
    let mut interner = Interner::new(symbols.clone(), limit);
    for (seq, line) in rest.split(|&c| c == b'\n').enumerate() {
        let seq = seq as u64;
        match parse_csv_line(line, unit, seq, &mut interner) {
            Ok(t) => {
                assert_eq!(t.seq, seq);
                assert!((t.instrument as usize) < limit, "instrument id {} past limit {limit}", t.instrument);
                let name = symbols.name(t.instrument).expect("accepted trade with an unassigned instrument id");
                let sym_field = line.split(|&c| c == b',').nth(1).unwrap();
                assert_eq!(name.as_bytes(), sym_field, "interned symbol differs from the symbol field");
                // Re-encode exactly as `ticklane gen` writes and decode again.
                let text = format!("{},{},{},{},{}", unit.from_nanos(t.ts), name, t.price, t.qty, t.side.as_str());
                assert_eq!(unit.to_nanos(unit.from_nanos(t.ts)), Some(t.ts), "ts not a whole number of units");
                let again = parse_csv_line(text.as_bytes(), unit, seq, &mut interner)
                    .unwrap_or_else(|r| panic!("re-encoded trade {text:?} rejected: {r:?}"));
                assert_eq!(again, t, "re-encoded trade {text:?} decodes differently");
            }
            Err(RejectReason::TooManyInstruments) => {
                assert!(symbols.len() >= limit, "TooManyInstruments with {} of {limit} symbols", symbols.len());
            }
            Err(_) => {}
        }
    }
});
