//! `ticklane::config::parse` (the TOML loader and validator) on arbitrary text.
//!
//! Input: the bytes as text (invalid UTF-8 replaced by U+FFFD, as a reader of a mangled file would see it).
//! Checks: no panic; the result is a plan or `LoadError::Invalid` with at least one error, each located in
//! the text (origin as given, line ≥ 1 and within the text's lines, column ≥ 1, a non-empty reason), and the
//! errors format as `origin:line:column: …`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ticklane::config::{parse, LoadError};

const ORIGIN: &str = "fuzz.toml";

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match parse(&text, ORIGIN) {
        Ok(plan) => {
            let _ = format!("{plan:?}");
        }
        Err(LoadError::Invalid(errs)) => {
            assert!(!errs.is_empty(), "LoadError::Invalid without errors");
            let lines = text.matches('\n').count() + 1;
            for e in &errs {
                assert_eq!(e.origin, ORIGIN);
                assert!(e.line >= 1 && e.line <= lines, "line {} outside 1..={lines}: {e}", e.line);
                assert!(e.column >= 1, "column {}: {e}", e.column);
                assert!(!e.reason.is_empty(), "an error without a reason: {e:?}");
                let shown = e.to_string();
                let prefix = format!("{ORIGIN}:{}:{}: ", e.line, e.column);
                assert!(shown.starts_with(&prefix), "{shown:?} does not start with {prefix:?}");
            }
            let _ = LoadError::Invalid(errs).to_string();
        }
        Err(e @ LoadError::Read { .. }) => panic!("parse never reads a file, yet: {e}"),
    }
});
