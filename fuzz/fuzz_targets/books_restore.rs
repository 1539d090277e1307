//! The order books' and the last quotes' checkpoint decoders (`Books::restore`, `LastQuotes::restore`,
//! src/book/snapshot.rs) on arbitrary bytes.
//!
//! Input: byte 0 picks the decoder (even: `Books::restore` into books of depth 5 and at most 64 instruments;
//! odd: `LastQuotes::restore` with an instrument limit of 64), the rest is the section.
//!
//! Checks: no panic, and an error must format. Books that decode whole (`Ok` and `Dec::finish` finds nothing
//! left) encode back to exactly the input (the layout is canonical), give every instrument's quote, and (unless
//! a restored counter is within 16 of `u64::MAX`) take an add, an execution and a delete of a new order; last quotes that decode encode back to the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ticklane::book::{BookSide, Books, LastQuotes};
use ticklane::checkpoint::codec::{Dec, DecodeError, Enc};
use ticklane::event::Price;

const MAX_INSTRUMENTS: u32 = 64;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, section)) = data.split_first() else { return };
    let mut d = Dec::new(section);
    if sel % 2 == 0 {
        books(section, &mut d);
    } else {
        last_quotes(section, &mut d);
    }
});

/// Did the section decode whole? (An error must format.)
fn accepted(res: Result<(), DecodeError>, d: &Dec<'_>) -> bool {
    match res.and_then(|()| d.finish()) {
        Ok(()) => true,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            false
        }
    }
}

fn books(section: &[u8], d: &mut Dec<'_>) {
    let mut b = Books::new(5, MAX_INSTRUMENTS);
    let res = b.restore(d);
    if res.is_err() {
        assert_eq!(b.len(), 0, "books left with orders after a refused section");
    }
    if !accepted(res, d) {
        return;
    }
    let mut e = Enc::new();
    b.snapshot(&mut e);
    assert!(e.bytes() == section, "restored books encode to other bytes");
    for k in 0..MAX_INSTRUMENTS {
        let _ = b.quote(k);
    }
    // Whatever was restored, a new order can be added, executed and deleted — unless a counter is at its
    // limit: the next increment overflows (a panic with this build's overflow checks; docs/fuzzing.md,
    // "Findings"), as any restored counter would.
    let c = b.counters();
    let counters = [
        c.adds,
        c.executes,
        c.executes_at,
        c.cancels,
        c.deletes,
        c.replaces,
        c.unknown_reference,
        c.duplicate_reference,
        c.invalid,
        c.over_executions,
        c.crossed,
        c.locked,
    ];
    if counters.iter().any(|&n| n > u64::MAX - 16) {
        return;
    }
    let r = u64::MAX - 7;
    let _ = b.delete(r);
    assert!(b.add(r, 0, BookSide::Bid, Price::from_units(1), 10).is_ok(), "a new order was refused");
    let _ = b.execute(r, 3);
    assert!(b.delete(r).is_ok(), "a new order cannot be deleted");
}

fn last_quotes(section: &[u8], d: &mut Dec<'_>) {
    let mut q = LastQuotes::default();
    let res = q.restore(d, MAX_INSTRUMENTS as usize);
    if !accepted(res, d) {
        return;
    }
    let mut e = Enc::new();
    q.snapshot(&mut e);
    assert!(e.bytes() == section, "restored last quotes encode to other bytes");
}
