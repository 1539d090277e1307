//! Kafka edges, measured from outside: a client pair for `scripts/bench.sh kafka` (BENCHMARKS.md, "Kafka").
//!
//! **latency** — an open-loop producer and a consumer in one process. The producer sends binary trades
//! (`ticklane::binary`, the `--instruments` symbols (default 100) in turn, keyed by symbol) to `--in` at
//! `--rate` messages/s for `--warmup` (default 2) + `--seconds` (default 10) seconds. Message i is *due* at
//! start + i / rate and its payload `ts` is that due time (wall clock, ns since the epoch), however late it
//! actually went out, so a stall anywhere, this producer included, cannot hide its delay (no coordinated
//! omission). The producer sleeps between messages but wakes at most once per `--tick-us` (default 1000)
//! and then sends everything due: on 2 cores, waking per message costs the load generator and librdkafka
//! about twice the CPU, taken from the broker and ticklane; the wait counts in every figure. The consumer
//! reads `--out` (ticklane's output topic: a running-VWAP tick per trade, carrying the trade's `ts`), or
//! `--in` itself for the baseline (the broker round trip alone), and records wall now − `ts` of every record
//! due after the warm-up. It prints one line (ns):
//!
//! `kafka_e2e label=… rate=… sent=… achieved_rate=… expected=… received=… missing=… other=… p50=… p90=…
//!  p99=… p99.9=… p99.99=… max=… send_p50=… send_p99=… send_max=…` — `send_*`: how late the producer
//!  handed each message to librdkafka (part of the figures); `other`: records that were neither a trade
//!  nor a tick. `--out-brokers` reads `--out` from other brokers than `--brokers`. `--series` adds p50, p99 and max per second of the run on stderr. It exits 1 if records
//!  are missing after `--drain-seconds` (default 10).
//!
//! **drain** — reads `--count` messages of `--topic` from the beginning (every partition assigned, no group
//! join) and prints `kafka_drain topic=… messages=… startup_s=… first_to_last_s=… rate=…`: messages/s from
//! the first message to the last (start-up, metadata and the first fetch excluded).
//!
//! **mock-broker** — librdkafka's mock cluster (one broker) as a process of its own, with `--topics a,b`
//! created (`--partitions`, default 1): prints `kafka_mock bootstrap=HOST:PORT` and serves until it is
//! killed. The latency case runs against it at rates tansu cannot carry on 2 cores.
//!
//! ```text
//! cargo bench --bench kafka_e2e -- latency --brokers 127.0.0.1:19193 --in IN --out OUT --rate 10000
//! cargo bench --bench kafka_e2e -- drain --brokers 127.0.0.1:19192 --topic T --count 2000000
//! ```
//!
//! Client settings: producer `linger.ms = 0`, idempotent, `acks = all` (ticklane's sink defaults); consumer
//! `fetch.wait.max.ms = --fetch-wait-ms` (latency: default 1; drain: default 10, ticklane's own default);
//! `-X name=value` (repeatable) sets a librdkafka property of every client.

use hdrhistogram::Histogram;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use ticklane::binary::{self, Decoded};
use ticklane::event::{Price, Side, Trade, TradeKind};

const TIMEOUT: Duration = Duration::from_secs(10);

struct Args(Vec<String>);

impl Args {
    fn str(&self, name: &str) -> Option<String> {
        self.0.iter().position(|a| a == name).and_then(|i| self.0.get(i + 1)).cloned()
    }
    fn need(&self, name: &str) -> String {
        self.str(name).unwrap_or_else(|| fail(&format!("{name} is required")))
    }
    fn num(&self, name: &str, default: u64) -> u64 {
        self.str(name)
            .map_or(default, |v| v.parse().unwrap_or_else(|_| fail(&format!("{name}: `{v}` is not a number"))))
    }
    fn float(&self, name: &str, default: f64) -> f64 {
        self.str(name)
            .map_or(default, |v| v.parse().unwrap_or_else(|_| fail(&format!("{name}: `{v}` is not a number"))))
    }
    /// `-X name=value`, in order.
    fn props(&self) -> Vec<(String, String)> {
        self.0
            .windows(2)
            .filter(|w| w[0] == "-X")
            .map(|w| {
                let (k, v) = w[1].split_once('=').unwrap_or_else(|| fail(&format!("-X {}: not name=value", w[1])));
                (k.to_string(), v.to_string())
            })
            .collect()
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("kafka_e2e: {msg}");
    std::process::exit(2)
}

fn wall_ns() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_nanos() as i64
}

fn config(brokers: &str, defaults: &[(&str, String)], extra: &[(String, String)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers);
    for (k, v) in defaults {
        c.set(*k, v);
    }
    for (k, v) in extra {
        c.set(k, v);
    }
    c
}

/// A consumer with every partition of `topic` assigned from the beginning (no group join, no commits).
fn consumer(brokers: &str, topic: &str, fetch_wait_ms: u64, extra: &[(String, String)]) -> BaseConsumer {
    let c: BaseConsumer = config(
        brokers,
        &[
            ("group.id", "ticklane-kafka-e2e".into()),
            ("enable.auto.commit", "false".into()),
            ("fetch.wait.max.ms", fetch_wait_ms.to_string()),
        ],
        extra,
    )
    .create()
    .unwrap_or_else(|e| fail(&format!("creating the consumer: {e}")));
    let md = c.fetch_metadata(Some(topic), TIMEOUT).unwrap_or_else(|e| fail(&format!("metadata of `{topic}`: {e}")));
    let n = md.topics().iter().find(|t| t.name() == topic).map_or(0, |t| t.partitions().len());
    if n == 0 {
        fail(&format!("topic `{topic}` does not exist"));
    }
    let mut tpl = TopicPartitionList::new();
    for p in 0..n as i32 {
        tpl.add_partition_offset(topic, p, Offset::Beginning).expect("partition list");
    }
    c.assign(&tpl).unwrap_or_else(|e| fail(&format!("assigning `{topic}`: {e}")));
    c
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000_000, 3).expect("histogram bounds")
}

fn latency(a: &Args) {
    let brokers = a.need("--brokers");
    let input = a.need("--in");
    let output = a.str("--out").unwrap_or_else(|| input.clone());
    let rate = a.num("--rate", 10_000).max(1);
    let seconds = a.float("--seconds", 10.0);
    let warmup = a.float("--warmup", 2.0);
    let drain_wait = Duration::from_secs(a.num("--drain-seconds", 10));
    let instruments = a.num("--instruments", 100).max(1);
    let fetch_wait = a.num("--fetch-wait-ms", 1);
    let label = a.str("--label").unwrap_or_else(|| if output == input { "broker".into() } else { "ticklane".into() });
    let series = a.0.iter().any(|x| x == "--series");
    let tick = Duration::from_micros(a.num("--tick-us", 1000));
    let extra = a.props();
    let warm_n = (warmup * rate as f64) as u64;
    let total = warm_n + (seconds * rate as f64) as u64;

    let producer: BaseProducer = config(
        &brokers,
        &[
            ("linger.ms", "0".into()),
            ("enable.idempotence", "true".into()),
            ("acks", "all".into()),
            ("message.timeout.ms", "60000".into()),
        ],
        &extra,
    )
    .create()
    .unwrap_or_else(|e| fail(&format!("creating the producer: {e}")));
    producer
        .client()
        .fetch_metadata(Some(&input), TIMEOUT)
        .unwrap_or_else(|e| fail(&format!("metadata of `{input}`: {e}")));
    let out_brokers = a.str("--out-brokers").unwrap_or_else(|| brokers.clone());
    let cons = consumer(&out_brokers, &output, fetch_wait, &extra);
    // Let the consumer connect and start fetching before the first message is due.
    let _ = cons.poll(Duration::from_millis(500));

    let symbols: Vec<String> = (0..instruments).map(|i| format!("S{i:04}")).collect();
    let start = Instant::now() + Duration::from_millis(100);
    let start_wall = wall_ns() + 100_000_000;
    // Records due from here on are measured (warm-up messages are not).
    let measure_from = start_wall + (warm_n as u128 * 1_000_000_000 / rate as u128) as i64;
    let producing = Arc::new(AtomicBool::new(true));
    let produced_at = Arc::new(AtomicI64::new(0));

    let consumer_thread = {
        let producing = producing.clone();
        let produced_at = produced_at.clone();
        let expected = total - warm_n;
        std::thread::spawn(move || {
            let mut h = histogram();
            // One histogram per second of due time, for `--series`.
            let mut per_second: Vec<Histogram<u64>> = Vec::new();
            let mut received = 0u64;
            let mut other = 0u64;
            loop {
                if received >= expected {
                    break;
                }
                if !producing.load(Ordering::Acquire) {
                    let done = produced_at.load(Ordering::Acquire);
                    if wall_ns() - done > drain_wait.as_nanos() as i64 {
                        break;
                    }
                }
                let m = match cons.poll(Duration::from_millis(100)) {
                    None => continue,
                    Some(Err(e)) => {
                        eprintln!("kafka_e2e: consumer: {e}");
                        continue;
                    }
                    Some(Ok(m)) => m,
                };
                let now = wall_ns();
                let ts = match m.payload().map(binary::decode) {
                    Some(Ok(Decoded::Tick { ts, .. } | Decoded::Trade { ts, .. })) => ts,
                    _ => {
                        other += 1;
                        continue;
                    }
                };
                if ts >= measure_from {
                    received += 1;
                    let lat = (now - ts).max(1) as u64;
                    h.saturating_record(lat);
                    let sec = ((ts - measure_from) / 1_000_000_000) as usize;
                    if per_second.len() <= sec {
                        per_second.resize_with(sec + 1, histogram);
                    }
                    per_second[sec].saturating_record(lat);
                }
            }
            (h, per_second, received, other)
        })
    };

    let mut send_late = histogram();
    let mut buf = Vec::with_capacity(binary::TRADE_LEN);
    let mut woke = start;
    for i in 0..total {
        let off = (i as u128 * 1_000_000_000 / rate as u128) as u64;
        let due = start + Duration::from_nanos(off);
        let now = Instant::now();
        if due > now {
            // Sleeping (not spinning) leaves the cores to the broker and ticklane, and waking at most once
            // per tick (sending everything due by then) keeps this thread and librdkafka's from waking per
            // message. Every figure includes the wait, since `ts` is the due time.
            std::thread::sleep((due - now).max((woke + tick).saturating_duration_since(now)));
            woke = Instant::now();
        }
        let sym = &symbols[(i % instruments) as usize];
        let t = Trade {
            ts: start_wall + off as i64,
            price: Price::from_units(100 + (i % 7) as i64),
            qty: 1 + (i % 10) as i64,
            seq: i,
            instrument: 0,
            side: if i % 2 == 0 { Side::Buy } else { Side::Sell },
            kind: TradeKind::Record,
        };
        buf.clear();
        binary::encode_trade(sym, &t, &mut buf);
        let mut rec: BaseRecord<'_, str, [u8]> = BaseRecord::to(&input).key(sym.as_str()).payload(&buf);
        loop {
            match producer.send(rec) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    rec = r;
                    producer.poll(Duration::from_millis(1));
                }
                Err((e, _)) => fail(&format!("producing to `{input}`: {e}")),
            }
        }
        if i >= warm_n {
            send_late.saturating_record(Instant::now().saturating_duration_since(due).as_nanos().max(1) as u64);
        }
        producer.poll(Duration::ZERO);
    }
    let sent_for = start.elapsed();
    if let Err(e) = producer.flush(Duration::from_secs(60)) {
        fail(&format!("flushing the producer: {e}"));
    }
    produced_at.store(wall_ns(), Ordering::Release);
    producing.store(false, Ordering::Release);
    let (h, per_second, received, other) = consumer_thread.join().expect("consumer thread");
    if series {
        for (sec, s) in per_second.iter().enumerate() {
            eprintln!(
                "kafka_e2e second {sec}: n={} p50={} p99={} max={}",
                s.len(),
                s.value_at_quantile(0.5),
                s.value_at_quantile(0.99),
                s.max()
            );
        }
    }
    let expected = total - warm_n;
    let q = |q: f64| h.value_at_quantile(q);
    println!(
        "kafka_e2e label={label} rate={rate} sent={total} achieved_rate={:.0} expected={expected} received={received} missing={} other={other} p50={} p90={} p99={} p99.9={} p99.99={} max={} send_p50={} send_p99={} send_max={}",
        total as f64 / sent_for.as_secs_f64(),
        expected.saturating_sub(received),
        q(0.5),
        q(0.9),
        q(0.99),
        q(0.999),
        q(0.9999),
        h.max(),
        send_late.value_at_quantile(0.5),
        send_late.value_at_quantile(0.99),
        send_late.max()
    );
    if received < expected {
        std::process::exit(1);
    }
}

fn drain(a: &Args) {
    let brokers = a.need("--brokers");
    let topic = a.need("--topic");
    let count = a.num("--count", 0).max(1);
    let fetch_wait = a.num("--fetch-wait-ms", 10);
    let started = Instant::now();
    let c = consumer(&brokers, &topic, fetch_wait, &a.props());
    let mut first = None;
    let mut seen = 0u64;
    let mut last_msg = Instant::now();
    while seen < count {
        // A blocking poll (it returns as soon as a message is there): spinning would take a core from the broker.
        match c.poll(Duration::from_millis(100)) {
            None => {
                if last_msg.elapsed() > TIMEOUT {
                    fail(&format!("only {seen} of {count} messages in `{topic}` after {TIMEOUT:?} without one"));
                }
            }
            Some(Err(e)) => eprintln!("kafka_e2e: consumer: {e}"),
            Some(Ok(_)) => {
                last_msg = Instant::now();
                first.get_or_insert(last_msg);
                seen += 1;
            }
        }
    }
    let end = Instant::now();
    let first = first.unwrap_or(end);
    let span = end.duration_since(first).as_secs_f64();
    println!(
        "kafka_drain topic={topic} messages={seen} startup_s={:.3} first_to_last_s={span:.3} rate={:.0}",
        first.duration_since(started).as_secs_f64(),
        (seen - 1) as f64 / span.max(1e-9)
    );
}

/// librdkafka's mock cluster as a stand-alone broker process: the same wire protocol, a C implementation
/// with the log in memory, and (unlike tansu) an answer to a fetch as soon as it finds data. It serves the
/// latency case at rates the tansu broker cannot keep up with on 2 cores.
fn mock_broker(a: &Args) {
    let topics = a.need("--topics");
    let partitions = a.num("--partitions", 1) as i32;
    let mock = MockCluster::new(1).unwrap_or_else(|e| fail(&format!("starting the mock cluster: {e}")));
    for t in topics.split(',').filter(|t| !t.is_empty()) {
        mock.create_topic(t, partitions, 1).unwrap_or_else(|e| fail(&format!("creating `{t}`: {e}")));
    }
    println!("kafka_mock bootstrap={}", mock.bootstrap_servers());
    let _ = std::io::Write::flush(&mut std::io::stdout());
    // The mock's own thread serves; this one only keeps the process (and the cluster) alive until killed.
    loop {
        std::thread::park();
    }
}

fn main() {
    let args = Args(std::env::args().collect());
    // The mode comes first (`cargo bench` appends `--bench` after the arguments given).
    match args.0.get(1).map(String::as_str) {
        Some("latency") => latency(&args),
        Some("drain") => drain(&args),
        Some("mock-broker") => mock_broker(&args),
        _ => fail("usage: kafka_e2e latency|drain|mock-broker … (see the top of benches/kafka_e2e.rs)"),
    }
}
