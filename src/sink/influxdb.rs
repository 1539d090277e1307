//! The influxdb sink: results as InfluxDB line protocol, posted in batches to `/write` by a writer thread of
//! the sink, so that the emitter only encodes and a slow or absent database backpressures it through a
//! bounded queue of reused batch buffers.

use super::batch::{Backend, Batcher, Credentials, Failure, Policy};
use super::encode::Val;
use super::stats;
use super::{Encoder, Sink};
use crate::checkpoint::manifest::SinkPosition;
use crate::config::{Format, InfluxAuth, InfluxPlan, SinkPlan, StreamDef};
use crate::event::{write_fixed, Price};
use crate::record::{Record, RejectRow};
use crate::sink::Column;
use crate::symbols::SymbolCache;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Batch buffers per sink: one being filled by the emitter, the others queued or being written.
const BUFFERS: usize = 4;

/// Writes one stream's records to InfluxDB (or any server of its `/write` line protocol, such as QuestDB).
pub struct InfluxSink {
    lines: Lines,
    batch: Batcher,
    what: String,
}

/// How a record becomes one line of line protocol.
struct Lines {
    enc: Encoder,
    /// The measurement, escaped for line protocol.
    measurement: Vec<u8>,
    /// Tags and fields with their escaped keys.
    tags: Vec<(Column, Vec<u8>)>,
    fields: Vec<(Column, Vec<u8>)>,
    time: Column,
}

impl InfluxSink {
    /// Opens the sink of `plan` (an influxdb sink, `sink[index]`) for stream `def` and starts its writer
    /// thread; nothing is sent until the first batch (a database that is down at the start is retried like
    /// any other time).
    pub fn open(plan: &SinkPlan, def: &StreamDef, index: usize) -> io::Result<InfluxSink> {
        let p = plan.influxdb.clone().ok_or_else(|| io::Error::other("an influxdb sink without [sink.influxdb]"))?;
        let what = format!("influxdb {}/write db={} measurement={}", p.url, p.database, p.measurement);
        let keyed = |cols: &[Column]| cols.iter().map(|&c| (c, escaped(c.name().as_bytes(), b",= "))).collect();
        let policy = Policy {
            kind: "influxdb",
            stream: def.name.clone(),
            target: format!("{}/write?db={} measurement={}", p.url, query_escape(&p.database), p.measurement),
            index,
            buffers: BUFFERS,
            // About a line's worth per row; past the first batches the buffers keep what they grew to.
            buffer_bytes: (p.batch_rows * 160).min(64 << 20),
            batch_rows: p.batch_rows as u64,
            batch_time: p.batch_time as u64,
            retry_max: nanos(p.retry_max),
            drop_after: p.drop_after.map(nanos),
            shutdown_timeout: nanos(p.shutdown_timeout),
        };
        let batch = Batcher::start(HttpWriter::new(&p), policy, stats::register("influxdb", &def.name))?;
        Ok(InfluxSink {
            lines: Lines {
                enc: Encoder { format: Format::Csv, columns: Vec::new(), unit: def.unit },
                measurement: escaped(p.measurement.as_bytes(), b", "),
                tags: keyed(&p.tags),
                fields: keyed(&p.fields),
                time: p.time,
            },
            batch,
            what,
        })
    }
}

impl Lines {
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
}

impl Sink for InfluxSink {
    #[inline]
    fn write(&mut self, rec: &Record, syms: &mut SymbolCache) -> io::Result<()> {
        if !self.lines.encode(rec, syms, self.batch.buf()) {
            self.batch.stats().rows_dropped.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        self.batch.added()
    }

    fn write_reject(&mut self, _rej: &RejectRow) -> io::Result<()> {
        Err(io::Error::other("an influxdb sink does not take a rejects stream"))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.batch.flush()
    }

    fn sync(&mut self) -> io::Result<()> {
        self.batch.drain()
    }

    /// Everything before the barrier is written first. A restore re-emits the results after the checkpoint
    /// with the same measurement, tags and timestamps: InfluxDB overwrites those points with the same values.
    fn checkpoint(&mut self, _id: u64) -> io::Result<SinkPosition> {
        self.batch.drain()?;
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
        self.batch.finish()
    }

    fn watch_stop(&mut self, stop: Arc<AtomicBool>) {
        self.batch.watch_stop(stop);
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

/// The writer thread's side: posts batches to `/write`.
struct HttpWriter {
    agent: ureq::Agent,
    write_url: String,
    /// `CREATE DATABASE` (with `create_database`): its URL and query.
    query_url: Option<(String, String)>,
    /// Whether it has been sent (again after a write found no database).
    created: bool,
    auth: Option<String>,
    /// Joined batches' body (when more than one is queued).
    body: Vec<u8>,
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

/// The `Authorization` header of a user and password (HTTP Basic) or a token.
fn authorization(a: &InfluxAuth) -> String {
    match a {
        InfluxAuth::Basic { user, password } => {
            use base64::Engine as _;
            let pair = format!("{user}:{password}");
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair))
        }
        InfluxAuth::Token(t) => format!("Token {t}"),
    }
}

impl HttpWriter {
    fn new(p: &InfluxPlan) -> HttpWriter {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(nanos(p.timeout)))
            .build()
            .into();
        let db = query_escape(&p.database);
        let query_url = p.create_database.then(|| {
            let name = p.database.replace('\\', "\\\\").replace('"', "\\\"");
            (format!("{}/query", p.url), format!("CREATE DATABASE \"{name}\""))
        });
        HttpWriter {
            agent,
            write_url: format!("{}/write?db={db}&precision=ns", p.url),
            query_url,
            created: false,
            auth: p.auth.as_ref().map(authorization),
            body: Vec::new(),
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

impl Backend for HttpWriter {
    fn write(&mut self, bufs: &[&[u8]]) -> Result<(), Failure> {
        if let (Some((url, q)), false) = (&self.query_url, self.created) {
            self.post(url, Some(q), b"")?;
            self.created = true;
        }
        let r = if let [one] = bufs {
            self.post(&self.write_url, None, one)
        } else {
            let mut body = std::mem::take(&mut self.body);
            body.clear();
            for b in bufs {
                body.extend_from_slice(b);
            }
            let r = self.post(&self.write_url, None, &body);
            self.body = body;
            r
        };
        match r {
            // InfluxDB 1.x can answer a write with "database not found" right after its CREATE DATABASE said
            // yes (seen with two sinks creating one database at once): create it again and retry.
            Err(Failure::Refused(m)) if self.query_url.is_some() && m.contains("database not found") => {
                self.created = false;
                Err(Failure::Retry(m))
            }
            r => r,
        }
    }

    fn set_credentials(&mut self, c: &Credentials) {
        self.auth = match (&c.user, &c.password, &c.token) {
            (_, _, Some(t)) => Some(authorization(&InfluxAuth::Token(t.clone()))),
            (Some(u), Some(p), None) => {
                Some(authorization(&InfluxAuth::Basic { user: u.clone(), password: p.clone() }))
            }
            _ => None,
        };
    }
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
