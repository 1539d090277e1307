//! `ticklane::source::LineReader` with a line longer than its 1 MiB buffer, so the buffer grows.
//!
//! As `line_reader` (same control byte, same checks), with a line of 1 MiB + 1..16 bytes of `x` inserted in the
//! middle of the input; short reads are then up to 64 KiB. A separate target because each input costs
//! milliseconds (`LineReader` rescans the partial line after every read) where `line_reader`'s cost
//! microseconds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ticklane_fuzz::{check_line_reader, split_control};

fuzz_target!(|input: &[u8]| {
    let Some((ctl, rest)) = split_control(input) else { return };
    check_line_reader(ctl, rest, true);
});
