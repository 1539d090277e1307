//! The influxdb sink against a real InfluxDB 1.x server (Debian's influxd, `scripts/influxdb.sh`): what it
//! writes equals the file sink's rows value for value, a server killed and restarted mid-run loses nothing
//! and doubles nothing, refusals and outages are reported as documented, and config errors name the key.
//!
//! The server is named by `INFLUXDB_URL` (`.ci/run` starts one with `scripts/influxdb.sh` and sets it).
//! Without it the tests that need a server print why and pass; with `CI=true` a missing server is a failure.
//! The restart test starts a server of its own (on a free port, with the same script).

mod common;

use common::{gen, run_config, stderr, ticklane, toml_path, Running, Table};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

fn server(test: &str) -> Option<String> {
    match std::env::var("INFLUXDB_URL") {
        Ok(u) if !u.is_empty() => Some(u.trim_end_matches('/').to_string()),
        _ => {
            assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true but INFLUXDB_URL is not set");
            eprintln!(
                "SKIPPED {test}: INFLUXDB_URL is not set (scripts/influxdb.sh start 18086 DIR, then \
                 INFLUXDB_URL=http://127.0.0.1:18086)"
            );
            None
        }
    }
}

/// A database name of this test run's own.
fn unique(name: &str) -> String {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("tl_{name}_{}_{t}", std::process::id())
}

#[derive(Deserialize)]
struct QueryAnswer {
    results: Vec<StatementAnswer>,
}

#[derive(Deserialize)]
struct StatementAnswer {
    #[serde(default)]
    series: Vec<Series>,
    error: Option<String>,
    #[serde(default)]
    partial: bool,
}

#[derive(Deserialize)]
struct Series {
    columns: Vec<String>,
    values: Vec<Vec<Box<RawValue>>>,
}

/// The points of `measurement`, each as column → the JSON text InfluxDB answered (numbers exactly as sent
/// back, so that they are compared without a second rounding).
fn points(url: &str, db: &str, measurement: &str) -> Vec<BTreeMap<String, String>> {
    try_points(url, db, measurement).unwrap_or_else(|e| panic!("SELECT * FROM \"{measurement}\": {e}"))
}

/// [`points`], or InfluxDB's error (a database not created yet).
fn try_points(url: &str, db: &str, measurement: &str) -> Result<Vec<BTreeMap<String, String>>, String> {
    let q = format!("SELECT * FROM \"{measurement}\"");
    let text = ureq::get(&format!("{url}/query"))
        .query("db", db)
        .query("epoch", "ns")
        .query("q", &q)
        .call()
        .unwrap_or_else(|e| panic!("query {q} on {url}: {e}"))
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_string()
        .unwrap();
    let a: QueryAnswer =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {}", &text[..text.len().min(500)]));
    let r = &a.results[0];
    if let Some(e) = &r.error {
        return Err(e.clone());
    }
    assert!(!r.partial, "{q}: a partial answer (row limit)");
    let mut out = Vec::new();
    for s in &r.series {
        for v in &s.values {
            out.push(s.columns.iter().cloned().zip(v.iter().map(|x| x.get().to_string())).collect());
        }
    }
    Ok(out)
}

/// Points in `measurement` so far (0 before the database exists).
fn count(url: &str, db: &str, measurement: &str) -> usize {
    try_points(url, db, measurement).map_or(0, |p| p.len())
}

/// One CSV value and InfluxDB's JSON for it are the same value: an empty CSV field is an absent field, text is
/// the same text, integers are equal, and decimals (prices, VWAP) are the same float64: the nearest double to
/// the decimal the sink wrote, which InfluxDB stores and answers in shortest round-trip form.
fn same(csv: &str, json: &str) -> bool {
    if csv.is_empty() {
        return json == "null";
    }
    if let Some(s) = json.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        return s == csv;
    }
    if json == "true" || json == "false" {
        return json == csv;
    }
    if !csv.contains('.') && !json.contains(['.', 'e', 'E']) {
        return csv.parse::<i128>().ok() == json.parse::<i128>().ok();
    }
    match (csv.parse::<f64>(), json.parse::<f64>()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Every row of `table` (a file sink's output) is one point of `got`, identified by the tag columns `tags`
/// and the timestamp column `time` (in `unit_ns` per unit), and every other column of the row has the same
/// value there; and there is no other point.
fn assert_same_rows(table: &Table, got: &[BTreeMap<String, String>], tags: &[&str], time: &str, unit_ns: i64) {
    let key_of_row = |r: &Vec<String>| {
        let mut k: Vec<String> = tags.iter().map(|t| r[table.col(t)].clone()).collect();
        k.push((r[table.col(time)].parse::<i64>().unwrap() * unit_ns).to_string());
        k
    };
    let mut by_key: BTreeMap<Vec<String>, &BTreeMap<String, String>> = BTreeMap::new();
    for p in got {
        let mut k: Vec<String> = tags.iter().map(|t| p[*t].trim_matches('"').to_string()).collect();
        k.push(p["time"].clone());
        assert!(by_key.insert(k.clone(), p).is_none(), "two points answered for {k:?}");
    }
    let mut keys = std::collections::BTreeSet::new();
    for (i, r) in table.rows.iter().enumerate() {
        let k = key_of_row(r);
        assert!(keys.insert(k.clone()), "the file's rows are not distinct points: row {} repeats {k:?}", i + 2);
        let p = by_key.get(&k).unwrap_or_else(|| panic!("row {} ({k:?}) is not in InfluxDB: {r:?}", i + 2));
        for (c, name) in table.header.iter().enumerate() {
            if tags.contains(&name.as_str()) || name == time {
                continue;
            }
            let json = p.get(name).map_or("null", String::as_str);
            assert!(same(&r[c], json), "row {} ({k:?}) column {name}: file {:?}, InfluxDB {json}", i + 2, r[c]);
        }
    }
    assert_eq!(got.len(), table.rows.len(), "InfluxDB has {} points, the file {} rows", got.len(), table.rows.len());
}

/// A CSV replay into 1 s bars (with allowed lateness, so that late trades re-fire windows) and late trades,
/// each stream into a CSV file and into InfluxDB database `db` at `url`; `source_extra` and `sink_extra` are
/// added to the source and to each `[sink.influxdb]`.
fn job(input: &Path, url: &str, db: &str, source_extra: &str, sink_extra: &str) -> String {
    format!(
        r#"
[metrics]
live = false
summary = false

[[source]]
name = "trades"
type = "csv"
path = {input}
ts_unit = "ms"
max_out_of_orderness = "1s"
{source_extra}

[[window]]
name = "bars"
type = "tumbling"
size = "1s"
allowed_lateness = "3s"
late = "late"

[[sink]]
stream = "bars"
type = "csv"
path = "out/bars.csv"

[[sink]]
stream = "late"
type = "csv"
path = "out/late.csv"

[[sink]]
stream = "bars"
type = "influxdb"
[sink.influxdb]
url = "{url}"
database = "{db}"
create_database = true
batch_rows = 1000
{sink_extra}

[[sink]]
stream = "late"
type = "influxdb"
[sink.influxdb]
url = "{url}"
database = "{db}"
tags = ["symbol", "seq"]
create_database = true
{sink_extra}
"#,
        input = toml_path(input)
    )
}

/// Re-emitted windows (fire > 0) are there: the test covers points that a mapping without `fire` would lose.
fn assert_refired(bars: &Table) {
    let f = bars.col("fire");
    let n = bars.rows.iter().filter(|r| r[f] != "0").count();
    assert!(n > 0, "no window fired twice: the input does not test re-emissions");
}

#[test]
fn influxdb_points_equal_the_file_sinks_rows() {
    let Some(url) = server("influxdb_points_equal_the_file_sinks_rows") else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = gen(d, "trades.csv", &["-n", "100000", "--instruments", "30", "--late-fraction", "0.002"]);
    let db = unique("equal");
    run_config(d, "job.toml", &job(&input, &url, &db, "", ""));
    let bars = Table::read(&d.join("out/bars.csv"));
    assert_refired(&bars);
    assert!(bars.rows.len() > 1000, "{} bars", bars.rows.len());
    assert_same_rows(&bars, &points(&url, &db, "bars"), &["symbol", "fire"], "window_end", 1_000_000);
    let late = Table::read(&d.join("out/late.csv"));
    assert!(!late.rows.is_empty(), "no late trades");
    assert_same_rows(&late, &points(&url, &db, "late"), &["symbol", "seq"], "ts", 1_000_000);
}

fn script(args: &[&str]) -> std::process::Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/influxdb.sh");
    std::process::Command::new("bash").arg(script).args(args).output().expect("run scripts/influxdb.sh")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn a_server_killed_and_restarted_mid_run_loses_and_doubles_nothing() {
    if server("a_server_killed_and_restarted_mid_run_loses_and_doubles_nothing").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A server of this test's own, to kill.
    let port = free_port().to_string();
    let sdir = d.join("influxdb");
    let sdir_s = sdir.to_str().unwrap().to_string();
    let o = script(&["start", &port, &sdir_s]);
    assert!(o.status.success(), "cannot start an influxd of this test's own: {}", stderr(&o));
    struct Stop(String);
    impl Drop for Stop {
        fn drop(&mut self) {
            script(&["stop", &self.0]);
        }
    }
    let _guard = Stop(sdir_s.clone());
    let url = format!("http://127.0.0.1:{port}");
    // 100 s of event time replayed at 12× speed: about 8 s of results arriving while the server is away.
    let input = gen(d, "trades.csv", &["-n", "200000", "--instruments", "30", "--late-fraction", "0.002"]);
    let db = unique("restart");
    let cfg = d.join("job.toml");
    std::fs::write(&cfg, job(&input, &url, &db, "speed = 12.0", "retry_max = \"300ms\"\nbatch_time = \"20ms\""))
        .unwrap();
    let mut r = Running::start(&["run", "--config", cfg.to_str().unwrap()], d);
    let t0 = Instant::now();
    assert!(
        common::wait_until(Duration::from_secs(30), || count(&url, &db, "bars") > 0),
        "no bars in InfluxDB after 30 s:\n{}",
        r.stderr_so_far()
    );
    // Killed outright (no shutdown), away for 2 s, then started again on the same data.
    let pid = std::fs::read_to_string(sdir.join("influxd.pid")).unwrap();
    let st = std::process::Command::new("kill").args(["-9", pid.trim()]).status().unwrap();
    assert!(st.success());
    std::thread::sleep(Duration::from_secs(2));
    assert!(r.wait_for(Duration::ZERO).is_none(), "ticklane stopped without its database:\n{}", r.stderr_so_far());
    let o = script(&["start", &port, &sdir_s]);
    assert!(o.status.success(), "cannot restart influxd: {}", stderr(&o));
    let status = r.wait_for(Duration::from_secs(120)).expect("the job did not end within 120 s");
    let elapsed = t0.elapsed();
    let (_, err) = r.output();
    assert!(status.success(), "the job failed: {err}");
    assert!(err.contains("influxdb write failed; retrying"), "the outage was not seen (run took {elapsed:?}):\n{err}");
    let bars = Table::read(&d.join("out/bars.csv"));
    assert_refired(&bars);
    assert_same_rows(&bars, &points(&url, &db, "bars"), &["symbol", "fire"], "window_end", 1_000_000);
    let late = Table::read(&d.join("out/late.csv"));
    assert_same_rows(&late, &points(&url, &db, "late"), &["symbol", "seq"], "ts", 1_000_000);
}

#[test]
fn a_refused_write_names_the_stream_the_url_and_the_servers_reason() {
    let Some(url) = server("a_refused_write_names_the_stream_the_url_and_the_servers_reason") else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = gen(d, "trades.csv", &["-n", "5000", "--instruments", "5"]);
    let db = unique("absent");
    // No create_database: the database does not exist.
    let toml = job(&input, &url, &db, "", "").replace("create_database = true\n", "");
    std::fs::write(d.join("job.toml"), toml).unwrap();
    let o = ticklane(&["run", "--config", "job.toml"], d);
    let err = stderr(&o);
    assert!(!o.status.success(), "the job succeeded writing to a database that does not exist:\n{err}");
    for want in ["stream `bars`", &format!("{url}/write?db={db}"), "database not found", "HTTP 404"] {
        assert!(err.contains(want), "the error does not say {want:?}:\n{err}");
    }
}

/// A closed port: nothing listens there.
fn nowhere() -> String {
    format!("http://127.0.0.1:{}", free_port())
}

#[test]
fn a_stop_during_an_outage_ends_within_shutdown_timeout_and_says_what_was_not_written() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = gen(d, "trades.csv", &["-n", "5000", "--instruments", "5"]);
    let toml = job(&input, &nowhere(), "x", "", "shutdown_timeout = \"1s\"\nretry_max = \"200ms\"");
    std::fs::write(d.join("job.toml"), toml).unwrap();
    let t0 = Instant::now();
    let o = ticklane(&["run", "--config", "job.toml"], d);
    let took = t0.elapsed();
    let err = stderr(&o);
    assert!(!o.status.success(), "rows that were never written, and the job exited 0:\n{err}");
    assert!(err.contains("rows not written") && err.contains("stream `bars`"), "{err}");
    assert!(err.contains("influxdb write failed; retrying"), "no WARN line about the retries:\n{err}");
    assert!(took < Duration::from_secs(15), "the job took {took:?} to give up (shutdown_timeout 1s)");
}

#[test]
fn drop_after_drops_and_counts_instead_of_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = gen(d, "trades.csv", &["-n", "5000", "--instruments", "5"]);
    let toml = job(&input, &nowhere(), "x", "", "drop_after = \"300ms\"\nretry_max = \"100ms\"");
    std::fs::write(d.join("job.toml"), toml).unwrap();
    let o = ticklane(&["run", "--config", "job.toml"], d);
    let err = stderr(&o);
    assert!(o.status.success(), "drop_after is set, yet the job failed:\n{err}");
    assert!(err.contains("rows dropped"), "the drop is not logged:\n{err}");
}

#[test]
fn influxdb_config_errors_name_the_key_and_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let base = "[[source]]\nname = \"t\"\ntype = \"csv\"\npath = \"t.csv\"\n\n[[window]]\nname = \"bars\"\ntype = \"tumbling\"\nsize = \"1s\"\n\n[[sink]]\nstream = \"bars\"\ntype = \"influxdb\"\n";
    let cases: [(&str, &str, &str); 7] = [
        ("[sink.influxdb]\ndatabase = \"d\"\n", ":14:", "missing field `url`"),
        (
            "[sink.influxdb]\nurl = \"http://h:1\"\ndatabase = \"d\"\nbatch_row = 5\n",
            ":17:",
            "unknown field `batch_row`",
        ),
        ("[sink.influxdb]\nurl = \"https://h:1\"\ndatabase = \"d\"\n", ":15:", "key `sink[0].influxdb.url`"),
        (
            "[sink.influxdb]\nurl = \"http://h:1\"\ndatabase = \"d\"\ntime = \"open\"\n",
            ":17:",
            "not a timestamp column",
        ),
        (
            "[sink.influxdb]\nurl = \"http://h:1\"\ndatabase = \"d\"\ntags = [\"symbol\", \"nope\"]\n",
            ":17:",
            "key `sink[0].influxdb.tags[1]`",
        ),
        ("[sink.influxdb]\nurl = \"http://h:1\"\ndatabase = \"d\"\nuser = \"u\"\n", ":17:", "without a password"),
        ("path = \"x.csv\"\n", ":11:", "needs a [sink.influxdb] table"),
    ];
    for (i, (extra, line, reason)) in cases.iter().enumerate() {
        let name = format!("bad{i}.toml");
        std::fs::write(d.join(&name), format!("{base}{extra}")).unwrap();
        let o = ticklane(&["check", "--config", &name], d);
        let err = stderr(&o);
        assert!(!o.status.success(), "case {i} was accepted:\n{base}{extra}");
        let at = format!("{name}{line}");
        assert!(
            err.lines().any(|l| l.contains(&at) && l.contains(reason)),
            "case {i}: no error at {at} saying {reason:?}:\n{err}"
        );
    }
}

#[test]
fn killed_and_restored_from_a_checkpoint_the_database_ends_as_an_uninterrupted_run() {
    let Some(url) = server("killed_and_restored_from_a_checkpoint_the_database_ends_as_an_uninterrupted_run") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = gen(d, "trades.csv", &["-n", "100000", "--instruments", "30", "--late-fraction", "0.002"]);
    // The reference: an uninterrupted run (its file sinks).
    let reference = d.join("reference");
    std::fs::create_dir_all(&reference).unwrap();
    run_config(&reference, "job.toml", &job(&input, &url, &unique("reference"), "", ""));
    // 50 s of event time at 12× speed, a checkpoint every 200 ms; killed after two are complete, then run to
    // the end from the newest.
    let db = unique("restore");
    let run = d.join("restored");
    std::fs::create_dir_all(&run).unwrap();
    let toml = format!(
        "{}\n[checkpoint]\ndir = {}\ninterval = \"200ms\"\n",
        job(&input, &url, &db, "speed = 12.0", ""),
        toml_path(&run.join("chk"))
    );
    let cfg = run.join("job.toml");
    std::fs::write(&cfg, toml).unwrap();
    let args = ["run", "--config", cfg.to_str().unwrap()];
    let mut r = Running::start_logging(&args, &run, "info");
    let t = Instant::now();
    while r.stderr_so_far().matches("checkpoint complete").count() < 2 {
        assert!(t.elapsed() < Duration::from_secs(30), "not 2 checkpoints:\n{}", r.stderr_so_far());
        assert!(r.wait_for(Duration::from_millis(5)).is_none(), "the job ended before it could be killed");
    }
    assert!(count(&url, &db, "bars") > 0, "nothing written before the kill");
    r.signal("KILL");
    r.wait_for(Duration::from_secs(10)).expect("killed");
    let mut r = Running::start_logging(&args, &run, "info");
    let st = r.wait_for(Duration::from_secs(120)).expect("the resumed run did not end within 120 s");
    let (_, err) = r.output();
    assert!(st.success(), "the resumed run failed:\n{err}");
    assert!(err.contains("resuming from checkpoint"), "the second run did not resume:\n{err}");
    let bars = Table::read(&reference.join("out/bars.csv"));
    assert_same_rows(&bars, &points(&url, &db, "bars"), &["symbol", "fire"], "window_end", 1_000_000);
    let late = Table::read(&reference.join("out/late.csv"));
    assert_same_rows(&late, &points(&url, &db, "late"), &["symbol", "seq"], "ts", 1_000_000);
}

#[test]
fn the_sinks_counters_are_on_the_metrics_endpoint() {
    let Some(url) = server("the_sinks_counters_are_on_the_metrics_endpoint") else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = unique("metrics");
    let toml = common::paced_job("listen = \"127.0.0.1:0\"", "").replace(
        "type = \"null\"",
        &format!("type = \"influxdb\"\ninfluxdb = {{ url = \"{url}\", database = \"{db}\", create_database = true }}"),
    );
    std::fs::write(d.join("job.toml"), toml).unwrap();
    let mut r = Running::start_logging(&["run", "--config", "job.toml"], d, "info");
    let mut addr = None;
    assert!(
        common::wait_until(Duration::from_secs(30), || {
            addr = common::metrics_addr(&r);
            addr.is_some()
        }),
        "no metrics address:\n{}",
        r.stderr_so_far()
    );
    let addr = addr.unwrap();
    let labels = [("type", "influxdb"), ("stream", "bars")];
    let sample = |sc: &prometheus_parse::Scrape, metric: &str| -> f64 {
        let found: Vec<&prometheus_parse::Sample> = sc
            .samples
            .iter()
            .filter(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .collect();
        assert_eq!(found.len(), 1, "{metric}: {} samples", found.len());
        match found[0].value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) => v,
            ref other => panic!("{metric}: {other:?}"),
        }
    };
    let scrape = || {
        let body = ureq::get(&format!("http://{addr}/metrics")).call().unwrap().body_mut().read_to_string().unwrap();
        prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string())))
            .unwrap_or_else(|e| panic!("not Prometheus text: {e}\n{body}"))
    };
    let mut written = 0.0;
    assert!(
        common::wait_until(Duration::from_secs(30), || {
            written = sample(&scrape(), "ticklane_sink_rows_written_total");
            written > 100.0
        }),
        "rows written: {written}"
    );
    let sc = scrape();
    for m in ["ticklane_sink_retries_total", "ticklane_sink_rows_dropped_total"] {
        assert_eq!(sample(&sc, m), 0.0, "{m} with a healthy server");
    }
    // The batch being written, if the scrape came while one was, and at most the 3 buffers the queue has.
    assert!(sample(&sc, "ticklane_sink_batches_queued") <= 3.0);
    assert!(sample(&sc, "ticklane_sink_blocked_seconds_total") >= 0.0);
    r.signal("TERM");
    let st = r.wait_for(Duration::from_secs(60)).expect("the job did not stop within 60 s of SIGTERM");
    let (_, err) = r.output();
    assert!(st.success(), "{err}");
    // Everything written before the exit, at least what the scrape saw.
    assert!(count(&url, &db, "bars") as f64 >= written);
}

/// The last row of each point key (what InfluxDB keeps when rows share tags and timestamp).
fn last_per_key(t: &Table, tags: &[&str], time: &str) -> Table {
    let mut at: BTreeMap<Vec<String>, usize> = BTreeMap::new();
    for (i, r) in t.rows.iter().enumerate() {
        let mut k: Vec<String> = tags.iter().map(|c| r[t.col(c)].clone()).collect();
        k.push(r[t.col(time)].clone());
        at.insert(k, i);
    }
    let mut keep: Vec<usize> = at.into_values().collect();
    keep.sort_unstable();
    Table { header: t.header.clone(), rows: keep.into_iter().map(|i| t.rows[i].clone()).collect() }
}

/// An ITCH feed's quote and level streams: each point holds what the file's last row of its key holds
/// (docs/operations.md: a quote is a point per symbol and nanosecond, a level one per symbol, side, price and
/// nanosecond).
#[test]
fn a_feeds_quotes_and_levels_are_points() {
    let Some(url) = server("a_feeds_quotes_and_levels_are_points") else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let feed = d.join("day.itch");
    let o = ticklane(
        &["itch-gen", "--out", feed.to_str().unwrap(), "--messages", "40000", "--stocks", "4", "--seed", "5"],
        d,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let db = unique("feed");
    let job = format!(
        r#"
{head}[[stream]]
name = "quotes"
events = "quote"
[[stream]]
name = "levels"
events = "level"
[[sink]]
stream = "quotes"
type = "csv"
path = "out/quotes.csv"
[[sink]]
stream = "levels"
type = "csv"
path = "out/levels.csv"
[[sink]]
stream = "quotes"
type = "influxdb"
influxdb = {{ url = "{url}", database = "{db}", create_database = true }}
[[sink]]
stream = "levels"
type = "influxdb"
influxdb = {{ url = "{url}", database = "{db}", create_database = true }}
"#,
        head = common::itch_source("2026-11-26", &format!("path = {}", toml_path(&feed)))
    );
    run_config(d, "job.toml", &job);
    let quotes = Table::read(&d.join("out/quotes.csv"));
    assert!(quotes.rows.len() > 1000, "{} quotes", quotes.rows.len());
    let want = last_per_key(&quotes, &["symbol"], "ts");
    assert_same_rows(&want, &points(&url, &db, "quotes"), &["symbol"], "ts", 1);
    let levels = Table::read(&d.join("out/levels.csv"));
    assert!(levels.rows.len() > 1000, "{} levels", levels.rows.len());
    let want = last_per_key(&levels, &["symbol", "side", "price"], "ts");
    assert_same_rows(&want, &points(&url, &db, "levels"), &["symbol", "side", "price"], "ts", 1);
}
