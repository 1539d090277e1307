//! Trade files read line by line (CSV, JSON lines): one partition per file, replayed as fast as possible or
//! paced at recorded speed × a factor; a line that does not decode goes to the rejects stream with its number.

use super::{LineReader, Pacer, Poll, Source, SourceError, SourceOut};
use crate::checkpoint::codec::{Dec, Enc};
use crate::checkpoint::manifest::SourcePosition;
use crate::event::{Event, Trade};
use crate::record::{RejectReason, RejectRow};
use crate::symbols::Interner;
use crate::time::TimeUnit;
use std::path::Path;

/// Lines handed over per poll.
const BATCH: usize = 1024;

/// How one line of a trade file decodes (`seq` is the line's index among data lines).
pub trait LineFormat: Send {
    fn decode(&self, line: &[u8], unit: TimeUnit, seq: u64, interner: &mut Interner) -> Result<Trade, RejectReason>;
}

/// A trade file replayed as one partition.
pub struct FileSource<F> {
    name: String,
    reader: LineReader,
    format: F,
    skip_header: bool,
    unit: TimeUnit,
    interner: Interner,
    pacer: Option<Pacer>,
    seq: u64,
    path: std::path::PathBuf,
    /// Where the next line to hand over starts (before a line the pacer still holds): a checkpoint's position.
    pos: u64,
}

impl<F: LineFormat> FileSource<F> {
    /// Opens `path`; with `header`, its first line is skipped; with `speed`, the replay is paced.
    pub fn open(
        name: &str,
        path: &Path,
        format: F,
        header: bool,
        unit: TimeUnit,
        interner: Interner,
        speed: Option<f64>,
    ) -> Result<Self, SourceError> {
        let reader =
            LineReader::open(path).map_err(|e| SourceError::io(name, format!("cannot open {}", path.display()), e))?;
        let pacer = speed.map(Pacer::new);
        Ok(Self {
            name: name.to_string(),
            reader,
            format,
            skip_header: header,
            unit,
            interner,
            pacer,
            seq: 0,
            path: path.to_path_buf(),
            pos: 0,
        })
    }
}

impl<F: LineFormat> Source for FileSource<F> {
    fn poll(&mut self, out: &mut SourceOut) -> Result<Poll, SourceError> {
        if let Some(p) = &mut self.pacer {
            if !p.release(out)? {
                return Ok(Poll::Idle);
            }
            self.pos = self.reader.offset();
        }
        for _ in 0..BATCH {
            let (line_no, line) = match self.reader.next_line() {
                Ok(Some(l)) => l,
                Ok(None) => return Ok(Poll::Done),
                Err(e) => {
                    let context = format!("read error after line {}", self.reader.line_number());
                    return Err(SourceError::io(&self.name, context, e));
                }
            };
            if self.skip_header {
                self.skip_header = false;
                self.pos = self.reader.offset();
                continue;
            }
            if line.iter().all(|c| c.is_ascii_whitespace()) {
                self.pos = self.reader.offset();
                continue;
            }
            let seq = self.seq;
            self.seq += 1;
            match self.format.decode(line, self.unit, seq, &mut self.interner) {
                Ok(t) => match &mut self.pacer {
                    Some(p) => {
                        if !p.offer(t, out)? {
                            return Ok(Poll::Idle);
                        }
                    }
                    None => out.emit(0, Event::Trade(t), 0)?,
                },
                Err(reason) => out.reject(RejectRow::new(line_no, reason, line))?,
            }
            self.pos = self.reader.offset();
        }
        Ok(Poll::More)
    }

    fn checkpoint(&mut self, _id: u64, e: &mut Enc) -> Result<SourcePosition, String> {
        e.u64(self.pos);
        // The line number and record index of the next line: what rejects and late rows report.
        let held = self.pacer.as_ref().is_some_and(Pacer::holds);
        e.u64(self.reader.line_number() - held as u64);
        e.u64(self.seq - held as u64);
        e.bool(self.skip_header);
        Ok(SourcePosition {
            source: String::new(),
            kind: "file".into(),
            partitions: Vec::new(),
            byte_offset: Some(self.pos),
            seed: None,
            count: Some(self.seq - held as u64),
        })
    }

    fn restore(&mut self, d: &mut Dec<'_>) -> Result<(), SourceError> {
        let bad = |e: crate::checkpoint::codec::DecodeError| SourceError::Other {
            source_name: self.name.clone(),
            message: format!("restoring the file position: {e}"),
        };
        let pos = d.u64("byte offset").map_err(bad)?;
        let line = d.u64("line").map_err(bad)?;
        let seq = d.u64("record index").map_err(bad)?;
        let skip_header = d.bool("header pending").map_err(bad)?;
        self.reader = LineReader::open_at(&self.path, pos, line)
            .map_err(|e| SourceError::io(&self.name, format!("resuming {} at byte {pos}", self.path.display()), e))?;
        self.pos = pos;
        self.seq = seq;
        self.skip_header = skip_header;
        Ok(())
    }
}
