//! Properties of operator snapshots: stopping anywhere, restoring into a fresh operator and going on gives
//! exactly the output of never stopping — the same records in the same order; with a different number of
//! shards, the same records per key; a restored operator snapshots to the same bytes; damaged bytes are an
//! error, never a panic.

use proptest::prelude::*;
use ticklane::checkpoint::codec::{Dec, DecodeError, Enc};
use ticklane::continuous::{Continuous, SessionReset};
use ticklane::event::{Event, KeyId, Nanos, Price, Side, Trade, TradeKind, WATERMARK_MAX};
use ticklane::operator::Operator;
use ticklane::record::{Record, StreamId};
use ticklane::window::{AlignedWindows, SessionWindows, WindowKind, WindowSpec};

#[derive(Clone, Copy, Debug)]
enum Msg {
    Wm(Nanos),
    Ev(Trade),
}

/// What a shard receives for an input: before each trade the watermark of the trades before it (max − bound
/// − 1, so some trades are late), and the final watermark at the end.
fn messages(trades: &[Trade], bound: Nanos) -> Vec<Msg> {
    let mut v = Vec::new();
    let mut max = i64::MIN;
    for t in trades {
        if max != i64::MIN {
            v.push(Msg::Wm(max - bound - 1));
        }
        v.push(Msg::Ev(*t));
        max = max.max(t.ts);
    }
    v.push(Msg::Wm(WATERMARK_MAX));
    v
}

fn feed(op: &mut dyn Operator, msgs: &[Msg], out: &mut Vec<(StreamId, Record)>) {
    for m in msgs {
        match m {
            // The arrival counter is the trade's seq: the same whichever shard and run it goes through.
            Msg::Ev(t) => op.on_event(&Event::Trade(*t), t.seq, out),
            Msg::Wm(w) => op.on_watermark(*w, out),
        }
    }
}

fn snapshot(op: &mut dyn Operator) -> Vec<u8> {
    let mut e = Enc::new();
    op.snapshot(&mut e);
    e.bytes().to_vec()
}

fn restore(op: &mut dyn Operator, bytes: &[u8], owns: &dyn Fn(KeyId) -> bool) -> Result<(), DecodeError> {
    let mut d = Dec::new(bytes);
    op.restore(&mut d, owns)?;
    d.finish()
}

/// One of every operator kind, with the case's parameters.
fn make(kind: u8, size: Nanos, slide: Nanos, lateness: Nanos) -> Box<dyn Operator> {
    match kind {
        0 => Box::new(AlignedWindows::new(
            &WindowSpec {
                kind: WindowKind::Tumbling { size, offset: 0 },
                lateness,
                twap: true,
                value: Default::default(),
            },
            0,
            1,
        )),
        1 => Box::new(AlignedWindows::new(
            &WindowSpec {
                kind: WindowKind::Sliding { size: size * 2, slide, offset: 3 },
                lateness,
                twap: true,
                value: Default::default(),
            },
            0,
            1,
        )),
        2 => Box::new(SessionWindows::new(
            &WindowSpec { kind: WindowKind::Session { gap: slide }, lateness, twap: true, value: Default::default() },
            0,
            1,
        )),
        3 => Box::new(Continuous::new(size, None, 0, 1)),
        _ => Box::new(Continuous::new(size, Some(SessionReset { every: size * 3, offset: 1 }), 0, 1)),
    }
}

/// Output per key, in order.
fn per_key(out: &[(StreamId, Record)]) -> Vec<Vec<(StreamId, Record)>> {
    let mut v: Vec<Vec<(StreamId, Record)>> = vec![Vec::new(); 8];
    for (s, r) in out {
        v[r.key() as usize].push((*s, *r));
    }
    v
}

fn trades_strategy() -> impl Strategy<Value = Vec<Trade>> {
    prop::collection::vec((0i64..200, 0u32..8, 1i64..50, 1i64..5), 0..120).prop_map(|v| {
        let mut ts = 1_000i64;
        v.into_iter()
            .enumerate()
            .map(|(i, (dt, instrument, price, qty))| {
                // Mostly forward, sometimes back: out-of-order and late trades both occur.
                ts += dt - 60;
                Trade {
                    ts,
                    price: Price::from_units(price),
                    qty,
                    seq: i as u64,
                    instrument,
                    side: Side::Buy,
                    kind: TradeKind::Record,
                }
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn resuming_from_a_snapshot_changes_nothing(
        trades in trades_strategy(),
        kind in 0u8..5,
        size in 10i64..120,
        slide_pick in 1i64..4,
        lateness in prop::sample::select(vec![0i64, 30, 200]),
        bound in 0i64..80,
        cut_frac in 0.0f64..=1.0,
        budget in 1usize..6,
    ) {
        let slide = (size / slide_pick).max(1);
        let msgs = messages(&trades, bound);
        let cut = ((msgs.len() as f64) * cut_frac) as usize;

        let mut whole = Vec::new();
        feed(make(kind, size, slide, lateness).as_mut(), &msgs, &mut whole);

        // The snapshot begins at the cut and is written a few keys at a time while the operator goes on.
        let mut first = make(kind, size, slide, lateness);
        let mut went_on = Vec::new();
        feed(first.as_mut(), &msgs[..cut], &mut went_on);
        let mut at_cut = make(kind, size, slide, lateness);
        feed(at_cut.as_mut(), &msgs[..cut], &mut Vec::new());
        let (open, retained) = (first.open_state(), first.retained_from());
        first.snapshot_begin();
        let mut i = cut;
        loop {
            let done = first.snapshot_step(budget);
            if i < msgs.len() {
                feed(first.as_mut(), &msgs[i..i + 1], &mut went_on);
                i += 1;
            }
            if done {
                break;
            }
        }
        let bytes = first.snapshot_take(Vec::new());
        feed(first.as_mut(), &msgs[i..], &mut went_on);
        // Taking a snapshot changes nothing the operator emits.
        prop_assert_eq!(&went_on, &whole);

        let mut second = make(kind, size, slide, lateness);
        restore(second.as_mut(), &bytes, &|_| true).unwrap();
        prop_assert_eq!(second.open_state(), open);
        prop_assert_eq!(second.retained_from(), retained);
        // Restored, it holds what the operator held at the cut, byte for byte.
        prop_assert_eq!(snapshot(second.as_mut()), snapshot(at_cut.as_mut()));
        // What the first run emitted up to the cut, then what the restored one emits after it.
        let mut resumed = Vec::new();
        feed(make(kind, size, slide, lateness).as_mut(), &msgs[..cut], &mut resumed);
        feed(second.as_mut(), &msgs[cut..], &mut resumed);
        prop_assert_eq!(resumed, whole);
    }

    #[test]
    fn rescaling_keeps_every_key_s_results(
        trades in trades_strategy(),
        kind in 0u8..5,
        size in 10i64..120,
        lateness in prop::sample::select(vec![0i64, 30, 200]),
        bound in 0i64..80,
        cut_frac in 0.0f64..=1.0,
        before in 1u32..5,
        after in 1u32..5,
    ) {
        let slide = (size / 2).max(1);
        let msgs = messages(&trades, bound);
        let cut = ((msgs.len() as f64) * cut_frac) as usize;
        // Shard `s` of `n` gets its keys' trades and every watermark.
        let route = |msgs: &[Msg], s: u32, n: u32| -> Vec<Msg> {
            msgs.iter().copied().filter(|m| match m {
                Msg::Ev(t) => t.instrument % n == s,
                Msg::Wm(_) => true,
            }).collect()
        };

        let mut whole = Vec::new();
        feed(make(kind, size, slide, lateness).as_mut(), &msgs, &mut whole);

        let mut out = Vec::new();
        let mut snaps = Vec::new();
        for s in 0..before {
            let mut op = make(kind, size, slide, lateness);
            feed(op.as_mut(), &route(&msgs[..cut], s, before), &mut out);
            snaps.push(snapshot(op.as_mut()));
        }
        for s in 0..after {
            let mut op = make(kind, size, slide, lateness);
            for b in &snaps {
                restore(op.as_mut(), b, &|k| k % after == s).unwrap();
            }
            feed(op.as_mut(), &route(&msgs[cut..], s, after), &mut out);
        }
        prop_assert_eq!(per_key(&out), per_key(&whole));
    }

    #[test]
    fn damaged_snapshots_are_errors_not_panics(
        trades in trades_strategy(),
        kind in 0u8..5,
        flip_at in any::<prop::sample::Index>(),
        flip in 1u8..=255,
        cut_at in any::<prop::sample::Index>(),
    ) {
        let msgs = messages(&trades, 20);
        let mut op = make(kind, 50, 25, 30);
        feed(op.as_mut(), &msgs[..msgs.len() / 2], &mut Vec::new());
        let bytes = snapshot(op.as_mut());
        let mut flipped = bytes.clone();
        let i = flip_at.index(flipped.len());
        flipped[i] ^= flip;
        let _ = restore(make(kind, 50, 25, 30).as_mut(), &flipped, &|_| true);
        let short = &bytes[..cut_at.index(bytes.len())];
        prop_assert!(restore(make(kind, 50, 25, 30).as_mut(), short, &|_| true).is_err());
    }
}

#[test]
fn a_snapshot_of_other_parameters_is_refused_by_name() {
    let bytes = snapshot(make(0, 100, 50, 0).as_mut());
    let err = restore(make(0, 200, 50, 0).as_mut(), &bytes, &|_| true).unwrap_err();
    assert_eq!(err.to_string(), "checkpoint was taken with window size = 100, the configuration has 200");
    let err = restore(make(2, 100, 50, 0).as_mut(), &bytes, &|_| true).unwrap_err();
    assert_eq!(err.to_string(), "checkpoint was taken with operator = 1, the configuration has 2");
    let err = restore(make(0, 100, 50, 30).as_mut(), &bytes, &|_| true).unwrap_err();
    assert!(err.to_string().contains("allowed lateness = 0"), "{err}");
}
