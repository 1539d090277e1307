//! The threaded pipeline: sources → N shard workers → one emitter → sinks, connected by SPSC rings; plus a
//! metrics thread. Builds it from a [`Plan`], runs it to the end of its input (or a stop signal) and
//! reports what happened.
//!
//! Data flows one way. Each source has a ring to every shard (an event goes to the shard that owns its
//! key; watermarks go to all) and a ring of rejects to the emitter; each shard has a ring to the emitter.
//! Shutdown flows the same way: a source that finishes sends end-of-input down its rings, a shard finishes
//! when all its inputs have, the emitter when all shards and sources have. A thread that fails drops its
//! rings; the threads next to it see that and wind down, and the first error is reported.

pub mod barrier;
mod emitter;
pub mod ring;
mod shard;

pub use ring::{Disconnected, Doorbell, Idler, Sender, Wait};

use crate::checkpoint::codec::{Dec, Enc};
use crate::checkpoint::coordinator::{self, CheckpointStats, Coordinator, Part, PartSender, Trigger};
use crate::checkpoint::file::StateFile;
use crate::checkpoint::manifest::Manifest;
use crate::checkpoint::{self};
use crate::config::{EmitterMode, OpKind, Plan, SourceKindPlan, StreamKind};
use crate::continuous::Continuous;
use crate::event::{Event, KeyId, Nanos};
use crate::kafka::ConsumedOffsets;
use crate::metrics::hdrlog::IntervalLog;
use crate::metrics::{Hists, LatencyHub, Metrics, PartitionMetrics, Report, ShardMetrics, SourceMetrics};
use crate::operator::Operator;
use crate::record::{Record, RejectRow, StreamId};
use crate::sink::Sink;
use crate::source::{Csv, FileSource, Json, KafkaSource, Poll, Source, SourceError, SourceOut, SyntheticSource};
use crate::symbols::{Interner, SymbolCache, Symbols};
use crate::time::watermark::PartitionWatermarks;
use crate::window::{AlignedWindows, SessionWindows, WindowKind};
use anyhow::Context;
use crossbeam_utils::CachePadded;
use shard::{OpSlot, ShardWorker};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Source → shard.
#[derive(Debug, Clone, Copy)]
pub enum ShardMsg {
    /// An event of source partition `part`, with the watermark of its source before it (what it is judged
    /// against) and its ingest time (monotonic ns; 0 = not timed).
    Event { ev: Event, part: u16, wm: Nanos, t0: u64 },
    /// Watermark progress (or idleness) of the source, with the ingest time of the first event that moved it
    /// since the source's previous broadcast (0 = not timed): the window results it fires are timed from there.
    Watermark { wm: Nanos, idle: bool, t0: u64 },
    /// Commit marker `id`: everything before it has been handed over. The shard passes it on with the
    /// earliest event time its operators still hold; the emitter makes the sinks durable and acknowledges.
    Marker { id: u64 },
    /// Checkpoint `id`'s barrier: everything of this source before it is in the checkpoint, nothing after.
    Barrier { id: u64 },
    /// Source partition `part` moved to another instance: drop the state of the keys it fed.
    Forget { part: u16 },
    /// Source partition `part` resumes after a commit whose messages reached event time `from`: results of
    /// windows of its keys that start at or before `from` were written in full before; drop them.
    Resume { part: u16, from: Nanos },
    /// The source has ended.
    End,
}

/// Shard → emitter.
#[derive(Debug, Clone, Copy)]
pub enum EmitMsg {
    /// A result: its stream, the ingest time of the event that caused it and when the shard emitted it.
    Out {
        stream: StreamId,
        rec: Record,
        t0: u64,
        t1: u64,
    },
    /// Commit marker `id` of source `source` has passed this shard, whose operators hold nothing older than
    /// event time `retain`.
    Marker {
        source: u16,
        id: u64,
        retain: Nanos,
    },
    /// Checkpoint `id`'s barrier has passed this shard (its state is in the checkpoint).
    Barrier {
        id: u64,
    },
    End,
}

/// Emitter → source: commit marker `id` has passed every shard and the sinks hold every result before it
/// durably; nothing older than event time `retain` is held in any operator reading the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    pub id: u64,
    pub retain: Nanos,
}

/// Source → emitter: malformed input records. The record is carried inline (a ring slot is preallocated;
/// boxing it would allocate per reject).
#[derive(Debug, Clone, Copy)]
#[allow(clippy::large_enum_variant)]
pub enum RejectMsg {
    Row(RejectRow),
    /// Checkpoint `id`'s barrier: the rejects before it are in the checkpoint's output.
    Barrier {
        id: u64,
    },
    End,
}

/// What a run did.
pub struct RunOutcome {
    pub elapsed: Duration,
    pub metrics: Arc<Metrics>,
    /// Latency histograms over the whole run.
    pub hists: Box<Hists>,
    /// Stopped by a signal rather than by the end of the input.
    pub stopped: bool,
    /// Checkpoints taken (checkpoints on).
    pub checkpoints: Option<Arc<CheckpointStats>>,
    /// Per source, the instrument reference data it kept (exchange feeds: their directory).
    pub directories: Vec<Option<Arc<crate::refdata::Directory>>>,
}

impl RunOutcome {
    pub fn events_in(&self) -> u64 {
        self.metrics.events_in()
    }
}

fn pin(core: Option<usize>, what: &str) {
    if let Some(id) = core {
        if !core_affinity::set_for_current(core_affinity::CoreId { id }) {
            tracing::warn!(core = id, thread = what, "could not pin thread to core");
        }
    }
}

fn build_operators(plan: &Plan) -> Vec<OpSlot> {
    plan.operators
        .iter()
        .map(|o| {
            let op: Box<dyn Operator> = match &o.kind {
                OpKind::Window(spec) => match spec.kind {
                    WindowKind::Session { .. } => Box::new(SessionWindows::new(spec, o.stream, o.late_stream)),
                    _ => Box::new(AlignedWindows::new(spec, o.stream, o.late_stream)),
                },
                OpKind::Continuous { half_life, reset } => {
                    Box::new(Continuous::new(*half_life, *reset, o.stream, o.late_stream))
                }
                OpKind::Stream(events) => Box::new(crate::stream::PassThrough::new(*events, o.stream)),
            };
            OpSlot::new(op, o.inputs, plan.sources.len())
        })
        .collect()
}

fn open_source(
    plan: &Plan,
    i: usize,
    symbols: &Arc<Symbols>,
    txn: &Option<Arc<ConsumedOffsets>>,
) -> anyhow::Result<Box<dyn Source>> {
    let s = &plan.sources[i];
    let mut interner = Interner::new(symbols.clone(), plan.pipeline.max_instruments);
    Ok(match &s.kind {
        SourceKindPlan::Csv { path, header, speed } => {
            Box::new(FileSource::open(&s.name, path, Csv, *header, s.unit, interner, *speed)?)
        }
        SourceKindPlan::Jsonl { path, fields, speed } => {
            Box::new(FileSource::open(&s.name, path, Json::new(fields), false, s.unit, interner, *speed)?)
        }
        SourceKindPlan::Synthetic(sp) => Box::new(SyntheticSource::new(&s.name, sp, s.unit, &mut interner)?),
        SourceKindPlan::Itch(ip) => Box::new(crate::source::ItchSource::open(&s.name, ip, interner)?),
        SourceKindPlan::Kafka(kp) => {
            Box::new(KafkaSource::open(&s.name, kp, s.unit, interner, plan.checkpoint.dir.is_some(), txn.clone())?)
        }
    })
}

/// A source's housekeeping (watermark broadcast, counters) runs at least this often while it has input.
const TICK_AT_LEAST_NS: u64 = 10_000_000;

/// How long a stopping source waits for the pipeline to make its last results durable.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// A source's link to the checkpoint coordinator.
struct SourceCheckpoints {
    trigger: Arc<Trigger>,
    parts: PartSender,
    /// The last checkpoint id seen.
    seen: u64,
    /// The last complete checkpoint the source was told of.
    completed: u64,
}

/// Sends this source's part of checkpoint `id` (its position, then its hand-off's state) and, unless it is
/// the final one of an ended source, injects the barrier behind everything handed over.
fn source_part(
    src: &mut dyn Source,
    out: &mut SourceOut,
    idx: usize,
    c: &SourceCheckpoints,
    id: u64,
    last: bool,
) -> Result<(), SourceError> {
    let mut e = Enc::new();
    let part = match src.checkpoint(id, &mut e) {
        Ok(position) => {
            out.encode(&mut e);
            Part::Source { id, source: idx, state: e.into_vec(), position, last }
        }
        Err(reason) => Part::Failed { id, reason: format!("source `{}`: {reason}", out.name()) },
    };
    let ok = matches!(part, Part::Source { .. });
    let _ = c.parts.send(part);
    if ok && !last {
        out.barrier(id)?;
    }
    Ok(())
}

/// A stopping source with checkpoints on: waits (reading nothing more) for the coordinator to ask for the final
/// checkpoint and hands over its part and barrier — unless the coordinator has closed or a stage has failed.
fn final_part(
    src: &mut dyn Source,
    out: &mut SourceOut,
    idx: usize,
    c: &mut SourceCheckpoints,
    failed: &AtomicBool,
) -> Result<(), SourceError> {
    loop {
        let id = c.trigger.final_id();
        if id > c.seen {
            c.seen = id;
            return source_part(src, out, idx, c, id, false);
        }
        if c.trigger.closed() || failed.load(Ordering::Relaxed) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Runs a source until its input ends, `stop` is set, or the pipeline breaks (`failed`: a stage failed).
fn run_source(
    mut src: Box<dyn Source>,
    mut out: SourceOut,
    idx: usize,
    (stop, failed): (&AtomicBool, &AtomicBool),
    fire_on_shutdown: bool,
    mut ckpt: Option<SourceCheckpoints>,
) -> anyhow::Result<()> {
    let mut polls = 0u32;
    let mut last_tick = crate::time::mono_now();
    loop {
        if stop.load(Ordering::Relaxed) {
            // Fire first, so that what the source commits on closing covers the windows fired.
            if fire_on_shutdown {
                out.final_watermark()?;
            }
            // With checkpoints, the stop is a final checkpoint: what was read is in it, nothing after.
            if let Some(c) = &mut ckpt {
                final_part(src.as_mut(), &mut out, idx, c, failed)?;
            }
            src.close(&mut out, CLOSE_TIMEOUT)?;
            out.finish(false)?;
            return Ok(());
        }
        if let Some(c) = &mut ckpt {
            let req = c.trigger.requested();
            if req > c.seen {
                c.seen = req;
                source_part(src.as_mut(), &mut out, idx, c, req, false)?;
            }
            let done = c.trigger.completed();
            if done > c.completed {
                c.completed = done;
                src.checkpoint_complete(done);
            }
        }
        let p = match src.poll(&mut out) {
            Ok(p) => p,
            Err(e) => {
                // Stop everything else; the shards see this source's rings dropped.
                stop.store(true, Ordering::Relaxed);
                return Err(e.into());
            }
        };
        polls = polls.wrapping_add(1);
        match p {
            Poll::Done => {
                out.tick(crate::time::mono_now())?;
                out.finish(true)?;
                if let Some(c) = &ckpt {
                    // Stands for this source in every checkpoint from now on.
                    source_part(src.as_mut(), &mut out, idx, c, c.seen, true)?;
                }
                return Ok(());
            }
            Poll::Idle => out.tick(crate::time::mono_now())?,
            Poll::More => {
                // Every 64 polls, or sooner when polls are slow (a paced source waits inside them): the
                // watermark broadcast and the live counters must not wait for 64 of those.
                let now = crate::time::mono_now();
                if polls % 64 == 0 || now.saturating_sub(last_tick) >= TICK_AT_LEAST_NS {
                    last_tick = now;
                    out.tick(now)?;
                }
            }
        }
    }
}

/// The checkpoint a run resumes from: its manifest and its state files, mapped.
struct Restored {
    manifest: Manifest,
    meta: StateFile,
    shards: Arc<Vec<StateFile>>,
}

impl Restored {
    fn load(dir: &Path) -> anyhow::Result<Restored> {
        let (manifest, files) = checkpoint::manifest::verify_open(dir)
            .with_context(|| format!("checkpoint {} does not verify", dir.display()))?;
        let mut meta = None;
        let mut shards: Vec<Option<StateFile>> = (0..manifest.shards).map(|_| None).collect();
        for f in files {
            let k = f.header().shard;
            match shards.get_mut(k as usize) {
                Some(slot) => *slot = Some(f),
                None => meta = Some(f),
            }
        }
        let missing = |what: String| anyhow::anyhow!("checkpoint {}: no {what}", dir.display());
        let meta = meta.ok_or_else(|| missing(coordinator::META_FILE.to_string()))?;
        let shards = shards
            .into_iter()
            .enumerate()
            .map(|(k, f)| f.ok_or_else(|| missing(checkpoint::manifest::state_file_name(k as u32))))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Restored { manifest, meta, shards: Arc::new(shards) })
    }

    fn section(&self, kind: u32, id: u32, what: &str) -> anyhow::Result<&[u8]> {
        self.meta.section(kind, id).ok_or_else(|| {
            anyhow::anyhow!("checkpoint {}: no {what} in {}", self.manifest.id, self.meta.path().display())
        })
    }
}

/// Writes the job's start record: where every source starts and every sink's output stands, before anything
/// is written (docs/checkpoints.md, "Before the first checkpoint").
fn write_start(
    root: &Path,
    sources: &mut [Box<dyn Source>],
    sinks: &mut [Box<dyn Sink>],
    plan: &Plan,
) -> anyhow::Result<()> {
    let mut st = checkpoint::manifest::Start {
        version: checkpoint::manifest::MANIFEST_VERSION,
        created_ns: SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64),
        sources: Vec::with_capacity(sources.len()),
        sinks: Vec::with_capacity(sinks.len()),
    };
    for (src, sp) in sources.iter_mut().zip(&plan.sources) {
        let pos = src
            .checkpoint(0, &mut Enc::new())
            .map_err(|e| anyhow::anyhow!("source `{}`: its start position: {e}", sp.name))?;
        st.sources.push(checkpoint::manifest::SourcePosition { source: sp.name.clone(), ..pos });
    }
    for s in sinks.iter_mut() {
        st.sinks.push(s.checkpoint(0).with_context(|| format!("{}: its start position", s.describe()))?);
    }
    checkpoint::manifest::write_start(root, &st)
        .with_context(|| format!("writing the start record in {}", root.display()))
}

/// The largest checkpoint id with a directory under `root`, or of a savepoint under `root/savepoints` (0:
/// none): savepoints and checkpoints share one sequence of ids.
fn newest_id(root: &Path) -> u64 {
    let checkpoints = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(checkpoint::manifest::parse_dir_name))
        .max()
        .unwrap_or(0);
    let savepoints = std::fs::read_dir(root.join(checkpoint::manifest::SAVEPOINTS))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| checkpoint::manifest::read_manifest(&e.path()).ok().map(|m| m.id))
        .max()
        .unwrap_or(0);
    checkpoints.max(savepoints)
}

/// Which checkpoint to resume from: `from` if given, else the newest valid one in `checkpoint.dir`.
fn find_restore(plan: &Plan, from: Option<&Path>) -> anyhow::Result<Option<Restored>> {
    if let Some(dir) = from {
        let r = Restored::load(dir)?;
        if r.manifest.transactional() {
            // A savepoint records the commit of its transactions in its own directory; a checkpoint named
            // directly has it in the job's checkpoint.dir.
            let root = plan.checkpoint.dir.as_deref().unwrap_or(Path::new("."));
            let committed = checkpoint::manifest::read_committed(dir)?.max(checkpoint::manifest::read_committed(root)?);
            if let Some(reason) = r.manifest.uncommitted(committed) {
                anyhow::bail!(
                    "{} (id {}) cannot be restored: {reason} (looked in it and in {}; a restore from it would lose \
                     the results its transactions held)",
                    dir.display(),
                    r.manifest.id,
                    root.join(checkpoint::manifest::COMMITTED).display()
                );
            }
        }
        return Ok(Some(r));
    }
    let Some(root) = &plan.checkpoint.dir else { return Ok(None) };
    match checkpoint::manifest::latest_valid(root)? {
        Some(info) => Restored::load(&info.path).map(Some),
        None => Ok(None),
    }
}

/// Builds the pipeline of `plan` and runs it until its input ends or `stop` is set (SIGINT/SIGTERM). With
/// `[checkpoint] dir` set it resumes from the newest valid checkpoint there, if any.
pub fn run(plan: &Plan, stop: Arc<AtomicBool>) -> anyhow::Result<RunOutcome> {
    run_from(plan, stop, None)
}

/// [`run`], resuming from the checkpoint or savepoint in directory `from` when given.
pub fn run_from(plan: &Plan, stop: Arc<AtomicBool>, from: Option<&Path>) -> anyhow::Result<RunOutcome> {
    run_with(plan, stop, from, Arc::new(std::sync::Mutex::new(plan.alerts.clone())))
}

/// [`run_from`], checking the alert rules in `alert_rules`, which a reload may replace while the job runs.
pub fn run_with(
    plan: &Plan,
    stop: Arc<AtomicBool>,
    from: Option<&Path>,
    alert_rules: Arc<std::sync::Mutex<crate::config::AlertsConfig>>,
) -> anyhow::Result<RunOutcome> {
    crate::time::init_clock();
    let started = Instant::now();
    let p = &plan.pipeline;
    let n_shards = p.workers;
    let n_sources = plan.sources.len();
    let symbols = Symbols::new();
    // First: a second job on the same checkpoint directory is refused before it reads or writes anything there.
    let (control_tx, control_rx) = std::sync::mpsc::channel();
    let _control = match &plan.checkpoint.dir {
        Some(root) => Some(checkpoint::control::Endpoint::open(root, control_tx)?),
        None => None,
    };
    let mut control_rx = Some(control_rx);
    // The metrics endpoint is bound before anything starts: a port in use stops the job here.
    let endpoint = match &plan.metrics.listen {
        Some(a) => {
            let addr = a.parse().with_context(|| format!("metrics.listen `{a}`"))?;
            Some(crate::metrics::http::Endpoint::bind(addr)?)
        }
        None => None,
    };
    let restored = find_restore(plan, from)?;
    let verified_ms = started.elapsed().as_secs_f64() * 1e3;
    if let Some(r) = &restored {
        let names: Vec<&str> = r.manifest.sources.iter().map(|s| s.source.as_str()).collect();
        let ours: Vec<&str> = plan.sources.iter().map(|s| s.name.as_str()).collect();
        if names != ours {
            anyhow::bail!(
                "checkpoint {} was taken with sources {names:?}, the configuration has {ours:?}",
                r.manifest.id
            );
        }
        let mut d = Dec::new(r.section(coordinator::SECTION_SYMBOLS, 0, "symbol table")?);
        symbols
            .restore(&mut d, p.max_instruments)
            .and_then(|()| d.finish())
            .with_context(|| format!("restoring the symbol table of checkpoint {}", r.manifest.id))?;
        tracing::info!(
            id = r.manifest.id,
            shards = r.manifest.shards,
            verified_ms,
            symbols_ms = started.elapsed().as_secs_f64() * 1e3 - verified_ms,
            "resuming from checkpoint"
        );
    }

    // A job that stopped before its first checkpoint completed resumes from where it started.
    let start = match (&restored, &plan.checkpoint.dir) {
        (None, Some(root)) => checkpoint::manifest::read_start(root)
            .with_context(|| format!("reading the start record in {}", root.display()))?,
        _ => None,
    };
    if let Some(st) = &start {
        let names: Vec<&str> = st.sources.iter().map(|s| s.source.as_str()).collect();
        let ours: Vec<&str> = plan.sources.iter().map(|s| s.name.as_str()).collect();
        if names != ours || st.sinks.len() != plan.sinks.len() {
            anyhow::bail!(
                "the start record in {} was written for sources {names:?} and {} sinks, the configuration has \
                 {ours:?} and {} sinks (a different job: give it its own checkpoint.dir)",
                plan.checkpoint.dir.as_ref().map_or(String::new(), |d| d.display().to_string()),
                st.sinks.len(),
                plan.sinks.len()
            );
        }
        tracing::info!("no complete checkpoint: resuming from where the job started (its start record)");
    }

    // Open everything that can fail on the user's input before starting any thread.
    let mut sources = Vec::with_capacity(n_sources);
    // Transactional sinks commit the Kafka sources' offsets in their transactions.
    let txn = plan
        .sinks
        .iter()
        .any(|s| s.kafka.as_ref().is_some_and(|k| k.transactional))
        .then(|| Arc::new(ConsumedOffsets::default()));
    // Per source: the rest of its section, its hand-off's state.
    let mut out_states: Vec<Option<&[u8]>> = vec![None; n_sources];
    for (i, state) in out_states.iter_mut().enumerate() {
        let mut src = open_source(plan, i, &symbols, &txn)?;
        if let Some(r) = &restored {
            let sec = r.section(coordinator::SECTION_SOURCE, i as u32, "source state")?;
            let mut d = Dec::new(sec);
            src.restore(&mut d).with_context(|| format!("restoring source `{}`", plan.sources[i].name))?;
            *state = Some(&sec[d.pos()..]);
        } else if let Some(st) = &start {
            src.resume_at(&st.sources[i]).with_context(|| format!("resuming source `{}`", plan.sources[i].name))?;
        }
        sources.push(src);
    }
    let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
    let mut routes: Vec<Vec<usize>> = vec![Vec::new(); plan.streams.len()];
    let transactional = txn.is_some();
    let mut producers = crate::sink::Producers::with_offsets(txn);
    if let Some(r) = &restored {
        if r.manifest.sinks.len() != plan.sinks.len() {
            anyhow::bail!(
                "checkpoint {} has {} sinks, the configuration {}",
                r.manifest.id,
                r.manifest.sinks.len(),
                plan.sinks.len()
            );
        }
    }
    for (j, sp) in plan.sinks.iter().enumerate() {
        let def = &plan.streams[sp.stream as usize];
        let resume = restored.as_ref().map(|r| &r.manifest.sinks[j]).or(start.as_ref().map(|s| &s.sinks[j]));
        let sink = crate::sink::open(sp, def, j, &stop, &mut producers, plan.checkpoint.dir.is_some(), resume)
            .with_context(|| format!("opening the sink of stream `{}`", def.name))?;
        routes[sp.stream as usize].push(sinks.len());
        sinks.push(sink);
    }
    if let (None, None, Some(root)) = (&restored, &start, &plan.checkpoint.dir) {
        write_start(root, &mut sources, &mut sinks, plan)?;
    }
    let mut log = match &plan.metrics.histogram_log {
        Some(path) => Some(
            IntervalLog::create(path, SystemTime::now())
                .with_context(|| format!("creating histogram log {}", path.display()))?,
        ),
        None => None,
    };

    let directories: Vec<_> = sources.iter().map(|s| s.directory()).collect();
    let metrics = Arc::new(Metrics {
        sources: sources
            .iter()
            .zip(&plan.sources)
            .map(|(s, sp)| {
                CachePadded::new(SourceMetrics {
                    name: sp.name.clone(),
                    live: match &sp.kind {
                        SourceKindPlan::Kafka(_) => true,
                        SourceKindPlan::Itch(ip) => ip.listen.is_some(),
                        SourceKindPlan::Synthetic(sy) => sy.rate > 0,
                        SourceKindPlan::Csv { .. } | SourceKindPlan::Jsonl { .. } => false,
                    },
                    partitions: (0..s.partitions()).map(|_| PartitionMetrics::default()).collect(),
                    feed: s.feed_metrics(),
                    ..Default::default()
                })
            })
            .collect(),
        shards: (0..n_shards).map(|_| CachePadded::new(ShardMetrics::default())).collect(),
        emitter: Default::default(),
        stream_rows: plan.streams.iter().map(|_| AtomicU64::new(0)).collect(),
        stream_names: plan.streams.iter().map(|s| s.name.clone()).collect(),
    });

    // Rings. Doorbells only when consumers park.
    let (worker_wait, emitter_wait) = (p.wait.workers(), p.wait.emitter());
    let shard_bells: Vec<Option<Arc<Doorbell>>> =
        (0..n_shards).map(|_| (worker_wait == Wait::Park).then(Doorbell::new)).collect();
    let inline = p.emitter == EmitterMode::Inline;
    // Rejects go to the emitter, or to the one shard when it writes to the sinks itself.
    let emitter_bell = if inline { shard_bells[0].clone() } else { (emitter_wait == Wait::Park).then(Doorbell::new) };
    let cap = p.ring_capacity;
    let mut shard_inputs: Vec<Vec<rtrb::Consumer<ShardMsg>>> = (0..n_shards).map(|_| Vec::new()).collect();
    let mut source_outs = Vec::with_capacity(n_sources);
    let mut reject_rings = Vec::with_capacity(n_sources);
    let mut ack_rings = Vec::with_capacity(n_sources);
    for (i, src) in sources.iter().enumerate() {
        let mut txs = Vec::with_capacity(n_shards);
        for (s, inputs) in shard_inputs.iter_mut().enumerate() {
            let (tx, rx) = rtrb::RingBuffer::new(cap);
            txs.push(Sender::new(tx, shard_bells[s].clone()));
            inputs.push(rx);
        }
        let (rtx, rrx) = rtrb::RingBuffer::new(1024);
        reject_rings.push((rrx, plan.sources[i].reject_stream));
        let (atx, arx) = rtrb::RingBuffer::new(64);
        ack_rings.push(atx);
        let sp = &plan.sources[i];
        let wms = if src.partitions_start_empty() {
            PartitionWatermarks::empty(src.partitions(), sp.bound, sp.idle_timeout)
        } else {
            PartitionWatermarks::new(src.partitions(), sp.bound, sp.idle_timeout)
        };
        let mut out = SourceOut::new(
            i,
            sp.name.clone(),
            txs,
            Sender::new(rtx, emitter_bell.clone()),
            arx,
            wms,
            if plan.metrics.latency { plan.metrics.latency_sample } else { 0 },
            metrics.clone(),
        );
        if let Some(state) = out_states[i] {
            let mut d = Dec::new(state);
            out.decode_into(&mut d)
                .and_then(|()| d.finish())
                .with_context(|| format!("restoring the watermarks of source `{}`", sp.name))?;
        }
        source_outs.push(out);
    }
    let mut emit_rx = Vec::with_capacity(n_shards);
    let mut emit_tx = Vec::with_capacity(n_shards);
    if !inline {
        for _ in 0..n_shards {
            let (tx, rx) = rtrb::RingBuffer::new(cap);
            emit_tx.push(Sender::new(tx, emitter_bell.clone()));
            emit_rx.push(rx);
        }
    }
    let mut hub = LatencyHub::new();
    let cores = &p.cores;
    let mut handles: Vec<(String, std::thread::JoinHandle<anyhow::Result<()>>)> = Vec::new();
    // A stage that fails stops the job: the sources stop reading and the others wind down, instead of
    // reading on until a full ring shows them the failed stage is gone.
    // Set with `stop` when a stage fails: then no final checkpoint is waited for.
    let failed = Arc::new(AtomicBool::new(false));
    let spawn = |name: String,
                 f: Box<dyn FnOnce() -> anyhow::Result<()> + Send>|
     -> anyhow::Result<(String, std::thread::JoinHandle<anyhow::Result<()>>)> {
        let (stop, failed) = (stop.clone(), failed.clone());
        let h = std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || {
                let res = f();
                if res.is_err() {
                    failed.store(true, Ordering::Relaxed);
                    stop.store(true, Ordering::Relaxed);
                }
                res
            })
            .with_context(|| format!("spawning thread {name}"))?;
        Ok((name, h))
    };

    // Checkpoints: the coordinator and every stage's way to it.
    let stats = Arc::new(CheckpointStats::default());
    let checkpointing = plan.checkpoint.dir.as_ref().map(|root| {
        let (tx, rx) = std::sync::mpsc::channel();
        let trigger = Arc::new(Trigger::default());
        let c = Coordinator {
            root: root.clone(),
            interval: Duration::from_nanos(plan.checkpoint.interval.0 as u64),
            timeout: Duration::from_nanos(plan.checkpoint.timeout.0 as u64),
            retain: plan.checkpoint.retain,
            tolerable_failures: plan.checkpoint.tolerable_failures,
            shards: n_shards,
            source_names: plan.sources.iter().map(|s| s.name.clone()).collect(),
            trigger: trigger.clone(),
            parts: rx,
            symbols: symbols.clone(),
            // New ids count on from the restored one and from any already in the directory (a run resumed
            // from an older checkpoint must not write into the directories of newer ones).
            last_id: restored.as_ref().map_or(0, |r| r.manifest.id).max(newest_id(root)),
            stats: stats.clone(),
            recorder: hub.recorder(),
            holds: sinks.iter().filter_map(|s| s.hold()).collect(),
            requests: control_rx.take(),
            transactions: transactional,
        };
        (c, trigger, tx)
    });
    let mut writer = emitter::Writer::new(
        sinks,
        routes,
        plan.streams.iter().map(|s| s.name.clone()).collect(),
        SymbolCache::new(symbols.clone()),
        metrics.clone(),
        ack_rings,
        stop.clone(),
    );
    if let Some((_, trigger, tx)) = &checkpointing {
        let commit_record = plan.checkpoint.dir.clone().filter(|_| transactional);
        writer.send_checkpoints_to(tx.clone(), trigger.clone(), commit_record);
    }
    let rejects = emitter::RejectRings::new(reject_rings);
    let mut targets: Vec<shard::Target> = Vec::with_capacity(n_shards);
    if inline {
        targets.push(shard::Target::Inline(Box::new(writer), rejects));
    } else {
        // Emitter.
        let emitter = emitter::Emitter { shards: emit_rx, rejects, writer, recorder: hub.recorder() };
        let core = cores.emitter;
        handles.push(spawn(
            "tl-emitter".into(),
            Box::new(move || {
                pin(core, "emitter");
                emitter.run(Idler::new(emitter_wait, emitter_bell)).map_err(anyhow::Error::from)
            }),
        )?);
        targets.extend(emit_tx.into_iter().map(shard::Target::Ring));
    }

    // Shards.
    let key_limit = symbols.len() as u32;
    let n_ops = plan.operators.len();
    for (id, (inputs, to)) in shard_inputs.into_iter().zip(targets).enumerate() {
        let ops = build_operators(plan);
        let recorder = hub.recorder();
        let m = metrics.clone();
        let bell = shard_bells[id].clone();
        let core = cores.workers.get(id).copied();
        let parts = checkpointing.as_ref().map(|(_, _, tx)| tx.clone());
        let states = restored.as_ref().map(|r| (r.manifest.id, r.shards.clone()));
        handles.push(spawn(
            format!("tl-shard-{id}"),
            Box::new(move || {
                pin(core, "shard");
                let mut w = ShardWorker::new(id, inputs, ops, to, Idler::new(worker_wait, bell), recorder, m);
                if let Some(tx) = parts {
                    w.send_checkpoints_to(tx);
                }
                if let Some((ck, files)) = states {
                    // Every old shard's state, each key kept by the shard that owns it now.
                    let owns = |k: KeyId| SourceOut::shard_of(k, n_shards) == id;
                    for f in files.iter() {
                        let sec = f.section(coordinator::SECTION_SHARD, 0).unwrap_or_default();
                        let ops: Vec<&[u8]> = (0..n_ops)
                            .map(|i| f.section(coordinator::SECTION_OPERATOR, i as u32).unwrap_or_default())
                            .collect();
                        w.restore(sec, &ops, key_limit, &owns, started).with_context(|| {
                            format!("shard {id}: restoring checkpoint {ck} from {}", f.path().display())
                        })?;
                    }
                    tracing::info!(shard = id, ms = started.elapsed().as_secs_f64() * 1e3, "state restored");
                }
                w.run().map_err(|e| anyhow::Error::from(e).context(format!("shard {id}")))
            }),
        )?);
    }

    // Sources.
    for (i, (src, out)) in sources.into_iter().zip(source_outs).enumerate() {
        let (stop, failed) = (stop.clone(), failed.clone());
        let fire = p.fire_on_shutdown;
        let core = cores.sources.get(i).copied();
        let ckpt = checkpointing.as_ref().map(|(c, trigger, tx)| SourceCheckpoints {
            trigger: trigger.clone(),
            parts: tx.clone(),
            seen: c.last_id,
            completed: c.last_id,
        });
        handles.push(spawn(
            format!("tl-source-{}", plan.sources[i].name),
            Box::new(move || {
                pin(core, "source");
                run_source(src, out, i, (&stop, &failed), fire, ckpt)
            }),
        )?);
    }

    // The coordinator: it stops when the job is asked to stop, when every source has ended, or when the
    // pipeline's threads are all gone; too many failed checkpoints in a row stop the job.
    let pipeline_done = Arc::new(AtomicBool::new(false));
    let coordinator = match checkpointing {
        Some((c, _, tx)) => {
            drop(tx);
            let (stop, done, failed) = (stop.clone(), pipeline_done.clone(), failed.clone());
            Some(
                std::thread::Builder::new()
                    .name("tl-checkpoint".into())
                    .spawn(move || {
                        let res = c.run(&stop, &done, &failed);
                        if res.is_err() {
                            failed.store(true, Ordering::Relaxed);
                            stop.store(true, Ordering::Relaxed);
                        }
                        res
                    })
                    .context("spawning the checkpoint coordinator")?,
            )
        }
        None => None,
    };

    // Metrics.
    let metrics_stop = Arc::new(AtomicBool::new(false));
    let alert_board = Arc::new(crate::metrics::alerts::Board::default());
    let report = Report {
        hub,
        metrics: metrics.clone(),
        log: log.take(),
        interval: Duration::from_nanos(plan.metrics.interval.0 as u64),
        live: plan.metrics.live,
        total: Hists::new(),
        publish: endpoint.as_ref().map(|_| Arc::new(crate::metrics::prom::Published::default())),
        alerts: crate::metrics::alerts::Alerts::new(alert_rules.clone(), alert_board.clone()),
        service: crate::service::Service::from_env(),
        shutdown: stop.clone(),
    };
    let http = match endpoint {
        Some(ep) => {
            let exp = crate::metrics::prom::Exposition {
                metrics: metrics.clone(),
                latency: report.publish.clone().expect("published with the endpoint"),
                checkpoints: plan.checkpoint.dir.as_ref().map(|_| stats.clone()),
                alerts: alert_board.clone(),
                started: crate::time::wall_now(),
            };
            let hs = metrics_stop.clone();
            tracing::info!("metrics at http://{}/metrics", ep.addr());
            Some(
                std::thread::Builder::new()
                    .name("tl-http".into())
                    .spawn(move || ep.serve(exp, hs))
                    .context("spawning the metrics endpoint")?,
            )
        }
        None => None,
    };
    let ms = metrics_stop.clone();
    let mcore = cores.metrics;
    let metrics_thread = std::thread::Builder::new()
        .name("tl-metrics".into())
        .spawn(move || {
            pin(mcore, "metrics");
            report.run(&ms)
        })
        .context("spawning the metrics thread")?;

    // Join in reverse order of the data flow's start: sources finish first, the emitter last.
    let mut errors: Vec<anyhow::Error> = Vec::new();
    for (name, h) in handles.into_iter().rev() {
        let res = h.join().unwrap_or_else(|panic| {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Err(anyhow::anyhow!("thread {name} panicked: {msg}"))
        });
        if let Err(e) = res {
            failed.store(true, Ordering::Relaxed);
            stop.store(true, Ordering::Relaxed);
            errors.push(e);
        }
    }
    pipeline_done.store(true, Ordering::Relaxed);
    if let Some(h) = coordinator {
        match h.join() {
            Ok(Ok(())) => {}
            // The root cause: the pipeline's own errors after it are consequences of the stop.
            Ok(Err(e)) => errors.insert(0, e.into()),
            Err(_) => errors.insert(0, anyhow::anyhow!("the checkpoint coordinator panicked")),
        }
    }
    metrics_stop.store(true, Ordering::Release);
    let (hists, _log) = metrics_thread.join().map_err(|_| anyhow::anyhow!("metrics thread panicked"))?;
    if let Some(h) = http {
        let _ = h.join();
    }
    if !errors.is_empty() {
        // A failing sink or shard makes the threads upstream of it fail with "stopped": report the cause.
        let consequence = |e: &anyhow::Error| {
            e.chain().any(|c| {
                matches!(c.downcast_ref::<shard::ShardError>(), Some(shard::ShardError::EmitterGone))
                    || matches!(
                        c.downcast_ref::<crate::source::SourceError>(),
                        Some(crate::source::SourceError::Disconnected(_))
                    )
            })
        };
        let root = errors.iter().position(|e| !consequence(e)).unwrap_or(0);
        return Err(errors.swap_remove(root));
    }
    let unrouted = metrics.emitter.unrouted.load(Ordering::Relaxed);
    if unrouted > 0 {
        for (i, def) in plan.streams.iter().enumerate() {
            let n = metrics.stream_rows[i].load(Ordering::Relaxed);
            if n > 0 && !plan.sinks.iter().any(|s| s.stream as usize == i) && def.kind != StreamKind::Reject {
                tracing::warn!(stream = %def.name, records = n, "records of a stream with no [[sink]] were counted but not written");
            }
        }
    }
    let checkpoints = plan.checkpoint.dir.as_ref().map(|_| stats);
    Ok(RunOutcome {
        elapsed: started.elapsed(),
        metrics,
        hists,
        stopped: stop.load(Ordering::Relaxed),
        checkpoints,
        directories,
    })
}
