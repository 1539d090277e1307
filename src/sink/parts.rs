//! Part files: a csv or jsonl sink with `parts = true` writes numbered files beside its path
//! (`out/bars.csv` → `out/bars-000001.csv`, `out/bars-000002.csv`, …). The part being written has a hidden
//! in-progress name (`out/.bars-000001.csv.inprogress`); a checkpoint barrier closes it (`fdatasync`), and
//! once that checkpoint is complete it is renamed to its final name. So a final name only ever holds results
//! of a complete checkpoint (or of a job whose input has ended), and a restore deletes every part after the
//! checkpoint it resumes from (docs/checkpoints.md, "File sinks as part files").
//!
//! Records are written as by a single-file sink: encoded into the sink's buffer, handed to the part at 256
//! KiB. Parts are opened (on the first hand-off after a barrier), closed and renamed only at barriers,
//! completions, restores and the end of the run.

use crate::checkpoint::manifest::{PartFile, SinkPosition};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Part numbers have at least this many digits (zero padded), so that names sort as numbers up to 999999.
const DIGITS: usize = 6;
const IN_PROGRESS: &str = ".inprogress";

/// How one sink's parts are named: `<dir>/<stem>-<number><ext>`, in progress `<dir>/.<final name>.inprogress`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartNames {
    dir: PathBuf,
    stem: String,
    /// With its dot, or empty.
    ext: String,
}

impl PartNames {
    /// The names of the parts of a sink with path `path`.
    pub fn new(path: &Path) -> io::Result<PartNames> {
        let bad = |why: &str| io::Error::new(io::ErrorKind::InvalidInput, format!("{}: {why}", path.display()));
        let stem = path.file_stem().ok_or_else(|| bad("no file name to name the parts after"))?;
        let stem = stem.to_str().ok_or_else(|| bad("the file name is not UTF-8"))?.to_string();
        let ext = match path.extension() {
            None => String::new(),
            Some(e) => format!(".{}", e.to_str().ok_or_else(|| bad("the file name is not UTF-8"))?),
        };
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
        Ok(PartNames { dir, stem, ext })
    }

    /// The directory the parts are in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `bars-000001.csv`.
    pub fn final_name(&self, part: u64) -> String {
        format!("{}-{part:0DIGITS$}{}", self.stem, self.ext)
    }

    /// `.bars-000001.csv.inprogress`.
    pub fn in_progress_name(&self, part: u64) -> String {
        format!(".{}{IN_PROGRESS}", self.final_name(part))
    }

    pub fn final_path(&self, part: u64) -> PathBuf {
        self.dir.join(self.final_name(part))
    }

    pub fn in_progress_path(&self, part: u64) -> PathBuf {
        self.dir.join(self.in_progress_name(part))
    }

    /// The part number of `name` if it is one of these parts' names, and whether it is the in-progress one.
    pub fn parse(&self, name: &str) -> Option<(u64, bool)> {
        let (plain, in_progress) = match name.strip_prefix('.').and_then(|n| n.strip_suffix(IN_PROGRESS)) {
            Some(n) => (n, true),
            None => (name, false),
        };
        let digits = plain.strip_prefix(self.stem.as_str())?.strip_prefix('-')?.strip_suffix(self.ext.as_str())?;
        if digits.len() < DIGITS || !digits.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let part: u64 = digits.parse().ok()?;
        // Only the name this sink would give the part (not `bars-0000001.csv`).
        (part > 0 && self.final_name(part) == plain).then_some((part, in_progress))
    }
}

/// The part being written.
struct Current {
    part: u64,
    file: File,
    /// Bytes written to it (the header included).
    bytes: u64,
}

/// The output of a sink writing part files.
pub struct Parts {
    /// The sink's path, which the parts are named after.
    path: PathBuf,
    names: PartNames,
    /// What the sink is, for log lines: `csv parts out/bars.csv`.
    what: String,
    /// What every part starts with: the CSV header, or nothing.
    header: Vec<u8>,
    current: Option<Current>,
    /// The number the next part gets.
    next: u64,
    /// Parts closed at a barrier and not committed yet, with the id of the checkpoint whose barrier closed
    /// each, in part order.
    pending: Vec<(u64, PartFile)>,
}

fn op_error(e: io::Error, what: String) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

impl Parts {
    /// Opens the parts of `path` (creating its directory). With `resume` (the sink's position in the
    /// checkpoint or start record being restored), first commits the parts that checkpoint covers and deletes
    /// what was written after it; without, deletes every part of `path` there is (a new job's output
    /// replaces the old, as a single file would be created anew).
    pub fn open(path: &Path, what: String, header: Vec<u8>, resume: Option<&SinkPosition>) -> io::Result<Parts> {
        let names = PartNames::new(path)?;
        fs::create_dir_all(names.dir())
            .map_err(|e| op_error(e, format!("cannot create directory {}", names.dir().display())))?;
        let (next, pending) = match resume {
            Some(SinkPosition { next_part: Some(next), pending, .. }) => (*next, pending.as_slice()),
            _ => (1, &[][..]),
        };
        restore(&names, &what, next, pending)?;
        Ok(Parts { path: path.to_path_buf(), names, what, header, current: None, next, pending: Vec::new() })
    }

    /// The sink's path, which the parts are named after.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Hands `b` to the part being written, opening the next part first if none is.
    #[inline]
    pub fn write_all(&mut self, b: &[u8]) -> io::Result<()> {
        if self.current.is_none() {
            self.start()?;
        }
        if let Some(cur) = &mut self.current {
            if let Err(e) = cur.file.write_all(b) {
                return Err(op_error(e, format!("writing {}", self.names.in_progress_path(cur.part).display())));
            }
            cur.bytes += b.len() as u64;
        }
        Ok(())
    }

    #[cold]
    fn start(&mut self) -> io::Result<()> {
        let part = self.next;
        let path = self.names.in_progress_path(part);
        let mut file = File::create(&path).map_err(|e| op_error(e, format!("cannot create {}", path.display())))?;
        file.write_all(&self.header).map_err(|e| op_error(e, format!("writing {}", path.display())))?;
        self.next += 1;
        self.current = Some(Current { part, file, bytes: self.header.len() as u64 });
        Ok(())
    }

    /// At checkpoint `id`'s barrier (after the sink has handed over its buffer): the part being written, if
    /// any, is made durable and closed; it waits for that checkpoint to complete.
    pub fn close(&mut self, id: u64) -> io::Result<()> {
        let Some(cur) = &self.current else { return Ok(()) };
        if let Err(e) = cur.file.sync_data() {
            let path = self.names.in_progress_path(cur.part);
            return Err(op_error(e, format!("fdatasync of {}", path.display())));
        }
        crate::checkpoint::crash_point("syncing a part file");
        let Some(cur) = self.current.take() else { return Ok(()) };
        let file = PartFile { part: cur.part, name: self.names.final_name(cur.part), bytes: cur.bytes };
        self.pending.push((id, file));
        Ok(())
    }

    /// Checkpoint `id` and every one before it are complete: their parts get their final names.
    pub fn commit(&mut self, id: u64) -> io::Result<()> {
        let n = self.pending.iter().take_while(|(c, _)| *c <= id).count();
        if n == 0 {
            return Ok(());
        }
        for (_, p) in self.pending.drain(..n) {
            let (from, to) = (self.names.in_progress_path(p.part), self.names.final_path(p.part));
            // A failed rename stops the job; the next run's restore commits what is left.
            fs::rename(&from, &to).map_err(|e| {
                op_error(e, format!("cannot commit part file: renaming {} to {}", from.display(), to.display()))
            })?;
            tracing::debug!(sink = %self.what, file = %to.display(), "part file committed");
            crate::checkpoint::crash_point("committing a part file");
        }
        sync_dir(self.names.dir())
    }

    /// The input has ended: the part being written and every part waiting for a checkpoint are final.
    pub fn finish(&mut self) -> io::Result<()> {
        self.close(u64::MAX)?;
        self.commit(u64::MAX)
    }

    /// Where the output stands at a barrier, after [`Parts::close`]: the next part's number and the parts
    /// not committed yet.
    pub fn position(&self) -> (u64, Vec<PartFile>) {
        (self.next, self.pending.iter().map(|(_, p)| p.clone()).collect())
    }
}

/// Makes the renames and removals in `dir` durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| op_error(e, format!("fsync of directory {}", dir.display())))
}

/// A restore to the position `next`, `pending`: every part file of `names` numbered `next` or above is
/// deleted (written after the checkpoint, it is written again), the highest first, so that the committed
/// parts stay a run from 1 at every moment; `pending` is committed (its checkpoint is complete), and any
/// other part still in progress below `next` is deleted (left by a run that did not lead to this checkpoint;
/// the parts of this one's history below `next` were committed before its barrier or are in `pending`).
pub fn restore(names: &PartNames, what: &str, next: u64, pending: &[PartFile]) -> io::Result<()> {
    let dir = names.dir();
    let mut found: Vec<(u64, bool, String)> = Vec::new();
    let entries = fs::read_dir(dir).map_err(|e| op_error(e, format!("cannot list directory {}", dir.display())))?;
    for entry in entries {
        let entry = entry.map_err(|e| op_error(e, format!("cannot list directory {}", dir.display())))?;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else { continue };
        if let Some((part, in_progress)) = names.parse(&name) {
            found.push((part, in_progress, name));
        }
    }
    found.sort_unstable();
    let remove = |name: &str| {
        let path = dir.join(name);
        fs::remove_file(&path).map_err(|e| op_error(e, format!("cannot delete {}", path.display())))
    };
    let mut changed = false;
    for (part, _, name) in found.iter().rev().filter(|f| f.0 >= next) {
        remove(name)?;
        tracing::info!(sink = %what, file = %name, part, next, "part file after the restored checkpoint deleted");
        changed = true;
    }
    for (part, _, name) in found.iter().filter(|f| f.0 < next && f.1 && !pending.iter().any(|p| p.part == f.0)) {
        remove(name)?;
        tracing::info!(sink = %what, file = %name, part, "part file left in progress by another run deleted");
        changed = true;
    }
    let mut pending: Vec<&PartFile> = pending.iter().collect();
    pending.sort_unstable_by_key(|p| p.part);
    for p in pending {
        if p.part >= next {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the checkpoint lists part {} as pending, not below its next part {next}", p.part),
            ));
        }
        let (from, to) = (names.in_progress_path(p.part), names.final_path(p.part));
        match fs::metadata(&from) {
            Ok(m) => {
                if m.len() < p.bytes {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "{} is {} bytes long, shorter than the {} bytes the checkpoint wrote",
                            from.display(),
                            m.len(),
                            p.bytes
                        ),
                    ));
                }
                if m.len() > p.bytes {
                    let cut = fs::OpenOptions::new().write(true).open(&from).and_then(|f| {
                        f.set_len(p.bytes)?;
                        f.sync_data()
                    });
                    cut.map_err(|e| op_error(e, format!("cannot cut {} back to {} bytes", from.display(), p.bytes)))?;
                }
                fs::rename(&from, &to).map_err(|e| {
                    op_error(e, format!("cannot commit part file: renaming {} to {}", from.display(), to.display()))
                })?;
                tracing::info!(sink = %what, file = %to.display(), "part file of the restored checkpoint committed");
                changed = true;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if !to.exists() {
                    tracing::warn!(
                        sink = %what,
                        file = %to.display(),
                        "part file of the restored checkpoint not found (moved or deleted since it was committed?)"
                    );
                }
            }
            Err(e) => return Err(op_error(e, format!("cannot read the metadata of {}", from.display()))),
        }
    }
    if changed {
        sync_dir(dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let n = PartNames::new(Path::new("out/bars.csv")).unwrap();
        assert_eq!(n.final_name(1), "bars-000001.csv");
        assert_eq!(n.in_progress_name(42), ".bars-000042.csv.inprogress");
        assert_eq!(n.final_name(1_234_567), "bars-1234567.csv");
        assert_eq!(n.final_path(3), Path::new("out/bars-000003.csv"));
        assert_eq!(n.parse("bars-000001.csv"), Some((1, false)));
        assert_eq!(n.parse(".bars-000001.csv.inprogress"), Some((1, true)));
        assert_eq!(n.parse("bars-1234567.csv"), Some((1_234_567, false)));
        for other in [
            "bars.csv",
            "bars-000001.jsonl",
            "bars-00001.csv",
            "bars-0000001.csv",
            "bars-000000.csv",
            "bars-00000a.csv",
            ".bars-000001.csv",
            "bars-000001.csv.inprogress",
            "bars-000001-000001.csv",
            "xbars-000001.csv",
        ] {
            assert_eq!(n.parse(other), None, "{other}");
        }
        let n = PartNames::new(Path::new("bars")).unwrap();
        assert_eq!(n.dir(), Path::new("."));
        assert_eq!(n.final_name(7), "bars-000007");
        assert_eq!(n.parse(".bars-000007.inprogress"), Some((7, true)));
        assert_eq!(n.parse("bars-000007.csv"), None);
        let n = PartNames::new(Path::new("d/bars.tar.gz")).unwrap();
        assert_eq!(n.final_name(2), "bars.tar-000002.gz");
        assert!(PartNames::new(Path::new("/")).is_err());
    }
}
