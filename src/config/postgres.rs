//! The `[sink.postgres]` table of a postgres sink (TOML types and their validation into a plan).

use super::plan::{StreamDef, StreamKind};
use super::{EmitterMode, SinkConfig, SinkType};
use crate::sink::Column;
use crate::time::Dur;
use serde::Deserialize;
use std::collections::BTreeMap;

/// `[sink.postgres]`: where a postgres sink writes and how it batches (docs/operations.md, "PostgreSQL and
/// TimescaleDB sink").
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// A libpq connection string: `postgresql://user@host:port/dbname` or `host=… port=… user=… dbname=…`.
    pub connect: String,
    /// The name of an environment variable holding the password (read when the sink starts); overrides a
    /// password in `connect`.
    pub password_env: Option<String>,
    /// The table: `name` or `schema.name`.
    pub table: String,
    /// Create the table (and its unique key) if it does not exist.
    #[serde(default)]
    pub create: bool,
    /// Table column names for record columns, e.g. `{ symbol = "instrument" }` (default: the record
    /// column's own name).
    #[serde(default)]
    pub names: BTreeMap<String, String>,
    /// Rows per COPY batch.
    #[serde(default = "batch_rows")]
    pub batch_rows: usize,
    /// The longest a row waits for its batch to fill before the batch is written anyway.
    #[serde(default = "batch_time")]
    pub batch_time: Dur,
    /// Batches handed to the writer thread and not written yet, at most; beyond, the emitter waits.
    #[serde(default = "queue")]
    pub queue: usize,
    /// The longest wait between two attempts to reach a database that is down (the wait doubles from
    /// 100 ms up to this).
    #[serde(default = "max_backoff")]
    pub max_backoff: Dur,
    /// Drop (and count) a batch that could not be written for this long because the database was down.
    /// Default: never drop; wait for the database.
    pub drop_after: Option<Dur>,
    /// At a stop (signal or end of input), how long rows not yet written are still retried; then they are
    /// dropped, counted, and the job exits with an error.
    #[serde(default = "shutdown_timeout")]
    pub shutdown_timeout: Dur,
}

fn batch_rows() -> usize {
    10_000
}
fn batch_time() -> Dur {
    Dur(100_000_000)
}
fn queue() -> usize {
    4
}
fn max_backoff() -> Dur {
    Dur(5_000_000_000)
}
fn shutdown_timeout() -> Dur {
    Dur(30_000_000_000)
}

/// A validated postgres sink.
#[derive(Debug, Clone, PartialEq)]
pub struct PostgresPlan {
    pub connect: String,
    pub password_env: Option<String>,
    /// Schema (if given) and table name, unquoted.
    pub schema: Option<String>,
    pub table: String,
    pub create: bool,
    /// The table column of each of the sink's columns, in the sink's column order.
    pub names: Vec<String>,
    pub batch_rows: usize,
    pub batch_time: Dur,
    pub queue: usize,
    pub max_backoff: Dur,
    pub drop_after: Option<Dur>,
    pub shutdown_timeout: Dur,
}

/// The record columns that key a row: replays upsert onto them.
pub const KEY: [Column; 4] = [Column::Symbol, Column::WindowStart, Column::WindowEnd, Column::Fire];

/// A name PostgreSQL takes without quoting trouble: a letter or `_`, then letters, digits or `_`, at most 63
/// bytes (names are quoted in SQL, so case is kept).
fn identifier(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(f) if f.is_ascii_alphabetic() || f == '_')
        && c.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && s.len() <= 63
}

type Errors = Vec<(String, String)>;

/// The postgres part of sink `i` (which writes `columns` of stream `def`; the sinks are written by `emitter`),
/// or None: not a postgres sink, or errors.
pub(super) fn plan(
    i: usize,
    s: &SinkConfig,
    def: &StreamDef,
    columns: &[Column],
    emitter: EmitterMode,
    errs: &mut Errors,
) -> Option<PostgresPlan> {
    let k = |f: &str| format!("sink[{i}].{f}");
    if s.kind != SinkType::Postgres {
        if s.postgres.is_some() {
            errs.push((k("postgres"), "only applies to a postgres sink".into()));
        }
        return None;
    }
    for (f, set) in [("path", s.path.is_some()), ("format", s.format.is_some()), ("header", s.header.is_some())] {
        if set {
            errs.push((k(f), "a postgres sink writes to a table ([sink.postgres]), not a file".into()));
        }
    }
    let Some(p) = &s.postgres else {
        errs.push((k("type"), "a postgres sink needs a [sink.postgres] table with `connect` and `table`".into()));
        return None;
    };
    let n = errs.len();
    if emitter == EmitterMode::Inline {
        // The sink waits for its database when the writer thread is behind: on the shard thread, that wait
        // would stop the processing of events.
        errs.push((
            k("type"),
            "a postgres sink may wait for its database: it needs pipeline.emitter = \"thread\" (with \"inline\" \
             the shard worker would wait)"
                .into(),
        ));
    }
    if def.kind != StreamKind::Window {
        errs.push((
            k("stream"),
            format!(
                "stream `{}` has no window bounds (it is a per-trade, quote, level, late or rejects stream): a \
                 postgres sink upserts rows by (symbol, window_start, window_end, fire) and takes window streams only",
                def.name
            ),
        ));
    }
    if let Some(c) = KEY.iter().find(|c| def.kind == StreamKind::Window && !columns.contains(c)) {
        errs.push((
            k("columns"),
            format!(
                "a postgres sink needs the key columns symbol, window_start, window_end and fire; `{}` is missing",
                c.name()
            ),
        ));
    }
    if let Err(e) = p.connect.parse::<postgres::Config>() {
        errs.push((k("postgres.connect"), format!("not a PostgreSQL connection string: {e}")));
    }
    if let Some(v) = &p.password_env {
        if v.is_empty() || v.contains('=') || v.contains('\0') {
            errs.push((k("postgres.password_env"), "not an environment variable name".into()));
        }
    }
    let (schema, table) = match p.table.split_once('.') {
        Some((s, t)) => (Some(s.to_string()), t.to_string()),
        None => (None, p.table.clone()),
    };
    if !schema.as_deref().is_none_or(identifier) || !identifier(&table) {
        errs.push((
            k("postgres.table"),
            format!(
                "`{}` is not `name` or `schema.name` of letters, digits and `_` (not starting with a digit)",
                p.table
            ),
        ));
    }
    for (from, to) in &p.names {
        let key = format!("sink[{i}].postgres.names.{from}");
        match Column::parse(from, def.kind) {
            Ok(c) if !columns.contains(&c) => {
                errs.push((key.clone(), format!("`{from}` is not one of this sink's columns")))
            }
            Ok(_) => {}
            Err(e) => errs.push((key.clone(), e)),
        }
        if !identifier(to) {
            errs.push((key, format!("`{to}` is not a column name of letters, digits and `_`")));
        }
    }
    let names: Vec<String> =
        columns.iter().map(|c| p.names.get(c.name()).cloned().unwrap_or_else(|| c.name().to_string())).collect();
    for (j, a) in names.iter().enumerate() {
        if let Some(b) = names[..j].iter().find(|b| b.eq_ignore_ascii_case(a)) {
            errs.push((k("postgres.names"), format!("two columns would be named `{b}` in the table")));
        }
    }
    if p.batch_rows == 0 {
        errs.push((k("postgres.batch_rows"), "must be at least 1".into()));
    }
    if p.batch_time.0 <= 0 {
        errs.push((k("postgres.batch_time"), "must be positive".into()));
    }
    if p.queue == 0 {
        errs.push((k("postgres.queue"), "must be at least 1".into()));
    }
    if p.max_backoff.0 < 100_000_000 {
        errs.push((k("postgres.max_backoff"), "must be at least 100ms (the first wait)".into()));
    }
    if p.drop_after.is_some_and(|d| d.0 <= 0) {
        errs.push((k("postgres.drop_after"), "must be positive (leave it out to never drop)".into()));
    }
    if p.shutdown_timeout.0 < 0 {
        errs.push((k("postgres.shutdown_timeout"), "must not be negative".into()));
    }
    (errs.len() == n).then(|| PostgresPlan {
        connect: p.connect.clone(),
        password_env: p.password_env.clone(),
        schema,
        table,
        create: p.create,
        names,
        batch_rows: p.batch_rows,
        batch_time: p.batch_time,
        queue: p.queue,
        max_backoff: p.max_backoff,
        drop_after: p.drop_after,
        shutdown_timeout: p.shutdown_timeout,
    })
}
