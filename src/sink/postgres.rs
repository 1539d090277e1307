//! The postgres sink: a window stream's rows into a PostgreSQL (or TimescaleDB) table. The emitter encodes
//! rows in COPY text format into reused buffers; a writer thread of the sink COPYs each batch into a
//! temporary table and upserts it into the target by the window key in one transaction, so rows written
//! again after a restore replace themselves instead of doubling. docs/operations.md describes it.

use super::{Encoder, Sink};
use crate::checkpoint::manifest::SinkPosition;
use crate::config::{Format, PostgresPlan, SinkPlan, StreamDef};
use crate::record::{Record, RejectRow};
use crate::sink::stats::{self, SinkStats};
use crate::sink::Column;
use crate::symbols::SymbolCache;
use crate::time::TimeUnit;
use postgres::{Client, NoTls};
use std::io::{self, Write};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The position kind a postgres sink records in checkpoints: what it writes after a restore replaces
/// what it wrote before (upserts by key), so nothing is cut back.
pub const POSITION_KIND: &str = "upsert";

/// Bytes a buffer starts with per row of its batch (it grows if rows are longer).
const ROW_BYTES: usize = 160;
/// The first wait before retrying a database that is down.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The temporary table each batch is COPY'd into (one per connection).
const STAGING: &str = "pg_temp.ticklane_staging";

/// What the emitter hands the writer thread.
enum Msg {
    /// A buffer of COPY rows and how many.
    Rows(Vec<u8>, u64),
    /// Write everything handed over so far, then acknowledge.
    Sync,
}

/// A window stream into a PostgreSQL table (see the module's opening line).
pub struct PostgresSink {
    enc: Encoder,
    buf: Vec<u8>,
    rows: u64,
    batch_rows: u64,
    tx: Option<SyncSender<Msg>>,
    /// Empty buffers back from the writer: `queue` circulate, so an empty channel means the writer holds
    /// them all (the emitter waits).
    free: Receiver<Vec<u8>>,
    acks: Receiver<()>,
    writer: Option<JoinHandle<io::Result<()>>>,
    metrics: Arc<SinkStats>,
    what: String,
}

/// Where the sink writes, for logs and errors: `user@host:port/dbname`, never the password.
fn target(cfg: &postgres::Config) -> String {
    let host = match cfg.get_hosts().first() {
        Some(postgres::config::Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = cfg.get_ports().first().copied().unwrap_or(5432);
    let user = cfg.get_user().unwrap_or("");
    let db = cfg.get_dbname().unwrap_or(user);
    format!("{user}@{host}:{port}/{db}")
}

/// A double-quoted identifier (the plan allows only letters, digits and `_`, so no quote to double).
fn quoted(name: &str) -> String {
    format!("\"{name}\"")
}

/// The SQL type a record column gets when the sink creates the table.
fn sql_type(c: Column) -> &'static str {
    match c {
        Column::Symbol => "text",
        Column::Open
        | Column::High
        | Column::Low
        | Column::Close
        | Column::Vwap
        | Column::Twap
        | Column::Pv
        | Column::Price
        | Column::Ema => "numeric",
        Column::IsUpdate => "boolean",
        Column::Side | Column::TradeKind | Column::Reason | Column::Text => "text",
        _ => "bigint",
    }
}

/// An error of the writer or of the start-up checks: transient ones (the database down, the connection
/// lost, the server shutting down) are retried, the others stop the job.
enum Failure {
    Transient(String),
    Permanent(String),
}

fn classify(e: postgres::Error) -> Failure {
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        let transient = code.starts_with("08")
            || code.starts_with("53")
            || matches!(code, "57P01" | "57P02" | "57P03" | "40001" | "40P01");
        let mut msg = format!("{}: {} (SQLSTATE {code})", db.severity(), db.message());
        if let Some(d) = db.detail() {
            msg.push_str(&format!("; detail: {d}"));
        }
        if let Some(h) = db.hint() {
            msg.push_str(&format!("; hint: {h}"));
        }
        return if transient { Failure::Transient(msg) } else { Failure::Permanent(msg) };
    }
    // No server error: the connection could not be made or was lost.
    Failure::Transient(e.to_string())
}

/// The SQL of one sink, built once.
struct Statements {
    /// `"schema"."table"` or `"table"`.
    table: String,
    /// `schema.table` as written in the config, for messages.
    shown: String,
    columns: Vec<String>,
    key: Vec<String>,
    create: String,
    staging: String,
    copy: String,
    upsert: String,
}

impl Statements {
    fn new(p: &PostgresPlan, columns: &[Column]) -> Statements {
        let table = match &p.schema {
            Some(s) => format!("{}.{}", quoted(s), quoted(&p.table)),
            None => quoted(&p.table),
        };
        let shown = match &p.schema {
            Some(s) => format!("{s}.{}", p.table),
            None => p.table.clone(),
        };
        let cols: Vec<String> = p.names.iter().map(|n| quoted(n)).collect();
        let key: Vec<String> = crate::config::POSTGRES_KEY
            .iter()
            .map(|k| cols[columns.iter().position(|c| c == k).expect("the plan checks the key columns")].clone())
            .collect();
        let defs: Vec<String> = columns
            .iter()
            .zip(&cols)
            .map(|(c, n)| {
                let null = if key.contains(n) { " NOT NULL" } else { "" };
                format!("{n} {}{null}", sql_type(*c))
            })
            .collect();
        let create = format!("CREATE TABLE IF NOT EXISTS {table} ({}, UNIQUE ({}))", defs.join(", "), key.join(", "));
        let list = cols.join(", ");
        let staging = format!(
            "CREATE TEMP TABLE IF NOT EXISTS ticklane_staging ON COMMIT DELETE ROWS AS SELECT {list} FROM {table} WITH NO DATA"
        );
        let copy = format!("COPY {STAGING} ({list}) FROM STDIN");
        let rest: Vec<String> =
            cols.iter().filter(|c| !key.contains(c)).map(|c| format!("{c} = EXCLUDED.{c}")).collect();
        let action = if rest.is_empty() { "NOTHING".to_string() } else { format!("UPDATE SET {}", rest.join(", ")) };
        let upsert = format!(
            "INSERT INTO {table} ({list}) SELECT {list} FROM {STAGING} ON CONFLICT ({}) DO {action}",
            key.join(", ")
        );
        Statements { table, shown, columns: p.names.clone(), key, create, staging, copy, upsert }
    }
}

/// The writer thread's side: a connection (made again after it is lost), the statements, the policy.
struct Writer {
    cfg: postgres::Config,
    client: Option<Client>,
    sql: Statements,
    create: bool,
    target: String,
    stream: String,
    batch_rows: u64,
    batch_time: Duration,
    queue: usize,
    max_backoff: Duration,
    drop_after: Option<Duration>,
    /// Since when the database has been unreachable (None while writes succeed): an outage spans batches,
    /// so `drop_after` bounds it as a whole.
    down: Option<Instant>,
    metrics: Arc<SinkStats>,
}

impl Writer {
    fn permanent(&self, msg: String) -> io::Error {
        io::Error::other(format!(
            "postgres sink of stream `{}`, table `{}` at {}: {msg}",
            self.stream, self.sql.shown, self.target
        ))
    }

    /// A connection whose session has the staging table; the schema checks when `check`.
    fn connect(&mut self, check: bool) -> Result<&mut Client, Failure> {
        if self.client.as_ref().is_some_and(|c| c.is_closed()) {
            self.client = None;
        }
        if self.client.is_none() {
            let mut c = self.cfg.connect(NoTls).map_err(classify)?;
            if check {
                self.check(&mut c)?;
            }
            c.batch_execute(&self.sql.staging).map_err(classify)?;
            self.client = Some(c);
        }
        Ok(self.client.as_mut().expect("connected above"))
    }

    /// The table exists (or is created), has the sink's columns and a unique key on exactly the key columns.
    fn check(&self, c: &mut Client) -> Result<(), Failure> {
        let oid = |c: &mut Client| -> Result<Option<u32>, Failure> {
            let row = c.query_one("SELECT to_regclass($1::text)::oid", &[&self.sql.table]).map_err(classify)?;
            Ok(row.get::<_, Option<u32>>(0))
        };
        let mut id = oid(c)?;
        if id.is_none() && self.create {
            c.batch_execute(&self.sql.create).map_err(classify)?;
            tracing::info!(table = %self.sql.shown, target = %self.target, "created the postgres sink's table");
            id = oid(c)?;
        }
        let Some(id) = id else {
            return Err(Failure::Permanent(format!(
                "table `{}` does not exist (create it, or set create = true in [sink.postgres])",
                self.sql.shown
            )));
        };
        let have: Vec<String> = c
            .query(
                "SELECT attname::text FROM pg_attribute WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped",
                &[&id],
            )
            .map_err(classify)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let missing: Vec<&str> = self.sql.columns.iter().filter(|n| !have.contains(n)).map(String::as_str).collect();
        if !missing.is_empty() {
            return Err(Failure::Permanent(format!(
                "table `{}` has no column {} (it has {})",
                self.sql.shown,
                missing.join(", "),
                have.join(", ")
            )));
        }
        let mut key: Vec<String> = self.sql.key.iter().map(|k| k.trim_matches('"').to_string()).collect();
        key.sort();
        let unique: i64 = c
            .query_one(
                "SELECT count(*) FROM pg_index i WHERE i.indrelid = $1 AND i.indisunique AND i.indpred IS NULL \
                 AND i.indexprs IS NULL AND i.indnatts = $2 AND (SELECT array_agg(a.attname::text ORDER BY \
                 a.attname::text) FROM pg_attribute a WHERE a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)) \
                 = $3::text[]",
                &[&id, &(key.len() as i16), &key],
            )
            .map_err(classify)?
            .get(0);
        if unique == 0 {
            return Err(Failure::Permanent(format!(
                "table `{}` has no unique constraint on ({}), which replays upsert by: add it with \
                 ALTER TABLE {} ADD UNIQUE ({})",
                self.sql.shown,
                key.join(", "),
                self.sql.table,
                self.sql.key.join(", ")
            )));
        }
        Ok(())
    }

    /// One transaction: COPY the batches into the staging table, upsert them into the target.
    fn commit(&mut self, held: &[(Vec<u8>, u64)]) -> Result<(), Failure> {
        let (copy, upsert) = (self.sql.copy.clone(), self.sql.upsert.clone());
        let c = self.connect(false)?;
        let mut tx = c.transaction().map_err(classify)?;
        let mut w = tx.copy_in(&copy).map_err(classify)?;
        for (b, _) in held {
            // A write error means the connection is gone: finish() reports it.
            if w.write_all(b).is_err() {
                break;
            }
        }
        w.finish().map_err(classify)?;
        tx.batch_execute(&upsert).map_err(classify)?;
        tx.commit().map_err(classify)
    }

    /// Runs `op` until it succeeds or fails for good, with backoff while the database is down. `None` when the
    /// `rows` were dropped instead (`drop_after`).
    fn retrying<T>(&mut self, rows: u64, mut op: impl FnMut(&mut Self) -> Result<T, Failure>) -> io::Result<Option<T>> {
        let mut backoff = FIRST_BACKOFF;
        loop {
            match op(self) {
                Ok(v) => {
                    if let Some(t) = self.down.take() {
                        tracing::info!(target = %self.target, table = %self.sql.shown, down_for = ?t.elapsed(), "postgres sink reconnected");
                    }
                    return Ok(Some(v));
                }
                Err(Failure::Permanent(msg)) => return Err(self.permanent(msg)),
                Err(Failure::Transient(msg)) => {
                    self.client = None;
                    self.metrics.retries.fetch_add(1, Ordering::Relaxed);
                    let since = *self.down.get_or_insert_with(Instant::now);
                    if self.drop_after.is_some_and(|d| rows > 0 && since.elapsed() >= d) {
                        self.metrics.rows_dropped.fetch_add(rows, Ordering::Relaxed);
                        tracing::error!(target = %self.target, table = %self.sql.shown, rows, error = %msg, "postgres sink dropped a batch: the database was down for longer than drop_after");
                        return Ok(None);
                    }
                    tracing::warn!(target = %self.target, table = %self.sql.shown, error = %msg, retry_in = ?backoff, "postgres sink cannot write; retrying");
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(self.max_backoff);
                }
            }
        }
    }

    fn write(&mut self, held: &[(Vec<u8>, u64)]) -> io::Result<()> {
        let rows: u64 = held.iter().map(|h| h.1).sum();
        if self.retrying(rows, |w| w.commit(held))?.is_some() {
            self.metrics.rows_written.fetch_add(rows, Ordering::Relaxed);
        }
        Ok(())
    }

    /// The thread's loop: gathers what the emitter hands over into one transaction (until `batch_rows`, or
    /// `batch_time` after the first, or a sync, or every buffer is here), writes it, returns the buffers.
    fn run(mut self, rx: Receiver<Msg>, free: SyncSender<Vec<u8>>, acks: SyncSender<()>) -> io::Result<()> {
        let mut held: Vec<(Vec<u8>, u64)> = Vec::with_capacity(self.queue);
        loop {
            let Ok(first) = rx.recv() else {
                return Ok(());
            };
            let mut sync = false;
            match first {
                Msg::Sync => sync = true,
                Msg::Rows(b, n) => held.push((b, n)),
            }
            let deadline = Instant::now() + self.batch_time;
            let mut rows: u64 = held.iter().map(|h| h.1).sum();
            while !sync && rows < self.batch_rows && held.len() < self.queue {
                let left = deadline.saturating_duration_since(Instant::now());
                match rx.recv_timeout(left) {
                    Ok(Msg::Rows(b, n)) => {
                        rows += n;
                        held.push((b, n));
                    }
                    Ok(Msg::Sync) => sync = true,
                    Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
                }
            }
            if !held.is_empty() {
                self.write(&held)?;
            }
            // Written (or dropped): no longer queued.
            self.metrics.batches_queued.fetch_sub(held.len() as u64, Ordering::Relaxed);
            for (mut b, _) in held.drain(..) {
                b.clear();
                let _ = free.send(b);
            }
            if sync {
                let _ = acks.send(());
            }
        }
    }
}

impl PostgresSink {
    /// Connects (waiting, with backoff, while the database is down), checks or creates the table, and
    /// starts the writer thread.
    pub fn open(plan: &SinkPlan, def: &StreamDef) -> io::Result<PostgresSink> {
        let p = plan.postgres.as_ref().ok_or_else(|| io::Error::other("a postgres sink without [sink.postgres]"))?;
        let mut cfg: postgres::Config =
            p.connect.parse().map_err(|e| io::Error::other(format!("[sink.postgres] connect: {e}")))?;
        if let Some(var) = &p.password_env {
            let pw = std::env::var(var).map_err(|_| {
                io::Error::other(format!("[sink.postgres] password_env: environment variable `{var}` is not set"))
            })?;
            cfg.password(pw);
        }
        if cfg.get_connect_timeout().is_none() {
            cfg.connect_timeout(Duration::from_secs(5));
        }
        cfg.application_name("ticklane");
        let target = target(&cfg);
        let sql = Statements::new(p, &plan.columns);
        let what = format!("postgres table {} at {target}", sql.shown);
        let metrics = stats::register("postgres", &def.name);
        let mut w = Writer {
            cfg,
            client: None,
            sql,
            create: p.create,
            target,
            stream: def.name.clone(),
            batch_rows: p.batch_rows as u64,
            batch_time: Duration::from_nanos(p.batch_time.0 as u64),
            queue: p.queue,
            max_backoff: Duration::from_nanos(p.max_backoff.0 as u64),
            drop_after: p.drop_after.map(|d| Duration::from_nanos(d.0 as u64)),
            down: None,
            metrics: metrics.clone(),
        };
        w.retrying(0, |w| w.connect(true).map(|_| ()))?;
        let (tx, rx) = mpsc::sync_channel(p.queue + 1);
        let (free_tx, free) = mpsc::sync_channel(p.queue);
        for _ in 0..p.queue {
            let _ = free_tx.send(Vec::with_capacity(p.batch_rows.min(1 << 16) * ROW_BYTES));
        }
        let (ack_tx, acks) = mpsc::sync_channel(1);
        let writer =
            std::thread::Builder::new().name(format!("pg-{}", def.name)).spawn(move || w.run(rx, free_tx, ack_tx))?;
        // Timestamps go into bigint columns as ns since the epoch, whatever unit the stream's files use.
        let enc = Encoder { format: Format::Csv, columns: plan.columns.clone(), unit: TimeUnit::Nanos };
        Ok(PostgresSink {
            enc,
            buf: Vec::with_capacity(p.batch_rows.min(1 << 16) * ROW_BYTES),
            rows: 0,
            batch_rows: p.batch_rows as u64,
            tx: Some(tx),
            free,
            acks,
            writer: Some(writer),
            metrics,
            what,
        })
    }

    /// The writer thread has stopped: its error.
    fn failed(&mut self) -> io::Error {
        self.tx = None;
        match self.writer.take().map(|h| h.join()) {
            Some(Ok(Err(e))) => e,
            Some(Err(_)) => io::Error::other(format!("{}: its writer thread panicked", self.what)),
            _ => io::Error::other(format!("{}: its writer thread has stopped", self.what)),
        }
    }

    /// Hands the current buffer to the writer thread, waiting for an empty buffer to go on with if the writer
    /// holds them all (backpressure, counted as time blocked).
    fn hand_over(&mut self) -> io::Result<()> {
        if self.rows == 0 {
            return Ok(());
        }
        let next = match self.free.try_recv() {
            Ok(b) => b,
            Err(TryRecvError::Empty) => {
                let t = Instant::now();
                let b = self.free.recv();
                self.metrics.blocked_ns.fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
                match b {
                    Ok(b) => b,
                    Err(_) => return Err(self.failed()),
                }
            }
            Err(TryRecvError::Disconnected) => return Err(self.failed()),
        };
        let full = std::mem::replace(&mut self.buf, next);
        let n = std::mem::take(&mut self.rows);
        let sent = self.tx.as_ref().map(|tx| tx.send(Msg::Rows(full, n)));
        if !matches!(sent, Some(Ok(()))) {
            return Err(self.failed());
        }
        self.metrics.batches_queued.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Waits until the writer thread has committed everything handed over.
    fn drain(&mut self) -> io::Result<()> {
        self.hand_over()?;
        let sent = self.tx.as_ref().map(|tx| tx.send(Msg::Sync));
        if !matches!(sent, Some(Ok(()))) || self.acks.recv().is_err() {
            return Err(self.failed());
        }
        Ok(())
    }
}

impl Sink for PostgresSink {
    #[inline]
    fn write(&mut self, rec: &Record, syms: &mut SymbolCache) -> io::Result<()> {
        self.enc.encode_copy(rec, syms, &mut self.buf);
        self.rows += 1;
        if self.rows >= self.batch_rows {
            self.hand_over()?;
        }
        Ok(())
    }

    fn write_reject(&mut self, _rej: &RejectRow) -> io::Result<()> {
        Err(io::Error::other("a postgres sink takes window streams only"))
    }

    /// The emitter has nothing else to do: hand over what is here, waiting for an empty buffer if the writer
    /// holds them all (the emitter would not come back to rows left here before its next row).
    fn flush(&mut self) -> io::Result<()> {
        self.hand_over()
    }

    fn sync(&mut self) -> io::Result<()> {
        self.drain()
    }

    fn checkpoint(&mut self, _id: u64) -> io::Result<SinkPosition> {
        self.drain()?;
        Ok(SinkPosition {
            sink: self.what.clone(),
            kind: POSITION_KIND.into(),
            path: None,
            bytes: None,
            topic: None,
            end_offsets: Vec::new(),
            next_part: None,
            pending: Vec::new(),
        })
    }

    fn finish(&mut self, _ended: bool) -> io::Result<()> {
        self.drain()?;
        self.tx = None;
        match self.writer.take().map(|h| h.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(io::Error::other(format!("{}: its writer thread panicked", self.what))),
            None => Ok(()),
        }
    }

    fn describe(&self) -> String {
        self.what.clone()
    }
}
