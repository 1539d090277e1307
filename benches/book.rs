//! Micro benchmark: order book updates per second on a synthetic per-order feed in memory.
//!
//! The feed is `ticklane::book::flow` with its default mix (40 % adds, 30 % deletes, 5 % partial cancels,
//! 8 % executions at the front of the best level, 2 % executions at another price, 10 % replaces, 5 %
//! adds or deletes to hold the live orders at the target), instruments of Zipf popularity, orders mostly
//! within a few ticks of the touch. Each iteration builds fresh books, reserves them and applies the
//! feed's prefix (the adds that bring it to the target of live orders) untimed, then times the messages.
//!
//! * `book/apply`: every message through `Books`, the update read back.
//! * `book/apply+prefetch`: the same, prefetching as a caller holding a batch of decoded messages can, in
//!   the three steps of `Books::prefetch_reference` (through `Msg::prefetch`): 6, 3 and 1 messages ahead
//!   (`TL_BOOK_AHEAD=6,3,1`).
//! * `book/apply+metrics`: `apply`, and `Books::metrics` of the instrument after every update.
//! * `levels/sorted_vec` and `levels/btreemap`: the L2 structure alone. The level changes the feed makes
//!   (instrument, side, price, new shares and count) applied to a sorted vector per side with the best at
//!   the end (the layout `src/book/levels.rs` uses, written again here) or to a `BTreeMap` per side, each
//!   followed by reading the best level and the sum of the top 5.
//!
//! Besides criterion's wall-clock figures, each `book/*` case prints its throughput in thread CPU time
//! (`CLOCK_THREAD_CPUTIME_ID`), which time slices lost to other processes do not inflate.
//!
//! `TL_BOOK_MSGS` (default 2,000,000), `TL_BOOK_LIVE` (500,000) and `TL_BOOK_INSTRUMENTS` (4,000) set the
//! size, `TL_BOOK_RECENT` (95) the percent of deletes, cancels and replaces aimed at the latest 4,096 adds.

mod common;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};
use ticklane::book::flow::{FlowParams, Msg, OrderFlow};
use ticklane::book::{BookSide, Books};
use ticklane::event::{Price, Qty};

const DEPTH: usize = 5;

struct Feed {
    instruments: u32,
    live: usize,
    prefix: Vec<Msg>,
    msgs: Vec<Msg>,
}

fn feed() -> Feed {
    let p = FlowParams {
        instruments: common::env_usize("TL_BOOK_INSTRUMENTS", 4_000) as u32,
        live: common::env_usize("TL_BOOK_LIVE", 500_000),
        recent: common::env_usize("TL_BOOK_RECENT", 95) as u32,
        ..FlowParams::default()
    };
    let n = common::env_usize("TL_BOOK_MSGS", 2_000_000);
    let mut f = OrderFlow::new(p.clone());
    let mut prefix = Vec::with_capacity(p.live);
    f.fill(&mut prefix);
    let msgs = (0..n).map(|_| f.next_msg()).collect();
    Feed { instruments: p.instruments, live: p.live, prefix, msgs }
}

fn fresh(f: &Feed) -> Books {
    let mut b = Books::new(DEPTH, f.instruments);
    b.reserve(f.live + f.live / 2, 64);
    b.reserve_instruments(f.instruments);
    for m in &f.prefix {
        m.apply(&mut b).expect("the prefix applies");
    }
    b
}

thread_local! {
    /// Thread CPU time and messages of the timed runs of the current case.
    static CPU: std::cell::Cell<(Duration, u64)> = const { std::cell::Cell::new((Duration::ZERO, 0)) };
}

/// CPU time of this thread: what the books cost on a machine other processes share.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// How many messages ahead `apply+prefetch` takes each of the three prefetch steps (`TL_BOOK_AHEAD`,
/// e.g. `6,3,1`).
fn ahead() -> [usize; 3] {
    let v: Vec<usize> = std::env::var("TL_BOOK_AHEAD")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_default();
    v.try_into().unwrap_or([6, 3, 1])
}

fn run(f: &Feed, prefetch: bool, metrics: bool) -> (Duration, u64) {
    let mut b = fresh(f);
    let t = Instant::now();
    let cpu = thread_cpu();
    let mut acc = 0u64;
    let ahead = ahead();
    for (i, m) in f.msgs.iter().enumerate() {
        if prefetch {
            for (step, ahead) in ahead.into_iter().enumerate() {
                if let Some(m) = f.msgs.get(i + ahead) {
                    m.prefetch(&b, step as u8);
                }
            }
        }
        match m.apply(&mut b) {
            Ok(u) => {
                acc = acc.wrapping_add(u.levels()[0].shares as u64);
                if metrics {
                    let x = b.metrics(u.instrument);
                    acc = acc.wrapping_add(x.imbalance.unwrap_or(0) as u64 ^ x.microprice.map_or(0, |p| p.0 as u64));
                }
            }
            Err(_) => acc = acc.wrapping_add(1),
        }
    }
    let d = t.elapsed();
    let c = thread_cpu() - cpu;
    CPU.with(|x| x.set((x.get().0 + c, x.get().1 + f.msgs.len() as u64)));
    assert_eq!(b.counters().rejected(), 0);
    (d, black_box(acc))
}

/// One level change: instrument, side, price, shares and orders after it.
type Change = (u32, BookSide, Price, Qty, u32);

/// The L2 changes of the prefix and of the timed messages.
fn changes(f: &Feed) -> (Vec<Change>, Vec<Change>) {
    let mut b = Books::new(DEPTH, f.instruments);
    let out = |msgs: &[Msg], b: &mut Books| {
        let mut v = Vec::with_capacity(msgs.len() * 5 / 4);
        for m in msgs {
            let u = m.apply(b).expect("applies");
            v.extend(u.levels().iter().map(|l| (u.instrument, l.side, l.price, l.shares, l.orders)));
        }
        v
    };
    let prefix = out(&f.prefix, &mut b);
    (prefix, out(&f.msgs, &mut b))
}

trait L2 {
    fn set(&mut self, c: &Change);
    /// Best price and the top-5 sum of one side.
    fn read(&self, i: u32, side: BookSide) -> (i64, Qty);
}

fn key(side: BookSide, p: Price) -> i64 {
    match side {
        BookSide::Bid => p.0,
        BookSide::Ask => !p.0,
    }
}

/// Best at the end, as in src/book/levels.rs.
struct SortedVec(Vec<[Vec<(i64, Qty, u32)>; 2]>);

impl L2 for SortedVec {
    #[inline]
    fn set(&mut self, &(i, side, p, shares, orders): &Change) {
        let v = &mut self.0[i as usize][side as usize];
        let k = key(side, p);
        let at = match v.last() {
            Some(l) if l.0 == k => Ok(v.len() - 1),
            Some(l) if l.0 < k => Err(v.len()),
            _ => v.binary_search_by(|l| l.0.cmp(&k)),
        };
        match (at, orders) {
            (Ok(j), 0) => {
                v.remove(j);
            }
            (Ok(j), _) => v[j] = (k, shares, orders),
            (Err(j), _) => v.insert(j, (k, shares, orders)),
        }
    }
    #[inline]
    fn read(&self, i: u32, side: BookSide) -> (i64, Qty) {
        let v = &self.0[i as usize][side as usize];
        (v.last().map_or(0, |l| l.0), v[v.len().saturating_sub(DEPTH)..].iter().map(|l| l.1).sum())
    }
}

struct Tree(Vec<[BTreeMap<i64, (Qty, u32)>; 2]>);

impl L2 for Tree {
    #[inline]
    fn set(&mut self, &(i, side, p, shares, orders): &Change) {
        let m = &mut self.0[i as usize][side as usize];
        let k = key(side, p);
        if orders == 0 {
            m.remove(&k);
        } else {
            m.insert(k, (shares, orders));
        }
    }
    #[inline]
    fn read(&self, i: u32, side: BookSide) -> (i64, Qty) {
        let m = &self.0[i as usize][side as usize];
        (m.last_key_value().map_or(0, |(k, _)| *k), m.values().rev().take(DEPTH).map(|l| l.0).sum())
    }
}

fn run_l2<T: L2>(mut t: T, prefix: &[Change], timed: &[Change]) -> Duration {
    for c in prefix {
        t.set(c);
    }
    let start = Instant::now();
    let mut acc = 0i64;
    for c in timed {
        t.set(c);
        let (best, sum) = t.read(c.0, c.1);
        acc = acc.wrapping_add(best ^ sum);
    }
    let d = start.elapsed();
    black_box(acc);
    d
}

fn bench(c: &mut Criterion) {
    let f = feed();
    {
        let mut b = fresh(&f);
        // Single messages timed one by one: the slowest show pauses (a map rehashing its tombstones in
        // place, a level vector growing) that a throughput figure hides.
        let mut slow = [0usize; 3];
        let mut max = Duration::ZERO;
        for m in &f.msgs {
            let t = thread_cpu();
            m.apply(&mut b).expect("applies");
            let d = thread_cpu() - t;
            max = max.max(d);
            for (k, limit) in [10, 100, 1000].into_iter().enumerate() {
                slow[k] += (d > Duration::from_micros(limit)) as usize;
            }
        }
        eprintln!(
            "single messages, thread CPU time: slowest {max:?}; {} over 10 µs, {} over 100 µs, {} over 1 ms",
            slow[0], slow[1], slow[2]
        );
        let sides: Vec<usize> = (0..f.instruments)
            .flat_map(|i| [BookSide::Bid, BookSide::Ask].map(|s| b.levels(i, s).len()))
            .filter(|&n| n > 0)
            .collect();
        let c = b.counters();
        eprintln!(
            "feed: {} messages after a prefix of {} adds; {} live orders at the end; levels per side: {} on the most \
             active instrument, mean {:.1} over {} non-empty sides; mix: {} adds, {} deletes, {} cancels, {} + {} \
             executions, {} replaces",
            f.msgs.len(),
            f.prefix.len(),
            b.len(),
            b.levels(0, BookSide::Bid).len().max(b.levels(0, BookSide::Ask).len()),
            sides.iter().sum::<usize>() as f64 / sides.len().max(1) as f64,
            sides.len(),
            c.adds as usize - f.prefix.len(),
            c.deletes,
            c.cancels,
            c.executes,
            c.executes_at,
            c.replaces
        );
    }
    let mut g = c.benchmark_group("book");
    g.throughput(Throughput::Elements(f.msgs.len() as u64));
    for (name, prefetch, metrics) in
        [("apply", false, false), ("apply+prefetch", true, false), ("apply+metrics", false, true)]
    {
        CPU.with(|x| x.set((Duration::ZERO, 0)));
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| run(&f, prefetch, metrics).0).sum())
        });
        let (cpu, n) = CPU.with(|x| x.get());
        if n == 0 {
            continue;
        }
        eprintln!(
            "book/{name}: {:.2} M messages/s of thread CPU time ({:.1} ns per message, {n} messages timed)",
            n as f64 / cpu.as_secs_f64() / 1e6,
            cpu.as_nanos() as f64 / n.max(1) as f64
        );
    }
    g.finish();

    let (prefix, timed) = changes(&f);
    let n = f.instruments as usize;
    let mut g = c.benchmark_group("levels");
    g.throughput(Throughput::Elements(timed.len() as u64));
    g.bench_function(BenchmarkId::from_parameter("sorted_vec"), |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let v = (0..n).map(|_| [Vec::with_capacity(64), Vec::with_capacity(64)]).collect();
                    run_l2(SortedVec(v), &prefix, &timed)
                })
                .sum()
        })
    });
    g.bench_function(BenchmarkId::from_parameter("btreemap"), |b| {
        b.iter_custom(|iters| {
            (0..iters).map(|_| run_l2(Tree((0..n).map(|_| Default::default()).collect()), &prefix, &timed)).sum()
        })
    });
    g.finish();
}

criterion_group! { name = benches; config = common::config(); targets = bench }
criterion_main!(benches);
