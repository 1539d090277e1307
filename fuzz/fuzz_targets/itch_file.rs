//! The ITCH sample-file framing (`ticklane::itch::{frames, StreamFrames}`) over any bytes, decoding each
//! message (docs/formats.md, "NASDAQ TotalView-ITCH 5.0").
//!
//! Input: the file's bytes. Checks: no panic; the frames tile the input: each frame starts where the previous
//! one ended (a zero-length frame is reported at its offset and skipped), and a truncation is reported once, last,
//! at the offset of a frame that does not fit; so the frames, framed again, are the input up to that offset.
//! Every message decodes or fails as `decode` says, counted once by `Counters`. The same bytes read through
//! `StreamFrames` (a minimal buffer, reads of 1 to 64 bytes with `Interrupted` now and then) give the same frames
//! and errors; so do they through gzip (compressed here, decompressed in streaming) when bit 7 of the first byte
//! is set (compressing is slow: half the inputs skip it).
#![no_main]

use flate2::read::MultiGzDecoder;
use libfuzzer_sys::fuzz_target;
use std::io::{self, Read, Write};
use ticklane::itch::{frames, Counters, FrameError, StreamFrames};

fuzz_target!(|data: &[u8]| {
    let mut counters = Counters::default();
    let mut expect_at = 0u64;
    let mut rebuilt = Vec::with_capacity(data.len());
    let mut truncated_at = None;
    let mut ok_frames = 0u64;
    let mut want: Vec<Result<(u64, Vec<u8>), String>> = Vec::new();
    for f in frames(data) {
        assert!(truncated_at.is_none(), "nothing after a truncation");
        match &f {
            Ok((at, msg)) => {
                assert_eq!(*at, expect_at);
                assert!(!msg.is_empty());
                rebuilt.extend_from_slice(&(msg.len() as u16).to_be_bytes());
                rebuilt.extend_from_slice(msg);
                expect_at += 2 + msg.len() as u64;
                ok_frames += 1;
                let _ = counters.decode(msg);
            }
            Err(e @ FrameError::ZeroLength { offset }) => {
                assert_eq!(*offset, expect_at);
                rebuilt.extend_from_slice(&[0, 0]);
                expect_at += 2;
                counters.frame_error(e);
            }
            Err(e @ FrameError::Truncated { offset, need, available }) => {
                assert_eq!(*offset, expect_at);
                assert_eq!(*available as u64, data.len() as u64 - offset);
                assert!(need > available);
                truncated_at = Some(*offset);
                counters.frame_error(e);
            }
            Err(FrameError::Io { .. }) => panic!("no I/O over a slice"),
        }
        want.push(f.map(|(a, m)| (a, m.to_vec())).map_err(|e| e.to_string()));
    }
    let end = truncated_at.unwrap_or(data.len() as u64);
    assert_eq!(expect_at, end);
    assert_eq!(rebuilt, &data[..end as usize]);
    assert_eq!(counters.messages() + counters.unknown + counters.truncated, ok_frames);

    let step = data.first().map_or(1, |b| (b % 64) as usize + 1);
    let streamed = collect(StreamFrames::with_capacity(Dribble { data, step, calls: 0 }, 0));
    assert_eq!(streamed, want, "streamed");
    if data.first().is_none_or(|b| b & 0x80 == 0) {
        return;
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).expect("compress in memory");
    let gz = gz.finish().expect("compress in memory");
    let unzipped = collect(StreamFrames::with_capacity(MultiGzDecoder::new(&gz[..]), 0));
    assert_eq!(unzipped, want, "through gzip");
});

fn collect<R: Read>(mut s: StreamFrames<R>) -> Vec<Result<(u64, Vec<u8>), String>> {
    let mut v = Vec::new();
    while let Some(f) = s.next() {
        v.push(f.map(|(a, m)| (a, m.to_vec())).map_err(|e| e.to_string()));
    }
    v
}

/// Reads of at most `step` bytes (varying), `Interrupted` every seventh call.
struct Dribble<'a> {
    data: &'a [u8],
    step: usize,
    calls: usize,
}

impl Read for Dribble<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.calls += 1;
        if self.calls % 7 == 0 {
            return Err(io::ErrorKind::Interrupted.into());
        }
        let n = buf.len().min(self.data.len()).min(1 + (self.calls * 13) % self.step);
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}
