//! Benchmark: an ITCH 5.0 sample file on one core, in messages per second over the whole file: decoding
//! only, decoding into order books, and decoding into books with a quote check after every book change.
//!
//! The three cases run the same loop the `itch` source runs on its thread (src/source/itch.rs), without the
//! rings to the shards:
//!
//! * `decode`: the file mapped and framed, every message through `Counters::decode` (per-type counts), its
//!   timestamp made an epoch time and its stock locate looked up.
//! * `book`: `decode`, and every order message applied to `Books` through `source::itch::apply`, as
//!   reserved by the source (1 Mi orders, 256 levels per side), the next messages' orders and books
//!   prefetched as the source does (`source::itch_prefetch`).
//! * `book-noprefetch`: `book` without the prefetching (its baseline).
//! * `book+quotes`: `book`, and after every book change within the top levels the instrument's best levels
//!   and imbalance compared with the last quote sent for it, as the source decides whether to send one
//!   (the quotes are counted, not sent).
//!
//! Each run maps the file afresh and runs the cases one after the other, so every case is measured under
//! the same conditions as the others; `TL_RUNS` runs (default 5). Per case it prints, on stdout, the median,
//! min and max over the runs of wall-clock messages/s and of thread-CPU messages/s (`CLOCK_THREAD_CPUTIME_ID`,
//! which time slices lost to other processes on a shared machine do not inflate), as tab-separated lines
//! `case  wall_median  wall_min  wall_max  cpu_median  cpu_min  cpu_max` after a `#` header.
//!
//! Input: `TL_ITCH_FILE` (a sample file, e.g. `ticklane itch-gen --messages 50000000 --stocks 100 --seed 7`,
//! what `scripts/bench.sh itch` uses); without it, a file of `TL_ITCH_MESSAGES` (default 5,000,000)
//! generated messages written to a temporary directory. `TL_ITCH_CASES` picks cases (default
//! `decode,book,book-noprefetch,book+quotes`).

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use ticklane::book::{Books, LastQuotes};
use ticklane::event::KeyId;
use ticklane::itch::{self, Counters, ItchFile, Message, SessionClock};
use ticklane::source::itch::{apply, Applied};
use ticklane::source::itch_prefetch::Prefetcher;

const NONE: KeyId = KeyId::MAX;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Case {
    Decode,
    Book,
    BookNoPrefetch,
    Quotes,
}

impl Case {
    fn name(self) -> &'static str {
        match self {
            Case::Decode => "decode",
            Case::Book => "book",
            Case::BookNoPrefetch => "book-noprefetch",
            Case::Quotes => "book+quotes",
        }
    }
}

/// What one pass over the file saw; equal for every run of a case (checked).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
struct Seen {
    messages: u64,
    frame_errors: u64,
    decode_errors: u64,
    applied: u64,
    refused: u64,
    quotes: u64,
    live: usize,
    acc: u64,
}

fn thread_cpu() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn pass(path: &Path, case: Case, clock: &SessionClock) -> Seen {
    let mut file = ItchFile::open(path).expect("open the ITCH file");
    let mut counters = Counters::default();
    let mut books = Books::new(ticklane::book::DEFAULT_DEPTH, 1 << 16);
    books.reserve(1 << 20, 256);
    let mut ids = vec![NONE; 1 << 16];
    let mut next_id: KeyId = 0;
    let mut last = LastQuotes::default();
    let mut s = Seen::default();
    let mut ahead = Prefetcher::new();
    let prefetch = matches!(case, Case::Book | Case::Quotes);
    loop {
        if prefetch {
            ahead.step(file.position(), file.buffered(), &books, &ids);
        }
        let Some(f) = file.next() else { break };
        let Ok((_, bytes)) = f else {
            s.frame_errors += 1;
            continue;
        };
        s.messages += 1;
        let m = match counters.decode(bytes) {
            Ok(m) => m,
            Err(_) => {
                s.decode_errors += 1;
                continue;
            }
        };
        let ts = m.timestamp().map_or(0, |t| clock.to_epoch(t));
        let k = m.stock_locate().map_or(NONE, |l| ids[l as usize]);
        s.acc = s.acc.wrapping_add(ts as u64 ^ k as u64);
        if let Message::StockDirectory(d) = m {
            ids[d.header.stock_locate as usize] = next_id;
            next_id += 1;
            continue;
        }
        if case == Case::Decode {
            continue;
        }
        if matches!(m, Message::AddOrder(_)) && k == NONE {
            s.refused += 1;
            continue;
        }
        let u = match apply(&mut books, &m, k) {
            None => continue,
            Some(Err(_)) => {
                s.refused += 1;
                continue;
            }
            Some(Ok(Applied::Update(u))) => u,
            Some(Ok(Applied::Fill(x))) => {
                s.acc = s.acc.wrapping_add(x.fill.shares as u64);
                x.update
            }
        };
        s.applied += 1;
        if u.over_execution.is_some() {
            s.refused += 1;
        }
        if case == Case::Quotes && u.touches_top() {
            s.quotes += quote(&books, &mut last, u.instrument, ts) as u64;
        }
    }
    s.live = books.len();
    s.decode_errors += counters.truncated;
    black_box(&counters);
    s
}

/// Whether `k`'s quote differs from the last one (which it then becomes), as the source decides.
fn quote(books: &Books, last: &mut LastQuotes, k: KeyId, ts: i64) -> bool {
    black_box(last.changed(books.quote(k).to_event(k, ts))).is_some()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn main() {
    // `cargo bench` passes `--bench`; this binary takes its settings from the environment only.
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let runs: usize = env("TL_RUNS").and_then(|v| v.parse().ok()).unwrap_or(5).max(1);
    let cases: Vec<Case> = env("TL_ITCH_CASES")
        .unwrap_or_else(|| "decode,book,book-noprefetch,book+quotes".into())
        .split(',')
        .map(|c| match c.trim() {
            "decode" => Case::Decode,
            "book" => Case::Book,
            "book-noprefetch" => Case::BookNoPrefetch,
            "book+quotes" => Case::Quotes,
            other => panic!("TL_ITCH_CASES: unknown case `{other}` (decode, book, book-noprefetch, book+quotes)"),
        })
        .collect();
    let _tmp;
    let path: PathBuf = match env("TL_ITCH_FILE") {
        Some(p) => PathBuf::from(p),
        None => {
            let n = env("TL_ITCH_MESSAGES").and_then(|v| v.replace('_', "").parse().ok()).unwrap_or(5_000_000);
            let dir = tempfile::tempdir().expect("a temporary directory");
            let p = dir.path().join("feed.itch");
            let params = itch::gen::GenParams {
                messages: n,
                seed: 7,
                stocks: 100,
                start: 34_200_000_000_000,
                end: 57_600_000_000_000,
                faults: 0.0,
            };
            let w = std::io::BufWriter::new(std::fs::File::create(&p).expect("create the file"));
            itch::gen::generate(&params, w).expect("generate");
            _tmp = dir;
            p
        }
    };
    let clock = SessionClock::new("2026-11-26", itch::DEFAULT_TZ).expect("the session clock");
    let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    eprintln!("{}: {bytes} bytes; {runs} runs of {:?}; load average {}", path.display(), cases, load_average());
    let mut wall: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    let mut seen: Vec<Option<Seen>> = vec![None; cases.len()];
    for run in 1..=runs {
        for (i, &case) in cases.iter().enumerate() {
            let (t, c) = (Instant::now(), thread_cpu());
            let s = pass(&path, case, &clock);
            let (t, c) = (t.elapsed().as_secs_f64(), (thread_cpu() - c).as_secs_f64());
            let n = s.messages as f64;
            wall[i].push(n / t);
            cpu[i].push(n / c);
            match seen[i] {
                None => {
                    eprintln!("{}: {s:?}", case.name());
                    seen[i] = Some(s);
                }
                Some(p) => assert_eq!(p, s, "{} saw something else in run {run}", case.name()),
            }
            eprintln!(
                "run {run} {:<12} {:.0} messages in {t:.3} s: {:.2} M/s wall, {:.2} M/s thread CPU (load {})",
                case.name(),
                n,
                n / t / 1e6,
                n / c / 1e6,
                load_average()
            );
        }
    }
    println!("# case\twall_median\twall_min\twall_max\tcpu_median\tcpu_min\tcpu_max");
    for (i, &case) in cases.iter().enumerate() {
        let min = |v: &[f64]| v.iter().cloned().fold(f64::INFINITY, f64::min);
        let max = |v: &[f64]| v.iter().cloned().fold(0.0, f64::max);
        println!(
            "{}\t{:.0}\t{:.0}\t{:.0}\t{:.0}\t{:.0}\t{:.0}",
            case.name(),
            median(&mut wall[i]),
            min(&wall[i]),
            max(&wall[i]),
            median(&mut cpu[i]),
            min(&cpu[i]),
            max(&cpu[i])
        );
    }
}
