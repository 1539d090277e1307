//! The `ticklane` command: parses arguments, loads the config, calls the library.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use ticklane::config::{self, Plan};
use ticklane::gen::{GenParams, TradeGen};
use ticklane::kafka::tools::{self, MsgFormat};
use ticklane::metrics::{hdrlog, percentile_table, STAGES};
use ticklane::time::{parse_duration, TimeUnit};

#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "ticklane", version, about = "Low-latency event-time stream processor for market data")]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a pipeline (the embedded default job without --config).
    Run {
        /// The TOML file describing the pipeline.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Resume from this checkpoint directory (a `chk-…` directory) instead of the newest valid one in
        /// `checkpoint.dir`; the number of workers may differ from the checkpoint's.
        #[arg(long, value_name = "DIR")]
        from_savepoint: Option<PathBuf>,
    },
    /// Validate a config file: exit 0 if it is valid, else print every error (key, line, reason).
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Write a synthetic trade file (CSV: ts,symbol,price,qty,side).
    Gen(GenArgs),
    /// Write a synthetic NASDAQ TotalView-ITCH 5.0 file (sample-file framing), internally consistent.
    ItchGen(ItchGenArgs),
    /// Replay an ITCH file (sample-file framing, plain or gzip) as MoldUDP64 packets to a UDP address: the
    /// live path of an `itch` source with `listen`, on one host.
    ItchSend(ItchSendArgs),
    /// Print one instrument's order book rebuilt from an `itch` source's file up to a point in event time:
    /// the price levels, and with --orders each level's queue in time priority.
    Book(BookArgs),
    /// List the stock directory (the `R` messages: each instrument's reference data) of an ITCH file.
    ItchDirectory(ItchDirectoryArgs),
    /// Print p50, p90, p99, p99.9, p99.99 and max per stage from an HdrHistogram interval log, or from a running
    /// job's metrics endpoint (its histograms since the start).
    Stats {
        /// The log (metrics.histogram_log).
        #[arg(required_unless_present = "url", conflicts_with = "url")]
        file: Option<PathBuf>,
        /// A running job's metrics endpoint (`metrics.listen`): `http://127.0.0.1:9187` or `127.0.0.1:9187`.
        #[arg(long, visible_alias = "metrics-addr", value_name = "URL")]
        url: Option<String>,
        /// Also draw the percentile distribution of every stage into this PNG file.
        #[arg(long, value_name = "FILE.png")]
        plot: Option<PathBuf>,
    },
    /// Load a CSV or JSON-lines trade file (or standard input) into a Kafka topic, keyed by symbol.
    Produce(ProduceArgs),
    /// Print a Kafka topic from its beginning (binary records as JSON).
    Consume(ConsumeArgs),
    /// List the checkpoints in a directory: id, kind, time, size, shards, source positions, and whether each
    /// verifies (every file read and checked).
    Checkpoints {
        /// The checkpoint directory (checkpoint.dir).
        #[arg(long)]
        dir: PathBuf,
    },
    /// Ask the job running with this config for a savepoint (through its control socket in checkpoint.dir)
    /// and wait until it is complete on disk; prints its directory, for `run --from-savepoint`.
    Savepoint {
        /// The running job's TOML file (its `[checkpoint] dir` locates the job).
        #[arg(long, short)]
        config: PathBuf,
        /// The savepoint's name (default `savepoint-<id>`).
        #[arg(long)]
        name: Option<String>,
        /// Where to write it (default `<checkpoint.dir>/savepoints/<name>`; must not exist).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// How long to wait for it.
        #[arg(long, default_value = "5m", value_parser = parse_wait)]
        timeout: std::time::Duration,
    },
    /// Create a Kafka topic (an existing one with the same number of partitions is fine).
    CreateTopic {
        #[arg(long, default_value = "127.0.0.1:9092")]
        brokers: String,
        #[arg(long)]
        topic: String,
        #[arg(long, default_value_t = 1)]
        partitions: i32,
        /// A librdkafka property, `name=value` (repeatable).
        #[arg(short = 'X', value_parser = parse_prop)]
        prop: Vec<(String, String)>,
    },
}

fn parse_prop(s: &str) -> Result<(String, String), String> {
    s.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())).ok_or_else(|| format!("`{s}` is not name=value"))
}

fn parse_wait(s: &str) -> Result<std::time::Duration, String> {
    parse_duration(s).map(|ns| std::time::Duration::from_nanos(ns.max(0) as u64))
}

fn parse_unit(s: &str) -> Result<TimeUnit, String> {
    serde_json::from_value(serde_json::Value::String(s.to_string()))
        .map_err(|_| format!("`{s}` is not a time unit (s, ms, us, ns)"))
}

#[derive(clap::Args)]
struct ProduceArgs {
    #[arg(long, default_value = "127.0.0.1:9092")]
    brokers: String,
    #[arg(long)]
    topic: String,
    /// The trade file ("-" for standard input, e.g. from `ticklane gen -o -`).
    #[arg(long, default_value = "-")]
    file: PathBuf,
    /// Format of the file (default: jsonl for *.jsonl and *.json, else csv).
    #[arg(long, value_enum)]
    input_format: Option<MsgFormat>,
    /// A CSV file has no header line.
    #[arg(long)]
    no_header: bool,
    /// Unit of the file's timestamps.
    #[arg(long, default_value = "ms", value_parser = parse_unit)]
    unit: TimeUnit,
    /// Message format (default: the file's; lines are sent as they are).
    #[arg(long, value_enum)]
    format: Option<MsgFormat>,
    /// Messages per second, paced open-loop (0: as fast as the broker takes them).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// A librdkafka property, `name=value` (repeatable).
    #[arg(short = 'X', value_parser = parse_prop)]
    prop: Vec<(String, String)>,
}

#[derive(clap::Args)]
struct ConsumeArgs {
    #[arg(long, default_value = "127.0.0.1:9092")]
    brokers: String,
    #[arg(long)]
    topic: String,
    /// Stop after this many messages.
    #[arg(long, short = 'n', default_value_t = 0)]
    count: u64,
    /// Stop when no message has come for this long (e.g. 2s; default: wait for more).
    #[arg(long)]
    idle: Option<String>,
    /// Prefix each message with partition, offset, key and headers (tab-separated).
    #[arg(long)]
    meta: bool,
    /// Read as a member of this consumer group: from its committed offsets, committing what is printed.
    #[arg(long, conflicts_with_all = ["partition", "offset"])]
    group: Option<String>,
    /// Only this partition (default: all).
    #[arg(long)]
    partition: Option<i32>,
    /// Where to start in each partition: beginning, end or an offset.
    #[arg(long, default_value = "beginning")]
    offset: tools::StartAt,
    /// A librdkafka property, `name=value` (repeatable).
    #[arg(short = 'X', value_parser = parse_prop)]
    prop: Vec<(String, String)>,
}

/// Replaces the log filter while the program runs (`[log] filter`, a reload).
type LogHandle = tracing_subscriber::reload::Handle<tracing_subscriber::EnvFilter, tracing_subscriber::Registry>;

/// The log filter when the config sets none: `RUST_LOG`, else `info`.
fn default_log_filter() -> String {
    std::env::var("RUST_LOG")
        .ok()
        .filter(|f| tracing_subscriber::EnvFilter::builder().parse(f).is_ok())
        .unwrap_or_else(|| "info".into())
}

fn main() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let (filter, log) =
        tracing_subscriber::reload::Layer::new(tracing_subscriber::EnvFilter::new(default_log_filter()));
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
        )
        .init();
    let cli = Cli::parse();
    let res = match cli.cmd.unwrap_or(Cmd::Run { config: None, from_savepoint: None }) {
        Cmd::Run { config, from_savepoint } => run(config, from_savepoint, log),
        Cmd::Check { config } => check(&config),
        Cmd::Gen(args) => gen(args),
        Cmd::ItchGen(args) => itch_gen(args),
        Cmd::ItchSend(args) => itch_send(args),
        Cmd::Book(args) => book(args),
        Cmd::ItchDirectory(args) => itch_directory(args),
        Cmd::Stats { file, url, plot } => stats(file.as_deref(), url.as_deref(), plot.as_deref()),
        Cmd::Produce(a) => produce(a),
        Cmd::Consume(a) => consume(a),
        Cmd::Checkpoints { dir } => checkpoints(&dir),
        Cmd::Savepoint { config, name, dir, timeout } => savepoint(&config, name.as_deref(), dir.as_deref(), timeout),
        Cmd::CreateTopic { brokers, topic, partitions, prop } => {
            tools::create_topic(&brokers, &topic, partitions, &prop)
                .map(|_| eprintln!("topic `{topic}`: {partitions} partition(s) on {brokers}"))
        }
    };
    if let Err(e) = res {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn load(path: Option<&PathBuf>) -> Result<Plan> {
    match path {
        Some(p) => config::load(p).map_err(|e| anyhow::anyhow!("{e}")),
        None => config::parse(config::DEFAULT_TOML, "<default>").map_err(|e| anyhow::anyhow!("{e}")),
    }
}

fn check(path: &std::path::Path) -> Result<()> {
    let plan = load(Some(&path.to_path_buf()))?;
    println!(
        "{}: ok ({} source{}, {} operator{}, {} sink{}, {} worker{})",
        path.display(),
        plan.sources.len(),
        if plan.sources.len() == 1 { "" } else { "s" },
        plan.operators.len(),
        if plan.operators.len() == 1 { "" } else { "s" },
        plan.sinks.len(),
        if plan.sinks.len() == 1 { "" } else { "s" },
        plan.pipeline.workers,
        if plan.pipeline.workers == 1 { "" } else { "s" },
    );
    Ok(())
}

fn set_log_filter(log: &LogHandle, filter: &str) -> Result<(), String> {
    let f = tracing_subscriber::EnvFilter::builder().parse(filter).map_err(|e| e.to_string())?;
    log.reload(f).map_err(|e| e.to_string())
}

fn run(path: Option<PathBuf>, from: Option<PathBuf>, log: LogHandle) -> Result<()> {
    let text = match &path {
        Some(p) => std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?,
        None => config::DEFAULT_TOML.to_string(),
    };
    let origin = path.as_ref().map_or("<default>".to_string(), |p| p.display().to_string());
    let plan = config::parse(&text, &origin).map_err(|e| anyhow::anyhow!("{e}"))?;
    if let Some(f) = &plan.log.filter {
        set_log_filter(&log, f).map_err(|e| anyhow::anyhow!("log.filter `{f}`: {e}"))?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // A second signal while draining exits at once.
        signal_hook::flag::register_conditional_shutdown(sig, 130, stop.clone())
            .context("installing signal handlers")?;
        signal_hook::flag::register(sig, stop.clone()).context("installing signal handlers")?;
    }
    // SIGHUP (`systemctl reload`) re-reads the config file, on a thread of its own.
    let alert_rules = Arc::new(std::sync::Mutex::new(plan.alerts.clone()));
    let mut hup =
        signal_hook::iterator::Signals::new([signal_hook::consts::SIGHUP]).context("installing signal handlers")?;
    let mut reloader = path.clone().map(|p| {
        let log = log.clone();
        let set: ticklane::reload::SetLog = Box::new(move |f| set_log_filter(&log, f));
        ticklane::reload::Reloader::new(p, &text, alert_rules.clone(), set, default_log_filter())
    });
    std::thread::Builder::new()
        .name("tl-reload".into())
        .spawn(move || {
            let service = ticklane::service::Service::from_env();
            for _ in hup.forever() {
                // A SIGHUP during the start is handled once the job is ready: the reload's READY=1 would
                // otherwise tell the service manager the job runs before it does.
                while !ticklane::service::started() {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                let Some(r) = &mut reloader else {
                    tracing::warn!("reload: the job runs the embedded default config, there is no file to re-read");
                    continue;
                };
                service.reloading();
                let outcome = r.reload();
                service.reloaded(&outcome.status());
            }
        })
        .context("spawning the reload thread")?;
    let out = ticklane::pipeline::run_with(&plan, stop.clone(), from.as_deref(), alert_rules)?;
    let m = &out.metrics;
    let secs = out.elapsed.as_secs_f64();
    let events = m.events_in();
    let mut err = std::io::stderr().lock();
    writeln!(
        err,
        "\nticklane: {} events in {:.2} s ({:.0} events/s){}; {} rows out, {} late, {} rejected",
        events,
        secs,
        events as f64 / secs.max(1e-9),
        if out.stopped { ", stopped by signal" } else { "" },
        m.rows_out(),
        m.late(),
        m.rejects()
    )?;
    for (name, rows) in m.stream_names.iter().zip(&m.stream_rows) {
        let n = rows.load(Ordering::Relaxed);
        if n > 0 {
            writeln!(err, "  {name:<24} {n:>12} rows")?;
        }
    }
    let blocked: u64 = m.sources.iter().map(|s| s.backpressure.blocked_ns.load(Ordering::Relaxed)).sum::<u64>()
        + m.shards.iter().map(|s| s.backpressure.blocked_ns.load(Ordering::Relaxed)).sum::<u64>();
    let waits: u64 = m.sources.iter().map(|s| s.backpressure.full_waits.load(Ordering::Relaxed)).sum::<u64>()
        + m.shards.iter().map(|s| s.backpressure.full_waits.load(Ordering::Relaxed)).sum::<u64>();
    writeln!(err, "  backpressure: {waits} full-ring waits, {:.3} s blocked", blocked as f64 / 1e9)?;
    let rewritten: u64 = m.shards.iter().map(|s| s.rewritten.load(Ordering::Relaxed)).sum();
    if rewritten > 0 {
        writeln!(err, "  {rewritten} window results not written again: their windows were written in full before the committed offsets this run resumed from")?;
    }
    let now = ticklane::time::wall_now();
    for s in &m.sources {
        for (p, pm) in s.partitions.iter().enumerate() {
            let wm = pm.watermark.load(Ordering::Relaxed);
            if wm != i64::MIN {
                let idle = if pm.idle.load(Ordering::Relaxed) { " (idle)" } else { "" };
                writeln!(
                    err,
                    "  watermark {}[{p}]: {wm} ns, lag {:.3} s{idle}",
                    s.name,
                    now.saturating_sub(wm) as f64 / 1e9
                )?;
            }
        }
    }
    for (s, dir) in m.sources.iter().zip(&out.directories) {
        if let Some(f) = &s.feed {
            use ticklane::metrics::FeedCounter as F;
            // The transport's counters only for a live feed (a file has no packets).
            let live = f.get(F::Packets) > 0;
            let counts: Vec<String> = f
                .read()
                .iter()
                .filter(|(c, _)| c.is_anomaly() || (live && *c == F::Sessions))
                .filter(|(c, _)| live || (*c as usize) < F::Packets as usize)
                .map(|(c, v)| format!("{} {v}", c.name()))
                .collect();
            writeln!(
                err,
                "  feed {}: {} messages{}, {} instruments in the directory, {} live orders; {}",
                s.name,
                f.get(F::Messages),
                if live { format!(" in {} packets", f.get(F::Packets)) } else { String::new() },
                dir.as_ref().map_or(0, |d| d.len()),
                f.get(F::LiveOrders),
                counts.join(", ")
            )?;
        }
    }
    if let Some(c) = &out.checkpoints {
        use std::sync::atomic::Ordering::Relaxed;
        let (done, failed) = (c.completed.load(Relaxed), c.failed.load(Relaxed));
        write!(err, "  checkpoints: {done} complete, {failed} failed")?;
        if done > 0 {
            write!(
                err,
                "; last id {} ({}, {:.1} ms); longest shard pause {:.3} ms",
                c.last_id.load(Relaxed),
                ticklane::metrics::human_bytes(c.last_bytes.load(Relaxed)),
                c.last_duration_ns.load(Relaxed) as f64 / 1e6,
                c.max_pause_ns.load(Relaxed) as f64 / 1e6
            )?;
        }
        writeln!(err)?;
    }
    if plan.metrics.summary && !plan.metrics.latency {
        writeln!(err, "\nlatency: not timed ([metrics] latency = false)")?;
    } else if plan.metrics.summary {
        let rows: Vec<(&str, &hdrhistogram::Histogram<u64>)> = STAGES
            .iter()
            .copied()
            .zip(out.hists.0.iter())
            .filter(|(name, h)| !(ticklane::metrics::is_checkpoint_stage(name) && h.is_empty()))
            .collect();
        writeln!(
            err,
            "\nlatency (sampled every {} event{}):",
            plan.metrics.latency_sample,
            if plan.metrics.latency_sample == 1 { "" } else { "s" }
        )?;
        write!(err, "{}", percentile_table(&rows))?;
    }
    Ok(())
}

#[derive(clap::Args)]
struct GenArgs {
    /// Output file ("-" for stdout).
    #[arg(long, short, default_value = "trades.csv")]
    out: PathBuf,
    /// Number of trades.
    #[arg(long, short = 'n', default_value_t = 1_000_000)]
    events: u64,
    #[arg(long, default_value_t = 1000)]
    instruments: u32,
    /// Event-time span of the whole file (default: 2,000 trades per second of event time).
    #[arg(long)]
    span: Option<String>,
    /// First timestamp, in --unit since the epoch.
    #[arg(long, default_value_t = 1_700_000_000_000)]
    start: i64,
    /// How far behind the newest trade a disordered trade may be.
    #[arg(long, default_value = "2s")]
    disorder: String,
    /// Fraction of trades displaced by up to --disorder.
    #[arg(long, default_value_t = 0.2)]
    disorder_fraction: f64,
    /// Fraction of very late trades (5–120 s behind).
    #[arg(long, default_value_t = 0.001)]
    late_fraction: f64,
    /// Zipf exponent of instrument popularity (0 = uniform).
    #[arg(long, default_value_t = 1.0)]
    zipf: f64,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Timestamp unit: s, ms, us, ns.
    #[arg(long, default_value = "ms")]
    unit: String,
}

#[derive(clap::Args)]
struct BookArgs {
    /// The job's TOML file: its `itch` source gives the file, trading day and time zone.
    #[arg(long, short)]
    config: PathBuf,
    /// Which source (default: the only `itch` source).
    #[arg(long)]
    source: Option<String>,
    #[arg(long)]
    symbol: String,
    /// Venue local time on the trading day (HH:MM:SS[.fraction]) or epoch nanoseconds: the book after every
    /// message up to and including this time.
    #[arg(long)]
    at: String,
    /// Price levels per side.
    #[arg(long, default_value_t = 10)]
    levels: usize,
    /// Also list each level's orders (reference and shares) in time priority.
    #[arg(long)]
    orders: bool,
}

#[derive(clap::Args)]
struct ItchDirectoryArgs {
    /// The ITCH file (sample-file framing, plain or gzip).
    file: PathBuf,
    /// Only this symbol.
    #[arg(long)]
    symbol: Option<String>,
}

#[derive(clap::Args)]
struct ItchSendArgs {
    /// The ITCH file.
    file: PathBuf,
    /// Destination ADDRESS:PORT (unicast or an IPv4 multicast group).
    #[arg(long)]
    to: std::net::SocketAddr,
    /// Messages per second (0: as fast as the socket takes them). Open loop: message i is due at start + i/rate.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// With --rate: when the first message is due, in ns of this host's CLOCK_MONOTONIC (a receiver given the
    /// same start and rate, the itch source's `schedule`, then knows when every message was due). Default: now.
    #[arg(long)]
    start_at: Option<u64>,
    /// The MoldUDP64 session name (up to 10 characters).
    #[arg(long, default_value = "TICKLANE")]
    session: String,
    /// Largest UDP payload, bytes.
    #[arg(long, default_value_t = 1400)]
    max_payload: usize,
    /// The most messages in one packet (fewer when --max-payload is reached first).
    #[arg(long, default_value_t = 65534)]
    max_messages: u16,
    /// Multicast TTL.
    #[arg(long)]
    ttl: Option<u32>,
    /// Multicast: the IPv4 address of the interface to send on (e.g. 127.0.0.1); the kernel's route by default.
    #[arg(long)]
    interface: Option<std::net::Ipv4Addr>,
    /// Multicast: deliver the packets to listeners on this host too (IP_MULTICAST_LOOP).
    #[arg(long)]
    multicast_loop: bool,
    /// For tests: packets dropped, sent late (after the next one) and sent twice, per million, seeded.
    #[arg(long, default_value_t = 0)]
    drop_ppm: u32,
    #[arg(long, default_value_t = 0)]
    reorder_ppm: u32,
    #[arg(long, default_value_t = 0)]
    duplicate_ppm: u32,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(clap::Args)]
struct ItchGenArgs {
    /// Output file ("-" for stdout).
    #[arg(long, short)]
    out: PathBuf,
    /// Messages in the file, system events and reference data included.
    #[arg(long, short = 'n')]
    messages: u64,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Securities (locate codes 1 to K).
    #[arg(long, default_value_t = 100)]
    stocks: u16,
    /// Compress with gzip.
    #[arg(long)]
    gzip: bool,
    /// The trade date: the session runs from 09:30 to 16:00 local time on it.
    #[arg(long, default_value = "2024-01-02")]
    date: String,
    /// The venue's time zone (IANA name).
    #[arg(long, default_value = ticklane::itch::DEFAULT_TZ)]
    tz: String,
    /// Probability per message of a fault (an unknown type, an execution or cancel of an unknown reference,
    /// an execution of more shares than remain), for testing a reader's counters.
    #[arg(long, default_value_t = 0.0)]
    faults: f64,
}

fn book(a: BookArgs) -> Result<()> {
    use ticklane::book::{BookSide, Books};
    use ticklane::config::{ItchPlan, SourceKindPlan};
    use ticklane::itch::{self, Message, SessionClock};
    let plan = load(Some(&a.config))?;
    let itch_sources: Vec<(&str, &ItchPlan)> = plan
        .sources
        .iter()
        .filter_map(|s| match &s.kind {
            SourceKindPlan::Itch(p) if a.source.as_ref().is_none_or(|n| *n == s.name) => Some((s.name.as_str(), p)),
            _ => None,
        })
        .collect();
    let (name, p) = match itch_sources.as_slice() {
        [one] => *one,
        [] => bail!(
            "{}: no itch source{}",
            a.config.display(),
            a.source.map_or(String::new(), |n| format!(" named `{n}`"))
        ),
        _ => bail!("{}: several itch sources: choose one with --source", a.config.display()),
    };
    if p.listen.is_some() {
        bail!("source `{name}` is a live stream: the book command reads a file");
    }
    let clock = SessionClock::new(&p.date, &p.time_zone)?;
    let at: u64 = if let Ok(epoch) = a.at.parse::<i64>() {
        u64::try_from(epoch - clock.midnight())
            .map_err(|_| anyhow::anyhow!("--at {epoch} is before the trading day"))?
    } else {
        let (hms, frac) = a.at.split_once('.').unwrap_or((&a.at, ""));
        let f: Vec<i8> = hms
            .split(':')
            .map(|x| x.parse::<i8>())
            .collect::<Result<_, _>>()
            .map_err(|_| anyhow::anyhow!("--at `{}`: expected HH:MM:SS[.fraction] or epoch nanoseconds", a.at))?;
        let [h, m, sec] = f[..] else { bail!("--at `{}`: expected HH:MM:SS[.fraction]", a.at) };
        if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
            bail!("--at `{}`: at most 9 digits after the point", a.at);
        }
        let ns = if frac.is_empty() { 0 } else { format!("{frac:0<9}").parse::<u64>()? };
        clock.local_time(h, m, sec)? + ns
    };
    let mut file = itch::ItchFile::open(&p.path).with_context(|| format!("opening {}", p.path.display()))?;
    let mut books = Books::new(p.depth, 1);
    let mut locate = None;
    let mut listing = None;
    let (mut messages, mut refused) = (0u64, 0u64);
    let mut last_ts = 0;
    while let Some(f) = file.next() {
        let (offset, bytes) = f.with_context(|| format!("reading {}", p.path.display()))?;
        let Ok(m) = itch::decode(bytes) else { continue };
        let Some(ts) = m.timestamp() else { continue };
        if ts > at {
            break;
        }
        messages += 1;
        last_ts = ts;
        if let Message::StockDirectory(d) = &m {
            if itch::trim_alpha(d.stock) == a.symbol.as_bytes() {
                locate = Some(d.header.stock_locate);
                listing = Some(itch::listing(d));
            }
        }
        if m.stock_locate() != locate || locate.is_none() {
            continue;
        }
        let r = ticklane::source::itch::apply(&mut books, &m, 0);
        if let Some(Err(e)) = r {
            refused += 1;
            if refused <= 5 {
                eprintln!("offset {offset}: {e}");
            }
        }
    }
    if locate.is_none() {
        bail!("{}: no stock directory message for `{}` by {}", p.path.display(), a.symbol, a.at);
    }
    let when = clock.to_epoch(last_ts);
    println!(
        "{} in {} at {} ({} messages read, last at epoch {when} ns; {refused} refused): {} orders",
        a.symbol,
        p.path.display(),
        a.at,
        messages,
        books.len()
    );
    if let Some(l) = listing {
        println!("directory: locate {} {l}", locate.unwrap_or_default());
    }
    let m = books.metrics(0);
    let show = |p: Option<ticklane::event::Price>| p.map_or("-".to_string(), |p| p.to_string());
    println!(
        "spread {}  mid {}  microprice {}  imbalance(top {}) {}",
        show(m.spread),
        show(m.mid),
        show(m.microprice),
        p.depth,
        m.imbalance.map_or("-".to_string(), |i| ticklane::event::Price(i).to_string())
    );
    println!("{:>6} {:>14} {:>12}   side", "orders", "shares", "price");
    let asks: Vec<_> = books.top(0, BookSide::Ask, a.levels).collect();
    for l in asks.iter().rev() {
        println!("{:>6} {:>14} {:>12}   ask", l.orders, l.shares, l.price.to_string());
        if a.orders {
            for o in books.queue(0, BookSide::Ask, l.price) {
                println!("{:>21} ref {} ", o.shares, o.reference);
            }
        }
    }
    println!("{:-<42}", "");
    for l in books.top(0, BookSide::Bid, a.levels) {
        println!("{:>6} {:>14} {:>12}   bid", l.orders, l.shares, l.price.to_string());
        if a.orders {
            for o in books.queue(0, BookSide::Bid, l.price) {
                println!("{:>21} ref {} ", o.shares, o.reference);
            }
        }
    }
    Ok(())
}

fn itch_directory(a: ItchDirectoryArgs) -> Result<()> {
    use ticklane::itch::{self, Message};
    let mut file = itch::ItchFile::open(&a.file).with_context(|| format!("opening {}", a.file.display()))?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{:>6} {:<8} listing", "locate", "symbol")?;
    let mut listed = 0u64;
    while let Some(f) = file.next() {
        let (_, bytes) = f.with_context(|| format!("reading {}", a.file.display()))?;
        // Only directory messages are decoded.
        if bytes.first() != Some(&b'R') {
            continue;
        }
        let Ok(Message::StockDirectory(d)) = itch::decode(bytes) else { continue };
        let symbol = String::from_utf8_lossy(itch::trim_alpha(d.stock));
        if a.symbol.as_ref().is_some_and(|s| *s != symbol) {
            continue;
        }
        listed += 1;
        writeln!(out, "{:>6} {:<8} {}", d.header.stock_locate, symbol, itch::listing(&d))?;
    }
    if listed == 0 {
        bail!(
            "{}: no stock directory message{}",
            a.file.display(),
            a.symbol.map_or(String::new(), |s| format!(" for `{s}`"))
        );
    }
    Ok(())
}

fn itch_send(a: ItchSendArgs) -> Result<()> {
    use ticklane::moldudp64::{Faults, Sender, SenderConfig, Session};
    let session = Session::new(&a.session).map_err(|e| anyhow::anyhow!("--session: {e}"))?;
    if a.start_at.is_some() && a.rate == 0 {
        bail!("--start-at is the start of a paced schedule: give --rate too");
    }
    let mut cfg = SenderConfig::new(session);
    cfg.rate = a.rate;
    cfg.start_at = a.start_at;
    cfg.max_payload = a.max_payload;
    cfg.max_messages = a.max_messages;
    cfg.ttl = a.ttl;
    cfg.multicast_interface = a.interface;
    cfg.multicast_loop = a.multicast_loop;
    cfg.faults =
        Faults { seed: a.seed, drop_ppm: a.drop_ppm, reorder_ppm: a.reorder_ppm, duplicate_ppm: a.duplicate_ppm };
    let mut tx = Sender::new(cfg, a.to).with_context(|| format!("sending to {}", a.to))?;
    let mut file = ticklane::itch::ItchFile::open(&a.file).with_context(|| format!("opening {}", a.file.display()))?;
    let started = std::time::Instant::now();
    while let Some(m) = file.next() {
        let (offset, msg) = m.with_context(|| format!("reading {}", a.file.display()))?;
        tx.push(msg).with_context(|| format!("sending the message at byte {offset} to {}", a.to))?;
    }
    let r = tx.finish().with_context(|| format!("ending the session to {}", a.to))?;
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "{}: {} messages in {} packets to {} in {secs:.2} s ({:.0} msg/s); most behind schedule {} ns; dropped {} \
         packets ({} messages) {:?}, late {}, duplicated {}",
        a.file.display(),
        r.messages,
        r.packets,
        a.to,
        r.messages as f64 / secs.max(1e-9),
        r.max_behind_ns,
        r.dropped_packets,
        r.dropped.iter().map(|d| d.end - d.start).sum::<u64>(),
        r.dropped.iter().take(8).collect::<Vec<_>>(),
        r.late_packets,
        r.duplicated_packets
    );
    Ok(())
}

fn itch_gen(a: ItchGenArgs) -> Result<()> {
    use ticklane::itch::{gen, SessionClock};
    let clock = SessionClock::new(&a.date, &a.tz)?;
    if a.stocks == 0 {
        bail!("--stocks must be at least 1");
    }
    if a.messages < gen::overhead(a.stocks) {
        bail!("--messages must be at least {} for {} stocks", gen::overhead(a.stocks), a.stocks);
    }
    if !(0.0..=1.0).contains(&a.faults) {
        bail!("--faults must be between 0 and 1");
    }
    let params = gen::GenParams {
        messages: a.messages,
        seed: a.seed,
        stocks: a.stocks,
        start: clock.local_time(9, 30, 0)?,
        end: clock.local_time(16, 0, 0)?,
        faults: a.faults,
    };
    let sink: Box<dyn Write> = if a.out.as_os_str() == "-" {
        Box::new(std::io::stdout().lock())
    } else {
        Box::new(std::fs::File::create(&a.out).with_context(|| format!("creating {}", a.out.display()))?)
    };
    let started = std::time::Instant::now();
    let s = if a.gzip {
        // Level 1: several GiB a day, where level 6 costs several times the time for a tenth less.
        let gz = flate2::write::GzEncoder::new(sink, flate2::Compression::fast());
        let mut w = std::io::BufWriter::with_capacity(1 << 20, gz);
        let s = gen::generate(&params, &mut w)?;
        w.into_inner().map_err(|e| e.into_error())?.finish()?.flush()?;
        s
    } else {
        gen::generate(&params, std::io::BufWriter::with_capacity(1 << 20, sink))?
    };
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    eprintln!(
        "{}: {} messages, {} bytes before compression, {} stocks, {} live orders at the end (at most {}), {} faults \
         ({} unknown type, {} unknown reference, {} overfill); {} to {} ns since midnight ({} to {} epoch ns); \
         {secs:.2} s ({:.0} msg/s)",
        a.out.display(),
        s.messages,
        s.bytes,
        a.stocks,
        s.live_at_end,
        s.max_live,
        s.faults(),
        s.unknown_type_faults,
        s.unknown_ref_faults,
        s.overfill_faults,
        s.first_ts,
        s.last_ts,
        clock.to_epoch(s.first_ts),
        clock.to_epoch(s.last_ts),
        s.messages as f64 / secs,
    );
    Ok(())
}

fn gen(a: GenArgs) -> Result<()> {
    let unit: TimeUnit = serde_json::from_value(serde_json::Value::String(a.unit.clone()))
        .map_err(|_| anyhow::anyhow!("--unit must be s, ms, us or ns, not `{}`", a.unit))?;
    let disorder = parse_duration(&a.disorder).map_err(|e| anyhow::anyhow!("--disorder: {e}"))?;
    let span = match &a.span {
        Some(s) => parse_duration(s).map_err(|e| anyhow::anyhow!("--span: {e}"))?,
        None => (a.events as i64 / 2).max(1) * 1_000_000,
    };
    if a.instruments == 0 {
        bail!("--instruments must be at least 1");
    }
    for (name, f) in [("--disorder-fraction", a.disorder_fraction), ("--late-fraction", a.late_fraction)] {
        if !(0.0..=1.0).contains(&f) {
            bail!("{name} must be between 0 and 1");
        }
    }
    let start = unit.to_nanos(a.start).context("--start does not fit in i64 nanoseconds")?;
    let mut g = TradeGen::new(GenParams {
        instruments: a.instruments,
        disorder,
        disorder_fraction: a.disorder_fraction,
        late_fraction: a.late_fraction,
        zipf: a.zipf,
        seed: a.seed,
        granularity: unit.nanos(),
    });
    let symbols: Vec<String> = (0..a.instruments).map(TradeGen::symbol).collect();
    let sink: Box<dyn Write> = if a.out.as_os_str() == "-" {
        Box::new(std::io::stdout().lock())
    } else {
        Box::new(std::fs::File::create(&a.out).with_context(|| format!("creating {}", a.out.display()))?)
    };
    let mut w = std::io::BufWriter::with_capacity(1 << 20, sink);
    writeln!(w, "ts,symbol,price,qty,side")?;
    let mut line = Vec::with_capacity(64);
    let mut ib = itoa::Buffer::new();
    for i in 0..a.events {
        let clock = start + (i as i128 * span as i128 / a.events.max(1) as i128) as i64;
        let t = g.next(clock);
        line.clear();
        line.extend_from_slice(ib.format(unit.from_nanos(t.ts)).as_bytes());
        line.push(b',');
        line.extend_from_slice(symbols[t.instrument as usize].as_bytes());
        line.push(b',');
        t.price.write_to(&mut line);
        line.push(b',');
        line.extend_from_slice(ib.format(t.qty).as_bytes());
        line.push(b',');
        line.extend_from_slice(t.side.as_str().as_bytes());
        line.push(b'\n');
        w.write_all(&line)?;
    }
    w.flush()?;
    if a.out.as_os_str() != "-" {
        eprintln!("wrote {} trades of {} instruments to {}", a.events, a.instruments, a.out.display());
    }
    Ok(())
}

fn stats(file: Option<&std::path::Path>, url: Option<&str>, plot: Option<&std::path::Path>) -> Result<()> {
    let (hists, what) = match (file, url) {
        (Some(file), _) => (hdrlog::read_log(file)?, file.display().to_string()),
        (None, Some(url)) => {
            let base = if url.contains("://") { url.to_string() } else { format!("http://{url}") };
            let at = format!("{}/api/histograms", base.trim_end_matches('/'));
            let log = ureq::get(&at)
                .call()
                .and_then(|r| r.into_body().read_to_vec())
                .with_context(|| format!("reading the histograms at {at}"))?;
            if log.is_empty() {
                bail!("{at}: no histograms yet (the job has not completed its first metrics interval)");
            }
            (hdrlog::parse(&log, &at)?, base)
        }
        (None, None) => bail!("give a histogram log or --url"),
    };
    if hists.is_empty() {
        bail!("{what}: no histograms in this log");
    }
    let rows: Vec<(&str, &hdrhistogram::Histogram<u64>)> =
        hists.iter().map(|(t, h)| (if t.is_empty() { "(untagged)" } else { t.as_str() }, h)).collect();
    print!("{}", percentile_table(&rows));
    if let Some(png) = plot {
        // Sizes are not latencies: not on a latency plot.
        let latencies: Vec<_> = rows.iter().copied().filter(|(t, _)| !t.ends_with("_bytes")).collect();
        ticklane::metrics::plot::percentile_plot(png, &format!("latency by percentile: {what}"), &latencies)?;
        eprintln!("plot: {}", png.display());
    }
    Ok(())
}

fn savepoint(
    config: &std::path::Path,
    name: Option<&str>,
    dir: Option<&std::path::Path>,
    timeout: std::time::Duration,
) -> Result<()> {
    use ticklane::checkpoint::control;
    let plan = load(Some(&config.to_path_buf()))?;
    let Some(root) = &plan.checkpoint.dir else {
        bail!("{}: savepoints need [checkpoint] dir (the running job's control socket is there)", config.display())
    };
    if let Some(n) = name.filter(|n| !control::valid_name(n)) {
        bail!("savepoint name {n:?}: use letters, digits, `.`, `_` and `-` (not first)");
    }
    // The job resolves a relative directory against its own working directory: make it absolute here.
    let dir = match dir {
        Some(d) if d.is_relative() => Some(std::env::current_dir()?.join(d)),
        d => d.map(std::path::Path::to_path_buf),
    };
    let sp = control::request_savepoint(root, name, dir.as_deref(), timeout)?;
    eprintln!("savepoint {} complete: {} in {}", sp.id, ticklane::metrics::human_bytes(sp.bytes), sp.dir.display());
    println!("{}", sp.dir.display());
    Ok(())
}

fn checkpoints(dir: &std::path::Path) -> Result<()> {
    use ticklane::checkpoint::{manifest, CheckpointError};
    let list = match manifest::list(dir) {
        Ok(l) => l,
        Err(CheckpointError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            bail!("{}: no such checkpoint directory", dir.display())
        }
        Err(e) => return Err(e.into()),
    };
    let mut out = std::io::stdout().lock();
    let savepoints = manifest::list_savepoints(dir);
    if list.is_empty() && savepoints.is_empty() {
        writeln!(out, "no checkpoints in {}", dir.display())?;
        return Ok(());
    }
    for c in list.iter().chain(&savepoints) {
        let (kind, time, shards, sources) = match &c.manifest {
            Some(m) => (
                match &m.name {
                    Some(n) => format!("{}:{n}", m.kind),
                    None => m.kind.clone(),
                },
                utc(m.created_ns),
                format!("{} shard{}", m.shards, if m.shards == 1 { "" } else { "s" }),
                positions(&m.sources),
            ),
            None => ("-".into(), "-".into(), "-".into(), "-".into()),
        };
        // With Kafka transactions a checkpoint is restorable once their commit is recorded (a savepoint
        // records it in its own directory).
        let committed = manifest::read_committed(dir).unwrap_or(0).max(manifest::read_committed(&c.path).unwrap_or(0));
        let status = match (&c.verified, c.manifest.as_ref().and_then(|m| m.uncommitted(committed))) {
            (Ok(()), None) => "ok".to_string(),
            (Ok(()), Some(_)) => "ok, its Kafka transactions not committed yet: a restore passes over it".to_string(),
            (Err(why), _) => format!("FAILED: {why}"),
        };
        writeln!(
            out,
            "{:>6}  {kind:<10}  {time:<24}  {:>9}  {shards:<9}  {sources}  {status}",
            c.id,
            ticklane::metrics::human_bytes(c.size)
        )?;
    }
    Ok(())
}

/// RFC 3339 in UTC, to the millisecond; the raw number before 1970 (humantime does not format those).
fn utc(ns: i64) -> String {
    match u64::try_from(ns) {
        Ok(ns) => {
            humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns)).to_string()
        }
        Err(_) => format!("{ns} ns"),
    }
}

/// Source positions on one line: `trades: t/0@1234 t/1@99`, `csv: file@123456`, `gen: seed 42 n 1000000`.
fn positions(sources: &[ticklane::checkpoint::manifest::SourcePosition]) -> String {
    if sources.is_empty() {
        return "-".into();
    }
    let one = |s: &ticklane::checkpoint::manifest::SourcePosition| {
        let opt = |v: Option<u64>| v.map_or("?".to_string(), |v| v.to_string());
        let at = match s.kind.as_str() {
            "kafka" => s
                .partitions
                .iter()
                .map(|p| match &p.topic {
                    Some(t) => format!("{t}/{}@{}", p.partition, p.offset),
                    None => format!("{}@{}", p.partition, p.offset),
                })
                .collect::<Vec<_>>()
                .join(" "),
            "file" => format!("file@{}", opt(s.byte_offset)),
            "synthetic" => format!("seed {} n {}", opt(s.seed), opt(s.count)),
            other => other.to_string(),
        };
        format!("{}: {at}", s.source)
    };
    sources.iter().map(one).collect::<Vec<_>>().join("; ")
}

fn produce(a: ProduceArgs) -> Result<()> {
    let ext = a.file.extension().and_then(|e| e.to_str()).unwrap_or("");
    let input =
        a.input_format.unwrap_or(if matches!(ext, "jsonl" | "json") { MsgFormat::Jsonl } else { MsgFormat::Csv });
    let done = tools::produce(&tools::ProduceOpts {
        brokers: a.brokers,
        topic: a.topic.clone(),
        file: a.file,
        input,
        header: !a.no_header,
        unit: a.unit,
        format: a.format,
        rate: a.rate,
        extra: a.prop,
    })?;
    let secs = done.elapsed.as_secs_f64().max(1e-9);
    eprintln!(
        "produced {} messages to `{}` in {secs:.2} s ({:.0} msg/s){}",
        done.messages,
        a.topic,
        done.messages as f64 / secs,
        if done.unparsed > 0 {
            format!("; {} lines did not parse and were sent as they are", done.unparsed)
        } else {
            String::new()
        }
    );
    Ok(())
}

fn consume(a: ConsumeArgs) -> Result<()> {
    let idle = match &a.idle {
        Some(d) => Some(std::time::Duration::from_nanos(
            parse_duration(d).map_err(|e| anyhow::anyhow!("--idle: {e}"))?.max(0) as u64,
        )),
        None => None,
    };
    let opts = tools::ConsumeOpts {
        brokers: a.brokers,
        topic: a.topic,
        count: a.count,
        idle,
        meta: a.meta,
        group: a.group,
        partition: a.partition,
        from: a.offset,
        extra: a.prop,
    };
    tools::consume(&opts, &mut std::io::stdout().lock())?;
    Ok(())
}
