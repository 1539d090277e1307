//! The postgres sink against a real PostgreSQL server: the table holds exactly what the file sink writes for
//! the same run, a server killed and started again mid-run loses and doubles nothing, a restore from a
//! checkpoint writes the rows it re-emits over themselves, and a table without the key or with a wrong column
//! stops the job with PostgreSQL's reason.
//!
//! The server is named by `TICKLANE_PG` (`.ci/run` starts one with `scripts/postgres.sh` and sets it).
//! Without it these tests print why and pass; with `CI=true` a missing server is a failure. The outage test
//! starts a server of its own with scripts/postgres.sh, so that it can kill it.

mod common;

use common::{gen, run_config, stderr, ticklane, toml_path, wait_until, Running, Table};
use postgres::{Client, NoTls};
use std::path::Path;
use std::time::{Duration, Instant};

fn server(test: &str) -> Option<String> {
    match std::env::var("TICKLANE_PG") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true but TICKLANE_PG is not set");
            eprintln!(
                "SKIPPED {test}: TICKLANE_PG is not set (scripts/postgres.sh start 15432 target/pg, then \
                 TICKLANE_PG=postgresql://ticklane@127.0.0.1:15432/ticklane)"
            );
            None
        }
    }
}

fn client(url: &str) -> Client {
    Client::connect(url, NoTls).unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"))
}

/// A table name no other test (or run) uses; dropped first in case a run of the same pid left it.
fn fresh_table(c: &mut Client, name: &str) -> String {
    let t = format!("{name}_{}", std::process::id());
    c.batch_execute(&format!("DROP TABLE IF EXISTS {t}")).unwrap();
    t
}

const WINDOW_COLUMNS: &str = "symbol,window_start,window_end,open,high,low,close,volume,vwap,twap,count,pv,first_ts,\
                              last_ts,fire,is_update";

/// A csv source over `input` (ns timestamps, so the file sink writes what the table holds) into 1 s bars with
/// every aggregate and late updates (fire > 0), to a csv file `bars.csv` and to postgres `table`.
fn job(input: &Path, url: &str, table: &str, extra: &str, postgres: &str) -> String {
    format!(
        r#"
[metrics]
live = false
summary = false
{extra}
[[source]]
name = "trades"
type = "csv"
path = {input}
ts_unit = "ns"
max_out_of_orderness = "500ms"

[[window]]
name = "bars"
type = "tumbling"
size = "1s"
allowed_lateness = "2s"
aggregates = ["open", "high", "low", "close", "volume", "vwap", "twap", "count", "pv", "first_ts", "last_ts"]

[[sink]]
stream = "bars"
type = "csv"
path = "bars.csv"

[[sink]]
stream = "bars"
type = "postgres"
[sink.postgres]
connect = "{url}"
table = "{table}"
{postgres}
"#,
        input = toml_path(input)
    )
}

fn trades(d: &Path, n: u32) -> std::path::PathBuf {
    gen(
        d,
        "trades.csv",
        &["-n", &n.to_string(), "--instruments", "40", "--unit", "ns", "--start", "1700000000000000000", "--seed", "7"],
    )
}

/// Every row of `table` as text (NULL as empty, as the csv sink writes it), sorted by the key.
fn table_rows(c: &mut Client, table: &str) -> Vec<Vec<String>> {
    let cols: Vec<String> = WINDOW_COLUMNS.split(',').map(|c| format!("coalesce({c}::text, '')")).collect();
    let q = format!("SELECT {} FROM {table} ORDER BY symbol, window_start, window_end, fire", cols.join(", "));
    c.query(&q, &[]).unwrap().iter().map(|r| (0..r.len()).map(|i| r.get::<_, String>(i)).collect()).collect()
}

/// The csv sink's rows, sorted like [`table_rows`].
fn file_rows(path: &Path) -> Vec<Vec<String>> {
    let t = Table::read(path);
    assert_eq!(t.header.join(","), WINDOW_COLUMNS);
    let mut rows = t.rows;
    let (s, ws, we, f) = (t.header.iter().position(|h| h == "symbol").unwrap(), 1, 2, 14);
    rows.sort_by(|a, b| {
        (&a[s], a[ws].parse::<i64>().unwrap(), a[we].parse::<i64>().unwrap(), a[f].parse::<u32>().unwrap()).cmp(&(
            &b[s],
            b[ws].parse::<i64>().unwrap(),
            b[we].parse::<i64>().unwrap(),
            b[f].parse::<u32>().unwrap(),
        ))
    });
    rows
}

fn assert_same(db: &[Vec<String>], file: &[Vec<String>], what: &str) {
    assert_eq!(db.len(), file.len(), "{what}: {} rows in the table, {} in the file", db.len(), file.len());
    for (i, (a, b)) in db.iter().zip(file).enumerate() {
        assert_eq!(a, b, "{what}: row {i} differs (table, then file); columns {WINDOW_COLUMNS}");
    }
}

#[test]
fn the_table_holds_what_the_file_sink_writes() {
    let Some(url) = server("the_table_holds_what_the_file_sink_writes") else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut c = client(&url);
    let table = fresh_table(&mut c, "same_as_file");
    let input = trades(d, 200_000);
    let o = run_config(d, "job.toml", &job(&input, &url, &table, "", "create = true\nbatch_rows = 500"));
    let file = file_rows(&d.join("bars.csv"));
    assert!(file.len() > 1000, "too few bars to mean anything: {}", file.len());
    assert!(file.iter().any(|r| r[14] != "0"), "no late update (fire > 0) in the run: the test would not cover them");
    assert_same(&table_rows(&mut c, &table), &file, "after one run");
    // The types the sink chose: exact decimals, ns integers.
    let types: Vec<(String, String)> = c
        .query(
            "SELECT column_name::text, data_type::text FROM information_schema.columns WHERE table_name = $1 \
             AND column_name IN ('open', 'pv', 'window_start', 'symbol', 'is_update') ORDER BY column_name",
            &[&table],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        types,
        [
            ("is_update", "boolean"),
            ("open", "numeric"),
            ("pv", "numeric"),
            ("symbol", "text"),
            ("window_start", "bigint")
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    assert!(!stderr(&o).contains("ERROR"), "{}", stderr(&o));

    // The same job again over the same table: every row is written again onto itself.
    run_config(d, "job.toml", &job(&input, &url, &table, "", "create = true"));
    assert_same(&table_rows(&mut c, &table), &file, "after the same run twice");
}

fn script(args: &[&str]) -> std::process::Output {
    let s = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/postgres.sh");
    std::process::Command::new("bash").arg(s).args(args).output().expect("run scripts/postgres.sh")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The sink's figure `name` from the job's metrics endpoint (0 before the sink has one).
fn sink_metric(r: &Running, name: &str) -> f64 {
    let Some(addr) = common::metrics_addr(r) else { return 0.0 };
    let Ok(mut s) = std::net::TcpStream::connect(&addr) else { return 0.0 };
    use std::io::{Read, Write};
    let _ = write!(s, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text.lines()
        .filter(|l| l.starts_with(&format!("ticklane_sink_{name}{{")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A server of the test's own (so that it can kill it), stopped when dropped.
struct OwnServer {
    dir: String,
    port: String,
    url: String,
}

impl OwnServer {
    fn start(d: &Path) -> OwnServer {
        let port = free_port().to_string();
        let dir = d.join("pg").to_str().unwrap().to_string();
        let o = script(&["start", &port, &dir]);
        assert!(o.status.success(), "cannot start a server of this test's own: {}", stderr(&o));
        let url = format!("postgresql://ticklane@127.0.0.1:{port}/ticklane");
        OwnServer { dir, port, url }
    }

    /// Stops it at once, as a crash would (pg_ctl stop -m immediate).
    fn kill(&self) {
        let o = script(&["kill", &self.dir]);
        assert!(o.status.success(), "cannot kill the server: {}", stderr(&o));
    }

    fn restart(&self) {
        let o = script(&["start", &self.port, &self.dir]);
        assert!(o.status.success(), "cannot start the server again: {}", stderr(&o));
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        script(&["stop", &self.dir]);
    }
}

/// A paced feed (30,000 trades/s over 20 instruments for `events`) into 100 ms bars, to `bars.csv` and to
/// postgres `table` at `url`, metrics served on a port of its own.
fn paced_job(url: &str, table: &str, events: u32, postgres: &str) -> String {
    format!(
        r#"
[pipeline]
workers = 2
wait = "park"
[metrics]
interval = "200ms"
live = false
summary = false
listen = "127.0.0.1:0"
[[source]]
name = "trades"
type = "synthetic"
events = {events}
rate = 30_000
instruments = 20
ts_unit = "ms"
[[window]]
name = "bars"
type = "tumbling"
size = "100ms"
aggregates = ["open", "close", "volume", "vwap", "count"]
[[sink]]
stream = "bars"
type = "csv"
path = "bars.csv"
[[sink]]
stream = "bars"
type = "postgres"
[sink.postgres]
connect = "{url}"
table = "{table}"
create = true
batch_rows = 100
batch_time = "20ms"
max_backoff = "400ms"
{postgres}
"#
    )
}

/// A paced job of `events` trades writing into `table` on a server of the test's own, once it has written
/// its first 200 rows. Dropped in this order: the job, the server, their directory.
struct Writing {
    r: Running,
    pg: OwnServer,
    dir: tempfile::TempDir,
}

/// [`Writing`], or `None` (the test skips) when no server can run here.
fn writing(test: &str, table: &str, events: u32, postgres: &str) -> Option<Writing> {
    server(test)?;
    let dir = tempfile::tempdir().unwrap();
    let pg = OwnServer::start(dir.path());
    std::fs::write(dir.path().join("job.toml"), paced_job(&pg.url, table, events, postgres)).unwrap();
    let r = Running::start_logging(&["run", "--config", "job.toml"], dir.path(), "info");
    assert!(
        wait_until(Duration::from_secs(30), || sink_metric(&r, "rows_written_total") >= 200.0),
        "{test}: no rows written:\n{}",
        r.stderr_so_far()
    );
    Some(Writing { r, pg, dir })
}

/// Rows of `table` as text, sorted, in the columns of `file` (whose timestamps are in ms, the table's in ns),
/// and the file's rows the same way.
fn rows_vs_file(c: &mut Client, table: &str, file: &Table) -> (Vec<Vec<String>>, Vec<Vec<String>>) {
    let mut want: Vec<Vec<String>> = file
        .rows
        .iter()
        .map(|r| {
            let mut r = r.clone();
            for i in [1, 2] {
                r[i] = (r[i].parse::<i64>().unwrap() * 1_000_000).to_string();
            }
            r
        })
        .collect();
    want.sort();
    let cols: Vec<String> = file.header.iter().map(|h| format!("coalesce({h}::text, '')")).collect();
    let mut got: Vec<Vec<String>> = c
        .query(&format!("SELECT {} FROM {table}", cols.join(", ")), &[])
        .unwrap()
        .iter()
        .map(|r| (0..r.len()).map(|i| r.get::<_, String>(i)).collect())
        .collect();
    got.sort();
    (got, want)
}

/// The log without its colours.
fn plain(log: &str) -> String {
    let mut out = String::with_capacity(log.len());
    let mut it = log.chars();
    while let Some(ch) = it.next() {
        if ch == '\u{1b}' {
            for c in it.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(ch);
        }
    }
    out
}

#[test]
fn a_server_killed_mid_run_loses_and_doubles_nothing() {
    let Some(Writing { mut r, pg, dir }) =
        writing("a_server_killed_mid_run_loses_and_doubles_nothing", "outage", 450_000, "")
    else {
        return;
    };
    let (d, table) = (dir.path(), "outage");
    pg.kill();
    let down = Instant::now();
    assert!(
        wait_until(Duration::from_secs(10), || sink_metric(&r, "retries_total") >= 2.0),
        "the sink did not retry:\n{}",
        r.stderr_so_far()
    );
    std::thread::sleep(Duration::from_millis(1500).saturating_sub(down.elapsed()));
    assert!(r.wait_for(Duration::ZERO).is_none(), "ticklane stopped without its database:\n{}", r.stderr_so_far());
    pg.restart();
    let st = r.wait_for(Duration::from_secs(60)).expect("the job ends after the restart");
    let (_, err) = r.output();
    assert!(st.success(), "the job failed:\n{err}");
    assert!(err.contains("postgres write failed; retrying"), "no WARN line about the outage:\n{err}");
    assert!(err.contains("ticklane@127.0.0.1:"), "the WARN line does not name the target:\n{err}");

    let want = Table::read(&d.join("bars.csv"));
    let mut c = client(&pg.url);
    let (n, keys): (i64, i64) = {
        let row = c
            .query_one(
                &format!("SELECT count(*), count(DISTINCT (symbol, window_start, window_end, fire)) FROM {table}"),
                &[],
            )
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!(n as usize, want.rows.len(), "rows in the table vs the file");
    assert_eq!(n, keys, "a key twice");
    // Every value, as in the file.
    let (got, want) = rows_vs_file(&mut c, table, &want);
    assert_eq!(got, want);
}

#[test]
fn with_drop_after_a_server_that_stays_down_costs_counted_rows_only() {
    let Some(Writing { mut r, pg, dir }) = writing(
        "with_drop_after_a_server_that_stays_down_costs_counted_rows_only",
        "dropped",
        150_000,
        "drop_after = \"300ms\"",
    ) else {
        return;
    };
    let (d, table) = (dir.path(), "dropped");
    pg.kill();
    // The job goes on, and ends, without its database.
    let st = r.wait_for(Duration::from_secs(60)).expect("the job ends with its database down");
    let (_, err) = r.output();
    assert!(st.success(), "the job failed:\n{err}");
    let err = plain(&err);
    let dropped: usize = err
        .lines()
        .filter(|l| l.contains("postgres write still failing after drop_after"))
        .map(|l| l.split(" rows=").nth(1).and_then(|v| v.split(' ').next()).unwrap().parse::<usize>().unwrap())
        .sum();
    assert!(dropped > 0, "nothing dropped:\n{err}");
    pg.restart();
    let file = Table::read(&d.join("bars.csv"));
    let mut c = client(&pg.url);
    let (got, want) = rows_vs_file(&mut c, table, &file);
    assert_eq!(got.len() + dropped, want.len(), "rows in the table + rows dropped vs rows in the file");
    // What is there is right, and the rows are the file's.
    let mut at = 0;
    for g in &got {
        while at < want.len() && &want[at] != g {
            at += 1;
        }
        assert!(at < want.len(), "a row the file does not have: {g:?}");
        at += 1;
    }
}

/// Kills the job with SIGKILL once `n` more checkpoints are complete and some rows have followed the last;
/// returns false if it finished first.
fn kill_after_checkpoints(args: &[&str], dir: &Path, n: usize) -> bool {
    let mut r = Running::start_logging(args, dir, "info");
    let t = Instant::now();
    while r.stderr_so_far().matches("checkpoint complete").count() < n {
        assert!(t.elapsed() < Duration::from_secs(60), "not {n} checkpoints:\n{}", r.stderr_so_far());
        if r.wait_for(Duration::from_millis(5)).is_some() {
            return false;
        }
    }
    // Rows after the checkpoint reach the table (batch_time is 5 ms) before the kill.
    if r.wait_for(Duration::from_millis(25)).is_some() {
        return false;
    }
    r.signal("KILL");
    r.wait_for(Duration::from_secs(10)).expect("killed");
    true
}

#[test]
fn a_restore_writes_its_replayed_rows_over_themselves() {
    let Some(url) = server("a_restore_writes_its_replayed_rows_over_themselves") else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut c = client(&url);
    let table = fresh_table(&mut c, "restore");
    // A table of the user's own: an extra column the sink does not write, counting how often a row was
    // written again (a trigger), and the unique key.
    let cols: Vec<String> = WINDOW_COLUMNS
        .split(',')
        .map(|col| {
            let ty = match col {
                "symbol" => "text NOT NULL",
                "open" | "high" | "low" | "close" | "vwap" | "twap" | "pv" => "numeric",
                "is_update" => "boolean",
                _ => "bigint NOT NULL",
            };
            format!("{col} {ty}")
        })
        .collect();
    c.batch_execute(&format!(
        "CREATE TABLE {table} ({}, rewrites int NOT NULL DEFAULT 0, UNIQUE (symbol, window_start, window_end, fire));
         CREATE OR REPLACE FUNCTION {table}_bump() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN NEW.rewrites := OLD.rewrites + 1; RETURN NEW; END $$;
         CREATE TRIGGER bump BEFORE UPDATE ON {table} FOR EACH ROW EXECUTE FUNCTION {table}_bump();",
        cols.join(", ")
    ))
    .unwrap();
    let input = trades(d, 600_000);
    let chk = d.join("chk");
    let toml = job(
        &input,
        &url,
        &table,
        &format!("[checkpoint]\ndir = {}\ninterval = \"40ms\"\n", toml_path(&chk)),
        "batch_rows = 200\nbatch_time = \"5ms\"",
    );
    std::fs::write(d.join("job.toml"), &toml).unwrap();
    let args = ["run", "--config", "job.toml"];
    let mut kills = 0;
    for n in [1, 1, 1] {
        if !kill_after_checkpoints(&args, d, n) {
            break;
        }
        kills += 1;
    }
    let mut r = Running::start_logging(&args, d, "info");
    let st = r.wait_for(Duration::from_secs(120)).expect("the last run finishes");
    let (_, err) = r.output();
    assert!(st.success(), "the last run failed ({st}):\n{err}");
    assert!(kills > 0, "the job finished before it could be killed once");

    // The file sink, cut back and rewritten at each restore, equals an uninterrupted run
    // (tests/checkpoint.rs); the table must equal it too.
    let file = file_rows(&d.join("bars.csv"));
    assert_same(&table_rows(&mut c, &table), &file, "after kills and restores");
    let rewrites: i64 =
        c.query_one(&format!("SELECT coalesce(sum(rewrites), 0)::bigint FROM {table}"), &[]).unwrap().get(0);
    assert!(rewrites > 0, "no row was written again after {kills} restores: the replay was not exercised");
}

#[test]
fn a_table_without_the_key_or_with_a_wrong_column_stops_the_job() {
    let Some(url) = server("a_table_without_the_key_or_with_a_wrong_column_stops_the_job") else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut c = client(&url);
    let input = trades(d, 20_000);
    let run = |table: &str| {
        std::fs::write(d.join("job.toml"), job(&input, &url, table, "", "")).unwrap();
        let o = ticklane(&["run", "--config", "job.toml"], d);
        assert!(!o.status.success(), "the job ran into table {table}");
        stderr(&o)
    };
    let missing = fresh_table(&mut c, "missing");
    let e = run(&missing);
    assert!(e.contains(&format!("table `{missing}` does not exist")) && e.contains("create = true"), "{e}");

    let nokey = fresh_table(&mut c, "nokey");
    let cols: Vec<String> = WINDOW_COLUMNS.split(',').map(|c| format!("{c} text")).collect();
    c.batch_execute(&format!("CREATE TABLE {nokey} ({})", cols.join(", "))).unwrap();
    let e = run(&nokey);
    assert!(
        e.contains(&format!("table `{nokey}` has no unique constraint on (fire, symbol, window_end, window_start)")),
        "{e}"
    );

    // A key, but a column PostgreSQL cannot take a price into: its message, with stream and table.
    let wrong = fresh_table(&mut c, "wrongtype");
    let cols: Vec<String> = WINDOW_COLUMNS
        .split(',')
        .map(|col| format!("{col} {}", if col == "open" { "integer" } else { "text" }))
        .collect();
    c.batch_execute(&format!(
        "CREATE TABLE {wrong} ({}, UNIQUE (symbol, window_start, window_end, fire))",
        cols.join(", ")
    ))
    .unwrap();
    let e = run(&wrong);
    assert!(
        e.contains("stream `bars`")
            && e.contains(&format!("table `{wrong}`"))
            && e.contains("invalid input syntax for type integer"),
        "{e}"
    );
}

#[test]
fn postgres_config_errors_name_the_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let check = |toml: &str| {
        std::fs::write(d.join("c.toml"), toml).unwrap();
        let o = ticklane(&["check", "--config", "c.toml"], d);
        assert!(!o.status.success(), "accepted:\n{toml}");
        stderr(&o)
    };
    let head = "[[source]]\nname = \"t\"\ntype = \"synthetic\"\nevents = 10\n\
                [[window]]\nname = \"bars\"\ntype = \"tumbling\"\nsize = \"1s\"\n\
                [[continuous]]\nname = \"ticks\"\n";
    let sink = |stream: &str, body: &str| {
        format!("{head}[[sink]]\nstream = \"{stream}\"\ntype = \"postgres\"\n[sink.postgres]\n{body}\n")
    };
    let ok = "connect = \"postgresql://u@127.0.0.1:1/db\"\ntable = \"bars\"";
    // Line 12 is `stream = …`, 15 the first key of [sink.postgres].
    let e = check(&sink("ticks", ok));
    assert!(e.contains(":12:") && e.contains("key `sink[0].stream`") && e.contains("stream `ticks`"), "{e}");
    assert!(e.contains("window streams only") && !e.contains("sink[0].columns"), "{e}");
    let e = check(&sink("bars", &format!("{ok}\nbatch_size = 10")));
    assert!(e.contains(":17:") && e.contains("batch_size"), "{e}");
    let e = check(&sink("bars", "connect = \"postgresql://u@127.0.0.1:1/db\"\ntable = \"bad-name\""));
    assert!(e.contains(":16:") && e.contains("key `sink[0].postgres.table`"), "{e}");
    let e = check(&sink("bars", &format!("{ok}\nnames = {{ open = \"bad name\", pv = \"p\", bogus = \"y\" }}")));
    assert!(
        e.contains(":17:") && e.contains("key `sink[0].postgres.names.open`: `bad name` is not a column name"),
        "{e}"
    );
    assert!(e.contains("key `sink[0].postgres.names.pv`: `pv` is not one of this sink's columns"), "{e}");
    assert!(e.contains("key `sink[0].postgres.names.bogus`: `bogus` is not a column of this stream"), "{e}");
    let e = check(&sink("bars", &format!("{ok}\nbatch_rows = 0")));
    assert!(e.contains(":17:") && e.contains("key `sink[0].postgres.batch_rows`"), "{e}");
    let e = check(&sink("bars", "connect = \"postgresql://u@127.0.0.1:notaport/db\"\ntable = \"bars\""));
    assert!(e.contains(":15:") && e.contains("key `sink[0].postgres.connect`"), "{e}");
    let e = check(&format!(
        "{head}[[sink]]\nstream = \"bars\"\ntype = \"postgres\"\ncolumns = [\"symbol\", \"open\"]\n[sink.postgres]\n{ok}\n"
    ));
    assert!(e.contains(":14:") && e.contains("key `sink[0].columns`") && e.contains("window_start"), "{e}");
    let e = check(&format!("[pipeline]\nemitter = \"inline\"\n{}", sink("bars", ok)));
    assert!(e.contains(":15:") && e.contains("key `sink[0].type`") && e.contains("pipeline.emitter"), "{e}");
    let e = check(&format!("{head}[[sink]]\nstream = \"bars\"\ntype = \"postgres\"\n"));
    assert!(e.contains(":13:") && e.contains("needs a [sink.postgres] table"), "{e}");
    let e = check(&format!("{head}[[sink]]\nstream = \"bars\"\ntype = \"csv\"\npath = \"x\"\n[sink.postgres]\n{ok}\n"));
    assert!(e.contains("key `sink[0].postgres`") && e.contains("only applies to a postgres sink"), "{e}");
}

#[test]
fn a_stop_during_an_outage_ends_within_shutdown_timeout_and_says_what_was_not_written() {
    let Some(Writing { mut r, pg, dir: _dir }) = writing(
        "a_stop_during_an_outage_ends_within_shutdown_timeout_and_says_what_was_not_written",
        "stopped",
        600_000,
        "shutdown_timeout = \"1s\"",
    ) else {
        return;
    };
    pg.kill();
    assert!(
        wait_until(Duration::from_secs(10), || sink_metric(&r, "retries_total") >= 1.0),
        "the sink did not see the outage:\n{}",
        r.stderr_so_far()
    );
    let t0 = Instant::now();
    r.signal("TERM");
    let st = r.wait_for(Duration::from_secs(30)).expect("the job ends within its shutdown_timeout");
    let took = t0.elapsed();
    let (_, err) = r.output();
    assert!(!st.success(), "rows that were never written, and the job exited 0:\n{err}");
    assert!(err.contains("rows not written") && err.contains("stream `bars`"), "{err}");
    assert!(took < Duration::from_secs(15), "the job took {took:?} to give up (shutdown_timeout 1s)");
}

#[test]
fn a_database_down_at_the_start_is_waited_for_until_a_stop() {
    // No server needed: nothing listens on the port.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let url = format!("postgresql://ticklane@127.0.0.1:{}/ticklane", free_port());
    std::fs::write(d.join("job.toml"), paced_job(&url, "never", 600_000, "")).unwrap();
    let mut r = Running::start_logging(&["run", "--config", "job.toml"], d, "info");
    assert!(
        wait_until(Duration::from_secs(20), || r.stderr_so_far().contains("postgres write failed; retrying")),
        "no WARN line about the database being down:\n{}",
        r.stderr_so_far()
    );
    r.signal("TERM");
    let st = r.wait_for(Duration::from_secs(10)).expect("a stop ends the wait for the database");
    let (_, err) = r.output();
    assert!(!st.success(), "{err}");
    assert!(err.contains("stopped while waiting for") && err.contains("stream `bars`"), "{err}");
}

#[test]
fn a_reload_hands_new_credentials_to_the_running_sink() {
    let Some(Writing { mut r, pg, dir }) =
        writing("a_reload_hands_new_credentials_to_the_running_sink", "rotated", 600_000, "")
    else {
        return;
    };
    let (d, table) = (dir.path(), "rotated");
    let mut c = client(&pg.url);
    c.batch_execute(&format!("CREATE ROLE newuser LOGIN; GRANT ALL ON {table} TO newuser")).unwrap();
    let rotated = pg.url.replace("ticklane@", "newuser@");
    std::fs::write(d.join("job.toml"), paced_job(&rotated, table, 600_000, "")).unwrap();
    r.signal("HUP");
    let who = |c: &mut Client| -> Vec<String> {
        c.query("SELECT usename::text FROM pg_stat_activity WHERE application_name = 'ticklane'", &[])
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect()
    };
    assert!(
        wait_until(Duration::from_secs(20), || who(&mut c) == ["newuser"]),
        "the sink does not write as the new user (connected: {:?}):\n{}",
        who(&mut c),
        r.stderr_so_far()
    );
    let st = r.wait_for(Duration::from_secs(60)).expect("the job ends");
    let (_, err) = r.output();
    assert!(st.success(), "{err}");
    assert!(err.contains("applied sink[1].postgres.connect"), "the reload does not say it applied the key:\n{err}");
    assert!(!err.contains("needs a restart"), "{err}");
    // Nothing lost or doubled across the change.
    let file = Table::read(&d.join("bars.csv"));
    let (got, want) = rows_vs_file(&mut c, table, &file);
    assert_eq!(got, want);
}
