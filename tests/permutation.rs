//! Property: any arrival order within the disorder bound gives exactly the results of the sorted input.
//!
//! Each trade is delivered at `ts + u` with `u` uniform in `[0, bound]`, so no trade arrives more than
//! `bound` behind the newest one before it; with the watermark's bound equal to that, nothing is late and
//! every window must hold exactly the same trades as with sorted input: the same rows, whatever the order.

use proptest::prelude::*;
use ticklane::continuous::Continuous;
use ticklane::event::{Event, Nanos, Price, Side, Trade, TradeKind, WATERMARK_MAX};
use ticklane::operator::Operator;
use ticklane::record::{Record, StreamId};
use ticklane::window::{AlignedWindows, SessionWindows, WindowKind, WindowSpec};

/// Feeds trades in the given order with Flink's watermark (max − bound − 1, judged before each trade).
fn run(op: &mut dyn Operator, bound: Nanos, trades: &[Trade]) -> Vec<(StreamId, Record)> {
    let mut out = Vec::new();
    let mut max = i64::MIN;
    for (i, t) in trades.iter().enumerate() {
        if max != i64::MIN {
            op.on_watermark(max - bound - 1, &mut out);
        }
        op.on_event(&Event::Trade(*t), i as u64, &mut out);
        max = max.max(t.ts);
    }
    op.on_watermark(WATERMARK_MAX, &mut out);
    out
}

/// Window rows as comparable tuples: (key, start, end, open, high, low, close, volume, count, pv, twap,
/// fire). Arrival counters are left out: they differ between orders by construction.
fn rows(out: &[(StreamId, Record)]) -> Vec<String> {
    let mut v: Vec<String> = out
        .iter()
        .map(|(s, r)| match r {
            Record::Window(w) => format!(
                "{s} {} {} {} {} {} {} {} {} {} {} {:?} {}",
                w.key,
                w.start,
                w.end,
                w.bar.open,
                w.bar.high,
                w.bar.low,
                w.bar.close,
                w.bar.volume,
                w.bar.count,
                w.bar.pv,
                w.twap,
                w.fire
            ),
            other => format!("{s} unexpected {other:?}"),
        })
        .collect();
    v.sort();
    v
}

fn make_ops(size: Nanos, slide: Nanos, gap: Nanos) -> Vec<Box<dyn Operator>> {
    vec![
        Box::new(AlignedWindows::new(
            &WindowSpec {
                kind: WindowKind::Tumbling { size, offset: 0 },
                lateness: 0,
                twap: true,
                value: Default::default(),
            },
            0,
            1,
        )),
        Box::new(AlignedWindows::new(
            &WindowSpec {
                kind: WindowKind::Sliding { size, slide, offset: slide / 3 },
                lateness: 0,
                twap: true,
                value: Default::default(),
            },
            2,
            3,
        )),
        Box::new(SessionWindows::new(
            &WindowSpec { kind: WindowKind::Session { gap }, lateness: 0, twap: true, value: Default::default() },
            4,
            5,
        )),
    ]
}

prop_compose! {
    /// Sorted trades with distinct timestamps (equal timestamps would make open/close depend on arrival
    /// order, which is the documented tie-break, not disorder), and a delivery jitter per trade.
    fn trades_and_jitter(max_n: usize, bound: Nanos)
        (steps in prop::collection::vec((1i64..3_000, 0u32..4, 1i64..1_000, 1i64..100), 1..max_n),
         seed in any::<u64>())
        -> (Vec<Trade>, Vec<Nanos>)
    {
        let mut ts = 1_000_000;
        let mut rng = seed;
        let mut trades = Vec::with_capacity(steps.len());
        let mut jitter = Vec::with_capacity(steps.len());
        for (i, (dt, key, price, qty)) in steps.into_iter().enumerate() {
            ts += dt;
            trades.push(Trade { ts, price: Price::from_units(price), qty, seq: i as u64, instrument: key, side: Side::Unknown, kind: TradeKind::Record });
            // splitmix64: a cheap deterministic stream from the seed
            rng = rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = rng;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            jitter.push(if bound == 0 { 0 } else { (z % (bound as u64 + 1)) as i64 });
        }
        (trades, jitter)
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn bounded_disorder_gives_the_sorted_results(
        bound in 0i64..8_000,
        size in 1i64..20_000,
        slide_div in 1i64..5,
        gap in 1i64..6_000,
        (trades, jitter) in trades_and_jitter(1500, 8_000),
    ) {
        let jitter: Vec<Nanos> = jitter.iter().map(|j| j % (bound + 1)).collect();
        let slide = (size / slide_div).max(1);
        let mut shuffled: Vec<(Nanos, usize)> = trades.iter().zip(&jitter).enumerate().map(|(i, (t, j))| (t.ts + j, i)).collect();
        shuffled.sort();
        let permuted: Vec<Trade> = shuffled.iter().map(|&(_, i)| trades[i]).collect();

        for (mut a, mut b) in make_ops(size, slide, gap).into_iter().zip(make_ops(size, slide, gap)) {
            let sorted_out = run(a.as_mut(), bound, &trades);
            let permuted_out = run(b.as_mut(), bound, &permuted);
            prop_assert!(sorted_out.iter().all(|(_, r)| matches!(r, Record::Window(_))), "nothing may be late");
            prop_assert_eq!(rows(&sorted_out), rows(&permuted_out));
        }
    }

    #[test]
    fn running_vwap_ends_the_same_in_any_order(
        (trades, jitter) in trades_and_jitter(500, 5_000),
    ) {
        let mut shuffled: Vec<(Nanos, usize)> = trades.iter().zip(&jitter).enumerate().map(|(i, (t, j))| (t.ts + j, i)).collect();
        shuffled.sort();
        let permuted: Vec<Trade> = shuffled.iter().map(|&(_, i)| trades[i]).collect();
        let last = |order: &[Trade]| {
            let mut op = Continuous::new(1_000, None, 0, 1);
            let out = run(&mut op, 0, order);
            let mut by_key = std::collections::BTreeMap::new();
            for (_, r) in out {
                if let Record::Tick(t) = r {
                    by_key.insert(t.trade.instrument, (t.vwap, t.volume, t.count));
                }
            }
            by_key
        };
        prop_assert_eq!(last(&trades), last(&permuted));
    }
}
