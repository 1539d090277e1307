//! Consistent snapshots of the pipeline's state on disk: a state file per shard, completed by a manifest.

pub mod codec;
pub mod control;
pub mod coordinator;
pub mod file;
pub mod manifest;

use std::path::PathBuf;
use thiserror::Error;

/// Fault injection for the crash tests (tests/checkpoint.rs): with `TICKLANE_CRASH_AT=n` in the environment
/// the process aborts — no destructor runs, nothing buffered is flushed, as with SIGKILL — at the n-th
/// crash point it passes (from 1); with `TICKLANE_CRASH_AT=after:KIND` at the first one after `KIND` (the
/// text the abort message names, such as `removing an old checkpoint`), for a test that must reach a kind
/// whatever the timing. Crash points sit after every step that changes what is on disk at a checkpoint:
/// each write, fsync, rename and removal of state files, manifests, the start record and sink files, so a
/// test can kill the job between any two of them. Unset (the normal case) a crash point costs one relaxed
/// load of a cached value; none is on the per-event path.
pub fn crash_point(what: &str) {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    enum At {
        Never,
        Nth(u64),
        After(String),
    }
    static AT: OnceLock<At> = OnceLock::new();
    static PASSED: AtomicU64 = AtomicU64::new(0);
    let at = AT.get_or_init(|| match std::env::var("TICKLANE_CRASH_AT") {
        Ok(v) => match v.strip_prefix("after:") {
            Some(kind) => At::After(kind.to_string()),
            None => v.parse().map_or(At::Never, At::Nth),
        },
        Err(_) => At::Never,
    });
    let hit = match at {
        At::Never => return,
        At::Nth(at) => PASSED.fetch_add(1, Ordering::Relaxed) + 1 == *at,
        At::After(kind) => {
            PASSED.fetch_add(1, Ordering::Relaxed);
            kind == what
        }
    };
    if hit {
        let n = PASSED.load(Ordering::Relaxed);
        eprintln!("crash point {n}: after {what}: aborting (TICKLANE_CRASH_AT)");
        std::process::abort();
    }
}

/// Why a checkpoint could not be written, read or trusted. Every variant names the file, and those about a
/// file's content the byte offset, so a report is enough to find the bad bytes with a hex dump.
#[derive(Debug, Error)]
pub enum CheckpointError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not a ticklane state file: bytes 0..8 are {found:02x?}, expected {expected:02x?}", path.display())]
    BadMagic { path: PathBuf, expected: [u8; 8], found: [u8; 8] },
    #[error("{}: state file format version {found} (at offset 8) is not supported; this build reads version {supported}", path.display())]
    UnsupportedVersion { path: PathBuf, found: u16, supported: u16 },
    #[error("{}: truncated: {what} at offset {offset} needs the file to be {expected} bytes long, it is {found}", path.display())]
    Truncated { path: PathBuf, what: String, offset: u64, expected: u64, found: u64 },
    #[error("{}: CRC32C mismatch in {what} at offset {offset}: stored {expected:#010x}, computed {found:#010x}", path.display())]
    ChecksumMismatch { path: PathBuf, what: String, offset: u64, expected: u32, found: u32 },
    #[error("{}: malformed at offset {offset}: {reason}", path.display())]
    Malformed { path: PathBuf, offset: u64, reason: String },
    #[error("{}: cannot write a state file: {reason}", path.display())]
    InvalidState { path: PathBuf, reason: String },
    #[error("{}: manifest does not parse: {source}", path.display())]
    ManifestParse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{}: invalid manifest: {reason}", path.display())]
    ManifestInvalid { path: PathBuf, reason: String },
    #[error("{}: {reason}", path.display())]
    Inconsistent { path: PathBuf, reason: String },
}

impl CheckpointError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        CheckpointError::Io { path: path.into(), source }
    }
}
