//! Validation: the parsed config becomes a [`Plan`] (what to build), or a list of `(key, reason)` errors.

use super::LogConfig;
use super::{
    AlertsConfig, CheckpointConfig, Config, EventTime, ExactlyOnce, FieldNames, Format, KafkaProps, MetricsConfig,
    PipelineConfig, SinkConfig, SinkType, SourceConfig, SourceType, WindowType,
};
use crate::continuous::SessionReset;
use crate::event::Nanos;
use crate::record::StreamId;
use crate::sink::parts::PartNames;
use crate::sink::Column;
use crate::stream::EventKind;
use crate::time::{format_duration, TimeUnit};
use crate::window::{Value, WindowKind, WindowSpec};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// What a validated config builds.
#[derive(Debug, Clone)]
pub struct Plan {
    pub pipeline: PipelineConfig,
    pub metrics: MetricsConfig,
    pub alerts: AlertsConfig,
    pub log: LogConfig,
    pub checkpoint: CheckpointConfig,
    pub sources: Vec<SourcePlan>,
    pub operators: Vec<OpPlan>,
    pub streams: Vec<StreamDef>,
    pub sinks: Vec<SinkPlan>,
}

#[derive(Debug, Clone)]
pub struct SourcePlan {
    pub name: String,
    pub unit: TimeUnit,
    /// `max_out_of_orderness`, ns.
    pub bound: Nanos,
    pub idle_timeout: Option<Nanos>,
    pub reject_stream: StreamId,
    pub kind: SourceKindPlan,
}

#[derive(Debug, Clone)]
pub enum SourceKindPlan {
    Csv { path: PathBuf, header: bool, speed: Option<f64> },
    Jsonl { path: PathBuf, fields: FieldNames, speed: Option<f64> },
    Synthetic(SynthPlan),
    Kafka(KafkaSourcePlan),
    Itch(ItchPlan),
}

/// An ITCH 5.0 source: where the feed is, how its times become epoch times, and what it emits.
#[derive(Debug, Clone)]
pub struct ItchPlan {
    pub path: PathBuf,
    pub speed: Option<f64>,
    pub date: String,
    pub time_zone: String,
    pub depth: usize,
    /// Which message types become trades, by type byte (`E`, `C`, `P`, `Q`).
    pub trades: Vec<u8>,
    pub quotes: bool,
    /// Send L2 level updates: some `[[stream]] events = "level"` reads this source (otherwise none are made).
    pub levels: bool,
    /// A live MoldUDP64 stream instead of the file: the address to bind.
    pub listen: Option<std::net::SocketAddr>,
    /// IPv4 multicast group to join (with `listen`).
    pub group: Option<std::net::Ipv4Addr>,
    /// The interface (its IPv4 address) to join the group on.
    pub interface: Option<std::net::Ipv4Addr>,
    /// SO_RCVBUF to ask for, bytes.
    pub recv_buffer: usize,
    /// The sender's schedule, to time messages from when they were due (with `listen`).
    pub schedule: Option<Schedule>,
}

/// A paced sender's schedule: sequence `q` was due at `start + (q − first_sequence) × 10⁹ / rate` ns of the
/// host's CLOCK_MONOTONIC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    pub start: u64,
    pub rate: u64,
    pub first_sequence: u64,
}

impl Schedule {
    /// When the message of sequence `q` was due (CLOCK_MONOTONIC ns).
    #[inline]
    pub fn due(&self, q: u64) -> u64 {
        let i = q.saturating_sub(self.first_sequence) as u128;
        self.start.saturating_add((i * 1_000_000_000 / self.rate.max(1) as u128).min(u64::MAX as u128) as u64)
    }
}

/// A Kafka source: what to subscribe to, how messages decode, and the consumer's properties.
#[derive(Debug, Clone)]
pub struct KafkaSourcePlan {
    pub topics: Vec<String>,
    pub format: Format,
    pub fields: FieldNames,
    pub event_time: EventTime,
    pub dead_letter: Option<String>,
    /// ns.
    pub commit_interval: Nanos,
    /// librdkafka properties: ticklane's defaults overridden by the file's.
    pub props: Vec<(String, String)>,
}

/// A Kafka sink's topic and producer.
#[derive(Debug, Clone)]
pub struct KafkaSinkPlan {
    pub topic: String,
    /// With checkpoints: read back and skip what was written after the restored checkpoint.
    pub replay: bool,
    /// Output in Kafka transactions, each committed when the checkpoint whose barrier closed it completes
    /// (`transactional.id` is in `props`).
    pub transactional: bool,
    /// Transactions: how many producers take turns (`transactional.id` + `-0`, `-1`, …): one per checkpoint
    /// that may still be waiting for its completion, and one writing. `checkpoint.tolerable_failures` + 2.
    pub transaction_producers: usize,
    /// Sinks with the same producer name share one producer.
    pub producer: String,
    /// librdkafka properties: ticklane's defaults overridden by the file's.
    pub props: Vec<(String, String)>,
}

/// ticklane's consumer defaults (docs/configuration.md says why each).
pub const CONSUMER_DEFAULTS: [(&str, &str); 6] = [
    ("enable.auto.commit", "false"),
    ("enable.auto.offset.store", "false"),
    ("auto.offset.reset", "earliest"),
    ("fetch.wait.max.ms", "10"),
    ("fetch.queue.backoff.ms", "1"),
    ("partition.assignment.strategy", "cooperative-sticky"),
];

/// ticklane's producer defaults (docs/configuration.md says why each).
pub const PRODUCER_DEFAULTS: [(&str, &str); 4] =
    [("enable.idempotence", "true"), ("acks", "all"), ("linger.ms", "0"), ("message.timeout.ms", "0")];

/// `defaults` overridden by the `kafka` table of the file, as text; errors name `key.<property>`.
fn kafka_props(
    key: &str,
    defaults: &[(&str, &str)],
    given: Option<&KafkaProps>,
    errs: &mut Errors,
) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = defaults.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    for (k, val) in given.into_iter().flatten() {
        let text = match val {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Float(f) => f.to_string(),
            _ => {
                errs.push((format!("{key}.\"{k}\""), "must be a string, integer, boolean or number".into()));
                continue;
            }
        };
        match v.iter_mut().find(|(d, _)| d == k) {
            Some(e) => e.1 = text,
            None => v.push((k.clone(), text)),
        }
    }
    v
}

fn prop<'a>(props: &'a [(String, String)], k: &str) -> Option<&'a str> {
    props.iter().find(|(p, _)| p == k).map(|(_, v)| v.as_str())
}

/// The in-process generator's parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthPlan {
    /// 0 = unbounded.
    pub events: u64,
    /// Events per wall-clock second; 0 = unpaced.
    pub rate: u64,
    pub instruments: u32,
    pub partitions: u32,
    /// Unpaced: events per second of event time.
    pub event_rate: u64,
    pub disorder: Nanos,
    pub disorder_fraction: f64,
    pub late_fraction: f64,
    pub seed: u64,
    pub zipf: f64,
    /// Unpaced: the first event time (ns).
    pub start: Nanos,
}

#[derive(Debug, Clone)]
pub struct OpPlan {
    pub name: String,
    pub kind: OpKind,
    pub stream: StreamId,
    /// The late side output (a pass-through stream has none: its own stream, never written).
    pub late_stream: StreamId,
    /// Bit i set: consumes source i.
    pub inputs: u64,
}

#[derive(Debug, Clone)]
pub enum OpKind {
    Window(WindowSpec),
    Continuous {
        half_life: Nanos,
        reset: Option<SessionReset>,
    },
    /// `[[stream]]`: the events of one kind, as rows.
    Stream(EventKind),
}

/// The kinds of record a stream carries (its schema).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    Window,
    Late,
    Tick,
    Reject,
    /// Trades passed through (`[[stream]] events = "trade"`).
    Trade,
    /// Top-of-book quotes passed through.
    Quote,
    /// L2 level updates passed through.
    Level,
}

#[derive(Debug, Clone)]
pub struct StreamDef {
    pub name: String,
    pub kind: StreamKind,
    /// Timestamps are written in this unit.
    pub unit: TimeUnit,
    /// The columns written when a sink does not choose.
    pub default_columns: Vec<Column>,
}

#[derive(Debug, Clone)]
pub struct SinkPlan {
    pub stream: StreamId,
    pub kind: SinkType,
    pub path: Option<PathBuf>,
    pub format: Format,
    pub columns: Vec<Column>,
    pub header: bool,
    /// Part files committed on checkpoint completion instead of one file (csv and jsonl, checkpoints on).
    pub parts: bool,
    pub influxdb: Option<super::InfluxPlan>,
    pub kafka: Option<KafkaSinkPlan>,
    pub postgres: Option<super::PostgresPlan>,
}

pub const MAX_SOURCES: usize = 64;

const DEFAULT_AGGREGATES: [&str; 8] = ["open", "high", "low", "close", "volume", "vwap", "twap", "count"];
/// Sessions leave TWAP out by default: it keeps every trade of an open session, and a busy instrument's
/// session may never close.
const DEFAULT_SESSION_AGGREGATES: [&str; 9] =
    ["open", "high", "low", "close", "volume", "vwap", "count", "first_ts", "last_ts"];
const AGGREGATES: [&str; 11] =
    ["open", "high", "low", "close", "volume", "vwap", "twap", "count", "pv", "first_ts", "last_ts"];

type Errors = Vec<(String, String)>;
/// librdkafka properties as (name, value) text.
type Props = Vec<(String, String)>;

struct Streams {
    defs: Vec<StreamDef>,
    by_name: HashMap<String, StreamId>,
}

impl Streams {
    fn add(&mut self, key: String, def: StreamDef, errs: &mut Errors) -> StreamId {
        if self.by_name.contains_key(&def.name) {
            errs.push((key, format!("stream name `{}` is already used", def.name)));
        }
        let id = self.defs.len() as StreamId;
        self.by_name.insert(def.name.clone(), id);
        self.defs.push(def);
        id
    }
}

fn check_name(key: String, name: &str, errs: &mut Errors) {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.') {
        errs.push((key, format!("`{name}` is not a valid name (letters, digits, `_`, `-`, `.`)")));
    }
}

fn multiple_of(key: String, what: &str, ns: Nanos, unit: TimeUnit, errs: &mut Errors) {
    if ns % unit.nanos() != 0 {
        errs.push((
            key,
            format!(
                "{what} {} is not a whole number of the source's time unit ({}): results could not be written exactly",
                format_duration(ns),
                unit.name()
            ),
        ));
    }
}

/// Keys set on a source that do not apply to its type.
fn foreign_keys(s: &SourceConfig) -> Vec<&'static str> {
    let mut v = Vec::new();
    let file = matches!(s.kind, SourceType::Csv | SourceType::Jsonl | SourceType::Itch);
    let itch = s.kind == SourceType::Itch;
    let synth = s.kind == SourceType::Synthetic;
    let kafka = s.kind == SourceType::Kafka;
    let checks: [(&'static str, bool, bool); 30] = [
        ("listen", s.listen.is_some(), itch),
        ("recv_buffer", s.recv_buffer.is_some(), itch),
        ("schedule", s.schedule.is_some(), itch),
        ("group", s.group.is_some(), itch),
        ("interface", s.interface.is_some(), itch),
        ("date", s.date.is_some(), itch),
        ("time_zone", s.time_zone.is_some(), itch),
        ("depth", s.depth.is_some(), itch),
        ("trades", s.trades.is_some(), itch),
        ("quotes", s.quotes.is_some(), itch),
        ("path", s.path.is_some(), file),
        ("header", s.header.is_some(), s.kind == SourceType::Csv),
        ("speed", s.speed.is_some(), file),
        ("fields", s.fields.is_some(), s.kind == SourceType::Jsonl || kafka),
        ("topics", s.topics.is_some(), kafka),
        ("format", s.format.is_some(), kafka),
        ("event_time", s.event_time.is_some(), kafka),
        ("dead_letter", s.dead_letter.is_some(), kafka),
        ("commit_interval", s.commit_interval.is_some(), kafka),
        ("kafka", s.kafka.is_some(), kafka),
        ("events", s.events.is_some(), synth),
        ("rate", s.rate.is_some(), synth),
        ("instruments", s.instruments.is_some(), synth),
        ("partitions", s.partitions.is_some(), synth),
        ("event_rate", s.event_rate.is_some(), synth),
        ("disorder", s.disorder.is_some(), synth),
        ("disorder_fraction", s.disorder_fraction.is_some(), synth),
        ("late_fraction", s.late_fraction.is_some(), synth),
        ("seed", s.seed.is_some(), synth),
        ("zipf", s.zipf.is_some(), synth),
    ];
    for (k, set, applies) in checks {
        if set && !applies {
            v.push(k);
        }
    }
    if s.start.is_some() && !synth {
        v.push("start");
    }
    v
}

fn source_type_name(t: SourceType) -> &'static str {
    match t {
        SourceType::Csv => "csv",
        SourceType::Jsonl => "jsonl",
        SourceType::Synthetic => "synthetic",
        SourceType::Kafka => "kafka",
        SourceType::Itch => "itch",
    }
}

fn window_type_name(t: WindowType) -> &'static str {
    match t {
        WindowType::Tumbling => "tumbling",
        WindowType::Sliding => "sliding",
        WindowType::Session => "session",
    }
}

/// Validates `cfg`.
pub fn plan(cfg: &Config) -> Result<Plan, Errors> {
    let mut errs: Errors = Vec::new();
    let mut streams = Streams { defs: Vec::new(), by_name: HashMap::new() };
    let p = &cfg.pipeline;

    // --- pipeline ---
    if p.workers == 0 {
        errs.push(("pipeline.workers".into(), "must be at least 1".into()));
    }
    if p.workers > 1024 {
        errs.push(("pipeline.workers".into(), format!("{} shard workers is more than 1024", p.workers)));
    }
    if p.emitter == super::EmitterMode::Inline {
        if p.workers != 1 {
            errs.push((
                "pipeline.emitter".into(),
                format!("\"inline\" needs workers = 1 (the one shard writes the sinks), not {}", p.workers),
            ));
        }
        if p.cores.emitter.is_some() {
            errs.push(("pipeline.cores.emitter".into(), "there is no emitter thread with emitter = \"inline\"".into()));
        }
    }
    if p.ring_capacity < 2 {
        errs.push(("pipeline.ring_capacity".into(), "must be at least 2".into()));
    }
    if p.max_instruments == 0 || p.max_instruments > u32::MAX as usize {
        errs.push(("pipeline.max_instruments".into(), "must be between 1 and 4294967295".into()));
    }
    let cores: Vec<usize> = core_affinity::get_core_ids().unwrap_or_default().into_iter().map(|c| c.id).collect();
    let check_core = |key: String, c: usize, errs: &mut Errors| {
        if !cores.contains(&c) {
            errs.push((key, format!("core {c} does not exist on this machine (cores: {cores:?})")));
        }
    };
    for (i, &c) in p.cores.sources.iter().enumerate() {
        check_core(format!("pipeline.cores.sources[{i}]"), c, &mut errs);
    }
    if p.cores.sources.len() > cfg.sources.len() {
        errs.push((
            "pipeline.cores.sources".into(),
            format!("{} cores for {} sources", p.cores.sources.len(), cfg.sources.len()),
        ));
    }
    for (i, &c) in p.cores.workers.iter().enumerate() {
        check_core(format!("pipeline.cores.workers[{i}]"), c, &mut errs);
    }
    if p.cores.workers.len() > p.workers {
        errs.push((
            "pipeline.cores.workers".into(),
            format!("{} cores for {} workers", p.cores.workers.len(), p.workers),
        ));
    }
    if let Some(c) = p.cores.emitter {
        check_core("pipeline.cores.emitter".into(), c, &mut errs);
    }
    if let Some(c) = p.cores.metrics {
        check_core("pipeline.cores.metrics".into(), c, &mut errs);
    }

    // --- metrics ---
    if cfg.metrics.interval.0 < 1_000_000 {
        errs.push(("metrics.interval".into(), "must be at least 1ms".into()));
    }
    let al = &cfg.alerts;
    for (key, d) in
        [("watermark_lag", al.watermark_lag), ("partition_stalled", al.partition_stalled), ("ring_full", al.ring_full)]
    {
        if d.0 < 0 {
            errs.push((format!("alerts.{key}"), "must not be negative (\"0s\" turns the alert off)".into()));
        }
    }
    for (i, l) in al.latency.iter().enumerate() {
        let timed = crate::metrics::STAGES.iter().filter(|s| **s != "checkpoint_bytes");
        if !timed.clone().any(|s| *s == l.stage) {
            let names: Vec<&str> = timed.copied().collect();
            errs.push((
                format!("alerts.latency[{i}].stage"),
                format!("`{}` is not a stage: one of {}", l.stage, names.join(", ")),
            ));
        }
        if !(l.quantile > 0.0 && l.quantile <= 1.0) {
            errs.push((
                format!("alerts.latency[{i}].quantile"),
                format!("{} is not in (0, 1] (0.99 is p99)", l.quantile),
            ));
        }
        if l.above.0 <= 0 {
            errs.push((format!("alerts.latency[{i}].above"), "must be positive".into()));
        }
    }
    if let Some(a) = &cfg.metrics.listen {
        if let Err(e) = a.parse::<std::net::SocketAddr>() {
            errs.push(("metrics.listen".into(), format!("`{a}` is not ADDRESS:PORT (e.g. \"127.0.0.1:9187\"): {e}")));
        }
    }
    if let Some(f) = &cfg.log.filter {
        if let Err(e) = tracing_subscriber::EnvFilter::builder().parse(f) {
            errs.push(("log.filter".into(), format!("`{f}` is not a log filter (e.g. \"info\"): {e}")));
        }
    }
    if !cfg.metrics.latency && !al.latency.is_empty() {
        errs.push(("alerts.latency[0]".into(), "needs latency timed: [metrics] latency = false times nothing".into()));
    }
    if cfg.metrics.latency_sample == 0 {
        errs.push(("metrics.latency_sample".into(), "must be at least 1 (1 = time every event)".into()));
    }

    // --- sources ---
    if cfg.sources.is_empty() {
        errs.push(("source".into(), "no [[source]]: a pipeline needs at least one".into()));
    }
    if cfg.sources.len() > MAX_SOURCES {
        errs.push(("source".into(), format!("at most {MAX_SOURCES} sources")));
    }
    let mut sources = Vec::new();
    let mut source_idx: HashMap<&str, usize> = HashMap::new();
    for (i, s) in cfg.sources.iter().enumerate() {
        let k = |f: &str| format!("source[{i}].{f}");
        check_name(k("name"), &s.name, &mut errs);
        if source_idx.insert(&s.name, i).is_some() {
            errs.push((k("name"), format!("source name `{}` is already used", s.name)));
        }
        for f in foreign_keys(s) {
            errs.push((k(f), format!("does not apply to a {} source", source_type_name(s.kind))));
        }
        let unit = s.ts_unit.unwrap_or(if matches!(s.kind, SourceType::Synthetic | SourceType::Itch) {
            TimeUnit::Nanos
        } else {
            TimeUnit::Millis
        });
        let bound = s.max_out_of_orderness.0;
        multiple_of(k("max_out_of_orderness"), "max_out_of_orderness", bound, unit, &mut errs);
        if let Some(t) = s.idle_timeout {
            if t.0 <= 0 {
                errs.push((k("idle_timeout"), "must be positive (leave it out to never mark partitions idle)".into()));
            }
        }
        if let Some(sp) = s.speed {
            if !(sp.is_finite() && sp > 0.0) {
                errs.push((k("speed"), format!("{sp} is not a positive factor (1.0 = recorded speed)")));
            }
        }
        let rejects = s.rejects.clone().unwrap_or_else(|| format!("{}_rejects", s.name));
        check_name(k("rejects"), &rejects, &mut errs);
        let reject_stream = streams.add(
            k("rejects"),
            StreamDef {
                name: rejects,
                kind: StreamKind::Reject,
                unit,
                default_columns: Column::defaults(StreamKind::Reject, &[], false),
            },
            &mut errs,
        );
        let need_path = |errs: &mut Errors| -> PathBuf {
            match &s.path {
                Some(p) => p.clone(),
                None => {
                    errs.push((k("path"), format!("a {} source needs a path", source_type_name(s.kind))));
                    PathBuf::new()
                }
            }
        };
        let kind = match s.kind {
            SourceType::Csv => {
                SourceKindPlan::Csv { path: need_path(&mut errs), header: s.header.unwrap_or(true), speed: s.speed }
            }
            SourceType::Jsonl => {
                let fields = s.fields.clone().unwrap_or_default();
                SourceKindPlan::Jsonl { path: need_path(&mut errs), fields, speed: s.speed }
            }
            SourceType::Synthetic => {
                let frac = |key: &str, v: Option<f64>, d: f64, errs: &mut Errors| {
                    let v = v.unwrap_or(d);
                    if !(0.0..=1.0).contains(&v) {
                        errs.push((k(key), format!("{v} is not a fraction between 0 and 1")));
                    }
                    v
                };
                let sp = SynthPlan {
                    events: s.events.unwrap_or(1_000_000),
                    rate: s.rate.unwrap_or(0),
                    instruments: s.instruments.unwrap_or(100),
                    partitions: s.partitions.unwrap_or(1),
                    event_rate: s.event_rate.unwrap_or(1_000_000),
                    disorder: s.disorder.map_or(0, |d| d.0),
                    disorder_fraction: frac("disorder_fraction", s.disorder_fraction, 0.2, &mut errs),
                    late_fraction: frac("late_fraction", s.late_fraction, 0.0, &mut errs),
                    seed: s.seed.unwrap_or(42),
                    zipf: s.zipf.unwrap_or(1.0),
                    start: match s.start {
                        Some(v) => unit.to_nanos(v).unwrap_or_else(|| {
                            errs.push((k("start"), format!("{v} {} does not fit in i64 nanoseconds", unit.name())));
                            0
                        }),
                        None => 1_700_000_000_000_000_000,
                    },
                };
                if sp.disorder_fraction + sp.late_fraction > 1.0 {
                    errs.push((k("late_fraction"), "disorder_fraction + late_fraction exceeds 1".into()));
                }
                if sp.instruments == 0 || sp.instruments as usize > p.max_instruments {
                    errs.push((
                        k("instruments"),
                        format!("must be between 1 and pipeline.max_instruments ({})", p.max_instruments),
                    ));
                }
                if sp.partitions == 0 || sp.partitions > 1024 {
                    errs.push((k("partitions"), "must be between 1 and 1024".into()));
                }
                if sp.event_rate == 0 || sp.event_rate > 1_000_000_000 {
                    errs.push((
                        k("event_rate"),
                        "must be between 1 and 1000000000 events per second of event time".into(),
                    ));
                }
                if sp.rate > 100_000_000 {
                    errs.push((k("rate"), "more than 100000000 events/s cannot be paced; use 0 for unpaced".into()));
                }
                if !(sp.zipf.is_finite() && sp.zipf >= 0.0) {
                    errs.push((k("zipf"), "must be a non-negative exponent".into()));
                }
                if sp.disorder < 0 {
                    errs.push((k("disorder"), "must not be negative".into()));
                }
                SourceKindPlan::Synthetic(sp)
            }
            SourceType::Kafka => SourceKindPlan::Kafka(kafka_source(i, s, &mut errs)),
            SourceType::Itch => {
                let date = s.date.clone().unwrap_or_else(|| {
                    errs.push((k("date"), "missing: the trading day the feed's times count from (YYYY-MM-DD)".into()));
                    "1970-01-01".into()
                });
                let time_zone = s.time_zone.clone().unwrap_or_else(|| crate::itch::DEFAULT_TZ.to_string());
                if let Err(e) = crate::itch::SessionClock::new(&date, &time_zone) {
                    let key = if matches!(e, crate::itch::TimeError::Zone(_)) { "time_zone" } else { "date" };
                    errs.push((k(key), e.to_string()));
                }
                let depth = s.depth.unwrap_or(5);
                if !(1..=1000).contains(&depth) {
                    errs.push((k("depth"), format!("{depth} levels: must be between 1 and 1000")));
                }
                let mut trades = Vec::new();
                for (j, t) in s
                    .trades
                    .clone()
                    .unwrap_or_else(|| ["E", "C", "P", "Q"].map(String::from).to_vec())
                    .iter()
                    .enumerate()
                {
                    match t.as_str() {
                        "E" | "C" | "P" | "Q" => trades.push(t.as_bytes()[0]),
                        _ => errs.push((
                            format!("source[{i}].trades[{j}]"),
                            format!("`{t}` is not a message type that prints a trade (one of E, C, P, Q)"),
                        )),
                    }
                }
                let listen = s.listen.as_deref().and_then(|a| {
                    a.parse::<std::net::SocketAddr>()
                        .map_err(|e| errs.push((k("listen"), format!("`{a}` is not ADDRESS:PORT: {e}"))))
                        .ok()
                });
                let ip = |key: &str, v: &Option<String>, errs: &mut Errors| {
                    v.as_deref().and_then(|a| {
                        a.parse::<std::net::Ipv4Addr>()
                            .map_err(|e| errs.push((k(key), format!("`{a}` is not an IPv4 address: {e}"))))
                            .ok()
                    })
                };
                let group = ip("group", &s.group, &mut errs);
                let interface = ip("interface", &s.interface, &mut errs);
                if group.is_some_and(|g| !g.is_multicast()) {
                    errs.push((k("group"), "not a multicast address (224.0.0.0/4)".into()));
                }
                let recv_buffer = s.recv_buffer.unwrap_or(8 << 20);
                if !(4096..=1 << 30).contains(&recv_buffer) {
                    errs.push((k("recv_buffer"), format!("{recv_buffer} bytes: must be between 4096 and 1 GiB")));
                }
                let schedule = s.schedule.map(|sc| Schedule {
                    start: sc.start,
                    rate: sc.rate,
                    first_sequence: sc.first_sequence.unwrap_or(1),
                });
                if let Some(sc) = &schedule {
                    if !(1..=1_000_000_000).contains(&sc.rate) {
                        errs.push((k("schedule.rate"), "must be between 1 and 1000000000 messages per second".into()));
                    }
                    if sc.start == 0 {
                        errs.push((
                            k("schedule.start"),
                            "must be a time of CLOCK_MONOTONIC in ns (as given to itch-send --start-at)".into(),
                        ));
                    }
                }
                if s.listen.is_none() {
                    for (key, set) in [
                        ("group", s.group.is_some()),
                        ("interface", s.interface.is_some()),
                        ("recv_buffer", s.recv_buffer.is_some()),
                        ("schedule", s.schedule.is_some()),
                    ] {
                        if set {
                            errs.push((k(key), "only with `listen` (a live MoldUDP64 stream)".into()));
                        }
                    }
                }
                if s.listen.is_some() && (s.path.is_some() || s.speed.is_some()) {
                    let key = if s.path.is_some() { "path" } else { "speed" };
                    errs.push((k(key), "a live stream (`listen`) has no file: give one or the other".into()));
                }
                SourceKindPlan::Itch(ItchPlan {
                    listen,
                    group,
                    interface,
                    recv_buffer: recv_buffer as usize,
                    schedule,
                    path: if s.listen.is_some() { PathBuf::new() } else { need_path(&mut errs) },
                    speed: s.speed,
                    date,
                    time_zone,
                    depth,
                    trades,
                    quotes: s.quotes.unwrap_or(true),
                    levels: false,
                })
            }
        };
        sources.push(SourcePlan {
            name: s.name.clone(),
            unit,
            bound,
            idle_timeout: s.idle_timeout.map(|d| d.0),
            reject_stream,
            kind,
        });
    }

    // The inputs of an operator and the time unit its results are written in.
    let inputs_of = |key: String, input: &Option<String>, errs: &mut Errors| -> (u64, TimeUnit) {
        match input {
            Some(name) => match source_idx.get(name.as_str()) {
                Some(&i) => (1u64 << i, sources.get(i).map_or(TimeUnit::Millis, |s: &SourcePlan| s.unit)),
                None => {
                    errs.push((key, format!("no source is named `{name}`")));
                    (0, TimeUnit::Millis)
                }
            },
            None => {
                let unit = sources.first().map_or(TimeUnit::Millis, |s| s.unit);
                if sources.iter().any(|s| s.unit != unit) {
                    errs.push((key, "the sources have different ts_unit: name the one this reads with `input`".into()));
                }
                (if sources.len() >= 64 { u64::MAX } else { (1u64 << sources.len()) - 1 }, unit)
            }
        }
    };

    // Whether an operator with these inputs reads an exchange feed (its trades have a kind to write).
    let reads_feed = |inputs: u64| {
        sources
            .iter()
            .enumerate()
            .any(|(i, s)| i < 64 && (inputs >> i) & 1 == 1 && matches!(s.kind, SourceKindPlan::Itch(_)))
    };

    // --- windows ---
    let mut operators = Vec::new();
    for (i, w) in cfg.windows.iter().enumerate() {
        let k = |f: &str| format!("window[{i}].{f}");
        check_name(k("name"), &w.name, &mut errs);
        let (inputs, unit) = inputs_of(k("input"), &w.input, &mut errs);
        let pos = |key: &str, d: Option<crate::time::Dur>, errs: &mut Errors| -> Nanos {
            match d {
                None => {
                    errs.push((k(key), format!("a {} window needs `{key}`", window_type_name(w.kind))));
                    1
                }
                Some(d) if d.0 <= 0 => {
                    errs.push((k(key), format!("{key} must be positive, not {}", d)));
                    1
                }
                Some(d) => {
                    multiple_of(k(key), key, d.0, unit, errs);
                    d.0
                }
            }
        };
        let not_for = |key: &str, set: bool, errs: &mut Errors| {
            if set {
                errs.push((k(key), format!("does not apply to a {} window", window_type_name(w.kind))));
            }
        };
        let offset = w.offset.map_or(0, |d| d.0);
        let kind = match w.kind {
            WindowType::Tumbling => {
                not_for("slide", w.slide.is_some(), &mut errs);
                not_for("gap", w.gap.is_some(), &mut errs);
                let size = pos("size", w.size, &mut errs);
                if offset.abs() >= size {
                    errs.push((
                        k("offset"),
                        format!("|offset| must be smaller than the size ({})", format_duration(size)),
                    ));
                }
                WindowKind::Tumbling { size, offset }
            }
            WindowType::Sliding => {
                not_for("gap", w.gap.is_some(), &mut errs);
                let size = pos("size", w.size, &mut errs);
                let slide = pos("slide", w.slide, &mut errs);
                if slide > size {
                    errs.push((
                        k("slide"),
                        format!(
                            "slide {} is larger than size {}: windows would leave gaps",
                            format_duration(slide),
                            format_duration(size)
                        ),
                    ));
                }
                if offset.abs() >= slide {
                    errs.push((
                        k("offset"),
                        format!("|offset| must be smaller than the slide ({})", format_duration(slide)),
                    ));
                }
                WindowKind::Sliding { size, slide, offset }
            }
            WindowType::Session => {
                not_for("size", w.size.is_some(), &mut errs);
                not_for("slide", w.slide.is_some(), &mut errs);
                not_for("offset", w.offset.is_some(), &mut errs);
                WindowKind::Session { gap: pos("gap", w.gap, &mut errs) }
            }
        };
        if offset != 0 {
            multiple_of(k("offset"), "offset", offset, unit, &mut errs);
        }
        if w.allowed_lateness.0 < 0 {
            errs.push((k("allowed_lateness"), "must not be negative".into()));
        }
        multiple_of(k("allowed_lateness"), "allowed_lateness", w.allowed_lateness.0, unit, &mut errs);
        let defaults: &[&str] =
            if w.kind == WindowType::Session { &DEFAULT_SESSION_AGGREGATES } else { &DEFAULT_AGGREGATES };
        let aggs: Vec<String> =
            w.aggregates.clone().unwrap_or_else(|| defaults.iter().map(|s| s.to_string()).collect());
        for (j, a) in aggs.iter().enumerate() {
            if !AGGREGATES.contains(&a.as_str()) {
                errs.push((
                    format!("window[{i}].aggregates[{j}]"),
                    format!("unknown aggregate `{a}` (one of: {})", AGGREGATES.join(", ")),
                ));
            }
        }
        let twap = aggs.iter().any(|a| a == "twap");
        let value = match w.value.as_deref() {
            None => Value::Trade,
            Some(v) => Value::parse(v).unwrap_or_else(|| {
                errs.push((k("value"), format!("unknown value `{v}` (one of: {})", Value::NAMES.join(", "))));
                Value::Trade
            }),
        };
        if value != Value::Trade {
            for (j, a) in aggs.iter().enumerate() {
                if matches!(a.as_str(), "volume" | "vwap") {
                    errs.push((
                        format!("window[{i}].aggregates[{j}]"),
                        format!(
                            "`{a}` needs trades; a window of quote {}s has no volume (open, high, low, close, twap \
                             and count apply)",
                            Value::NAMES[value.code() as usize]
                        ),
                    ));
                }
            }
        }
        let spec = WindowSpec { kind, lateness: w.allowed_lateness.0, twap, value };
        let cols = Column::defaults(StreamKind::Window, &aggs, false);
        let stream = streams.add(
            k("name"),
            StreamDef { name: w.name.clone(), kind: StreamKind::Window, unit, default_columns: cols },
            &mut errs,
        );
        let late_name = w.late.clone().unwrap_or_else(|| format!("{}_late", w.name));
        check_name(k("late"), &late_name, &mut errs);
        let late_stream = streams.add(
            k("late"),
            StreamDef {
                name: late_name,
                kind: StreamKind::Late,
                unit,
                default_columns: Column::defaults(StreamKind::Late, &[], reads_feed(inputs)),
            },
            &mut errs,
        );
        operators.push(OpPlan { name: w.name.clone(), kind: OpKind::Window(spec), stream, late_stream, inputs });
    }

    // --- continuous ---
    for (i, c) in cfg.continuous.iter().enumerate() {
        let k = |f: &str| format!("continuous[{i}].{f}");
        check_name(k("name"), &c.name, &mut errs);
        let (inputs, unit) = inputs_of(k("input"), &c.input, &mut errs);
        if c.ema_half_life.0 <= 0 {
            errs.push((k("ema_half_life"), "must be positive".into()));
        }
        let reset = match (c.session_reset, c.session_offset) {
            (Some(every), off) => {
                if every.0 <= 0 {
                    errs.push((k("session_reset"), "must be positive".into()));
                }
                Some(SessionReset { every: every.0.max(1), offset: off.map_or(0, |d| d.0) })
            }
            (None, Some(_)) => {
                errs.push((k("session_offset"), "needs session_reset".into()));
                None
            }
            (None, None) => None,
        };
        let stream = streams.add(
            k("name"),
            StreamDef {
                name: c.name.clone(),
                kind: StreamKind::Tick,
                unit,
                default_columns: Column::defaults(StreamKind::Tick, &[], reads_feed(inputs)),
            },
            &mut errs,
        );
        let late_name = c.late.clone().unwrap_or_else(|| format!("{}_late", c.name));
        let late_stream = streams.add(
            k("late"),
            StreamDef {
                name: late_name,
                kind: StreamKind::Late,
                unit,
                default_columns: Column::defaults(StreamKind::Late, &[], reads_feed(inputs)),
            },
            &mut errs,
        );
        operators.push(OpPlan {
            name: c.name.clone(),
            kind: OpKind::Continuous { half_life: c.ema_half_life.0.max(1), reset },
            stream,
            late_stream,
            inputs,
        });
    }

    // --- pass-through streams ---
    let mut level_sources = 0u64;
    for (i, st) in cfg.streams.iter().enumerate() {
        let k = |f: &str| format!("stream[{i}].{f}");
        check_name(k("name"), &st.name, &mut errs);
        let (inputs, unit) = inputs_of(k("input"), &st.input, &mut errs);
        let Some(events) = EventKind::parse(&st.events) else {
            errs.push((
                k("events"),
                format!("unknown events `{}` (one of: {})", st.events, EventKind::NAMES.join(", ")),
            ));
            continue;
        };
        let kind = match events {
            EventKind::Trade => StreamKind::Trade,
            EventKind::Quote => StreamKind::Quote,
            EventKind::Level => StreamKind::Level,
        };
        if events != EventKind::Trade {
            // Only an exchange feed's books make quotes and levels.
            let read: Vec<usize> = (0..sources.len().min(64)).filter(|&j| (inputs >> j) & 1 == 1).collect();
            let itch = |j: &usize| matches!(sources[*j].kind, SourceKindPlan::Itch(_));
            match (&st.input, read.iter().find(|j| !itch(j))) {
                (Some(_), Some(&j)) => errs.push((
                    k("input"),
                    format!(
                        "source `{}` is a {} source: only itch sources have {}s (their order books make them)",
                        sources[j].name,
                        source_type_name(cfg.sources[j].kind),
                        events.name()
                    ),
                )),
                (None, _) if !read.iter().any(itch) && !read.is_empty() => errs.push((
                    k("input"),
                    format!(
                        "no source is an itch source: only itch sources have {}s (their order books make them)",
                        events.name()
                    ),
                )),
                _ => {}
            }
            for j in read.iter().filter(|j| itch(j)) {
                if events == EventKind::Level {
                    level_sources |= 1 << j;
                } else if matches!(&sources[*j].kind, SourceKindPlan::Itch(ip) if !ip.quotes) {
                    errs.push((
                        k("input"),
                        format!("source `{}` has quotes = false: it sends no quotes to write", sources[*j].name),
                    ));
                }
            }
        }
        let stream = streams.add(
            k("name"),
            StreamDef {
                name: st.name.clone(),
                kind,
                unit,
                default_columns: Column::defaults(kind, &[], reads_feed(inputs)),
            },
            &mut errs,
        );
        operators.push(OpPlan {
            name: st.name.clone(),
            kind: OpKind::Stream(events),
            stream,
            late_stream: stream,
            inputs,
        });
    }

    // Level updates cost a source a message each: only the sources a level stream reads make them.
    for (j, sp) in sources.iter_mut().enumerate().take(64) {
        if let SourceKindPlan::Itch(ip) = &mut sp.kind {
            ip.levels = (level_sources >> j) & 1 == 1;
        }
    }

    // --- sinks ---
    let mut sinks = Vec::new();
    let mut paths: HashMap<PathBuf, usize> = HashMap::new();
    for (i, s) in cfg.sinks.iter().enumerate() {
        let k = |f: &str| format!("sink[{i}].{f}");
        let Some(&stream) = streams.by_name.get(&s.stream) else {
            let mut names: Vec<&str> = streams.defs.iter().map(|d| d.name.as_str()).collect();
            names.sort();
            errs.push((k("stream"), format!("no stream is named `{}` (streams: {})", s.stream, names.join(", "))));
            continue;
        };
        let def = &streams.defs[stream as usize];
        let kafka = kafka_sink(i, s, &mut errs);
        let format = match (s.kind, s.format) {
            (SinkType::Kafka, f) => f.unwrap_or(Format::Jsonl),
            (_, Some(Format::Binary)) => {
                errs.push((k("format"), "binary records are written to kafka sinks only".into()));
                Format::Csv
            }
            (SinkType::Stdout | SinkType::Null, f) => f.unwrap_or(Format::Csv),
            (SinkType::Csv | SinkType::Postgres, None) => Format::Csv,
            (SinkType::Jsonl, None) => Format::Jsonl,
            (SinkType::Influxdb, None) => Format::Csv,
            (_, Some(_)) => {
                errs.push((
                    k("format"),
                    "only applies to stdout and kafka sinks (csv and jsonl sinks say it in `type`)".into(),
                ));
                Format::Csv
            }
        };
        if format == Format::Binary && matches!(def.kind, StreamKind::Quote | StreamKind::Level) {
            errs.push((
                k("format"),
                format!(
                    "stream `{}` is a {} stream: binary records (docs/formats.md) have no layout for it; write it \
                     as \"jsonl\" or \"csv\"",
                    def.name,
                    if def.kind == StreamKind::Quote { "quote" } else { "level" }
                ),
            ));
        }
        match (s.kind, &s.path) {
            (SinkType::Stdout | SinkType::Null, Some(_)) => {
                errs.push((k("path"), "a stdout or null sink takes no path".into()))
            }
            (SinkType::Csv | SinkType::Jsonl, None) => errs.push((k("path"), "a file sink needs a path".into())),
            (SinkType::Csv | SinkType::Jsonl, Some(p)) => {
                if let Some(j) = paths.insert(p.clone(), i) {
                    errs.push((k("path"), format!("sink[{j}] writes to the same file")));
                }
            }
            _ => {}
        }
        if s.header.is_some() && format != Format::Csv && s.kind != SinkType::Kafka {
            errs.push((k("header"), "only applies to CSV".into()));
        }
        if s.parts.is_some() && !matches!(s.kind, SinkType::Csv | SinkType::Jsonl) {
            errs.push((k("parts"), "only applies to csv and jsonl sinks (files)".into()));
        }
        let columns = match &s.columns {
            None => def.default_columns.clone(),
            Some(cols) => {
                let mut v = Vec::new();
                for (j, c) in cols.iter().enumerate() {
                    match Column::parse(c, def.kind) {
                        Ok(col) => v.push(col),
                        Err(e) => errs.push((format!("sink[{i}].columns[{j}]"), e)),
                    }
                }
                if v.is_empty() && errs.is_empty() {
                    errs.push((k("columns"), "no columns".into()));
                }
                v
            }
        };
        let influxdb = super::influxdb::plan(i, s, def, &columns, &mut errs);
        let postgres = super::postgres::plan(i, s, def, &columns, cfg.pipeline.emitter, &mut errs);
        sinks.push(SinkPlan {
            stream,
            kind: s.kind,
            path: s.path.clone(),
            format,
            columns,
            influxdb,
            header: s.header.unwrap_or(true),
            parts: s.parts.unwrap_or(false) && matches!(s.kind, SinkType::Csv | SinkType::Jsonl),
            kafka,
            postgres,
        });
    }

    // A sink writing part files deletes the files named as its parts on a restore: no other sink's file.
    for (i, s) in cfg.sinks.iter().enumerate().filter(|(_, s)| s.parts == Some(true)) {
        let Some(path) = &s.path else { continue };
        let Ok(names) = PartNames::new(path) else {
            errs.push((format!("sink[{i}].path"), "needs a file name to name the parts after".into()));
            continue;
        };
        for (j, other) in cfg.sinks.iter().enumerate().filter(|&(j, _)| j != i) {
            let Some(p) = &other.path else { continue };
            let same_dir = p.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new(".")) == names.dir();
            if same_dir && p.file_name().and_then(|n| n.to_str()).and_then(|n| names.parse(n)).is_some() {
                errs.push((format!("sink[{j}].path"), format!("is named as a part file of sink[{i}] (parts = true)")));
            }
        }
    }

    let mut producers: HashMap<&str, (usize, &Props)> = HashMap::new();
    for (i, sp) in sinks.iter().enumerate() {
        let Some(kp) = &sp.kafka else { continue };
        match producers.get(kp.producer.as_str()) {
            Some(&(j, props)) if *props != kp.props => errs.push((
                format!("sink[{i}].kafka"),
                format!(
                    "sink[{j}] uses producer `{}` with other properties: sinks sharing a producer give it the same `kafka` table",
                    kp.producer
                ),
            )),
            Some(_) => {}
            None => {
                producers.insert(&kp.producer, (i, &kp.props));
            }
        }
    }

    let c = &cfg.checkpoint;
    if c.interval.0 < 1_000_000 {
        errs.push(("checkpoint.interval".into(), "must be at least 1ms".into()));
    }
    if c.timeout.0 <= 0 {
        errs.push(("checkpoint.timeout".into(), "must be positive".into()));
    }
    if c.retain == 0 {
        errs.push(("checkpoint.retain".into(), "must be at least 1 (the checkpoint to resume from)".into()));
    }
    transactional_producers(cfg, &mut sinks, &mut errs);
    if c.dir.is_some() {
        for (i, s) in cfg.sources.iter().enumerate() {
            if s.kind == SourceType::Itch && s.listen.is_some() {
                // A restore replays from the checkpoint's position: a live feed would need the messages sent
                // since, which only a MoldUDP64 re-request server could give.
                errs.push((
                    format!("source[{i}].listen"),
                    "a live itch source (MoldUDP64) cannot be checkpointed: a restore would need the messages \
                     between the checkpoint and now, which needs a MoldUDP64 re-request server (not built); an \
                     itch source reading a file (`path`) can. Leave out [checkpoint] dir or read a file"
                        .into(),
                ));
            }
        }
    }
    if c.dir.is_none() {
        for (i, s) in cfg.sinks.iter().enumerate() {
            if let Some(m @ (ExactlyOnce::Replay | ExactlyOnce::Transactions)) = s.exactly_once {
                let m = if m == ExactlyOnce::Replay { "replay" } else { "transactions" };
                errs.push((
                    format!("sink[{i}].exactly_once"),
                    format!("`{m}` works from checkpoints: set [checkpoint] dir"),
                ));
            }
            if s.parts == Some(true) && matches!(s.kind, SinkType::Csv | SinkType::Jsonl) {
                errs.push((
                    format!("sink[{i}].parts"),
                    "a part is committed when a checkpoint completes: set [checkpoint] dir".into(),
                ));
            }
        }
    }
    if c.dir.is_some() && cfg.pipeline.fire_on_shutdown {
        // A restart resumes the windows that were open at the stop: fired at the stop, they were written
        // partial, and a Kafka sink that replays would find them differ from the complete results (a file
        // sink is cut back to the checkpoint and rewrites them).
        if let Some(i) =
            cfg.sinks.iter().position(|s| s.kind == SinkType::Kafka && s.exactly_once != Some(ExactlyOnce::None))
        {
            errs.push((
                "pipeline.fire_on_shutdown".into(),
                format!(
                    "cannot be true with [checkpoint] dir and a Kafka sink that replays (sink[{i}]): a restart \
                     resumes the windows open at the stop, whose results fired at the stop would be partial"
                ),
            ));
        }
    }
    if c.dir.is_some() {
        // With checkpoints a Kafka source's offsets live in the checkpoints and are committed when one
        // completes: its own commit cadence would mean nothing.
        for (i, s) in cfg.sources.iter().enumerate() {
            if s.commit_interval.is_some() {
                errs.push((
                    format!("source[{i}].commit_interval"),
                    "has no effect with [checkpoint] dir set: offsets are committed when a checkpoint completes".into(),
                ));
            }
        }
    }

    if errs.is_empty() {
        Ok(Plan {
            pipeline: cfg.pipeline.clone(),
            metrics: cfg.metrics.clone(),
            alerts: cfg.alerts.clone(),
            log: cfg.log.clone(),
            checkpoint: cfg.checkpoint.clone(),
            sources,
            operators,
            streams: streams.defs,
            sinks,
        })
    } else {
        Err(errs)
    }
}

/// A topic name Kafka accepts: 1–249 of letters, digits, `.`, `_`, `-`.
fn check_topic(key: String, t: &str, errs: &mut Errors) {
    if t.is_empty() || t.len() > 249 || !t.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')) {
        errs.push((key, format!("`{t}` is not a valid Kafka topic name (1–249 of letters, digits, `.`, `_`, `-`)")));
    }
}

fn kafka_source(i: usize, s: &SourceConfig, errs: &mut Errors) -> KafkaSourcePlan {
    let k = |f: &str| format!("source[{i}].{f}");
    let topics = s.topics.clone().unwrap_or_default();
    if topics.is_empty() {
        errs.push((k("topics"), "a kafka source needs at least one topic".into()));
    }
    for (j, t) in topics.iter().enumerate() {
        check_topic(format!("source[{i}].topics[{j}]"), t, errs);
        if topics[..j].contains(t) {
            errs.push((format!("source[{i}].topics[{j}]"), format!("topic `{t}` is listed twice")));
        }
    }
    if let Some(d) = &s.dead_letter {
        check_topic(k("dead_letter"), d, errs);
        if topics.contains(d) {
            errs.push((k("dead_letter"), format!("`{d}` is also read by this source: a bad message would loop")));
        }
    }
    let commit_interval = s.commit_interval.map_or(1_000_000_000, |d| d.0);
    if commit_interval < 1_000_000 {
        errs.push((k("commit_interval"), "must be at least 1ms".into()));
    }
    let format = s.format.unwrap_or(Format::Jsonl);
    if s.fields.is_some() && format != Format::Jsonl {
        errs.push((k("fields"), "only applies to format = \"jsonl\"".into()));
    }
    let event_time = s.event_time.unwrap_or_default();
    if event_time == EventTime::Kafka && s.ts_unit.is_some_and(|u| u != TimeUnit::Millis) {
        errs.push((k("ts_unit"), "Kafka message timestamps are milliseconds: leave ts_unit out or set \"ms\"".into()));
    }
    let props = kafka_props(&k("kafka"), &CONSUMER_DEFAULTS, s.kafka.as_ref(), errs);
    for need in ["bootstrap.servers", "group.id"] {
        if prop(&props, need).is_none_or(str::is_empty) {
            errs.push((k("kafka"), format!("needs \"{need}\"")));
        }
    }
    if prop(&props, "enable.auto.commit") != Some("false") {
        errs.push((
            k("kafka.\"enable.auto.commit\""),
            "must stay false: ticklane commits an offset only once the results before it are durable".into(),
        ));
    }
    KafkaSourcePlan {
        topics,
        format,
        fields: s.fields.clone().unwrap_or_default(),
        event_time,
        dead_letter: s.dead_letter.clone(),
        commit_interval,
        props,
    }
}

/// The Kafka part of sink `i`, or None (with errors) for a kafka sink that lacks a topic.
/// Sinks sharing a producer share its transactions: all of them use transactions or none does. A
/// transactional producer gets a `transactional.id` unless the file gives one: `ticklane-<producer>-<crc>`,
/// the CRC32C of the checkpoint directory's absolute path, so that it is the same at every start of the job
/// and differs between jobs; its producers add `-0`, `-1`, … to it. A transaction lives from one barrier to
/// the completion of the next checkpoint, so the interval plus the timeout must stay below
/// `transaction.timeout.ms` (the broker aborts a transaction older than that).
fn transactional_producers(cfg: &Config, sinks: &mut [SinkPlan], errs: &mut Errors) {
    /// Apache Kafka's default `transaction.max.timeout.ms`.
    const MAX_TXN_TIMEOUT_MS: i64 = 900_000;
    let mut by_producer: HashMap<String, (usize, bool)> = HashMap::new();
    for (i, s) in sinks.iter().enumerate() {
        let Some(kp) = &s.kafka else { continue };
        match by_producer.get(&kp.producer) {
            Some(&(j, t)) if t != kp.transactional => errs.push((
                format!("sink[{i}].exactly_once"),
                format!(
                    "sink[{j}] shares producer `{}` and {} transactions: sinks sharing a producer share its \
                     transactions (name another producer)",
                    kp.producer,
                    if t { "uses" } else { "does not use" }
                ),
            )),
            Some(_) => {}
            None => {
                by_producer.insert(kp.producer.clone(), (i, kp.transactional));
            }
        }
    }
    let Some(dir) = &cfg.checkpoint.dir else { return };
    let abs = std::env::current_dir().map(|c| c.join(dir)).unwrap_or_else(|_| dir.clone());
    let crc = crc32c::crc32c(abs.to_string_lossy().as_bytes());
    let span = cfg.checkpoint.interval.0.saturating_add(cfg.checkpoint.timeout.0);
    for (i, s) in sinks.iter_mut().enumerate() {
        let Some(kp) = s.kafka.as_mut().filter(|k| k.transactional) else { continue };
        kp.transaction_producers = cfg.checkpoint.tolerable_failures as usize + 2;
        if prop(&kp.props, "transactional.id").is_none() {
            kp.props.push(("transactional.id".into(), format!("ticklane-{}-{crc:08x}", kp.producer)));
        }
        let span_ms = span / 1_000_000;
        let given = prop(&kp.props, "transaction.timeout.ms").and_then(|v| v.parse::<i64>().ok());
        // Room for a checkpoint that takes its whole timeout, and a margin; no more than Kafka's default
        // transaction.max.timeout.ms (a broker refuses a producer above its limit) while that leaves 10 s.
        let limit_ms = given.unwrap_or_else(|| {
            let twice = (span_ms * 2).max(60_000);
            if twice > MAX_TXN_TIMEOUT_MS && span_ms + 10_000 <= MAX_TXN_TIMEOUT_MS {
                MAX_TXN_TIMEOUT_MS
            } else {
                twice
            }
        });
        if given.is_none() {
            kp.props.push(("transaction.timeout.ms".into(), limit_ms.to_string()));
        }
        if prop(&kp.props, "socket.timeout.ms").is_none() {
            // librdkafka sets an unset socket.timeout.ms to transaction.timeout.ms − 100 and multiplies it by 1000
            // in an `int`: above 2,147,483 ms (a checkpoint interval of about 18 minutes) that overflows, every
            // request's deadline is already past, and requests still in flight are cut off and retried. Its own
            // default (60 s), or less below a shorter transaction timeout (it must not exceed it).
            kp.props.push(("socket.timeout.ms".into(), (limit_ms - 100).clamp(10, 60_000).to_string()));
        }
        if given.is_some() && span_ms >= limit_ms {
            errs.push((
                format!("sink[{i}].kafka.\"transaction.timeout.ms\""),
                format!(
                    "{limit_ms} ms is not above checkpoint.interval + checkpoint.timeout ({span_ms} ms): the broker \
                     would abort a transaction before its checkpoint"
                ),
            ));
        }
    }
}

fn kafka_sink(i: usize, s: &SinkConfig, errs: &mut Errors) -> Option<KafkaSinkPlan> {
    let k = |f: &str| format!("sink[{i}].{f}");
    if s.kind != SinkType::Kafka {
        for (f, set) in [
            ("topic", s.topic.is_some()),
            ("producer", s.producer.is_some()),
            ("kafka", s.kafka.is_some()),
            ("exactly_once", s.exactly_once.is_some()),
        ] {
            if set {
                errs.push((k(f), "only applies to a kafka sink".into()));
            }
        }
        return None;
    }
    if s.path.is_some() {
        errs.push((k("path"), "a kafka sink takes a topic, not a path".into()));
    }
    if s.header.is_some() {
        errs.push((k("header"), "a kafka sink writes one record per message, without a header".into()));
    }
    let Some(topic) = s.topic.clone() else {
        errs.push((k("topic"), "a kafka sink needs a topic".into()));
        return None;
    };
    check_topic(k("topic"), &topic, errs);
    let producer = s.producer.clone().unwrap_or_else(|| "default".into());
    check_name(k("producer"), &producer, errs);
    let props = kafka_props(&k("kafka"), &PRODUCER_DEFAULTS, s.kafka.as_ref(), errs);
    if prop(&props, "bootstrap.servers").is_none_or(str::is_empty) {
        errs.push((k("kafka"), "needs \"bootstrap.servers\"".into()));
    }
    let mode = s.exactly_once.unwrap_or(ExactlyOnce::Replay);
    let replay = mode != ExactlyOnce::None;
    let transactional = mode == ExactlyOnce::Transactions;
    Some(KafkaSinkPlan { topic, replay, transactional, transaction_producers: 0, producer, props })
}

#[cfg(test)]
mod tests {
    use super::Schedule;

    /// The socket timeout a transactional producer gets: librdkafka's own derivation from
    /// `transaction.timeout.ms` overflows an `int` for long checkpoint intervals.
    #[test]
    fn a_transactional_producer_gets_a_socket_timeout_within_librdkafkas_range() {
        let job = |interval: &str, kafka: &str| {
            format!(
                "[checkpoint]\ndir = \"chk\"\ninterval = \"{interval}\"\ntimeout = \"10s\"\n[[source]]\nname = \"s\"\ntype = \"synthetic\"\n\
                 [[window]]\nname = \"bars\"\ntype = \"tumbling\"\nsize = \"1s\"\n[[sink]]\nstream = \"bars\"\n\
                 type = \"kafka\"\ntopic = \"out\"\nexactly_once = \"transactions\"\n\
                 kafka = {{ \"bootstrap.servers\" = \"127.0.0.1:1\"{kafka} }}\n"
            )
        };
        let props = |text: &str| {
            let plan = crate::config::parse(text, "test").expect("a valid job");
            let kp = plan.sinks[0].kafka.clone().expect("a kafka sink");
            let get = |k: &str| kp.props.iter().find(|(key, _)| key == k).map(|(_, v)| v.parse::<i64>().unwrap());
            (get("transaction.timeout.ms"), get("socket.timeout.ms"))
        };
        // An hour between checkpoints: the transaction timeout is 2 × (1 h + 10 s); its − 100 ms × 1000 would
        // not fit an int.
        assert_eq!(props(&job("1h", "")), (Some(7_220_000), Some(60_000)));
        assert_eq!(props(&job("1s", "")), (Some(60_000), Some(59_900)));
        // Twice 10 min + 10 s is above Kafka's default limit of 15 minutes, which still leaves room.
        assert_eq!(props(&job("10m", "")).0, Some(900_000));
        assert_eq!(props(&job("890s", "")).0, Some(1_800_000), "15 minutes would leave no margin");
        assert_eq!(props(&job("1s", ", \"transaction.timeout.ms\" = 61050")), (Some(61_050), Some(60_000)));
        assert_eq!(
            props(&job("1s", ", \"transaction.timeout.ms\" = 50000")).1,
            Some(49_900),
            "below the transaction timeout"
        );
        assert_eq!(props(&job("1s", ", \"socket.timeout.ms\" = 1234")).1, Some(1_234), "the file's own");
    }

    #[test]
    fn a_schedule_says_when_each_sequence_was_due() {
        let s = Schedule { start: 5_000, rate: 1_000_000, first_sequence: 1 };
        assert_eq!(s.due(1), 5_000);
        assert_eq!(s.due(2), 6_000);
        assert_eq!(s.due(1_000_001), 5_000 + 1_000_000_000);
        assert_eq!(s.due(0), 5_000, "a sequence before the first counts as the first");
        let third = Schedule { start: 0, rate: 3, first_sequence: 10 };
        assert_eq!(third.due(11), 333_333_333, "rounded down to the ns");
    }
}
