//! Checkpoint files on disk (docs/checkpoints.md, "File layout"): state files round trip and every damaged or
//! truncated one is refused without a panic; manifests round trip; `latest_valid` falls back past bad
//! checkpoints, and past those whose Kafka transactions are not recorded as committed; `prune` keeps the
//! newest; `ticklane checkpoints` lists them.

use proptest::prelude::*;
use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use ticklane::checkpoint::file::{write_state_file, Section, StateFile, StateHeader, HEADER_LEN};
use ticklane::checkpoint::manifest::{
    checkpoint_dir, file_entry, latest_valid, list, prune, read_committed, read_manifest, state_file_name,
    write_committed, write_manifest, FileEntry, Manifest, PartitionPosition, SinkPosition, SourcePosition, COMMITTED,
    KIND_KAFKA_TRANSACTIONS, MANIFEST,
};
use ticklane::checkpoint::CheckpointError;

/// A fresh directory under the system's temp dir, removed when dropped.
fn tmp() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("ticklane-checkpoint-").tempdir().expect("temp dir")
}

const HEADER: StateHeader =
    StateHeader { checkpoint_id: 7, shard: 1, shards: 4, created_ns: 1_764_000_000_123_456_789 };

/// Sections of awkward lengths: empty, shorter than the alignment, exactly aligned, odd.
fn sample() -> Vec<(u32, u32, Vec<u8>)> {
    vec![
        (1, 0, Vec::new()),
        (1, 1, vec![0xAB]),
        (2, 0, (0..7).collect()),
        (2, 1, (0..8).map(|i| i * 3).collect()),
        (3, 9, Vec::new()),
        (4, 2, (0..=255).cycle().take(1001).collect()),
    ]
}

fn sections(owned: &[(u32, u32, Vec<u8>)]) -> Vec<Section<'_>> {
    owned.iter().map(|(kind, id, b)| Section { kind: *kind, id: *id, bytes: b }).collect()
}

fn assert_round_trip(path: &Path, header: &StateHeader, owned: &[(u32, u32, Vec<u8>)]) {
    let size = write_state_file(path, header, &sections(owned)).expect("write");
    assert_eq!(size, fs::metadata(path).unwrap().len());
    assert!(!tmp_of(path).exists(), "the .tmp file is renamed away");
    let f = StateFile::open(path).expect("open");
    assert_eq!(f.header(), header);
    assert_eq!(f.file_len(), size);
    let got: Vec<Section<'_>> = f.sections().collect();
    assert_eq!(got, sections(owned));
    for (kind, id, bytes) in owned {
        assert_eq!(f.section(*kind, *id), Some(&bytes[..]));
    }
    for s in f.sections() {
        assert_eq!(s.bytes.as_ptr() as usize % 8, 0, "section ({}, {}) is 8-byte aligned in memory", s.kind, s.id);
    }
    assert_eq!(f.crc32c(), crc32c::crc32c(&fs::read(path).unwrap()));
}

fn tmp_of(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".tmp");
    s.into()
}

fn small_file(dir: &Path) -> (PathBuf, Vec<u8>) {
    let path = dir.join("small.state");
    let owned = vec![(1, 0, b"abc".to_vec()), (2, 5, Vec::new()), (3, 1, b"0123456789".to_vec())];
    write_state_file(&path, &HEADER, &sections(&owned)).unwrap();
    let bytes = fs::read(&path).unwrap();
    (path, bytes)
}

/// `open` must fail on `bytes` with an error that names the file.
fn assert_refused(path: &Path, bytes: &[u8], what: &str) -> CheckpointError {
    fs::write(path, bytes).unwrap();
    match StateFile::open(path) {
        Ok(f) => panic!("{what}: opened, with header {:?}", f.header()),
        Err(e) => {
            assert!(e.to_string().contains(&path.display().to_string()), "{what}: `{e}` does not name the file");
            e
        }
    }
}

#[test]
fn state_file_round_trip() {
    let dir = tmp();
    assert_round_trip(&dir.path().join("shard-1.state"), &HEADER, &sample());
    assert_round_trip(&dir.path().join("empty.state"), &StateHeader { shard: 0, shards: 1, ..HEADER }, &[]);
    let f = StateFile::open(&dir.path().join("shard-1.state")).unwrap();
    assert_eq!(f.section(4, 3), None);
    assert_eq!(f.section(9, 0), None);
}

#[test]
fn state_file_is_overwritten_whole() {
    let dir = tmp();
    let path = dir.path().join("s.state");
    assert_round_trip(&path, &HEADER, &sample());
    let h = StateHeader { checkpoint_id: 8, created_ns: -5, ..HEADER };
    assert_round_trip(&path, &h, &[(7, 7, b"short".to_vec())]);
}

#[test]
fn writer_refuses_bad_input_and_leaves_nothing() {
    let dir = tmp();
    let path = dir.path().join("bad.state");
    let dup = [Section { kind: 1, id: 2, bytes: b"x" }, Section { kind: 1, id: 2, bytes: b"y" }];
    let e = write_state_file(&path, &HEADER, &dup).unwrap_err();
    assert!(matches!(e, CheckpointError::InvalidState { .. }), "{e}");
    let e = write_state_file(&path, &StateHeader { shard: 4, ..HEADER }, &[]).unwrap_err();
    assert!(e.to_string().contains("shard 4"), "{e}");
    let e = write_state_file(&path, &StateHeader { shard: 0, shards: 0, ..HEADER }, &[]).unwrap_err();
    assert!(matches!(e, CheckpointError::InvalidState { .. }), "{e}");
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    let e = write_state_file(&dir.path().join("no/such/dir.state"), &HEADER, &[]).unwrap_err();
    assert!(matches!(e, CheckpointError::Io { .. }) && e.to_string().contains("no/such/dir.state.tmp"), "{e}");
}

#[test]
fn every_byte_flip_is_detected() {
    let dir = tmp();
    let (_, good) = small_file(dir.path());
    let path = dir.path().join("flipped.state");
    for i in 0..good.len() {
        for mask in [0x01u8, 0x80, 0xFF] {
            let mut b = good.clone();
            b[i] ^= mask;
            assert_refused(&path, &b, &format!("byte {i} ^ {mask:#04x}"));
        }
    }
}

#[test]
fn truncation_and_extension_are_detected() {
    let dir = tmp();
    let (_, good) = small_file(dir.path());
    let path = dir.path().join("cut.state");
    for n in 0..good.len() {
        let e = assert_refused(&path, &good[..n], &format!("first {n} bytes"));
        if n < HEADER_LEN {
            assert!(matches!(e, CheckpointError::Truncated { .. }), "{n} bytes: {e}");
        }
    }
    let mut longer = good.clone();
    longer.extend_from_slice(&[0; 8]);
    assert_refused(&path, &longer, "8 zero bytes appended");
}

#[test]
fn errors_say_what_and_where() {
    let dir = tmp();
    let (path, good) = small_file(dir.path());

    let e = assert_refused(&path, b"ts,symbol,price,qty,side\n1,A,1,1,B\n", "a CSV file");
    assert!(matches!(e, CheckpointError::BadMagic { .. }), "{e}");

    let mut b = good.clone();
    b[8] = 1;
    let e = assert_refused(&path, &b, "version 1");
    assert!(matches!(e, CheckpointError::UnsupportedVersion { found: 1, supported: 2, .. }), "{e}");
    b[8] = 3;
    let e = assert_refused(&path, &b, "version 3");
    assert!(matches!(e, CheckpointError::UnsupportedVersion { found: 3, supported: 2, .. }), "{e}");

    // The last byte of the last section (10 bytes, ending 6 bytes of padding before the end).
    let mut b = good.clone();
    let at = good.len() - 6 - 1;
    b[at] ^= 1;
    match assert_refused(&path, &b, "section byte") {
        CheckpointError::ChecksumMismatch { what, offset, expected, found, .. } => {
            assert!(what.contains("kind 3, id 1"), "{what}");
            assert_eq!(offset, (good.len() - 16) as u64);
            assert_ne!(expected, found);
        }
        e => panic!("{e}"),
    }

    let mut b = good.clone();
    let last = b.len() - 1;
    b[last] = 1;
    match assert_refused(&path, &b, "padding byte") {
        CheckpointError::Malformed { offset, .. } => assert_eq!(offset, last as u64),
        e => panic!("{e}"),
    }

    let e = assert_refused(&path, &good[..100], "truncated");
    let msg = e.to_string();
    assert!(msg.contains("offset 100") && msg.contains(&good.len().to_string()), "{msg}");

    let missing = dir.path().join("missing.state");
    let e = StateFile::open(&missing).unwrap_err();
    assert!(matches!(e, CheckpointError::Io { .. }) && e.to_string().contains("missing.state"), "{e}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_sections_round_trip(
        raw in prop::collection::vec((0u32..4, 0u32..4, prop::collection::vec(any::<u8>(), 0..70)), 0..12),
        id in any::<u64>(),
        created_ns in any::<i64>(),
        shards in 1u32..64,
        shard in any::<u32>(),
    ) {
        let mut seen = HashSet::new();
        let owned: Vec<(u32, u32, Vec<u8>)> = raw.into_iter().filter(|(k, i, _)| seen.insert((*k, *i))).collect();
        let header = StateHeader { checkpoint_id: id, shard: shard % shards, shards, created_ns };
        let dir = tmp();
        assert_round_trip(&dir.path().join("p.state"), &header, &owned);
    }
}

// ------------------------------------------------------------------------------------------------------
// Checkpoint directories and manifests
// ------------------------------------------------------------------------------------------------------

fn sources() -> Vec<SourcePosition> {
    vec![
        SourcePosition {
            source: "trades".into(),
            kind: "kafka".into(),
            partitions: vec![
                PartitionPosition { topic: Some("t".into()), partition: 0, offset: 1234 },
                PartitionPosition { topic: Some("t".into()), partition: 1, offset: 99 },
            ],
            byte_offset: None,
            seed: None,
            count: None,
        },
        SourcePosition {
            source: "csv".into(),
            kind: "file".into(),
            partitions: Vec::new(),
            byte_offset: Some(123_456),
            seed: None,
            count: None,
        },
        SourcePosition {
            source: "gen".into(),
            kind: "synthetic".into(),
            partitions: Vec::new(),
            byte_offset: None,
            seed: Some(42),
            count: Some(1_000_000),
        },
    ]
}

fn sinks() -> Vec<SinkPosition> {
    vec![
        SinkPosition {
            sink: "bars".into(),
            kind: "csv".into(),
            path: Some("out/bars.csv".into()),
            bytes: Some(987),
            topic: None,
            end_offsets: Vec::new(),
            next_part: None,
            pending: Vec::new(),
        },
        SinkPosition {
            sink: "bars-kafka".into(),
            kind: "kafka".into(),
            path: None,
            bytes: None,
            topic: Some("bars".into()),
            end_offsets: vec![PartitionPosition { topic: None, partition: 0, offset: 5 }],
            next_part: None,
            pending: Vec::new(),
        },
    ]
}

/// Writes a complete checkpoint `id` of `shards` shards under `root`, as the pipeline does: state files
/// first, the manifest last.
fn write_checkpoint(root: &Path, id: u64, shards: u32) -> PathBuf {
    let dir = checkpoint_dir(root, id);
    fs::create_dir_all(&dir).unwrap();
    let created_ns = 1_764_000_000_000_000_000 + id as i64 * 1_000_000_000;
    let mut files = Vec::new();
    for shard in 0..shards {
        let path = dir.join(state_file_name(shard));
        let owned = vec![(1, 0, format!("state of shard {shard} at {id}").into_bytes()), (2, 0, vec![shard as u8; 20])];
        let header = StateHeader { checkpoint_id: id, shard, shards, created_ns };
        let size = write_state_file(&path, &header, &sections(&owned)).unwrap();
        let entry = file_entry(&path).unwrap();
        assert_eq!(entry.size, size);
        files.push(entry);
    }
    let m = Manifest {
        version: 1,
        id,
        created_ns,
        kind: "checkpoint".into(),
        name: None,
        shards,
        files,
        sources: sources(),
        sinks: sinks(),
    };
    write_manifest(&dir, &m).unwrap();
    dir
}

fn flip_byte(path: &Path, at: usize) {
    let mut b = fs::read(path).unwrap();
    b[at] ^= 0x10;
    fs::write(path, b).unwrap();
}

#[test]
fn checkpoint_dir_names_sort_by_id() {
    let root = Path::new("/ckpt");
    assert_eq!(checkpoint_dir(root, 42), Path::new("/ckpt/chk-00000000000000000042"));
    assert_eq!(checkpoint_dir(root, u64::MAX), Path::new("/ckpt/chk-18446744073709551615"));
}

#[test]
fn manifest_round_trip() {
    let root = tmp();
    let dir = write_checkpoint(root.path(), 3, 2);
    let m = read_manifest(&dir).unwrap();
    assert_eq!(m.id, 3);
    assert_eq!(m.shards, 2);
    assert_eq!(m.sources, sources());
    assert_eq!(m.sinks, sinks());
    assert_eq!(m.files.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(), ["shard-0.state", "shard-1.state"]);
    assert!(!dir.join("MANIFEST.json.tmp").exists());

    let saved = Manifest { kind: "savepoint".into(), name: Some("before upgrade".into()), ..m.clone() };
    write_manifest(&dir, &saved).unwrap();
    assert_eq!(read_manifest(&dir).unwrap(), saved);

    // Unknown fields are refused, naming the file.
    let text = fs::read_to_string(dir.join(MANIFEST)).unwrap().replacen('{', "{\n  \"extra\": 1,", 1);
    fs::write(dir.join(MANIFEST), text).unwrap();
    let e = read_manifest(&dir).unwrap_err();
    assert!(matches!(e, CheckpointError::ManifestParse { .. }) && e.to_string().contains("extra"), "{e}");
    assert!(e.to_string().contains(MANIFEST), "{e}");

    // What serde cannot check is checked on write and on read.
    for bad in [
        Manifest { kind: "backup".into(), ..m.clone() },
        Manifest { version: 2, ..m.clone() },
        Manifest { shards: 0, ..m.clone() },
        Manifest { files: vec![FileEntry { name: "../x.state".into(), size: 0, crc32c: 0 }], ..m.clone() },
        Manifest { files: vec![m.files[0].clone(), m.files[0].clone()], ..m.clone() },
    ] {
        let e = write_manifest(&dir, &bad).unwrap_err();
        assert!(matches!(e, CheckpointError::ManifestInvalid { .. }), "{e}");
        fs::write(dir.join(MANIFEST), serde_json::to_vec(&bad).unwrap()).unwrap();
        let e = read_manifest(&dir).unwrap_err();
        assert!(matches!(e, CheckpointError::ManifestInvalid { .. }), "{e}");
    }
}

#[test]
fn list_verifies_every_checkpoint() {
    let root = tmp();
    for id in [5, 1, 3] {
        write_checkpoint(root.path(), id, 2);
    }
    fs::create_dir(checkpoint_dir(root.path(), 9)).unwrap(); // being written: no manifest yet
    fs::create_dir(root.path().join("chk-12")).unwrap(); // not a checkpoint name: ignored
    fs::write(root.path().join("notes.txt"), "x").unwrap();
    flip_byte(&checkpoint_dir(root.path(), 3).join("shard-1.state"), 70);

    let all = list(root.path()).unwrap();
    assert_eq!(all.iter().map(|c| c.id).collect::<Vec<_>>(), [1, 3, 5, 9]);
    assert!(all[0].is_valid() && all[2].is_valid());
    let why = all[1].verified.as_ref().unwrap_err();
    assert!(why.contains("shard-1.state") && why.contains("section table"), "{why}");
    assert!(all[1].manifest.is_some(), "the manifest itself is fine");
    assert!(all[3].verified.as_ref().unwrap_err().contains("incomplete"));
    assert!(all[3].manifest.is_none());
    let on_disk: u64 = fs::read_dir(&all[0].path).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum();
    assert_eq!(all[0].size, on_disk);
    assert_eq!(all[3].size, 0);

    let e = list(&root.path().join("absent")).unwrap_err();
    assert!(matches!(e, CheckpointError::Io { .. }) && e.to_string().contains("absent"), "{e}");
}

#[test]
fn latest_valid_of_a_directory_not_created_yet_is_none() {
    // A job stopped before its first checkpoint may not have created its directory: nothing to restore.
    let root = tmp();
    assert!(latest_valid(&root.path().join("not-yet")).unwrap().is_none());
    assert!(latest_valid(root.path()).unwrap().is_none());
}

#[test]
fn latest_valid_skips_a_flipped_state_byte() {
    let root = tmp();
    write_checkpoint(root.path(), 1, 2);
    let newest = write_checkpoint(root.path(), 2, 2);
    assert_eq!(latest_valid(root.path()).unwrap().unwrap().id, 2);

    // In section data, past the header and table: caught by the section CRC and the manifest's CRC.
    let path = newest.join("shard-0.state");
    let len = fs::metadata(&path).unwrap().len() as usize;
    flip_byte(&path, len - 30);
    let got = latest_valid(root.path()).unwrap().unwrap();
    assert_eq!(got.id, 1);
    assert_eq!(got.manifest.unwrap().id, 1);
}

#[test]
fn latest_valid_skips_a_missing_or_corrupt_manifest() {
    let root = tmp();
    write_checkpoint(root.path(), 10, 1);
    let mid = write_checkpoint(root.path(), 11, 1);
    let newest = write_checkpoint(root.path(), 12, 1);
    fs::remove_file(newest.join(MANIFEST)).unwrap();
    assert_eq!(latest_valid(root.path()).unwrap().unwrap().id, 11);

    let text = fs::read_to_string(mid.join(MANIFEST)).unwrap();
    fs::write(mid.join(MANIFEST), &text[..text.len() / 2]).unwrap();
    assert_eq!(latest_valid(root.path()).unwrap().unwrap().id, 10);

    // A manifest that parses but disagrees with its files.
    let mut m: Manifest = serde_json::from_str(&text).unwrap();
    m.files[0].size += 1;
    write_manifest(&mid, &m).unwrap();
    assert_eq!(latest_valid(root.path()).unwrap().unwrap().id, 10);

    // Another checkpoint's manifest.
    let other = read_manifest(&checkpoint_dir(root.path(), 10)).unwrap();
    write_manifest(&newest, &other).unwrap();
    assert_eq!(latest_valid(root.path()).unwrap().unwrap().id, 10);

    fs::remove_file(checkpoint_dir(root.path(), 10).join("shard-0.state")).unwrap();
    assert!(latest_valid(root.path()).unwrap().is_none());
}

#[test]
fn latest_valid_needs_every_shard() {
    let root = tmp();
    write_checkpoint(root.path(), 1, 3);
    let dir = write_checkpoint(root.path(), 2, 3);
    let mut m = read_manifest(&dir).unwrap();
    m.files.remove(1);
    write_manifest(&dir, &m).unwrap();
    let all = list(root.path()).unwrap();
    assert!(all[1].verified.as_ref().unwrap_err().contains("shard(s) [1]"), "{:?}", all[1].verified);
    assert_eq!(latest_valid(root.path()).unwrap().unwrap().id, 1);
}

#[test]
fn prune_keeps_the_newest() {
    let root = tmp();
    for id in 1..=5 {
        write_checkpoint(root.path(), id, 2);
    }
    fs::create_dir(checkpoint_dir(root.path(), 0)).unwrap(); // an old incomplete one
    let removed = prune(root.path(), 3).unwrap();
    assert_eq!(removed, [0, 1, 2].map(|id| checkpoint_dir(root.path(), id)));
    let left: Vec<u64> = list(root.path()).unwrap().iter().map(|c| c.id).collect();
    assert_eq!(left, [3, 4, 5]);
    assert!(prune(root.path(), 3).unwrap().is_empty());

    // The newest is corrupt and 7 is still being written: both stay, the valid ones are counted below them.
    write_checkpoint(root.path(), 6, 2);
    flip_byte(&checkpoint_dir(root.path(), 6).join("shard-1.state"), 3);
    fs::create_dir(checkpoint_dir(root.path(), 7)).unwrap();
    let removed = prune(root.path(), 2).unwrap();
    assert_eq!(removed, [checkpoint_dir(root.path(), 3)]);
    let left: Vec<u64> = list(root.path()).unwrap().iter().map(|c| c.id).collect();
    assert_eq!(left, [4, 5, 6, 7]);
    assert_eq!(latest_valid(root.path()).unwrap().unwrap().id, 5);

    let removed = prune(root.path(), 1).unwrap();
    assert_eq!(removed, [checkpoint_dir(root.path(), 4)]);
    let removed = prune(root.path(), 0).unwrap();
    assert_eq!(removed, [checkpoint_dir(root.path(), 5)]);
    let left: Vec<u64> = list(root.path()).unwrap().iter().map(|c| c.id).collect();
    assert_eq!(left, [6, 7]);
}

/// Checkpoints of a job whose Kafka sink writes in transactions: each checkpoint's transactions are committed
/// after it completes, and COMMITTED.json records it. A job stopped in between has them aborted when it
/// starts again, so a restore uses the newest checkpoint whose commit is recorded, and pruning keeps it.
#[test]
fn a_checkpoint_whose_transactions_are_not_committed_is_passed_over() {
    let root = tmp();
    let r = root.path();
    for id in 1..=3 {
        let dir = write_checkpoint(r, id, 2);
        let mut m = read_manifest(&dir).unwrap();
        m.sinks[1].kind = KIND_KAFKA_TRANSACTIONS.into();
        write_manifest(&dir, &m).unwrap();
        assert!(m.transactional());
    }
    // Nothing recorded: none of them is safe to restore.
    assert_eq!(read_committed(r).unwrap(), 0);
    assert!(latest_valid(r).unwrap().is_none());
    assert!(prune(r, 1).unwrap().is_empty(), "a checkpoint waiting for its commit was removed");

    write_committed(r, 2).unwrap();
    assert_eq!(read_committed(r).unwrap(), 2);
    assert_eq!(latest_valid(r).unwrap().unwrap().id, 2, "checkpoint 3's transactions are not committed");
    let m3 = read_manifest(&checkpoint_dir(r, 3)).unwrap();
    let why = m3.uncommitted(2).expect("3 is not committed");
    assert!(why.contains(COMMITTED) && why.contains("aborted"), "{why}");
    // retain = 1 keeps 2 (what a restore would use) and 3 (waiting for its commit).
    assert_eq!(prune(r, 1).unwrap(), [checkpoint_dir(r, 1)]);

    let listed = String::from_utf8(ticklane(&["checkpoints", "--dir", r.to_str().unwrap()]).stdout).unwrap();
    let line =
        |id: u64| listed.lines().find(|l| l.trim_start().starts_with(&format!("{id} "))).unwrap_or("").to_string();
    assert!(line(2).ends_with(" ok"), "{listed}");
    assert!(line(3).contains("not committed yet"), "{listed}");

    write_committed(r, 3).unwrap();
    assert_eq!(latest_valid(r).unwrap().unwrap().id, 3);
    assert_eq!(prune(r, 1).unwrap(), [checkpoint_dir(r, 2)]);

    // A damaged commit record is an error naming it, not a silent restart from nothing.
    fs::write(r.join(COMMITTED), b"{\"version\": 1").unwrap();
    let e = latest_valid(r).unwrap_err().to_string();
    assert!(e.contains(COMMITTED), "{e}");
}

// ------------------------------------------------------------------------------------------------------
// ticklane checkpoints
// ------------------------------------------------------------------------------------------------------

fn ticklane(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ticklane")).args(args).output().expect("running ticklane")
}

#[test]
fn cli_lists_checkpoints() {
    let root = tmp();
    write_checkpoint(root.path(), 1, 2);
    let dir = write_checkpoint(root.path(), 2, 3);
    let mut m = read_manifest(&dir).unwrap();
    m.kind = "savepoint".into();
    m.name = Some("pre-deploy".into());
    write_manifest(&dir, &m).unwrap();
    flip_byte(&dir.join("shard-2.state"), 20);

    let out = ticklane(&["checkpoints", "--dir", root.path().to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    let positions = "trades: t/0@1234 t/1@99; csv: file@123456; gen: seed 42 n 1000000";
    for (line, id, kind, shards) in
        [(lines[0], "1", "checkpoint", "2 shards"), (lines[1], "2", "savepoint:pre-deploy", "3 shards")]
    {
        assert_eq!(line.split_whitespace().next(), Some(id), "{line}");
        for want in [kind, shards, positions, "2025-11-24T"] {
            assert!(line.contains(want), "`{want}` not in: {line}");
        }
    }
    assert!(lines[0].ends_with("  ok"), "{}", lines[0]);
    assert!(lines[1].contains("FAILED: ") && lines[1].contains("shard-2.state"), "{}", lines[1]);

    let empty = tmp();
    let out = ticklane(&["checkpoints", "--dir", empty.path().to_str().unwrap()]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("no checkpoints in"), "{out:?}");

    let missing = root.path().join("missing");
    let out = ticklane(&["checkpoints", "--dir", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(missing.to_str().unwrap()), "{stderr}");
}
