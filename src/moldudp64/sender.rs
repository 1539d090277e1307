//! A MoldUDP64 sender: packs messages into packets, sends them over UDP (paced or not), with heartbeats, an
//! end of session, and seeded loss, reordering and duplication so tests can check a receiver against a record
//! of exactly what was done to the stream.
//!
//! [`Packetizer`] builds packets in a buffer and does no I/O; [`Sender`] adds the socket, pacing and faults.
//! Faults apply to data packets only: heartbeats and end-of-session packets are always sent, in order.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::ops::Range;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use super::packet::{
    block_len, Header, Session, BLOCK_LEN_FIELD, END_OF_SESSION_COUNT, HEADER_LEN, HEARTBEAT_COUNT, MAX_MESSAGES,
    MAX_MESSAGE_LEN,
};
use crate::time::{host_monotonic_ns, wait_until_on};

/// Builds downstream packets of at most `max_payload` bytes, numbering messages from a first sequence.
#[derive(Clone, Debug)]
pub struct Packetizer {
    session: Session,
    max_payload: usize,
    max_messages: u16,
    /// The packet being filled: header (written by `packet`), then blocks.
    buf: Vec<u8>,
    first: u64,
    count: u16,
}

impl Packetizer {
    /// `max_payload` is the whole UDP payload (header included), at least 22 bytes; `max_messages` 1 to
    /// 0xFFFE.
    pub fn new(
        session: Session,
        first_sequence: u64,
        max_payload: usize,
        max_messages: u16,
    ) -> Result<Packetizer, SenderError> {
        if max_payload < HEADER_LEN + BLOCK_LEN_FIELD {
            return Err(SenderError::MaxPayload(max_payload));
        }
        if max_messages == 0 || max_messages > MAX_MESSAGES {
            return Err(SenderError::MaxMessages(max_messages));
        }
        let mut buf = Vec::with_capacity(max_payload.min(HEADER_LEN + 0xFFFF * 2 + MAX_MESSAGE_LEN));
        buf.resize(HEADER_LEN, 0);
        Ok(Packetizer { session, max_payload, max_messages, buf, first: first_sequence, count: 0 })
    }

    /// The longest message a packet can carry.
    pub fn max_message_len(&self) -> usize {
        (self.max_payload - HEADER_LEN - BLOCK_LEN_FIELD).min(MAX_MESSAGE_LEN)
    }

    /// Whether a message of `len` bytes fits in the packet being filled.
    pub fn fits(&self, len: usize) -> bool {
        len <= self.max_message_len()
            && self.count < self.max_messages
            && self.buf.len() + block_len(len) <= self.max_payload
            && self.first.checked_add(u64::from(self.count) + 1).is_some()
    }

    /// Appends a message to the packet being filled; `false` (and nothing appended) if it does not fit.
    pub fn add(&mut self, msg: &[u8]) -> bool {
        if !self.fits(msg.len()) {
            return false;
        }
        self.buf.extend_from_slice(&(msg.len() as u16).to_be_bytes());
        self.buf.extend_from_slice(msg);
        self.count += 1;
        true
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Messages in the packet being filled.
    pub fn count(&self) -> u16 {
        self.count
    }

    /// The sequences of the packet being filled.
    pub fn range(&self) -> Range<u64> {
        self.first..self.first + u64::from(self.count)
    }

    /// The packet being filled, header included.
    pub fn packet(&mut self) -> &[u8] {
        let h = Header { session: self.session, sequence: self.first, count: self.count }.encode();
        self.buf[..HEADER_LEN].copy_from_slice(&h);
        &self.buf
    }

    /// Starts the next packet after the one being filled (which has been sent, or dropped on purpose).
    pub fn clear(&mut self) {
        self.first += u64::from(self.count);
        self.count = 0;
        self.buf.truncate(HEADER_LEN);
    }

    /// The sequence of the first message not yet handed out by [`Packetizer::clear`].
    pub fn next_sequence(&self) -> u64 {
        self.first
    }

    /// A heartbeat: the next sequence not yet sent.
    pub fn heartbeat(&self) -> [u8; HEADER_LEN] {
        Header { session: self.session, sequence: self.first, count: HEARTBEAT_COUNT }.encode()
    }

    /// An end-of-session packet: the next sequence not yet sent.
    pub fn end_of_session(&self) -> [u8; HEADER_LEN] {
        Header { session: self.session, sequence: self.first, count: END_OF_SESSION_COUNT }.encode()
    }
}

/// Faults injected into data packets, each decided by a random draw seeded with `seed`, in parts per million.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    pub seed: u64,
    /// The packet is not sent (its sequences are used up all the same).
    pub drop_ppm: u32,
    /// The packet is held and sent right after the next data packet that is sent (a packet that releases a
    /// held one is not held itself). A heartbeat or the end releases it first, in order.
    pub reorder_ppm: u32,
    /// The packet is sent twice in a row.
    pub duplicate_ppm: u32,
}

/// How a [`Sender`] sends.
#[derive(Clone, Debug)]
pub struct SenderConfig {
    pub session: Session,
    /// The sequence of the first message (the spec starts sessions at 1).
    pub first_sequence: u64,
    /// The largest UDP payload, header included.
    pub max_payload: usize,
    /// The most messages per packet (1 sends each message in a packet of its own).
    pub max_messages: u16,
    /// Messages per second; 0 sends as fast as the socket takes them. Open loop: message `i` is due at
    /// `start + i / rate` and each packet is sent when its last message is due (at once if that is past), so
    /// a late packet does not delay the ones after it.
    pub rate: u64,
    /// Paced: when message 0 of the schedule is due, on the host's `CLOCK_MONOTONIC`
    /// ([`host_monotonic_ns`]), so that a receiver on the same host knows when each message was due (the
    /// ITCH source's `schedule`). By default the schedule starts at the first message pushed.
    pub start_at: Option<u64>,
    /// [`Sender::tick`] sends a heartbeat when nothing was sent for this long.
    pub heartbeat_interval: Duration,
    /// End-of-session packets sent by [`Sender::finish`], `end_spacing` apart.
    pub end_repeats: u32,
    pub end_spacing: Duration,
    /// Local address to send from; the unspecified address and an ephemeral port by default.
    pub bind: Option<SocketAddr>,
    /// IP TTL (multicast TTL / hops for a multicast destination, where it defaults to 1); the system's when
    /// `None`.
    pub ttl: Option<u32>,
    /// Outgoing interface (its IPv4 address) for a multicast destination.
    pub multicast_interface: Option<Ipv4Addr>,
    /// Whether multicast sent from this host is looped back to listeners on it.
    pub multicast_loop: bool,
    /// SO_SNDBUF, if set.
    pub send_buffer: Option<usize>,
    pub faults: Faults,
    /// Keep the range of every data packet in [`SendReport::packets_sent`].
    pub record_packets: bool,
}

impl SenderConfig {
    pub fn new(session: Session) -> SenderConfig {
        SenderConfig {
            session,
            first_sequence: 1,
            max_payload: 1400,
            max_messages: MAX_MESSAGES,
            rate: 0,
            start_at: None,
            heartbeat_interval: Duration::from_secs(1),
            end_repeats: 3,
            end_spacing: Duration::from_millis(1),
            bind: None,
            ttl: None,
            multicast_interface: None,
            multicast_loop: false,
            send_buffer: None,
            faults: Faults::default(),
            record_packets: false,
        }
    }
}

/// What a [`Sender`] did. Ranges are of sequence numbers, in order, adjacent ones merged.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SendReport {
    /// Messages pushed.
    pub messages: u64,
    /// Data packets formed (dropped ones included).
    pub packets: u64,
    /// Datagrams written to the socket: data packets and their copies, heartbeats, end-of-session packets.
    pub datagrams: u64,
    pub heartbeats: u64,
    pub ends: u64,
    /// Sequences of the packets dropped on purpose.
    pub dropped: Vec<Range<u64>>,
    pub dropped_packets: u64,
    /// Sequences of the packets sent after a later packet.
    pub late: Vec<Range<u64>>,
    pub late_packets: u64,
    /// Sequences of the packets sent twice.
    pub duplicated: Vec<Range<u64>>,
    pub duplicated_packets: u64,
    /// With `record_packets`: every data packet formed, in sequence order, not merged.
    pub packets_sent: Vec<Range<u64>>,
    /// The sequence after the last message.
    pub next_sequence: u64,
    /// Paced: the most a packet was sent after it was due, in ns.
    pub max_behind_ns: u64,
}

/// Appends `r` to `v`, merging it with the last range when they touch.
pub fn push_range(v: &mut Vec<Range<u64>>, r: Range<u64>) {
    if let Some(last) = v.last_mut() {
        if last.end == r.start {
            last.end = r.end;
            return;
        }
    }
    v.push(r);
}

/// What stopped a [`Sender`].
#[derive(Debug, thiserror::Error)]
pub enum SenderError {
    #[error("max_payload {0} leaves no room for a message: at least 22 bytes (the 20-byte header, a 2-byte length)")]
    MaxPayload(usize),
    #[error("max_messages is 1 to 65534, not {0}")]
    MaxMessages(u16),
    #[error("a message of {len} bytes does not fit a packet of at most {max_payload} bytes (at most {max} bytes)")]
    MessageTooLarge { len: usize, max: usize, max_payload: usize },
    #[error("MoldUDP64 sequence numbers are used up at {0}")]
    SequenceExhausted(u64),
    #[error("cannot create a UDP socket to send to {dest}: {source}")]
    Socket { dest: SocketAddr, source: io::Error },
    #[error("cannot set {option} on the UDP socket sending to {dest}: {source}")]
    SocketOption { dest: SocketAddr, option: &'static str, source: io::Error },
    #[error("cannot bind the UDP socket sending to {dest} to {addr}: {source}")]
    Bind { dest: SocketAddr, addr: SocketAddr, source: io::Error },
    #[error("sending a {len}-byte MoldUDP64 packet to {dest} failed: {source}")]
    Send { dest: SocketAddr, len: usize, source: io::Error },
}

impl SenderError {
    /// The OS error number behind a socket error.
    pub fn errno(&self) -> Option<i32> {
        match self {
            SenderError::Socket { source, .. }
            | SenderError::SocketOption { source, .. }
            | SenderError::Bind { source, .. }
            | SenderError::Send { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

/// Sends one MoldUDP64 stream to one UDP address (unicast or multicast).
#[derive(Debug)]
pub struct Sender {
    cfg: SenderConfig,
    socket: UdpSocket,
    dest: SocketAddr,
    pk: Packetizer,
    rng: fastrand::Rng,
    /// A packet held back by the reorder fault, and its sequences.
    held: Vec<u8>,
    held_range: Option<Range<u64>>,
    report: SendReport,
    /// When paced: the schedule's start, on [`host_monotonic_ns`]. The schedule keeps the kernel's time, not
    /// the process's TSC clock ([`crate::time::mono_now`]): that one is scaled by a calibration a few parts per
    /// million off (up to about 30 measured here), which a sender paced for hours would drift by.
    pace_start: Option<u64>,
    last_send: u64,
}

impl Sender {
    pub fn new(cfg: SenderConfig, dest: SocketAddr) -> Result<Sender, SenderError> {
        let pk = Packetizer::new(cfg.session, cfg.first_sequence, cfg.max_payload, cfg.max_messages)?;
        let socket = open(&cfg, dest)?;
        let rng = fastrand::Rng::with_seed(cfg.faults.seed);
        let report = SendReport { next_sequence: cfg.first_sequence, ..SendReport::default() };
        let held = Vec::with_capacity(cfg.max_payload);
        Ok(Sender {
            cfg,
            socket,
            dest,
            pk,
            rng,
            held,
            held_range: None,
            report,
            pace_start: None,
            last_send: host_monotonic_ns(),
        })
    }

    /// The address the socket sends from.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    pub fn report(&self) -> &SendReport {
        &self.report
    }

    /// The sequence the next message pushed will get.
    pub fn next_sequence(&self) -> u64 {
        self.pk.next_sequence() + u64::from(self.pk.count())
    }

    /// Adds a message; sends the packet being filled first if the message does not fit in it.
    pub fn push(&mut self, msg: &[u8]) -> Result<(), SenderError> {
        if msg.len() > self.pk.max_message_len() {
            return Err(SenderError::MessageTooLarge {
                len: msg.len(),
                max: self.pk.max_message_len(),
                max_payload: self.cfg.max_payload,
            });
        }
        if self.cfg.rate > 0 && self.pace_start.is_none() {
            self.pace_start = Some(self.cfg.start_at.unwrap_or_else(host_monotonic_ns));
        }
        if !self.pk.add(msg) {
            self.emit()?;
            if !self.pk.add(msg) {
                return Err(SenderError::SequenceExhausted(self.pk.next_sequence()));
            }
        }
        self.report.messages += 1;
        Ok(())
    }

    /// Sends the packet being filled (when paced, once its last message is due).
    pub fn flush(&mut self) -> Result<(), SenderError> {
        self.emit()
    }

    /// Housekeeping for a caller with nothing to push: sends the packet being filled, and a heartbeat when
    /// nothing was sent for `heartbeat_interval`. Returns whether a heartbeat went out.
    pub fn tick(&mut self) -> Result<bool, SenderError> {
        self.emit()?;
        let interval = self.cfg.heartbeat_interval.as_nanos().min(u64::MAX as u128) as u64;
        if host_monotonic_ns().saturating_sub(self.last_send) >= interval {
            self.heartbeat()?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Sends a heartbeat now (after a packet held back for reordering, and after nothing still being filled:
    /// its sequence is that of the packet being filled, which is not sent).
    pub fn heartbeat(&mut self) -> Result<(), SenderError> {
        self.release_held()?;
        let hb = self.pk.heartbeat();
        self.send(&hb)?;
        self.report.heartbeats += 1;
        Ok(())
    }

    /// Sends what is left, then the end of session `end_repeats` times; returns the record of the stream.
    pub fn finish(mut self) -> Result<SendReport, SenderError> {
        self.emit()?;
        self.release_held()?;
        let eos = self.pk.end_of_session();
        for i in 0..self.cfg.end_repeats {
            if i > 0 {
                std::thread::sleep(self.cfg.end_spacing);
            }
            self.send(&eos)?;
            self.report.ends += 1;
        }
        self.report.next_sequence = self.pk.next_sequence();
        Ok(std::mem::take(&mut self.report))
    }

    fn roll(&mut self, ppm: u32) -> bool {
        ppm > 0 && self.rng.u32(0..1_000_000) < ppm
    }

    /// Sends (or drops, holds, duplicates) the packet being filled.
    fn emit(&mut self) -> Result<(), SenderError> {
        if self.pk.is_empty() {
            return Ok(());
        }
        let range = self.pk.range();
        self.report.packets += 1;
        if self.cfg.record_packets {
            self.report.packets_sent.push(range.clone());
        }
        if let Some(start) = self.pace_start {
            // Due when its last message is: message i (from 0) at start + i / rate.
            let last = range.end - 1 - self.cfg.first_sequence;
            let due = start.saturating_add((u128::from(last) * 1_000_000_000 / u128::from(self.cfg.rate)) as u64);
            wait_until_on(due, host_monotonic_ns);
            self.report.max_behind_ns = self.report.max_behind_ns.max(host_monotonic_ns().saturating_sub(due));
        }
        let f = self.cfg.faults;
        if self.roll(f.drop_ppm) {
            push_range(&mut self.report.dropped, range);
            self.report.dropped_packets += 1;
            self.pk.clear();
            return Ok(());
        }
        if self.held_range.is_none() && self.roll(f.reorder_ppm) {
            self.held.clear();
            self.held.extend_from_slice(self.pk.packet());
            self.held_range = Some(range);
            self.pk.clear();
            return Ok(());
        }
        let dup = self.roll(f.duplicate_ppm);
        send_to(&self.socket, self.dest, self.pk.packet())?;
        self.sent_one(&range, dup)?;
        self.pk.clear();
        if let Some(late) = self.held_range.take() {
            let dup = self.roll(f.duplicate_ppm);
            send_to(&self.socket, self.dest, &self.held)?;
            self.held_sent(&late, dup)?;
            push_range(&mut self.report.late, late);
            self.report.late_packets += 1;
        }
        Ok(())
    }

    /// Sends a held packet in order (nothing later has been sent).
    fn release_held(&mut self) -> Result<(), SenderError> {
        if let Some(r) = self.held_range.take() {
            let dup = self.roll(self.cfg.faults.duplicate_ppm);
            send_to(&self.socket, self.dest, &self.held)?;
            self.held_sent(&r, dup)?;
        }
        Ok(())
    }

    /// Counts a data packet just sent from the packetizer, and sends its copy.
    fn sent_one(&mut self, range: &Range<u64>, dup: bool) -> Result<(), SenderError> {
        self.report.datagrams += 1;
        self.last_send = host_monotonic_ns();
        if dup {
            send_to(&self.socket, self.dest, self.pk.packet())?;
            self.report.datagrams += 1;
            push_range(&mut self.report.duplicated, range.clone());
            self.report.duplicated_packets += 1;
        }
        Ok(())
    }

    /// Counts a held packet just sent, and sends its copy.
    fn held_sent(&mut self, range: &Range<u64>, dup: bool) -> Result<(), SenderError> {
        self.report.datagrams += 1;
        self.last_send = host_monotonic_ns();
        if dup {
            send_to(&self.socket, self.dest, &self.held)?;
            self.report.datagrams += 1;
            push_range(&mut self.report.duplicated, range.clone());
            self.report.duplicated_packets += 1;
        }
        Ok(())
    }

    fn send(&mut self, bytes: &[u8]) -> Result<(), SenderError> {
        send_to(&self.socket, self.dest, bytes)?;
        self.report.datagrams += 1;
        self.last_send = host_monotonic_ns();
        Ok(())
    }
}

/// One datagram; retries a full queue (`ENOBUFS`, `EAGAIN`) for a while, since UDP has no backpressure.
fn send_to(socket: &UdpSocket, dest: SocketAddr, bytes: &[u8]) -> Result<(), SenderError> {
    let mut tries = 0u32;
    loop {
        match socket.send_to(bytes, dest) {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if (e.kind() == io::ErrorKind::WouldBlock || e.raw_os_error() == Some(libc::ENOBUFS))
                    && tries < 10_000 =>
            {
                tries += 1;
                std::thread::sleep(Duration::from_micros(50));
            }
            Err(source) => return Err(SenderError::Send { dest, len: bytes.len(), source }),
        }
    }
}

fn open(cfg: &SenderConfig, dest: SocketAddr) -> Result<UdpSocket, SenderError> {
    let opt = |option: &'static str| move |source| SenderError::SocketOption { dest, option, source };
    let s = Socket::new(Domain::for_address(dest), Type::DGRAM, Some(Protocol::UDP))
        .map_err(|source| SenderError::Socket { dest, source })?;
    if let Some(n) = cfg.send_buffer {
        s.set_send_buffer_size(n).map_err(opt("SO_SNDBUF"))?;
    }
    match dest.ip() {
        IpAddr::V4(ip) if ip.is_multicast() => {
            s.set_multicast_ttl_v4(cfg.ttl.unwrap_or(1)).map_err(opt("IP_MULTICAST_TTL"))?;
            if let Some(i) = cfg.multicast_interface {
                s.set_multicast_if_v4(&i).map_err(opt("IP_MULTICAST_IF"))?;
            }
            s.set_multicast_loop_v4(cfg.multicast_loop).map_err(opt("IP_MULTICAST_LOOP"))?;
        }
        IpAddr::V4(_) => {
            if let Some(t) = cfg.ttl {
                s.set_ttl_v4(t).map_err(opt("IP_TTL"))?;
            }
        }
        IpAddr::V6(ip) if ip.is_multicast() => {
            s.set_multicast_hops_v6(cfg.ttl.unwrap_or(1)).map_err(opt("IPV6_MULTICAST_HOPS"))?;
            s.set_multicast_loop_v6(cfg.multicast_loop).map_err(opt("IPV6_MULTICAST_LOOP"))?;
        }
        IpAddr::V6(_) => {
            if let Some(t) = cfg.ttl {
                s.set_unicast_hops_v6(t).map_err(opt("IPV6_UNICAST_HOPS"))?;
            }
        }
    }
    let addr = cfg.bind.unwrap_or(match dest {
        SocketAddr::V4(_) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        SocketAddr::V6(_) => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
    });
    s.bind(&addr.into()).map_err(|source| SenderError::Bind { dest, addr, source })?;
    Ok(s.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::moldudp64::packet::{Kind, Packet};

    fn session() -> Session {
        Session::new("TEST1").unwrap()
    }

    #[test]
    fn packs_to_max_payload() {
        // 20 + 3 × (2 + 10) = 56: three 10-byte messages fit in 60 bytes, a fourth does not.
        let mut pk = Packetizer::new(session(), 1, 60, MAX_MESSAGES).unwrap();
        for _ in 0..3 {
            assert!(pk.add(&[7; 10]));
        }
        assert!(!pk.add(&[7; 10]));
        assert!(pk.add(&[7; 2])); // 56 + 4 = 60
        assert_eq!(pk.packet().len(), 60);
        let bytes = pk.packet().to_vec();
        let p = Packet::parse(&bytes).unwrap();
        assert_eq!((p.sequence(), p.kind()), (1, Kind::Data(4)));
        assert_eq!(p.messages().map(|(s, m)| (s, m.len())).collect::<Vec<_>>(), [(1, 10), (2, 10), (3, 10), (4, 2)]);
        pk.clear();
        assert_eq!(pk.next_sequence(), 5);
        let hb = pk.heartbeat();
        let p = Packet::parse(&hb).unwrap();
        assert_eq!((p.sequence(), p.kind()), (5, Kind::Heartbeat));
        let eos = pk.end_of_session();
        assert_eq!(Packet::parse(&eos).unwrap().kind(), Kind::EndOfSession);
    }

    #[test]
    fn limits() {
        assert!(matches!(Packetizer::new(session(), 1, 21, 1), Err(SenderError::MaxPayload(21))));
        assert!(matches!(Packetizer::new(session(), 1, 22, 0), Err(SenderError::MaxMessages(0))));
        let mut pk = Packetizer::new(session(), 1, 22, 1).unwrap();
        assert_eq!(pk.max_message_len(), 0);
        assert!(pk.add(&[]));
        assert!(!pk.add(&[]));
        let big = Packetizer::new(session(), 1, 200_000, MAX_MESSAGES).unwrap();
        assert_eq!(big.max_message_len(), 65535);
        let mut end = Packetizer::new(session(), u64::MAX - 1, 100, MAX_MESSAGES).unwrap();
        assert!(end.add(b"a"));
        assert!(!end.add(b"b"), "the next sequence would be past u64::MAX");
    }

    #[test]
    fn ranges_merge() {
        let mut v = Vec::new();
        push_range(&mut v, 1..3);
        push_range(&mut v, 3..5);
        push_range(&mut v, 6..7);
        assert_eq!(v, vec![1..5, 6..7]);
    }
}
