//! Reading a file line by line through one large reused buffer: a `read` syscall per megabyte, not per
//! line, and no allocation per line.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

const CHUNK: usize = 1 << 20;

/// Lines of a file, without their `\n` (or `\r\n`), numbered from 1.
pub struct LineReader {
    file: Box<dyn Read + Send>,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// `buf[start..scanned]` holds no `\n` (so a long line is not searched again after every read).
    scanned: usize,
    eof: bool,
    line: u64,
    /// Bytes read from the file so far (`buf[start..end]` of them not yet returned).
    read: u64,
}

impl LineReader {
    pub fn open(path: &Path) -> io::Result<LineReader> {
        Ok(Self::new(Box::new(File::open(path)?)))
    }

    /// Opens `path` at byte `offset` (the start of a line), numbering the lines after `line`.
    pub fn open_at(path: &Path, offset: u64, line: u64) -> io::Result<LineReader> {
        let mut f = File::open(path)?;
        let len = f.metadata()?.len();
        if offset > len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the file is {len} bytes long, shorter than the position {offset} to resume from"),
            ));
        }
        io::Seek::seek(&mut f, io::SeekFrom::Start(offset))?;
        let mut r = Self::new(Box::new(f));
        r.line = line;
        r.read = offset;
        Ok(r)
    }

    pub fn new(file: Box<dyn Read + Send>) -> LineReader {
        LineReader { file, buf: vec![0; CHUNK], start: 0, end: 0, scanned: 0, eof: false, line: 0, read: 0 }
    }

    /// The file offset just after the line last returned (and its `\n`).
    pub fn offset(&self) -> u64 {
        self.read - (self.end - self.start) as u64
    }

    /// The number of the line last returned.
    pub fn line_number(&self) -> u64 {
        self.line
    }

    /// The next line and its number, or `None` at the end of the file. A last line without `\n` is
    /// returned too. A trailing `\r` is removed from every line (so `\r\n` files read like `\n` ones).
    #[inline]
    pub fn next_line(&mut self) -> io::Result<Option<(u64, &[u8])>> {
        loop {
            let from = self.scanned.max(self.start);
            if let Some(i) = memchr::memchr(b'\n', &self.buf[from..self.end]) {
                let (s, e) = (self.start, from + i);
                self.start = e + 1;
                self.scanned = self.start;
                self.line += 1;
                return Ok(Some((self.line, trim_cr(&self.buf[s..e]))));
            }
            self.scanned = self.end;
            if self.eof {
                if self.start < self.end {
                    let (s, e) = (self.start, self.end);
                    self.start = self.end;
                    self.line += 1;
                    return Ok(Some((self.line, trim_cr(&self.buf[s..e]))));
                }
                return Ok(None);
            }
            self.fill()?;
        }
    }

    #[cold]
    fn fill(&mut self) -> io::Result<()> {
        // Move the partial line to the front; grow only for a line longer than the buffer.
        self.buf.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.scanned -= self.start;
        self.start = 0;
        if self.end == self.buf.len() {
            self.buf.resize(self.buf.len() * 2, 0);
        }
        loop {
            match self.file.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.end += n;
                    self.read += n as u64;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

fn trim_cr(l: &[u8]) -> &[u8] {
    l.strip_suffix(b"\r").unwrap_or(l)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &[u8]) -> Vec<Vec<u8>> {
        let mut r = LineReader::new(Box::new(std::io::Cursor::new(text.to_vec())));
        let mut v = Vec::new();
        while let Some((_, l)) = r.next_line().unwrap() {
            v.push(l.to_vec());
        }
        v
    }

    #[test]
    fn splits_lines_and_keeps_a_last_unterminated_one() {
        assert_eq!(lines(b"a\r\nb\n\nc"), vec![b"a".to_vec(), b"b".to_vec(), b"".to_vec(), b"c".to_vec()]);
        assert!(lines(b"").is_empty());
    }

    /// A reader that hands out a few bytes per `read`, as a pipe or socket might.
    struct Trickle(Vec<u8>, usize);

    impl std::io::Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = (self.0.len() - self.1).min(buf.len()).min(7);
            buf[..n].copy_from_slice(&self.0[self.1..self.1 + n]);
            self.1 += n;
            Ok(n)
        }
    }

    #[test]
    fn small_reads_give_the_same_lines() {
        let text = b"one\ntwo\r\n\nthree four five six seven\nlast".to_vec();
        let mut r = LineReader::new(Box::new(Trickle(text.clone(), 0)));
        let mut got = Vec::new();
        while let Some((n, l)) = r.next_line().unwrap() {
            got.push((n, l.to_vec()));
        }
        let want: Vec<(u64, Vec<u8>)> = lines(&text).into_iter().enumerate().map(|(i, l)| (i as u64 + 1, l)).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn lines_longer_than_the_buffer() {
        let mut text = vec![b'x'; CHUNK * 2 + 5];
        text.push(b'\n');
        text.extend_from_slice(b"y\n");
        let l = lines(&text);
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].len(), CHUNK * 2 + 5);
    }
}
