//! Sequence tracking of one MoldUDP64 stream: what to deliver of each packet, and the gaps it reveals.
//!
//! The tracker keeps the next expected sequence of the current session and never buffers: a packet ahead of
//! it reports the missing range as a [`Gap`] and is delivered at once; a packet that arrives after a later
//! one (reordered) is then behind and dropped as old, its range having been reported in that gap. Nothing
//! is re-requested (the MoldUDP64 request server is not used). docs/formats.md, "MoldUDP64", states every
//! rule; the tests below take them one by one.

use super::packet::{Kind, Messages, Packet, PacketError, Session};

/// Where a session's sequence tracking starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Start {
    /// At the sequence of the first packet seen of the session (a receiver joining a live session mid-day:
    /// what was sent before it joined is not a gap).
    #[default]
    FirstSeen,
    /// At this sequence (1 for a receiver running from the start of the session): a first packet beyond it
    /// reports the messages before it as a gap.
    At(u64),
}

/// The counts of everything the tracker saw. Every packet given to [`Tracker::track`] is counted in
/// `packets` and in exactly one of `data`, `heartbeats`, `ends`, `old`, `after_end`, `stale` or `invalid`.
/// Every message of a `data` or `old` packet is counted in `messages` (delivered) or `duplicates` (already
/// delivered). Within one session, `messages + missing` = expected − start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Datagrams given to the tracker.
    pub packets: u64,
    /// Data packets of the current session that were not wholly behind (something was delivered, or a
    /// damaged packet whose sequence was not behind).
    pub data: u64,
    /// Messages delivered.
    pub messages: u64,
    /// Heartbeats of the current session (before its end).
    pub heartbeats: u64,
    /// End-of-session packets of the current session (the first and its repeats).
    pub ends: u64,
    /// Gaps reported.
    pub gaps: u64,
    /// Messages in the gaps reported.
    pub missing: u64,
    /// Messages received again: the already-delivered head of an overlapping packet, and every message of
    /// an `old` packet.
    pub duplicates: u64,
    /// Data packets wholly behind the expected sequence: dropped.
    pub old: u64,
    /// Damaged datagrams: shorter than the header, or a block running past the end (the whole blocks before
    /// it were delivered).
    pub truncated: u64,
    /// Datagrams that were dropped whole as unreadable: a short header or a sequence that overflows.
    pub invalid: u64,
    /// Sessions started: 1 at the first packet, then 1 per change of session.
    pub sessions: u64,
    /// Packets of the current session after its end of session (other than repeats of that): dropped.
    pub after_end: u64,
    /// Packets of the session before the current one (sent before the change, arriving after it): dropped.
    pub stale: u64,
}

/// Messages `[first, end)` of `session` never arrived before a later sequence did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gap {
    pub session: Session,
    pub first: u64,
    pub end: u64,
}

impl Gap {
    /// Messages missing.
    pub const fn len(&self) -> u64 {
        self.end - self.first
    }

    pub const fn is_empty(&self) -> bool {
        self.end == self.first
    }
}

/// What the tracker made of a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A data packet that was not wholly behind: its new messages are delivered.
    Data,
    Heartbeat,
    /// The (first or a repeated) end of session.
    EndOfSession,
    /// A data packet wholly behind the expected sequence (duplicate, or reordered after a later one).
    Old,
    /// A packet of a session that has ended.
    AfterEnd,
    /// A packet of the previous session after a change of session.
    Stale,
    /// Unreadable: a short header or a sequence that overflows.
    Invalid,
}

/// The outcome of one packet: a gap to report first (if any), then the messages to deliver in order.
#[derive(Clone, Debug)]
pub struct Tracked<'a> {
    pub verdict: Verdict,
    /// The packet's session (`None` when the header was unreadable).
    pub session: Option<Session>,
    /// This packet started a session (the first packet, or a change of session).
    pub new_session: bool,
    pub gap: Option<Gap>,
    /// The messages to deliver: only those not delivered before, in sequence order.
    pub messages: Messages<'a>,
    /// The damage, when the packet was not whole (its whole blocks before the damage are still delivered).
    pub error: Option<PacketError>,
}

impl<'a> Tracked<'a> {
    fn dropped(verdict: Verdict, session: Option<Session>, error: Option<PacketError>) -> Tracked<'a> {
        Tracked { verdict, session, new_session: false, gap: None, messages: Messages::empty(), error }
    }
}

#[derive(Clone, Copy, Debug)]
struct State {
    session: Session,
    start: u64,
    expected: u64,
    ended: bool,
}

/// The sequence tracker of one MoldUDP64 stream. Fixed size, no allocation.
#[derive(Clone, Debug, Default)]
pub struct Tracker {
    start: Start,
    state: Option<State>,
    previous: Option<Session>,
    counters: Counters,
}

impl Tracker {
    pub fn new(start: Start) -> Tracker {
        Tracker { start, state: None, previous: None, counters: Counters::default() }
    }

    pub const fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The current session.
    pub fn session(&self) -> Option<Session> {
        self.state.map(|s| s.session)
    }

    /// The next sequence expected of the current session.
    pub fn expected(&self) -> Option<u64> {
        self.state.map(|s| s.expected)
    }

    /// Where tracking of the current session started.
    pub fn session_start(&self) -> Option<u64> {
        self.state.map(|s| s.start)
    }

    /// The current session has sent its end of session.
    pub fn ended(&self) -> bool {
        self.state.is_some_and(|s| s.ended)
    }

    /// Reads one datagram and decides what of it to deliver. The state moves as if the caller delivers every
    /// message of the result.
    pub fn track<'a>(&mut self, buf: &'a [u8]) -> Tracked<'a> {
        let c = &mut self.counters;
        c.packets += 1;
        let (packet, damage) = match Packet::parse_partial(buf) {
            Ok(p) => p,
            Err(e) => {
                if matches!(e, PacketError::ShortHeader { .. }) {
                    c.truncated += 1;
                }
                c.invalid += 1;
                let session = match e {
                    PacketError::SequenceOverflow { session, .. } => Some(session),
                    _ => None,
                };
                return Tracked::dropped(Verdict::Invalid, session, Some(e));
            }
        };
        if damage.is_some() {
            c.truncated += 1;
        }
        let session = packet.session();
        let mut new_session = false;
        let state = match &mut self.state {
            Some(st) if st.session == session => st,
            Some(_) if self.previous == Some(session) => {
                c.stale += 1;
                return Tracked::dropped(Verdict::Stale, Some(session), damage);
            }
            cur => {
                let expected = match self.start {
                    Start::FirstSeen => packet.sequence(),
                    Start::At(n) => n,
                };
                if let Some(old) = cur.take() {
                    if old.ended {
                        tracing::info!(from = %old.session, to = %session, expected, "MoldUDP64: new session");
                    } else {
                        tracing::warn!(
                            from = %old.session, to = %session, left_at = old.expected, expected,
                            "MoldUDP64: session changed before its end of session"
                        );
                    }
                    self.previous = Some(old.session);
                }
                c.sessions += 1;
                new_session = true;
                cur.insert(State { session, start: expected, expected, ended: false })
            }
        };

        let kind = packet.kind();
        if state.ended {
            if kind == Kind::EndOfSession {
                c.ends += 1;
                return Tracked { new_session, ..Tracked::dropped(Verdict::EndOfSession, Some(session), damage) };
            }
            c.after_end += 1;
            return Tracked::dropped(Verdict::AfterEnd, Some(session), damage);
        }

        let first = packet.sequence();
        let gap = (first > state.expected).then_some(Gap { session, first: state.expected, end: first });
        if let Kind::Heartbeat | Kind::EndOfSession = kind {
            let verdict = if kind == Kind::Heartbeat {
                c.heartbeats += 1;
                Verdict::Heartbeat
            } else {
                c.ends += 1;
                state.ended = true;
                tracing::info!(session = %session, next = first.max(state.expected), "MoldUDP64: end of session");
                Verdict::EndOfSession
            };
            state.expected = state.expected.max(first);
            if let Some(g) = gap {
                report(c, g, kind);
            }
            return Tracked { new_session, gap, ..Tracked::dropped(verdict, Some(session), damage) };
        }

        let end = packet.next_sequence();
        let n = packet.len() as u64;
        let mut messages = packet.messages();
        if first < state.expected && end <= state.expected {
            c.old += 1;
            c.duplicates = c.duplicates.saturating_add(n);
            return Tracked { new_session, ..Tracked::dropped(Verdict::Old, Some(session), damage) };
        }
        c.data += 1;
        if let Some(g) = gap {
            report(c, g, kind);
        }
        let skip = state.expected.saturating_sub(first);
        messages.skip_messages(skip);
        c.duplicates = c.duplicates.saturating_add(skip);
        c.messages = c.messages.saturating_add(end - first.max(state.expected));
        state.expected = end.max(state.expected);
        Tracked { verdict: Verdict::Data, session: Some(session), new_session, gap, messages, error: damage }
    }
}

/// Counts and logs a gap, once: the state has moved past it, so no later packet reports it again.
fn report(c: &mut Counters, g: Gap, by: Kind) {
    c.gaps += 1;
    c.missing = c.missing.saturating_add(g.len());
    let by = match by {
        Kind::Data(_) => "data packet",
        Kind::Heartbeat => "heartbeat",
        Kind::EndOfSession => "end of session",
    };
    tracing::warn!(session = %g.session, first = g.first, end = g.end, missing = g.len(), by, "MoldUDP64 gap");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::moldudp64::packet::{Header, END_OF_SESSION_COUNT};
    use proptest::prelude::*;

    const S: Session = Session(*b"S1        ");
    const T: Session = Session(*b"S2        ");

    /// The payload the tests put in message `seq`: 0 to 3 bytes, each the low byte of `seq`.
    fn payload(seq: u64) -> Vec<u8> {
        vec![seq as u8; (seq % 4) as usize]
    }

    /// A data packet built from the spec's layout by hand: header, then a 2-byte big-endian length and the
    /// payload per message.
    fn data(session: Session, first: u64, n: u16) -> Vec<u8> {
        let mut b = Header { session, sequence: first, count: n }.encode().to_vec();
        for seq in first..first + u64::from(n) {
            let p = payload(seq);
            b.extend_from_slice(&(p.len() as u16).to_be_bytes());
            b.extend_from_slice(&p);
        }
        b
    }

    fn heartbeat(session: Session, next: u64) -> Vec<u8> {
        Header { session, sequence: next, count: 0 }.encode().to_vec()
    }

    fn end(session: Session, next: u64) -> Vec<u8> {
        Header { session, sequence: next, count: END_OF_SESSION_COUNT }.encode().to_vec()
    }

    /// What `track` returned, owned, with the payloads checked.
    #[derive(Debug)]
    struct Out {
        verdict: Verdict,
        session: Option<Session>,
        new_session: bool,
        gap: Option<Gap>,
        seqs: Vec<u64>,
        error: Option<PacketError>,
    }

    fn feed(t: &mut Tracker, b: &[u8]) -> Out {
        let r = t.track(b);
        let seqs = r
            .messages
            .map(|(s, m)| {
                assert_eq!(m, payload(s), "payload of {s}");
                s
            })
            .collect();
        Out { verdict: r.verdict, session: r.session, new_session: r.new_session, gap: r.gap, seqs, error: r.error }
    }

    fn gap(first: u64, end: u64) -> Option<Gap> {
        Some(Gap { session: S, first, end })
    }

    #[test]
    fn in_order() {
        let mut t = Tracker::new(Start::FirstSeen);
        let a = data(S, 100, 3);
        let r = feed(&mut t, &a);
        assert_eq!((r.verdict, r.new_session, r.gap, r.session), (Verdict::Data, true, None, Some(S)));
        assert_eq!(r.seqs, [100, 101, 102]);
        let b = data(S, 103, 2);
        let r = feed(&mut t, &b);
        assert!(!r.new_session);
        assert_eq!(r.seqs, [103, 104]);
        assert_eq!(t.expected(), Some(105));
        let c = t.counters();
        assert_eq!((c.packets, c.data, c.messages, c.sessions, c.gaps), (2, 2, 5, 1, 0));
    }

    #[test]
    fn start_at_one_reports_what_came_before() {
        let mut t = Tracker::new(Start::At(1));
        let a = data(S, 5, 2);
        let r = feed(&mut t, &a);
        assert_eq!(r.gap, gap(1, 5));
        assert_eq!(r.seqs, [5, 6]);
        assert_eq!((t.counters().gaps, t.counters().missing), (1, 4));
        // A first packet before the start is old.
        let mut t = Tracker::new(Start::At(10));
        let a = data(S, 5, 2);
        assert_eq!(feed(&mut t, &a).verdict, Verdict::Old);
        assert_eq!(t.expected(), Some(10));
    }

    #[test]
    fn gap_then_delivery() {
        let mut t = Tracker::new(Start::FirstSeen);
        feed(&mut t, &data(S, 1, 2));
        let b = data(S, 6, 2);
        let r = feed(&mut t, &b);
        assert_eq!(r.verdict, Verdict::Data);
        assert_eq!(r.gap, gap(3, 6));
        assert_eq!(r.gap.unwrap().len(), 3);
        assert_eq!(r.seqs, [6, 7]);
        let c = *t.counters();
        assert_eq!((c.gaps, c.missing, c.messages), (1, 3, 4));
        // Reported once: the next packet in order reports nothing.
        assert_eq!(feed(&mut t, &data(S, 8, 1)).gap, None);
    }

    #[test]
    fn wholly_behind_is_old() {
        let mut t = Tracker::new(Start::FirstSeen);
        let a = data(S, 1, 3);
        feed(&mut t, &a);
        let r = feed(&mut t, &a);
        assert_eq!(r.verdict, Verdict::Old);
        assert_eq!(r.seqs.len(), 0);
        assert_eq!(r.gap, None);
        let c = *t.counters();
        assert_eq!((c.old, c.duplicates, c.messages, c.data), (1, 3, 3, 1));
        assert_eq!(t.expected(), Some(4));
    }

    #[test]
    fn overlap_skips_the_head() {
        let mut t = Tracker::new(Start::FirstSeen);
        feed(&mut t, &data(S, 1, 3));
        let b = data(S, 2, 4); // 2, 3 seen; 4, 5 new
        let r = feed(&mut t, &b);
        assert_eq!(r.verdict, Verdict::Data);
        assert_eq!(r.seqs, [4, 5]);
        let c = *t.counters();
        assert_eq!((c.duplicates, c.messages, c.old), (2, 5, 0));
        assert_eq!(t.expected(), Some(6));
    }

    #[test]
    fn reordered_packet_is_a_gap_then_old() {
        let mut t = Tracker::new(Start::FirstSeen);
        feed(&mut t, &data(S, 1, 2));
        let late = data(S, 3, 2);
        let early = data(S, 5, 2);
        let r = feed(&mut t, &early);
        assert_eq!(r.gap, gap(3, 5));
        assert_eq!(r.seqs, [5, 6]);
        let r = feed(&mut t, &late);
        assert_eq!((r.verdict, r.seqs.len()), (Verdict::Old, 0));
        let c = *t.counters();
        assert_eq!((c.messages, c.missing, c.old, c.duplicates), (4, 2, 1, 2));
    }

    #[test]
    fn heartbeats() {
        let mut t = Tracker::new(Start::FirstSeen);
        feed(&mut t, &data(S, 1, 2));
        // In order: nothing.
        let r = feed(&mut t, &heartbeat(S, 3));
        assert_eq!((r.verdict, r.gap, r.seqs.len()), (Verdict::Heartbeat, None, 0));
        // Behind: nothing either.
        assert_eq!(feed(&mut t, &heartbeat(S, 2)).gap, None);
        assert_eq!(t.expected(), Some(3));
        // Ahead: the gap, once.
        let r = feed(&mut t, &heartbeat(S, 7));
        assert_eq!(r.gap, gap(3, 7));
        assert_eq!(t.expected(), Some(7));
        assert_eq!(feed(&mut t, &heartbeat(S, 7)).gap, None);
        let r = feed(&mut t, &data(S, 7, 1));
        assert_eq!((r.gap, r.seqs), (None, vec![7]));
        let c = *t.counters();
        assert_eq!((c.heartbeats, c.gaps, c.missing, c.messages), (4, 1, 4, 3));
    }

    #[test]
    fn first_packet_a_heartbeat() {
        let mut t = Tracker::new(Start::FirstSeen);
        let r = feed(&mut t, &heartbeat(S, 50));
        assert_eq!((r.verdict, r.new_session, r.gap), (Verdict::Heartbeat, true, None));
        assert_eq!(t.expected(), Some(50));
        let mut t = Tracker::new(Start::At(1));
        assert_eq!(feed(&mut t, &heartbeat(S, 50)).gap, gap(1, 50));
    }

    #[test]
    fn end_of_session() {
        let mut t = Tracker::new(Start::FirstSeen);
        feed(&mut t, &data(S, 1, 2));
        let r = feed(&mut t, &end(S, 5));
        assert_eq!((r.verdict, r.gap), (Verdict::EndOfSession, gap(3, 5)));
        assert!(t.ended());
        // Repeats are expected: counted as ends, nothing reported again.
        let r = feed(&mut t, &end(S, 5));
        assert_eq!((r.verdict, r.gap), (Verdict::EndOfSession, None));
        // Anything else of the session is dropped.
        let late = data(S, 3, 2);
        assert_eq!(feed(&mut t, &late).verdict, Verdict::AfterEnd);
        assert_eq!(feed(&mut t, &data(S, 5, 1)).verdict, Verdict::AfterEnd);
        assert_eq!(feed(&mut t, &heartbeat(S, 9)).verdict, Verdict::AfterEnd);
        let c = *t.counters();
        assert_eq!((c.ends, c.after_end, c.gaps, c.missing, c.messages, c.data), (2, 3, 1, 2, 2, 1));
        assert_eq!(t.expected(), Some(5));
    }

    #[test]
    fn new_session_restarts_tracking() {
        let mut t = Tracker::new(Start::FirstSeen);
        feed(&mut t, &data(S, 1, 5));
        let b = data(T, 40, 2);
        let r = feed(&mut t, &b);
        assert_eq!((r.verdict, r.new_session, r.session, r.gap), (Verdict::Data, true, Some(T), None));
        assert_eq!(r.seqs, [40, 41]);
        assert_eq!((t.session(), t.expected(), t.session_start()), (Some(T), Some(42), Some(40)));
        // The previous session's packets are stale.
        let old = data(S, 6, 1);
        let r = feed(&mut t, &old);
        assert_eq!((r.verdict, r.seqs.len()), (Verdict::Stale, 0));
        assert_eq!((t.counters().sessions, t.counters().stale), (2, 1));
        // With a fixed start, the new session is tracked from it.
        let mut t = Tracker::new(Start::At(1));
        feed(&mut t, &data(S, 1, 2));
        feed(&mut t, &end(S, 3));
        let r = feed(&mut t, &b);
        assert_eq!((r.new_session, r.gap), (true, Some(Gap { session: T, first: 1, end: 40 })));
        assert!(!t.ended());
    }

    #[test]
    fn truncated_packet_delivers_its_whole_messages() {
        let mut t = Tracker::new(Start::FirstSeen);
        let mut a = data(S, 1, 4);
        // Messages 1, 2, 3 are 1, 2, 3 bytes long: cut inside message 4's length field... message 4 has no
        // payload, so cut one byte into its length field.
        let len = a.len();
        a.truncate(len - 1);
        let r = feed(&mut t, &a);
        assert_eq!(r.verdict, Verdict::Data);
        assert!(matches!(r.error, Some(PacketError::Truncated { index: 3, message_sequence: 4, .. })));
        assert_eq!(r.seqs, [1, 2, 3]);
        assert_eq!(t.expected(), Some(4));
        // The rest is reported when the next packet shows the sequence moved on.
        let r = feed(&mut t, &data(S, 5, 1));
        assert_eq!(r.gap, gap(4, 5));
        let c = *t.counters();
        assert_eq!((c.truncated, c.invalid, c.messages, c.missing, c.data), (1, 0, 4, 1, 2));
    }

    #[test]
    fn unreadable_packets() {
        let mut t = Tracker::new(Start::FirstSeen);
        let r = feed(&mut t, &[0u8; 19]);
        assert_eq!((r.verdict, r.session), (Verdict::Invalid, None));
        assert_eq!(r.error, Some(PacketError::ShortHeader { len: 19 }));
        assert_eq!(t.session(), None);
        let mut o = Header { session: S, sequence: u64::MAX, count: 2 }.encode().to_vec();
        o.extend_from_slice(&[0, 0, 0, 0]);
        let r = feed(&mut t, &o);
        assert_eq!((r.verdict, r.session), (Verdict::Invalid, Some(S)));
        let c = *t.counters();
        assert_eq!((c.packets, c.invalid, c.truncated, c.sessions), (2, 2, 1, 0));
    }

    /// One step of a random stream: a session (of 3), what to send, and where.
    #[derive(Clone, Debug)]
    enum Step {
        Data {
            s: u8,
            first: u64,
            n: u16,
            cut: Option<usize>,
        },
        Heartbeat {
            s: u8,
            next: u64,
        },
        End {
            s: u8,
            next: u64,
        },
        /// A header with any count, then any bytes.
        Raw {
            s: u8,
            first: u64,
            count: u16,
            body: Vec<u8>,
        },
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            6 => (0u8..3, 0u64..60, 1u16..6, prop::option::weighted(0.2, 0usize..40))
                .prop_map(|(s, first, n, cut)| Step::Data { s, first, n, cut }),
            2 => (0u8..3, 0u64..60).prop_map(|(s, next)| Step::Heartbeat { s, next }),
            1 => (0u8..3, 0u64..60).prop_map(|(s, next)| Step::End { s, next }),
            1 => (0u8..3, 0u64..60, any::<u16>(), prop::collection::vec(any::<u8>(), 0..40))
                .prop_map(|(s, first, count, body)| Step::Raw { s, first, count, body }),
        ]
    }

    fn bytes_of(step: &Step) -> Vec<u8> {
        let sess = |s: u8| Session(*b"SESSION0  ").with_last(s);
        match step {
            Step::Data { s, first, n, cut } => {
                let mut b = data(sess(*s), *first, *n);
                if let Some(c) = cut {
                    b.truncate(*c);
                }
                b
            }
            Step::Heartbeat { s, next } => heartbeat(sess(*s), *next),
            Step::End { s, next } => end(sess(*s), *next),
            Step::Raw { s, first, count, body } => {
                let mut b = Header { session: sess(*s), sequence: *first, count: *count }.encode().to_vec();
                b.extend_from_slice(body);
                b
            }
        }
    }

    impl Session {
        fn with_last(mut self, s: u8) -> Session {
            self.0[7] = b'0' + s;
            self
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Random streams (sessions changing, packets repeated, reordered, damaged, random bytes) never panic
        /// the tracker, and what it delivers and counts adds up: within a session every sequence from its
        /// start to the expected one is either delivered once, in order, or inside exactly one reported gap.
        #[test]
        fn random_streams_add_up(steps in prop::collection::vec(step(), 0..60), at in prop::option::of(0u64..20)) {
            let mut t = Tracker::new(at.map_or(Start::FirstSeen, Start::At));
            let mut next = 0u64; // the model's next expected sequence of the current session
            let (mut delivered, mut gaps, mut missing) = (0u64, 0u64, 0u64);
            let (mut session_base, mut base_msgs, mut base_missing) = (0u64, 0u64, 0u64);
            for st in &steps {
                let buf = bytes_of(st);
                let r = t.track(&buf);
                if r.new_session {
                    next = t.session_start().unwrap();
                    session_base = next;
                    base_msgs = delivered;
                    base_missing = missing;
                }
                if let Some(g) = r.gap {
                    prop_assert!(g.first == next && g.end > g.first, "gap {:?} with next {}", g, next);
                    next = g.end;
                    gaps += 1;
                    missing += g.len();
                }
                for (seq, m) in r.messages.clone() {
                    prop_assert_eq!(seq, next);
                    if !matches!(st, Step::Raw { .. }) {
                        prop_assert_eq!(m, &payload(seq)[..]);
                    }
                    next += 1;
                    delivered += 1;
                }
                if !matches!(r.verdict, Verdict::Data) {
                    prop_assert_eq!(r.messages.len(), 0);
                }
                if t.session().is_some() {
                    prop_assert_eq!(t.expected(), Some(next));
                    prop_assert_eq!((delivered - base_msgs) + (missing - base_missing), next - session_base);
                }
            }
            let c = *t.counters();
            prop_assert_eq!(c.packets, steps.len() as u64);
            prop_assert_eq!(c.packets, c.data + c.heartbeats + c.ends + c.old + c.after_end + c.stale + c.invalid);
            prop_assert_eq!((c.messages, c.gaps, c.missing), (delivered, gaps, missing));
            prop_assert!(c.truncated <= c.packets && c.sessions <= c.packets);
        }

        /// Any bytes at all: no panic, and a readable packet's messages lie inside the datagram.
        #[test]
        fn random_bytes(datagrams in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..80), 0..20)) {
            let mut t = Tracker::new(Start::FirstSeen);
            for d in &datagrams {
                let r = t.track(d);
                let total: usize = r.messages.clone().map(|(_, m)| m.len() + 2).sum();
                prop_assert!(total + 20 <= d.len().max(20));
            }
            let c = *t.counters();
            prop_assert_eq!(c.packets, c.data + c.heartbeats + c.ends + c.old + c.after_end + c.stale + c.invalid);
        }
    }
}
