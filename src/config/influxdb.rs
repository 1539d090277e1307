//! `[sink.influxdb]`: the TOML of an InfluxDB line-protocol sink, and its validation into an [`InfluxPlan`].

use super::plan::{StreamDef, StreamKind};
use crate::event::Nanos;
use crate::sink::Column;
use crate::time::Dur;
use serde::Deserialize;

/// `[sink.influxdb]` (or `influxdb = { … }`) of a `type = "influxdb"` sink. docs/configuration.md and
/// docs/operations.md ("InfluxDB sink") say what each key does.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InfluxConfig {
    /// The server's base URL, `http://HOST:PORT` (the sink posts to `URL/write`).
    pub url: String,
    pub database: String,
    /// Default: the stream's name.
    pub measurement: Option<String>,
    /// Columns written as tags. Default: `symbol` and `fire` for windows, `symbol` for the others.
    pub tags: Option<Vec<String>>,
    /// The column that is the point's timestamp. Default: `window_end` for windows, `ts` for the others.
    pub time: Option<String>,
    /// InfluxDB 1.x credentials (HTTP Basic); or `token` (`Authorization: Token …`), not both.
    pub user: Option<String>,
    pub password: Option<String>,
    pub token: Option<String>,
    /// `CREATE DATABASE` before the first write (InfluxDB 1.x; idempotent). Default false.
    pub create_database: Option<bool>,
    /// Rows per request at most (default 5000).
    pub batch_rows: Option<usize>,
    /// Longest a row waits in a batch that is not full while results keep coming (default 100ms).
    pub batch_time: Option<Dur>,
    /// One request's time limit, connection included (default 10s).
    pub timeout: Option<Dur>,
    /// Retries back off exponentially from 100 ms up to this (default 5s).
    pub retry_max: Option<Dur>,
    /// Once writes have failed for this long (no success between), each batch that fails is dropped and
    /// counted instead of retried, until one succeeds. Absent (default): never.
    pub drop_after: Option<Dur>,
    /// After a stop (a signal, or the input's end), how long rows not yet written are still retried before
    /// they are dropped, counted and the job exits with an error (default 30s).
    pub shutdown_timeout: Option<Dur>,
}

/// How requests authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InfluxAuth {
    Basic { user: String, password: String },
    Token(String),
}

/// A validated influxdb sink.
#[derive(Debug, Clone)]
pub struct InfluxPlan {
    /// Without a trailing `/`.
    pub url: String,
    pub database: String,
    pub measurement: String,
    pub tags: Vec<Column>,
    pub time: Column,
    /// The sink's columns less the tags and the time column.
    pub fields: Vec<Column>,
    pub auth: Option<InfluxAuth>,
    pub create_database: bool,
    pub batch_rows: usize,
    pub batch_time: Nanos,
    pub timeout: Nanos,
    pub retry_max: Nanos,
    pub drop_after: Option<Nanos>,
    pub shutdown_timeout: Nanos,
}

/// Columns that can be a point's timestamp (never absent, unlike `watermark`).
const TIME_COLUMNS: [Column; 5] = [Column::WindowEnd, Column::WindowStart, Column::FirstTs, Column::LastTs, Column::Ts];

/// Validates sink `i` (`s`, of stream `def`, writing `columns`); errors name `sink[i].influxdb.KEY`.
pub(super) fn plan(
    i: usize,
    s: &super::SinkConfig,
    def: &StreamDef,
    columns: &[Column],
    errs: &mut Vec<(String, String)>,
) -> Option<InfluxPlan> {
    let k = |f: &str| format!("sink[{i}].{f}");
    let ki = |f: &str| format!("sink[{i}].influxdb.{f}");
    if s.kind != super::SinkType::Influxdb {
        if s.influxdb.is_some() {
            errs.push((k("influxdb"), "only applies to an influxdb sink".into()));
        }
        return None;
    }
    for (f, set) in [("path", s.path.is_some()), ("header", s.header.is_some())] {
        if set {
            errs.push((
                k(f),
                "does not apply to an influxdb sink (it writes line protocol to [sink.influxdb] url)".into(),
            ));
        }
    }
    let Some(c) = &s.influxdb else {
        errs.push((k("influxdb"), "an influxdb sink needs a [sink.influxdb] table with url and database".into()));
        return None;
    };
    if def.kind == StreamKind::Reject {
        errs.push((k("stream"), format!("`{}` is a rejects stream: it has no time to write points at", def.name)));
        return None;
    }
    let url = c.url.trim_end_matches('/').to_string();
    match url.strip_prefix("http://") {
        Some(rest) if !rest.is_empty() => {}
        _ if url.starts_with("https://") => errs.push((
            ki("url"),
            "https is not supported: ticklane's HTTP client is built without TLS (use http:// to a local server \
             or a TLS-terminating proxy)"
                .into(),
        )),
        _ => errs.push((ki("url"), format!("`{}` is not an http://HOST:PORT URL", c.url))),
    }
    if c.database.is_empty() {
        errs.push((ki("database"), "must not be empty".into()));
    }
    let measurement = c.measurement.clone().unwrap_or_else(|| def.name.clone());
    if measurement.is_empty() || measurement.contains('\n') {
        errs.push((ki("measurement"), "must be a non-empty name on one line".into()));
    }
    let parse = |key: String, name: &str, errs: &mut Vec<(String, String)>| match Column::parse(name, def.kind) {
        Ok(col) => Some(col),
        Err(e) => {
            errs.push((key, e));
            None
        }
    };
    let window = def.kind == StreamKind::Window;
    let tags: Vec<Column> = match &c.tags {
        None if window => vec![Column::Symbol, Column::Fire],
        // A level is a series of its own: two levels changed at the same time stay two points.
        None if def.kind == StreamKind::Level => vec![Column::Symbol, Column::Side, Column::Price],
        None => vec![Column::Symbol],
        Some(names) => {
            let mut v = Vec::new();
            for (j, n) in names.iter().enumerate() {
                let Some(col) = parse(format!("sink[{i}].influxdb.tags[{j}]"), n, errs) else { continue };
                if v.contains(&col) {
                    errs.push((format!("sink[{i}].influxdb.tags[{j}]"), format!("`{n}` is listed twice")));
                }
                v.push(col);
            }
            v
        }
    };
    let time = match &c.time {
        None if window => Column::WindowEnd,
        None => Column::Ts,
        Some(n) => match parse(ki("time"), n, errs) {
            Some(col) if TIME_COLUMNS.contains(&col) => col,
            Some(_) => {
                let names: Vec<&str> =
                    TIME_COLUMNS.iter().filter(|c| Column::allowed(def.kind).contains(c)).map(|c| c.name()).collect();
                errs.push((ki("time"), format!("`{n}` is not a timestamp column (here: {})", names.join(", "))));
                Column::Ts
            }
            None => Column::Ts,
        },
    };
    if tags.contains(&time) {
        errs.push((ki("time"), format!("`{}` is also a tag", time.name())));
    }
    let fields: Vec<Column> = columns.iter().copied().filter(|c| !tags.contains(c) && *c != time).collect();
    if fields.is_empty() {
        errs.push((k("columns"), "no column is left to be a field once the tags and the time are taken".into()));
    }
    let auth = match (&c.user, &c.password, &c.token) {
        (None, None, None) => None,
        (Some(u), Some(p), None) => Some(InfluxAuth::Basic { user: u.clone(), password: p.clone() }),
        (None, None, Some(t)) => Some(InfluxAuth::Token(t.clone())),
        (_, _, Some(_)) => {
            errs.push((ki("token"), "give either user and password or a token, not both".into()));
            None
        }
        (Some(_), None, _) => {
            errs.push((ki("user"), "is given without a password".into()));
            None
        }
        (None, Some(_), _) => {
            errs.push((ki("password"), "is given without a user".into()));
            None
        }
    };
    let batch_rows = c.batch_rows.unwrap_or(5000);
    if batch_rows == 0 || batch_rows > 10_000_000 {
        errs.push((ki("batch_rows"), "must be between 1 and 10000000".into()));
    }
    let positive = |key: &str, d: Option<Dur>, default: Nanos, errs: &mut Vec<(String, String)>| {
        let v = d.map_or(default, |d| d.0);
        if v <= 0 {
            errs.push((ki(key), "must be positive".into()));
        }
        v
    };
    let batch_time = positive("batch_time", c.batch_time, 100_000_000, errs);
    let timeout = positive("timeout", c.timeout, 10_000_000_000, errs);
    let retry_max = positive("retry_max", c.retry_max, 5_000_000_000, errs);
    let shutdown_timeout = positive("shutdown_timeout", c.shutdown_timeout, 30_000_000_000, errs);
    let drop_after = c.drop_after.map(|d| positive("drop_after", Some(d), 0, errs));
    Some(InfluxPlan {
        url,
        database: c.database.clone(),
        measurement,
        tags,
        time,
        fields,
        auth,
        create_database: c.create_database.unwrap_or(false),
        batch_rows,
        batch_time,
        timeout,
        retry_max,
        drop_after,
        shutdown_timeout,
    })
}
