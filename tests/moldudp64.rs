//! MoldUDP64 over real UDP sockets on loopback: a paced sender with seeded loss, reordering and duplication,
//! a receiver polling into a tracker, and the receiver's deliveries and gap report checked against the
//! sender's record of what it did to the stream.
//!
//! What the tracker does with a reordered pair (packet A held back, B sent, then A): B is ahead of the
//! expected sequence, so A's range is reported as a gap and B delivered; A then arrives wholly behind and is
//! dropped as old. So the messages delivered are exactly those sent minus the dropped and the late packets,
//! in strictly increasing sequence order, and the gaps cover exactly the dropped and late packets.
//!
//! The kernel may drop datagrams too when the receiver falls behind (a loaded 2-core machine): the sender is
//! paced and the receive buffer large so that it should not, and if it does, the test tells those losses
//! apart: each is a whole packet the sender did send, and there are no more of them than the socket's
//! `drops` count in /proc/net/udp.

use std::net::UdpSocket;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use ticklane::moldudp64::{
    Faults, Gap, Receiver, ReceiverConfig, SendReport, Sender, SenderConfig, Session, Start, Tracker, Verdict,
};

/// A stable hash of a sequence number (splitmix64), for message contents the receiver can recompute.
fn mix(seq: u64) -> u64 {
    let mut z = seq.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Message `seq`: mostly 0 to 63 bytes, one in 20 up to 1,299 (some packets then carry a single message).
fn message(seq: u64, out: &mut Vec<u8>) {
    let h = mix(seq);
    let len = if h % 20 == 0 { (h >> 8) % 1300 } else { (h >> 8) % 64 } as usize;
    out.clear();
    out.extend((0..len).map(|k| (h >> (k % 8 * 8)) as u8 ^ k as u8));
}

/// `ranges` as a set over `1..=n`.
fn mark(n: u64, ranges: &[Range<u64>]) -> Vec<bool> {
    let mut v = vec![false; n as usize + 1];
    for r in ranges {
        for s in r.clone() {
            v[s as usize] = true;
        }
    }
    v
}

/// What the receiving thread saw.
#[derive(Default)]
struct Seen {
    delivered: Vec<bool>,
    gaps: Vec<Gap>,
    verdicts: Vec<Verdict>,
    counters: ticklane::moldudp64::Counters,
    kernel_drops: u64,
    ended: bool,
    /// The tracker's next expected sequence at the end.
    expected: u64,
}

/// Polls `rx` into a tracker until the end of session (and a short drain after it), or until nothing has
/// arrived for `idle` after the sender is done. Polling starts when `go` is set (later than the sender starts,
/// the socket's buffer overflows).
fn receive(mut rx: Receiver, n: u64, done: Arc<AtomicBool>, go: Arc<AtomicBool>, idle: Duration) -> Seen {
    let mut t = Tracker::new(Start::At(1));
    let mut seen = Seen { delivered: vec![false; n as usize + 1], ..Seen::default() };
    let mut expect = Vec::new();
    let mut last_delivered = 0u64;
    let mut last_rx = Instant::now();
    let mut ended_at: Option<Instant> = None;
    while !go.load(Ordering::Acquire) {
        thread::sleep(Duration::from_millis(1));
    }
    loop {
        let got = rx
            .poll(&mut t, 64, |r| {
                seen.verdicts.push(r.verdict);
                if let Some(g) = r.gap {
                    seen.gaps.push(g);
                }
                for (seq, m) in r.messages {
                    assert!(seq > last_delivered, "message {seq} delivered after {last_delivered}");
                    last_delivered = seq;
                    message(seq, &mut expect);
                    assert_eq!(m, &expect[..], "payload of message {seq}");
                    seen.delivered[seq as usize] = true;
                }
            })
            .expect("receive");
        let now = Instant::now();
        if got > 0 {
            last_rx = now;
        }
        if t.ended() && ended_at.is_none() {
            ended_at = Some(now);
        }
        if ended_at.is_some_and(|e| now - e > Duration::from_millis(50)) {
            break;
        }
        if done.load(Ordering::Acquire) && now - last_rx > idle {
            break;
        }
        if got == 0 {
            thread::sleep(Duration::from_micros(50));
        }
    }
    // The socket is new: every drop it counts happened during this test.
    seen.kernel_drops = rx.kernel_drops().expect("the socket's drops in /proc/net/udp");
    seen.counters = *t.counters();
    seen.ended = t.ended();
    seen.expected = t.expected().unwrap_or(1);
    seen
}

/// Sends messages `seqs`, with a heartbeat every `hb_every` messages.
fn send(tx: &mut Sender, seqs: std::ops::RangeInclusive<u64>, hb_every: u64) {
    let mut buf = Vec::new();
    for seq in seqs {
        assert_eq!(tx.next_sequence(), seq);
        message(seq, &mut buf);
        tx.push(&buf).expect("push");
        if seq % hb_every == 0 {
            tx.flush().expect("flush");
            tx.heartbeat().expect("heartbeat");
        }
    }
}

fn loopback_receiver() -> Receiver {
    let mut cfg = ReceiverConfig::new("127.0.0.1:0".parse().unwrap());
    cfg.recv_buffer = Some(16 << 20);
    Receiver::bind(&cfg).expect("bind a loopback receiver")
}

#[test]
fn loss_reordering_and_duplicates_over_loopback() {
    const N: u64 = 300_000;
    let rx = loopback_receiver();
    let dest = rx.local_addr();
    eprintln!("receiver on {dest}, SO_RCVBUF reported {} bytes", rx.recv_buffer());
    let done = Arc::new(AtomicBool::new(false));
    let d = done.clone();
    let go = Arc::new(AtomicBool::new(true));
    let receiver = thread::spawn(move || receive(rx, N, d, go, Duration::from_secs(3)));

    let mut cfg = SenderConfig::new(Session::new("LOOP1").unwrap());
    cfg.rate = 200_000;
    cfg.record_packets = true;
    cfg.send_buffer = Some(1 << 20);
    cfg.faults = Faults { seed: 0x5EED_2026, drop_ppm: 10_000, reorder_ppm: 10_000, duplicate_ppm: 10_000 };
    let mut tx = Sender::new(cfg, dest).expect("sender");
    let started = Instant::now();
    send(&mut tx, 1..=N, 25_000);
    let report = tx.finish().expect("finish");
    let took = started.elapsed();
    done.store(true, Ordering::Release);
    let seen = receiver.join().expect("receiver thread");
    eprintln!(
        "sent {} messages in {} packets ({} datagrams) in {took:.2?}, paced at 200,000/s (at most {} µs behind); \
         dropped {} packets, {} late, {} duplicated; kernel drops {}",
        report.messages,
        report.packets,
        report.datagrams,
        report.max_behind_ns / 1000,
        report.dropped_packets,
        report.late_packets,
        report.duplicated_packets,
        seen.kernel_drops,
    );
    eprintln!("receiver: {:?}", seen.counters);
    check(&report, &seen, N);
}

/// The receiver against the sender's record.
fn check(report: &SendReport, seen: &Seen, n: u64) {
    assert_eq!(report.messages, n);
    assert_eq!(report.next_sequence, n + 1);
    assert!(report.dropped_packets > 0 && report.late_packets > 0 && report.duplicated_packets > 0, "{report:?}");

    let dropped = mark(n, &report.dropped);
    let late = mark(n, &report.late);
    let lost: Vec<bool> = dropped.iter().zip(&late).map(|(d, l)| d | l).collect();
    let gap_ranges: Vec<Range<u64>> = seen.gaps.iter().map(|g| g.first..g.end).collect();
    let gapped = mark(n, &gap_ranges);
    let c = &seen.counters;

    // Whatever happened in the kernel: every sequence the tracker passed is delivered or in a gap, never
    // both, and no message the sender dropped is delivered. Only if the end of session was lost can the tail
    // of the stream go unnoticed (nothing after it arrived to show the sequence moved on).
    assert!(seen.ended || seen.kernel_drops > 0, "the end of session did not arrive, and the kernel dropped nothing");
    let passed = if seen.ended { n + 1 } else { seen.expected };
    assert!(passed <= n + 1);
    for s in 1..=n as usize {
        if (s as u64) < passed {
            assert!(
                seen.delivered[s] != gapped[s],
                "message {s}: delivered {}, in a gap {}",
                seen.delivered[s],
                gapped[s]
            );
        } else {
            assert!(!seen.delivered[s] && !gapped[s], "message {s} after the last expected sequence {passed}");
        }
        assert!(!(dropped[s] && seen.delivered[s]), "message {s} was dropped by the sender but delivered");
    }
    assert_eq!(c.messages + c.missing, passed - 1);
    assert_eq!(c.gaps, seen.gaps.len() as u64);
    assert_eq!(c.sessions, 1);
    assert_eq!(c.truncated + c.invalid + c.stale, 0);

    // Differences the sender did not cause, each a whole packet: one it sent that never arrived (missing,
    // or in the unnoticed tail), or one it sent late that was delivered because the packet sent before it
    // was lost. Either way no more of them than datagrams the kernel dropped.
    let (mut missing_packets, mut late_delivered) = (0u64, 0u64);
    for p in &report.packets_sent {
        let range = p.start as usize..p.end as usize;
        let whole = |k: usize| {
            assert!(k == 0 || k == range.len(), "packet {p:?}: {k} messages differ, not a lost datagram");
            u64::from(k > 0)
        };
        missing_packets += whole(range.clone().filter(|&s| !seen.delivered[s] && !lost[s]).count());
        late_delivered += whole(range.clone().filter(|&s| late[s] && seen.delivered[s]).count());
    }
    assert!(
        missing_packets <= seen.kernel_drops && late_delivered <= seen.kernel_drops,
        "{missing_packets} packets sent never delivered and {late_delivered} late packets delivered, the kernel \
         dropped {} datagrams",
        seen.kernel_drops
    );
    if seen.kernel_drops > 0 {
        eprintln!(
            "the kernel dropped {} datagrams: {missing_packets} data packets sent never delivered, {late_delivered} \
             late ones delivered (the packet sent before them was lost)",
            seen.kernel_drops
        );
        return;
    }

    // No kernel drop: the receiver saw exactly what the sender did.
    assert_eq!(gapped, lost, "gap report differs from the packets dropped and sent late");
    for (s, (delivered, lost)) in seen.delivered.iter().zip(&lost).enumerate().skip(1) {
        assert_eq!(*delivered, !lost, "message {s}");
    }
    assert_eq!(c.old, report.duplicated_packets + report.late_packets);
    assert_eq!(c.heartbeats, report.heartbeats);
    assert_eq!(c.ends, report.ends);
    assert_eq!(c.after_end, 0);
    assert_eq!(c.packets, report.datagrams);
    assert_eq!(c.data + c.old, report.packets - report.dropped_packets + report.duplicated_packets);
    let dup_msgs: u64 = report.duplicated.iter().chain(&report.late).map(|r| r.end - r.start).sum();
    assert_eq!(c.duplicates, dup_msgs);
    assert_eq!(seen.verdicts.iter().filter(|v| **v == Verdict::Old).count() as u64, c.old);
}

#[test]
fn kernel_drops_are_told_apart() {
    // The check above with losses in the kernel on purpose: a 64 KiB receive buffer not read while an
    // unpaced sender sends the first half of the stream overflows; the differences from the sender's record
    // must be whole packets it sent, no more than the kernel counted.
    const N: u64 = 100_000;
    let mut cfg = ReceiverConfig::new("127.0.0.1:0".parse().unwrap());
    cfg.recv_buffer = Some(64 << 10);
    let rx = Receiver::bind(&cfg).unwrap();
    let dest = rx.local_addr();
    let done = Arc::new(AtomicBool::new(false));
    let d = done.clone();
    let go = Arc::new(AtomicBool::new(false));
    let g = go.clone();
    let receiver = thread::spawn(move || receive(rx, N, d, g, Duration::from_millis(300)));
    let mut cfg = SenderConfig::new(Session::new("LOSSY").unwrap());
    cfg.record_packets = true;
    cfg.faults = Faults { seed: 7, drop_ppm: 20_000, reorder_ppm: 20_000, duplicate_ppm: 20_000 };
    let mut tx = Sender::new(cfg, dest).unwrap();
    send(&mut tx, 1..=N / 2, 10_000);
    go.store(true, Ordering::Release);
    send(&mut tx, N / 2 + 1..=N, 10_000);
    let report = tx.finish().unwrap();
    done.store(true, Ordering::Release);
    let seen = receiver.join().unwrap();
    eprintln!("kernel drops {}, receiver {:?}", seen.kernel_drops, seen.counters);
    assert!(seen.kernel_drops > 0, "the receive buffer did not overflow");
    check(&report, &seen, N);
}

#[test]
fn pacing_is_open_loop() {
    // 20,000 messages at 100,000/s, one per packet: the last is due 199.99 ms after the first. A sender that
    // waited a fixed interval after each send would drift later by every late wake-up; an open-loop one
    // finishes close to the due time however late single packets were.
    const N: u64 = 20_000;
    let rx = loopback_receiver();
    let dest = rx.local_addr();
    let mut cfg = SenderConfig::new(Session::new("PACE").unwrap());
    cfg.rate = 100_000;
    cfg.max_messages = 1;
    cfg.end_repeats = 1;
    let mut tx = Sender::new(cfg, dest).unwrap();
    let started = Instant::now();
    for _ in 0..N {
        tx.push(b"0123456789").unwrap();
    }
    tx.flush().unwrap();
    let took = started.elapsed();
    let report = tx.finish().unwrap();
    drop(rx);
    eprintln!("{N} packets at 100,000/s took {took:.2?}; at most {} µs behind", report.max_behind_ns / 1000);
    assert_eq!(report.packets, N);
    assert!(took >= Duration::from_nanos((N - 1) * 10_000), "sent faster than paced: {took:?}");
    // Generous for a loaded machine: what matters is that lateness does not add up (20,000 packets each
    // 50 µs late would be a full second).
    assert!(took < Duration::from_millis(200) + Duration::from_millis(400), "paced sending drifted: {took:?}");
}

#[test]
fn heartbeats_when_idle_and_garbage_datagrams() {
    let mut rx = loopback_receiver();
    let dest = rx.local_addr();
    let mut cfg = SenderConfig::new(Session::new("IDLE").unwrap());
    cfg.heartbeat_interval = Duration::from_millis(20);
    cfg.first_sequence = 1000;
    let mut tx = Sender::new(cfg, dest).unwrap();
    tx.push(b"first").unwrap();
    assert!(!tx.tick().unwrap(), "the packet is flushed, no heartbeat yet");
    thread::sleep(Duration::from_millis(30));
    assert!(tx.tick().unwrap(), "idle longer than the interval: a heartbeat");
    // Garbage from elsewhere on the same port: a short datagram and a damaged packet.
    let other = UdpSocket::bind("127.0.0.1:0").unwrap();
    other.send_to(b"short", dest).unwrap();
    let mut damaged = Vec::from(*b"IDLE      ");
    damaged.extend_from_slice(&1001u64.to_be_bytes());
    damaged.extend_from_slice(&[0, 2, 0, 1, b'x', 0, 9, b'y']); // 2 messages; the second says 9 bytes, has 1
    other.send_to(&damaged, dest).unwrap();
    let report = tx.finish().unwrap();
    assert_eq!((report.heartbeats, report.ends), (1, 3));

    let mut t = Tracker::new(Start::FirstSeen);
    let mut log = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while log.len() < 7 && Instant::now() < deadline {
        rx.poll(&mut t, 16, |r| {
            let msgs: Vec<(u64, Vec<u8>)> = r.messages.map(|(s, m)| (s, m.to_vec())).collect();
            log.push((r.verdict, r.gap, msgs, r.error.is_some()));
        })
        .unwrap();
        thread::sleep(Duration::from_millis(1));
    }
    // Loopback keeps order between two sockets' datagrams only per socket: sort the garbage apart.
    let mine: Vec<_> = log.iter().filter(|l| !matches!(l.0, Verdict::Invalid) && !l.3).collect();
    assert_eq!(mine.len(), 5, "{log:?}");
    assert_eq!(mine[0].2, vec![(1000, b"first".to_vec())]);
    assert_eq!(mine[1].0, Verdict::Heartbeat);
    assert!(mine[2..].iter().all(|l| l.0 == Verdict::EndOfSession));
    let c = t.counters();
    assert_eq!((c.invalid, c.truncated, c.heartbeats, c.ends), (1, 2, 1, 3));
    // The damaged packet (message 1001 whole, 1002 cut) arrived between the heartbeat and the end, or
    // around them: whichever, message 1001 is delivered or dropped as after the end, and nothing panics.
    assert_eq!(rx.datagrams(), 7);
}

#[test]
fn a_schedule_on_the_host_clock_is_kept_from_its_start() {
    // The sender's schedule starts at a CLOCK_MONOTONIC time 150 ms ahead, as `itch-send --start-at` does for
    // a receiver in another process: no packet may arrive before the last of its messages was due by that
    // clock, and the whole stream (2,000 messages at 20,000/s, 10 per packet) is not late by much.
    use ticklane::time::host_monotonic_ns;
    const N: u64 = 2_000;
    const RATE: u64 = 20_000;
    let mut rx = loopback_receiver();
    let dest = rx.local_addr();
    let start = host_monotonic_ns() + 150_000_000;
    let mut cfg = SenderConfig::new(Session::new("CLOCK").unwrap());
    cfg.rate = RATE;
    cfg.start_at = Some(start);
    cfg.max_messages = 10;
    cfg.end_repeats = 1;
    let sender = thread::spawn(move || {
        let mut tx = Sender::new(cfg, dest).unwrap();
        for _ in 0..N {
            tx.push(b"0123456789").unwrap();
        }
        tx.finish().unwrap()
    });
    let due = |q: u64| start + (q - 1) * 1_000_000_000 / RATE;
    let mut t = Tracker::new(Start::FirstSeen);
    let (mut messages, mut last_arrival) = (0u64, 0u64);
    let until = Instant::now() + Duration::from_secs(30);
    while messages < N && Instant::now() < until {
        rx.poll(&mut t, 64, |r| {
            let now = host_monotonic_ns();
            let seqs: Vec<u64> = r.messages.map(|(q, _)| q).collect();
            if let Some(&last) = seqs.last() {
                assert!(now >= due(last), "sequence {last} arrived {} ns before it was due", due(last) - now);
                messages += seqs.len() as u64;
                last_arrival = now;
            }
        })
        .unwrap();
    }
    // Checked before joining: a sender that waits for its start on the wrong clock would keep the join waiting.
    assert_eq!(messages, N, "messages received within 30 s");
    let report = sender.join().unwrap();
    assert_eq!((report.messages, report.packets), (N, N / 10));
    // The last message is due 99.95 ms after the start; a sender that started on its own clock instead
    // would have finished long before the start.
    let late = last_arrival - due(N);
    assert!(late < 400_000_000, "the stream ended {late} ns after its last message was due");
}
