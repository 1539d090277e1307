//! `ticklane::source::LineReader` over arbitrary bytes.
//!
//! Input: a control byte, then the file's bytes. Control bit 0 picks the reader:
//! - 0: `std::io::Cursor` over the bytes (as a regular file behaves: full reads);
//! - 1: a reader that hands the bytes over in short reads (sizes 1..=64, varying from call to call) and, if
//!   control bit 7 is set, fails every third read with `ErrorKind::Interrupted`, which `LineReader` must retry.
//!
//! Checks: no panic and no error; line numbers count 1, 2, 3, …; and the lines are exactly the input split at
//! `\n`, each without one trailing `\r`, with no extra empty line after a final `\n` (so the lines, rejoined
//! with their separators, are the input). One case is lossy, and accepted here (`trim_cr` in src/source/lines.rs):
//! a last line without `\n` also loses one trailing `\r`.
//!
//! `line_reader_long` does the same with a line longer than the reader's buffer inserted.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ticklane_fuzz::{check_line_reader, split_control};

fuzz_target!(|input: &[u8]| {
    let Some((ctl, rest)) = split_control(input) else { return };
    check_line_reader(ctl, rest, false);
});
