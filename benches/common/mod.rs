//! Inputs shared by the micro benchmarks: the workload (a) trade stream, its CSV and JSON-lines text, a
//! collector that counts instead of storing, and the knobs `scripts/bench.sh` sets through the environment.
#![allow(dead_code)]

use std::hint::black_box;
use std::time::Duration;
use ticklane::event::{Event, Nanos, Trade, TradeKind};
use ticklane::gen::{GenParams, TradeGen};
use ticklane::record::{Collector, Record, StreamId};

/// First event time: 2023-11-14 22:13:20 UTC, the same as `ticklane gen` and the synthetic source.
pub const START: Nanos = 1_700_000_000_000_000_000;
/// Workload (a): disorder and the watermark bound.
pub const DISORDER: Nanos = 2_000_000_000;
/// Workload (a): trades per second of event time (what `ticklane gen` writes by default).
pub const EVENT_RATE: i64 = 2_000;
pub const INSTRUMENTS: u32 = 1_000;

/// `name` from the environment, or `default`.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.replace('_', "").parse().ok()).unwrap_or(default)
}

/// Criterion settings for a group: short enough that the suite runs in a minute or two, overridable on
/// the command line (`--measurement-time`, `--sample-size`, ...) as usual.
pub fn config() -> criterion::Criterion {
    criterion::Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(10)
        .configure_from_args()
}

/// The workload (a) trade stream, as the synthetic source makes it (ms timestamps, seed 42, Zipf 1).
pub fn trades(n: usize) -> Vec<Trade> {
    let mut g = TradeGen::new(GenParams {
        instruments: INSTRUMENTS,
        disorder: DISORDER,
        disorder_fraction: 0.2,
        late_fraction: 0.001,
        zipf: 1.0,
        seed: 42,
        granularity: 1_000_000,
    });
    (0..n)
        .map(|i| {
            let clock = START + (i as i128 * 1_000_000_000 / EVENT_RATE as i128) as Nanos;
            let t = g.next(clock);
            Trade {
                ts: t.ts,
                price: t.price,
                qty: t.qty,
                seq: i as u64,
                instrument: t.instrument,
                side: t.side,
                kind: TradeKind::Record,
            }
        })
        .collect()
}

pub fn events(n: usize) -> Vec<Event> {
    trades(n).into_iter().map(Event::Trade).collect()
}

/// A trade as a line of `ticklane gen` output: `ts,symbol,price,qty,side` (ms timestamps).
pub fn csv_line(t: &Trade, out: &mut Vec<u8>) {
    out.extend_from_slice((t.ts / 1_000_000).to_string().as_bytes());
    out.push(b',');
    out.extend_from_slice(TradeGen::symbol(t.instrument).as_bytes());
    out.push(b',');
    t.price.write_to(out);
    out.push(b',');
    out.extend_from_slice(t.qty.to_string().as_bytes());
    out.push(b',');
    out.extend_from_slice(t.side.as_str().as_bytes());
}

/// The same trade as a JSON object with the default field names.
pub fn json_line(t: &Trade, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"ts\":");
    out.extend_from_slice((t.ts / 1_000_000).to_string().as_bytes());
    out.extend_from_slice(b",\"symbol\":\"");
    out.extend_from_slice(TradeGen::symbol(t.instrument).as_bytes());
    out.extend_from_slice(b"\",\"price\":");
    t.price.write_to(out);
    out.extend_from_slice(b",\"qty\":");
    out.extend_from_slice(t.qty.to_string().as_bytes());
    out.extend_from_slice(b",\"side\":\"");
    out.extend_from_slice(t.side.as_str().as_bytes());
    out.extend_from_slice(b"\"}");
}

/// A collector that counts what operators emit (and keeps the optimiser from dropping it) instead of
/// storing it.
#[derive(Default)]
pub struct Count {
    pub n: u64,
}

impl Collector for Count {
    #[inline]
    fn emit(&mut self, stream: StreamId, rec: Record) {
        black_box((stream, &rec));
        self.n += 1;
    }
}
