//! No heap allocation per MoldUDP64 packet: parsing and tracking (gaps, duplicates, reordering, damage
//! included), receiving from a socket into the tracker, and sending without faults, shown with a counting
//! global allocator that counts this thread's allocations.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

use ticklane::moldudp64::{Packetizer, Receiver, ReceiverConfig, Sender, SenderConfig, Session, Start, Tracker};

struct Counting;

thread_local! {
    /// This thread's allocations (const-initialised: reading it never allocates).
    static MINE: Cell<u64> = const { Cell::new(0) };
}

fn count_one() {
    let _ = MINE.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: every method forwards to the system allocator with the caller's arguments unchanged; counting
// is a side effect that does not touch the memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: same contract as ours, passed through.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: same contract as ours, passed through.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        // SAFETY: same contract as ours, passed through.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours, passed through.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn mine() -> u64 {
    MINE.with(|c| c.get())
}

/// Packets 1..: 1 to 8 messages of 0 to 40 bytes each, with some dropped, swapped, repeated and cut.
fn stream(n: usize) -> Vec<Vec<u8>> {
    let mut pk = Packetizer::new(Session::new("ALLOC").unwrap(), 1, 1400, 8).unwrap();
    let mut out: Vec<Vec<u8>> = Vec::new();
    let mut i = 0u64;
    let mut k = 0usize; // packets formed
    while out.len() < n {
        i += 1;
        while pk.add(&vec![i as u8; (i % 41) as usize]) {
            i += 1;
        }
        let p = pk.packet().to_vec();
        pk.clear();
        k += 1;
        match k % 50 {
            7 => continue,                             // dropped
            13 => out.push(p[..p.len() - 1].to_vec()), // cut
            21 => out.push(p.clone()),                 // repeated
            33 if !out.is_empty() => {
                let prev = out.len() - 1;
                out.insert(prev, p); // swapped with the one before
                continue;
            }
            _ => {}
        }
        out.push(p);
    }
    out.push(pk.heartbeat().to_vec());
    out
}

#[test]
fn no_allocation_per_packet() {
    let b = mine();
    drop(std::hint::black_box(Vec::<u8>::with_capacity(std::hint::black_box(10))));
    assert_eq!(mine() - b, 1, "the counter counts this thread's allocations");

    // Parse and track.
    let packets = stream(20_000);
    let mut t = Tracker::new(Start::At(1));
    let mut bytes = 0usize;
    let before = mine();
    for p in &packets {
        let r = t.track(p);
        bytes += r.messages.map(|(_, m)| m.len()).sum::<usize>();
    }
    let tracked = mine() - before;
    let c = *t.counters();
    assert!(c.gaps > 100 && c.old > 100 && c.truncated > 100, "{c:?}");
    assert!(bytes > 0);
    assert_eq!(tracked, 0, "allocations while tracking {} packets", packets.len());

    // Receive from a socket into the tracker: datagrams queued first, then polled.
    let mut cfg = ReceiverConfig::new("127.0.0.1:0".parse().unwrap());
    cfg.recv_buffer = Some(16 << 20);
    let mut rx = Receiver::bind(&cfg).unwrap();
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sent = 2_000;
    for p in packets.iter().take(sent) {
        tx.send_to(p, rx.local_addr()).unwrap();
    }
    let mut t = Tracker::new(Start::At(1));
    let mut got = 0;
    let mut delivered = 0usize;
    let deadline = Instant::now() + Duration::from_secs(10);
    let before = mine();
    while got < sent && Instant::now() < deadline {
        got += rx.poll(&mut t, 64, |r| delivered += r.messages.len()).unwrap();
    }
    let received = mine() - before;
    assert_eq!(got, sent);
    assert!(delivered > 0);
    assert_eq!(received, 0, "allocations while receiving {sent} datagrams");

    // Send without faults: after the first packet, nothing allocates.
    let mut s = Sender::new(SenderConfig::new(Session::new("ALLOC").unwrap()), rx.local_addr()).unwrap();
    s.push(b"warm-up").unwrap();
    s.flush().unwrap();
    let before = mine();
    for i in 0..20_000u32 {
        s.push(&i.to_be_bytes()).unwrap();
    }
    s.flush().unwrap();
    s.heartbeat().unwrap();
    let sending = mine() - before;
    assert_eq!(sending, 0, "allocations while sending 20,000 messages");
}
