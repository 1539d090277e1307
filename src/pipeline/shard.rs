//! A shard worker: owns the state of the keys hashed to it, drives its operators with events and
//! watermarks, and pushes their results to the emitter (or, with an inline emitter, writes them itself).

use super::barrier::Alignment;
use super::emitter::{RejectRings, SinkError, Writer};
use super::ring::{Idler, Sender};
use super::{Ack, EmitMsg, ShardMsg};
use crate::checkpoint::codec::{Dec, DecodeError, Enc};
use crate::checkpoint::coordinator::{Part, PartSender};
use crate::event::{KeyBy, KeyId, Nanos, WATERMARK_MAX};
use crate::metrics::{LatencyRecorder, Metrics, Stage};
use crate::operator::Operator;
use crate::record::{Collector, Record, StreamId};
use crate::time::mono_now;
use crate::time::watermark::Frontier;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::Arc;

/// An operator, the sources (bit i = input ring i) it consumes, and its watermark: the minimum over those
/// sources only (a window over one source is not held back by another it does not read, as in Flink).
pub struct OpSlot {
    pub op: Box<dyn Operator>,
    pub inputs: u64,
    frontier: Frontier,
}

impl OpSlot {
    pub fn new(op: Box<dyn Operator>, inputs: u64, sources: usize) -> Self {
        Self { op, inputs, frontier: Frontier::over(sources, inputs) }
    }
}

/// Where a shard's results go.
pub enum Target {
    /// The ring to the emitter thread.
    Ring(Sender<EmitMsg>),
    /// Straight to the sinks (`pipeline.emitter = "inline"`, one shard only), with the sources' rejects.
    Inline(Box<Writer>, RejectRings),
}

/// The shard's output, as operators see it.
struct Out {
    to: Target,
    recorder: LatencyRecorder,
    /// Ingest time of the event (or watermark) being processed; 0 if not timed.
    t0: u64,
    outputs: u64,
    late: u64,
    failed: Option<ShardError>,
    /// Which source partition each key came from.
    owners: Owners,
    /// (input, partition, from): window results of that partition's keys starting at or before `from` are
    /// dropped (they were written in full before the commit the partition resumed from).
    resumed: Vec<(usize, u16, Nanos)>,
    /// Results dropped that way.
    suppressed: u64,
}

impl Out {
    /// Commit marker `id` of input `i` has passed: pass it on (or, writing the sinks here, make them durable
    /// and acknowledge it to the source).
    fn marker(&mut self, i: usize, id: u64, retain: Nanos) {
        let res = match &mut self.to {
            Target::Ring(tx) => {
                tx.send(EmitMsg::Marker { source: i as u16, id, retain }).map_err(|_| ShardError::EmitterGone)
            }
            Target::Inline(w, _) => w.commit_point(i, Ack { id, retain }).map_err(ShardError::Sink),
        };
        if let Err(e) = res {
            self.failed.get_or_insert(e);
        }
    }
}

impl Out {
    /// True if `rec` repeats a window written in full before the commit its partition resumed from.
    #[cold]
    fn written_before(&self, rec: &Record) -> bool {
        let Record::Window(w) = rec else { return false };
        self.resumed.iter().any(|&(i, part, from)| w.start <= from && self.owners.part_of(i, w.key) == Some(part))
    }
}

impl Collector for Out {
    #[inline]
    fn emit(&mut self, stream: StreamId, rec: Record) {
        if !self.resumed.is_empty() && self.written_before(&rec) {
            self.suppressed += 1;
            return;
        }
        let t1 = if self.t0 != 0 { mono_now() } else { 0 };
        if matches!(rec, Record::Late(_)) {
            self.late += 1;
        }
        self.outputs += 1;
        let res = match &mut self.to {
            Target::Ring(tx) => {
                tx.send(EmitMsg::Out { stream, rec, t0: self.t0, t1 }).map_err(|_| ShardError::EmitterGone)
            }
            Target::Inline(w, _) => w.write(stream, &rec, self.t0, t1, &mut self.recorder).map_err(ShardError::Sink),
        };
        if let Err(e) = res {
            self.failed.get_or_insert(e);
        }
    }
}

/// Why a shard stopped early.
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    /// The emitter stopped (its error is reported by its own thread).
    #[error("the emitter stopped")]
    EmitterGone,
    /// A sink of the inline emitter failed.
    #[error(transparent)]
    Sink(#[from] SinkError),
}

/// Which source partition each key last came from, per input: what to forget when a partition leaves.
#[derive(Default)]
struct Owners {
    /// Per input, per key: partition + 1 (0: none).
    by_input: Vec<Vec<u16>>,
}

impl Owners {
    #[inline]
    fn note(&mut self, input: usize, key: KeyId, part: u16) {
        if self.by_input.len() <= input {
            self.by_input.resize_with(input + 1, Vec::new);
        }
        let v = &mut self.by_input[input];
        if v.len() <= key as usize {
            v.resize(key as usize + 1, 0);
        }
        v[key as usize] = part + 1;
    }

    /// The partition `key` of `input` last came from.
    #[inline]
    fn part_of(&self, input: usize, key: KeyId) -> Option<u16> {
        match self.by_input.get(input)?.get(key as usize)? {
            0 => None,
            p => Some(p - 1),
        }
    }

    /// The keys that came from `part` of `input`, which are forgotten.
    fn take(&mut self, input: usize, part: u16) -> Vec<KeyId> {
        let Some(v) = self.by_input.get_mut(input) else { return Vec::new() };
        let mut keys = Vec::new();
        for (k, o) in v.iter_mut().enumerate() {
            if *o == part + 1 {
                *o = 0;
                keys.push(k as KeyId);
            }
        }
        keys
    }
}

/// A shard snapshot's sections: the shard's own, then one per operator.
type Sections = Vec<Vec<u8>>;

/// How long one pass of the shard's loop may spend writing a pending snapshot before it takes the next batch
/// of events. A budget in time, not in keys: keys differ in size (a session window's key, a TWAP's points),
/// and a short step is also less likely to be the one a preemption lands in on a machine with more threads
/// than cores. 2,048 keys a step took ~0.2 ms at p50 and 1.4 ms at p99 with 100,000 windows (BENCHMARKS.md,
/// "(g) Checkpoints"), over the 1 ms p99 the pause must stay under.
const SNAPSHOT_STEP_NS: u64 = 50_000;
/// Keys written between two looks at the clock (a few µs of work).
const SNAPSHOT_STEP_KEYS: usize = 32;

/// Messages taken from one input ring before looking at the next.
const BATCH: usize = 256;

pub struct ShardWorker {
    pub id: usize,
    inputs: Vec<rtrb::Consumer<ShardMsg>>,
    ended: Vec<bool>,
    /// An input was dropped without its end-of-input (its source failed).
    lost: bool,
    /// Checkpoint barriers of the inputs.
    align: Alignment,
    /// Where this shard's part of a checkpoint goes (checkpoints on).
    checkpoints: Option<PartSender>,
    /// The shard's own snapshot section; the sections of the checkpoint before come back through `spare`
    /// once written, and are written into again (`spares`: the operators', until their snapshots end).
    enc: Enc,
    spare: (mpsc::Sender<Sections>, mpsc::Receiver<Sections>),
    spares: Vec<Vec<u8>>,
    /// A checkpoint whose operator snapshots are still being written, and the longest stop for it so far.
    pending: Option<(u64, u64)>,
    /// Restored from a checkpoint: when the run started, to report how long until the first event.
    restored_since: Option<std::time::Instant>,
    /// Over all inputs: the shard's watermark, for metrics.
    frontier: Frontier,
    ops: Vec<OpSlot>,
    out: Out,
    idler: Idler,
    metrics: Arc<Metrics>,
    arrival: u64,
}

impl ShardWorker {
    pub fn new(
        id: usize,
        inputs: Vec<rtrb::Consumer<ShardMsg>>,
        ops: Vec<OpSlot>,
        to: Target,
        idler: Idler,
        recorder: LatencyRecorder,
        metrics: Arc<Metrics>,
    ) -> Self {
        let n = inputs.len();
        Self {
            id,
            inputs,
            ended: vec![false; n],
            lost: false,
            align: Alignment::new(n),
            checkpoints: None,
            enc: Enc::new(),
            spare: std::sync::mpsc::channel(),
            spares: Vec::new(),
            pending: None,
            restored_since: None,
            frontier: Frontier::new(n),
            ops,
            out: Out {
                to,
                recorder,
                t0: 0,
                outputs: 0,
                late: 0,
                failed: None,
                owners: Owners::default(),
                resumed: Vec::new(),
                suppressed: 0,
            },
            idler,
            metrics,
            arrival: 0,
        }
    }

    /// Runs until every input has ended, then tells the emitter (or flushes the sinks, when inline).
    pub fn run(mut self) -> Result<(), ShardError> {
        let mut events = 0u64;
        let capacity = self.inputs.iter().map(|c| c.buffer().capacity() as u64).sum();
        self.metrics.shards[self.id].capacity.store(capacity, Ordering::Relaxed);
        loop {
            let mut got = false;
            for i in 0..self.inputs.len() {
                if self.ended[i] || self.align.blocked(i) {
                    continue;
                }
                // When the event before in this batch was done (0: none, or not timed): the next event's
                // start, so the shard reads the clock once per event. What that adds to the `shard` stage is
                // the ring pop and prefetch between the two (tens of ns); nothing waits there.
                let mut done = 0u64;
                for _ in 0..BATCH {
                    let prev_done = std::mem::take(&mut done);
                    let Ok(msg) = self.inputs[i].pop() else {
                        if self.inputs[i].is_abandoned() && self.inputs[i].is_empty() {
                            // The source thread is gone without saying goodbye (it failed): stop waiting for it.
                            self.ended[i] = true;
                            self.lost = true;
                        }
                        break;
                    };
                    got = true;
                    // While this message is processed, the CPU can already load the next one's per-key state.
                    // (Prefetching also what that state points to, from two messages ahead, measured slower.)
                    if let Ok(ShardMsg::Event { ev: next, .. }) = self.inputs[i].peek() {
                        for slot in &self.ops {
                            slot.op.prefetch(next);
                        }
                    }
                    match msg {
                        ShardMsg::Event { ev, part, wm, t0 } => {
                            if let Some(since) = self.restored_since.take() {
                                let ms = since.elapsed().as_secs_f64() * 1e3;
                                tracing::info!(shard = self.id, ms, "first event after restore");
                            }
                            let t_in = match (t0, prev_done) {
                                (0, _) => 0,
                                (_, 0) => mono_now(),
                                (_, t) => t,
                            };
                            self.out.t0 = t0;
                            self.watermark(i, wm, false);
                            self.out.owners.note(i, ev.key(KeyBy::Instrument), part);
                            let arrival = self.arrival;
                            self.arrival += 1;
                            for slot in &mut self.ops {
                                if slot.inputs & (1 << i) != 0 {
                                    slot.op.on_event(&ev, arrival, &mut self.out);
                                }
                            }
                            events += 1;
                            if t0 != 0 {
                                done = mono_now();
                                self.out.recorder.record(Stage::IngestToShard, t_in.saturating_sub(t0));
                                self.out.recorder.record(Stage::Shard, done.saturating_sub(t_in));
                            }
                        }
                        ShardMsg::Watermark { wm, idle, t0 } => {
                            self.out.t0 = t0;
                            self.watermark(i, wm, idle);
                        }
                        ShardMsg::Marker { id } => {
                            let retain = self.retained_from(i);
                            self.out.marker(i, id, retain);
                        }
                        ShardMsg::Barrier { id } => {
                            self.align.arrive(i, id);
                            break;
                        }
                        ShardMsg::Resume { part, from } => {
                            self.out.resumed.retain(|&(j, p, _)| (j, p) != (i, part));
                            self.out.resumed.push((i, part, from));
                        }
                        ShardMsg::Forget { part } => {
                            self.out.resumed.retain(|&(j, p, _)| (j, p) != (i, part));
                            for key in self.out.owners.take(i, part) {
                                for slot in &mut self.ops {
                                    if slot.inputs & (1 << i) != 0 {
                                        slot.op.forget(key);
                                    }
                                }
                            }
                        }
                        ShardMsg::End => {
                            self.ended[i] = true;
                            break;
                        }
                    }
                }
                if let Some(e) = self.out.failed.take() {
                    return Err(e);
                }
            }
            let mut rejects_ended = true;
            if let Target::Inline(w, rejects) = &mut self.out.to {
                got |= rejects.drain(w)?;
                rejects_ended = rejects.all_ended();
            }
            if let Some(id) = self.align.complete(&self.ended) {
                let rejects_in = match &self.out.to {
                    Target::Inline(_, rejects) => rejects.aligned() == Some(id),
                    Target::Ring(_) => true,
                };
                if rejects_in {
                    self.checkpoint(id)?;
                    got = true;
                }
            }
            if self.pending.is_some() {
                // A few thousand keys between batches: the shard never stops for the whole state.
                self.snapshot_step(SNAPSHOT_STEP_NS);
                got = true;
            }
            self.out.recorder.tick();
            if let Target::Inline(w, _) = &mut self.out.to {
                w.poll_completed()?;
            }
            if got {
                self.publish(events);
                self.idler.reset();
            } else if self.ended.iter().all(|&e| e) && rejects_ended {
                break;
            } else if let Target::Inline(w, _) = &mut self.out.to {
                // Nothing waiting: hand buffered output to the OS, so results show up.
                w.flush()?;
                let (inputs, align, quiet) = (&self.inputs, &self.align, &mut self.idler);
                quiet.idle(|| inputs.iter().enumerate().all(|(i, c)| align.blocked(i) || c.is_empty()));
            } else {
                let (inputs, align) = (&self.inputs, &self.align);
                self.idler.idle(|| inputs.iter().enumerate().all(|(i, c)| align.blocked(i) || c.is_empty()));
            }
        }
        while !self.snapshot_step(u64::MAX) {}
        self.publish(events);
        let Out { to, recorder, .. } = self.out;
        recorder.finish();
        match to {
            // Dropped without its end-of-input, the ring tells the emitter that an input was lost.
            Target::Ring(_) if self.lost => Ok(()),
            Target::Ring(mut tx) => tx.send(EmitMsg::End).map_err(|_| ShardError::EmitterGone),
            Target::Inline(mut w, _) => {
                if self.lost {
                    w.input_lost();
                }
                w.finish()?;
                w.publish();
                Ok(())
            }
        }
    }

    /// Checkpoints are on: this shard's parts go to `tx`.
    pub fn send_checkpoints_to(&mut self, tx: PartSender) {
        self.checkpoints = Some(tx);
    }

    /// Checkpoint `id`'s barrier has come through every input: snapshot the state into the reused buffer
    /// (the only time the shard stops for a checkpoint: measured as `pause_ns`), hand a copy to the
    /// coordinator, which writes it to disk, and pass the barrier on.
    fn checkpoint(&mut self, id: u64) -> Result<(), ShardError> {
        if self.pending.is_some() {
            // The one before is still being written: finish it first (a stall only when checkpoints come
            // faster than a shard's state can be written between batches).
            while !self.snapshot_step(u64::MAX) {}
        }
        let t = mono_now();
        let mut spares = self.spare.1.try_recv().unwrap_or_default().into_iter();
        self.enc = Enc::from_vec(spares.next().unwrap_or_default());
        self.encode_state();
        for slot in &mut self.ops {
            slot.op.snapshot_begin();
        }
        self.spares = spares.collect();
        let pause_ns = mono_now() - t;
        self.out.recorder.record(Stage::CheckpointPause, pause_ns);
        self.pending = Some((id, pause_ns));
        self.align.release();
        match &mut self.out.to {
            Target::Ring(tx) => tx.send(EmitMsg::Barrier { id }).map_err(|_| ShardError::EmitterGone)?,
            Target::Inline(w, rejects) => {
                w.checkpoint(id)?;
                rejects.align.release();
            }
        }
        Ok(())
    }

    /// Writes more keys of the pending snapshot (operator after operator) for about `budget_ns`; when it is
    /// complete, hands every section to the coordinator. True when nothing is pending any more.
    fn snapshot_step(&mut self, budget_ns: u64) -> bool {
        let Some((id, mut pause_ns)) = self.pending else { return true };
        let t = mono_now();
        let (done, step) = loop {
            let mut done = true;
            for slot in &mut self.ops {
                if !slot.op.snapshot_step(SNAPSHOT_STEP_KEYS) {
                    done = false;
                    break;
                }
            }
            let step = mono_now() - t;
            if done || step >= budget_ns {
                break (done, step);
            }
        };
        self.out.recorder.record(Stage::CheckpointPause, step);
        pause_ns = pause_ns.max(step);
        if !done {
            self.pending = Some((id, pause_ns));
            return false;
        }
        self.pending = None;
        let mut sections = Vec::with_capacity(1 + self.ops.len());
        sections.push(std::mem::take(&mut self.enc).into_vec());
        let mut spares = std::mem::take(&mut self.spares).into_iter();
        for slot in &mut self.ops {
            sections.push(slot.op.snapshot_take(spares.next().unwrap_or_default()));
        }
        if let Some(tx) = &self.checkpoints {
            let give_back = self.spare.0.clone();
            let _ = tx.send(Part::Shard { id, shard: self.id, sections, pause_ns, give_back });
        }
        true
    }

    /// The shard's own section: its arrival counter and frontier, then per operator its frontier (the
    /// operators write sections of their own).
    fn encode_state(&mut self) {
        let e = &mut self.enc;
        e.u64(self.arrival);
        self.frontier.encode(e);
        e.len_of(self.ops.len());
        for slot in &self.ops {
            slot.frontier.encode(e);
        }
    }

    /// Restores the shard from an old shard's sections (one old shard, or each of them in turn when the
    /// number of shards changed), keeping the keys `owns` accepts.
    pub fn restore(
        &mut self,
        shard: &[u8],
        ops: &[&[u8]],
        key_limit: u32,
        owns: &dyn Fn(KeyId) -> bool,
        run_started: std::time::Instant,
    ) -> Result<(), DecodeError> {
        self.restored_since = Some(run_started);
        let mut d = Dec::new(shard);
        self.arrival = self.arrival.max(d.u64("arrival counter")?);
        self.frontier.merge_from(&mut d)?;
        let n = d.count(1, "operators")?;
        if n != self.ops.len() || ops.len() != n {
            return Err(DecodeError::Mismatch {
                what: "number of operators",
                expected: self.ops.len().to_string(),
                found: n.to_string(),
            });
        }
        for (slot, bytes) in self.ops.iter_mut().zip(ops) {
            slot.frontier.merge_from(&mut d)?;
            let mut od = Dec::with_key_limit(bytes, key_limit);
            slot.op.restore(&mut od, owns)?;
            od.finish()?;
        }
        d.finish()
    }

    /// The earliest event time held by the operators reading input `i`.
    fn retained_from(&self, i: usize) -> Nanos {
        self.ops
            .iter()
            .filter(|s| s.inputs & (1 << i) != 0)
            .map(|s| s.op.retained_from())
            .min()
            .unwrap_or(WATERMARK_MAX)
    }

    /// Input `i` reports watermark `wm`: each operator reading it fires what its own frontier now allows.
    #[inline]
    fn watermark(&mut self, i: usize, wm: Nanos, idle: bool) {
        if let Some(w) = self.frontier.update(i, wm, idle) {
            self.metrics.shards[self.id].watermark.store(w, Ordering::Relaxed);
        }
        for slot in &mut self.ops {
            if slot.inputs & (1 << i) != 0 {
                if let Some(w) = slot.frontier.update(i, wm, idle) {
                    slot.op.on_watermark(w, &mut self.out);
                }
            }
        }
    }

    fn publish(&self, events: u64) {
        let m = &self.metrics.shards[self.id];
        m.events.store(events, Ordering::Relaxed);
        m.outputs.store(self.out.outputs, Ordering::Relaxed);
        m.late.store(self.out.late, Ordering::Relaxed);
        m.rewritten.store(self.out.suppressed, Ordering::Relaxed);
        m.open_windows.store(self.ops.iter().map(|s| s.op.open_state() as u64).sum(), Ordering::Relaxed);
        m.queued.store(self.inputs.iter().map(|c| c.slots() as u64).sum(), Ordering::Relaxed);
        match &self.out.to {
            Target::Ring(tx) => tx.publish(&m.backpressure),
            Target::Inline(w, _) => w.publish(),
        }
    }
}
