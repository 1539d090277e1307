//! The emitter: the one thread that talks to sinks. It takes results from every shard and rejects from
//! every source, in FIFO order per ring (so one key's results stay in order), and writes each to the sinks
//! of its stream.
//!
//! The writing itself is a [`Writer`]. With `pipeline.emitter = "inline"` (one shard worker only) there is
//! no emitter thread: the shard owns the writer and calls it directly, which saves a thread hand-off per
//! result — what a latency-critical pipeline on few cores wants — at the price of sink I/O on the shard.

use super::barrier::Alignment;
use super::ring::Idler;
use super::{Ack, EmitMsg, RejectMsg};
use crate::checkpoint::coordinator::{Part, PartSender, Trigger};
use crate::metrics::{LatencyRecorder, Metrics, Stage};
use crate::record::{Record, RejectRow, StreamId};
use crate::sink::Sink;
use crate::symbols::SymbolCache;
use crate::time::mono_now;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A sink failed; the pipeline stops.
#[derive(Debug, thiserror::Error)]
#[error("sink {sink}{}: {error}", in_stream(.stream))]
pub struct SinkError {
    pub sink: String,
    /// The stream the sink writes (empty for what belongs to no one sink, such as the commit record).
    pub stream: String,
    pub error: std::io::Error,
}

fn in_stream(stream: &str) -> String {
    if stream.is_empty() {
        String::new()
    } else {
        format!(" (stream `{stream}`)")
    }
}

/// For `map_err`: the error of sink `s`, which writes `stream` (described only if it failed).
fn failed<'a>(s: &'a dyn Sink, stream: &'a str) -> impl FnOnce(std::io::Error) -> SinkError + 'a {
    move |error| SinkError { sink: s.describe(), stream: stream.to_string(), error }
}

const BATCH: usize = 512;

/// Routes records to the sinks of their stream, counts them per stream, and times them.
pub struct Writer {
    sinks: Vec<Box<dyn Sink>>,
    /// Sink indices per stream id.
    routes: Vec<Vec<usize>>,
    stream_names: Vec<String>,
    symbols: SymbolCache,
    metrics: Arc<Metrics>,
    /// Per source: where commit acknowledgements go.
    acks: Vec<rtrb::Producer<Ack>>,
    rows: Vec<u64>,
    total: u64,
    unrouted: u64,
    rejects: u64,
    /// Something was written since the last flush.
    dirty: bool,
    /// Where the sinks' part of a checkpoint goes (checkpoints on).
    checkpoints: Option<PartSender>,
    /// Checkpoints on: where completions are announced, and the last one passed on to the sinks.
    completed: Option<(Arc<Trigger>, u64)>,
    /// A sink writes in Kafka transactions: `checkpoint.dir`, where the commit record goes once they are
    /// committed at a checkpoint's completion.
    commit_record: Option<std::path::PathBuf>,
    /// The job's stop flag: set at the end, the job was stopped (a signal, a failure) rather than its input
    /// having ended.
    stop: Arc<AtomicBool>,
    /// A ring into the sinks was dropped without its end-of-input (the thread before it failed).
    lost: bool,
    /// Each sink's stream, for its errors.
    sink_streams: Vec<String>,
}

impl Writer {
    pub fn new(
        sinks: Vec<Box<dyn Sink>>,
        routes: Vec<Vec<usize>>,
        stream_names: Vec<String>,
        symbols: SymbolCache,
        metrics: Arc<Metrics>,
        acks: Vec<rtrb::Producer<Ack>>,
        stop: Arc<AtomicBool>,
    ) -> Self {
        let n = routes.len();
        let mut sink_streams = vec![String::new(); sinks.len()];
        for (stream, to) in routes.iter().enumerate() {
            for &k in to {
                sink_streams[k] = stream_names[stream].clone();
            }
        }
        let mut sinks = sinks;
        for s in &mut sinks {
            s.watch_stop(stop.clone());
        }
        Self {
            sinks,
            routes,
            stream_names,
            symbols,
            metrics,
            acks,
            rows: vec![0; n],
            total: 0,
            unrouted: 0,
            rejects: 0,
            dirty: false,
            checkpoints: None,
            completed: None,
            commit_record: None,
            stop,
            lost: false,
            sink_streams,
        }
    }

    /// An input of the writer's thread ended without saying so (its thread failed): the output is not
    /// complete at the end of the run.
    pub fn input_lost(&mut self) {
        self.lost = true;
    }

    /// Checkpoints are on: the sinks' parts go to `tx`, and `trigger` says which checkpoint is complete.
    /// `commit_record`: a sink writes in Kafka transactions, and the commit record goes in this directory.
    pub fn send_checkpoints_to(
        &mut self,
        tx: PartSender,
        trigger: Arc<Trigger>,
        commit_record: Option<std::path::PathBuf>,
    ) {
        self.checkpoints = Some(tx);
        let seen = trigger.completed();
        self.completed = Some((trigger, seen));
        self.commit_record = commit_record;
    }

    /// Tells the sinks of every checkpoint completed since the last call (one atomic load when none has);
    /// with transactional sinks, records their commit once every sink has committed.
    #[inline]
    pub fn poll_completed(&mut self) -> Result<(), SinkError> {
        let Some((trigger, seen)) = &mut self.completed else { return Ok(()) };
        let done = trigger.completed();
        if done <= *seen {
            return Ok(());
        }
        *seen = done;
        for (s, stream) in self.sinks.iter_mut().zip(&self.sink_streams) {
            s.checkpoint_complete(done).map_err(failed(&**s, stream))?;
        }
        if let Some(root) = &self.commit_record {
            crate::checkpoint::crash_point("committing the transactions of a checkpoint");
            crate::checkpoint::manifest::write_committed(root, done).map_err(|e| SinkError {
                sink: "kafka transactions".into(),
                stream: String::new(),
                error: std::io::Error::other(format!("recording the commit of checkpoint {done}: {e}")),
            })?;
            trigger.set_committed(done);
            tracing::debug!(id = done, "commit of the checkpoint's transactions recorded");
        }
        Ok(())
    }

    /// Checkpoint `id`'s barrier has come through every input: every sink makes what it has written durable
    /// and says where its output stands. A sink that cannot (an I/O error) fails this checkpoint, not the job.
    /// Completions not yet passed on go to the sinks first (a transactional sink reuses the producer of a
    /// committed transaction); a failure there stops the job.
    pub fn checkpoint(&mut self, id: u64) -> Result<(), SinkError> {
        self.poll_completed()?;
        let mut positions = Vec::with_capacity(self.sinks.len());
        let mut reason = None;
        for (s, stream) in self.sinks.iter_mut().zip(&self.sink_streams) {
            match s.checkpoint(id) {
                Ok(p) => positions.push(p),
                Err(e) => {
                    reason = Some(failed(&**s, stream)(e).to_string());
                    break;
                }
            }
        }
        self.dirty = false;
        if let Some(tx) = &self.checkpoints {
            let part = match reason {
                None => Part::Sinks { id, positions },
                Some(reason) => Part::Failed { id, reason },
            };
            let _ = tx.send(part);
        }
        Ok(())
    }

    fn error(&self, sink: usize, stream: StreamId, error: std::io::Error) -> SinkError {
        SinkError { sink: self.sinks[sink].describe(), stream: self.stream_names[stream as usize].clone(), error }
    }

    /// Writes a result; `t0` is the ingest time of the event that caused it and `t1` when it was emitted
    /// (0 when not timed).
    #[inline]
    pub fn write(
        &mut self,
        stream: StreamId,
        rec: &Record,
        t0: u64,
        t1: u64,
        lat: &mut LatencyRecorder,
    ) -> Result<(), SinkError> {
        let route = &self.routes[stream as usize];
        if route.is_empty() {
            self.unrouted += 1;
        }
        for i in 0..route.len() {
            let s = self.routes[stream as usize][i];
            if let Err(e) = self.sinks[s].write(rec, &mut self.symbols) {
                return Err(self.error(s, stream, e));
            }
        }
        self.rows[stream as usize] += 1;
        self.total += 1;
        self.dirty = true;
        if t0 != 0 {
            let now = mono_now();
            lat.record(Stage::ShardToSink, now.saturating_sub(t1));
            lat.record(Stage::EndToEnd, now.saturating_sub(t0));
        }
        Ok(())
    }

    /// Writes a rejected input record to its source's rejects stream (logged when no sink takes it).
    pub fn write_reject(&mut self, stream: StreamId, r: &RejectRow) -> Result<(), SinkError> {
        self.rejects += 1;
        let route = &self.routes[stream as usize];
        if route.is_empty() {
            tracing::warn!(stream = %self.stream_names[stream as usize], line = r.line, text = %String::from_utf8_lossy(r.text()), "rejected input record (no sink takes this rejects stream)");
        }
        for i in 0..route.len() {
            let s = self.routes[stream as usize][i];
            if let Err(e) = self.sinks[s].write_reject(r) {
                return Err(self.error(s, stream, e));
            }
        }
        self.rows[stream as usize] += 1;
        self.dirty = true;
        Ok(())
    }

    /// Hands buffered output to the OS if anything was written since the last flush.
    pub fn flush(&mut self) -> Result<(), SinkError> {
        if !self.dirty {
            return Ok(());
        }
        for (s, stream) in self.sinks.iter_mut().zip(&self.sink_streams) {
            s.flush().map_err(failed(&**s, stream))?;
        }
        self.dirty = false;
        Ok(())
    }

    /// At the end of the run: everything written is made durable (a Kafka sink waits for every delivery);
    /// if the input has ended rather than the job been stopped, a sink writing part files commits the rest.
    ///
    /// A job stopped while a final checkpoint is being taken first waits for it to complete (or fail), so
    /// that the sinks commit what it holds, as at any checkpoint.
    pub fn finish(&mut self) -> Result<(), SinkError> {
        let ended = !self.stop.load(Ordering::Relaxed) && !self.lost;
        if let Some(trigger) = self.completed.as_ref().filter(|_| !ended && !self.lost).map(|c| c.0.clone()) {
            let id = trigger.final_id();
            while id > 0 && trigger.completed() < id && !trigger.closed() {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            self.poll_completed()?;
        }
        for (s, stream) in self.sinks.iter_mut().zip(&self.sink_streams) {
            s.finish(ended).map_err(failed(&**s, stream))?;
        }
        self.dirty = false;
        Ok(())
    }

    /// Makes everything written so far durable in every sink (a Kafka sink waits for the broker to confirm
    /// delivery), then tells source `source` that commit marker `ack.id` is through. An acknowledgement the
    /// source has no room for is dropped: the next one covers it, and waiting could deadlock (the source may
    /// itself be waiting for room in a shard's ring).
    pub fn commit_point(&mut self, source: usize, ack: Ack) -> Result<(), SinkError> {
        for (s, stream) in self.sinks.iter_mut().zip(&self.sink_streams) {
            s.sync().map_err(failed(&**s, stream))?;
        }
        self.dirty = false;
        if let Some(tx) = self.acks.get_mut(source) {
            let _ = tx.push(ack);
        }
        Ok(())
    }

    /// Publishes the counters.
    pub fn publish(&self) {
        let m = &self.metrics;
        m.emitter.rows.store(self.total, Ordering::Relaxed);
        m.emitter.unrouted.store(self.unrouted, Ordering::Relaxed);
        m.emitter.rejects.store(self.rejects, Ordering::Relaxed);
        for (c, &n) in m.stream_rows.iter().zip(&self.rows) {
            c.store(n, Ordering::Relaxed);
        }
    }
}

/// The rings of rejects, one per source, each with its source's rejects stream.
pub struct RejectRings {
    rings: Vec<(rtrb::Consumer<RejectMsg>, StreamId)>,
    ended: Vec<bool>,
    pub align: Alignment,
}

impl RejectRings {
    pub fn new(rings: Vec<(rtrb::Consumer<RejectMsg>, StreamId)>) -> Self {
        let n = rings.len();
        Self { rings, ended: vec![false; n], align: Alignment::new(n) }
    }

    /// Writes whatever rejects are waiting; true if there were any.
    pub fn drain(&mut self, w: &mut Writer) -> Result<bool, SinkError> {
        let mut got = false;
        for (i, (c, stream)) in self.rings.iter_mut().enumerate() {
            if self.ended[i] || self.align.blocked(i) {
                continue;
            }
            while let Ok(msg) = c.pop() {
                got = true;
                match msg {
                    RejectMsg::Row(r) => w.write_reject(*stream, &r)?,
                    RejectMsg::Barrier { id } => {
                        self.align.arrive(i, id);
                        break;
                    }
                    RejectMsg::End => {
                        self.ended[i] = true;
                        break;
                    }
                }
            }
            if !self.ended[i] && c.is_abandoned() && c.is_empty() {
                self.ended[i] = true;
                w.input_lost();
            }
        }
        Ok(got)
    }

    pub fn all_ended(&self) -> bool {
        self.ended.iter().all(|&e| e)
    }

    /// The checkpoint whose barrier has come through every rejects ring not ended.
    pub fn aligned(&self) -> Option<u64> {
        self.align.complete(&self.ended)
    }

    /// Nothing to read: every ring is empty or held back for a checkpoint.
    pub fn all_empty(&self) -> bool {
        self.rings.iter().enumerate().all(|(i, (c, _))| self.align.blocked(i) || c.is_empty())
    }
}

pub struct Emitter {
    pub shards: Vec<rtrb::Consumer<EmitMsg>>,
    pub rejects: RejectRings,
    pub writer: Writer,
    pub recorder: LatencyRecorder,
}

/// Commit markers of one source on their way through the shards: (id, shards passed, earliest retained).
#[derive(Default)]
struct Markers(std::collections::VecDeque<(u64, usize, crate::event::Nanos)>);

impl Emitter {
    /// Runs until every shard and source has ended. `idler` must be made on this thread (it registers the
    /// thread with the doorbell producers ring).
    pub fn run(mut self, mut idler: Idler) -> Result<(), SinkError> {
        let n_shards = self.shards.len();
        let capacity = self.shards.iter().map(|c| c.buffer().capacity() as u64).sum();
        self.writer.metrics.emitter.capacity.store(capacity, Ordering::Relaxed);
        let mut shard_ended = vec![false; n_shards];
        let mut markers: Vec<Markers> = (0..self.writer.acks.len()).map(|_| Markers::default()).collect();
        let mut align = Alignment::new(n_shards);
        loop {
            let mut got = false;
            for (i, c) in self.shards.iter_mut().enumerate() {
                if shard_ended[i] || align.blocked(i) {
                    continue;
                }
                for _ in 0..BATCH {
                    let Ok(msg) = c.pop() else {
                        if c.is_abandoned() && c.is_empty() {
                            shard_ended[i] = true;
                            self.writer.input_lost();
                        }
                        break;
                    };
                    got = true;
                    match msg {
                        EmitMsg::Out { stream, rec, t0, t1 } => {
                            self.writer.write(stream, &rec, t0, t1, &mut self.recorder)?
                        }
                        EmitMsg::Marker { source, id, retain } => {
                            // Every shard sees a source's markers in the same order: they complete in order.
                            let m = &mut markers[source as usize];
                            match m.0.iter_mut().find(|e| e.0 == id) {
                                Some(e) => {
                                    e.1 += 1;
                                    e.2 = e.2.min(retain);
                                }
                                None => m.0.push_back((id, 1, retain)),
                            }
                            while let Some(&(id, n, retain)) = m.0.front() {
                                if n < n_shards {
                                    break;
                                }
                                m.0.pop_front();
                                self.writer.commit_point(source as usize, Ack { id, retain })?;
                            }
                        }
                        EmitMsg::Barrier { id } => {
                            align.arrive(i, id);
                            break;
                        }
                        EmitMsg::End => {
                            shard_ended[i] = true;
                            break;
                        }
                    }
                }
            }
            got |= self.rejects.drain(&mut self.writer)?;
            if let Some(id) = align.complete(&shard_ended).filter(|&id| self.rejects.aligned() == Some(id)) {
                self.writer.checkpoint(id)?;
                align.release();
                self.rejects.align.release();
                got = true;
            }
            self.recorder.tick();
            self.writer.poll_completed()?;
            if got {
                idler.reset();
                self.writer.publish();
                let m = &self.writer.metrics.emitter;
                m.queued.store(self.shards.iter().map(|c| c.slots() as u64).sum(), Ordering::Relaxed);
                continue;
            }
            if shard_ended.iter().all(|&e| e) && self.rejects.all_ended() {
                break;
            }
            if self.writer.dirty {
                // Nothing waiting: a good moment to hand buffered output to the OS, so results show up.
                self.writer.flush()?;
                continue;
            }
            let (shards, rej, align) = (&self.shards, &self.rejects, &align);
            idler.idle(|| shards.iter().enumerate().all(|(i, c)| align.blocked(i) || c.is_empty()) && rej.all_empty());
        }
        self.writer.finish()?;
        self.writer.publish();
        self.recorder.finish();
        Ok(())
    }
}
