//! Micro benchmark (c): handing events from one thread to another through an SPSC ring, ns per event.
//!
//! The producer (the benchmark thread) sends `ShardMsg::Event`s (what a source sends a shard) through
//! `ticklane::pipeline::Sender`; a consumer thread pops them and waits on an empty ring with
//! `ticklane::pipeline::Idler`, as a shard does. The time is from the first send to the consumer having
//! taken the last message, so it is throughput of the handoff (both threads running), not one-way latency.
//!
//! `baseline/rtrb_raw` is bare `rtrb` push/pop with a spin on full/empty: what `Sender`/`Idler` add on
//! top of the ring itself is the difference. The ring has the pipeline's default 65,536 slots.
//!
//! The throughput cases have two regimes, and a run may land in either (BENCHMARKS.md has figures): the
//! producer runs ahead and the consumer drains full batches (a few ns per message), or the consumer keeps
//! up and every message's cache line crosses cores on its own (tens of ns).
//!
//! `latency/one_way_spin` is the other view: one message at a time, ping-pong between the two threads
//! over a pair of rings (`Sender` + spinning `Idler`); half the round trip, ns per message.
//!
//! The producer is pinned to core 0 and the consumer to core 1 (as the latency configs pin the source and
//! the worker), so every message crosses cores.

mod common;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};
use ticklane::event::Event;
use ticklane::pipeline::{Doorbell, Idler, Sender, ShardMsg, Wait};

const CAPACITY: usize = 1 << 16;
const PRODUCER_CORE: usize = 0;
const CONSUMER_CORE: usize = 1;

fn pin(core: usize) {
    if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
        eprintln!("ring bench: could not pin a thread to core {core}");
    }
}

fn message(evs: &[Event], i: u64) -> ShardMsg {
    ShardMsg::Event { ev: evs[i as usize & (evs.len() - 1)], part: 0, wm: i as i64, t0: 0 }
}

/// Bare rtrb, both sides spinning.
fn raw(evs: &[Event], iters: u64) -> Duration {
    let (mut p, mut c) = rtrb::RingBuffer::<ShardMsg>::new(CAPACITY);
    let start = Arc::new(Barrier::new(2));
    let go = start.clone();
    let consumer = std::thread::spawn(move || {
        pin(CONSUMER_CORE);
        go.wait();
        let mut got = 0u64;
        while got < iters {
            match c.pop() {
                Ok(m) => {
                    black_box(m);
                    got += 1;
                }
                Err(_) => std::hint::spin_loop(),
            }
        }
        Instant::now()
    });
    start.wait();
    let t0 = Instant::now();
    for i in 0..iters {
        let mut m = message(evs, i);
        loop {
            match p.push(m) {
                Ok(()) => break,
                Err(rtrb::PushError::Full(back)) => {
                    m = back;
                    std::hint::spin_loop();
                }
            }
        }
    }
    consumer.join().expect("consumer") - t0
}

/// `Sender` → `Idler` with the given wait strategy (a doorbell when the consumer parks).
fn sender(evs: &[Event], iters: u64, wait: Wait) -> Duration {
    let bell = (wait == Wait::Park).then(Doorbell::new);
    let (p, mut c) = rtrb::RingBuffer::<ShardMsg>::new(CAPACITY);
    let mut tx = Sender::new(p, bell.clone());
    let start = Arc::new(Barrier::new(2));
    let go = start.clone();
    let consumer = std::thread::spawn(move || {
        pin(CONSUMER_CORE);
        let mut idler = Idler::new(wait, bell);
        go.wait();
        let mut got = 0u64;
        while got < iters {
            match c.pop() {
                Ok(m) => {
                    black_box(m);
                    got += 1;
                    idler.reset();
                }
                Err(_) => idler.idle(|| c.is_empty()),
            }
        }
        Instant::now()
    });
    start.wait();
    let t0 = Instant::now();
    for i in 0..iters {
        tx.send(message(evs, i)).expect("consumer alive");
    }
    consumer.join().expect("consumer") - t0
}

/// Ping-pong: `iters` round trips of one message; returns the time of `iters` one-way trips (half).
fn one_way(evs: &[Event], iters: u64) -> Duration {
    let (p, mut back_rx) = rtrb::RingBuffer::<ShardMsg>::new(CAPACITY);
    let (back_p, mut c) = rtrb::RingBuffer::<ShardMsg>::new(CAPACITY);
    let (mut tx, mut back_tx) = (Sender::new(p, None), Sender::new(back_p, None));
    let start = Arc::new(Barrier::new(2));
    let go = start.clone();
    let echo = std::thread::spawn(move || {
        pin(CONSUMER_CORE);
        let mut idler = Idler::new(Wait::Spin, None);
        go.wait();
        let mut got = 0u64;
        while got < iters {
            match back_rx.pop() {
                Ok(m) => {
                    back_tx.send(m).expect("producer alive");
                    got += 1;
                    idler.reset();
                }
                Err(_) => idler.idle(|| back_rx.is_empty()),
            }
        }
    });
    let mut idler = Idler::new(Wait::Spin, None);
    start.wait();
    let t0 = Instant::now();
    for i in 0..iters {
        tx.send(message(evs, i)).expect("echo alive");
        loop {
            match c.pop() {
                Ok(m) => {
                    black_box(m);
                    idler.reset();
                    break;
                }
                Err(_) => idler.idle(|| c.is_empty()),
            }
        }
    }
    let rtt = t0.elapsed();
    echo.join().expect("echo");
    rtt / 2
}

fn bench(c: &mut Criterion) {
    pin(PRODUCER_CORE);
    eprintln!(
        "ring bench: ShardMsg is {} bytes, EmitMsg {} bytes",
        std::mem::size_of::<ShardMsg>(),
        std::mem::size_of::<ticklane::pipeline::EmitMsg>()
    );
    let evs = common::events(1024);
    let mut g = c.benchmark_group("ring");
    g.throughput(Throughput::Elements(1));
    g.bench_function(BenchmarkId::from_parameter("baseline/rtrb_raw"), |b| b.iter_custom(|n| raw(&evs, n)));
    for (name, wait) in
        [("sender/spin", Wait::Spin), ("sender/spin-then-yield", Wait::SpinThenYield), ("sender/park", Wait::Park)]
    {
        g.bench_function(BenchmarkId::from_parameter(name), |b| b.iter_custom(|n| sender(&evs, n, wait)));
    }
    g.bench_function(BenchmarkId::from_parameter("latency/one_way_spin"), |b| b.iter_custom(|n| one_way(&evs, n)));
    g.finish();
}

criterion_group! { name = benches; config = common::config(); targets = bench }
criterion_main!(benches);
