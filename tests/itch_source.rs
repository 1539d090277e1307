//! The ITCH source end to end: a generated feed file (plain, gzip) and the same feed sent as MoldUDP64 over
//! loopback, through the pipeline into windows of trades and quotes, checked against a reference computed
//! here from the messages with a plain map of orders.

mod common;

use common::{fixed9, int, toml_path};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use ticklane::itch::{self, Message, SessionClock};

const DATE: &str = "2026-11-26";

fn gen_feed(dir: &Path, name: &str, extra: &[&str]) -> (std::path::PathBuf, String) {
    let path = dir.join(name);
    let p = path.to_str().expect("utf-8");
    let mut args =
        vec!["itch-gen", "--out", p, "--messages", "150000", "--stocks", "6", "--seed", "11", "--date", DATE];
    args.extend_from_slice(extra);
    let o = common::ticklane_ok(&args, dir);
    (path, common::stderr(&o))
}

fn job(source: &str, out: &Path) -> String {
    format!(
        r#"
{head}{windows}[[sink]]
stream = "bars"
type = "csv"
path = {}
[[sink]]
stream = "spread"
type = "csv"
path = {}
[[sink]]
stream = "feed_rejects"
type = "csv"
path = {}
"#,
        toml_path(&out.join("bars.csv")),
        toml_path(&out.join("spread.csv")),
        toml_path(&out.join("rejects.csv")),
        windows = common::ITCH_WINDOWS,
        head = common::itch_source(DATE, source),
    )
}

type Bar = (i64, i64, i64, i64, i64, u64);

/// Per (symbol, minute start in ns): open, high, low, close (raw 10⁻⁹ units), volume, count — from the
/// messages, with orders tracked in a map of their own: E at the order's price, C when printable at its
/// price, P and Q.
fn reference(path: &Path) -> BTreeMap<(String, i64), Bar> {
    let clock = SessionClock::new(DATE, itch::DEFAULT_TZ).unwrap();
    let bytes = std::fs::read(path).unwrap();
    let mut names: HashMap<u16, String> = HashMap::new();
    let mut orders: HashMap<u64, (u16, i64, i64)> = HashMap::new();
    let mut bars: BTreeMap<(String, i64), Bar> = BTreeMap::new();
    let mut trade = |names: &HashMap<u16, String>, locate: u16, ts: u64, price: i64, qty: i64| {
        let ts = clock.to_epoch(ts);
        let minute = ts - ts.rem_euclid(60_000_000_000);
        let b = bars.entry((names[&locate].clone(), minute)).or_insert((price, price, price, price, 0, 0));
        b.1 = b.1.max(price);
        b.2 = b.2.min(price);
        b.3 = price;
        b.4 += qty;
        b.5 += 1;
    };
    for f in itch::frames(&bytes) {
        let (_, m) = f.unwrap();
        match itch::decode(m).unwrap() {
            Message::StockDirectory(d) => {
                names.insert(d.header.stock_locate, String::from_utf8(itch::trim_alpha(d.stock).to_vec()).unwrap());
            }
            Message::AddOrder(a) => {
                orders.insert(a.order_ref, (a.header.stock_locate, a.price.to_price().0, a.shares as i64));
            }
            Message::OrderExecuted(e) => {
                let o = orders.get_mut(&e.order_ref).unwrap();
                o.2 -= e.executed_shares as i64;
                let (locate, price) = (o.0, o.1);
                trade(&names, locate, e.header.timestamp, price, e.executed_shares as i64);
            }
            Message::OrderExecutedWithPrice(c) => {
                let o = orders.get_mut(&c.order_ref).unwrap();
                o.2 -= c.executed_shares as i64;
                let locate = o.0;
                if c.printable == b'Y' {
                    let p = c.execution_price.to_price().0;
                    trade(&names, locate, c.header.timestamp, p, c.executed_shares as i64);
                }
            }
            Message::OrderReplace(u) => {
                let o = orders.remove(&u.original_ref).unwrap();
                orders.insert(u.new_ref, (o.0, u.price.to_price().0, u.shares as i64));
            }
            Message::Trade(p) if p.shares > 0 => {
                trade(&names, p.header.stock_locate, p.header.timestamp, p.price.to_price().0, p.shares as i64)
            }
            Message::CrossTrade(q) if q.shares > 0 => {
                trade(&names, q.header.stock_locate, q.header.timestamp, q.cross_price.to_price().0, q.shares as i64)
            }
            _ => {}
        }
    }
    bars
}

fn read_bars(path: &Path) -> BTreeMap<(String, i64), Bar> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = BTreeMap::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let bar = (
            fixed9(f[3]) as i64,
            fixed9(f[4]) as i64,
            fixed9(f[5]) as i64,
            fixed9(f[6]) as i64,
            int(f[7]),
            int(f[8]) as u64,
        );
        assert!(out.insert((f[0].to_string(), int(f[1])), bar).is_none(), "a window written twice: {line}");
    }
    out
}

#[test]
fn a_feed_file_makes_the_bars_of_its_trades() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (feed, _) = gen_feed(d, "day.itch", &[]);
    let out = d.join("out");
    common::run_config(d, "job.toml", &job(&format!("path = {}", toml_path(&feed)), &out));
    let want = reference(&feed);
    assert!(want.len() > 100, "{} bars", want.len());
    assert_eq!(read_bars(&out.join("bars.csv")), want);
    // Spreads of a book that is never crossed: positive, one row per minute with quotes.
    let spread = std::fs::read_to_string(out.join("spread.csv")).unwrap();
    assert!(spread.lines().count() > 100);
    for line in spread.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        assert!(fixed9(f[3]) > 0 && fixed9(f[3]) <= fixed9(f[4]), "{line}");
    }
    assert_eq!(std::fs::read_to_string(out.join("rejects.csv")).unwrap().lines().count(), 1, "no rejects");
}

#[test]
fn a_gzip_feed_gives_what_the_plain_one_gives() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (plain, _) = gen_feed(d, "day.itch", &[]);
    // A gzip file with a plain name: recognised by its magic bytes.
    let (gz, _) = gen_feed(d, "day-gz.itch", &["--gzip"]);
    assert_ne!(std::fs::read(&plain).unwrap(), std::fs::read(&gz).unwrap());
    for (f, o) in [(&plain, "a"), (&gz, "b")] {
        common::run_config(d, &format!("{o}.toml"), &job(&format!("path = {}", toml_path(f)), &d.join(o)));
    }
    for s in ["bars.csv", "spread.csv"] {
        assert_eq!(std::fs::read(d.join("a").join(s)).unwrap(), std::fs::read(d.join("b").join(s)).unwrap(), "{s}");
    }
}

/// The number just before `what` in itch-gen's summary ("… N faults (U unknown type, R unknown reference …").
fn count_before(summary: &str, what: &str) -> u64 {
    let at = summary.find(what).unwrap_or_else(|| panic!("no `{what}` in {summary}"));
    summary[..at].rsplit(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()
}

#[test]
fn feed_faults_are_counted_and_rejected_with_their_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (feed, summary) = gen_feed(d, "faulty.itch", &["--faults", "0.002"]);
    // "… N faults (U unknown type, R unknown reference, O overfill) …"
    let count = |what: &str| count_before(&summary, what);
    let (unknown_ref, overfill) = (count(" unknown reference"), count(" overfill"));
    assert!(unknown_ref > 10 && overfill > 10, "{summary}");
    let out = d.join("out");
    let o = common::run_config(d, "job.toml", &job(&format!("path = {}", toml_path(&feed)), &out));
    let rejects = std::fs::read_to_string(out.join("rejects.csv")).unwrap();
    let rows: Vec<&str> = rejects.lines().skip(1).collect();
    assert_eq!(rows.len() as u64, unknown_ref + overfill, "{}", common::stderr(&o));
    assert_eq!(rows.iter().filter(|r| r.contains("is not in the book")).count() as u64, unknown_ref);
    assert!(rows.iter().all(|r| r.contains(",bad ITCH message,") && r.contains("offset ")), "{rows:?}");
}

/// Runs the job of `source` (a `listen` source) while `ticklane itch-send FEED send...` sends to it, once the
/// source has logged that it is listening; returns the job's log (and the sender's), after checking it exited 0.
fn live_run(d: &Path, source: &str, out: &str, feed: &Path, send: &[&str]) -> String {
    live_run_sent(d, source, out, feed, send).0
}

fn live_run_sent(d: &Path, source: &str, out: &str, feed: &Path, send: &[&str]) -> (String, String) {
    let cfg = d.join(format!("{out}.toml"));
    std::fs::write(&cfg, job(source, &d.join(out))).unwrap();
    let mut live = std::process::Command::new(common::bin())
        .args(["run", "--config", cfg.to_str().unwrap()])
        .current_dir(d)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Send only once the socket is bound (the source logs it), and keep reading the log meanwhile.
    let (bound_tx, bound_rx) = std::sync::mpsc::channel();
    let stderr = live.stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut all = String::new();
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("listening for MoldUDP64") {
                let _ = bound_tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    bound_rx.recv_timeout(std::time::Duration::from_secs(30)).expect("the source never said it was listening");
    let mut args = vec!["itch-send", feed.to_str().unwrap()];
    args.extend_from_slice(send);
    let sent = common::stderr(&common::ticklane_ok(&args, d));
    // The job ends at the session's end-of-session packet; one that never comes (nothing arrived) fails here.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        if let Some(status) = live.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > until {
            let _ = live.kill();
            let _ = live.wait();
            panic!("the job did not end within 60 s of the feed's end: {}", log.join().unwrap());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let stderr = log.join().unwrap();
    assert!(status.success(), "{stderr}");
    (stderr, sent)
}

/// The bars and spread windows of two runs' output directories are the same bytes.
fn assert_same_output(d: &Path, a: &str, b: &str, log: &str) {
    for s in ["bars.csv", "spread.csv"] {
        let (x, y) = (std::fs::read(d.join(a).join(s)).unwrap(), std::fs::read(d.join(b).join(s)).unwrap());
        assert!(x.len() > 100, "{s} of {a} is almost empty: {log}");
        assert_eq!(x, y, "{s}: {log}");
    }
}

#[test]
fn the_same_feed_over_moldudp64_gives_the_same_bars() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (feed, _) = gen_feed(d, "day.itch", &[]);
    common::run_config(d, "file.toml", &job(&format!("path = {}", toml_path(&feed)), &d.join("file")));
    let port = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let to = format!("127.0.0.1:{port}");
    let log = live_run(d, &format!("listen = \"{to}\""), "live", &feed, &["--to", &to, "--rate", "150000"]);
    assert_same_output(d, "file", "live", &log);
    // The end-of-run report has the feed's counters, the transport's among them: nothing lost on loopback.
    let report = log.lines().find(|l| l.trim_start().starts_with("feed feed: ")).expect("a feed line");
    assert!(report.contains("messages in ") && report.contains(" packets, "), "{report}");
    for zero in ["gaps 0,", "missing 0,", "duplicates 0,", "crossed 0,", "unknown_reference 0,"] {
        assert!(report.contains(zero), "{zero}: {report}");
    }
}

#[test]
fn a_live_feeds_gaps_are_in_the_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (feed, _) = gen_feed(d, "day.itch", &[]);
    let port = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let to = format!("127.0.0.1:{port}");
    let send = ["--to", &to, "--rate", "150000", "--drop-ppm", "20000", "--seed", "5"];
    let (log, sent) = live_run_sent(d, &format!("listen = \"{to}\""), "lossy", &feed, &send);
    // itch-send: "dropped N packets (M messages)"; the job's summary: "feed feed: … gaps G, missing M, …".
    let after = |text: &str, key: &str| -> u64 {
        let i = text.find(key).unwrap_or_else(|| panic!("no `{key}` in {text}")) + key.len();
        text[i..].split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()
    };
    let dropped_packets = after(&sent, "dropped ");
    let dropped_messages = after(&sent, "packets (");
    assert!(dropped_packets > 0, "{sent}");
    let plain = strip_ansi(&log);
    let report = plain.lines().find(|l| l.trim_start().starts_with("feed feed: ")).expect("a feed line");
    let gaps = after(report, "gaps ");
    let missing = after(report, "missing ");
    assert!((1..=dropped_packets).contains(&gaps), "{gaps} gaps for {dropped_packets} packets dropped: {plain}");
    // The kernel may drop a datagram too, if the job falls far behind: then more is missing than was dropped.
    if after(&plain, "kernel_drops=") == 0 {
        assert_eq!(missing, dropped_messages, "{sent}\n{plain}");
    } else {
        assert!(missing > dropped_messages, "{sent}\n{plain}");
    }
}

/// `s` without the colour escapes of the log (ESC `[` … `m`).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().find(|&c| c == 'm');
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether multicast to `group` on the loopback interface reaches a member on this host: a heartbeat sent
/// by the library's sender to a receiver joined on 127.0.0.1. `Err` says why not.
fn loopback_multicast_works(group: std::net::Ipv4Addr) -> Result<(), String> {
    use ticklane::moldudp64::{Receiver, ReceiverConfig, Sender, SenderConfig, Session};
    let lo = std::net::Ipv4Addr::LOCALHOST;
    let mut rc = ReceiverConfig::new(std::net::SocketAddr::from((group, 0)));
    rc.group = Some(group);
    rc.interface = lo;
    let mut rx = Receiver::bind(&rc).map_err(|e| e.to_string())?;
    let mut sc = SenderConfig::new(Session::new("PROBE").unwrap());
    sc.multicast_interface = Some(lo);
    sc.multicast_loop = true;
    let mut tx = Sender::new(sc, rx.local_addr()).map_err(|e| e.to_string())?;
    let until = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while std::time::Instant::now() < until {
        tx.heartbeat().map_err(|e| e.to_string())?;
        std::thread::sleep(std::time::Duration::from_millis(20));
        if rx.recv().map_err(|e| e.to_string())?.is_some() {
            return Ok(());
        }
    }
    Err(format!("nothing sent to {group} on 127.0.0.1 arrived in 2 s"))
}

#[test]
fn the_same_feed_over_loopback_multicast_gives_the_same_bars() {
    // A group of the organisation-local scope (239.255/16), unique to this test's process, so parallel runs
    // of the suite do not hear each other.
    let pid = std::process::id();
    let group = std::net::Ipv4Addr::new(239, 255, (pid >> 8) as u8, pid as u8);
    if let Err(why) = loopback_multicast_works(group) {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("multicast on the loopback interface does not work here: {why}");
        }
        eprintln!(
            "skipped: multicast on the loopback interface does not work here ({why}); it needs a kernel that loops \
             multicast back to members on 127.0.0.1 (`ip link set lo multicast on` may help)"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (feed, _) = gen_feed(d, "day.itch", &[]);
    common::run_config(d, "file.toml", &job(&format!("path = {}", toml_path(&feed)), &d.join("file")));
    let port = std::net::UdpSocket::bind("0.0.0.0:0").unwrap().local_addr().unwrap().port();
    let to = format!("{group}:{port}");
    let source = format!("listen = \"{to}\"\ngroup = \"{group}\"\ninterface = \"127.0.0.1\"");
    let send = ["--to", &to, "--rate", "150000", "--interface", "127.0.0.1", "--multicast-loop"];
    let log = live_run(d, &source, "multicast", &feed, &send);
    let plain = strip_ansi(&log);
    assert!(plain.contains("messages=150000 gaps=0 missing=0"), "{plain}");
    assert_same_output(d, "file", "multicast", &log);
}

#[test]
fn itch_options_are_checked_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bad = |source: &str| -> String {
        let cfg = d.join("bad.toml");
        std::fs::write(&cfg, job(source, &d.join("out"))).unwrap();
        let o = common::ticklane(&["check", "--config", cfg.to_str().unwrap()], d);
        assert!(!o.status.success());
        common::stderr(&o)
    };
    let e = bad("path = \"x.itch\"\nlisten = \"127.0.0.1:5000\"");
    assert!(e.contains("source[0].path") && e.contains("listen"), "{e}");
    let e = bad("path = \"x.itch\"\ntrades = [\"E\", \"X\"]");
    assert!(e.contains("source[0].trades[1]"), "{e}");
    let e = bad("path = \"x.itch\"\ntime_zone = \"Mars/Olympus\"");
    assert!(e.contains("source[0].time_zone"), "{e}");
    let e = bad("listen = \"127.0.0.1:5000\"\ngroup = \"10.0.0.1\"");
    assert!(e.contains("source[0].group") && e.contains("multicast"), "{e}");
    let e = bad("listen = \"127.0.0.1:5000\"\nrecv_buffer = 100");
    assert!(e.contains("source[0].recv_buffer") && e.contains("4096"), "{e}");
    let e = bad("listen = \"127.0.0.1:5000\"\nschedule = { start = 5, rate = 0 }");
    assert!(e.contains("source[0].schedule.rate"), "{e}");
    let e = bad("listen = \"127.0.0.1:5000\"\nschedule = { start = 5, rate = 10, every = 3 }");
    assert!(e.contains("every"), "{e}");
    let e = bad("path = \"x.itch\"\nschedule = { start = 5, rate = 10 }");
    assert!(e.contains("source[0].schedule") && e.contains("listen"), "{e}");
    // Checkpoints: a live source is refused by its key, a file source is not.
    let with_checkpoints = |source: &str| {
        let cfg = d.join("chk.toml");
        let toml = format!("{}\n[checkpoint]\ndir = {}\n", job(source, &d.join("out")), toml_path(&d.join("chk")));
        std::fs::write(&cfg, toml).unwrap();
        common::ticklane(&["check", "--config", cfg.to_str().unwrap()], d)
    };
    let o = with_checkpoints("listen = \"127.0.0.1:5000\"");
    let e = common::stderr(&o);
    assert!(!o.status.success() && e.contains("source[0].listen") && e.contains("re-request"), "{e}");
    let o = with_checkpoints("path = \"x.itch\"");
    assert!(!common::stderr(&o).contains("checkpoint"), "{}", common::stderr(&o));
}

#[test]
fn the_book_command_prints_the_levels_a_plain_replay_gives() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (feed, _) = gen_feed(d, "day.itch", &[]);
    let cfg = d.join("job.toml");
    std::fs::write(&cfg, job(&format!("path = {}", toml_path(&feed)), &d.join("out"))).unwrap();
    // The reference: every order of the first stock by reference, replayed to 11:00 local time.
    let clock = SessionClock::new(DATE, itch::DEFAULT_TZ).unwrap();
    let at = clock.local_time(11, 0, 0).unwrap();
    let bytes = std::fs::read(&feed).unwrap();
    let (mut symbol, mut locate) = (String::new(), 0);
    let mut orders: HashMap<u64, (bool, i64, i64)> = HashMap::new();
    for f in itch::frames(&bytes) {
        let m = itch::decode(f.unwrap().1).unwrap();
        if m.timestamp().is_some_and(|t| t > at) {
            break;
        }
        if let Message::StockDirectory(s) = &m {
            if symbol.is_empty() {
                symbol = String::from_utf8(itch::trim_alpha(s.stock).to_vec()).unwrap();
                locate = s.header.stock_locate;
            }
        }
        if m.stock_locate() != Some(locate) {
            continue;
        }
        let mut take = |r: u64, n: i64| {
            let o = orders.get_mut(&r).unwrap();
            o.2 -= n;
            if o.2 <= 0 {
                orders.remove(&r);
            }
        };
        match m {
            Message::AddOrder(a) => {
                orders.insert(a.order_ref, (a.side == b'B', a.price.to_price().0, a.shares as i64));
            }
            Message::OrderExecuted(e) => take(e.order_ref, e.executed_shares as i64),
            Message::OrderExecutedWithPrice(e) => take(e.order_ref, e.executed_shares as i64),
            Message::OrderCancel(c) => take(c.order_ref, c.cancelled_shares as i64),
            Message::OrderDelete(x) => {
                orders.remove(&x.order_ref);
            }
            Message::OrderReplace(u) => {
                let (bid, _, _) = orders.remove(&u.original_ref).unwrap();
                orders.insert(u.new_ref, (bid, u.price.to_price().0, u.shares as i64));
            }
            _ => {}
        }
    }
    let mut levels: BTreeMap<(bool, i64), (i64, u32)> = BTreeMap::new();
    for &(bid, price, shares) in orders.values() {
        let l = levels.entry((bid, price)).or_default();
        l.0 += shares;
        l.1 += 1;
    }
    let asks: Vec<_> = levels.range((false, i64::MIN)..=(false, i64::MAX)).take(3).collect();
    let bids: Vec<_> = levels.range((true, i64::MIN)..=(true, i64::MAX)).rev().take(3).collect();
    let o = common::ticklane_ok(
        &["book", "--config", cfg.to_str().unwrap(), "--symbol", &symbol, "--at", "11:00:00", "--levels", "3"],
        d,
    );
    let out = common::stdout(&o);
    let printed: Vec<(bool, i64, i64, u32)> = out
        .lines()
        .filter(|l| l.ends_with(" bid") || l.ends_with(" ask"))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[3] == "bid", fixed9(f[2]) as i64, int(f[1]), int(f[0]) as u32)
        })
        .collect();
    let want: Vec<(bool, i64, i64, u32)> =
        asks.iter().rev().chain(bids.iter()).map(|(&(b, p), &(s, n))| (b, p, s, n)).collect();
    assert_eq!(printed.len(), 6, "{out}");
    assert_eq!(printed, want, "{out}");
    assert!(out.contains(&format!("{} orders", orders.len())), "{out}");
}

/// Runs `toml` in this process and returns its outcome (the metrics of every source and stage).
fn run_in_process(toml: &str) -> ticklane::pipeline::RunOutcome {
    let plan = ticklane::config::parse(toml, "job.toml").unwrap_or_else(|e| panic!("{e}"));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    ticklane::pipeline::run(&plan, stop).expect("the job runs")
}

/// The feed counters of the job's only source.
fn feed_counts(o: &ticklane::pipeline::RunOutcome) -> HashMap<&'static str, u64> {
    let f = o.metrics.sources[0].feed.as_ref().expect("an itch source has feed metrics");
    f.read().iter().map(|(c, v)| (c.name(), *v)).collect()
}

#[test]
fn the_faults_of_a_generated_feed_are_in_its_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (feed, summary) = gen_feed(d, "faulty.itch", &["--faults", "0.002"]);
    // "…: N messages, … N faults (U unknown type, R unknown reference, O overfill) …"
    let count = |what: &str| count_before(&summary, what);
    let o = run_in_process(&job(&format!("path = {}", toml_path(&feed)), &d.join("out")));
    let c = feed_counts(&o);
    assert_eq!(c["messages"], count(" messages,"), "{summary}");
    assert!(count(" unknown type") > 10, "{summary}");
    assert_eq!(c["unknown_types"], count(" unknown type"), "{summary}");
    assert_eq!(c["unknown_reference"], count(" unknown reference"), "{summary}");
    assert_eq!(c["over_executions"], count(" overfill"), "{summary}");
    assert_eq!(c["live_orders"], count(" live orders at the end"), "{summary}");
    for none in
        ["truncated", "framing_errors", "no_directory", "duplicate_reference", "invalid_orders", "crossed", "locked"]
    {
        assert_eq!(c[none], 0, "{none}: {c:?}");
    }
    // A file has no packets.
    assert_eq!(c["packets"] + c["gaps"] + c["sessions"], 0);
    let rejects = o.metrics.sources[0].rejects.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(rejects, c["unknown_reference"] + c["over_executions"]);
    assert_eq!(o.metrics.feed_anomalies(), c["unknown_types"] + c["unknown_reference"] + c["over_executions"]);
}

/// ITCH messages built one by one, framed as a sample file.
struct Wire {
    bytes: Vec<u8>,
    ts: u64,
}

impl Wire {
    fn new() -> Wire {
        // 10:00 local time.
        Wire { bytes: Vec::new(), ts: 36_000_000_000_000 }
    }

    fn header(&mut self, locate: u16) -> itch::Header {
        self.ts += 1_000;
        itch::Header { stock_locate: locate, tracking_number: 0, timestamp: self.ts }
    }

    fn push(&mut self, m: Message<'_>) -> &mut Wire {
        itch::encode_framed(&m, &mut self.bytes);
        self
    }

    fn directory(&mut self, locate: u16, stock: &'static [u8; 8]) -> &mut Wire {
        let header = self.header(locate);
        self.push(Message::StockDirectory(itch::StockDirectory {
            header,
            stock,
            market_category: b'Q',
            financial_status: b'N',
            round_lot_size: 100,
            round_lots_only: b'N',
            issue_classification: b'C',
            issue_sub_type: b"Z ",
            authenticity: b'P',
            short_sale_threshold: b'N',
            ipo_flag: b'N',
            luld_tier: b'1',
            etp_flag: b'N',
            etp_leverage_factor: 0,
            inverse_indicator: b'N',
        }))
    }

    fn add(&mut self, locate: u16, r: u64, side: u8, shares: u32, price: u32) -> &mut Wire {
        let header = self.header(locate);
        self.push(Message::AddOrder(itch::AddOrder {
            header,
            order_ref: r,
            side,
            shares,
            stock: b"AAA     ",
            price: itch::Price4(price),
            attribution: None,
        }))
    }

    fn execute(&mut self, r: u64, shares: u32) -> &mut Wire {
        let header = self.header(1);
        self.push(Message::OrderExecuted(itch::OrderExecuted {
            header,
            order_ref: r,
            executed_shares: shares,
            match_number: r,
        }))
    }

    fn execute_at(&mut self, r: u64, shares: u32, price: u32, printable: u8) -> &mut Wire {
        let header = self.header(1);
        self.push(Message::OrderExecutedWithPrice(itch::OrderExecutedWithPrice {
            header,
            order_ref: r,
            executed_shares: shares,
            match_number: r,
            printable,
            execution_price: itch::Price4(price),
        }))
    }

    fn cancel(&mut self, r: u64, shares: u32) -> &mut Wire {
        let header = self.header(1);
        self.push(Message::OrderCancel(itch::OrderCancel { header, order_ref: r, cancelled_shares: shares }))
    }

    fn delete(&mut self, r: u64) -> &mut Wire {
        let header = self.header(1);
        self.push(Message::OrderDelete(itch::OrderDelete { header, order_ref: r }))
    }

    fn replace(&mut self, old: u64, new: u64, shares: u32, price: u32) -> &mut Wire {
        let header = self.header(1);
        self.push(Message::OrderReplace(itch::OrderReplace {
            header,
            original_ref: old,
            new_ref: new,
            shares,
            price: itch::Price4(price),
        }))
    }

    fn non_cross(&mut self, locate: u16, shares: u32, price: u32) -> &mut Wire {
        let header = self.header(locate);
        self.push(Message::Trade(itch::Trade {
            header,
            order_ref: 0,
            side: b'B',
            shares,
            stock: b"AAA     ",
            price: itch::Price4(price),
            match_number: 7,
        }))
    }

    fn cross(&mut self, locate: u16, shares: u64, price: u32) -> &mut Wire {
        let header = self.header(locate);
        self.push(Message::CrossTrade(itch::CrossTrade {
            header,
            shares,
            stock: b"AAA     ",
            cross_price: itch::Price4(price),
            match_number: 8,
            cross_type: b'O',
        }))
    }

    /// Raw bytes as one frame.
    fn raw(&mut self, m: &[u8]) -> &mut Wire {
        self.bytes.extend_from_slice(&(m.len() as u16).to_be_bytes());
        self.bytes.extend_from_slice(m);
        self
    }
}

fn metrics_job(feed: &Path) -> String {
    common::itch_source(DATE, &format!("path = {}", toml_path(feed)))
}

#[test]
fn book_anomalies_of_hand_built_messages_are_counted_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let feed = dir.path().join("hand.itch");
    let mut w = Wire::new();
    w.directory(1, b"AAA     ")
        .add(1, 1, b'B', 100, 10_0000)
        .add(1, 2, b'S', 100, 10_0100)
        // Locked, then crossed twice over (counted once), then locked again on the way back, then normal.
        .add(1, 3, b'B', 100, 10_0100)
        .add(1, 4, b'B', 100, 10_0200)
        .add(1, 5, b'B', 50, 10_0300)
        .delete(5)
        .delete(4)
        .delete(3)
        // A live reference added again, and replaced onto another live one.
        .add(1, 1, b'B', 100, 10_0000)
        .replace(1, 2, 100, 10_0000)
        // Unknown references, one per operation.
        .execute(99, 10)
        .execute_at(98, 10, 10_0000, b'Y')
        .cancel(97, 10)
        .delete(96)
        .replace(95, 200, 10, 10_0000)
        // A negative size: an execution of 150 of 100 shares, a cancel of 20 of 10.
        .execute(1, 150)
        .add(1, 6, b'S', 10, 10_0500)
        .cancel(6, 20)
        // Zero shares.
        .add(1, 7, b'B', 0, 10_0000)
        // A stock locate without a directory message: an add and a trade.
        .add(2, 8, b'B', 100, 10_0000)
        .non_cross(2, 100, 10_0000)
        .cross(1, 500, 10_0000);
    // A type ITCH 5.0 does not define, and an execution cut short.
    w.raw(&[b'z', 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 42]).raw(&[b'E', 0, 1, 0, 0, 0, 0, 0, 0, 0]);
    std::fs::write(&feed, &w.bytes).unwrap();
    let o = run_in_process(&metrics_job(&feed));
    let c = feed_counts(&o);
    let want: HashMap<&str, u64> = [
        ("messages", 25),
        ("unknown_types", 1),
        ("truncated", 1),
        ("framing_errors", 0),
        ("no_directory", 2),
        ("unknown_reference", 5),
        ("duplicate_reference", 2),
        ("invalid_orders", 1),
        ("over_executions", 2),
        ("crossed", 1),
        ("locked", 2),
        ("live_orders", 1),
    ]
    .into_iter()
    .collect();
    for (k, v) in &want {
        assert_eq!(c[k], *v, "{k}: {c:?}");
    }
    // Every refusal and negative size is a reject; a crossed or locked book and an unknown type are not.
    let rejects = o.metrics.sources[0].rejects.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(rejects, 1 + 2 + 5 + 2 + 2 + 1);
}

#[test]
fn trades_are_flagged_by_the_message_they_come_from() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let feed = d.join("kinds.itch");
    let mut w = Wire::new();
    w.directory(1, b"AAA     ")
        .add(1, 1, b'B', 500, 10_0000)
        .add(1, 2, b'S', 500, 10_0100)
        .execute(1, 100)
        .execute_at(2, 200, 10_0050, b'Y')
        // Not printable: no trade (its shares are printed later, in bulk).
        .execute_at(2, 50, 10_0050, b'N')
        .non_cross(1, 300, 10_0040)
        .cross(1, 1_000, 10_0060);
    std::fs::write(&feed, &w.bytes).unwrap();
    let out = d.join("ticks.csv");
    let toml = format!(
        "{}\n[[continuous]]\nname = \"ticks\"\n[[sink]]\nstream = \"ticks\"\ntype = \"csv\"\npath = {}\n",
        metrics_job(&feed),
        toml_path(&out)
    );
    common::run_config(d, "job.toml", &toml);
    let t = common::Table::read(&out);
    let (kind, price, qty, side) = (t.col("trade_kind"), t.col("price"), t.col("qty"), t.col("side"));
    let got: Vec<(&str, &str, &str, &str)> =
        t.rows.iter().map(|r| (r[kind].as_str(), r[price].as_str(), r[qty].as_str(), r[side].as_str())).collect();
    assert_eq!(
        got,
        [
            // E at the resting bid's price: a sell hit it.
            ("execution", "10", "100", "S"),
            // C at its own price, against the resting ask: a buy.
            ("execution_with_price", "10.005", "200", "B"),
            ("non_cross", "10.004", "300", ""),
            ("cross", "10.006", "1000", ""),
        ]
    );
}

#[test]
fn the_stock_directory_feeds_the_reference_data() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let feed = d.join("dir.itch");
    let mut w = Wire::new();
    w.directory(1, b"AAA     ").add(1, 1, b'B', 100, 10_0000);
    // A second listing with other codes, built field by field.
    let header = w.header(7);
    w.push(Message::StockDirectory(itch::StockDirectory {
        header,
        stock: b"QQQX    ",
        market_category: b'G',
        financial_status: b'D',
        round_lot_size: 10,
        round_lots_only: b'Y',
        issue_classification: b'Q',
        issue_sub_type: b"ET",
        authenticity: b'T',
        short_sale_threshold: b'Y',
        ipo_flag: b' ',
        luld_tier: b'2',
        etp_flag: b'Y',
        etp_leverage_factor: 3,
        inverse_indicator: b'Y',
    }));
    std::fs::write(&feed, &w.bytes).unwrap();
    let o = run_in_process(&metrics_job(&feed));
    let directory = o.directories[0].as_ref().expect("an itch source keeps a directory");
    assert_eq!(directory.len(), 2);
    let listings: HashMap<String, ticklane::refdata::Listing> =
        directory.iter().map(|(_, l)| (String::from_utf8(l.symbol().to_vec()).unwrap(), l)).collect();
    let q = listings["QQQX"];
    assert_eq!(
        (q.market_category, q.financial_status, q.round_lot_size, q.round_lots_only, q.issue_classification),
        (b'G', b'D', 10, b'Y', b'Q')
    );
    assert_eq!((q.issue_sub_type, q.authenticity, q.short_sale_threshold, q.ipo_flag), (*b"ET", b'T', b'Y', b' '));
    assert_eq!((q.luld_tier, q.etp_flag, q.etp_leverage_factor, q.inverse), (b'2', b'Y', 3, b'Y'));
    assert_eq!((listings["AAA"].market_category, listings["AAA"].round_lot_size), (b'Q', 100));

    // The listing command prints both, the filter one.
    let f = feed.to_str().unwrap();
    let out = common::stdout(&common::ticklane_ok(&["itch-directory", f], d));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[1].split_whitespace().take(3).eq(["1", "AAA", "market_category=Q"]), "{out}");
    assert!(
        lines[2].ends_with(
            "7 QQQX     market_category=G financial_status=D round_lot=10 round_lots_only=Y issue_classification=Q \
             issue_sub_type=ET authenticity=T short_sale_threshold=Y ipo=- luld_tier=2 etp=Y etp_leverage=3 inverse=Y"
        ),
        "{out}"
    );
    let one = common::stdout(&common::ticklane_ok(&["itch-directory", f, "--symbol", "QQQX"], d));
    assert_eq!(one.lines().count(), 2, "{one}");
    let none = common::ticklane(&["itch-directory", f, "--symbol", "ZZZ"], d);
    assert!(!none.status.success() && common::stderr(&none).contains("no stock directory message for `ZZZ`"));

    // The book command prints the instrument's listing.
    let cfg = d.join("job.toml");
    std::fs::write(&cfg, metrics_job(&feed)).unwrap();
    let book =
        common::ticklane_ok(&["book", "--config", cfg.to_str().unwrap(), "--symbol", "AAA", "--at", "11:00:00"], d);
    let book = common::stdout(&book);
    assert!(book.lines().any(|l| l.starts_with("directory: locate 1 market_category=Q ")), "{book}");
}

#[test]
fn a_generated_feed_lists_every_stock() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (feed, _) = gen_feed(d, "day.itch", &[]);
    let out = common::stdout(&common::ticklane_ok(&["itch-directory", feed.to_str().unwrap()], d));
    let symbols: Vec<&str> = out.lines().skip(1).map(|l| l.split_whitespace().nth(1).unwrap()).collect();
    assert_eq!(symbols.len(), 6, "{out}");
    let o = run_in_process(&job(&format!("path = {}", toml_path(&feed)), &d.join("out")));
    let listed: Vec<String> = o.directories[0]
        .as_ref()
        .unwrap()
        .iter()
        .map(|(_, l)| String::from_utf8(l.symbol().to_vec()).unwrap())
        .collect();
    assert_eq!(listed, symbols, "listed by instrument id, in the order the feed named them");
}
