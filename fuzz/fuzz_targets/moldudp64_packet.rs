//! MoldUDP64 packets (`ticklane::moldudp64::Packet`) and the sequence tracker on arbitrary datagrams.
//!
//! Input: a control byte (bit 0 set: tracking starts at sequence `control >> 1`, else at the first packet
//! seen), then datagrams, each a 2-byte big-endian length and that many bytes (the last takes what is left),
//! all fed to one tracker in order.
//!
//! Checks, per datagram:
//! - no panic;
//! - `Packet::parse_partial` agrees with an independent reading of the layout (header, then `count` blocks
//!   of a 2-byte length and payload): the same messages, sequences and damage offset; `Packet::parse`
//!   accepts exactly the undamaged packets;
//! - a whole data packet's messages, packed again by `Packetizer`, give the input up to its last block;
//! - the tracker delivers sequences in order, each gap starts at the sequence it expected and ends where
//!   delivery resumes, and what it counts adds up (every packet in one class; delivered + missing = expected
//!   − start within a session).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ticklane::moldudp64::packet::{Kind, PacketError, HEADER_LEN, MAX_MESSAGES};
use ticklane::moldudp64::{Packet, Packetizer, Start, Tracker};

fuzz_target!(|data: &[u8]| {
    let Some((&control, mut rest)) = data.split_first() else { return };
    let start = if control & 1 == 1 { Start::At(u64::from(control >> 1)) } else { Start::FirstSeen };
    let mut t = Tracker::new(start);
    let mut next = 0u64;
    let (mut delivered, mut missing) = (0u64, 0u64);
    let (mut base, mut base_delivered, mut base_missing) = (0u64, 0u64, 0u64);
    while !rest.is_empty() {
        let len = match rest {
            [a, b, ..] => usize::from(u16::from_be_bytes([*a, *b])),
            _ => rest.len(),
        };
        rest = rest.get(2..).unwrap_or(&[]);
        let (datagram, tail) = rest.split_at(len.min(rest.len()));
        rest = tail;
        check_packet(datagram);

        let r = t.track(datagram);
        if r.new_session {
            next = t.session_start().expect("a session");
            base = next;
            base_delivered = delivered;
            base_missing = missing;
        }
        if let Some(g) = r.gap {
            assert_eq!(g.first, next, "gap {g:?}");
            assert!(g.end > g.first);
            next = g.end;
            missing = missing.saturating_add(g.len());
        }
        for (seq, _) in r.messages {
            assert_eq!(seq, next, "delivered out of order");
            next += 1;
            delivered += 1;
        }
        if t.session().is_some() {
            assert_eq!(t.expected(), Some(next));
            if missing < u64::MAX {
                assert_eq!((delivered - base_delivered) + (missing - base_missing), next - base);
            }
        }
    }
    let c = *t.counters();
    assert_eq!(c.packets, c.data + c.heartbeats + c.ends + c.old + c.after_end + c.stale + c.invalid);
    assert_eq!(c.messages, delivered);
});

/// The layout read the plain way: `(sequence, payload)` of every whole block, and the offset of the damage.
fn reference(buf: &[u8]) -> Option<(Vec<(u64, &[u8])>, Option<usize>)> {
    if buf.len() < HEADER_LEN {
        return None;
    }
    let seq = u64::from_be_bytes(buf[10..18].try_into().unwrap());
    let count = u16::from_be_bytes([buf[18], buf[19]]);
    if count == 0 || count == 0xFFFF {
        return Some((Vec::new(), None));
    }
    if seq.checked_add(u64::from(count)).is_none() {
        return None;
    }
    let mut out = Vec::new();
    let mut off = HEADER_LEN;
    for i in 0..u64::from(count) {
        if off + 2 > buf.len() {
            return Some((out, Some(off)));
        }
        let len = usize::from(u16::from_be_bytes([buf[off], buf[off + 1]]));
        if off + 2 + len > buf.len() {
            return Some((out, Some(off)));
        }
        out.push((seq + i, &buf[off + 2..off + 2 + len]));
        off += 2 + len;
    }
    Some((out, None))
}

fn check_packet(buf: &[u8]) {
    let partial = Packet::parse_partial(buf);
    match (&partial, reference(buf)) {
        (Err(_), None) => {}
        (Ok((p, damage)), Some((msgs, at))) => {
            assert_eq!(p.messages().collect::<Vec<_>>(), msgs);
            assert_eq!(p.len(), msgs.len());
            match (damage, at) {
                (None, None) => {}
                (Some(PacketError::Truncated { offset, index, .. }), Some(at)) => {
                    assert_eq!((*offset, usize::from(*index)), (at, msgs.len()));
                }
                (d, a) => panic!("damage {d:?}, reference says {a:?}"),
            }
        }
        (p, r) => panic!("parse_partial {p:?}, reference {r:?}"),
    }
    let whole = Packet::parse(buf);
    assert_eq!(whole.is_ok(), matches!(partial, Ok((_, None))));
    if let Ok(p) = whole {
        if let Kind::Data(n) = p.kind() {
            assert!(n <= MAX_MESSAGES);
            let used = HEADER_LEN + p.messages().map(|(_, m)| 2 + m.len()).sum::<usize>();
            let mut pk = Packetizer::new(p.session(), p.sequence(), used.max(22), MAX_MESSAGES).unwrap();
            for (_, m) in p.messages() {
                assert!(pk.add(m), "a message of a packet that fits does not fit again");
            }
            assert_eq!(pk.packet(), &buf[..used]);
        }
    }
}
