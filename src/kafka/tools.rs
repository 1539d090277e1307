//! The Kafka tools of the command line: create a topic, load trades into a topic, print a topic.

use super::{client_config, partitions_of, Delivery, Logged};
use crate::binary::{self, Decoded};
use crate::config::FieldNames;
use crate::event::{Price, Trade};
use crate::record::LateReason;
use crate::source::{parse_csv_line, parse_json_object, LineReader};
use crate::symbols::{Interner, SymbolCache, Symbols};
use crate::time::TimeUnit;
use anyhow::{bail, Context, Result};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Headers;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};
use std::io::Write;
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(10);

/// Message formats of the tools (as the `format` keys of the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MsgFormat {
    Csv,
    Jsonl,
    Binary,
}

fn props(brokers: &str, extra: &[(String, String)]) -> Vec<(String, String)> {
    let mut v = vec![("bootstrap.servers".to_string(), brokers.to_string())];
    v.extend(extra.iter().cloned());
    v
}

/// Creates `topic` with `partitions` partitions; an existing topic with that many partitions is fine.
pub fn create_topic(brokers: &str, topic: &str, partitions: i32, extra: &[(String, String)]) -> Result<()> {
    let admin: AdminClient<Logged> = client_config(&props(brokers, extra))
        .create_with_context(Logged("admin".into()))
        .context("creating the Kafka admin client")?;
    let opts = AdminOptions::new().operation_timeout(Some(TIMEOUT)).request_timeout(Some(TIMEOUT));
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let rt = futures_lite_block_on(admin.create_topics([&new], &opts)).context("creating topic")?;
    for r in rt {
        match r {
            Ok(_) => {}
            Err((t, RDKafkaErrorCode::TopicAlreadyExists)) => {
                let n = partitions_of(admin.inner(), &t, TIMEOUT).map_err(anyhow::Error::msg)?;
                if n != partitions as usize {
                    bail!("topic `{t}` exists with {n} partitions, not {partitions}");
                }
            }
            Err((t, e)) => bail!("cannot create topic `{t}`: {e}"),
        }
    }
    Ok(())
}

/// Runs a future to completion on this thread (the admin API is async; the tools are not).
fn futures_lite_block_on<F: std::future::Future>(f: F) -> F::Output {
    use std::task::{Context as Cx, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(std::sync::Arc::new(Unpark(std::thread::current())));
    let mut cx = Cx::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park_timeout(Duration::from_millis(10));
    }
}

/// What `produce` reads and how it writes.
pub struct ProduceOpts {
    pub brokers: String,
    pub topic: String,
    /// A trade file, or `-` for standard input.
    pub file: std::path::PathBuf,
    pub input: MsgFormat,
    /// The first line of a CSV input is a header.
    pub header: bool,
    pub unit: TimeUnit,
    /// Message format (None: the input's, lines sent as they are).
    pub format: Option<MsgFormat>,
    /// Messages per second (0: as fast as the producer takes them).
    pub rate: u64,
    pub extra: Vec<(String, String)>,
}

/// What `produce` did.
#[derive(Debug, Default)]
pub struct Produced {
    pub messages: u64,
    /// Lines that did not parse, sent as they are.
    pub unparsed: u64,
    pub elapsed: Duration,
}

/// Loads a trade file into a topic: one message per trade line, keyed by symbol. A line that does not parse
/// is sent as it is, without a key, so consumers see the bad record (and route it to their dead letters).
pub fn produce(o: &ProduceOpts) -> Result<Produced> {
    if o.input == MsgFormat::Binary {
        bail!("the input file is CSV or JSON lines");
    }
    let mut p = props(&o.brokers, &[]);
    p.extend([
        ("enable.idempotence".into(), "true".into()),
        ("linger.ms".into(), "5".into()),
        ("message.timeout.ms".into(), "60000".into()),
    ]);
    p.extend(o.extra.iter().cloned());
    let producer: BaseProducer<Delivery> =
        client_config(&p).create_with_context(Delivery::new("produce")).context("creating the Kafka producer")?;
    partitions_of(producer.client(), &o.topic, TIMEOUT).map_err(anyhow::Error::msg)?;
    let mut reader = if o.file.as_os_str() == "-" {
        LineReader::new(Box::new(std::io::stdin()))
    } else {
        LineReader::open(&o.file).with_context(|| format!("opening {}", o.file.display()))?
    };
    let symbols = Symbols::new();
    let mut interner = Interner::new(symbols.clone(), usize::MAX);
    let mut names = SymbolCache::new(symbols);
    let fields = FieldNames::default();
    let json_names: [&str; 5] = [&fields.ts, &fields.symbol, &fields.price, &fields.qty, &fields.side];
    let mut out = Vec::with_capacity(256);
    let mut done = Produced::default();
    let started = Instant::now();
    let mut skip_header = o.header && o.input == MsgFormat::Csv;
    while let Some((_, line)) = reader.next_line()? {
        if std::mem::take(&mut skip_header) || line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let parsed = match o.input {
            MsgFormat::Csv => parse_csv_line(line, o.unit, 0, &mut interner),
            _ => parse_json_object(line, &json_names, o.unit, 0, &mut interner),
        };
        let payload: &[u8] = match (&parsed, o.format) {
            (Err(_), _) => {
                done.unparsed += 1;
                line
            }
            (Ok(_), None) => line,
            (Ok(t), Some(f)) if f == o.input => {
                let _ = t;
                line
            }
            (Ok(t), Some(f)) => {
                out.clear();
                encode_trade(f, names.get(t.instrument), t, o.unit, &mut out);
                &out
            }
        };
        let key = parsed.as_ref().ok().map(|t| names.get(t.instrument).to_string());
        // Open-loop pacing: message i is due at i / rate, however late the ones before it went out.
        if let Some(ns) = (done.messages as u128 * 1_000_000_000).checked_div(o.rate as u128) {
            let due = started + Duration::from_nanos(ns as u64);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        let mut rec: BaseRecord<'_, str, [u8]> = BaseRecord::to(&o.topic).payload(payload);
        if let Some(k) = &key {
            rec = rec.key(k.as_str());
        }
        loop {
            match producer.send(rec) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    rec = r;
                    producer.poll(Duration::from_millis(5));
                }
                Err((e, _)) => bail!("producing to `{}`: {e}", o.topic),
            }
        }
        producer.poll(Duration::ZERO);
        done.messages += 1;
        if let Some(f) = producer.context().failure() {
            bail!("producing to `{}`: {f}", o.topic);
        }
    }
    producer.flush(Duration::from_secs(120)).context("waiting for the broker to take every message")?;
    if let Some(f) = producer.context().failure() {
        bail!("producing to `{}`: {f}", o.topic);
    }
    done.elapsed = started.elapsed();
    Ok(done)
}

/// Writes `t` in format `f` (text formats with timestamps in `unit`, binary in nanoseconds).
fn encode_trade(f: MsgFormat, symbol: &str, t: &Trade, unit: TimeUnit, out: &mut Vec<u8>) {
    let ts = unit.from_nanos(t.ts);
    match f {
        MsgFormat::Binary => binary::encode_trade(symbol, t, out),
        MsgFormat::Csv => {
            let _ = write!(out, "{ts},{symbol},{},{},{}", t.price, t.qty, t.side.as_str());
        }
        MsgFormat::Jsonl => {
            let sym = serde_json::to_string(symbol).unwrap_or_default();
            let _ = write!(
                out,
                r#"{{"ts":{ts},"symbol":{sym},"price":"{}","qty":{},"side":"{}"}}"#,
                t.price,
                t.qty,
                t.side.as_str()
            );
        }
    }
}

/// What `consume` prints.
pub struct ConsumeOpts {
    pub brokers: String,
    pub topic: String,
    /// Stop after this many messages (0: no limit).
    pub count: u64,
    /// Stop when no message came for this long (None: wait forever).
    pub idle: Option<Duration>,
    /// Prefix each message with partition, offset, key and headers.
    pub meta: bool,
    /// Read as a member of this consumer group, from its committed offsets, committing what was printed
    /// (instead of reading every partition without a group).
    pub group: Option<String>,
    /// Without a group: only this partition (default: all).
    pub partition: Option<i32>,
    /// Without a group: where to start in each partition read.
    pub from: StartAt,
    pub extra: Vec<(String, String)>,
}

/// Where `consume` starts reading a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    Beginning,
    End,
    Offset(i64),
}

impl std::str::FromStr for StartAt {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "beginning" => Ok(StartAt::Beginning),
            "end" => Ok(StartAt::End),
            n => n
                .parse::<i64>()
                .ok()
                .filter(|&o| o >= 0)
                .map(StartAt::Offset)
                .ok_or_else(|| format!("`{s}` is not beginning, end or an offset (a number >= 0)")),
        }
    }
}

/// Prints a topic, one message per line; binary records are printed as JSON (prices as decimal strings,
/// timestamps in nanoseconds). Without a group it reads the partitions chosen from the offset chosen; with one,
/// it joins that group, starts from its committed offsets and commits what it printed.
pub fn consume(o: &ConsumeOpts, w: &mut dyn Write) -> Result<u64> {
    let mut p = props(&o.brokers, &[]);
    p.extend([
        ("group.id".into(), o.group.clone().unwrap_or_else(|| "ticklane-consume".into())),
        ("enable.auto.commit".into(), o.group.is_some().to_string()),
        ("auto.offset.reset".into(), "earliest".into()),
        ("fetch.wait.max.ms".into(), "10".into()),
        ("fetch.queue.backoff.ms".into(), "1".into()),
    ]);
    p.extend(o.extra.iter().cloned());
    let consumer: BaseConsumer<Logged> =
        client_config(&p).create_with_context(Logged("consume".into())).context("creating the Kafka consumer")?;
    let n = partitions_of(consumer.client(), &o.topic, TIMEOUT).map_err(anyhow::Error::msg)?;
    if o.group.is_some() {
        if o.partition.is_some() || o.from != StartAt::Beginning {
            bail!("--partition and --offset read without a group; a group starts from its committed offsets");
        }
        consumer.subscribe(&[&o.topic])?;
    } else {
        let parts: Vec<i32> = match o.partition {
            Some(p) if p < 0 || p as usize >= n => bail!("topic `{}` has partitions 0..{}, not {p}", o.topic, n - 1),
            Some(p) => vec![p],
            None => (0..n as i32).collect(),
        };
        let at = match o.from {
            StartAt::Beginning => Offset::Beginning,
            StartAt::End => Offset::End,
            StartAt::Offset(x) => Offset::Offset(x),
        };
        let mut tpl = TopicPartitionList::new();
        for part in parts {
            tpl.add_partition_offset(&o.topic, part, at)?;
        }
        consumer.assign(&tpl)?;
    }
    let mut seen = 0u64;
    let mut last = Instant::now();
    let mut line = Vec::with_capacity(512);
    while o.count == 0 || seen < o.count {
        match consumer.poll(Duration::from_millis(50)) {
            None => {
                if o.idle.is_some_and(|d| last.elapsed() >= d) {
                    break;
                }
            }
            Some(Err(e)) => tracing::warn!("consume: {e}"),
            Some(Ok(m)) => {
                last = Instant::now();
                seen += 1;
                line.clear();
                if o.meta {
                    let key = m.key().map(String::from_utf8_lossy).unwrap_or_default();
                    let _ = write!(line, "{}\t{}\t{}\t", m.partition(), m.offset(), key);
                    if let Some(h) = m.headers() {
                        for (i, hd) in h.iter().enumerate() {
                            let v = hd.value.map(String::from_utf8_lossy).unwrap_or_default();
                            let _ = write!(line, "{}{}={}", if i > 0 { "," } else { "" }, hd.key, v);
                        }
                    }
                    line.push(b'\t');
                }
                print_payload(m.payload().unwrap_or(b""), &mut line);
                line.push(b'\n');
                w.write_all(&line)?;
            }
        }
    }
    w.flush()?;
    Ok(seen)
}

/// A message as text: a binary record as JSON, anything else as it is.
pub fn print_payload(payload: &[u8], out: &mut Vec<u8>) {
    let Ok(d) = binary::decode(payload) else {
        out.extend_from_slice(payload.strip_suffix(b"\n").unwrap_or(payload));
        return;
    };
    let s = |x: &str| serde_json::to_string(x).unwrap_or_default();
    let opt = |p: Option<Price>| p.map_or("null".to_string(), |p| format!("\"{p}\""));
    let _ = match d {
        Decoded::Trade { symbol, ts, price, qty, side, .. } => write!(
            out,
            r#"{{"kind":"trade","symbol":{},"ts":{ts},"price":"{price}","qty":{qty},"side":"{}"}}"#,
            s(symbol),
            side.as_str()
        ),
        Decoded::Window {
            symbol,
            start,
            end,
            open,
            high,
            low,
            close,
            volume,
            count,
            pv,
            vwap,
            twap,
            first_ts,
            last_ts,
            fire,
            ..
        } => write!(
            out,
            r#"{{"kind":"window","symbol":{},"window_start":{start},"window_end":{end},"open":"{open}","high":"{high}","low":"{low}","close":"{close}","volume":{volume},"count":{count},"pv":"{}","vwap":{},"twap":{},"first_ts":{first_ts},"last_ts":{last_ts},"fire":{fire}}}"#,
            s(symbol),
            {
                let mut b = Vec::new();
                crate::event::write_fixed(pv, Price::DECIMALS, &mut b);
                String::from_utf8_lossy(&b).into_owned()
            },
            opt(vwap),
            opt(twap)
        ),
        Decoded::Late { symbol, ts, price, qty, side, seq, trade_kind, watermark, reason, .. } => write!(
            out,
            r#"{{"kind":"late","symbol":{},"ts":{ts},"price":"{price}","qty":{qty},"side":"{}","trade_kind":"{}","seq":{seq},"watermark":{},"reason":"{}"}}"#,
            s(symbol),
            side.as_str(),
            trade_kind.as_str(),
            watermark.map_or("null".into(), |w| w.to_string()),
            match reason {
                LateReason::BehindWatermark => "behind_watermark",
                LateReason::PreviousSession => "previous_session",
            }
        ),
        Decoded::Tick { symbol, ts, price, qty, side, seq, trade_kind, vwap, ema, volume, count, .. } => write!(
            out,
            r#"{{"kind":"tick","symbol":{},"ts":{ts},"price":"{price}","qty":{qty},"side":"{}","trade_kind":"{}","seq":{seq},"vwap":"{vwap}","ema":"{ema}","volume":{volume},"count":{count}}}"#,
            s(symbol),
            side.as_str(),
            trade_kind.as_str()
        ),
        Decoded::Reject { line, reason, text, .. } => write!(
            out,
            r#"{{"kind":"reject","line":{line},"reason":{},"text":{}}}"#,
            s(binary::describe_reject_code(reason)),
            s(&String::from_utf8_lossy(text))
        ),
    };
}
