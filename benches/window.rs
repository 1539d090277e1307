//! Micro benchmark (c): window and continuous-aggregate update cost, ns per event.
//!
//! The operators are driven directly through `ticklane::operator::Operator`, as a shard drives them: before
//! each event the watermark made by the events before it (`max_ts − 2 s − 1`, workload (a)'s bound) is
//! passed to `on_watermark` when it advanced, then the event to `on_event`; at the end a watermark of +∞
//! fires what is still open. Results go to a collector that counts them. One iteration is one pass over
//! the whole stream with fresh operators, so every window is created, updated, fired and purged exactly
//! once per pass: ns per event (criterion's time / the element count) is the steady-state cost.
//!
//! `baseline/noop` is the same driver with an operator that does nothing: the cost of the loop, the
//! watermark bookkeeping and the dynamic dispatch, to subtract from the others.
//!
//! `TL_WINDOW_EVENTS` sets the stream length (default 1,000,000 trades = 500 s of event time).

mod common;

use common::{Count, DISORDER};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::time::{Duration, Instant};
use ticklane::continuous::Continuous;
use ticklane::event::{Event, Nanos, WATERMARK_MAX};
use ticklane::operator::Operator;
use ticklane::record::Collector;
use ticklane::window::{AlignedWindows, SessionWindows, WindowKind, WindowSpec};

const SEC: Nanos = 1_000_000_000;

/// Does nothing: the baseline.
struct Noop;

impl Operator for Noop {
    fn on_event(&mut self, ev: &Event, arrival: u64, _out: &mut dyn Collector) {
        black_box((ev, arrival));
    }
    fn on_watermark(&mut self, wm: Nanos, _out: &mut dyn Collector) {
        black_box(wm);
    }
    fn open_state(&self) -> usize {
        0
    }
    // Stateless: nothing to write, nothing to read.
    fn snapshot_begin(&mut self) {}
    fn snapshot_step(&mut self, _budget: usize) -> bool {
        true
    }
    fn snapshot_take(&mut self, spare: Vec<u8>) -> Vec<u8> {
        spare
    }
    fn restore(
        &mut self,
        _d: &mut ticklane::checkpoint::codec::Dec<'_>,
        _owns: &dyn Fn(u32) -> bool,
    ) -> Result<(), ticklane::checkpoint::codec::DecodeError> {
        Ok(())
    }
}

fn tumbling_1s() -> Box<dyn Operator> {
    // OHLCV + VWAP + TWAP: TWAP keeps the points of the window.
    let spec = WindowSpec {
        kind: WindowKind::Tumbling { size: SEC, offset: 0 },
        lateness: 0,
        twap: true,
        value: Default::default(),
    };
    Box::new(AlignedWindows::new(&spec, 0, 1))
}

fn sliding_60s_10s() -> Box<dyn Operator> {
    let spec = WindowSpec {
        kind: WindowKind::Sliding { size: 60 * SEC, slide: 10 * SEC, offset: 0 },
        lateness: 0,
        twap: false,
        value: Default::default(),
    };
    Box::new(AlignedWindows::new(&spec, 2, 3))
}

fn session_5s() -> Box<dyn Operator> {
    let spec =
        WindowSpec { kind: WindowKind::Session { gap: 5 * SEC }, lateness: 0, twap: false, value: Default::default() };
    Box::new(SessionWindows::new(&spec, 4, 5))
}

fn continuous() -> Box<dyn Operator> {
    Box::new(Continuous::new(SEC, None, 6, 7))
}

/// Runs `evs` through `ops` as a shard does; returns the number of results.
fn drive(ops: &mut [Box<dyn Operator>], evs: &[Event], out: &mut Count) -> u64 {
    let (mut max, mut wm) = (Nanos::MIN, Nanos::MIN);
    for (i, ev) in evs.iter().enumerate() {
        if max != Nanos::MIN {
            let w = max - DISORDER - 1;
            if w > wm {
                wm = w;
                for op in ops.iter_mut() {
                    op.on_watermark(w, out);
                }
            }
        }
        for op in ops.iter_mut() {
            op.on_event(ev, i as u64, out);
        }
        max = max.max(ev.ts());
    }
    for op in ops.iter_mut() {
        op.on_watermark(WATERMARK_MAX, out);
    }
    out.n
}

type Make = fn() -> Vec<Box<dyn Operator>>;

fn bench(c: &mut Criterion) {
    let n = common::env_usize("TL_WINDOW_EVENTS", 1_000_000);
    let evs = common::events(n);
    let cases: [(&str, Make); 6] = [
        ("baseline/noop", || vec![Box::new(Noop)]),
        ("tumbling_1s_ohlcv_vwap_twap", || vec![tumbling_1s()]),
        ("sliding_60s_10s_vwap", || vec![sliding_60s_10s()]),
        ("session_5s_gap", || vec![session_5s()]),
        ("workload_a_all_three", || vec![tumbling_1s(), sliding_60s_10s(), session_5s()]),
        ("continuous_vwap_ema", || vec![continuous()]),
    ];
    let mut g = c.benchmark_group("window");
    g.throughput(Throughput::Elements(n as u64));
    for (name, make) in cases {
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let mut ops = make();
                    let mut out = Count::default();
                    let t = Instant::now();
                    black_box(drive(&mut ops, &evs, &mut out));
                    total += t.elapsed();
                }
                total
            })
        });
    }
    g.finish();
}

criterion_group! { name = benches; config = common::config(); targets = bench }
criterion_main!(benches);
