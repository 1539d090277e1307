//! NASDAQ's ITCH sample-file framing (a big-endian `u16` length before each message), over a mapped file or
//! a gzip stream, and the counters a reader keeps.
//!
//! A plain file is mapped and its messages are slices of the map ([`frames`], no copy). A gzip file (known by
//! its magic bytes, not its name) is decompressed in streaming through one buffer that is reused ([`StreamFrames`]):
//! a full day is several GiB and is never in memory at once. Offsets are those of a message's length prefix
//! in the (decompressed) stream. A zero length is reported and skipped (the next length follows it); a
//! message cut by the end of the input is reported and ends the iteration.

use super::msg::{decode, is_oversize, message_len, DecodeError, Message};
use flate2::read::MultiGzDecoder;
use memmap2::Mmap;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;
use thiserror::Error;

/// The first two bytes of every gzip member.
pub const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// A framing problem, with the byte offset of the frame's length prefix.
#[derive(Debug, Error)]
pub enum FrameError {
    /// A length of 0: no message. The iteration goes on after the two length bytes.
    #[error("zero-length message at byte {offset}")]
    ZeroLength { offset: u64 },
    /// The input ends inside a frame: `need` bytes from `offset` (2 when the length itself is cut), only
    /// `available` there. The iteration ends.
    #[error("truncated message at byte {offset}: the frame needs {need} bytes, the input has {available} left")]
    Truncated { offset: u64, need: usize, available: usize },
    /// Reading (or decompressing) failed. The iteration ends.
    #[error("reading at byte {offset}: {source}")]
    Io { offset: u64, source: io::Error },
}

impl FrameError {
    /// The offset of the frame in question.
    pub fn offset(&self) -> u64 {
        match self {
            FrameError::ZeroLength { offset }
            | FrameError::Truncated { offset, .. }
            | FrameError::Io { offset, .. } => *offset,
        }
    }
}

/// The frames of an in-memory (or mapped) sample file: `(offset of the length prefix, message bytes)`.
pub fn frames(buf: &[u8]) -> Frames<'_> {
    Frames { buf, pos: 0, done: false }
}

/// Iterator over the frames of a byte slice; see [`frames`].
#[derive(Clone, Debug)]
pub struct Frames<'a> {
    buf: &'a [u8],
    pos: usize,
    done: bool,
}

impl<'a> Frames<'a> {
    /// The offset of the next frame (the input's length once done).
    pub fn position(&self) -> usize {
        self.pos
    }
}

impl<'a> Iterator for Frames<'a> {
    type Item = Result<(u64, &'a [u8]), FrameError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let offset = self.pos as u64;
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        let Some((len, body)) = rest.split_first_chunk::<2>() else {
            self.done = true;
            self.pos = self.buf.len();
            return (!rest.is_empty()).then_some(Err(FrameError::Truncated { offset, need: 2, available: rest.len() }));
        };
        let n = u16::from_be_bytes(*len) as usize;
        if n == 0 {
            self.pos += 2;
            return Some(Err(FrameError::ZeroLength { offset }));
        }
        match body.get(..n) {
            Some(msg) => {
                self.pos += 2 + n;
                Some(Ok((offset, msg)))
            }
            None => {
                self.done = true;
                self.pos = self.buf.len();
                Some(Err(FrameError::Truncated { offset, need: 2 + n, available: rest.len() }))
            }
        }
    }
}

/// Maps a file read-only (for [`frames`]).
pub fn map(path: &Path) -> io::Result<Mmap> {
    let file = File::open(path)?;
    // SAFETY: the map is read-only and lives as long as the returned value. A mapped file changed by another
    // process while mapped would change the bytes under the slices handed out; ITCH sample files are written
    // once and then only read, and the decoder reads any bytes without undefined behaviour beyond that.
    unsafe { Mmap::map(&file) }
}

/// The frames of a stream read through one buffer of fixed size (a message is at most 65,537 bytes with its
/// length, so any buffer of at least that holds one). A lending iterator: each frame borrows the buffer until
/// the next call.
pub struct StreamFrames<R> {
    src: R,
    buf: Box<[u8]>,
    /// Unconsumed bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    /// Stream offset of `buf[start]`.
    offset: u64,
    eof: bool,
    done: bool,
}

/// The default buffer of [`StreamFrames`]: large reads from the decompressor, and room for any frame.
pub const STREAM_BUFFER: usize = 1 << 20;

impl<R: Read> StreamFrames<R> {
    /// Frames of `src`, through a buffer of [`STREAM_BUFFER`] bytes.
    pub fn new(src: R) -> StreamFrames<R> {
        StreamFrames::with_capacity(src, STREAM_BUFFER)
    }

    /// Frames of `src` through a buffer of `capacity` bytes (at least 65,537).
    pub fn with_capacity(src: R, capacity: usize) -> StreamFrames<R> {
        let cap = capacity.max(2 + u16::MAX as usize);
        StreamFrames { src, buf: vec![0; cap].into_boxed_slice(), start: 0, end: 0, offset: 0, eof: false, done: false }
    }

    /// The stream offset of the next frame.
    pub fn position(&self) -> u64 {
        self.offset
    }

    /// Reads until `need` bytes are buffered or the stream ends.
    fn fill(&mut self, need: usize) -> io::Result<()> {
        if self.end - self.start >= need {
            return Ok(());
        }
        if self.buf.len() - self.start < need {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        while !self.eof && self.end - self.start < need {
            match self.src.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The bytes from the next frame on that are in the buffer now (what a reader may look ahead at without
    /// reading).
    #[inline]
    pub fn buffered(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Reads past the next `n` bytes of the stream (frames or not): fails if it ends first.
    pub fn skip(&mut self, mut n: u64) -> io::Result<()> {
        while n > 0 {
            if self.start == self.end {
                self.start = 0;
                self.end = 0;
                self.fill(1)?;
                if self.end == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("the stream ends at byte {}, {n} bytes short", self.offset),
                    ));
                }
            }
            let k = (self.end - self.start).min(usize::try_from(n).unwrap_or(usize::MAX));
            self.start += k;
            self.offset += k as u64;
            n -= k as u64;
        }
        Ok(())
    }

    /// The next frame, an error, or `None` at the end.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<Result<(u64, &[u8]), FrameError>> {
        if self.done {
            return None;
        }
        let offset = self.offset;
        if let Err(source) = self.fill(2) {
            self.done = true;
            return Some(Err(FrameError::Io { offset, source }));
        }
        let available = self.end - self.start;
        if available < 2 {
            self.done = true;
            return (available > 0).then_some(Err(FrameError::Truncated { offset, need: 2, available }));
        }
        let n = u16::from_be_bytes([self.buf[self.start], self.buf[self.start + 1]]) as usize;
        if n == 0 {
            self.start += 2;
            self.offset += 2;
            return Some(Err(FrameError::ZeroLength { offset }));
        }
        if let Err(source) = self.fill(2 + n) {
            self.done = true;
            return Some(Err(FrameError::Io { offset, source }));
        }
        let available = self.end - self.start;
        if available < 2 + n {
            self.done = true;
            return Some(Err(FrameError::Truncated { offset, need: 2 + n, available }));
        }
        let at = self.start + 2;
        self.start += 2 + n;
        self.offset += 2 + n as u64;
        Some(Ok((offset, &self.buf[at..at + n])))
    }
}

/// An opened sample file: mapped when plain, decompressed in streaming when gzip.
pub struct ItchFile(Source);

enum Source {
    Mapped { map: Mmap, pos: usize, done: bool },
    Gzip(Box<StreamFrames<MultiGzDecoder<BufReader<File>>>>),
}

impl ItchFile {
    /// Opens `path`, gzip if it starts with the gzip magic bytes (whatever its name), else plain.
    pub fn open(path: &Path) -> io::Result<ItchFile> {
        let mut file = File::open(path)?;
        let mut magic = [0u8; 2];
        let mut got = 0;
        while got < 2 {
            match file.read(&mut magic[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if got == 2 && magic == GZIP_MAGIC {
            let file = File::open(path)?;
            let dec = MultiGzDecoder::new(BufReader::with_capacity(1 << 16, file));
            Ok(ItchFile(Source::Gzip(Box::new(StreamFrames::new(dec)))))
        } else {
            Ok(ItchFile(Source::Mapped { map: map(path)?, pos: 0, done: false }))
        }
    }

    /// Whether the file is gzip.
    pub fn is_gzip(&self) -> bool {
        matches!(self.0, Source::Gzip(_))
    }

    /// The byte offset of the next frame.
    #[inline]
    pub fn position(&self) -> u64 {
        match &self.0 {
            Source::Mapped { pos, .. } => *pos as u64,
            Source::Gzip(s) => s.position(),
        }
    }

    /// Goes on from byte `pos` of a file just opened (a checkpoint's position): a mapped file jumps there, a
    /// gzip stream is decompressed again up to it. Fails if the file is shorter.
    pub fn resume_at(&mut self, pos: u64) -> io::Result<()> {
        match &mut self.0 {
            Source::Mapped { map, pos: at, done } => {
                if pos > map.len() as u64 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("the file has {} bytes, the position is byte {pos}", map.len()),
                    ));
                }
                *at = pos as usize;
                *done = false;
                Ok(())
            }
            Source::Gzip(s) => {
                let ahead = pos
                    .checked_sub(s.position())
                    .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("already past byte {pos}")))?;
                s.skip(ahead)
            }
        }
    }

    /// The bytes from the next frame on that are in memory now: the rest of a mapped file, what a gzip
    /// stream has decompressed into its buffer. A reader may look ahead at them (to prefetch what the next
    /// messages will touch) without reading them.
    #[inline]
    pub fn buffered(&self) -> &[u8] {
        match &self.0 {
            Source::Mapped { map, pos, done } => map.get(*pos..).filter(|_| !*done).unwrap_or_default(),
            Source::Gzip(s) => s.buffered(),
        }
    }

    /// The next frame, an error, or `None` at the end (see [`Frames`] and [`StreamFrames`]).
    #[allow(clippy::should_implement_trait)]
    #[inline]
    pub fn next(&mut self) -> Option<Result<(u64, &[u8]), FrameError>> {
        match &mut self.0 {
            Source::Mapped { map, pos, done } => {
                let mut f = Frames { buf: &map[..], pos: *pos, done: *done };
                let r = f.next();
                *pos = f.pos;
                *done = f.done;
                r
            }
            Source::Gzip(s) => s.next(),
        }
    }
}

/// What a reader saw: messages decoded by type, and each kind of problem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counters {
    /// Messages decoded, by type byte (known types only).
    pub by_type: [u64; 256],
    /// Messages of a type ITCH 5.0 does not define (skipped).
    pub unknown: u64,
    /// Messages shorter than their type's layout (skipped).
    pub truncated: u64,
    /// Messages longer than their type's layout (decoded by their known prefix).
    pub oversize: u64,
    /// Frames of length 0.
    pub zero_length: u64,
    /// A last frame cut by the end of the input (0 or 1).
    pub truncated_tail: u64,
    /// Read or decompression errors (0 or 1).
    pub io_errors: u64,
}

impl Default for Counters {
    fn default() -> Counters {
        Counters {
            by_type: [0; 256],
            unknown: 0,
            truncated: 0,
            oversize: 0,
            zero_length: 0,
            truncated_tail: 0,
            io_errors: 0,
        }
    }
}

impl Counters {
    /// Decodes one message and counts what it was.
    #[inline]
    pub fn decode<'a>(&mut self, bytes: &'a [u8]) -> Result<Message<'a>, DecodeError> {
        let r = decode(bytes);
        match &r {
            Ok(Message::Unknown { .. }) => self.unknown += 1,
            Ok(m) => {
                let kind = m.kind();
                self.by_type[kind as usize] += 1;
                if is_oversize(kind, bytes.len()) {
                    self.oversize += 1;
                }
            }
            Err(DecodeError::Truncated { .. }) | Err(DecodeError::Empty) => self.truncated += 1,
        }
        r
    }

    /// Counts a framing error.
    pub fn frame_error(&mut self, e: &FrameError) {
        match e {
            FrameError::ZeroLength { .. } => self.zero_length += 1,
            FrameError::Truncated { .. } => self.truncated_tail += 1,
            FrameError::Io { .. } => self.io_errors += 1,
        }
    }

    /// Messages decoded, all types.
    pub fn messages(&self) -> u64 {
        self.by_type.iter().sum()
    }

    /// Decoded messages of one type.
    pub fn of(&self, kind: u8) -> u64 {
        self.by_type[kind as usize]
    }

    /// `(type, count)` for every known type seen, in the spec's order.
    pub fn kinds(&self) -> impl Iterator<Item = (u8, u64)> + '_ {
        super::msg::KINDS
            .iter()
            .map(|&k| (k, self.by_type[k as usize]))
            .filter(|&(k, n)| n > 0 && message_len(k).is_some())
    }

    /// Adds another reader's counts.
    pub fn merge(&mut self, o: &Counters) {
        for (a, b) in self.by_type.iter_mut().zip(o.by_type.iter()) {
            *a += b;
        }
        self.unknown += o.unknown;
        self.truncated += o.truncated;
        self.oversize += o.oversize;
        self.zero_length += o.zero_length;
        self.truncated_tail += o.truncated_tail;
        self.io_errors += o.io_errors;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_after_a_truncation() {
        let mut f = frames(&[0, 5, b'D']);
        assert!(matches!(f.next(), Some(Err(FrameError::Truncated { offset: 0, need: 7, available: 3 }))));
        assert!(f.next().is_none());
        assert_eq!(f.position(), 3);
    }

    #[test]
    fn counters_count_and_merge() {
        let mut c = Counters::default();
        let _ = c.decode(b"S\0\0\0\0\0\0\0\0\0\0O");
        let _ = c.decode(b"S\0\0\0\0\0\0\0\0\0\0Oextra");
        let _ = c.decode(b"S\0\0");
        let _ = c.decode(b"?");
        c.frame_error(&FrameError::ZeroLength { offset: 4 });
        assert_eq!((c.of(b'S'), c.oversize, c.truncated, c.unknown, c.zero_length), (2, 1, 1, 1, 1));
        assert_eq!(c.kinds().collect::<Vec<_>>(), vec![(b'S', 2)]);
        let mut d = c.clone();
        d.merge(&c);
        assert_eq!((d.messages(), d.unknown, d.oversize), (4, 2, 2));
    }
}
