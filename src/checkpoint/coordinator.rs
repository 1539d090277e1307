//! The checkpoint coordinator: starts a checkpoint every interval, collects every stage's part, and makes the
//! checkpoint complete on disk — off the pipeline's threads.
//!
//! A checkpoint starts when the coordinator stores its id in the [`Trigger`]; each source sees it between two
//! polls, writes its position and injects a barrier behind what it handed over; the barriers travel in-band
//! through the rings; each shard snapshots when a stage's inputs have all delivered theirs, the emitter syncs
//! the sinks when every shard's and every rejects ring's barrier has arrived. Each of them sends its [`Part`]
//! here, and the coordinator writes the state files, then the manifest (docs/checkpoints.md).

use super::codec::Enc;
use super::control::{Savepoint, SavepointRequest};
use super::file::{write_state_file, Section, StateHeader, PIPELINE_WIDE};
use super::manifest::{self, Manifest, SinkPosition, SourcePosition};
use crate::metrics::{LatencyRecorder, Stage};
use crate::symbols::Symbols;
use crossbeam_utils::CachePadded;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Section kinds of the state files.
pub const SECTION_SHARD: u32 = 1;
pub const SECTION_SOURCE: u32 = 2;
pub const SECTION_SYMBOLS: u32 = 3;
/// One operator's snapshot in a shard's file (`id`: the operator's index).
pub const SECTION_OPERATOR: u32 = 4;
/// The file holding the sources' sections and the symbol table (`shard` = [`PIPELINE_WIDE`] in its header).
pub const META_FILE: &str = "meta.state";

/// The id of the checkpoint the sources are asked to start (0: none yet), and of the last one complete on
/// disk. Sources read both once per poll.
#[derive(Debug, Default)]
pub struct Trigger {
    requested: CachePadded<AtomicU64>,
    completed: AtomicU64,
    /// With Kafka sinks in transactions: the last checkpoint whose transactions are committed and recorded.
    committed: AtomicU64,
}

impl Trigger {
    #[inline]
    pub fn requested(&self) -> u64 {
        self.requested.load(Ordering::Relaxed)
    }

    /// Stored before the next checkpoint is requested (Release/Acquire): a stage that sees checkpoint n+1's
    /// barrier and then reads this sees at least n when n completed.
    #[inline]
    pub fn completed(&self) -> u64 {
        self.completed.load(Ordering::Acquire)
    }

    /// The transactions of checkpoint `id` and before are committed, and the commit recorded.
    pub fn set_committed(&self, id: u64) {
        self.committed.store(id, Ordering::Release);
    }

    pub fn committed(&self) -> u64 {
        self.committed.load(Ordering::Acquire)
    }

    fn request(&self, id: u64) {
        self.requested.store(id, Ordering::Relaxed);
    }
}

/// Something that keeps checkpoints from starting while `pending` is not 0: a Kafka sink after a restore,
/// until it has computed again every result written after the checkpoint (its output position is not
/// known before).
#[derive(Debug, Clone)]
pub struct Hold {
    /// The sink, for the log.
    pub what: String,
    pub pending: Arc<AtomicU64>,
}

/// What a stage contributes to checkpoint `id`.
#[derive(Debug)]
pub enum Part {
    /// A source at its barrier; `last`: the source has ended and this is its final state, which stands for
    /// it in this and every later checkpoint.
    Source { id: u64, source: usize, state: Vec<u8>, position: SourcePosition, last: bool },
    /// A shard's state at the barrier — its own section, then one per operator — and the longest the shard
    /// stopped for it; the sections go back to the shard through `give_back` once written, to be reused.
    Shard { id: u64, shard: usize, sections: Vec<Vec<u8>>, pause_ns: u64, give_back: Sender<Vec<Vec<u8>>> },
    /// The sinks, synced, and where their output stands.
    Sinks { id: u64, positions: Vec<SinkPosition> },
    /// A stage could not take part (the reason names it).
    Failed { id: u64, reason: String },
}

/// Settings and figures of the coordinator.
pub struct Coordinator {
    pub root: PathBuf,
    pub interval: Duration,
    pub timeout: Duration,
    pub retain: usize,
    pub tolerable_failures: u32,
    pub shards: usize,
    pub source_names: Vec<String>,
    pub trigger: Arc<Trigger>,
    pub parts: Receiver<Part>,
    pub symbols: Arc<Symbols>,
    /// The id of the checkpoint restored from (0: none); new ones count on from it.
    pub last_id: u64,
    pub stats: Arc<CheckpointStats>,
    /// Checkpoint durations and sizes go into the latency histograms (and their interval log).
    pub recorder: LatencyRecorder,
    /// No checkpoint starts while one of these is pending; held longer than `timeout`, that counts as a
    /// failed checkpoint.
    pub holds: Vec<Hold>,
    /// Savepoints asked for through the control endpoint.
    pub requests: Option<Receiver<SavepointRequest>>,
    /// A sink writes in Kafka transactions: a savepoint is answered once its transactions are committed, and
    /// carries its own commit record (so that it restores under another `checkpoint.dir` too).
    pub transactions: bool,
}

/// A savepoint being taken: its name, directory, and who waits for it.
struct SavepointTarget {
    name: String,
    dir: PathBuf,
    reply: std::sync::mpsc::Sender<Result<Savepoint, String>>,
}

/// Figures of the checkpoints taken, for the summary and the live metrics.
#[derive(Debug, Default)]
pub struct CheckpointStats {
    pub completed: AtomicU64,
    pub failed: AtomicU64,
    pub last_id: AtomicU64,
    pub last_bytes: AtomicU64,
    pub last_duration_ns: AtomicU64,
    pub max_pause_ns: AtomicU64,
}

/// Why the job stopped because of checkpoints.
#[derive(Debug, thiserror::Error)]
#[error("{failures} checkpoints in a row failed (checkpoint.tolerable_failures = {tolerable}); the last: {last}")]
pub struct TooManyFailures {
    pub failures: u32,
    pub tolerable: u32,
    pub last: String,
}

/// A shard's state, its pause, and where the buffer goes back.
type ShardPart = (Vec<Vec<u8>>, u64, Sender<Vec<Vec<u8>>>);

struct Collect {
    id: u64,
    started: Instant,
    sources: Vec<Option<(Vec<u8>, SourcePosition)>>,
    shards: Vec<Option<ShardPart>>,
    sinks: Option<Vec<SinkPosition>>,
    savepoint: Option<SavepointTarget>,
}

impl Collect {
    fn missing(&self, finals: &[Option<(Vec<u8>, SourcePosition)>], names: &[String]) -> Vec<String> {
        let mut m: Vec<String> = Vec::new();
        for (i, s) in self.sources.iter().enumerate() {
            if s.is_none() && finals[i].is_none() {
                m.push(format!("source `{}`", names[i]));
            }
        }
        for (i, s) in self.shards.iter().enumerate() {
            if s.is_none() {
                m.push(format!("shard {i}"));
            }
        }
        if self.sinks.is_none() {
            m.push("the sinks".into());
        }
        m
    }
}

impl Coordinator {
    /// Takes checkpoints until `stop` is set or every source has ended. Fails after more consecutive failed
    /// checkpoints than tolerated.
    pub fn run(mut self, stops: &[&AtomicBool]) -> Result<(), TooManyFailures> {
        let res = self.take_checkpoints(stops);
        self.recorder.finish();
        res
    }

    fn take_checkpoints(&mut self, stops: &[&AtomicBool]) -> Result<(), TooManyFailures> {
        let stopped = || stops.iter().any(|s| s.load(Ordering::Relaxed));
        let n_sources = self.source_names.len();
        let mut finals: Vec<Option<(Vec<u8>, SourcePosition)>> = (0..n_sources).map(|_| None).collect();
        let mut id = self.last_id;
        let mut failures = 0u32;
        let mut next_start = Instant::now() + self.interval;
        let mut held_since: Option<Instant> = None;
        let mut savepoint: Option<SavepointRequest> = None;
        loop {
            // Wait for the next start (or a savepoint request), keeping the final parts of sources that end
            // meanwhile.
            loop {
                if stopped() || finals.iter().all(Option::is_some) {
                    if let Some(r) = savepoint.take() {
                        let _ = r.reply.send(Err("the job is stopping".into()));
                    }
                    return Ok(());
                }
                if savepoint.is_none() {
                    savepoint = self.requests.as_ref().and_then(|r| r.try_recv().ok());
                }
                let now = Instant::now();
                if now >= next_start || savepoint.is_some() {
                    break;
                }
                self.recorder.tick();
                match self.parts.recv_timeout((next_start - now).min(Duration::from_millis(20))) {
                    Ok(Part::Source { source, state, position, last: true, .. }) => {
                        finals[source] = Some((state, position))
                    }
                    Ok(_) | Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => return Ok(()),
                }
            }
            if let Some(h) = self.holds.iter().find(|h| h.pending.load(Ordering::Relaxed) > 0) {
                if let Some(r) = savepoint.take() {
                    let _ = r.reply.send(Err(format!(
                        "not now: {} has results written before the restore not yet computed again",
                        h.what
                    )));
                }
                let now = Instant::now();
                let since = *held_since.get_or_insert(now);
                if since == now {
                    tracing::info!(sink = %h.what, pending = h.pending.load(Ordering::Relaxed), "checkpoints wait until the results written before the restore have been computed again");
                }
                if now - since < self.timeout {
                    next_start = now + Duration::from_millis(20);
                    continue;
                }
                held_since = Some(now);
                failures += 1;
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                let reason = format!(
                    "{}: {} results written before the restore have not been computed again within {:?} \
                     (checkpoint.timeout): the restored run does not reproduce them",
                    h.what,
                    h.pending.load(Ordering::Relaxed),
                    self.timeout
                );
                tracing::warn!(failures, %reason, "checkpoint failed");
                if failures > self.tolerable_failures {
                    return Err(TooManyFailures { failures, tolerable: self.tolerable_failures, last: reason });
                }
                next_start = now + self.interval;
                continue;
            }
            if held_since.take().is_some() {
                tracing::info!("checkpoints resume");
            }
            id += 1;
            let target = match savepoint.take().map(|r| self.savepoint_target(r, id)) {
                Some(Err(())) => continue,
                Some(Ok(t)) => Some(t),
                None => None,
            };
            let started = Instant::now();
            // A savepoint does not move the checkpoint schedule.
            if target.is_none() {
                next_start = started + self.interval;
            }
            self.trigger.request(id);
            let mut c = Collect {
                id,
                started,
                sources: (0..n_sources).map(|_| None).collect(),
                shards: (0..self.shards).map(|_| None).collect(),
                sinks: None,
                savepoint: target,
            };
            let outcome = self.collect(&mut c, &mut finals, &stopped).and_then(|()| self.complete(&c, &finals));
            let pauses = c.shards.iter().flatten().map(|s| s.1).max().unwrap_or(0);
            for (state, _, back) in c.shards.iter_mut().filter_map(Option::take) {
                let _ = back.send(state);
            }
            if let Ok(bytes) = &outcome {
                failures = 0;
                let took = started.elapsed();
                let pause = pauses;
                let st = &self.stats;
                st.completed.fetch_add(1, Ordering::Relaxed);
                st.last_id.store(id, Ordering::Relaxed);
                st.last_bytes.store(*bytes, Ordering::Relaxed);
                st.last_duration_ns.store(took.as_nanos() as u64, Ordering::Relaxed);
                st.max_pause_ns.fetch_max(pause, Ordering::Relaxed);
                self.recorder.record(Stage::CheckpointDuration, took.as_nanos() as u64);
                self.recorder.record(Stage::CheckpointBytes, *bytes);
                tracing::info!(
                    id,
                    bytes,
                    duration_ms = took.as_secs_f64() * 1e3,
                    max_shard_pause_us = pause as f64 / 1e3,
                    "checkpoint complete"
                );
                // After the log line: what completion sets off (a sink's commit) logs after it.
                self.trigger.completed.store(id, Ordering::Release);
            }
            // Answered after the completion is announced: with transactions, the answer waits for their commit.
            if let Some(sp) = c.savepoint.take() {
                let answer = match &outcome {
                    Ok(bytes) => self.record_commit(id, &sp.dir, &stopped).map(|()| Savepoint {
                        id,
                        bytes: *bytes,
                        dir: sp.dir.clone(),
                    }),
                    Err(reason) => Err(reason.clone()),
                };
                match &answer {
                    Ok(_) => tracing::info!(id, name = %sp.name, dir = %sp.dir.display(), "savepoint complete"),
                    Err(reason) => tracing::warn!(id, name = %sp.name, %reason, "savepoint failed"),
                }
                let _ = sp.reply.send(answer);
            }
            match outcome {
                Ok(_) => {}
                Err(reason) if stopped() => {
                    tracing::info!(id, %reason, "checkpoint abandoned: the job is stopping");
                    return Ok(());
                }
                Err(reason) => {
                    failures += 1;
                    self.stats.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(id, failures, %reason, "checkpoint failed");
                    if failures > self.tolerable_failures {
                        return Err(TooManyFailures { failures, tolerable: self.tolerable_failures, last: reason });
                    }
                }
            }
        }
    }

    /// With transactions, once savepoint `id` is complete in `dir`: waits (up to `checkpoint.timeout`) for
    /// its transactions to be committed, then records that in `dir` as well. Called after the completion is
    /// announced, which sets the commit off.
    fn record_commit(&self, id: u64, dir: &std::path::Path, stopped: &dyn Fn() -> bool) -> Result<(), String> {
        if !self.transactions {
            return Ok(());
        }
        let deadline = Instant::now() + self.timeout;
        while self.trigger.committed() < id {
            let why = if stopped() {
                "before the job stopped".to_string()
            } else if Instant::now() >= deadline {
                format!("within {:?} (checkpoint.timeout)", self.timeout)
            } else {
                std::thread::sleep(Duration::from_millis(2));
                continue;
            };
            return Err(format!(
                "savepoint {id} is written in {}, but its Kafka transactions were not committed {why}: restoring it \
                 would lose their results",
                dir.display()
            ));
        }
        manifest::write_committed(dir, id).map_err(|e| format!("recording the commit of savepoint {id}: {e}"))
    }

    /// Where savepoint `id` goes: the request's directory, or `<checkpoint.dir>/savepoints/<name>` (name
    /// `savepoint-<id>` unless given). Refuses (answering the request) a directory that exists already.
    fn savepoint_target(&self, r: SavepointRequest, id: u64) -> Result<SavepointTarget, ()> {
        let name = r.name.unwrap_or_else(|| format!("savepoint-{id}"));
        let dir = r.dir.unwrap_or_else(|| self.root.join(manifest::SAVEPOINTS).join(&name));
        if dir.exists() {
            let _ = r.reply.send(Err(format!("{} exists already", dir.display())));
            return Err(());
        }
        Ok(SavepointTarget { name, dir, reply: r.reply })
    }

    /// Waits for every part of checkpoint `c.id`.
    fn collect(
        &mut self,
        c: &mut Collect,
        finals: &mut [Option<(Vec<u8>, SourcePosition)>],
        stopped: &dyn Fn() -> bool,
    ) -> Result<(), String> {
        let deadline = c.started + self.timeout;
        loop {
            if c.missing(finals, &self.source_names).is_empty() {
                return Ok(());
            }
            if stopped() {
                return Err("stopped".into());
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(format!(
                    "not complete after {:?} (checkpoint.timeout); missing: {}",
                    self.timeout,
                    c.missing(finals, &self.source_names).join(", ")
                ));
            }
            match self.parts.recv_timeout((deadline - now).min(Duration::from_millis(20))) {
                Ok(Part::Source { source, state, position, last: true, .. }) => {
                    finals[source] = Some((state, position))
                }
                Ok(Part::Source { id, source, state, position, .. }) if id == c.id => {
                    c.sources[source] = Some((state, position))
                }
                Ok(Part::Shard { id, shard, sections, pause_ns, give_back }) if id == c.id => {
                    c.shards[shard] = Some((sections, pause_ns, give_back))
                }
                Ok(Part::Sinks { id, positions }) if id == c.id => c.sinks = Some(positions),
                Ok(Part::Failed { id, reason }) if id == c.id => return Err(reason),
                // Parts of an abandoned checkpoint.
                Ok(_) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Err("the pipeline stopped".into()),
            }
        }
    }

    /// Writes the state files and then the manifest; returns the checkpoint's size in bytes. What a failed
    /// attempt wrote is removed (a full disk would otherwise stay full).
    fn complete(&self, c: &Collect, finals: &[Option<(Vec<u8>, SourcePosition)>]) -> Result<u64, String> {
        let dir = match &c.savepoint {
            Some(sp) => sp.dir.clone(),
            None => manifest::checkpoint_dir(&self.root, c.id),
        };
        let res = self.write(&dir, c, finals);
        if res.is_err() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        res
    }

    fn write(
        &self,
        dir: &std::path::Path,
        c: &Collect,
        finals: &[Option<(Vec<u8>, SourcePosition)>],
    ) -> Result<u64, String> {
        let dir = dir.to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        crate::checkpoint::crash_point("creating a checkpoint directory");
        let created_ns = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64);
        let header = |shard: u32| StateHeader { checkpoint_id: c.id, shard, shards: self.shards as u32, created_ns };
        let mut files = Vec::new();
        let mut size = 0;
        for (k, s) in c.shards.iter().enumerate() {
            let (state, _, _) = s.as_ref().expect("complete");
            let name = manifest::state_file_name(k as u32);
            let path = dir.join(&name);
            let sec: Vec<Section<'_>> = state
                .iter()
                .enumerate()
                .map(|(i, b)| match i {
                    0 => Section { kind: SECTION_SHARD, id: 0, bytes: b },
                    _ => Section { kind: SECTION_OPERATOR, id: i as u32 - 1, bytes: b },
                })
                .collect();
            size += write_state_file(&path, &header(k as u32), &sec).map_err(|e| e.to_string())?;
            files.push(path);
        }
        let mut symbols = Enc::new();
        self.symbols.encode(&mut symbols);
        let mut positions = Vec::new();
        let mut sections = vec![Section { kind: SECTION_SYMBOLS, id: 0, bytes: symbols.bytes() }];
        for (i, s) in c.sources.iter().enumerate() {
            let (state, pos) = s.as_ref().or(finals[i].as_ref()).expect("complete");
            sections.push(Section { kind: SECTION_SOURCE, id: i as u32, bytes: state });
            positions.push(SourcePosition { source: self.source_names[i].clone(), ..pos.clone() });
        }
        let meta = dir.join(META_FILE);
        size += write_state_file(&meta, &header(PIPELINE_WIDE), &sections).map_err(|e| e.to_string())?;
        files.push(meta);
        let entries =
            files.iter().map(|p| manifest::file_entry(p)).collect::<Result<Vec<_>, _>>().map_err(|e| e.to_string())?;
        let m = Manifest {
            version: 1,
            id: c.id,
            created_ns,
            kind: if c.savepoint.is_some() { manifest::KIND_SAVEPOINT } else { manifest::KIND_CHECKPOINT }.into(),
            name: c.savepoint.as_ref().map(|s| s.name.clone()),
            shards: self.shards as u32,
            files: entries,
            sources: positions,
            sinks: c.sinks.clone().expect("complete"),
        };
        manifest::write_manifest(&dir, &m).map_err(|e| e.to_string())?;
        if c.savepoint.is_some() {
            // Savepoints are the user's: never pruned.
            return Ok(size);
        }
        if let Err(e) = manifest::prune(&self.root, self.retain) {
            tracing::warn!(error = %e, "could not delete old checkpoints");
        }
        Ok(size)
    }
}

/// A stage's way to the coordinator.
pub type PartSender = Sender<Part>;
