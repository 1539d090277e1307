//! The checkpoint state decoders (`ticklane::checkpoint::codec::Dec` and everything that reads a section with it,
//! docs/checkpoints.md) on arbitrary bytes.
//!
//! Input: byte 0 picks the decoder (its value modulo 11), the rest is the section's bytes, read with
//! `Dec::with_key_limit(.., 1024)` and, for operators, `owns = |_| true` (every key kept, as when the number of
//! shards is unchanged):
//!
//! | byte 0 % 11 | decoder | built with |
//! | --- | --- | --- |
//! | 0 | `AlignedWindows::restore` | tumbling 10 ms, allowed lateness 5 ms, twap |
//! | 1 | `AlignedWindows::restore` | sliding 20 ms every 10 ms, offset 3 ms, twap |
//! | 2 | `SessionWindows::restore` | gap 2 ms, allowed lateness 1 ms, twap |
//! | 3 | `Continuous::restore` | half-life 5 ms, session reset every 30 ms at offset 1 ms |
//! | 4 | `AlignedWindows::restore` | tumbling 1 s, no lateness, no twap |
//! | 5 | `SessionWindows::restore` | gap 200 µs, no lateness, no twap |
//! | 6 | `Continuous::restore` | half-life 1 ms, no session reset |
//! | 7 | `Symbols::restore` | an empty table, limit 64 symbols |
//! | 8 | `PartitionWatermarks::decode_into` | `PartitionWatermarks::new(4, 1000, Some(1_000_000))` |
//! | 9 | `Frontier::merge_from` | `Frontier::new(3)` |
//! | 10 | `TradeGen::decode_into` | 50 instruments, disorder 200 µs for 20 % of trades, 0.1 % late, zipf 1, seed 42 (job (1) of the seeds) |
//!
//! The parameters are those of the two jobs the seeds (`fuzz/seeds/state_restore/`) were taken from, so the
//! seeds get past the parameter checks.
//!
//! Checks: no panic in the decoder, and an error must format. A section that decodes (the decoder returns `Ok`
//! and `Dec::finish` finds no bytes left: what a restore accepts) is then used as far as it is known not to
//! panic: operators' `open_state` and `snapshot`; `Symbols`' ids and names (each id's name interns back to it,
//! a new name gets an id while there is room) and `encode`; `PartitionWatermarks`' queries and `encode`;
//! `Frontier::update` on every input (the frontier never goes back) and `encode`; `TradeGen::encode`.
//!
//! Driving the restored operators, partition watermarks and generator further panics on states that decode
//! but hold extreme values (docs/fuzzing.md, "Findings"): arithmetic overflow (counters, sums, times) and
//! `Price::from_ratio`'s `debug_assert!(den > 0)`, which this build checks. So by default they are not driven.
//! With `STATE_RESTORE_DRIVE=1` in the environment they are, which is how the findings reproduce:
//! operators get `retained_from`, a watermark just below it, one trade, a watermark 10 ms on and
//! `WATERMARK_MAX`, then `open_state`, `retained_from` and `snapshot` again; partition watermarks get idleness
//! checks, an event per present partition, a partition removed and added back; the generator makes 16 trades.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use ticklane::checkpoint::codec::{Dec, DecodeError, Enc};
use ticklane::continuous::{Continuous, SessionReset};
use ticklane::event::{Event, Nanos, Price, Side, Trade, TradeKind, WATERMARK_MAX};
use ticklane::gen::{GenParams, TradeGen};
use ticklane::operator::Operator;
use ticklane::record::{Record, StreamId};
use ticklane::symbols::Symbols;
use ticklane::time::watermark::{Frontier, PartitionWatermarks};
use ticklane::window::{AlignedWindows, SessionWindows, WindowKind, WindowSpec};

const KEY_LIMIT: u32 = 1024;
const SYMBOL_LIMIT: usize = 64;
const KINDS: u8 = 11;
const MS: Nanos = 1_000_000;
/// An event time of late 2023, for states with nothing retained.
const T0: Nanos = 1_700_000_000_000_000_000;

/// `STATE_RESTORE_DRIVE=1`: drive every restored value, not only those known not to panic.
fn drive_all() -> bool {
    static ALL: OnceLock<bool> = OnceLock::new();
    *ALL.get_or_init(|| std::env::var_os("STATE_RESTORE_DRIVE").is_some_and(|v| v == "1"))
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, section)) = data.split_first() else { return };
    let mut d = Dec::with_key_limit(section, KEY_LIMIT);
    match sel % KINDS {
        s @ 0..=6 => operator(s, &mut d),
        7 => symbols(&mut d),
        8 => partition_watermarks(&mut d),
        9 => frontier(&mut d),
        _ => generator(&mut d),
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

fn make(sel: u8) -> Box<dyn Operator> {
    let aligned = |kind, lateness, twap| {
        Box::new(AlignedWindows::new(&WindowSpec { kind, lateness, twap, value: Default::default() }, 0, 1))
    };
    let session = |gap, lateness, twap| {
        Box::new(SessionWindows::new(
            &WindowSpec { kind: WindowKind::Session { gap }, lateness, twap, value: Default::default() },
            0,
            1,
        ))
    };
    match sel {
        0 => aligned(WindowKind::Tumbling { size: 10 * MS, offset: 0 }, 5 * MS, true),
        1 => aligned(WindowKind::Sliding { size: 20 * MS, slide: 10 * MS, offset: 3 * MS }, 0, true),
        2 => session(2 * MS, MS, true),
        3 => Box::new(Continuous::new(5 * MS, Some(SessionReset { every: 30 * MS, offset: MS }), 0, 1)),
        4 => aligned(WindowKind::Tumbling { size: 1000 * MS, offset: 0 }, 0, false),
        5 => session(200_000, 0, false),
        6 => Box::new(Continuous::new(MS, None, 0, 1)),
        _ => unreachable!("operator selector {sel}"),
    }
}

fn operator(sel: u8, d: &mut Dec<'_>) {
    let mut op = make(sel);
    let res = op.restore(d, &|_| true);
    if !accepted(res, d) {
        return;
    }
    let _ = op.open_state();
    let mut e = Enc::new();
    op.snapshot(&mut e);
    if !drive_all() {
        return;
    }
    let mut out: Vec<(StreamId, Record)> = Vec::new();
    let r = op.retained_from();
    let base = if r == WATERMARK_MAX { T0 } else { r };
    op.on_watermark(base.saturating_sub(1), &mut out);
    let t = Trade {
        ts: base,
        price: Price::from_units(100),
        qty: 10,
        seq: 1,
        instrument: 0,
        side: Side::Buy,
        kind: TradeKind::Record,
    };
    // Arrival numbers after any a checkpoint can hold for a shard that has seen fewer than 2⁶² events.
    op.on_event(&Event::Trade(t), 1 << 62, &mut out);
    op.on_watermark(base.saturating_add(10 * MS), &mut out);
    op.on_watermark(WATERMARK_MAX, &mut out);
    let _ = op.open_state();
    let _ = op.retained_from();
    e.clear();
    op.snapshot(&mut e);
}

fn symbols(d: &mut Dec<'_>) {
    let s = Symbols::new();
    let res = s.restore(d, SYMBOL_LIMIT);
    let n = s.len();
    assert!(n <= SYMBOL_LIMIT, "{n} symbols past the limit of {SYMBOL_LIMIT}");
    if !accepted(res, d) {
        return;
    }
    // Every id names a distinct symbol, and interning a name gives its id back.
    for id in 0..n as u32 {
        let name = s.name(id).expect("a restored id has a name");
        assert_eq!(s.intern(&name, SYMBOL_LIMIT), Some(id), "symbol {id} `{name}`");
    }
    assert_eq!(s.name(n as u32), None);
    // A new name gets the next id while there is room (the restored table may hold this one already).
    const NEW: &str = "\u{0}fuzz";
    let known = (0..n as u32).find(|&id| s.name(id).is_some_and(|name| &*name == NEW));
    let want = known.or((n < SYMBOL_LIMIT).then_some(n as u32));
    assert_eq!(s.intern(NEW, SYMBOL_LIMIT), want);
    let mut e = Enc::new();
    s.encode(&mut e);
}

fn partition_watermarks(d: &mut Dec<'_>) {
    let mut w = PartitionWatermarks::new(4, 1000, Some(1_000_000));
    let res = w.decode_into(d);
    if !accepted(res, d) {
        return;
    }
    let _ = (w.current(), w.is_idle(), w.partitions());
    for p in 0..w.partitions() {
        let _ = (w.partition(p), w.partition_is_idle(p));
    }
    let mut e = Enc::new();
    w.encode(&mut e);
    if !drive_all() {
        return;
    }
    // The present partitions, read back from the encoding: slot count, 17 bytes per slot, then the list.
    let present: Vec<usize> = {
        let b = e.bytes();
        let mut r = Dec::new(&b[8 + 17 * w.partitions()..]);
        let n = r.u64("present").unwrap();
        (0..n).map(|_| r.u64("partition").unwrap() as usize).collect()
    };
    w.check_idle(1);
    w.check_idle(2_000_000);
    for &p in &present {
        w.on_event(p, T0);
    }
    w.check_idle(4_000_000);
    w.remove(3);
    w.add(3);
    w.on_event(3, T0 + 1);
    let _ = (w.current(), w.is_idle());
    e.clear();
    w.encode(&mut e);
}

fn frontier(d: &mut Dec<'_>) {
    let mut f = Frontier::new(3);
    let res = f.merge_from(d);
    if !accepted(res, d) {
        return;
    }
    // Monotonic whatever was restored.
    let mut last = f.current();
    for (i, wm, idle) in [(0, T0, false), (1, i64::MIN, true), (2, T0 + 1, false), (1, WATERMARK_MAX, false)] {
        if let Some(now) = f.update(i, wm, idle) {
            assert!(now > last, "frontier went from {last} to {now}");
            last = now;
        }
        assert_eq!(f.current(), last);
    }
    let mut e = Enc::new();
    f.encode(&mut e);
}

fn generator(d: &mut Dec<'_>) {
    let mut g = TradeGen::new(GenParams {
        instruments: 50,
        disorder: 200_000,
        disorder_fraction: 0.2,
        late_fraction: 0.001,
        zipf: 1.0,
        seed: 42,
        granularity: 1,
    });
    let res = g.decode_into(d);
    if !accepted(res, d) {
        return;
    }
    let mut e = Enc::new();
    g.encode(&mut e);
    if !drive_all() {
        return;
    }
    for i in 0..16 {
        let t = g.next(T0 + i * 1000);
        assert!(t.instrument < 50);
    }
}
