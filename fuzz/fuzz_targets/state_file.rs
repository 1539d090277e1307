//! The checkpoint state file (`ticklane::checkpoint::file`, docs/checkpoints.md "File layout").
//!
//! The input is written to a file and opened with `StateFile::open`, which maps it. Checks: no panic; an
//! error names the file; a file that opens has sections that `section(kind, id)` finds again, and since the
//! layout is canonical (every byte checksummed or zero padding), writing its header and sections back with
//! `write_state_file` gives the input byte for byte.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use ticklane::checkpoint::file::{write_state_file, Section, StateFile};

/// A directory of this process's own, so parallel jobs (`-jobs`, `-workers`) do not share files.
fn dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("ticklane-fuzz-state-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("creating the temp dir");
        d
    })
}

fuzz_target!(|data: &[u8]| {
    let path = dir().join("input.state");
    std::fs::write(&path, data).expect("writing the input");
    match StateFile::open(&path) {
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains(&path.display().to_string()), "the error does not name the file: {msg}");
        }
        Ok(f) => {
            assert_eq!(f.file_len(), data.len() as u64);
            let sections: Vec<Section<'_>> = f.sections().collect();
            for s in &sections {
                assert_eq!(f.section(s.kind, s.id), Some(s.bytes), "section ({}, {})", s.kind, s.id);
            }
            let again = dir().join("again.state");
            let size = write_state_file(&again, f.header(), &sections).expect("writing what was read");
            assert_eq!(size, data.len() as u64);
            assert!(std::fs::read(&again).expect("reading it back") == data, "written back differently");
        }
    }
});
