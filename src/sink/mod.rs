//! Sinks: where the emitter writes each stream. Only the emitter thread touches them, so a slow sink
//! backpressures through the emitter's rings and never blocks a shard directly.

pub mod batch;
mod encode;
mod influxdb;
mod kafka;
pub mod parts;
mod postgres;
pub mod stats;

pub use encode::{Column, Encoder};
pub use influxdb::InfluxSink;
pub use kafka::{KafkaSink, Producers};
pub use parts::Parts;
pub use postgres::PostgresSink;

use crate::checkpoint::coordinator::Hold;
use crate::checkpoint::manifest::SinkPosition;
use crate::config::{Format, SinkPlan, SinkType, StreamDef};
use crate::record::{Record, RejectRow};
use crate::symbols::SymbolCache;
use std::io::{self, Write};
use std::path::PathBuf;

/// A destination for one stream's records.
pub trait Sink: Send {
    fn write(&mut self, rec: &Record, syms: &mut SymbolCache) -> io::Result<()>;
    fn write_reject(&mut self, rej: &RejectRow) -> io::Result<()>;
    /// Hands everything buffered to the OS (or to the client library).
    fn flush(&mut self) -> io::Result<()>;
    /// Makes everything written so far durable as far as this sink can tell (a Kafka sink waits for the
    /// broker's acknowledgements); sources commit their input offsets after it.
    fn sync(&mut self) -> io::Result<()> {
        self.flush()
    }
    /// At a checkpoint barrier: makes everything written so far durable and says where the output stands,
    /// so that a restore can cut it back to exactly there. A sink that cannot be cut back says so in the
    /// position's `kind` (its output after a restore repeats what followed the checkpoint).
    fn checkpoint(&mut self, _id: u64) -> io::Result<SinkPosition> {
        self.sync()?;
        Ok(SinkPosition {
            sink: self.describe(),
            kind: "unbounded".into(),
            path: None,
            bytes: None,
            topic: None,
            end_offsets: Vec::new(),
            next_part: None,
            pending: Vec::new(),
        })
    }

    /// Checkpoint `id` (and every one before it) is complete on disk: what this sink wrote before its barrier
    /// is final. An error stops the job.
    fn checkpoint_complete(&mut self, _id: u64) -> io::Result<()> {
        Ok(())
    }

    /// At the end of the run, after everything is written: `ended` when the input has ended (the job is
    /// done), false when the job was stopped (its next run resumes from the last checkpoint). Makes the
    /// output durable ([`Sink::sync`]); a sink writing part files commits the rest of them if `ended`.
    fn finish(&mut self, _ended: bool) -> io::Result<()> {
        self.sync()
    }

    /// Checkpoints wait while this is not 0 (a Kafka sink after a restore, until it has computed again what
    /// was written after the checkpoint).
    fn hold(&self) -> Option<Hold> {
        None
    }

    /// The job's stop flag (set by SIGINT/SIGTERM), for a sink whose own thread must bound its retries once
    /// the job stops.
    fn watch_stop(&mut self, _stop: std::sync::Arc<std::sync::atomic::AtomicBool>) {}

    /// For error messages: `csv file out/bars.csv`.
    fn describe(&self) -> String;
}

/// Opens the sink of `plan` for stream `def`; Kafka sinks take their producer from `producers`. With
/// `resume` (the sink's position in the checkpoint being restored), a file sink continues the file cut back
/// to that position instead of starting it anew, and a Kafka sink reads back what followed it;
/// `checkpointed`: checkpoints are on. `index` is the sink's place in the config (`sink[index]`), by which a
/// reload finds it; `stop` the job's stop flag, which ends a sink's wait for its database at the start.
#[allow(clippy::too_many_arguments)]
pub fn open(
    plan: &SinkPlan,
    def: &StreamDef,
    index: usize,
    stop: &std::sync::Arc<std::sync::atomic::AtomicBool>,
    producers: &mut Producers,
    checkpointed: bool,
    resume: Option<&SinkPosition>,
) -> io::Result<Box<dyn Sink>> {
    Ok(match plan.kind {
        SinkType::Null => Box::new(NullSink),
        SinkType::Kafka => Box::new(KafkaSink::open(plan, def, producers, checkpointed, resume)?),
        SinkType::Postgres => Box::new(PostgresSink::open(plan, def, index, stop)?),
        SinkType::Influxdb => Box::new(InfluxSink::open(plan, def, index)?),
        _ => Box::new(TextSink::open(plan, def, resume)?),
    })
}

/// Discards everything (the emitter still counts the rows of the stream).
pub struct NullSink;

impl Sink for NullSink {
    #[inline]
    fn write(&mut self, _rec: &Record, _syms: &mut SymbolCache) -> io::Result<()> {
        Ok(())
    }
    fn write_reject(&mut self, _rej: &RejectRow) -> io::Result<()> {
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn describe(&self) -> String {
        "null".into()
    }
}

/// Opens `path` for a restore: cut back to `len` bytes (what the checkpoint's results had written), the
/// rest rewritten by the restored run.
fn resume_file(path: &std::path::Path, len: u64) -> io::Result<std::fs::File> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot reopen {} to resume it: {e}", path.display())))?;
    let have = f.metadata()?.len();
    if have < len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("{} is {have} bytes long, shorter than the {len} bytes the checkpoint wrote", path.display()),
        ));
    }
    f.set_len(len)?;
    io::Seek::seek(&mut f, io::SeekFrom::Start(len))?;
    Ok(f)
}

/// Bytes buffered before a write to the file or stdout.
const BUFFER: usize = 256 * 1024;

/// CSV or JSON lines into a file or stdout.
pub struct TextSink {
    enc: Encoder,
    buf: Vec<u8>,
    out: Output,
    what: String,
    /// Bytes handed to the file or stdout so far (the file's length, for a file).
    written: u64,
}

enum Output {
    File {
        file: std::fs::File,
        path: PathBuf,
    },
    Stdout(io::Stdout),
    /// `parts = true`: numbered files committed on checkpoint completion.
    Parts(Parts),
}

impl Output {
    fn write_all(&mut self, b: &[u8]) -> io::Result<()> {
        match self {
            Output::File { file, .. } => file.write_all(b),
            Output::Stdout(s) => s.write_all(b),
            Output::Parts(p) => p.write_all(b),
        }
    }
}

impl TextSink {
    /// Opens the sink of `plan` for stream `def` (creating the file's directory) and writes the CSV header;
    /// with `resume`, opens the existing file, cuts it back to the checkpoint's length and goes on there.
    /// With `plan.parts`, opens its part files instead ([`Parts::open`]: a restore commits and deletes parts).
    pub fn open(plan: &SinkPlan, def: &StreamDef, resume: Option<&SinkPosition>) -> io::Result<TextSink> {
        let enc = Encoder { format: plan.format, columns: plan.columns.clone(), unit: def.unit };
        let mut written = 0;
        let (out, what) = match plan.kind {
            SinkType::Stdout => (Output::Stdout(io::stdout()), "stdout".to_string()),
            SinkType::Null | SinkType::Kafka | SinkType::Influxdb | SinkType::Postgres => {
                return Err(io::Error::other("null, kafka, influxdb and postgres sinks are not text sinks"));
            }
            SinkType::Csv | SinkType::Jsonl => {
                let path: PathBuf = plan.path.clone().unwrap_or_default();
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| {
                        io::Error::new(e.kind(), format!("cannot create directory {}: {e}", dir.display()))
                    })?;
                }
                let format = if plan.format == Format::Csv { "csv" } else { "jsonl" };
                if plan.parts {
                    let what = format!("{format} parts {}", path.display());
                    let mut header = Vec::new();
                    if plan.format == Format::Csv && plan.header {
                        enc.header(&mut header);
                    }
                    let parts = Parts::open(&path, what.clone(), header, resume)?;
                    let buf = Vec::with_capacity(BUFFER + 4096);
                    return Ok(TextSink { enc, buf, out: Output::Parts(parts), what, written: 0 });
                }
                let what = format!("{format} file {}", path.display());
                let file = match resume.and_then(|r| r.bytes) {
                    Some(len) => resume_file(&path, len)?,
                    None => std::fs::File::create(&path)
                        .map_err(|e| io::Error::new(e.kind(), format!("cannot create {}: {e}", path.display())))?,
                };
                written = resume.and_then(|r| r.bytes).unwrap_or(0);
                (Output::File { file, path }, what)
            }
        };
        let mut s = TextSink { enc, buf: Vec::with_capacity(BUFFER + 4096), out, what, written };
        // A resumed file holds its header already (in the bytes kept).
        if plan.format == Format::Csv && plan.header && written == 0 {
            s.enc.header(&mut s.buf);
        }
        Ok(s)
    }

    #[inline]
    fn maybe_spill(&mut self) -> io::Result<()> {
        if self.buf.len() >= BUFFER {
            self.out.write_all(&self.buf)?;
            self.written += self.buf.len() as u64;
            self.buf.clear();
        }
        Ok(())
    }
}

impl Sink for TextSink {
    #[inline]
    fn write(&mut self, rec: &Record, syms: &mut SymbolCache) -> io::Result<()> {
        self.enc.encode(rec, syms, &mut self.buf);
        self.maybe_spill()
    }

    fn write_reject(&mut self, rej: &RejectRow) -> io::Result<()> {
        self.enc.encode_reject(rej, &mut self.buf);
        self.maybe_spill()
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.out.write_all(&self.buf)?;
            self.written += self.buf.len() as u64;
            self.buf.clear();
        }
        match &mut self.out {
            Output::File { file, .. } => file.flush(),
            Output::Stdout(s) => s.flush(),
            Output::Parts(_) => Ok(()),
        }
    }

    fn checkpoint(&mut self, id: u64) -> io::Result<SinkPosition> {
        self.flush()?;
        crate::checkpoint::crash_point("writing a sink file");
        let (kind, path) = match &mut self.out {
            Output::File { file, path } => {
                file.sync_data()?;
                crate::checkpoint::crash_point("syncing a sink file");
                ("file", Some(path.display().to_string()))
            }
            Output::Stdout(_) => ("stdout", None),
            Output::Parts(p) => {
                p.close(id)?;
                let (next, pending) = p.position();
                return Ok(SinkPosition {
                    sink: self.what.clone(),
                    kind: "parts".into(),
                    path: Some(p.path().display().to_string()),
                    bytes: None,
                    topic: None,
                    end_offsets: Vec::new(),
                    next_part: Some(next),
                    pending,
                });
            }
        };
        Ok(SinkPosition {
            sink: self.what.clone(),
            kind: kind.into(),
            path,
            bytes: Some(self.written),
            topic: None,
            end_offsets: Vec::new(),
            next_part: None,
            pending: Vec::new(),
        })
    }

    fn checkpoint_complete(&mut self, id: u64) -> io::Result<()> {
        match &mut self.out {
            Output::Parts(p) => p.commit(id),
            _ => Ok(()),
        }
    }

    fn finish(&mut self, ended: bool) -> io::Result<()> {
        self.flush()?;
        match &mut self.out {
            Output::Parts(p) if ended => p.finish(),
            _ => Ok(()),
        }
    }

    fn describe(&self) -> String {
        self.what.clone()
    }
}
