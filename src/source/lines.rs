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
    eof: bool,
    line: u64,
}

impl LineReader {
    pub fn open(path: &Path) -> io::Result<LineReader> {
        Ok(Self::new(Box::new(File::open(path)?)))
    }

    pub fn new(file: Box<dyn Read + Send>) -> LineReader {
        LineReader { file, buf: vec![0; CHUNK], start: 0, end: 0, eof: false, line: 0 }
    }

    /// The number of the line last returned.
    pub fn line_number(&self) -> u64 {
        self.line
    }

    /// The next line and its number, or `None` at the end of the file. A last line without `\n` is
    /// returned too.
    #[inline]
    pub fn next_line(&mut self) -> io::Result<Option<(u64, &[u8])>> {
        loop {
            if let Some(i) = memchr::memchr(b'\n', &self.buf[self.start..self.end]) {
                let (s, e) = (self.start, self.start + i);
                self.start = e + 1;
                self.line += 1;
                return Ok(Some((self.line, trim_cr(&self.buf[s..e]))));
            }
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
