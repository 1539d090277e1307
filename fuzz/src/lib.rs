//! Helpers shared by the fuzz targets (docs/fuzzing.md).

use std::io::{self, Read};
use ticklane::source::LineReader;
use ticklane::time::TimeUnit;

/// A timestamp unit picked by the low two bits of `b`.
pub fn unit_of(b: u8) -> TimeUnit {
    match b & 3 {
        0 => TimeUnit::Seconds,
        1 => TimeUnit::Millis,
        2 => TimeUnit::Micros,
        _ => TimeUnit::Nanos,
    }
}

/// An interner limit from 1 to 8 (small, so `TooManyInstruments` is reachable), picked by bits 2..5 of `b`.
pub fn limit_of(b: u8) -> usize {
    ((b >> 2) & 7) as usize + 1
}

/// Splits `data` into a control byte and the rest.
pub fn split_control(data: &[u8]) -> Option<(u8, &[u8])> {
    data.split_first().map(|(&c, rest)| (c, rest))
}

/// Parses one CSV record (RFC 4180: `,` separates fields, a field may be quoted with `"` and a quote inside
/// is doubled; quoted fields may hold `,`, `\r`, `\n`). `text` must be exactly one record followed by `\n`.
/// Returns `None` if it is not.
pub fn parse_csv_record(text: &[u8]) -> Option<Vec<Vec<u8>>> {
    let body = text.strip_suffix(b"\n")?;
    let mut fields = Vec::new();
    let mut i = 0;
    loop {
        let mut field = Vec::new();
        if body.get(i) == Some(&b'"') {
            i += 1;
            loop {
                match body.get(i) {
                    None => return None, // unterminated quote
                    Some(b'"') if body.get(i + 1) == Some(&b'"') => {
                        field.push(b'"');
                        i += 2;
                    }
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(&c) => {
                        field.push(c);
                        i += 1;
                    }
                }
            }
            match body.get(i) {
                None => {
                    fields.push(field);
                    return Some(fields);
                }
                Some(b',') => i += 1,
                Some(_) => return None, // text after a closing quote
            }
        } else {
            loop {
                match body.get(i) {
                    None => {
                        fields.push(field);
                        return Some(fields);
                    }
                    Some(b',') => {
                        i += 1;
                        break;
                    }
                    // An unquoted field must not hold a quote or a line break.
                    Some(b'"' | b'\n' | b'\r') => return None,
                    Some(&c) => {
                        field.push(c);
                        i += 1;
                    }
                }
            }
        }
        fields.push(field);
    }
}

/// Short reads, with an `Interrupted` error before some of them.
pub struct Trickle {
    data: Vec<u8>,
    pos: usize,
    step: usize,
    calls: usize,
    max: usize,
    interrupt: bool,
}

impl Read for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.calls += 1;
        if self.interrupt && self.calls % 3 == 0 {
            return Err(io::Error::from(io::ErrorKind::Interrupted));
        }
        let n = buf.len().min(self.data.len() - self.pos).min(1 + (self.step + self.calls * 7919) % self.max);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// What the lines of `data` must be.
pub fn expected_lines(data: &[u8]) -> Vec<&[u8]> {
    if data.is_empty() {
        return Vec::new();
    }
    let body = data.strip_suffix(b"\n").unwrap_or(data);
    body.split(|&c| c == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l)).collect()
}

/// Reads `rest` through `LineReader` and checks the lines (the `line_reader` targets). Control bit 0: a
/// `Cursor` (0) or `Trickle` short reads (1); bits 4–6 vary the read sizes; bit 7 makes every third read fail
/// with `Interrupted`. With `long`, a line longer than the reader's 1 MiB buffer is inserted in the middle.
pub fn check_line_reader(ctl: u8, rest: &[u8], long: bool) {
    let mut data = rest.to_vec();
    if long {
        // A line of 1 MiB + a few bytes (longer than the buffer) in the middle of the input.
        let at = data.len() / 2;
        data.splice(at..at, std::iter::repeat_n(b'x', (1 << 20) + 1 + (ctl as usize >> 4)));
    }
    let reader: Box<dyn Read + Send> = if ctl & 1 == 0 {
        Box::new(io::Cursor::new(data.clone()))
    } else {
        let max = if long { 1 << 16 } else { 64 };
        Box::new(Trickle {
            data: data.clone(),
            pos: 0,
            step: ((ctl >> 4) & 7) as usize,
            calls: 0,
            max,
            interrupt: ctl & 0x80 != 0,
        })
    };
    let mut r = LineReader::new(reader);
    let want = expected_lines(&data);
    let mut got = 0usize;
    while let Some((n, line)) = r.next_line().expect("reading from memory cannot fail") {
        assert_eq!(n, got as u64 + 1, "line numbers must count up from 1");
        assert!(got < want.len(), "more lines than the input has ({} expected)", want.len());
        assert_eq!(line, want[got], "line {n} differs");
        got += 1;
        assert_eq!(r.line_number(), n);
    }
    assert_eq!(got, want.len(), "fewer lines than the input has");
    // After the end it stays at the end.
    assert!(r.next_line().unwrap().is_none());
}
