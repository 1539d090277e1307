//! No heap allocation per event after warm-up, shown with a counting global allocator.
//!
//! Two views: the operators, decoders, order books and the MoldUDP64 tracker, receiver and sender driven
//! directly (exactly zero allocations once warmed up), and the whole threaded pipeline (allocations do not
//! grow with the number of events).
//! One test function, because the counter is process-wide and tests run in parallel threads.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use ticklane::continuous::Continuous;
use ticklane::event::{Event, Nanos, Trade, TradeKind, WATERMARK_MAX};
use ticklane::gen::{GenParams, TradeGen};
use ticklane::operator::Operator;
use ticklane::record::{Collector, Record, StreamId};
use ticklane::symbols::{Interner, Symbols};
use ticklane::time::TimeUnit;
use ticklane::window::{AlignedWindows, SessionWindows, WindowKind, WindowSpec};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// This thread's allocations (const-initialised: reading it never allocates).
    static MINE: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

fn count_one() {
    ALLOCS.fetch_add(1, Ordering::Relaxed);
    let _ = MINE.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: every method forwards to the system allocator with the caller's arguments unchanged; counting
// is a side effect that does not touch the memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: same contract as ours, passed through.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: same contract as ours, passed through.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        // SAFETY: same contract as ours, passed through.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours, passed through.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations by every thread.
fn allocs() -> u64 {
    ALLOCS.load(Ordering::Relaxed)
}

/// Allocations by the calling thread (the test harness's own threads allocate now and then).
fn my_allocs() -> u64 {
    MINE.with(|c| c.get())
}

/// Counts rows without keeping them.
#[derive(Default)]
struct Count {
    windows: u64,
    late: u64,
    ticks: u64,
}

impl Collector for Count {
    fn emit(&mut self, _s: StreamId, rec: Record) {
        match rec {
            Record::Window(_) => self.windows += 1,
            Record::Late(_) => self.late += 1,
            Record::Tick(_) => self.ticks += 1,
            Record::Trade(_) | Record::Quote(_) | Record::Level(_) => {}
        }
    }
}

const MS: Nanos = 1_000_000;

fn operators() -> Vec<Box<dyn Operator>> {
    vec![
        Box::new(AlignedWindows::new(
            &WindowSpec {
                kind: WindowKind::Tumbling { size: 1000 * MS, offset: 0 },
                lateness: 3000 * MS,
                twap: true,
                value: Default::default(),
            },
            0,
            1,
        )),
        Box::new(AlignedWindows::new(
            &WindowSpec {
                kind: WindowKind::Sliding { size: 60_000 * MS, slide: 10_000 * MS, offset: 0 },
                lateness: 0,
                twap: true,
                value: Default::default(),
            },
            2,
            3,
        )),
        Box::new(SessionWindows::new(
            &WindowSpec {
                kind: WindowKind::Session { gap: 5000 * MS },
                lateness: 1000 * MS,
                twap: true,
                value: Default::default(),
            },
            4,
            5,
        )),
        Box::new(Continuous::new(1000 * MS, None, 6, 7)),
    ]
}

/// Drives the operators and the CSV decoder directly with a generated feed of `n` trades replayed
/// `passes` times, each pass shifted later in event time by more than any window, lateness or bound (so the
/// state of one pass is fired and dropped before the next begins). Every pass makes exactly the same
/// demands on state, so after the first passes have grown the containers to their high-water marks, any
/// allocation in the last pass is an allocation per event. Returns the last pass's allocations (counted
/// on this thread) and the rows of all passes.
fn operators_last_pass(n: u64, passes: u64) -> (u64, Count) {
    let mut ops = operators();
    let mut interner = Interner::new(Symbols::new(), 1 << 20);
    let mut gen = TradeGen::new(GenParams {
        instruments: 200,
        disorder: 2000 * MS,
        disorder_fraction: 0.2,
        late_fraction: 0.001,
        zipf: 1.0,
        seed: 7,
        granularity: MS,
    });
    let start = 1_700_000_000_000 * MS;
    // 2,000 trades per second of event time, as in the benchmark workload.
    let trades: Vec<_> = (0..n).map(|i| gen.next(start + i as i64 * MS / 2)).collect();
    let shift = (n as i64 * MS / 2 / 1000 + 600) * 1000 * MS;
    let mut out = Count::default();
    let mut max = i64::MIN;
    let mut line = Vec::with_capacity(64);
    let mut last_pass = 0;
    for pass in 0..passes {
        let before = my_allocs();
        for (i, g) in trades.iter().enumerate() {
            // Through the CSV decoder, as a file source would.
            let ts_ms = (g.ts + pass as i64 * shift) / MS;
            line.clear();
            let mut b = itoa::Buffer::new();
            line.extend_from_slice(b.format(ts_ms).as_bytes());
            line.extend_from_slice(b",SYM");
            line.extend_from_slice(b.format(g.instrument).as_bytes());
            line.push(b',');
            g.price.write_to(&mut line);
            line.push(b',');
            line.extend_from_slice(b.format(g.qty).as_bytes());
            let t: Trade =
                ticklane::source::parse_csv_line(&line, TimeUnit::Millis, i as u64, &mut interner).expect("valid line");
            if max != i64::MIN {
                for op in ops.iter_mut() {
                    op.on_watermark(max - 2000 * MS - 1, &mut out);
                }
            }
            for op in ops.iter_mut() {
                op.on_event(&Event::Trade(t), pass * n + i as u64, &mut out);
            }
            max = max.max(t.ts);
        }
        last_pass = my_allocs() - before;
    }
    for op in ops.iter_mut() {
        op.on_watermark(WATERMARK_MAX, &mut out);
    }
    (last_pass, out)
}

/// Writes `passes` copies of `trades`, each shifted by `shift`, as a CSV file.
fn write_passes(path: &std::path::Path, trades: &[ticklane::gen::GenTrade], passes: i64, shift: Nanos) {
    use std::io::Write;
    let mut w = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(w, "ts,symbol,price,qty").unwrap();
    for p in 0..passes {
        for g in trades {
            writeln!(w, "{},SYM{},{},{}", (g.ts + p * shift) / MS, g.instrument, g.price, g.qty).unwrap();
        }
    }
}

/// Runs the whole threaded pipeline (CSV source, two shards, emitter, CSV sinks) over `csv`; returns the
/// allocations of every thread during the run.
fn pipeline_allocs(dir: &std::path::Path, csv: &std::path::Path, tag: &str) -> u64 {
    let out = dir.join(tag);
    let toml = format!(
        r#"
[pipeline]
workers = 2
ring_capacity = 4096
[metrics]
live = false
summary = false
# Every event timed (the default times every 4th): every event goes through the latency recording.
latency_sample = 1
[[source]]
name = "s"
type = "csv"
path = "{csv}"
max_out_of_orderness = "2s"
[[window]]
name = "bars"
type = "tumbling"
size = "1s"
allowed_lateness = "1s"
[[window]]
name = "vwap"
type = "sliding"
size = "60s"
slide = "10s"
[[window]]
name = "sessions"
type = "session"
gap = "5s"
[[continuous]]
name = "ticks"
[[sink]]
stream = "bars"
type = "csv"
path = "{out}/bars.csv"
[[sink]]
stream = "vwap"
type = "jsonl"
path = "{out}/vwap.jsonl"
[[sink]]
stream = "sessions"
type = "csv"
path = "{out}/sessions.csv"
[[sink]]
stream = "ticks"
type = "null"
[[sink]]
stream = "bars_late"
type = "csv"
path = "{out}/late.csv"
"#,
        csv = csv.display(),
        out = out.display()
    );
    let (n, rows) = run_counting(&toml);
    assert!(rows > 0);
    n
}

/// Runs the job of `toml` to the end of its input; returns the allocations of every thread during the run
/// (the config parsed before counting) and the rows written.
fn run_counting(toml: &str) -> (u64, u64) {
    let plan = ticklane::config::parse(toml, "alloc-test").expect("valid config");
    let before = allocs();
    let run = ticklane::pipeline::run(&plan, Arc::new(AtomicBool::new(false))).expect("pipeline runs");
    (allocs() - before, run.metrics.rows_out())
}

/// The order books over a synthetic per-order feed: after `reserve` with the feed's peaks (live orders,
/// levels per side, found by a dry run on other books), applying it — with a query of the metrics, the top
/// levels and the front of the queue after each update — and running it again after `clear` allocate
/// nothing. Returns this thread's allocations while the reserved books ran, and the messages applied.
fn book_allocations() -> (u64, u64) {
    use ticklane::book::flow::{FlowParams, Msg, OrderFlow};
    use ticklane::book::{BookSide, Books};
    let p = FlowParams { instruments: 300, live: 40_000, seed: 5, ..FlowParams::default() };
    let mut flow = OrderFlow::new(p.clone());
    let mut msgs: Vec<Msg> = Vec::new();
    flow.fill(&mut msgs);
    msgs.extend((0..400_000).map(|_| flow.next_msg()));
    let (mut peak_orders, mut peak_levels) = (0, 0);
    let mut dry = Books::new(5, p.instruments);
    for m in &msgs {
        let u = m.apply(&mut dry).expect("the feed applies");
        peak_orders = peak_orders.max(dry.len());
        for s in [BookSide::Bid, BookSide::Ask] {
            peak_levels = peak_levels.max(dry.levels(u.instrument, s).len());
        }
    }
    let mut b = Books::new(5, p.instruments);
    b.reserve(peak_orders, peak_levels);
    b.reserve_instruments(p.instruments);
    let before = my_allocs();
    let mut sum = 0i64;
    for _pass in 0..2 {
        for m in &msgs {
            let u = m.apply(&mut b).expect("the feed applies");
            let x = b.metrics(u.instrument);
            sum = sum.wrapping_add(x.imbalance.unwrap_or(0)).wrapping_add(x.microprice.map_or(0, |p| p.0));
            sum = sum.wrapping_add(b.top(u.instrument, u.side, 3).map(|l| l.shares).sum::<i64>());
            if let Some(best) = b.best(u.instrument, u.side) {
                sum = sum.wrapping_add(b.queue(u.instrument, u.side, best.price).next().map_or(0, |o| o.shares));
            }
        }
        b.clear();
    }
    let n = my_allocs() - before;
    assert!(sum != 0);
    assert_eq!(b.counters().rejected(), 0);
    (n, 2 * msgs.len() as u64)
}

/// Packets 1..: 1 to 8 messages of 0 to 40 bytes each, with some dropped, swapped, repeated and cut.
fn mold_stream(n: usize) -> Vec<Vec<u8>> {
    let mut pk =
        ticklane::moldudp64::Packetizer::new(ticklane::moldudp64::Session::new("ALLOC").unwrap(), 1, 1400, 8).unwrap();
    let mut out: Vec<Vec<u8>> = Vec::new();
    let mut i = 0u64;
    let mut k = 0usize; // packets formed
    while out.len() < n {
        i += 1;
        while pk.add(&vec![i as u8; (i % 41) as usize]) {
            i += 1;
        }
        let p = pk.packet().to_vec();
        pk.clear();
        k += 1;
        match k % 50 {
            7 => continue,                             // dropped
            13 => out.push(p[..p.len() - 1].to_vec()), // cut
            21 => out.push(p.clone()),                 // repeated
            33 if !out.is_empty() => {
                let prev = out.len() - 1;
                out.insert(prev, p); // swapped with the one before
                continue;
            }
            _ => {}
        }
        out.push(p);
    }
    out.push(pk.heartbeat().to_vec());
    out
}

/// MoldUDP64: tracking packets (gaps, duplicates, reordering and damage included), receiving datagrams from
/// a socket into the tracker, and sending without faults. Returns this thread's allocations in each part.
fn moldudp64_allocations() -> [(u64, &'static str); 3] {
    use std::net::UdpSocket;
    use std::time::{Duration, Instant};
    use ticklane::moldudp64::{Receiver, ReceiverConfig, Sender, SenderConfig, Session, Start, Tracker};
    // Parse and track.
    let packets = mold_stream(20_000);
    let mut t = Tracker::new(Start::At(1));
    let mut bytes = 0usize;
    let before = my_allocs();
    for p in &packets {
        let r = t.track(p);
        bytes += r.messages.map(|(_, m)| m.len()).sum::<usize>();
    }
    let tracked = my_allocs() - before;
    let c = *t.counters();
    assert!(c.gaps > 100 && c.old > 100 && c.truncated > 100, "{c:?}");
    assert!(bytes > 0);

    // Receive from a socket into the tracker: datagrams queued first, then polled.
    let mut cfg = ReceiverConfig::new("127.0.0.1:0".parse().unwrap());
    cfg.recv_buffer = Some(16 << 20);
    let mut rx = Receiver::bind(&cfg).unwrap();
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sent = 2_000;
    for p in packets.iter().take(sent) {
        tx.send_to(p, rx.local_addr()).unwrap();
    }
    let mut t = Tracker::new(Start::At(1));
    let mut got = 0;
    let mut delivered = 0usize;
    let deadline = Instant::now() + Duration::from_secs(10);
    let before = my_allocs();
    while got < sent && Instant::now() < deadline {
        got += rx.poll(&mut t, 64, |r| delivered += r.messages.len()).unwrap();
    }
    let received = my_allocs() - before;
    assert_eq!(got, sent);
    assert!(delivered > 0);

    // Send without faults: after the first packet, nothing allocates.
    let mut s = Sender::new(SenderConfig::new(Session::new("ALLOC").unwrap()), rx.local_addr()).unwrap();
    s.push(b"warm-up").unwrap();
    s.flush().unwrap();
    let before = my_allocs();
    for i in 0..20_000u32 {
        s.push(&i.to_be_bytes()).unwrap();
    }
    s.flush().unwrap();
    s.heartbeat().unwrap();
    let sending = my_allocs() - before;
    [
        (tracked, "tracking 20,000 packets"),
        (received, "receiving 2,000 datagrams"),
        (sending, "sending 20,000 messages"),
    ]
}

fn trade_of(g: &ticklane::gen::GenTrade) -> Trade {
    Trade {
        ts: g.ts,
        price: g.price,
        qty: g.qty,
        seq: 0,
        instrument: g.instrument,
        side: g.side,
        kind: TradeKind::Record,
    }
}

#[test]
fn no_allocation_per_event_after_warm_up() {
    // 1. Operators and decoder: exactly zero over the last of three identical passes of 400,000 trades.
    let (n, out) = operators_last_pass(400_000, 3);
    assert!(
        out.windows > 50_000 && out.ticks == 1_200_000 && out.late > 0,
        "the workload must exercise everything: {} windows, {} ticks, {} late",
        out.windows,
        out.ticks,
        out.late
    );
    assert_eq!(n, 0, "allocations while processing 400,000 events after warm-up");

    // 2. The whole threaded pipeline over a CSV file of the same passes: a file with one more pass must
    //    not cost one more allocation (thread start-up, rings and buffers are the same for both runs).
    let dir = tempfile::tempdir().unwrap();
    let mut gen = TradeGen::new(GenParams {
        instruments: 100,
        disorder: 2000 * MS,
        disorder_fraction: 0.2,
        late_fraction: 0.001,
        zipf: 1.0,
        seed: 11,
        granularity: MS,
    });
    let n = 200_000i64;
    let trades: Vec<_> = (0..n).map(|i| gen.next(1_700_000_000_000 * MS + i * MS / 2)).collect();
    let shift = (n * MS / 2 / 1000 + 600) * 1000 * MS;
    let (two, three) = (dir.path().join("two.csv"), dir.path().join("three.csv"));
    write_passes(&two, &trades, 2, shift);
    write_passes(&three, &trades, 3, shift);
    let a = pipeline_allocs(dir.path(), &two, "a");
    let b = pipeline_allocs(dir.path(), &three, "b");
    eprintln!("pipeline allocations: {a} for 2 passes of {n} trades, {b} for 3 passes");
    assert!(b <= a + 8, "the third pass of {n} trades allocated {} times more", b as i64 - a as i64);

    // 3. Kafka messages: decoding binary trade records and encoding result records (into a reused buffer)
    //    allocates nothing once every symbol has been seen.
    let mut interner = Interner::new(Symbols::new(), 1000);
    let symbols: Vec<String> = (0..100).map(TradeGen::symbol).collect();
    let records: Vec<Vec<u8>> = trades[..10_000]
        .iter()
        .map(|g| {
            let mut b = Vec::new();
            ticklane::binary::encode_trade(&symbols[g.instrument as usize], &trade_of(g), &mut b);
            b
        })
        .collect();
    let mut buf = Vec::with_capacity(4096);
    let pass = |interner: &mut Interner, buf: &mut Vec<u8>| {
        let mut sum = 0i64;
        for (i, r) in records.iter().enumerate() {
            let t = ticklane::binary::decode_trade(r, i as u64, interner).expect("a valid record");
            sum = sum.wrapping_add(t.price.0);
            buf.clear();
            let tick = ticklane::record::TickRow { trade: t, vwap: t.price, ema: t.price, volume: t.qty, count: 1 };
            ticklane::binary::encode_record(&Record::Tick(tick), &symbols[0], buf);
        }
        sum
    };
    let warm = pass(&mut interner, &mut buf);
    let before = my_allocs();
    let again = pass(&mut interner, &mut buf);
    assert_eq!(warm, again);
    assert_eq!(my_allocs() - before, 0, "allocations decoding and encoding 10,000 binary Kafka records");

    // 4. The order books: nothing once `Books::reserve` has made room for the feed's peaks.
    let (n, msgs) = book_allocations();
    assert_eq!(n, 0, "allocations applying {msgs} order messages to reserved books");
    for (n, what) in moldudp64_allocations() {
        assert_eq!(n, 0, "allocations while {what}");
    }

    // 5. An ITCH feed through the books, with its level updates, quotes and trades passed through to sinks:
    //    a feed of twice the messages costs no more allocations (the books are reserved at the start, every
    //    stock is in both feeds).
    let (small, large) = (dir.path().join("small.itch"), dir.path().join("large.itch"));
    let rows_small = itch_feed(&small, 100_000);
    let rows_large = itch_feed(&large, 200_000);
    let (a, rows_a) = itch_pipeline_allocs(dir.path(), &small, "itch-a");
    let (b, rows_b) = itch_pipeline_allocs(dir.path(), &large, "itch-b");
    assert!(rows_a > rows_small && rows_b > rows_large, "every message makes rows: {rows_a}, {rows_b}");
    eprintln!("itch pipeline allocations: {a} for 100,000 messages ({rows_a} rows), {b} for 200,000 ({rows_b} rows)");
    assert!(b <= a + 8, "100,000 more ITCH messages allocated {} times more", b as i64 - a as i64);

    // 6. The influxdb sink on the emitter's thread: encoding rows as line protocol into reused batch buffers and
    //    handing the batches to its writer thread allocates nothing once the buffers have grown.
    let (n, rows) = influxdb_sink_allocations();
    assert_eq!(n, 0, "allocations writing {rows} rows to an influxdb sink");
}

/// Writes a generated ITCH feed of `messages` messages (20 stocks) to `path`; returns the number of messages.
fn itch_feed(path: &std::path::Path, messages: u64) -> u64 {
    use ticklane::itch::{gen, SessionClock};
    let clock = SessionClock::new("2026-11-26", ticklane::itch::DEFAULT_TZ).unwrap();
    let p = gen::GenParams {
        messages,
        seed: 3,
        stocks: 20,
        start: clock.local_time(9, 30, 0).unwrap(),
        end: clock.local_time(16, 0, 0).unwrap(),
        faults: 0.0,
    };
    let mut w = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    gen::generate(&p, &mut w).unwrap().messages
}

/// Runs the threaded pipeline over the ITCH file `feed` (two shards): level updates, quotes and trades as
/// streams into CSV and null sinks, beside a window of mids; returns the allocations of every thread during the
/// run and the rows written.
fn itch_pipeline_allocs(dir: &std::path::Path, feed: &std::path::Path, tag: &str) -> (u64, u64) {
    let out = dir.join(tag);
    let toml = format!(
        r#"
[pipeline]
workers = 2
ring_capacity = 4096
[metrics]
live = false
summary = false
[[source]]
name = "feed"
type = "itch"
date = "2026-11-26"
path = "{feed}"
[[stream]]
name = "levels"
events = "level"
[[stream]]
name = "quotes"
events = "quote"
[[stream]]
name = "trades"
events = "trade"
[[window]]
name = "mids"
type = "tumbling"
size = "1m"
value = "mid"
aggregates = ["open", "close", "count"]
[[sink]]
stream = "levels"
type = "csv"
path = "{out}/levels.csv"
[[sink]]
stream = "quotes"
type = "jsonl"
path = "{out}/quotes.jsonl"
[[sink]]
stream = "trades"
type = "null"
[[sink]]
stream = "mids"
type = "null"
"#,
        feed = feed.display(),
        out = out.display()
    );
    run_counting(&toml)
}

/// Allocations on this thread writing window rows to an influxdb sink, over a second pass of 20,000 rows. The
/// server is a closed port and `drop_after` short, so that the writer thread gives up on each batch soon
/// (its own allocations, on its own thread, are not counted).
fn influxdb_sink_allocations() -> (u64, u64) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let toml = format!(
        "[[source]]\nname = \"t\"\ntype = \"synthetic\"\n\n[[window]]\nname = \"bars\"\ntype = \"tumbling\"\nsize = \"1s\"\n\n\
         [[sink]]\nstream = \"bars\"\ntype = \"influxdb\"\ninfluxdb = {{ url = \"http://127.0.0.1:{port}\", \
         database = \"d\", batch_rows = 1000, drop_after = \"1ms\", retry_max = \"1ms\" }}\n"
    );
    let plan = ticklane::config::parse(&toml, "alloc").expect("a valid config");
    let sp = &plan.sinks[0];
    let mut producers = ticklane::sink::Producers::with_offsets(None);
    let mut sink = ticklane::sink::open(
        sp,
        &plan.streams[sp.stream as usize],
        0,
        &Default::default(),
        &mut producers,
        false,
        None,
    )
    .expect("open");
    let symbols = Symbols::new();
    for i in 0..100 {
        symbols.intern(&TradeGen::symbol(i), 1000);
    }
    let mut syms = ticklane::symbols::SymbolCache::new(symbols);
    let mut gen = TradeGen::new(GenParams {
        instruments: 100,
        disorder: 0,
        disorder_fraction: 0.0,
        late_fraction: 0.0,
        zipf: 0.0,
        seed: 5,
        granularity: MS,
    });
    let rows: Vec<Record> = (0..20_000i64)
        .map(|i| {
            let g = gen.next(1_700_000_000_000 * MS + i * MS);
            let t = trade_of(&g);
            Record::Window(ticklane::record::WindowRow {
                key: t.instrument,
                start: t.ts - t.ts % 1_000_000_000,
                end: t.ts - t.ts % 1_000_000_000 + 1_000_000_000,
                bar: ticklane::agg::Bar::of(&t, 0),
                twap: (i % 2 == 0).then_some(t.price),
                fire: (i % 3) as u32,
            })
        })
        .collect();
    let mut pass = |sink: &mut Box<dyn ticklane::sink::Sink>| {
        for r in &rows {
            sink.write(r, &mut syms).expect("write");
        }
        sink.flush().expect("flush");
    };
    pass(&mut sink);
    let before = my_allocs();
    pass(&mut sink);
    (my_allocs() - before, rows.len() as u64)
}
