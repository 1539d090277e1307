//! MoldUDP64 downstream packets: the 20-byte header, message blocks read in place, and their encoding.
//!
//! Layout (MoldUDP64 Protocol Specification V 1.00, 07/07/2009; every number binary, big-endian):
//!
//! | offset | length | field |
//! |---|---|---|
//! | 0 | 10 | session (alphanumeric) |
//! | 10 | 8 | sequence number of the first message (heartbeat, end of session: the next expected) |
//! | 18 | 2 | message count: 0 = heartbeat, 0xFFFF = end of session |
//! | 20 | … | `count` message blocks: a 2-byte length (not counting itself), then that many bytes |
//!
//! [`Packet::parse`] checks every block once and keeps a slice of the buffer; [`Messages`] then walks it
//! again, so reading a packet allocates nothing and copies no payload. A block that runs past the end of the
//! datagram is a [`PacketError`] naming the session, sequence, block and byte offset; [`Packet::parse_partial`]
//! keeps the whole blocks before the damage so a receiver can still deliver them.

use std::fmt;
use std::iter::FusedIterator;

/// Bytes of the session field.
pub const SESSION_LEN: usize = 10;
/// Bytes of the downstream packet header.
pub const HEADER_LEN: usize = 20;
/// Bytes of a message block's length field.
pub const BLOCK_LEN_FIELD: usize = 2;
/// The message count of a heartbeat.
pub const HEARTBEAT_COUNT: u16 = 0;
/// The message count of an end-of-session packet.
pub const END_OF_SESSION_COUNT: u16 = 0xFFFF;
/// The most messages one data packet can carry (0xFFFF means end of session).
pub const MAX_MESSAGES: u16 = 0xFFFE;
/// The longest message a block can carry.
pub const MAX_MESSAGE_LEN: usize = u16::MAX as usize;

/// A session name: 10 bytes, alphanumeric, right-padded with spaces when shorter.
///
/// Received sessions are compared byte for byte and never checked for their characters: a receiver follows
/// whatever the sender put there. [`Session::new`] is for building one.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Session(pub [u8; SESSION_LEN]);

/// A session name that [`Session::new`] refuses.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("a MoldUDP64 session name is 1 to 10 characters, {0:?} has {1}")]
    Length(String, usize),
    #[error("a MoldUDP64 session name is alphanumeric ASCII, {0:?} is not")]
    Characters(String),
}

impl Session {
    /// A session from 1 to 10 ASCII letters and digits, padded with spaces on the right.
    pub fn new(name: &str) -> Result<Session, SessionError> {
        if name.is_empty() || name.len() > SESSION_LEN {
            return Err(SessionError::Length(name.to_string(), name.chars().count()));
        }
        if !name.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(SessionError::Characters(name.to_string()));
        }
        let mut s = [b' '; SESSION_LEN];
        s[..name.len()].copy_from_slice(name.as_bytes());
        Ok(Session(s))
    }

    pub const fn as_bytes(&self) -> &[u8; SESSION_LEN] {
        &self.0
    }
}

impl fmt::Display for Session {
    /// The name without its space padding; bytes outside printable ASCII as `\xNN` (a received session is
    /// not checked).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let end = self.0.iter().rposition(|&b| b != b' ').map_or(0, |i| i + 1);
        for &b in self.0.get(..end).unwrap_or(&[]) {
            if b.is_ascii_graphic() || b == b' ' {
                write!(f, "{}", b as char)?;
            } else {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Session(\"{self}\")")
    }
}

/// What a packet is, from its message count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// 1 to 0xFFFE messages (the count the header states).
    Data(u16),
    /// Count 0: no message; the sequence is the next one the sender will use.
    Heartbeat,
    /// Count 0xFFFF: the session is over; the sequence is the next expected, as in a heartbeat.
    EndOfSession,
}

/// The downstream packet header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub session: Session,
    pub sequence: u64,
    pub count: u16,
}

impl Header {
    /// Reads the first [`HEADER_LEN`] bytes of `buf`.
    pub fn read(buf: &[u8]) -> Result<Header, PacketError> {
        let short = || PacketError::ShortHeader { len: buf.len() };
        let session: [u8; SESSION_LEN] = buf.get(..SESSION_LEN).and_then(|s| s.try_into().ok()).ok_or_else(short)?;
        let sequence: [u8; 8] = buf.get(SESSION_LEN..18).and_then(|s| s.try_into().ok()).ok_or_else(short)?;
        let count: [u8; 2] = buf.get(18..HEADER_LEN).and_then(|s| s.try_into().ok()).ok_or_else(short)?;
        Ok(Header {
            session: Session(session),
            sequence: u64::from_be_bytes(sequence),
            count: u16::from_be_bytes(count),
        })
    }

    /// The header's 20 bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[..SESSION_LEN].copy_from_slice(&self.session.0);
        out[SESSION_LEN..18].copy_from_slice(&self.sequence.to_be_bytes());
        out[18..].copy_from_slice(&self.count.to_be_bytes());
        out
    }

    pub const fn kind(&self) -> Kind {
        match self.count {
            HEARTBEAT_COUNT => Kind::Heartbeat,
            END_OF_SESSION_COUNT => Kind::EndOfSession,
            n => Kind::Data(n),
        }
    }
}

/// What a damaged packet lacked at the offset where it ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expected {
    /// A message block's 2-byte length field.
    LengthField,
    /// The payload of a block whose length field says this many bytes.
    Payload(u16),
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expected::LengthField => f.write_str("a 2-byte message length"),
            Expected::Payload(n) => write!(f, "a message payload of {n} bytes"),
        }
    }
}

/// A datagram that is not a whole MoldUDP64 packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// Fewer bytes than the header: nothing of the packet can be trusted.
    #[error("MoldUDP64 packet of {len} bytes is shorter than the 20-byte header")]
    ShortHeader { len: usize },
    /// Message block `index` (0-based; its sequence is `message_sequence`) starting at byte `offset` runs past
    /// the end of the `len`-byte datagram: `expected` is what was missing, `available` the bytes left from
    /// `offset`. Blocks `0..index` are whole.
    #[error(
        "MoldUDP64 packet of session {session}, sequence {sequence}, count {count}, {len} bytes: message {index} \
         (sequence {message_sequence}) at byte offset {offset}: expected {expected}, {available} bytes left"
    )]
    Truncated {
        session: Session,
        sequence: u64,
        count: u16,
        len: usize,
        index: u16,
        message_sequence: u64,
        offset: usize,
        expected: Expected,
        available: usize,
    },
    /// The data packet's last message would be numbered past `u64::MAX`.
    #[error("MoldUDP64 packet of session {session}: sequence {sequence} + count {count} overflows 64 bits")]
    SequenceOverflow { session: Session, sequence: u64, count: u16 },
}

/// A downstream packet read in place.
#[derive(Clone, Copy, Debug)]
pub struct Packet<'a> {
    header: Header,
    /// The whole message blocks, back to back, and nothing after them.
    blocks: &'a [u8],
    whole: u16,
}

impl<'a> Packet<'a> {
    /// Reads a whole packet: every block the count announces must be inside `buf`. Bytes after the last
    /// block (and after the header of a heartbeat or end-of-session packet) are ignored.
    pub fn parse(buf: &'a [u8]) -> Result<Packet<'a>, PacketError> {
        match Self::parse_partial(buf)? {
            (p, None) => Ok(p),
            (_, Some(e)) => Err(e),
        }
    }

    /// Reads a packet, keeping the whole blocks before any damage: `Err` only when the header is short or
    /// the sequence overflows (nothing is usable); otherwise the packet with the messages that are whole,
    /// and the damage if some were not.
    pub fn parse_partial(buf: &'a [u8]) -> Result<(Packet<'a>, Option<PacketError>), PacketError> {
        let header = Header::read(buf)?;
        let count = match header.kind() {
            Kind::Data(n) => n,
            Kind::Heartbeat | Kind::EndOfSession => {
                return Ok((Packet { header, blocks: &[], whole: 0 }, None));
            }
        };
        if header.sequence.checked_add(u64::from(count)).is_none() {
            return Err(PacketError::SequenceOverflow { session: header.session, sequence: header.sequence, count });
        }
        let mut off = HEADER_LEN;
        let mut damage = None;
        let mut whole = 0u16;
        while whole < count {
            let len = match buf.get(off..off + BLOCK_LEN_FIELD).and_then(|s| <[u8; 2]>::try_from(s).ok()) {
                Some(b) => u16::from_be_bytes(b),
                None => {
                    damage = Some(Expected::LengthField);
                    break;
                }
            };
            let end = off + BLOCK_LEN_FIELD + usize::from(len);
            if end > buf.len() {
                damage = Some(Expected::Payload(len));
                break;
            }
            off = end;
            whole += 1;
        }
        let blocks = buf.get(HEADER_LEN..off).unwrap_or(&[]);
        let packet = Packet { header, blocks, whole };
        let err = damage.map(|expected| PacketError::Truncated {
            session: header.session,
            sequence: header.sequence,
            count,
            len: buf.len(),
            index: whole,
            message_sequence: header.sequence + u64::from(whole),
            offset: off,
            expected,
            available: buf.len().saturating_sub(off),
        });
        Ok((packet, err))
    }

    pub const fn header(&self) -> Header {
        self.header
    }

    pub const fn session(&self) -> Session {
        self.header.session
    }

    /// The sequence number of the first message (of a heartbeat or end of session: the next expected).
    pub const fn sequence(&self) -> u64 {
        self.header.sequence
    }

    pub const fn kind(&self) -> Kind {
        self.header.kind()
    }

    /// The messages that can be read: the header's count, or fewer if the packet is damaged.
    pub const fn len(&self) -> usize {
        self.whole as usize
    }

    pub const fn is_empty(&self) -> bool {
        self.whole == 0
    }

    /// The sequence after the last readable message (of a heartbeat or end of session: its sequence).
    pub const fn next_sequence(&self) -> u64 {
        // parse_partial refused a packet whose sequence + count overflows, and whole <= count.
        self.header.sequence + self.whole as u64
    }

    /// The readable messages as `(sequence, payload)`, payloads borrowed from the datagram.
    pub fn messages(&self) -> Messages<'a> {
        Messages { rest: self.blocks, sequence: self.header.sequence, left: self.whole }
    }
}

/// The messages of a [`Packet`] in order: `(sequence, payload)`.
#[derive(Clone, Debug)]
pub struct Messages<'a> {
    rest: &'a [u8],
    sequence: u64,
    left: u16,
}

impl<'a> Messages<'a> {
    /// No messages.
    pub const fn empty() -> Messages<'a> {
        Messages { rest: &[], sequence: 0, left: 0 }
    }

    /// The sequence of the next message this yields (meaningless once it is empty).
    pub const fn next_sequence(&self) -> u64 {
        self.sequence
    }

    /// Skips `n` messages (all that are left if fewer).
    pub fn skip_messages(&mut self, n: u64) {
        for _ in 0..n.min(u64::from(self.left)) {
            let _ = self.next();
        }
    }
}

impl<'a> Iterator for Messages<'a> {
    type Item = (u64, &'a [u8]);

    #[inline]
    fn next(&mut self) -> Option<(u64, &'a [u8])> {
        if self.left == 0 {
            return None;
        }
        // The blocks were checked by `Packet::parse_partial`; `get` keeps this safe even so.
        let len = usize::from(u16::from_be_bytes(self.rest.get(..BLOCK_LEN_FIELD)?.try_into().ok()?));
        let payload = self.rest.get(BLOCK_LEN_FIELD..BLOCK_LEN_FIELD + len)?;
        self.rest = self.rest.get(BLOCK_LEN_FIELD + len..)?;
        let seq = self.sequence;
        self.sequence += 1;
        self.left -= 1;
        Some((seq, payload))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left as usize, Some(self.left as usize))
    }
}

impl ExactSizeIterator for Messages<'_> {}
impl FusedIterator for Messages<'_> {}

/// Bytes a message of `len` bytes takes in a packet.
pub const fn block_len(len: usize) -> usize {
    BLOCK_LEN_FIELD + len
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A packet as the spec lays it out, byte by byte: session "SESSION01 " (space-padded), sequence 0x1122,
    /// 3 messages: "ab", "" and "xyz".
    const GOLDEN: [u8; 32] = [
        b'S', b'E', b'S', b'S', b'I', b'O', b'N', b'0', b'1', b' ', // session
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x11, 0x22, // sequence, big-endian
        0x00, 0x03, // count
        0x00, 0x02, b'a', b'b', // block 0
        0x00, 0x00, // block 1: empty
        0x00, 0x03, b'x', b'y', b'z', // block 2
        0xEE, // a trailing byte: ignored
    ];

    #[test]
    fn golden_packet() {
        let p = Packet::parse(&GOLDEN).unwrap();
        assert_eq!(p.session(), Session::new("SESSION01").unwrap());
        assert_eq!(p.sequence(), 0x1122);
        assert_eq!(p.kind(), Kind::Data(3));
        assert_eq!(p.len(), 3);
        assert_eq!(p.next_sequence(), 0x1125);
        let m: Vec<_> = p.messages().collect();
        assert_eq!(m, vec![(0x1122, &b"ab"[..]), (0x1123, &b""[..]), (0x1124, &b"xyz"[..])]);
        assert_eq!(p.messages().len(), 3);
    }

    #[test]
    fn golden_heartbeat_and_end() {
        let mut hb = [0u8; 20];
        hb[..10].copy_from_slice(b"ABC       ");
        hb[10..18].copy_from_slice(&[0, 0, 0, 0, 0, 0, 0, 7]);
        let p = Packet::parse(&hb).unwrap();
        assert_eq!(p.kind(), Kind::Heartbeat);
        assert_eq!(p.sequence(), 7);
        assert!(p.is_empty());
        assert_eq!(p.session().to_string(), "ABC");
        hb[18] = 0xFF;
        hb[19] = 0xFF;
        let p = Packet::parse(&hb).unwrap();
        assert_eq!(p.kind(), Kind::EndOfSession);
        assert_eq!(p.next_sequence(), 7);
        assert_eq!(p.messages().next(), None);
    }

    #[test]
    fn header_encode_is_the_spec_layout() {
        let h = Header { session: Session(*b"SESSION01 "), sequence: 0x1122, count: 3 };
        assert_eq!(h.encode()[..], GOLDEN[..20]);
        assert_eq!(Header::read(&GOLDEN).unwrap(), h);
    }

    #[test]
    fn short_header() {
        for n in 0..HEADER_LEN {
            assert_eq!(Packet::parse(&GOLDEN[..n]).unwrap_err(), PacketError::ShortHeader { len: n });
        }
    }

    #[test]
    fn truncated_length_field() {
        // Cut inside block 2's length field: blocks 0 and 1 are whole.
        let buf = &GOLDEN[..27];
        let e = Packet::parse(buf).unwrap_err();
        assert_eq!(
            e,
            PacketError::Truncated {
                session: Session(*b"SESSION01 "),
                sequence: 0x1122,
                count: 3,
                len: 27,
                index: 2,
                message_sequence: 0x1124,
                offset: 26,
                expected: Expected::LengthField,
                available: 1,
            }
        );
        let msg = e.to_string();
        assert!(msg.contains("session SESSION01") && msg.contains("byte offset 26"), "{msg}");
        let (p, err) = Packet::parse_partial(buf).unwrap();
        assert_eq!(err, Some(e));
        assert_eq!(p.messages().collect::<Vec<_>>(), vec![(0x1122, &b"ab"[..]), (0x1123, &b""[..])]);
        assert_eq!(p.next_sequence(), 0x1124);
    }

    #[test]
    fn block_past_the_end() {
        // Block 2 says 3 bytes, 2 are there.
        let buf = &GOLDEN[..30];
        let (p, err) = Packet::parse_partial(buf).unwrap();
        assert_eq!(p.len(), 2);
        match err {
            Some(PacketError::Truncated {
                index: 2, offset: 26, expected: Expected::Payload(3), available: 4, ..
            }) => {}
            e => panic!("{e:?}"),
        }
        // A count larger than the blocks present.
        let mut more = GOLDEN[..31].to_vec();
        more[19] = 4;
        let (p, err) = Packet::parse_partial(&more).unwrap();
        assert_eq!(p.len(), 3);
        assert!(matches!(err, Some(PacketError::Truncated { index: 3, offset: 31, available: 0, .. })));
        // First block damaged: nothing readable.
        let mut first = GOLDEN[..24].to_vec();
        first[21] = 9;
        let (p, err) = Packet::parse_partial(&first).unwrap();
        assert!(p.is_empty() && err.is_some());
    }

    #[test]
    fn sequence_overflow() {
        let mut buf = GOLDEN;
        buf[10..18].copy_from_slice(&(u64::MAX - 1).to_be_bytes());
        assert!(matches!(Packet::parse(&buf), Err(PacketError::SequenceOverflow { count: 3, .. })));
        // u64::MAX - 2 + 3 = u64::MAX: the last message is u64::MAX - 1; fits.
        buf[10..18].copy_from_slice(&(u64::MAX - 3).to_be_bytes());
        assert_eq!(Packet::parse(&buf).unwrap().next_sequence(), u64::MAX);
    }

    #[test]
    fn sessions() {
        assert_eq!(Session::new("A1").unwrap().0, *b"A1        ");
        assert!(Session::new("").is_err());
        assert!(Session::new("ELEVENCHARS").is_err());
        assert!(Session::new("a b").is_err());
        assert_eq!(format!("{:?}", Session(*b"A\x01        ")), "Session(\"A\\x01\")");
    }

    #[test]
    fn skip_messages() {
        let p = Packet::parse(&GOLDEN).unwrap();
        let mut m = p.messages();
        m.skip_messages(2);
        assert_eq!(m.next_sequence(), 0x1124);
        assert_eq!(m.collect::<Vec<_>>(), vec![(0x1124, &b"xyz"[..])]);
        let mut m = p.messages();
        m.skip_messages(9);
        assert_eq!(m.next(), None);
    }
}
