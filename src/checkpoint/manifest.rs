//! What makes a checkpoint complete: its directory, `chk-<id, 20 digits>/`, holds one state file per shard
//! and `MANIFEST.json`, written last, listing them with their sizes and CRC32Cs and the source and sink
//! positions the state corresponds to. A directory without a valid manifest is incomplete and never restored
//! from (docs/checkpoints.md, "File layout").

use super::file::{tmp_path, StateFile};
use super::CheckpointError;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};

/// The manifest's file name in a checkpoint directory.
pub const MANIFEST: &str = "MANIFEST.json";
/// The manifest format version this build writes and reads.
pub const MANIFEST_VERSION: u32 = 1;
/// `Manifest::kind` of a checkpoint taken on the pipeline's schedule.
pub const KIND_CHECKPOINT: &str = "checkpoint";
/// `Manifest::kind` of a checkpoint taken on request, kept until removed by hand.
pub const KIND_SAVEPOINT: &str = "savepoint";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub version: u32,
    pub id: u64,
    /// Wall clock when the checkpoint was taken, ns since the Unix epoch.
    pub created_ns: i64,
    /// [`KIND_CHECKPOINT`] or [`KIND_SAVEPOINT`].
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub shards: u32,
    /// The state files, one per shard.
    pub files: Vec<FileEntry>,
    pub sources: Vec<SourcePosition>,
    pub sinks: Vec<SinkPosition>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// A file name in the checkpoint directory (no path).
    pub name: String,
    pub size: u64,
    /// CRC32C of the whole file.
    pub crc32c: u32,
}

/// Where a source is to resume: the first record not reflected in the state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourcePosition {
    pub source: String,
    /// "kafka", "file" or "synthetic".
    pub kind: String,
    /// Kafka: the next offset to read per partition.
    #[serde(default)]
    pub partitions: Vec<PartitionPosition>,
    /// File: the byte offset of the next line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub byte_offset: Option<u64>,
    /// Synthetic: the generator's seed and the number of trades already generated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionPosition {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    pub partition: i32,
    pub offset: i64,
}

/// How far a sink had written when the checkpoint was taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkPosition {
    pub sink: String,
    pub kind: String,
    /// File sinks: the file and its length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// Kafka sinks: the topic and the end offset per partition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    #[serde(default)]
    pub end_offsets: Vec<PartitionPosition>,
    /// File sinks writing part files (`parts = true`, `path` their template): the number the next part
    /// gets. A restore deletes every part from this number on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_part: Option<u64>,
    /// The parts closed at this barrier or an earlier one and not committed yet: they are committed
    /// (renamed to their final names) when this checkpoint completes, or by a restore from it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<PartFile>,
}

/// A part file closed at a checkpoint barrier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartFile {
    pub part: u64,
    /// Its final name, in the directory of the sink's path.
    pub name: String,
    /// Its length.
    pub bytes: u64,
}

impl Manifest {
    /// Checks what serde cannot: the version, the kind, the shard count and that every file name is a plain
    /// name inside the checkpoint directory (a manifest must not point anywhere else).
    pub fn validate(&self) -> Result<(), String> {
        if self.version != MANIFEST_VERSION {
            return Err(format!("version {}, this build reads version {MANIFEST_VERSION}", self.version));
        }
        if self.kind != KIND_CHECKPOINT && self.kind != KIND_SAVEPOINT {
            return Err(format!("kind `{}`, expected `{KIND_CHECKPOINT}` or `{KIND_SAVEPOINT}`", self.kind));
        }
        if self.shards == 0 {
            return Err("shards is 0".into());
        }
        let mut names = HashSet::new();
        for f in &self.files {
            let plain = !f.name.is_empty()
                && f.name != "."
                && f.name != ".."
                && f.name != MANIFEST
                && !f.name.contains(['/', '\\', '\0']);
            if !plain {
                return Err(format!("file name `{}` is not a plain file name", f.name.escape_debug()));
            }
            if !names.insert(f.name.as_str()) {
                return Err(format!("file `{}` is listed twice", f.name.escape_debug()));
            }
        }
        for s in &self.sinks {
            for p in &s.pending {
                if p.name.is_empty() || p.name == "." || p.name == ".." || p.name.contains(['/', '\\', '\0']) {
                    return Err(format!("part file `{}` is not a plain file name", p.name.escape_debug()));
                }
                if s.next_part.is_none_or(|next| p.part >= next) {
                    return Err(format!("part {} of {} is pending, but not below next_part", p.part, s.sink));
                }
            }
        }
        Ok(())
    }
}

/// `<root>/chk-<id, 20 digits zero padded>`: names sort as the ids do.
pub fn checkpoint_dir(root: &Path, id: u64) -> PathBuf {
    root.join(format!("chk-{id:020}"))
}

/// The name of shard `shard`'s state file in a checkpoint directory.
pub fn state_file_name(shard: u32) -> String {
    format!("shard-{shard}.state")
}

/// The id in a checkpoint directory's name, if it is one.
pub fn parse_dir_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("chk-")?;
    if digits.len() != 20 || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The manifest entry of a written file: its name, size and whole-file CRC32C (read back from the file,
/// which is still in the page cache right after it was written).
pub fn file_entry(path: &Path) -> Result<FileEntry, CheckpointError> {
    let io = |e| CheckpointError::io(path, e);
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| CheckpointError::InvalidState {
            path: path.to_path_buf(),
            reason: "not a UTF-8 file name".into(),
        })?
        .to_string();
    let mut f = File::open(path).map_err(io)?;
    let mut buf = vec![0; 1 << 20];
    let (mut size, mut crc) = (0u64, 0u32);
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(io(e)),
        };
        crc = crc32c::crc32c_append(crc, &buf[..n]);
        size += n as u64;
    }
    Ok(FileEntry { name, size, crc32c: crc })
}

/// Writes `dir/MANIFEST.json`, which completes the checkpoint in `dir`: to `MANIFEST.json.tmp`, `fsync`ed,
/// renamed into place, then `dir` and its parent are `fsync`ed so the rename, the state files' renames and
/// `dir` itself survive a crash. Call it after every state file is written.
pub fn write_manifest(dir: &Path, m: &Manifest) -> Result<(), CheckpointError> {
    let path = dir.join(MANIFEST);
    m.validate().map_err(|reason| CheckpointError::ManifestInvalid { path: path.clone(), reason })?;
    let json = serde_json::to_vec_pretty(m)
        .map_err(|e| CheckpointError::ManifestInvalid { path: path.clone(), reason: e.to_string() })?;
    write_atomically(&path, json)
}

/// Writes `json` to `path` all or nothing: a temporary file, fsync, rename, fsync of the directory and of
/// its parent (which holds the directory's own entry).
fn write_atomically(path: &Path, mut json: Vec<u8>) -> Result<(), CheckpointError> {
    json.push(b'\n');
    let tmp = tmp_path(path);
    let written = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(&json)?;
        super::crash_point("writing a manifest");
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(CheckpointError::io(&tmp, e));
    }
    super::crash_point("syncing a manifest");
    fs::rename(&tmp, path).map_err(|e| CheckpointError::io(path, e))?;
    super::crash_point("renaming a manifest");
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    sync_dir(dir)?;
    super::crash_point("syncing a directory");
    match dir.parent() {
        Some(p) if p.as_os_str().is_empty() => sync_dir(Path::new(".")),
        Some(p) => sync_dir(p),
        None => Ok(()),
    }
}

/// Where a job started, written before it produces anything and kept until the checkpoint directory is
/// deleted: the checkpoint a job resumes from when it stopped before its first checkpoint completed (or
/// when none of its checkpoints verifies). Its state is empty; the positions are those the job started at
/// (a Kafka source's resolved offsets, a Kafka sink's end offsets), so nothing written before the first
/// checkpoint is written twice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Start {
    pub version: u32,
    pub created_ns: i64,
    pub sources: Vec<SourcePosition>,
    pub sinks: Vec<SinkPosition>,
}

/// The start record's file name in `checkpoint.dir`.
pub const START: &str = "START.json";

/// The `kind` of a Kafka sink's position when it writes in transactions: its output up to the checkpoint is
/// visible only once the checkpoint's transactions are committed, which [`COMMITTED`] records.
pub const KIND_KAFKA_TRANSACTIONS: &str = "kafka-transactions";

/// The commit record's file name in `checkpoint.dir`: the newest checkpoint (or savepoint) whose Kafka
/// transactions are all committed. Written after the commits, which follow the checkpoint's completion.
pub const COMMITTED: &str = "COMMITTED.json";

/// The content of [`COMMITTED`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Committed {
    pub version: u32,
    /// Every transaction up to this checkpoint's barrier is committed.
    pub id: u64,
}

/// Records that the transactions of checkpoint `id` (and of every one before it) are committed.
pub fn write_committed(root: &Path, id: u64) -> Result<(), CheckpointError> {
    let path = root.join(COMMITTED);
    let json = serde_json::to_vec(&Committed { version: MANIFEST_VERSION, id })
        .map_err(|e| CheckpointError::ManifestInvalid { path: path.clone(), reason: e.to_string() })?;
    write_atomically(&path, json)
}

/// The newest checkpoint whose transactions are recorded as committed under `root` (0: none).
pub fn read_committed(root: &Path) -> Result<u64, CheckpointError> {
    let path = root.join(COMMITTED);
    let text = match fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(CheckpointError::io(&path, e)),
    };
    let c: Committed = serde_json::from_slice(&text)
        .map_err(|source| CheckpointError::ManifestParse { path: path.clone(), source })?;
    if c.version != MANIFEST_VERSION {
        return Err(CheckpointError::ManifestInvalid {
            path,
            reason: format!("version {}, this build reads version {MANIFEST_VERSION}", c.version),
        });
    }
    Ok(c.id)
}

impl Manifest {
    /// True if a sink of this checkpoint writes in Kafka transactions: a restore from it needs its
    /// transactions committed ([`COMMITTED`]).
    pub fn transactional(&self) -> bool {
        self.sinks.iter().any(|s| s.kind == KIND_KAFKA_TRANSACTIONS)
    }

    /// Why a restore from this (verified) checkpoint would lose output, given that the transactions up to
    /// checkpoint `committed` are committed: its own were begun before its barrier and are committed only
    /// after it completed, so a job stopped in between has them aborted when it starts again.
    pub fn uncommitted(&self, committed: u64) -> Option<String> {
        (self.transactional() && self.id > committed).then(|| {
            format!(
                "its Kafka transactions are not recorded as committed ({COMMITTED} says {committed}): the job \
                 stopped between the checkpoint and their commit, and they were aborted when it started again"
            )
        })
    }
}

pub fn write_start(root: &Path, s: &Start) -> Result<(), CheckpointError> {
    fs::create_dir_all(root).map_err(|e| CheckpointError::io(root, e))?;
    let path = root.join(START);
    let json = serde_json::to_vec_pretty(s)
        .map_err(|e| CheckpointError::ManifestInvalid { path: path.clone(), reason: e.to_string() })?;
    write_atomically(&path, json)
}

/// The start record under `root`, if one was written.
pub fn read_start(root: &Path) -> Result<Option<Start>, CheckpointError> {
    let path = root.join(START);
    let text = match fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(CheckpointError::io(&path, e)),
    };
    let s: Start = serde_json::from_slice(&text)
        .map_err(|source| CheckpointError::ManifestParse { path: path.clone(), source })?;
    if s.version != MANIFEST_VERSION {
        return Err(CheckpointError::ManifestInvalid {
            path,
            reason: format!("version {}, this build reads version {MANIFEST_VERSION}", s.version),
        });
    }
    Ok(Some(s))
}

fn sync_dir(dir: &Path) -> Result<(), CheckpointError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| CheckpointError::io(dir, e))
}

/// Reads and validates `dir/MANIFEST.json` (its syntax and fields, not the files it lists).
pub fn read_manifest(dir: &Path) -> Result<Manifest, CheckpointError> {
    let path = dir.join(MANIFEST);
    let text = fs::read(&path).map_err(|e| CheckpointError::io(&path, e))?;
    let m: Manifest = serde_json::from_slice(&text)
        .map_err(|source| CheckpointError::ManifestParse { path: path.clone(), source })?;
    m.validate().map_err(|reason| CheckpointError::ManifestInvalid { path, reason })?;
    Ok(m)
}

/// One checkpoint directory found by [`list`].
#[derive(Debug, Clone)]
pub struct CheckpointInfo {
    pub id: u64,
    pub path: PathBuf,
    /// The manifest, if it reads and validates (the files it lists may still be bad: see `verified`).
    pub manifest: Option<Manifest>,
    /// Bytes in the directory's files.
    pub size: u64,
    /// `Ok` if the checkpoint is complete and intact (see [`verify`]), else why not.
    pub verified: Result<(), String>,
}

impl CheckpointInfo {
    pub fn is_valid(&self) -> bool {
        self.verified.is_ok()
    }
}

/// Verifies the checkpoint in `dir` as a restore would need it: the manifest reads, validates and has the
/// directory's id; every file it lists has the listed size and whole-file CRC32C and opens as a state file
/// ([`StateFile::open`] checks every checksum inside) of this checkpoint with the manifest's shard count;
/// and the files cover every shard exactly once. Returns the manifest.
pub fn verify(dir: &Path) -> Result<Manifest, CheckpointError> {
    verify_open(dir).map(|(m, _)| m)
}

/// [`verify`], also returning the state files it opened (in the manifest's order), for a restore to use
/// without reading and checking them again.
pub fn verify_open(dir: &Path) -> Result<(Manifest, Vec<StateFile>), CheckpointError> {
    let inconsistent = |path: &Path, reason: String| CheckpointError::Inconsistent { path: path.to_path_buf(), reason };
    let m = match read_manifest(dir) {
        Err(CheckpointError::Io { source, .. }) if source.kind() == ErrorKind::NotFound => {
            return Err(inconsistent(dir, format!("incomplete: no {MANIFEST}")));
        }
        r => r?,
    };
    let name = dir.file_name().and_then(|n| n.to_str()).and_then(parse_dir_name);
    if name.is_some_and(|id| id != m.id) {
        return Err(inconsistent(
            &dir.join(MANIFEST),
            format!("manifest of checkpoint {} in the directory of another", m.id),
        ));
    }
    let mut shards = HashSet::new();
    let mut opened = Vec::with_capacity(m.files.len());
    for f in &m.files {
        let path = dir.join(&f.name);
        let size = fs::metadata(&path).map_err(|e| CheckpointError::io(&path, e))?.len();
        if size != f.size {
            return Err(inconsistent(&path, format!("{size} bytes, the manifest lists {}", f.size)));
        }
        let sf = StateFile::open(&path)?;
        let crc = sf.crc32c();
        if crc != f.crc32c {
            return Err(CheckpointError::ChecksumMismatch {
                path,
                what: "the whole file (CRC32C in the manifest)".into(),
                offset: 0,
                expected: f.crc32c,
                found: crc,
            });
        }
        let h = sf.header();
        if h.checkpoint_id != m.id || h.shards != m.shards {
            return Err(inconsistent(
                &path,
                format!(
                    "state of checkpoint {} with {} shards, the manifest is of checkpoint {} with {}",
                    h.checkpoint_id, h.shards, m.id, m.shards
                ),
            ));
        }
        if !shards.insert(h.shard) {
            return Err(inconsistent(&path, format!("a second state file of shard {}", h.shard)));
        }
        opened.push(sf);
    }
    let per_shard = shards.iter().filter(|&&s| s != super::file::PIPELINE_WIDE).count();
    if per_shard != m.shards as usize {
        let missing: Vec<u32> = (0..m.shards).filter(|s| !shards.contains(s)).take(8).collect();
        return Err(inconsistent(
            &dir.join(MANIFEST),
            format!("no state file for shard(s) {missing:?} of {}", m.shards),
        ));
    }
    Ok((m, opened))
}

/// The checkpoint directories under `root`, by id.
fn scan(root: &Path) -> Result<Vec<(u64, PathBuf)>, CheckpointError> {
    let io = |e| CheckpointError::io(root, e);
    let mut out = Vec::new();
    for entry in fs::read_dir(root).map_err(io)? {
        let entry = entry.map_err(io)?;
        let Some(id) = entry.file_name().to_str().and_then(parse_dir_name) else { continue };
        if entry.file_type().map_err(io)?.is_dir() {
            out.push((id, entry.path()));
        }
    }
    out.sort_unstable();
    Ok(out)
}

fn dir_size(dir: &Path) -> u64 {
    let Ok(rd) = fs::read_dir(dir) else { return 0 };
    rd.flatten().filter_map(|e| e.metadata().ok()).filter(|m| m.is_file()).map(|m| m.len()).sum()
}

fn inspect(id: u64, path: PathBuf) -> CheckpointInfo {
    let verified = verify(&path);
    let manifest = match &verified {
        Ok(m) => Some(m.clone()),
        Err(_) => read_manifest(&path).ok(),
    };
    CheckpointInfo {
        id,
        size: dir_size(&path),
        manifest,
        verified: verified.map(|_| ()).map_err(|e| e.to_string()),
        path,
    }
}

/// Every checkpoint directory under `root`, oldest first, each verified (which reads all of its files).
pub fn list(root: &Path) -> Result<Vec<CheckpointInfo>, CheckpointError> {
    Ok(scan(root)?.into_iter().map(|(id, path)| inspect(id, path)).collect())
}

/// The directory under `checkpoint.dir` where savepoints go unless one is named.
pub const SAVEPOINTS: &str = "savepoints";

/// The savepoints under `root/savepoints`, oldest first, each verified.
pub fn list_savepoints(root: &Path) -> Vec<CheckpointInfo> {
    let Ok(rd) = fs::read_dir(root.join(SAVEPOINTS)) else { return Vec::new() };
    let mut v: Vec<CheckpointInfo> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .map(|p| {
            let id = read_manifest(&p).map_or(0, |m| m.id);
            inspect(id, p)
        })
        .collect();
    v.sort_by_key(|c| c.id);
    v
}

/// The newest checkpoint under `root` that passes [`verify`] and whose Kafka transactions, if it has any, are
/// committed ([`Manifest::uncommitted`]), looking from the newest down; each newer one passed over is logged
/// at WARN with the reason. `None` if there is none, also when `root` does not exist yet (a job stopped
/// before it wrote anything has not created it).
pub fn latest_valid(root: &Path) -> Result<Option<CheckpointInfo>, CheckpointError> {
    if !root.exists() {
        return Ok(None);
    }
    let committed = read_committed(root)?;
    for (id, path) in scan(root)?.into_iter().rev() {
        let mut info = inspect(id, path);
        if let (Ok(()), Some(m)) = (&info.verified, &info.manifest) {
            if let Some(reason) = m.uncommitted(committed) {
                info.verified = Err(reason);
            }
        }
        match &info.verified {
            Ok(()) => return Ok(Some(info)),
            Err(reason) => {
                tracing::warn!(path = %info.path.display(), "skipping checkpoint {id}: {reason}")
            }
        }
    }
    Ok(None)
}

/// Removes the checkpoints under `root` that a restore will never need: the valid ones beyond the newest
/// `retain`, and every invalid or incomplete one older than the newest valid one. Invalid ones newer than
/// every valid one stay: one may still be being written, and a corrupt one is evidence. With `retain == 0`
/// the newest valid one goes too. A checkpoint whose Kafka transactions are not committed yet is not valid
/// here, so the one a restore would fall back to stays until they are. Returns the removed directories,
/// oldest first.
pub fn prune(root: &Path, retain: usize) -> Result<Vec<PathBuf>, CheckpointError> {
    let committed = read_committed(root)?;
    let mut valid = 0usize;
    let mut doomed = Vec::new();
    for (_, path) in scan(root)?.into_iter().rev() {
        // Older than the `retain`-th valid one: not verified, as nothing older is ever restored.
        if valid > 0 && valid >= retain {
            doomed.push(path);
            continue;
        }
        // One whose transactions are not committed yet does not count: a restore may not use it.
        if verify(&path).is_ok_and(|m| m.uncommitted(committed).is_none()) {
            valid += 1;
            if valid > retain {
                doomed.push(path);
            }
        } else if valid > 0 {
            doomed.push(path);
        }
    }
    doomed.reverse();
    for path in &doomed {
        // The manifest first: a removal cut short leaves an incomplete checkpoint, never a complete-looking
        // one with files missing.
        match fs::remove_file(path.join(MANIFEST)) {
            Err(e) if e.kind() != ErrorKind::NotFound => return Err(CheckpointError::io(path.join(MANIFEST), e)),
            _ => {}
        }
        super::crash_point("removing an old manifest");
        fs::remove_dir_all(path).map_err(|e| CheckpointError::io(path, e))?;
        super::crash_point("removing an old checkpoint");
    }
    Ok(doomed)
}
