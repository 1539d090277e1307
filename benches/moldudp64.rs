//! Micro benchmark: MoldUDP64 receive cost in memory, per packet, with no socket.
//!
//! * `moldudp64/track`: `Tracker::track` on 10,000 packets of 1,400 bytes at most, each message 20 to 50 bytes
//!   (about 40 per packet, the sizes of ITCH order messages), every message read; throughput is in messages.
//! * `moldudp64/track_with_gaps`: the same stream with one packet in 100 missing and one in 100 repeated.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use ticklane::moldudp64::{Packetizer, Session, Start, Tracker};

fn stream(packets: usize, faults: bool) -> Vec<Vec<u8>> {
    let mut pk = Packetizer::new(Session::new("BENCH").unwrap(), 1, 1400, u16::MAX - 1).unwrap();
    let mut out = Vec::with_capacity(packets);
    let mut i = 0u64;
    let mut k = 0usize; // packets formed
    while out.len() < packets {
        let msg = vec![i as u8; 20 + (i % 31) as usize];
        if !pk.add(&msg) {
            let p = pk.packet().to_vec();
            pk.clear();
            k += 1;
            match k % 100 {
                50 if faults => {}
                70 if faults => {
                    out.push(p.clone());
                    out.push(p);
                }
                _ => out.push(p),
            }
            continue;
        }
        i += 1;
    }
    out
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("moldudp64");
    for (name, faults) in [("track", false), ("track_with_gaps", true)] {
        let packets = stream(10_000, faults);
        let mut t = Tracker::new(Start::At(1));
        let msgs: u64 = packets.iter().map(|p| t.track(p).messages.len() as u64).sum();
        g.throughput(Throughput::Elements(msgs));
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                let mut t = Tracker::new(Start::At(1));
                let mut bytes = 0usize;
                for p in &packets {
                    for (_, m) in t.track(black_box(p)).messages {
                        bytes += m.len();
                    }
                }
                black_box(bytes)
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
