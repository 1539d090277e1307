//! Sinks: where the emitter writes each stream. Only the emitter thread touches them, so a slow sink
//! backpressures through the emitter's rings and never blocks a shard directly.

mod encode;
mod kafka;

pub use encode::{Column, Encoder};
pub use kafka::{KafkaSink, Producers};

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
    /// For error messages: `csv file out/bars.csv`.
    fn describe(&self) -> String;
}

/// Opens the sink of `plan` for stream `def`; Kafka sinks take their producer from `producers`.
pub fn open(plan: &SinkPlan, def: &StreamDef, producers: &mut Producers) -> io::Result<Box<dyn Sink>> {
    Ok(match plan.kind {
        SinkType::Null => Box::new(NullSink),
        SinkType::Kafka => Box::new(KafkaSink::open(plan, def, producers)?),
        _ => Box::new(TextSink::open(plan, def)?),
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

/// Bytes buffered before a write to the file or stdout.
const BUFFER: usize = 256 * 1024;

/// CSV or JSON lines into a file or stdout.
pub struct TextSink {
    enc: Encoder,
    buf: Vec<u8>,
    out: Box<dyn Write + Send>,
    what: String,
}

impl TextSink {
    /// Opens the sink of `plan` for stream `def` (creating the file's directory) and writes the CSV header.
    pub fn open(plan: &SinkPlan, def: &StreamDef) -> io::Result<TextSink> {
        let enc = Encoder { format: plan.format, columns: plan.columns.clone(), unit: def.unit };
        let (out, what): (Box<dyn Write + Send>, String) = match plan.kind {
            SinkType::Stdout => (Box::new(io::stdout()), "stdout".into()),
            SinkType::Null | SinkType::Kafka => {
                return Err(io::Error::other("null and kafka sinks are not text sinks"));
            }
            SinkType::Csv | SinkType::Jsonl => {
                let path: PathBuf = plan.path.clone().unwrap_or_default();
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| {
                        io::Error::new(e.kind(), format!("cannot create directory {}: {e}", dir.display()))
                    })?;
                }
                let f = std::fs::File::create(&path)
                    .map_err(|e| io::Error::new(e.kind(), format!("cannot create {}: {e}", path.display())))?;
                (
                    Box::new(f),
                    format!("{} file {}", if plan.format == Format::Csv { "csv" } else { "jsonl" }, path.display()),
                )
            }
        };
        let mut s = TextSink { enc, buf: Vec::with_capacity(BUFFER + 4096), out, what };
        if plan.format == Format::Csv && plan.header {
            s.enc.header(&mut s.buf);
        }
        Ok(s)
    }

    #[inline]
    fn maybe_spill(&mut self) -> io::Result<()> {
        if self.buf.len() >= BUFFER {
            self.out.write_all(&self.buf)?;
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
            self.buf.clear();
        }
        self.out.flush()
    }

    fn describe(&self) -> String {
        self.what.clone()
    }
}
