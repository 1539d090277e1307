//! The machine's own latency floor, measured the way benchmark (b) measures ticklane: an open-loop schedule
//! of one tick per `1 / rate` on one pinned, spinning thread, recording how late each tick is seen (the
//! moment it was due → the moment the thread observes the clock past it). No rings, no pipeline: whatever
//! this shows (interrupts, the hypervisor taking the vCPU away) every pipeline on this machine inherits.
//!
//! `cargo bench --bench jitter -- [--rate N] [--seconds S] [--core C]` prints one line:
//! `jitter rate=N core=C ticks=… p50=… p90=… p99=… p99.9=… p99.99=… max=…` (ns).

use hdrhistogram::Histogram;

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let rate = arg("--rate", 1_000_000).max(1);
    let seconds = arg("--seconds", 10).max(1);
    let core = arg("--core", 0) as usize;
    if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
        eprintln!("could not pin to core {core}");
    }
    ticklane::time::init_clock();
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("bounds");
    let start = ticklane::time::mono_now();
    let ticks = rate * seconds;
    for i in 0..ticks {
        let due = start + (i as u128 * 1_000_000_000 / rate as u128) as u64;
        let mut now = ticklane::time::mono_now();
        while now < due {
            std::hint::spin_loop();
            now = ticklane::time::mono_now();
        }
        h.saturating_record((now - due).max(1));
    }
    let q = |q: f64| h.value_at_quantile(q);
    println!(
        "jitter rate={rate} core={core} ticks={} p50={} p90={} p99={} p99.9={} p99.99={} max={}",
        h.len(),
        q(0.5),
        q(0.9),
        q(0.99),
        q(0.999),
        q(0.9999),
        h.max()
    );
}
