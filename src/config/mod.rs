//! The TOML configuration: types that mirror the file (serde, `deny_unknown_fields`), and validation that
//! turns them into a [`Plan`] or into errors naming the key, its line and the reason.
//!
//! docs/configuration.md documents every key.

mod influxdb;
mod locate;
mod plan;
mod postgres;

pub use influxdb::{InfluxAuth, InfluxConfig, InfluxPlan};
pub use plan::{
    ItchPlan, KafkaSinkPlan, KafkaSourcePlan, OpKind, OpPlan, Plan, Schedule, SinkPlan, SourceKindPlan, SourcePlan,
    StreamDef, StreamKind, SynthPlan, CONSUMER_DEFAULTS, PRODUCER_DEFAULTS,
};
pub use postgres::{PostgresConfig, PostgresPlan, KEY as POSTGRES_KEY};

use crate::pipeline::Wait;
use crate::time::{Dur, TimeUnit};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The embedded default job (`ticklane run` without `--config`): a paced synthetic feed, 1 s bars on stdout.
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

/// A configuration error, located in the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}:{line}:{column}: {}{reason}", key.as_ref().map(|k| format!("key `{k}`: ")).unwrap_or_default())]
pub struct ConfigError {
    /// The file (or `<default>` for the embedded configuration).
    pub origin: String,
    /// 1-based line and column of the key (or of what could not be parsed).
    pub line: usize,
    pub column: usize,
    /// Dotted path of the key, e.g. `window[1].slide` (arrays of tables are indexed from 0).
    pub key: Option<String>,
    pub reason: String,
}

/// Several errors, printed one per line.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<ConfigError>),
}

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub pipeline: PipelineConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
    #[serde(default)]
    pub checkpoint: CheckpointConfig,
    #[serde(default, rename = "source")]
    pub sources: Vec<SourceConfig>,
    #[serde(default, rename = "window")]
    pub windows: Vec<WindowConfig>,
    #[serde(default, rename = "continuous")]
    pub continuous: Vec<ContinuousConfig>,
    #[serde(default, rename = "stream")]
    pub streams: Vec<StreamConfig>,
    #[serde(default, rename = "sink")]
    pub sinks: Vec<SinkConfig>,
    #[serde(default)]
    pub alerts: AlertsConfig,
    #[serde(default)]
    pub log: LogConfig,
}

/// `[log]`: what the job logs (to stderr; the journal under systemd). Re-read by a reload (SIGHUP).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// A tracing filter, as `RUST_LOG` takes it (`"info"`, `"warn,ticklane::checkpoint=debug"`); wins over
    /// `RUST_LOG` when set.
    pub filter: Option<String>,
}

/// `[alerts]`: conditions the metrics thread checks once per `[metrics] interval`; each raises a WARN log
/// line, a metric and a dashboard entry while it holds, and clears when it no longer does
/// (docs/operations.md, "Alerts"). A duration of `"0s"` turns its alert off.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// A live source partition's watermark trails the wall clock by more than this.
    #[serde(default = "five_seconds")]
    pub watermark_lag: Dur,
    /// A source partition that is neither idle nor ended has not moved its watermark for this long.
    #[serde(default = "thirty_seconds")]
    pub partition_stalled: Dur,
    /// A stage waited for room in a full ring for more than this within one metrics interval.
    #[serde(default = "hundred_ms")]
    pub ring_full: Dur,
    /// Latency bounds: a stage's quantile over one metrics interval above a bound.
    #[serde(default)]
    pub latency: Vec<LatencyAlertConfig>,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            watermark_lag: five_seconds(),
            partition_stalled: thirty_seconds(),
            ring_full: hundred_ms(),
            latency: Vec::new(),
        }
    }
}

/// `[[alerts.latency]]`: `stage`'s `quantile` over one metrics interval above `above`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencyAlertConfig {
    /// A latency stage (`end_to_end`, `shard`, `ingest_to_shard`, `shard_to_sink`, `checkpoint_pause`,
    /// `checkpoint_duration`).
    pub stage: String,
    /// In (0, 1], e.g. 0.99.
    pub quantile: f64,
    pub above: Dur,
}

fn five_seconds() -> Dur {
    Dur(5_000_000_000)
}
fn thirty_seconds() -> Dur {
    Dur(30_000_000_000)
}
fn hundred_ms() -> Dur {
    Dur(100_000_000)
}

/// `[pipeline]`: threads, rings, waiting.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Shard worker threads.
    #[serde(default = "one")]
    pub workers: usize,
    /// Slots per SPSC ring.
    #[serde(default = "ring_capacity")]
    pub ring_capacity: usize,
    /// How consumers wait on empty rings: "spin", "spin-then-yield" or "park" for every consumer, or a
    /// table `{ workers = …, emitter = … }`.
    #[serde(default)]
    pub wait: WaitConfig,
    /// "thread": an emitter thread writes the sinks; "inline": the one shard worker writes them itself (no
    /// hand-off per result: lowest latency; needs `workers = 1`; a slow sink stalls the worker directly).
    #[serde(default)]
    pub emitter: EmitterMode,
    /// On SIGINT/SIGTERM, fire every open window (as if the input had ended) instead of leaving them.
    #[serde(default)]
    pub fire_on_shutdown: bool,
    /// Most distinct instruments (or other keys); a record with one more is rejected.
    #[serde(default = "max_instruments")]
    pub max_instruments: usize,
    /// Optional core pinning.
    #[serde(default)]
    pub cores: CoresConfig,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            workers: 1,
            ring_capacity: ring_capacity(),
            wait: WaitConfig::default(),
            emitter: EmitterMode::default(),
            fire_on_shutdown: false,
            max_instruments: max_instruments(),
            cores: CoresConfig::default(),
        }
    }
}

/// `pipeline.emitter`: who writes to the sinks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmitterMode {
    #[default]
    Thread,
    Inline,
}

/// `pipeline.wait`: one strategy for every ring consumer, or one per role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitConfig {
    All(Wait),
    PerRole(WaitPerRole),
}

/// By hand rather than `untagged`, whose error ("data did not match any variant") names neither the values
/// nor the shape expected.
impl<'de> Deserialize<'de> for WaitConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let expected = "expected \"spin\", \"spin-then-yield\" or \"park\", or a table { workers = …, emitter = … }";
        match toml::Value::deserialize(d)? {
            v @ toml::Value::String(_) => {
                Wait::deserialize(v).map(WaitConfig::All).map_err(|e| D::Error::custom(e.to_string().trim_end()))
            }
            v @ toml::Value::Table(_) => WaitPerRole::deserialize(v)
                .map(WaitConfig::PerRole)
                .map_err(|e| D::Error::custom(e.to_string().trim_end())),
            other => Err(D::Error::custom(format!("{} is not a wait strategy: {expected}", other.type_str()))),
        }
    }
}

impl Default for WaitConfig {
    fn default() -> Self {
        WaitConfig::All(Wait::default())
    }
}

impl WaitConfig {
    pub fn workers(&self) -> Wait {
        match self {
            WaitConfig::All(w) => *w,
            WaitConfig::PerRole(r) => r.workers,
        }
    }

    pub fn emitter(&self) -> Wait {
        match self {
            WaitConfig::All(w) => *w,
            WaitConfig::PerRole(r) => r.emitter,
        }
    }
}

/// `[pipeline.wait]` as a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitPerRole {
    #[serde(default)]
    pub workers: Wait,
    #[serde(default)]
    pub emitter: Wait,
}

/// `[pipeline.cores]`: which core each thread is pinned to (unlisted threads are not pinned).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoresConfig {
    /// One core per source, in `[[source]]` order.
    #[serde(default)]
    pub sources: Vec<usize>,
    /// One core per shard worker.
    #[serde(default)]
    pub workers: Vec<usize>,
    pub emitter: Option<usize>,
    pub metrics: Option<usize>,
}

/// `[metrics]`: latency histograms and the live line.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Histogram interval (live line, interval log).
    #[serde(default = "one_second")]
    pub interval: Dur,
    /// HdrHistogram interval log to write (none by default).
    pub histogram_log: Option<PathBuf>,
    /// Print a line of throughput, lag and latency to stderr every interval.
    #[serde(default = "yes")]
    pub live: bool,
    /// Time every n-th event (1 = every event). The default, 4, keeps timing's cost on the hot path under
    /// 3 % of a light workload's (BENCHMARKS.md, "Metrics cost") and still gives p99.99 over a 1 s interval
    /// 25 samples past it at 1 M events/s.
    #[serde(default = "default_latency_sample")]
    pub latency_sample: u32,
    /// Time events at all: `false` leaves the per-event latency recording out of the hot path (the counters
    /// stay).
    #[serde(default = "yes")]
    pub latency: bool,
    /// Print the latency table at exit.
    #[serde(default = "yes")]
    pub summary: bool,
    /// Serve the live metrics (Prometheus text at `/metrics`) on this ADDRESS:PORT; off unless set
    /// (docs/operations.md).
    pub listen: Option<String>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            interval: one_second(),
            histogram_log: None,
            live: true,
            latency_sample: default_latency_sample(),
            latency: true,
            summary: true,
            listen: None,
        }
    }
}

/// `[checkpoint]`: consistent snapshots of the whole pipeline's state (docs/checkpoints.md). Off unless `dir`
/// is set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointConfig {
    /// Where checkpoints are written (one directory per checkpoint); the newest valid one is resumed from.
    pub dir: Option<PathBuf>,
    /// Time between the starts of two checkpoints.
    #[serde(default = "ten_seconds")]
    pub interval: Dur,
    /// Complete checkpoints kept; older ones are deleted once a newer one completes.
    #[serde(default = "three")]
    pub retain: usize,
    /// A checkpoint not complete after this long is abandoned (and counts as a failure).
    #[serde(default = "one_minute")]
    pub timeout: Dur,
    /// Consecutive failed checkpoints tolerated; one more stops the job with an error.
    #[serde(default = "three")]
    pub tolerable_failures: u32,
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        Self { dir: None, interval: ten_seconds(), retain: 3, timeout: one_minute(), tolerable_failures: 3 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceType {
    Csv,
    Jsonl,
    Synthetic,
    /// Topics of a Kafka cluster, read as a consumer group member.
    Kafka,
    /// A NASDAQ TotalView-ITCH 5.0 feed (a sample file), rebuilt into order books.
    Itch,
}

/// Where a Kafka source takes event time from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventTime {
    /// The record's own timestamp field (`fields.ts`, or the binary record's `ts`).
    #[default]
    Payload,
    /// The Kafka message timestamp (milliseconds; CreateTime or LogAppendTime as the topic says).
    Kafka,
}

/// librdkafka properties passed through unchanged (`bootstrap.servers`, `group.id`, `sasl.*` …). Values may
/// be strings, integers or booleans; they are handed to librdkafka as text.
pub type KafkaProps = std::collections::BTreeMap<String, toml::Value>;

/// `[[source]]`. Which keys apply depends on `type` (docs/configuration.md); the others are rejected.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: SourceType,
    /// Files: the path.
    pub path: Option<PathBuf>,
    /// Unit of integer timestamps (and of the timestamps in this source's results): s, ms, us, ns.
    pub ts_unit: Option<TimeUnit>,
    /// CSV: the first line is a header (default true).
    pub header: Option<bool>,
    /// The watermark's bound: `W = max_ts − bound − 1`.
    #[serde(default)]
    pub max_out_of_orderness: Dur,
    /// A partition without events for this long stops holding the watermark back.
    pub idle_timeout: Option<Dur>,
    /// Files: replay paced at recorded speed × this factor (absent: as fast as possible).
    pub speed: Option<f64>,
    /// JSON lines: field names.
    pub fields: Option<FieldNames>,
    /// Name of the stream malformed records go to (default `<name>_rejects`).
    pub rejects: Option<String>,
    // --- synthetic ---
    /// Number of events (0 = unbounded).
    pub events: Option<u64>,
    /// Events per second of wall-clock time (0 = unpaced). Paced events carry wall-clock event times.
    pub rate: Option<u64>,
    pub instruments: Option<u32>,
    pub partitions: Option<u32>,
    /// Unpaced: events per second of event time.
    pub event_rate: Option<u64>,
    /// How far behind the newest event a disordered one may be.
    pub disorder: Option<Dur>,
    /// Fraction of events displaced by up to `disorder`.
    pub disorder_fraction: Option<f64>,
    /// Fraction of very late events (5–120 s behind).
    pub late_fraction: Option<f64>,
    pub seed: Option<u64>,
    /// Zipf exponent of instrument popularity (0 = uniform).
    pub zipf: Option<f64>,
    /// Unpaced: first event time, in `ts_unit` since the epoch.
    pub start: Option<i64>,
    // --- kafka ---
    /// Topics to subscribe to.
    pub topics: Option<Vec<String>>,
    /// Message format: jsonl (default), csv or binary.
    pub format: Option<Format>,
    /// Event time from the payload (default) or from the Kafka message timestamp.
    pub event_time: Option<EventTime>,
    /// Topic that messages which do not decode are copied to, with headers saying where they came from.
    pub dead_letter: Option<String>,
    /// How often the results of consumed messages are made durable and their offsets committed (default 1s).
    pub commit_interval: Option<Dur>,
    /// librdkafka consumer properties.
    pub kafka: Option<KafkaProps>,
    // --- itch ---
    /// The trading day the feed's nanoseconds since midnight count from (YYYY-MM-DD).
    pub date: Option<String>,
    /// The venue's time zone (IANA name; default America/New_York).
    pub time_zone: Option<String>,
    /// Book levels per side the imbalance sums over (default 5).
    pub depth: Option<usize>,
    /// Which executions become trades: any of E, C, P, Q (default all four).
    pub trades: Option<Vec<String>>,
    /// Emit a quote when an instrument's top of book or imbalance changes (default true).
    pub quotes: Option<bool>,
    /// A live MoldUDP64 stream instead of `path`: the ADDRESS:PORT to bind.
    pub listen: Option<String>,
    /// IPv4 multicast group to join (with `listen`).
    pub group: Option<String>,
    /// The IPv4 address of the interface to join the group on (default: the kernel's choice).
    pub interface: Option<String>,
    /// SO_RCVBUF of the `listen` socket, bytes (default 8 MiB; Linux grants at most `net.core.rmem_max`).
    pub recv_buffer: Option<u64>,
    /// With `listen`, for measuring: the sender's open-loop schedule, so latency counts from when each
    /// message was due instead of when its packet was received.
    pub schedule: Option<ScheduleConfig>,
}

/// `schedule` of an itch source: a paced sender's schedule (`ticklane itch-send --rate R --start-at S`):
/// the message of MoldUDP64 sequence `q` was due at `start + (q − first_sequence) / rate`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// When the first message was due, ns of this host's CLOCK_MONOTONIC.
    pub start: u64,
    /// Messages per second.
    pub rate: u64,
    /// The sequence of the first message (default 1, where MoldUDP64 sessions start).
    pub first_sequence: Option<u64>,
}

/// JSON field names.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldNames {
    #[serde(default = "f_ts")]
    pub ts: String,
    #[serde(default = "f_symbol")]
    pub symbol: String,
    #[serde(default = "f_price")]
    pub price: String,
    #[serde(default = "f_qty")]
    pub qty: String,
    #[serde(default = "f_side")]
    pub side: String,
}

impl Default for FieldNames {
    fn default() -> Self {
        Self { ts: f_ts(), symbol: f_symbol(), price: f_price(), qty: f_qty(), side: f_side() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WindowType {
    Tumbling,
    Sliding,
    Session,
}

/// `[[window]]`: a keyed event-time window; its results are the stream `name`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: WindowType,
    /// Source name (default: every source).
    pub input: Option<String>,
    pub size: Option<Dur>,
    pub slide: Option<Dur>,
    pub gap: Option<Dur>,
    pub offset: Option<Dur>,
    #[serde(default)]
    pub allowed_lateness: Dur,
    /// Aggregates to compute and write, in order (default: open, high, low, close, volume, vwap, twap, count).
    pub aggregates: Option<Vec<String>>,
    /// What the window aggregates: `trade` (default), or a value of each quote of a book-building source
    /// (`bid`, `ask`, `mid`, `spread`, `microprice`, `imbalance`).
    pub value: Option<String>,
    /// Name of the late side output stream (default `<name>_late`).
    pub late: Option<String>,
}

/// `[[continuous]]`: per-trade running VWAP and EMA; its results are the stream `name`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContinuousConfig {
    pub name: String,
    pub input: Option<String>,
    #[serde(default = "one_second")]
    pub ema_half_life: Dur,
    /// Length of a trading session: the running VWAP starts again at each session start.
    pub session_reset: Option<Dur>,
    /// Where sessions start, from the epoch modulo `session_reset`.
    pub session_offset: Option<Dur>,
    /// Name of the stream for trades of an already replaced session (default `<name>_late`).
    pub late: Option<String>,
}

/// `[[stream]]`: a source's events of one kind passed through as rows; the rows are the stream `name`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamConfig {
    pub name: String,
    /// Source name (default: every source).
    pub input: Option<String>,
    /// `trade`, `quote` or `level` (quotes and levels: itch sources only).
    pub events: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkType {
    Csv,
    Jsonl,
    Stdout,
    /// Counts and discards: for benchmarks, and to say on purpose that a stream is not wanted.
    Null,
    /// A Kafka topic, one message per record, keyed by instrument symbol.
    Kafka,
    /// InfluxDB line protocol over HTTP (`[sink.influxdb]`).
    Influxdb,
    /// A PostgreSQL (or TimescaleDB) table: COPY in batches, upserted by the window key.
    Postgres,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Csv,
    Jsonl,
    /// The fixed-layout little-endian records of docs/formats.md (Kafka only).
    Binary,
}

/// `[[sink]]`: where one stream goes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    pub stream: String,
    #[serde(rename = "type")]
    pub kind: SinkType,
    pub path: Option<PathBuf>,
    /// stdout: csv (default) or jsonl.
    pub format: Option<Format>,
    /// Columns and their order (default: the stream's schema, docs/formats.md).
    pub columns: Option<Vec<String>>,
    /// CSV: write a header line (default true).
    pub header: Option<bool>,
    /// csv and jsonl, with checkpoints: write numbered part files, each committed (renamed to its final
    /// name) when the checkpoint after it completes (docs/checkpoints.md). Default false: one file.
    pub parts: Option<bool>,
    /// influxdb: the server, database and point mapping.
    pub influxdb: Option<InfluxConfig>,
    /// Kafka: the topic.
    pub topic: Option<String>,
    /// Kafka: sinks naming the same producer share one (and must give it the same `kafka` properties);
    /// a latency-critical stream gets its own by naming one of its own. Default `default`.
    pub producer: Option<String>,
    /// Kafka: librdkafka producer properties.
    pub kafka: Option<KafkaProps>,
    /// Kafka, with checkpoints: what a restore does with the results written after the checkpoint
    /// (docs/checkpoints.md). Default `replay`.
    pub exactly_once: Option<ExactlyOnce>,
    /// postgres: the connection, table, column names and batching.
    pub postgres: Option<PostgresConfig>,
}

/// How a Kafka sink keeps results from reaching consumers twice after a restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExactlyOnce {
    /// The checkpoint records the topic's end offsets; a restore reads what was written after them, checks
    /// it against what it computes again and does not write it twice.
    Replay,
    /// Replay, and the output between two barriers in one Kafka transaction, committed at the second: a
    /// `read_committed` consumer never sees what a crash cut short (the broker aborts it), and a second
    /// instance with the same `transactional.id` fences the first. Needs a broker with transactions.
    Transactions,
    /// At-least-once: the results after the checkpoint are written again.
    None,
}

fn one() -> usize {
    1
}
fn default_latency_sample() -> u32 {
    4
}
fn yes() -> bool {
    true
}
fn ring_capacity() -> usize {
    1 << 16
}
fn max_instruments() -> usize {
    1 << 20
}
fn one_second() -> Dur {
    Dur(1_000_000_000)
}
fn ten_seconds() -> Dur {
    Dur(10_000_000_000)
}
fn one_minute() -> Dur {
    Dur(60_000_000_000)
}
fn three<T: From<u8>>() -> T {
    T::from(3)
}
fn f_ts() -> String {
    "ts".into()
}
fn f_symbol() -> String {
    "symbol".into()
}
fn f_price() -> String {
    "price".into()
}
fn f_qty() -> String {
    "qty".into()
}
fn f_side() -> String {
    "side".into()
}

/// Reads, parses and validates a config file.
pub fn load(path: &Path) -> Result<Plan, LoadError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| LoadError::Read { path: path.display().to_string(), source })?;
    parse(&text, &path.display().to_string())
}

/// Parses and validates config text; `origin` names it in errors.
pub fn parse(text: &str, origin: &str) -> Result<Plan, LoadError> {
    let cfg: Config =
        toml::from_str(text).map_err(|e| LoadError::Invalid(vec![locate::from_toml(text, origin, &e)]))?;
    plan::plan(&cfg).map_err(|errs| {
        LoadError::Invalid(errs.into_iter().map(|(key, reason)| locate::at_key(text, origin, &key, reason)).collect())
    })
}
