//! The emitter: the one thread that talks to sinks. It takes results from every shard and rejects from
//! every source, in FIFO order per ring (so one key's results stay in order), and writes each to the sinks
//! of its stream.

use super::ring::Idler;
use super::{EmitMsg, RejectMsg};
use crate::metrics::{LatencyRecorder, Metrics, Stage};
use crate::record::StreamId;
use crate::sink::Sink;
use crate::symbols::SymbolCache;
use crate::time::mono_now;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// A sink failed; the pipeline stops.
#[derive(Debug, thiserror::Error)]
#[error("sink {sink} (stream `{stream}`): {error}")]
pub struct SinkError {
    pub sink: String,
    pub stream: String,
    pub error: std::io::Error,
}

const BATCH: usize = 512;

pub struct Emitter {
    pub shards: Vec<rtrb::Consumer<EmitMsg>>,
    /// Per source: its rejects ring and its rejects stream.
    pub rejects: Vec<(rtrb::Consumer<RejectMsg>, StreamId)>,
    pub sinks: Vec<Box<dyn Sink>>,
    /// Sink indices per stream id.
    pub routes: Vec<Vec<usize>>,
    pub stream_names: Vec<String>,
    pub symbols: SymbolCache,
    pub recorder: LatencyRecorder,
    pub metrics: Arc<Metrics>,
}

impl Emitter {
    /// Runs until every shard and source has ended. `idler` must be made on this thread (it registers the
    /// thread with the doorbell producers ring).
    pub fn run(mut self, mut idler: Idler) -> Result<(), SinkError> {
        let mut shard_ended = vec![false; self.shards.len()];
        let mut reject_ended = vec![false; self.rejects.len()];
        let mut rows = vec![0u64; self.routes.len()];
        let (mut total, mut unrouted, mut rejects) = (0u64, 0u64, 0u64);
        let mut dirty = false;
        loop {
            let mut got = false;
            for (i, c) in self.shards.iter_mut().enumerate() {
                if shard_ended[i] {
                    continue;
                }
                for _ in 0..BATCH {
                    let Ok(msg) = c.pop() else {
                        if c.is_abandoned() && c.is_empty() {
                            shard_ended[i] = true;
                        }
                        break;
                    };
                    got = true;
                    match msg {
                        EmitMsg::Out { stream, rec, t0, t1 } => {
                            let route = &self.routes[stream as usize];
                            if route.is_empty() {
                                unrouted += 1;
                            }
                            for &s in route {
                                self.sinks[s].write(&rec, &mut self.symbols).map_err(|error| SinkError {
                                    sink: self.sinks[s].describe(),
                                    stream: self.stream_names[stream as usize].clone(),
                                    error,
                                })?;
                            }
                            rows[stream as usize] += 1;
                            total += 1;
                            if t0 != 0 {
                                let now = mono_now();
                                self.recorder.record(Stage::ShardToSink, now.saturating_sub(t1));
                                self.recorder.record(Stage::EndToEnd, now.saturating_sub(t0));
                            }
                        }
                        EmitMsg::End => {
                            shard_ended[i] = true;
                            break;
                        }
                    }
                }
            }
            for (i, (c, stream)) in self.rejects.iter_mut().enumerate() {
                if reject_ended[i] {
                    continue;
                }
                while let Ok(msg) = c.pop() {
                    got = true;
                    match msg {
                        RejectMsg::Row(r) => {
                            rejects += 1;
                            let route = &self.routes[*stream as usize];
                            if route.is_empty() {
                                tracing::warn!(stream = %self.stream_names[*stream as usize], line = r.line, text = %String::from_utf8_lossy(r.text()), "rejected input record (no sink takes this rejects stream)");
                            }
                            for &s in route {
                                self.sinks[s].write_reject(&r).map_err(|error| SinkError {
                                    sink: self.sinks[s].describe(),
                                    stream: self.stream_names[*stream as usize].clone(),
                                    error,
                                })?;
                            }
                            rows[*stream as usize] += 1;
                        }
                        RejectMsg::End => {
                            reject_ended[i] = true;
                            break;
                        }
                    }
                }
                if !reject_ended[i] && c.is_abandoned() && c.is_empty() {
                    reject_ended[i] = true;
                }
            }
            self.recorder.tick();
            if got {
                dirty = true;
                idler.reset();
                self.publish(total, unrouted, rejects, &rows);
                continue;
            }
            if shard_ended.iter().all(|&e| e) && reject_ended.iter().all(|&e| e) {
                break;
            }
            if dirty {
                // Nothing waiting: a good moment to hand buffered output to the OS, so results show up.
                self.flush_all()?;
                dirty = false;
                continue;
            }
            let (shards, rej) = (&self.shards, &self.rejects);
            idler.idle(|| shards.iter().all(|c| c.is_empty()) && rej.iter().all(|(c, _)| c.is_empty()));
        }
        self.flush_all()?;
        self.publish(total, unrouted, rejects, &rows);
        self.recorder.finish();
        Ok(())
    }

    fn flush_all(&mut self) -> Result<(), SinkError> {
        for s in &mut self.sinks {
            s.flush().map_err(|error| SinkError { sink: s.describe(), stream: String::new(), error })?;
        }
        Ok(())
    }

    fn publish(&self, total: u64, unrouted: u64, rejects: u64, rows: &[u64]) {
        let m = &self.metrics;
        m.emitter.rows.store(total, Ordering::Relaxed);
        m.emitter.unrouted.store(unrouted, Ordering::Relaxed);
        m.emitter.rejects.store(rejects, Ordering::Relaxed);
        for (c, &n) in m.stream_rows.iter().zip(rows) {
            c.store(n, Ordering::Relaxed);
        }
    }
}
