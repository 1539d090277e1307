//! Helpers shared by the integration tests: running the `ticklane` binary, reading its CSV outputs, exact
//! decimal parsing.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_ticklane")
}

/// Runs `ticklane ARGS` in `cwd` and returns what it did.
pub fn ticklane(args: &[&str], cwd: &Path) -> Output {
    Command::new(bin())
        .args(args)
        .current_dir(cwd)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin()))
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs `ticklane ARGS` and panics (showing stderr) unless it exits 0.
pub fn ticklane_ok(args: &[&str], cwd: &Path) -> Output {
    let o = ticklane(args, cwd);
    assert!(o.status.success(), "`ticklane {}` failed with {}:\nstderr:\n{}", args.join(" "), o.status, stderr(&o));
    o
}

/// Writes `toml` to `dir/name` and runs `ticklane run --config` on it; panics unless it exits 0.
pub fn run_config(dir: &Path, name: &str, toml: &str) -> Output {
    let cfg = dir.join(name);
    std::fs::write(&cfg, toml).expect("write config");
    let o = ticklane(&["run", "--config", cfg.to_str().expect("utf-8 path")], dir);
    assert!(
        o.status.success(),
        "`ticklane run --config {}` failed with {}:\nstderr:\n{}\nconfig:\n{toml}",
        cfg.display(),
        o.status,
        stderr(&o)
    );
    o
}

/// `ticklane gen --out DIR/NAME ARGS…`; returns the path written.
pub fn gen(dir: &Path, name: &str, args: &[&str]) -> PathBuf {
    let out = dir.join(name);
    let mut a = vec!["gen", "--out", out.to_str().expect("utf-8 path")];
    a.extend_from_slice(args);
    ticklane_ok(&a, dir);
    out
}

/// The head of a job over an itch source named `feed` on trade date `date`, its metrics kept quiet; `more` is the
/// rest of the source's table (`path = …` or `listen = …`, pacing).
pub fn itch_source(date: &str, more: &str) -> String {
    format!("[metrics]\nlive = false\nsummary = false\n[[source]]\nname = \"feed\"\ntype = \"itch\"\ndate = \"{date}\"\n{more}\n")
}

/// The windows the ITCH tests run over a feed's trades and quotes: 1-minute OHLCV bars and the 1-minute
/// low and high of the spread. Their sinks are the test's own.
pub const ITCH_WINDOWS: &str = r#"[[window]]
name = "bars"
type = "tumbling"
size = "1m"
aggregates = ["open", "high", "low", "close", "volume", "count"]
[[window]]
name = "spread"
type = "tumbling"
size = "1m"
value = "spread"
aggregates = ["low", "high", "count"]
"#;

/// A TOML string literal for a path.
pub fn toml_path(p: &Path) -> String {
    format!("{:?}", p.to_str().expect("utf-8 path"))
}

/// A CSV file with a header, whose fields contain no quotes or commas (ticklane's window, late and tick
/// streams of generated symbols).
#[derive(Debug, Clone)]
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn read(path: &Path) -> Table {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        Table::parse(&text, &path.display().to_string())
    }

    pub fn parse(text: &str, what: &str) -> Table {
        assert!(text.is_empty() || text.ends_with('\n'), "{what}: the last line is not terminated");
        let mut lines = text.lines();
        let header: Vec<String> = lines
            .next()
            .unwrap_or_else(|| panic!("{what}: empty file (no header)"))
            .split(',')
            .map(str::to_string)
            .collect();
        let rows: Vec<Vec<String>> = lines
            .enumerate()
            .map(|(i, l)| {
                let r: Vec<String> = l.split(',').map(str::to_string).collect();
                assert_eq!(
                    r.len(),
                    header.len(),
                    "{what}: line {} has {} fields, the header {}: {l}",
                    i + 2,
                    r.len(),
                    header.len()
                );
                r
            })
            .collect();
        Table { header, rows }
    }

    /// Index of column `name`; panics naming the columns there are.
    pub fn col(&self, name: &str) -> usize {
        self.header.iter().position(|h| h == name).unwrap_or_else(|| panic!("no column `{name}` in {:?}", self.header))
    }
}

/// A decimal (`12.25`, `-0.5`, `7`) as an exact integer scaled by 10⁹ (ticklane's raw price units).
pub fn fixed9(s: &str) -> i128 {
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    assert!(frac.len() <= 9, "`{s}` has more than 9 decimals");
    assert!(!int.is_empty() || !frac.is_empty(), "`{s}` is not a decimal");
    let int: i128 = if int.is_empty() { 0 } else { int.parse().unwrap_or_else(|e| panic!("`{s}`: {e}")) };
    let mut f: i128 = if frac.is_empty() { 0 } else { frac.parse().unwrap_or_else(|e| panic!("`{s}`: {e}")) };
    for _ in frac.len()..9 {
        f *= 10;
    }
    let v = int * 1_000_000_000 + f;
    if neg {
        -v
    } else {
        v
    }
}

pub fn int(s: &str) -> i64 {
    s.parse().unwrap_or_else(|e| panic!("`{s}` is not an integer: {e}"))
}

/// RFC 4180 records of a CSV file as bytes (quoted fields may hold commas, quotes and newlines).
pub fn csv_records(bytes: &[u8]) -> Vec<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut rec: Vec<Vec<u8>> = Vec::new();
    let mut field = Vec::new();
    let mut i = 0;
    let mut quoted = false;
    while i < bytes.len() {
        let c = bytes[i];
        if quoted {
            if c == b'"' {
                if bytes.get(i + 1) == Some(&b'"') {
                    field.push(b'"');
                    i += 1;
                } else {
                    quoted = false;
                }
            } else {
                field.push(c);
            }
        } else {
            match c {
                b'"' if field.is_empty() => quoted = true,
                b',' => rec.push(std::mem::take(&mut field)),
                b'\n' => {
                    rec.push(std::mem::take(&mut field));
                    out.push(std::mem::take(&mut rec));
                }
                _ => field.push(c),
            }
        }
        i += 1;
    }
    assert!(!quoted, "unterminated quoted field");
    if !field.is_empty() || !rec.is_empty() {
        rec.push(field);
        out.push(rec);
    }
    out
}

/// A `ticklane` child process whose stdout and stderr are collected by background threads (so a full pipe
/// never blocks it); killed (SIGKILL) if the test ends while it still runs.
pub struct Running {
    pub child: Child,
    out: Arc<Mutex<Vec<u8>>>,
    err: Arc<Mutex<Vec<u8>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

fn drain(mut from: impl std::io::Read + Send + 'static, into: Arc<Mutex<Vec<u8>>>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => into.lock().expect("pipe buffer").extend_from_slice(&buf[..n]),
            }
        }
    })
}

impl Running {
    /// Starts `ticklane ARGS` in `cwd`.
    pub fn start(args: &[&str], cwd: &Path) -> Running {
        Self::start_logging(args, cwd, "warn")
    }

    /// Starts `ticklane ARGS` in `cwd` with `RUST_LOG=log`.
    pub fn start_logging(args: &[&str], cwd: &Path, log: &str) -> Running {
        let mut child = Command::new(bin())
            .args(args)
            .current_dir(cwd)
            .env("RUST_LOG", log)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin()));
        let out = Arc::new(Mutex::new(Vec::new()));
        let err = Arc::new(Mutex::new(Vec::new()));
        let readers = vec![
            drain(child.stdout.take().expect("piped stdout"), out.clone()),
            drain(child.stderr.take().expect("piped stderr"), err.clone()),
        ];
        Running { child, out, err, readers }
    }

    /// What the process has written to stderr so far.
    pub fn stderr_so_far(&self) -> String {
        String::from_utf8_lossy(&self.err.lock().expect("pipe buffer")).into_owned()
    }

    /// Sends a signal (by the child's pid) with the `kill` command.
    pub fn signal(&self, sig: &str) {
        let st =
            Command::new("kill").args([&format!("-{sig}"), &self.child.id().to_string()]).status().expect("run kill");
        assert!(st.success(), "kill -{sig} {} failed", self.child.id());
    }

    /// Waits up to `limit` for the process to exit; `None` if it is still running.
    pub fn wait_for(&mut self, limit: Duration) -> Option<ExitStatus> {
        let t0 = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return Some(st);
            }
            if t0.elapsed() > limit {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stdout and stderr of an exited process.
    pub fn output(mut self) -> (String, String) {
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        let o = String::from_utf8_lossy(&self.out.lock().expect("pipe buffer")).into_owned();
        let e = String::from_utf8_lossy(&self.err.lock().expect("pipe buffer")).into_owned();
        (o, e)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Polls `cond` every 20 ms until it holds or `limit` passes; returns whether it held.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let t0 = Instant::now();
    loop {
        if cond() {
            return true;
        }
        if t0.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Number of complete lines in a file (0 if it does not exist yet).
pub fn complete_lines(path: &Path) -> usize {
    std::fs::read(path).map(|b| b.iter().filter(|&&c| c == b'\n').count()).unwrap_or(0)
}

/// A small deterministic generator of kill delays (xorshift; no rand dependency needed).
pub struct Delays(pub u64);

impl Delays {
    /// The next delay in `lo_ms..hi_ms`.
    pub fn next(&mut self, lo_ms: u64, hi_ms: u64) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        Duration::from_millis(lo_ms + self.0 % (hi_ms - lo_ms))
    }
}

/// A job that runs until stopped: a synthetic feed paced at 20,000 trades/s over 10 instruments into 100 ms
/// bars (null sink), two parking workers, a metrics interval of 200 ms and no live line. `metrics` adds keys
/// to `[metrics]`; `tables` adds tables (`[checkpoint]`, `[alerts]` …).
pub fn paced_job(metrics: &str, tables: &str) -> String {
    format!(
        r#"
[pipeline]
workers = 2
wait = "park"
[metrics]
interval = "200ms"
live = false
summary = false
{metrics}
{tables}
[[source]]
name = "trades"
type = "synthetic"
events = 100_000_000
rate = 20_000
instruments = 10
ts_unit = "ms"
[[window]]
name = "bars"
type = "tumbling"
size = "100ms"
aggregates = ["open", "close", "volume", "count"]
[[sink]]
stream = "bars"
type = "null"
"#
    )
}

/// The address a running job serves its metrics on, from its log line `metrics at http://ADDR/metrics`.
pub fn metrics_addr(r: &Running) -> Option<String> {
    metrics_addr_in(&r.stderr_so_far())
}

/// The address in a log's line `metrics at http://ADDR/metrics`.
pub fn metrics_addr_in(err: &str) -> Option<String> {
    let at = err.split("metrics at http://").nth(1)?;
    Some(at.split("/metrics").next()?.to_string())
}

/// GET `path` from `addr` over plain HTTP/1.1: (status, head, body).
pub fn http_get(addr: &str, path: &str) -> (u16, String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no header end: {raw}"));
    let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or_else(|| panic!("status: {head}"));
    (status, head.to_string(), body.to_string())
}
