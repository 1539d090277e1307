//! The postgres sink: a window stream's rows into a PostgreSQL (or TimescaleDB) table. The emitter encodes
//! rows in COPY text format into reused buffers; a writer thread of the sink COPYs each batch into a
//! temporary table and upserts it into the target by the window key in one transaction, so rows written
//! again after a restore replace themselves instead of doubling. docs/operations.md describes it.

use super::batch::{Backend, Batcher, Credentials, Failure, Policy};
use super::{Encoder, Sink};
use crate::checkpoint::manifest::SinkPosition;
use crate::config::{Format, PostgresPlan, SinkPlan, StreamDef};
use crate::record::{Record, RejectRow};
use crate::sink::stats;
use crate::sink::Column;
use crate::symbols::SymbolCache;
use crate::time::{format_duration, TimeUnit};
use postgres::{Client, NoTls};
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The position kind a postgres sink records in checkpoints: what it writes after a restore replaces
/// what it wrote before (upserts by key), so nothing is cut back.
pub const POSITION_KIND: &str = "upsert";

/// Bytes a buffer starts with per row of its batch (it grows if rows are longer).
const ROW_BYTES: usize = 160;
/// The first wait before retrying a database that is down at the start.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The temporary table each batch is COPY'd into (one per connection).
const STAGING: &str = "pg_temp.ticklane_staging";

/// A window stream into a PostgreSQL table (see the module's opening line).
pub struct PostgresSink {
    enc: Encoder,
    batch: Batcher,
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

/// A database error as the batching sees it: transient ones (the database down, the connection lost, the
/// server shutting down) are retried, the others stop the job.
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
        return if transient { Failure::Retry(msg) } else { Failure::Refused(msg) };
    }
    // No server error: the connection could not be made or was lost.
    Failure::Retry(e.to_string())
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

/// The writer thread's side: a connection (made again after it is lost) and the statements.
struct PgWriter {
    cfg: postgres::Config,
    client: Option<Client>,
    sql: Statements,
    create: bool,
    target: String,
}

impl PgWriter {
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
            return Err(Failure::Refused(format!(
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
            return Err(Failure::Refused(format!(
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
            return Err(Failure::Refused(format!(
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

    /// Connects and checks the table before the job starts, retrying while the database is down, until it
    /// answers or the job is stopped (`stop`).
    fn start(&mut self, stream: &str, max_backoff: Duration, stop: &AtomicBool) -> io::Result<()> {
        let mut backoff = FIRST_BACKOFF;
        let since = Instant::now();
        loop {
            let msg = match self.connect(true) {
                Ok(_) => {
                    if since.elapsed() > FIRST_BACKOFF {
                        tracing::info!(target = %self.target, table = %self.sql.shown, "postgres sink connected after {}",
                            format_duration(since.elapsed().as_nanos() as i64));
                    }
                    return Ok(());
                }
                Err(Failure::Refused(msg)) => msg,
                Err(Failure::Retry(msg)) => {
                    tracing::warn!(stream, target = %self.target, table = %self.sql.shown, error = %msg,
                        retry_in_ms = backoff.as_millis() as u64, "postgres write failed; retrying (cannot connect at the start)");
                    let wake = Instant::now() + backoff;
                    while Instant::now() < wake {
                        if stop.load(Ordering::Relaxed) {
                            return Err(io::Error::other(format!(
                                "postgres sink of stream `{stream}`: stopped while waiting for {} to answer ({msg})",
                                self.target
                            )));
                        }
                        std::thread::sleep((wake - Instant::now()).min(Duration::from_millis(50)));
                    }
                    backoff = (backoff * 2).min(max_backoff);
                    continue;
                }
            };
            return Err(io::Error::other(format!(
                "postgres sink of stream `{stream}`, table `{}` at {}: {msg}",
                self.sql.shown, self.target
            )));
        }
    }
}

impl Backend for PgWriter {
    /// One transaction: COPY the batches into the staging table, upsert them into the target.
    fn write(&mut self, bufs: &[&[u8]]) -> Result<(), Failure> {
        let (copy, upsert) = (self.sql.copy.clone(), self.sql.upsert.clone());
        let c = self.connect(false)?;
        let mut tx = c.transaction().map_err(classify)?;
        let mut w = tx.copy_in(&copy).map_err(classify)?;
        for b in bufs {
            // A write error means the connection is gone: finish() reports it.
            if w.write_all(b).is_err() {
                break;
            }
        }
        w.finish().map_err(classify)?;
        tx.batch_execute(&upsert).map_err(classify)?;
        tx.commit().map_err(classify)
    }

    fn reset(&mut self) {
        self.client = None;
    }

    /// A new user or password: the next write connects with them (the connection open so far is closed).
    fn set_credentials(&mut self, c: &Credentials) {
        if let Some(u) = &c.user {
            self.cfg.user(u);
        }
        if let Some(p) = &c.password {
            self.cfg.password(p);
        }
        self.client = None;
    }
}

impl PostgresSink {
    /// Connects (waiting, with backoff, while the database is down, until it answers or `stop` is set),
    /// checks or creates the table, and starts the writer thread. `index`: the sink's place in the config.
    pub fn open(plan: &SinkPlan, def: &StreamDef, index: usize, stop: &AtomicBool) -> io::Result<PostgresSink> {
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
        let max_backoff = Duration::from_nanos(p.max_backoff.0 as u64);
        let mut w = PgWriter { cfg, client: None, create: p.create, target: target.clone(), sql };
        w.start(&def.name, max_backoff, stop)?;
        let policy = Policy {
            kind: "postgres",
            stream: def.name.clone(),
            target: format!("{target}, table `{}`", w.sql.shown),
            index,
            // `queue` batches with the writer, one being filled.
            buffers: p.queue + 1,
            buffer_bytes: p.batch_rows.min(1 << 16) * ROW_BYTES,
            batch_rows: p.batch_rows as u64,
            batch_time: p.batch_time.0 as u64,
            retry_max: max_backoff,
            drop_after: p.drop_after.map(|d| Duration::from_nanos(d.0 as u64)),
            shutdown_timeout: Duration::from_nanos(p.shutdown_timeout.0 as u64),
        };
        let batch = Batcher::start(w, policy, stats::register("postgres", &def.name))?;
        // Timestamps go into bigint columns as ns since the epoch, whatever unit the stream's files use.
        let enc = Encoder { format: Format::Csv, columns: plan.columns.clone(), unit: TimeUnit::Nanos };
        Ok(PostgresSink { enc, batch, what })
    }
}

impl Sink for PostgresSink {
    #[inline]
    fn write(&mut self, rec: &Record, syms: &mut SymbolCache) -> io::Result<()> {
        self.enc.encode_copy(rec, syms, self.batch.buf());
        self.batch.added()
    }

    fn write_reject(&mut self, _rej: &RejectRow) -> io::Result<()> {
        Err(io::Error::other("a postgres sink takes window streams only"))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.batch.flush()
    }

    fn sync(&mut self) -> io::Result<()> {
        self.batch.drain()
    }

    fn checkpoint(&mut self, _id: u64) -> io::Result<SinkPosition> {
        self.batch.drain()?;
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
        self.batch.finish()
    }

    fn watch_stop(&mut self, stop: Arc<AtomicBool>) {
        self.batch.watch_stop(stop);
    }

    fn describe(&self) -> String {
        self.what.clone()
    }
}
