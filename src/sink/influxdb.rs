//! The influxdb sink: results as InfluxDB line protocol, posted in batches to `/write` by a writer thread of
//! the sink, so that the emitter only encodes and a slow or absent database backpressures it through a
//! bounded queue of reused batch buffers.

use super::encode::Val;
use super::stats::{self, SinkStats};
use super::{Encoder, Sink};
use crate::checkpoint::manifest::SinkPosition;
use crate::config::{Format, InfluxAuth, InfluxPlan, SinkPlan, StreamDef};
use crate::event::{write_fixed, Price};
use crate::record::{Record, RejectRow};
use crate::sink::Column;
use crate::symbols::SymbolCache;
use crate::time::{format_duration, mono_now};
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Batch buffers per sink: one being filled by the emitter, the others queued or being written. When all
/// are with the writer thread the emitter waits (counted in `ticklane_sink_blocked_seconds_total`).
const BUFFERS: usize = 4;
/// Most batches the writer thread joins into one request when several are queued.
const JOIN: usize = BUFFERS - 1;
/// The first retry's delay; each next one doubles, up to `retry_max`.
const FIRST_RETRY: Duration = Duration::from_millis(100);

/// A full batch on its way to the writer thread.
struct Batch {
    buf: Vec<u8>,
    rows: u64,
}

/// A batch buffer back from the writer thread, with the error that stops the job if its write failed.
struct Done {
    buf: Vec<u8>,
    error: Option<String>,
}

/// What the emitter and the writer thread share besides the queue.
struct Shared {
    stats: Arc<SinkStats>,
    /// The job's stop flag (SIGINT/SIGTERM), once the pipeline has handed it over.
    stop: OnceLock<Arc<AtomicBool>>,
    /// `mono_now()` when `finish` began (0: not yet).
    finishing: AtomicU64,
}

/// Writes one stream's records to InfluxDB (or any server of its `/write` line protocol, such as QuestDB).
pub struct InfluxSink {
    enc: Encoder,
    /// The measurement, escaped for line protocol.
    measurement: Vec<u8>,
    /// Tags and fields with their escaped keys.
    tags: Vec<(Column, Vec<u8>)>,
    fields: Vec<(Column, Vec<u8>)>,
    time: Column,
    batch_rows: u64,
    batch_time: u64,
    buf: Vec<u8>,
    rows: u64,
    /// `mono_now()` at the batch's first row.
    first_at: u64,
    spare: Vec<Vec<u8>>,
    /// Buffers with the writer thread.
    out: usize,
    tx: Option<SyncSender<Batch>>,
    back: Receiver<Done>,
    shared: Arc<Shared>,
    what: String,
}

impl InfluxSink {
    /// Opens the sink of `plan` (an influxdb sink) for stream `def` and starts its writer thread; nothing is
    /// sent until the first batch (a database that is down at the start is retried like any other time).
    pub fn open(plan: &SinkPlan, def: &StreamDef) -> io::Result<InfluxSink> {
        let p = plan.influxdb.clone().ok_or_else(|| io::Error::other("an influxdb sink without [sink.influxdb]"))?;
        let what = format!("influxdb {}/write db={} measurement={}", p.url, p.database, p.measurement);
        let shared = Arc::new(Shared {
            stats: stats::register("influxdb", &def.name),
            stop: OnceLock::new(),
            finishing: AtomicU64::new(0),
        });
        let (tx, rx) = mpsc::sync_channel(BUFFERS);
        // Never full: there are only BUFFERS buffers.
        let (back_tx, back) = mpsc::sync_channel(BUFFERS);
        let writer = HttpWriter::new(&p, def.name.clone(), shared.clone())?;
        std::thread::Builder::new()
            .name(format!("influxdb-{}", def.name))
            .spawn(move || writer.run(rx, back_tx))
            .map_err(|e| io::Error::other(format!("starting the influxdb writer thread: {e}")))?;
        let keyed = |cols: &[Column]| cols.iter().map(|&c| (c, escaped(c.name().as_bytes(), b",= "))).collect();
        // About a line's worth per row; past the first batches the buffers keep what they grew to.
        let cap = (p.batch_rows * 160).min(64 << 20);
        Ok(InfluxSink {
            enc: Encoder { format: Format::Csv, columns: Vec::new(), unit: def.unit },
            measurement: escaped(p.measurement.as_bytes(), b", "),
            tags: keyed(&p.tags),
            fields: keyed(&p.fields),
            time: p.time,
            batch_rows: p.batch_rows as u64,
            batch_time: p.batch_time as u64,
            buf: Vec::with_capacity(cap),
            rows: 0,
            first_at: 0,
            spare: (1..BUFFERS).map(|_| Vec::with_capacity(cap)).collect(),
            out: 0,
            tx: Some(tx),
            back,
            shared,
            what,
        })
    }

    /// Appends `rec` as one line; false (nothing appended) when it has no field to write.
    fn encode(&self, rec: &Record, syms: &mut SymbolCache, out: &mut Vec<u8>) -> bool {
        let start = out.len();
        out.extend_from_slice(&self.measurement);
        for (c, key) in &self.tags {
            let mark = out.len();
            out.push(b',');
            out.extend_from_slice(key);
            out.push(b'=');
            let before = out.len();
            tag_value(&self.enc.value(*c, rec, syms), out);
            if out.len() == before {
                // An empty tag is no tag (InfluxDB refuses `k=`).
                out.truncate(mark);
            }
        }
        let mut sep = b' ';
        for (c, key) in &self.fields {
            let v = self.enc.value(*c, rec, syms);
            if matches!(v, Val::Null) {
                continue;
            }
            out.push(sep);
            sep = b',';
            out.extend_from_slice(key);
            out.push(b'=');
            field_value(&v, out);
        }
        if sep == b' ' {
            out.truncate(start);
            return false;
        }
        out.push(b' ');
        out.extend_from_slice(itoa::Buffer::new().format(time_ns(self.time, rec)).as_bytes());
        out.push(b'\n');
        true
    }

    /// Takes back the buffers the writer thread is done with; the first error among them fails the call.
    fn collect(&mut self, block: bool) -> io::Result<()> {
        let mut error = None;
        loop {
            let d = if block && self.spare.is_empty() {
                let t = mono_now();
                let d = self.back.recv();
                self.shared.stats.blocked_ns.fetch_add(mono_now() - t, Ordering::Relaxed);
                d
            } else {
                match self.back.try_recv() {
                    Ok(d) => Ok(d),
                    Err(_) => break,
                }
            };
            let Ok(mut d) = d else {
                return Err(io::Error::other(format!("{}: the writer thread has ended", self.what)));
            };
            self.out -= 1;
            d.buf.clear();
            self.spare.push(d.buf);
            error = error.or(d.error);
        }
        match error {
            Some(e) => Err(io::Error::other(e)),
            None => Ok(()),
        }
    }

    /// Hands the batch being filled to the writer thread, waiting for a free buffer if none is.
    fn hand_off(&mut self) -> io::Result<()> {
        if self.rows == 0 {
            return self.collect(false);
        }
        self.collect(true)?;
        let next = self.spare.pop().expect("collect(true) leaves a spare buffer");
        let buf = std::mem::replace(&mut self.buf, next);
        let rows = std::mem::take(&mut self.rows);
        self.shared.stats.batches_queued.fetch_add(1, Ordering::Relaxed);
        self.out += 1;
        let tx = self.tx.as_ref().expect("the queue lives until the sink is dropped");
        tx.send(Batch { buf, rows })
            .map_err(|_| io::Error::other(format!("{}: the writer thread has ended", self.what)))
    }

    /// Waits until the writer thread has written (or, as configured, dropped) every batch handed to it.
    fn drain(&mut self) -> io::Result<()> {
        self.hand_off()?;
        let mut first = None;
        while self.out > 0 {
            let Ok(mut d) = self.back.recv() else {
                return Err(io::Error::other(format!("{}: the writer thread has ended", self.what)));
            };
            self.out -= 1;
            d.buf.clear();
            self.spare.push(d.buf);
            if first.is_none() {
                first = d.error.map(io::Error::other);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

impl Drop for InfluxSink {
    fn drop(&mut self) {
        // Closing the queue ends the writer thread once it has written what it holds; not joined, so that a
        // job failing for another reason does not wait here for a database that is down.
        self.tx.take();
    }
}

impl Sink for InfluxSink {
    #[inline]
    fn write(&mut self, rec: &Record, syms: &mut SymbolCache) -> io::Result<()> {
        let mut buf = std::mem::take(&mut self.buf);
        let wrote = self.encode(rec, syms, &mut buf);
        self.buf = buf;
        if !wrote {
            self.shared.stats.rows_dropped.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        if self.rows == 0 {
            self.first_at = mono_now();
        }
        self.rows += 1;
        if self.rows >= self.batch_rows
            || (self.rows % 64 == 0 && mono_now().saturating_sub(self.first_at) >= self.batch_time)
        {
            self.hand_off()?;
        }
        Ok(())
    }

    fn write_reject(&mut self, _rej: &RejectRow) -> io::Result<()> {
        Err(io::Error::other("an influxdb sink does not take a rejects stream"))
    }

    /// The emitter has nothing waiting: the batch goes now, whatever its size, so that results show up —
    /// unless the writer holds every buffer (the database is slow or down). Then the rows stay in this one
    /// until a write fills it or the end of the run drains it: waiting here would keep the emitter from ever
    /// reaching the end of the run, where `shutdown_timeout` bounds an outage.
    fn flush(&mut self) -> io::Result<()> {
        self.collect(false)?;
        if self.rows > 0 && self.spare.is_empty() {
            return Ok(());
        }
        self.hand_off()
    }

    fn sync(&mut self) -> io::Result<()> {
        self.drain()
    }

    /// Everything before the barrier is written first. A restore re-emits the results after the checkpoint
    /// with the same measurement, tags and timestamps: InfluxDB overwrites those points with the same values.
    fn checkpoint(&mut self, _id: u64) -> io::Result<SinkPosition> {
        self.drain()?;
        Ok(SinkPosition {
            sink: self.what.clone(),
            kind: "overwrite".into(),
            path: None,
            bytes: None,
            topic: None,
            end_offsets: Vec::new(),
            next_part: None,
            pending: Vec::new(),
        })
    }

    fn finish(&mut self, _ended: bool) -> io::Result<()> {
        self.shared.finishing.store(mono_now(), Ordering::Relaxed);
        self.drain()
    }

    fn watch_stop(&mut self, stop: Arc<AtomicBool>) {
        let _ = self.shared.stop.set(stop);
    }

    fn describe(&self) -> String {
        self.what.clone()
    }
}

/// The point's timestamp: `time`'s value in ns (timestamp columns are never absent).
fn time_ns(time: Column, rec: &Record) -> i64 {
    match (rec, time) {
        (Record::Window(w), Column::WindowStart) => w.start,
        (Record::Window(w), Column::FirstTs) => w.bar.first.0,
        (Record::Window(w), Column::LastTs) => w.bar.last.0,
        (Record::Window(w), _) => w.end,
        (Record::Late(l), _) => l.trade.ts,
        (Record::Tick(t), _) => t.trade.ts,
        (Record::Trade(t), _) => t.ts,
        (Record::Quote(q), _) => q.ts,
        (Record::Level(l), _) => l.ts,
    }
}

/// `s` with a backslash before each byte of `special` (line protocol's escaping of names and tag values).
fn escaped(s: &[u8], special: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(s.len());
    escape_into(s, special, &mut v);
    v
}

fn escape_into(s: &[u8], special: &[u8], out: &mut Vec<u8>) {
    for &b in s {
        match b {
            // A line ends at a newline: none may be inside one.
            b'\n' | b'\r' => out.push(b' '),
            _ => {
                if special.contains(&b) {
                    out.push(b'\\');
                }
                out.push(b);
            }
        }
    }
}

fn tag_value(v: &Val<'_>, out: &mut Vec<u8>) {
    let mut b = itoa::Buffer::new();
    match v {
        Val::Int(i) => out.extend_from_slice(b.format(*i).as_bytes()),
        Val::Uint(u) => out.extend_from_slice(b.format(*u).as_bytes()),
        Val::Price(p) => p.write_to(out),
        Val::Fixed(f) => write_fixed(*f, Price::DECIMALS, out),
        Val::Str(s) => escape_into(s.as_bytes(), b",= \\", out),
        Val::Bytes(s) => escape_into(s, b",= \\", out),
        Val::Bool(t) => out.extend_from_slice(if *t { b"true" } else { b"false" }),
        Val::Null => {}
    }
}

/// Integers with `i`; prices and sums as their exact decimal text (InfluxDB keeps them as float64 fields).
fn field_value(v: &Val<'_>, out: &mut Vec<u8>) {
    let mut b = itoa::Buffer::new();
    match v {
        Val::Int(i) => {
            out.extend_from_slice(b.format(*i).as_bytes());
            out.push(b'i');
        }
        Val::Uint(u) => {
            out.extend_from_slice(b.format(*u).as_bytes());
            out.push(b'i');
        }
        Val::Price(p) => p.write_to(out),
        Val::Fixed(f) => write_fixed(*f, Price::DECIMALS, out),
        Val::Str(s) => string_field(s.as_bytes(), out),
        Val::Bytes(s) => string_field(s, out),
        Val::Bool(t) => out.extend_from_slice(if *t { b"true" } else { b"false" }),
        Val::Null => {}
    }
}

fn string_field(s: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    for &c in s {
        match c {
            b'"' | b'\\' => {
                out.push(b'\\');
                out.push(c);
            }
            b'\n' | b'\r' => out.push(b' '),
            _ => out.push(c),
        }
    }
    out.push(b'"');
}

/// Why a request failed.
enum Failure {
    /// The server is down, unreachable, overloaded or failing (5xx, 408, 429): tried again.
    Retry(String),
    /// The server refused the request (4xx: a bad line, a database that does not exist, no permission).
    Refused(String),
}

/// The writer thread's side: posts batches and retries them.
struct HttpWriter {
    agent: ureq::Agent,
    write_url: String,
    query_url: Option<(String, String)>,
    auth: Option<String>,
    stream: String,
    url: String,
    retry_max: Duration,
    drop_after: Option<Duration>,
    shutdown_timeout: Duration,
    shared: Arc<Shared>,
    /// Joined batches' body (when more than one is queued).
    body: Vec<u8>,
    /// When the stop flag was first seen set.
    stop_seen: Option<Instant>,
    /// When the writes began to fail, since the last that succeeded (None: the last one succeeded).
    failing_since: Option<Instant>,
}

fn nanos(ns: i64) -> Duration {
    Duration::from_nanos(ns.max(0) as u64)
}

/// `s` percent-encoded for a URL's query.
fn query_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

impl HttpWriter {
    fn new(p: &InfluxPlan, stream: String, shared: Arc<Shared>) -> io::Result<HttpWriter> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(nanos(p.timeout)))
            .build()
            .into();
        let db = query_escape(&p.database);
        let auth = p.auth.as_ref().map(|a| match a {
            InfluxAuth::Basic { user, password } => {
                use base64::Engine as _;
                let pair = format!("{user}:{password}");
                format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair))
            }
            InfluxAuth::Token(t) => format!("Token {t}"),
        });
        let query_url = p.create_database.then(|| {
            let name = p.database.replace('\\', "\\\\").replace('"', "\\\"");
            (format!("{}/query", p.url), format!("CREATE DATABASE \"{name}\""))
        });
        Ok(HttpWriter {
            agent,
            write_url: format!("{}/write?db={db}&precision=ns", p.url),
            query_url,
            auth,
            stream,
            url: p.url.clone(),
            retry_max: nanos(p.retry_max),
            drop_after: p.drop_after.map(nanos),
            shutdown_timeout: nanos(p.shutdown_timeout),
            shared,
            body: Vec::new(),
            stop_seen: None,
            failing_since: None,
        })
    }

    fn run(mut self, rx: Receiver<Batch>, back: SyncSender<Done>) {
        let mut held: Vec<Batch> = Vec::with_capacity(JOIN);
        while let Ok(first) = rx.recv() {
            held.push(first);
            while held.len() < JOIN {
                match rx.try_recv() {
                    Ok(b) => held.push(b),
                    Err(_) => break,
                }
            }
            let rows: u64 = held.iter().map(|b| b.rows).sum();
            let body = if held.len() == 1 {
                std::mem::take(&mut held[0].buf)
            } else {
                let mut body = std::mem::take(&mut self.body);
                body.clear();
                for b in &held {
                    body.extend_from_slice(&b.buf);
                }
                body
            };
            let mut error = self.deliver(&body, rows).err();
            if held.len() == 1 {
                held[0].buf = body;
            } else {
                self.body = body;
            }
            self.shared.stats.batches_queued.fetch_sub(held.len() as u64, Ordering::Relaxed);
            for b in held.drain(..) {
                let _ = back.send(Done { buf: b.buf, error: error.take() });
            }
        }
    }

    /// When retrying stops: `shutdown_timeout` after the job began to stop (a signal, or `finish`).
    fn give_up_at(&mut self) -> Option<Instant> {
        if self.stop_seen.is_none() {
            let stopped = self.shared.stop.get().is_some_and(|s| s.load(Ordering::Relaxed));
            if stopped || self.shared.finishing.load(Ordering::Relaxed) != 0 {
                self.stop_seen = Some(Instant::now());
            }
        }
        self.stop_seen.map(|t| t + self.shutdown_timeout)
    }

    /// Writes one body of `rows` rows, retrying as configured. Err: the job must stop, with this message.
    fn deliver(&mut self, body: &[u8], rows: u64) -> Result<(), String> {
        let mut delay = FIRST_RETRY;
        let mut attempt = 0u32;
        loop {
            let creating = self.query_url.clone();
            let result = match &creating {
                Some((url, q)) => self.post(url, Some(q), b""),
                None => self.post(&self.write_url, None, body),
            };
            let error = match result {
                Ok(()) if creating.is_some() => {
                    self.query_url = None;
                    continue;
                }
                Ok(()) => {
                    self.failing_since = None;
                    self.shared.stats.rows_written.fetch_add(rows, Ordering::Relaxed);
                    return Ok(());
                }
                Err(Failure::Refused(e)) => {
                    return Err(format!("stream `{}`: {} refused the write: {e}", self.stream, self.write_url));
                }
                Err(Failure::Retry(e)) => e,
            };
            attempt += 1;
            self.shared.stats.retries.fetch_add(1, Ordering::Relaxed);
            // drop_after bounds an outage as a whole: once writes have failed that long, each batch is tried
            // once and dropped if it fails too, so that the pipeline moves on instead of waiting per batch.
            let failing_since = *self.failing_since.get_or_insert_with(Instant::now);
            if let Some(limit) = self.drop_after.filter(|&d| failing_since.elapsed() >= d) {
                self.shared.stats.rows_dropped.fetch_add(rows, Ordering::Relaxed);
                tracing::error!(stream = %self.stream, url = %self.url, error = %e_short(&error), rows,
                    "influxdb write still failing after drop_after ({}): {rows} rows dropped", format_duration(limit.as_nanos() as i64));
                return Ok(());
            }
            let give_up = self.give_up_at();
            if give_up.is_some_and(|g| Instant::now() >= g) {
                self.shared.stats.rows_dropped.fetch_add(rows, Ordering::Relaxed);
                return Err(format!(
                    "stream `{}`: {rows} rows not written: {} still failing {} after the job began to stop ({error})",
                    self.stream,
                    self.url,
                    format_duration(self.shutdown_timeout.as_nanos() as i64)
                ));
            }
            tracing::warn!(stream = %self.stream, url = %self.url, error = %e_short(&error), attempt,
                retry_in_ms = delay.as_millis() as u64, "influxdb write failed; retrying");
            let wake = Instant::now() + delay;
            // In short naps, so that a stop during a long backoff is seen.
            while Instant::now() < wake {
                if self.give_up_at().is_some_and(|g| Instant::now() >= g) {
                    break;
                }
                std::thread::sleep((wake - Instant::now()).min(Duration::from_millis(50)));
            }
            delay = (delay * 2).min(self.retry_max);
        }
    }

    /// One request: a write of `body`, or the query `q`.
    fn post(&self, url: &str, q: Option<&str>, body: &[u8]) -> Result<(), Failure> {
        let mut req = self.agent.post(url);
        if let Some(a) = &self.auth {
            req = req.header("Authorization", a);
        }
        let resp = match q {
            Some(q) => req
                .header("Content-Type", "application/x-www-form-urlencoded")
                .send(format!("q={}", query_escape(q)).as_bytes()),
            None => req.header("Content-Type", "text/plain; charset=utf-8").send(body),
        };
        let mut resp = resp.map_err(|e| Failure::Retry(e.to_string()))?;
        let status = resp.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(());
        }
        let text = resp.body_mut().with_config().limit(4096).read_to_string().unwrap_or_default();
        // InfluxDB says why as {"error":"…"}.
        let why = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
            .unwrap_or(text);
        let msg = format!("HTTP {status}: {}", why.trim());
        if status >= 500 || status == 408 || status == 429 {
            Err(Failure::Retry(msg))
        } else {
            Err(Failure::Refused(msg))
        }
    }
}

/// An error's text on one line.
fn e_short(e: &str) -> String {
    e.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_values_are_escaped() {
        assert_eq!(escaped(b"a b,c=d", b",= "), b"a\\ b\\,c\\=d");
        let mut out = Vec::new();
        string_field(b"say \"hi\"\\", &mut out);
        assert_eq!(out, b"\"say \\\"hi\\\"\\\\\"");
        let mut out = Vec::new();
        field_value(&Val::Price(Price(12_345_000_000)), &mut out);
        field_value(&Val::Int(-3), &mut out);
        assert_eq!(out, b"12.345-3i");
        assert_eq!(query_escape("my db&x"), "my%20db%26x");
    }
}
