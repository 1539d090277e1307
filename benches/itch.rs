//! Micro benchmark: ITCH 5.0 decoding, messages per second on one core.
//!
//! The input is a file written by the generator (`ticklane::itch::gen`, 100 stocks, the flow's mix) into
//! memory, framed as NASDAQ's sample files are.
//!
//! * `itch/frames`: splitting the buffer into messages only (the framing's share of the cost).
//! * `itch/decode`: framing and decoding every message, reading one field of each.
//! * `itch/decode_counted`: the same through `Counters::decode` (per-type and oversize counts).
//!
//! `TL_ITCH_MESSAGES` sets the number of messages (default 1,000,000).

mod common;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use ticklane::itch::gen::{generate, GenParams};
use ticklane::itch::{decode, frames, Counters, Message};

fn bench(c: &mut Criterion) {
    let n = common::env_usize("TL_ITCH_MESSAGES", 1_000_000) as u64;
    let params = GenParams {
        messages: n,
        seed: 7,
        stocks: 100,
        start: 34_200_000_000_000,
        end: 57_600_000_000_000,
        faults: 0.0,
    };
    let mut buf = Vec::with_capacity(n as usize * 36);
    generate(&params, &mut buf).expect("generate in memory");

    let mut g = c.benchmark_group("itch");
    g.throughput(Throughput::Elements(n));
    g.bench_function(BenchmarkId::from_parameter("frames"), |b| {
        b.iter(|| {
            let mut bytes = 0usize;
            for f in frames(black_box(&buf)) {
                bytes += f.map_or(0, |(_, m)| m.len());
            }
            black_box(bytes)
        })
    });
    g.bench_function(BenchmarkId::from_parameter("decode"), |b| {
        b.iter(|| {
            let mut acc = 0u64;
            for f in frames(black_box(&buf)) {
                let Ok((_, bytes)) = f else { continue };
                match decode(bytes) {
                    Ok(Message::AddOrder(a)) => acc += a.shares as u64,
                    Ok(Message::OrderExecuted(e)) => acc += e.executed_shares as u64,
                    Ok(Message::OrderDelete(d)) => acc ^= d.order_ref,
                    Ok(Message::OrderReplace(u)) => acc ^= u.new_ref,
                    Ok(m) => acc += m.timestamp().unwrap_or(0) & 1,
                    Err(_) => acc += 1,
                }
            }
            black_box(acc)
        })
    });
    g.bench_function(BenchmarkId::from_parameter("decode_counted"), |b| {
        let mut counters = Counters::default();
        b.iter(|| {
            for f in frames(black_box(&buf)) {
                let Ok((_, bytes)) = f else { continue };
                let _ = black_box(counters.decode(bytes));
            }
        });
        black_box(counters.messages());
    });
    g.finish();
}

criterion_group! { name = benches; config = common::config(); targets = bench }
criterion_main!(benches);
