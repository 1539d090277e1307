//! Micro benchmark (c): decoding cost, ns per line.
//!
//! * `csv/parse_line`: `ticklane::source::parse_csv_line` on lines as `ticklane gen` writes them.
//! * `json/parse_object`: `ticklane::source::parse_json_object` on the same trades as JSON objects.
//! * `baseline/line_split`: `ticklane::source::LineReader` over the CSV text in memory: finding the lines,
//!   which the CSV source does before parsing each one (its cost is not in `csv/parse_line`).
//!
//! The symbol interner is warmed with every symbol first, as it is after the first second of a run.
//! `TL_PARSE_LINES` sets the number of lines (default 200,000).

mod common;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use ticklane::source::{parse_csv_line, parse_json_object, LineReader};
use ticklane::symbols::{Interner, Symbols};
use ticklane::time::TimeUnit;

fn bench(c: &mut Criterion) {
    let n = common::env_usize("TL_PARSE_LINES", 200_000);
    let trades = common::trades(n);
    let mut csv = Vec::new();
    let (mut csv_text, mut json_lines) = (Vec::new(), Vec::new());
    for t in &trades {
        let mut l = Vec::with_capacity(48);
        common::csv_line(t, &mut l);
        csv_text.extend_from_slice(&l);
        csv_text.push(b'\n');
        csv.push(l);
        let mut j = Vec::with_capacity(96);
        common::json_line(t, &mut j);
        json_lines.push(j);
    }
    let mut interner = Interner::new(Symbols::new(), 1 << 20);
    for l in &csv {
        parse_csv_line(l, TimeUnit::Millis, 0, &mut interner).expect("generated lines parse");
    }
    let names = ["ts", "symbol", "price", "qty", "side"];
    for l in &json_lines {
        parse_json_object(l, &names, TimeUnit::Millis, 0, &mut interner).expect("generated objects parse");
    }

    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function(BenchmarkId::from_parameter("baseline/line_split"), |b| {
        b.iter_batched(
            || LineReader::new(Box::new(std::io::Cursor::new(csv_text.clone()))),
            |mut r| {
                let mut bytes = 0usize;
                while let Some((_, l)) = r.next_line().expect("in memory") {
                    bytes += l.len();
                }
                black_box(bytes)
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function(BenchmarkId::from_parameter("csv/parse_line"), |b| {
        b.iter(|| {
            let mut acc = 0i64;
            for (i, l) in csv.iter().enumerate() {
                let t = parse_csv_line(black_box(l), TimeUnit::Millis, i as u64, &mut interner).expect("valid");
                acc = acc.wrapping_add(t.price.0);
            }
            black_box(acc)
        })
    });
    g.bench_function(BenchmarkId::from_parameter("json/parse_object"), |b| {
        b.iter(|| {
            let mut acc = 0i64;
            for (i, l) in json_lines.iter().enumerate() {
                let t =
                    parse_json_object(black_box(l), &names, TimeUnit::Millis, i as u64, &mut interner).expect("valid");
                acc = acc.wrapping_add(t.price.0);
            }
            black_box(acc)
        })
    });
    g.finish();
}

criterion_group! { name = benches; config = common::config(); targets = bench }
criterion_main!(benches);
