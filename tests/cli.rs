//! The `ticklane` command end to end: `check`, `run` (bad input, JSON lines, signals, the embedded default
//! job, several sources), `gen` and `stats`.

mod common;

use common::{
    complete_lines, csv_records, gen, run_config, stderr, stdout, ticklane, ticklane_ok, wait_until, Running, Table,
};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

// ------------------------------------------------------------------------------------------------------
// check
// ------------------------------------------------------------------------------------------------------

#[test]
fn check_accepts_valid_configs() {
    let dir = tempfile::tempdir().unwrap();
    let parity = std::fs::read_to_string(repo().join("tests/parity/flink.toml.in"))
        .unwrap()
        .replace("@INPUT@", "trades.csv")
        .replace("@OUT@", "out")
        .replace("@LATENESS_MS@", "3000");
    std::fs::write(dir.path().join("parity.toml"), parity).unwrap();
    // A core this process may run on, from what `check` says about one that does not exist.
    std::fs::write(dir.path().join("probe.toml"), format!("[pipeline]\ncores = {{ emitter = 4096 }}\n{SRC}")).unwrap();
    let probe = stderr(&ticklane(&["check", "--config", "probe.toml"], dir.path()));
    let core: usize = probe
        .split("(cores: [")
        .nth(1)
        .and_then(|s| s.split([',', ']']).next())
        .and_then(|c| c.trim().parse().ok())
        .unwrap_or_else(|| panic!("check does not list the machine's cores: {probe}"));
    let everything = r#"
[pipeline]
workers = 2
ring_capacity = 1024
wait = { workers = "spin", emitter = "park" }
fire_on_shutdown = true
max_instruments = 5000
cores = { workers = [@CORE@] }

[metrics]
interval = "250ms"
histogram_log = "lat.hlog"
live = false
latency_sample = 16
summary = true

[[source]]
name = "trades"
type = "csv"
path = "trades.csv"
ts_unit = "us"
header = false
max_out_of_orderness = "2ms"
idle_timeout = "1s"
speed = 2.5
rejects = "bad"

[[source]]
name = "feed"
type = "jsonl"
path = "feed.jsonl"
ts_unit = "us"
fields = { ts = "t", symbol = "s" }

[[source]]
name = "synth"
type = "synthetic"
ts_unit = "us"
events = 0
rate = 1000
instruments = 10
partitions = 4
disorder = "1ms"
disorder_fraction = 0.1
late_fraction = 0.01
seed = 7
zipf = 0.5

[[window]]
name = "bars"
type = "tumbling"
size = "1s"
offset = "250ms"
allowed_lateness = "500ms"
aggregates = ["open", "close", "pv", "first_ts", "last_ts"]
late = "late_bars"

[[window]]
name = "slide"
type = "sliding"
input = "synth"
size = "25s"
slide = "10s"

[[window]]
name = "sess"
type = "session"
gap = "5s"

[[continuous]]
name = "ticks"
input = "trades"
ema_half_life = "2s"
session_reset = "1d"
session_offset = "13h 30m"

[[sink]]
stream = "bars"
type = "csv"
path = "out/bars.csv"
columns = ["symbol", "window_end", "close", "fire"]
header = false

[[sink]]
stream = "ticks"
type = "stdout"
format = "jsonl"

[[sink]]
stream = "bad"
type = "jsonl"
path = "out/bad.jsonl"

[[sink]]
stream = "late_bars"
type = "null"
"#;
    std::fs::write(dir.path().join("everything.toml"), everything.replace("@CORE@", &core.to_string())).unwrap();
    for (cfg, summary) in [
        (repo().join("config/default.toml"), "ok (1 source, "),
        (repo().join("config/itch.toml"), "ok (1 source, 3 operators, 4 sinks, 1 worker)"),
        (dir.path().join("parity.toml"), "ok (1 source, 3 operators, 6 sinks, 2 workers)"),
        (dir.path().join("everything.toml"), "ok (3 sources, 4 operators, 4 sinks, 2 workers)"),
    ] {
        let o = ticklane(&["check", "--config", cfg.to_str().unwrap()], dir.path());
        assert!(o.status.success(), "check {} exited {}: {}", cfg.display(), o.status, stderr(&o));
        assert!(stdout(&o).contains(summary), "check {}: expected `{summary}`, got {}", cfg.display(), stdout(&o));
    }
    assert!(!dir.path().join("out").exists() && !dir.path().join("lat.hlog").exists(), "check must not create outputs");
}

const SRC: &str = "[[source]]\nname = \"trades\"\ntype = \"csv\"\npath = \"t.csv\"\n";

/// `check` on a bad config: exit 1, and stderr names the file, the line, the key and the reason.
fn rejects(dir: &Path, name: &str, toml: &str, line: usize, key: &str, reason: &str) {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, toml).unwrap();
    let o = ticklane(&["check", "--config", path.to_str().unwrap()], dir);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{name}: check should fail with exit code 1; stderr: {err}");
    assert!(stdout(&o).is_empty(), "{name}: nothing on stdout when invalid: {}", stdout(&o));
    assert!(!err.contains("panicked"), "{name}: panicked: {err}");
    let want = format!("{}:{line}:", path.display());
    let at = err.find(&want).unwrap_or_else(|| panic!("{name}: stderr does not locate the error at `{want}`: {err}"));
    let msg = err[at..].lines().next().unwrap();
    assert!(msg.contains(&format!("key `{key}`")), "{name}: the message does not name key `{key}`: {msg}");
    assert!(msg.contains(reason), "{name}: the message does not say `{reason}`: {msg}");
}

#[test]
fn check_rejects_invalid_configs_naming_key_line_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let win = |body: &str| format!("{SRC}\n[[window]]\nname = \"w\"\n{body}");
    rejects(
        d,
        "unknown_key",
        &win("type = \"tumbling\"\nsize = \"1s\"\nbogus = 3\n"),
        10,
        "window[0].bogus",
        "unknown field `bogus`",
    );
    rejects(
        d,
        "slide_larger_than_size",
        &win("type = \"sliding\"\nsize = \"10s\"\nslide = \"20s\"\n"),
        10,
        "window[0].slide",
        "slide 20s is larger than size 10s",
    );
    rejects(d, "zero_size", &win("type = \"tumbling\"\nsize = \"0s\"\n"), 9, "window[0].size", "size must be positive");
    let wait = |w: &str| format!("[pipeline]\nwait = {w}\n{}", win("type = \"tumbling\"\nsize = \"1s\"\n"));
    rejects(
        d,
        "wait_unknown",
        &wait("\"spin-yield\""),
        2,
        "pipeline.wait",
        "expected one of `spin`, `spin-then-yield`, `park`",
    );
    rejects(d, "wait_number", &wait("3"), 2, "pipeline.wait", "integer is not a wait strategy");
    rejects(d, "wait_role", &wait("{ worker = \"park\" }"), 2, "pipeline.wait", "unknown field `worker`");
    rejects(
        d,
        "sink_of_no_stream",
        &format!("{SRC}\n[[sink]]\nstream = \"nope\"\ntype = \"stdout\"\n"),
        7,
        "sink[0].stream",
        "no stream is named `nope`",
    );
    rejects(
        d,
        "core_that_does_not_exist",
        &format!("[pipeline]\ncores = {{ workers = [4096] }}\n{SRC}"),
        2,
        "pipeline.cores.workers[0]",
        "core 4096 does not exist on this machine",
    );
    rejects(
        d,
        "wrong_type",
        &format!("[pipeline]\nworkers = \"two\"\n{SRC}"),
        2,
        "pipeline.workers",
        "invalid type: string \"two\", expected usize",
    );
    rejects(
        d,
        "key_that_does_not_apply",
        &format!("{SRC}rate = 5\n"),
        5,
        "source[0].rate",
        "does not apply to a csv source",
    );
    rejects(
        d,
        "not_a_duration",
        &win("type = \"tumbling\"\nsize = \"soon\"\n"),
        9,
        "window[0].size",
        "`soon` is not a duration",
    );
    rejects(
        d,
        "unknown_aggregate",
        &win("type = \"tumbling\"\nsize = \"1s\"\naggregates = [\"open\", \"median\"]\n"),
        10,
        "window[0].aggregates[1]",
        "unknown aggregate `median`",
    );
    rejects(
        d,
        "duration_finer_than_the_unit",
        &win("type = \"tumbling\"\nsize = \"1500us\"\n"),
        9,
        "window[0].size",
        "is not a whole number of the source's time unit (ms)",
    );
    rejects(
        d,
        "unknown_column",
        &win("type = \"tumbling\"\nsize = \"1s\"\n[[sink]]\nstream = \"w\"\ntype = \"stdout\"\ncolumns = [\"symbol\", \"ema\"]\n"),
        13,
        "sink[0].columns[1]",
        "`ema` is not a column of this stream",
    );
    rejects(
        d,
        "inline_emitter_with_two_workers",
        &format!("[pipeline]\nworkers = 2\nemitter = \"inline\"\n{SRC}"),
        3,
        "pipeline.emitter",
        "\"inline\" needs workers = 1",
    );

    // Every error is reported, one per line.
    let path = d.join("two_errors.toml");
    std::fs::write(&path, format!("[pipeline]\nworkers = 0\n{SRC}\n[[sink]]\nstream = \"x\"\ntype = \"null\"\n"))
        .unwrap();
    let o = ticklane(&["check", "--config", path.to_str().unwrap()], d);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(err.contains(":2:1: key `pipeline.workers`: must be at least 1"), "{err}");
    assert!(err.contains(":9:1: key `sink[0].stream`: no stream is named `x`"), "{err}");

    // Not TOML at all, and no file.
    let path = d.join("syntax.toml");
    std::fs::write(&path, "[pipeline]\nworkers = \n").unwrap();
    let o = ticklane(&["check", "--config", path.to_str().unwrap()], d);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains(&format!("{}:2:", path.display())), "{}", stderr(&o));
    let o = ticklane(&["check", "--config", "missing.toml"], d);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("cannot read missing.toml"), "{}", stderr(&o));
}

// ------------------------------------------------------------------------------------------------------
// Bad input
// ------------------------------------------------------------------------------------------------------

#[test]
fn malformed_csv_lines_go_to_the_rejects_stream_and_good_lines_are_processed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let long_price = format!("1700000000012,AAA,{},1,B", "9".repeat(300));
    // (line text, Some(reason) if rejected)
    let lines: Vec<(Vec<u8>, Option<&str>)> = vec![
        (b"ts,symbol,price,qty,side".to_vec(), None),
        (b"1700000000000,AAA,10.5,3,B".to_vec(), None),
        (b"1700000000001,AAA,abc,3,B".to_vec(), Some("price is not a decimal with at most 9 fractional digits")),
        (b"1700000000002,BBB,11".to_vec(), Some("missing field qty")),
        (b"xyz,AAA,10,1,S".to_vec(), Some("timestamp is not an integer")),
        (b"1700000000003,AAA,10,1,S,extra".to_vec(), Some("too many fields (expected ts,symbol,price,qty[,side])")),
        (b"1700000000004,A\xffA,10,1,S".to_vec(), Some("not UTF-8")),
        (b"1700000000005,BBB,12.25,7".to_vec(), None),
        (b"".to_vec(), None),
        (b"1700000000006,AAA,11,2,S\r".to_vec(), None),
        (b"1700000000007,AAA,11,2.5,S".to_vec(), Some("quantity is not an integer")),
        (b"1700000000008,AAA,11,2,X".to_vec(), Some("side is not one of B, S, buy, sell, 1, -1")),
        (b"1700000000009,,11,2,B".to_vec(), Some("empty symbol")),
        (b"99999999999999999,AAA,1,1,B".to_vec(), Some("timestamp out of range for i64 nanoseconds")),
        (
            b"1700000000010,AAA,1.1234567891,1,B".to_vec(),
            Some("price is not a decimal with at most 9 fractional digits"),
        ),
        (b"1700000001500,BBB,13,1,buy".to_vec(), None),
        (b"1700000000011".to_vec(), Some("missing field symbol")),
        (long_price.clone().into_bytes(), Some("price is not a decimal with at most 9 fractional digits")),
        (b"1700000002000,AAA,9.75,4,sell".to_vec(), None),
    ];
    let mut input = Vec::new();
    for (l, _) in &lines {
        input.extend_from_slice(l);
        input.push(b'\n');
    }
    std::fs::write(d.join("bad.csv"), &input).unwrap();
    let toml = r#"
[metrics]
live = false
[[source]]
name = "trades"
type = "csv"
path = "bad.csv"
[[window]]
name = "bars"
type = "tumbling"
size = "1s"
aggregates = ["count", "volume"]
[[continuous]]
name = "ticks"
[[sink]]
stream = "bars"
type = "csv"
path = "out/bars.csv"
[[sink]]
stream = "ticks"
type = "csv"
path = "out/ticks.csv"
[[sink]]
stream = "trades_rejects"
type = "csv"
path = "out/rejects.csv"
"#;
    let o = run_config(d, "job.toml", toml);
    let err = stderr(&o);
    let bad: Vec<(usize, &str, &[u8])> =
        lines.iter().enumerate().filter_map(|(i, (l, r))| r.map(|r| (i + 1, r, &l[..l.len().min(200)]))).collect();
    let good = lines.iter().skip(1).filter(|(l, r)| r.is_none() && !l.is_empty()).count();
    assert_eq!((bad.len(), good), (12, 5));

    let rej = csv_records(&std::fs::read(d.join("out/rejects.csv")).unwrap());
    assert_eq!(rej[0], [&b"line"[..], b"reason", b"text"], "rejects header");
    let got: Vec<(usize, String, Vec<u8>)> = rej[1..]
        .iter()
        .map(|r| {
            assert_eq!(r.len(), 3, "reject row {r:?}");
            (String::from_utf8_lossy(&r[0]).parse().unwrap(), String::from_utf8_lossy(&r[1]).into_owned(), r[2].clone())
        })
        .collect();
    let want: Vec<(usize, String, Vec<u8>)> = bad.iter().map(|(n, r, t)| (*n, r.to_string(), t.to_vec())).collect();
    assert_eq!(got, want, "rejected lines: (line number, reason, first 200 bytes of the text)");

    let ticks = Table::read(&d.join("out/ticks.csv"));
    assert_eq!(ticks.rows.len(), good, "one tick per good line");
    let bars = Table::read(&d.join("out/bars.csv"));
    let counted: u64 = bars.rows.iter().map(|r| r[bars.col("count")].parse::<u64>().unwrap()).sum();
    assert_eq!(counted, good as u64, "every good line is counted in a bar: {:?}", bars.rows);
    let by_sym: BTreeMap<String, i64> = bars.rows.iter().fold(BTreeMap::new(), |mut m, r| {
        *m.entry(r[0].clone()).or_default() += r[bars.col("volume")].parse::<i64>().unwrap();
        m
    });
    assert_eq!(by_sym, BTreeMap::from([("AAA".to_string(), 9), ("BBB".to_string(), 8)]));
    assert!(err.contains(&format!("{good} events in")), "summary: {err}");
    assert!(err.contains(&format!("0 late, {} rejected", bad.len())), "summary: {err}");
}

#[test]
fn malformed_json_lines_go_to_a_named_rejects_stream() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let lines = [
        (r#"{"t":1700000000000,"s":"AAA","p":10.5,"q":3}"#, None),
        ("not json", Some("not a JSON object")),
        (r#"{"t":1700000000001,"s":"AAA","p":1}"#, Some("missing field qty")),
        (r#"{"t":1.5,"s":"AAA","p":1,"q":1}"#, Some("timestamp is not an integer")),
        (
            r#"{"t":1700000000002,"s":"AAA","p":1e3,"q":1}"#,
            Some("price is not a decimal with at most 9 fractional digits"),
        ),
        ("   ", None),
        (r#"{"t":"1700000000003","s":"BBB","p":"7.25","q":"2","side":"S"}"#, None),
        (r#"{"t":1700000000004,"s":"AAA","p":1,"q":1} trailing"#, Some("not a JSON object")),
    ];
    let text: String = lines.iter().map(|(l, _)| format!("{l}\n")).collect();
    std::fs::write(d.join("in.jsonl"), text).unwrap();
    let toml = r#"
[metrics]
live = false
summary = false
[[source]]
name = "feed"
type = "jsonl"
path = "in.jsonl"
fields = { ts = "t", symbol = "s", price = "p", qty = "q" }
rejects = "broken"
[[continuous]]
name = "ticks"
[[sink]]
stream = "ticks"
type = "csv"
path = "ticks.csv"
[[sink]]
stream = "broken"
type = "jsonl"
path = "broken.jsonl"
"#;
    run_config(d, "job.toml", toml);
    let got: Vec<(u64, String, String)> = std::fs::read_to_string(d.join("broken.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}"));
            (v["line"].as_u64().unwrap(), v["reason"].as_str().unwrap().into(), v["text"].as_str().unwrap().into())
        })
        .collect();
    let want: Vec<(u64, String, String)> = lines
        .iter()
        .enumerate()
        .filter_map(|(i, (l, r))| r.map(|r| (i as u64 + 1, r.to_string(), l.to_string())))
        .collect();
    assert_eq!(got, want);
    let ticks = Table::read(&d.join("ticks.csv"));
    let prices: Vec<&str> = ticks.rows.iter().map(|r| r[ticks.col("price")].as_str()).collect();
    assert_eq!(prices, ["10.5", "7.25"], "the good lines, prices exact");
}

#[test]
fn more_instruments_than_max_instruments_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("t.csv"),
        "ts,symbol,price,qty,side\n1,A,1,1,B\n2,B,1,1,B\n3,C,1,1,B\n4,A,1,1,B\n5,D,1,1,B\n6,B,1,1,B\n",
    )
    .unwrap();
    let toml = r#"
[pipeline]
max_instruments = 2
[metrics]
live = false
summary = false
[[source]]
name = "trades"
type = "csv"
path = "t.csv"
[[continuous]]
name = "ticks"
[[sink]]
stream = "ticks"
type = "csv"
path = "ticks.csv"
[[sink]]
stream = "trades_rejects"
type = "csv"
path = "rejects.csv"
"#;
    run_config(d, "job.toml", toml);
    let ticks = Table::read(&d.join("ticks.csv"));
    let syms: Vec<&str> = ticks.rows.iter().map(|r| r[1].as_str()).collect();
    assert_eq!(syms, ["A", "B", "A", "B"]);
    let rej = csv_records(&std::fs::read(d.join("rejects.csv")).unwrap());
    let got: Vec<Vec<String>> =
        rej.iter().map(|r| r.iter().map(|f| String::from_utf8_lossy(f).into_owned()).collect()).collect();
    let reason = "more distinct instruments than pipeline.max_instruments";
    assert_eq!(got, [vec!["line", "reason", "text"], vec!["4", reason, "3,C,1,1,B"], vec!["6", reason, "5,D,1,1,B"]]);
}

/// Late elements are never dropped silently: a late stream with no sink is counted and named at the end.
#[test]
fn a_stream_without_a_sink_is_counted_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("t.csv"), "ts,symbol,price,qty\n5000,A,1,1\n1000,A,2,1\n6000,A,3,1\n").unwrap();
    let toml = r#"
[metrics]
live = false
summary = false
[[source]]
name = "trades"
type = "csv"
path = "t.csv"
[[window]]
name = "bars"
type = "tumbling"
size = "1s"
[[sink]]
stream = "bars"
type = "csv"
path = "bars.csv"
"#;
    let o = run_config(d, "job.toml", toml);
    let err = stderr(&o);
    assert!(err.contains("1 late"), "the late trade is counted: {err}");
    let line = err.lines().find(|l| l.contains("bars_late")).unwrap_or_else(|| panic!("bars_late is not named: {err}"));
    assert!(line.contains('1'), "with its count: {line}");
    assert_eq!(Table::read(&d.join("bars.csv")).rows.len(), 2);
}

#[test]
fn missing_input_file_and_unwritable_sink_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("blocker"), "a file, not a directory").unwrap();
    std::fs::write(d.join("t.csv"), "ts,symbol,price,qty\n1,A,1,1\n").unwrap();
    let job = |input: &str, sink: &str| {
        format!(
            "[metrics]\nlive = false\n[[source]]\nname = \"trades\"\ntype = \"csv\"\npath = \"{input}\"\n\
             [[continuous]]\nname = \"ticks\"\n[[sink]]\nstream = \"ticks\"\ntype = \"csv\"\npath = \"{sink}\"\n"
        )
    };
    for (name, toml, msg) in [
        ("no_input", job("nope.csv", "out.csv"), "source `trades`: cannot open nope.csv"),
        (
            "bad_sink",
            job("t.csv", "blocker/out.csv"),
            "opening the sink of stream `ticks`: cannot create directory blocker",
        ),
    ] {
        std::fs::write(d.join(format!("{name}.toml")), toml).unwrap();
        let o = ticklane(&["run", "--config", &format!("{name}.toml")], d);
        assert_eq!(o.status.code(), Some(1), "{name}: {}", stderr(&o));
        assert!(stderr(&o).contains(msg), "{name}: stderr should say `{msg}`: {}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"), "{name}: {}", stderr(&o));
    }
}

// ------------------------------------------------------------------------------------------------------
// JSON lines = CSV
// ------------------------------------------------------------------------------------------------------

/// The same job over the same trades, once from CSV and once from JSON lines, with one source each.
fn job(source: &str, out: &str) -> String {
    format!(
        r#"
[pipeline]
workers = 2
[metrics]
live = false
summary = false
[[source]]
name = "trades"
{source}
ts_unit = "ms"
max_out_of_orderness = "500ms"
[[window]]
name = "bars"
type = "tumbling"
size = "1s"
allowed_lateness = "1s"
aggregates = ["open", "high", "low", "close", "volume", "vwap", "twap", "count", "pv", "first_ts", "last_ts"]
[[window]]
name = "slide"
type = "sliding"
size = "25s"
slide = "10s"
aggregates = ["open", "close", "volume", "vwap", "twap", "count"]
[[window]]
name = "sess"
type = "session"
gap = "200ms"
allowed_lateness = "500ms"
aggregates = ["count", "first_ts", "last_ts", "vwap", "twap"]
[[continuous]]
name = "ticks"
{sinks}"#,
        sinks = ["bars", "bars_late", "slide", "slide_late", "sess", "sess_late", "ticks"]
            .iter()
            .map(|s| format!("[[sink]]\nstream = \"{s}\"\ntype = \"csv\"\npath = \"{out}/{s}.csv\"\n"))
            .collect::<String>()
    )
}

#[test]
fn jsonl_source_gives_the_same_results_as_csv() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let csv = gen(d, "trades.csv", &["-n", "20000", "--instruments", "15", "--seed", "9", "--late-fraction", "0.01"]);
    // The same trades as JSON: custom field names, numbers sometimes as strings, keys in varying order,
    // extra fields.
    let t = Table::read(&csv);
    let mut json = String::new();
    for (i, r) in t.rows.iter().enumerate() {
        let (ts, sym, price, qty, side) = (&r[0], &r[1], &r[2], &r[3], &r[4]);
        let line = match i % 3 {
            0 => format!(r#"{{"t":{ts},"s":"{sym}","p":{price},"q":{qty},"side":"{side}"}}"#),
            1 => format!(
                r#"{{"q":"{qty}","extra":[1,{{"x":"y"}}],"p":"{price}","side":"{side}","s":"{sym}","t":"{ts}"}}"#
            ),
            _ => format!(
                r#"{{ "s" : "{sym}", "t" : {ts}, "p" : "{price}", "q" : {qty}, "side" : "{side}", "n": null }}"#
            ),
        };
        json.push_str(&line);
        json.push('\n');
    }
    std::fs::write(d.join("trades.jsonl"), json).unwrap();
    run_config(d, "csv.toml", &job("type = \"csv\"\npath = \"trades.csv\"", "out_csv"));
    run_config(
        d,
        "jsonl.toml",
        &job("type = \"jsonl\"\npath = \"trades.jsonl\"\nfields = { ts = \"t\", symbol = \"s\", price = \"p\", qty = \"q\" }", "out_jsonl"),
    );
    for s in ["bars", "bars_late", "slide", "slide_late", "sess", "sess_late", "ticks"] {
        let read = |sub: &str| {
            let text = std::fs::read_to_string(d.join(sub).join(format!("{s}.csv"))).unwrap();
            let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
            let header = lines.remove(0);
            lines.sort();
            (header, lines)
        };
        let (a, b) = (read("out_csv"), read("out_jsonl"));
        assert_eq!(a.0, b.0, "{s}: headers differ");
        assert!(!a.1.is_empty() || s == "slide_late", "{s}: the CSV run wrote nothing");
        if a.1 != b.1 {
            let only_csv: Vec<&String> = a.1.iter().filter(|l| !b.1.contains(l)).take(5).collect();
            let only_json: Vec<&String> = b.1.iter().filter(|l| !a.1.contains(l)).take(5).collect();
            panic!(
                "{s}: the JSON-lines source gives different rows ({} vs {}): only from CSV {only_csv:?}, only from JSON {only_json:?}",
                a.1.len(),
                b.1.len()
            );
        }
    }
}

// ------------------------------------------------------------------------------------------------------
// Sinks
// ------------------------------------------------------------------------------------------------------

#[test]
fn csv_and_jsonl_sinks_of_one_stream_hold_the_same_rows_and_columns_can_be_chosen() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    gen(d, "trades.csv", &["-n", "5000", "--instruments", "5", "--seed", "3"]);
    let toml = r#"
[metrics]
live = false
summary = false
[[source]]
name = "trades"
type = "csv"
path = "trades.csv"
max_out_of_orderness = "2s"
[[window]]
name = "bars"
type = "tumbling"
size = "1s"
[[sink]]
stream = "bars"
type = "csv"
path = "bars.csv"
[[sink]]
stream = "bars"
type = "jsonl"
path = "bars.jsonl"
[[sink]]
stream = "bars"
type = "csv"
path = "narrow.csv"
columns = ["close", "symbol", "window_end"]
header = false
"#;
    run_config(d, "job.toml", toml);
    let csv = Table::read(&d.join("bars.csv"));
    assert_eq!(
        csv.header,
        [
            "symbol",
            "window_start",
            "window_end",
            "open",
            "high",
            "low",
            "close",
            "volume",
            "vwap",
            "twap",
            "count",
            "fire",
            "is_update"
        ],
        "default window columns"
    );
    let json: Vec<serde_json::Value> = std::fs::read_to_string(d.join("bars.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect();
    assert_eq!(csv.rows.len(), json.len());
    assert!(!json.is_empty());
    for (r, j) in csv.rows.iter().zip(&json) {
        for (i, c) in csv.header.iter().enumerate() {
            let v = &j[c.as_str()];
            let text = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            assert_eq!(text, r[i], "column {c}: csv {r:?} vs json {j}");
        }
    }
    let narrow = std::fs::read_to_string(d.join("narrow.csv")).unwrap();
    let want: String = csv.rows.iter().map(|r| format!("{},{},{}\n", r[6], r[0], r[2])).collect();
    assert_eq!(narrow, want, "chosen columns, in order, without header");
}

// ------------------------------------------------------------------------------------------------------
// stats
// ------------------------------------------------------------------------------------------------------

/// Every event timed, and the histograms written to `lat.hlog` every 50 ms.
const EVERY_EVENT_TIMED: &str = r#"[metrics]
interval = "50ms"
histogram_log = "lat.hlog"
live = false
summary = false
latency_sample = 1"#;

#[test]
fn stats_prints_the_percentile_table_of_a_runs_histogram_log() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let toml = format!(
        r#"
{EVERY_EVENT_TIMED}
[[source]]
name = "trades"
type = "synthetic"
events = 300000
instruments = 50
ts_unit = "ms"
[[window]]
name = "bars"
type = "tumbling"
size = "1s"
[[continuous]]
name = "ticks"
[[sink]]
stream = "bars"
type = "null"
[[sink]]
stream = "ticks"
type = "null"
"#
    );
    run_config(d, "job.toml", &toml);
    let o = ticklane_ok(&["stats", "lat.hlog"], d);
    let out = stdout(&o);
    let mut lines = out.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["stage", "count", "p50", "p90", "p99", "p99.9", "p99.99", "max"], "{out}");
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split_whitespace().collect()).collect();
    // (The rows come in order of each stage's first appearance in the log, which depends on thread timing.)
    let mut stages: Vec<&str> = rows.iter().map(|r| r[0]).collect();
    stages.sort();
    assert_eq!(stages, ["end_to_end", "ingest_to_shard", "shard", "shard_to_sink"], "{out}");
    for r in &rows {
        assert_eq!(r.len(), 8, "a full row: {r:?}");
        let count: u64 = r[1].parse().unwrap();
        assert!(count > 0, "{} has samples: {out}", r[0]);
        for v in &r[2..] {
            assert!(
                ["ns", "µs", "ms", "s"].iter().any(|u| v.ends_with(u)) && v.chars().next().unwrap().is_ascii_digit(),
                "{v} is a latency with a unit: {out}"
            );
        }
    }
    // Every event is timed (latency_sample = 1) on its way into a shard and in the shard.
    for stage in ["ingest_to_shard", "shard"] {
        let r = rows.iter().find(|r| r[0] == stage).unwrap();
        assert_eq!(r[1], "300000", "{stage}: {out}");
    }
}

/// With every event timed, every window result fired before the end of the input carries a time: those fired
/// by the watermark an event brings to its shard, and those fired by a watermark broadcast alone (here every
/// bar of an instrument that trades once a second, on a shard that sees nothing else).
#[test]
fn every_window_result_before_the_end_is_timed_when_every_event_is() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Ids follow first appearance: A is 0 and B is 1, and two workers put them on different shards.
    assert_ne!(ticklane::source::SourceOut::shard_of(0, 2), ticklane::source::SourceOut::shard_of(1, 2));
    let mut csv = String::from("ts,symbol,price,qty\n");
    for ms in 0..6_000 {
        if ms % 1_000 == 0 {
            csv.push_str(&format!("{ms},A,10.0,1\n"));
        }
        csv.push_str(&format!("{ms},B,20.0,1\n"));
    }
    std::fs::write(d.join("trades.csv"), csv).unwrap();
    let toml = format!(
        r#"
[pipeline]
workers = 2
{EVERY_EVENT_TIMED}
[[source]]
name = "trades"
type = "csv"
path = "trades.csv"
ts_unit = "ms"
max_out_of_orderness = "0s"
[[window]]
name = "bars"
type = "tumbling"
size = "100ms"
aggregates = ["count"]
[[sink]]
stream = "bars"
type = "csv"
path = "bars.csv"
"#
    );
    run_config(d, "job.toml", &toml);
    let bars = csv_records(&std::fs::read(d.join("bars.csv")).unwrap());
    assert_eq!(bars.len(), 1 + 6 + 60, "a header, A's six bars and B's sixty");
    let o = ticklane_ok(&["stats", "lat.hlog"], d);
    let out = stdout(&o);
    let row: Vec<&str> = out.lines().find(|l| l.starts_with("end_to_end")).unwrap().split_whitespace().collect();
    // All but B's last bar, [5.9 s, 6 s): the watermark stops at 5.998 s, and the end of the input fires it.
    assert_eq!(row[1], "65", "timed results: {out}");
}

/// `stats --url` against a running job's endpoint: the table of its histograms since the start, and with
/// `--plot` a PNG that decodes and has curves drawn on it.
#[test]
fn stats_reads_a_running_jobs_endpoint_and_plots_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("job.toml"), common::paced_job("listen = \"127.0.0.1:0\"", "")).unwrap();
    let r = common::Running::start_logging(&["run", "--config", "job.toml"], d, "info");
    assert!(
        common::wait_until(Duration::from_secs(30), || common::metrics_addr(&r).is_some()),
        "{}",
        r.stderr_so_far()
    );
    let addr = common::metrics_addr(&r).unwrap();
    // Until the endpoint has samples of every stage: results come only as windows close, and only those of timed
    // events (every 4th) are timed, so on a slow start the first intervals may hold none.
    let every_stage = || {
        let (_, _, log) = common::http_get(&addr, "/api/histograms");
        ["ingest_to_shard", "shard", "shard_to_sink", "end_to_end"].iter().all(|s| log.contains(&format!("Tag={s},")))
    };
    assert!(
        common::wait_until(Duration::from_secs(30), every_stage),
        "no samples of every stage after 30 s:\n{}",
        r.stderr_so_far()
    );
    let url = format!("http://{addr}");
    let o = ticklane_ok(&["stats", "--url", &url, "--plot", "lat.png"], d);
    let out = stdout(&o);
    let mut lines = out.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["stage", "count", "p50", "p90", "p99", "p99.9", "p99.99", "max"], "{out}");
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split_whitespace().collect()).collect();
    let stages: Vec<&str> = rows.iter().map(|r| r[0]).collect();
    assert_eq!(stages, ["ingest_to_shard", "shard", "shard_to_sink", "end_to_end"], "pipeline order: {out}");
    for r in &rows {
        assert_eq!(r.len(), 8, "a full row: {r:?}");
        assert!(r[1].parse::<u64>().unwrap() > 0, "{out}");
    }
    // The same histograms the endpoint serves, read as a log by the file path.
    let (status, _, log) = common::http_get(&addr, "/api/histograms");
    assert_eq!(status, 200);
    assert!(log.contains("Tag=shard,"), "{log}");
    // Without the scheme too.
    let o = ticklane_ok(&["stats", "--metrics-addr", &addr], d);
    assert!(stdout(&o).starts_with("stage"), "{}", stdout(&o));

    let png = image::open(d.join("lat.png")).expect("a PNG that decodes").to_rgb8();
    assert!(png.width() >= 800 && png.height() >= 500, "{}x{}", png.width(), png.height());
    let mut colors = std::collections::HashSet::new();
    let mut not_white = 0u64;
    for p in png.pixels() {
        colors.insert(p.0);
        not_white += (p.0 != [255, 255, 255]) as u64;
    }
    // Text, grid and one coloured line per stage: many colours and a fair share of pixels.
    assert!(colors.len() > 20, "{} colours: a blank plot", colors.len());
    assert!(not_white > 5_000, "{not_white} pixels drawn: a blank plot");
    // Each stage's line colour (plotters' Palette99, in order) is on the plot.
    for rgb in [[230u8, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200]] {
        assert!(png.pixels().any(|p| p.0 == rgb), "no line of colour {rgb:?}");
    }

    // A stopped job: a clear error, no table.
    drop(r);
    let o = ticklane(&["stats", "--url", &url], d);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("reading the histograms at"), "{}", stderr(&o));
}

/// `[metrics] latency = false`: nothing is timed (the event stages stay empty), everything is still counted;
/// latency alerts cannot be asked for then.
#[test]
fn with_latency_off_nothing_is_timed_and_everything_counted() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let job = |extra: &str| {
        format!(
            "[metrics]\nlive = false\nlatency = false\nhistogram_log = \"lat.hlog\"\ninterval = \"50ms\"\n{extra}\n\
             [[source]]\nname = \"trades\"\ntype = \"synthetic\"\nevents = 100000\ninstruments = 20\nts_unit = \"ms\"\n\
             [[window]]\nname = \"bars\"\ntype = \"tumbling\"\nsize = \"1s\"\n\
             [[sink]]\nstream = \"bars\"\ntype = \"null\"\n"
        )
    };
    let o = run_config(d, "job.toml", &job(""));
    let err = stderr(&o);
    assert!(err.contains("ticklane: 100000 events in"), "{err}");
    assert!(err.contains("latency: not timed ([metrics] latency = false)"), "{err}");
    // The interval log holds no event stage.
    let o = ticklane(&["stats", "lat.hlog"], d);
    assert!(!stdout(&o).contains("end_to_end") && !stdout(&o).contains("ingest_to_shard"), "{}", stdout(&o));

    std::fs::write(d.join("bad.toml"), job("[[alerts.latency]]\nstage = \"shard\"\nquantile = 0.99\nabove = \"1ms\""))
        .unwrap();
    let o = ticklane(&["check", "--config", "bad.toml"], d);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("alerts.latency[0]") && stderr(&o).contains("latency = false"), "{}", stderr(&o));
}

#[test]
fn stats_on_files_that_are_not_histogram_logs_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("garbage.hlog"), "0.0,1.0,2.0,not-base64$$\nhello\n").unwrap();
    std::fs::write(d.join("binary.hlog"), [0u8, 159, 146, 150, 255, 10, 1, 2]).unwrap();
    std::fs::write(d.join("empty.hlog"), "").unwrap();
    for (file, msg) in [
        ("garbage.hlog", "error: garbage.hlog: interval 1 (): bad base64"),
        ("binary.hlog", "error: binary.hlog: entry 1: not an HdrHistogram interval log"),
        ("empty.hlog", "no histograms in this log"),
        ("missing.hlog", "cannot read missing.hlog"),
    ] {
        let o = ticklane(&["stats", file], d);
        assert_eq!(o.status.code(), Some(1), "stats {file}: {}", stderr(&o));
        assert!(stderr(&o).contains(msg), "stats {file}: stderr should say `{msg}`: {}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"), "stats {file}: {}", stderr(&o));
        assert!(stdout(&o).is_empty(), "stats {file}: no table: {}", stdout(&o));
    }
}

// ------------------------------------------------------------------------------------------------------
// gen
// ------------------------------------------------------------------------------------------------------

#[test]
fn gen_is_deterministic_for_a_seed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let args = ["-n", "20000", "--instruments", "30", "--seed", "77", "--late-fraction", "0.01"];
    let a = std::fs::read(gen(d, "a.csv", &args)).unwrap();
    let b = std::fs::read(gen(d, "b.csv", &args)).unwrap();
    assert!(a == b, "two runs with seed 77 differ");
    let mut other = args;
    other[5] = "78";
    let c = std::fs::read(gen(d, "c.csv", &other)).unwrap();
    assert!(a != c, "seeds 77 and 78 give the same file");
    let mut to_stdout = vec!["gen", "--out", "-"];
    to_stdout.extend_from_slice(&args);
    let o = ticklane_ok(&to_stdout, d);
    assert!(o.stdout == a, "`--out -` writes the same trades to stdout");

    let t = Table::read(&d.join("a.csv"));
    assert_eq!(t.header, ["ts", "symbol", "price", "qty", "side"]);
    assert_eq!(t.rows.len(), 20000);
    let syms: std::collections::BTreeSet<&str> = t.rows.iter().map(|r| r[1].as_str()).collect();
    assert!(syms.len() <= 30 && syms.iter().all(|s| s.starts_with("SYM")), "{syms:?}");

    for (bad, msg) in [
        (vec!["--unit", "xs"], "--unit must be s, ms, us or ns"),
        (vec!["--instruments", "0"], "--instruments must be at least 1"),
        (vec!["--late-fraction", "1.5"], "--late-fraction must be between 0 and 1"),
        (vec!["--disorder", "later"], "--disorder"),
    ] {
        let mut a = vec!["gen", "--out", "x.csv", "-n", "10"];
        a.extend_from_slice(&bad);
        let o = ticklane(&a, d);
        assert_eq!(o.status.code(), Some(1), "gen {bad:?}");
        assert!(stderr(&o).contains(msg), "gen {bad:?}: {}", stderr(&o));
    }
}

/// `gen` (and the synthetic source, which uses the same generator) draw instrument i with probability
/// proportional to 1 / (i + 1)^zipf: uniform for `--zipf 0`.
#[test]
fn gen_draws_instruments_with_zipf_popularity() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let n = 200_000.0;
    for zipf in [0.0f64, 1.0] {
        let z = zipf.to_string();
        let f = gen(d, &format!("z{z}.csv"), &["-n", "200000", "--instruments", "20", "--seed", "1", "--zipf", &z]);
        let t = Table::read(&f);
        let mut counts = [0u64; 20];
        for r in &t.rows {
            counts[r[1].trim_start_matches("SYM").parse::<usize>().unwrap()] += 1;
        }
        let weights: Vec<f64> = (1..=20).map(|k| 1.0 / (k as f64).powf(zipf)).collect();
        let total: f64 = weights.iter().sum();
        // Within 10 % of the expectation: more than 10 standard deviations for the rarest instrument.
        let off: Vec<String> = (0..20)
            .filter(|&i| (counts[i] as f64 - n * weights[i] / total).abs() > 0.1 * n * weights[i] / total)
            .map(|i| format!("SYM{i:04}: {} trades, expected {:.0}", counts[i], n * weights[i] / total))
            .collect();
        assert!(off.is_empty(), "--zipf {zipf}: instrument popularity is off:\n  {}", off.join("\n  "));
    }
}

// ------------------------------------------------------------------------------------------------------
// Signals and the default job
// ------------------------------------------------------------------------------------------------------

fn paced_job(fire_on_shutdown: bool) -> String {
    format!(
        r#"
[pipeline]
workers = 2
wait = "park"
fire_on_shutdown = {fire_on_shutdown}
[metrics]
live = false
[[source]]
name = "trades"
type = "synthetic"
events = 0
rate = 50000
instruments = 20
disorder = "100ms"
max_out_of_orderness = "100ms"
ts_unit = "ms"
[[window]]
name = "bars"
type = "tumbling"
size = "200ms"
aggregates = ["open", "high", "low", "close", "volume", "vwap", "count"]
[[continuous]]
name = "ticks"
[[sink]]
stream = "bars"
type = "csv"
path = "out/bars.csv"
[[sink]]
stream = "bars_late"
type = "csv"
path = "out/late.csv"
[[sink]]
stream = "ticks"
type = "null"
"#
    )
}

/// Runs the paced unbounded job until bars appear, stops it with `signal`, checks the exit and the summary,
/// and returns (events in, bars, late rows, stderr).
fn interrupt_paced_run(fire_on_shutdown: bool, signal: &str) -> (u64, Table, Table, String) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("job.toml"), paced_job(fire_on_shutdown)).unwrap();
    let mut p = Running::start(&["run", "--config", "job.toml"], d);
    let bars = d.join("out/bars.csv");
    let started = wait_until(Duration::from_secs(30), || complete_lines(&bars) > 40);
    assert!(started, "no bars after 30 s; stderr: {}", p.stderr_so_far());
    p.signal(signal);
    let st = p.wait_for(Duration::from_secs(10));
    assert!(st.is_some(), "still running 10 s after SIG{signal}; stderr: {}", p.stderr_so_far());
    let st = st.unwrap();
    let (_, err) = p.output();
    assert!(st.success(), "exit status after SIG{signal}: {st}; stderr: {err}");
    assert!(err.contains("stopped by signal"), "the summary says it was stopped: {err}");
    for stage in ["latency (sampled every 4 events)", "ingest_to_shard", "shard_to_sink", "end_to_end", "p99.99"] {
        assert!(err.contains(stage), "the latency table has `{stage}`: {err}");
    }
    // Complete files: Table::read checks that every line is terminated and has the header's fields.
    let text = std::fs::read_to_string(&bars).unwrap();
    assert!(text.starts_with("symbol,window_start,window_end,open,high,low,close,volume,vwap,count,fire,is_update\n"));
    let events: u64 = err
        .split("ticklane: ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no event count in the summary: {err}"));
    (events, Table::read(&bars), Table::read(&d.join("out/late.csv")), err)
}

#[test]
fn sigint_stops_a_paced_unbounded_run_with_complete_output() {
    let (events, bars, late, err) = interrupt_paced_run(false, "INT");
    assert!(events > 0);
    let counted: u64 = bars.rows.iter().map(|r| r[bars.col("count")].parse::<u64>().unwrap()).sum();
    assert!(late.rows.is_empty(), "nothing is late with disorder = bound: {:?}", &late.rows[..1]);
    // Without fire_on_shutdown the windows still open at the signal are not emitted.
    assert!(counted < events, "{counted} trades in bars of {events}: open windows were fired; {err}");
}

#[test]
fn fire_on_shutdown_fires_every_open_window_on_sigterm() {
    let (events, bars, late, err) = interrupt_paced_run(true, "TERM");
    let counted: u64 = bars.rows.iter().map(|r| r[bars.col("count")].parse::<u64>().unwrap()).sum();
    assert_eq!(counted + late.rows.len() as u64, events, "every trade is in a bar (or late); {err}");
    let keys: std::collections::BTreeSet<(&str, &str)> =
        bars.rows.iter().map(|r| (r[0].as_str(), r[1].as_str())).collect();
    assert_eq!(keys.len(), bars.rows.len(), "each (symbol, window) once");
}

#[test]
fn default_job_prints_bars_on_stdout_and_latency_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = Running::start(&["run"], dir.path());
    let st = p.wait_for(Duration::from_secs(90));
    assert!(st.is_some(), "the embedded default job (10 s) still runs after 90 s; stderr: {}", p.stderr_so_far());
    let st = st.unwrap();
    let (out, err) = p.output();
    assert!(st.success(), "exit status {st}; stderr: {err}");
    let bars = Table::parse(&out, "stdout");
    assert_eq!(
        bars.header,
        ["symbol", "window_start", "open", "high", "low", "close", "volume", "vwap", "twap", "count"]
    );
    // (Which of the 20 instruments trade is the generator's business: gen_draws_instruments_with_zipf_popularity.)
    let syms: std::collections::BTreeSet<&str> = bars.rows.iter().map(|r| r[0].as_str()).collect();
    assert!(syms.len() > 10 && syms.iter().all(|s| s.starts_with("SYM")), "bars of the instruments: {syms:?}");
    let mut per_sym: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for r in &bars.rows {
        per_sym.entry(r[0].as_str()).or_default().push(r[1].parse().unwrap());
    }
    for (sym, starts) in &per_sym {
        assert!(starts.windows(2).all(|w| w[0] < w[1]), "{sym}'s bars come out in window order: {starts:?}");
        assert!(starts.iter().all(|s| s % 1000 == 0), "{sym}: 1 s windows in ms: {starts:?}");
    }
    let counted: u64 = bars.rows.iter().map(|r| r[9].parse::<u64>().unwrap()).sum();
    assert_eq!(counted, 1_000_000, "every trade of the default feed is in a bar");
    assert!(err.contains("ticklane: 1000000 events in"), "summary: {err}");
    for s in ["latency (sampled every 4 events)", "ingest_to_shard", "shard ", "shard_to_sink", "end_to_end", "p99.9 "]
    {
        assert!(err.contains(s), "the latency table has `{s}`: {err}");
    }
    assert!(!dir.path().read_dir().unwrap().any(|_| true), "the default job writes no files");
}

/// A paced file replay sleeps until its next event is due; a signal must still stop it promptly.
#[test]
fn sigint_stops_a_paced_file_replay_waiting_for_its_next_event() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("gap.csv"), "ts,symbol,price,qty\n1700000000000,AAA,10,1\n1700003600000,AAA,11,1\n").unwrap();
    let toml = r#"
[metrics]
live = false
summary = false
[[source]]
name = "trades"
type = "csv"
path = "gap.csv"
speed = 1.0
[[continuous]]
name = "ticks"
[[sink]]
stream = "ticks"
type = "csv"
path = "ticks.csv"
"#;
    std::fs::write(d.join("job.toml"), toml).unwrap();
    let mut p = Running::start(&["run", "--config", "job.toml"], d);
    assert!(
        wait_until(Duration::from_secs(20), || complete_lines(&d.join("ticks.csv")) >= 2),
        "the first trade was not processed; stderr: {}",
        p.stderr_so_far()
    );
    // The source now waits an hour (of recorded time, at speed 1) for the second trade.
    p.signal("INT");
    let st = p.wait_for(Duration::from_secs(5));
    assert!(
        st.is_some(),
        "a paced CSV replay waiting for its next event (1 h ahead) ignores SIGINT: still running 5 s later \
         (a second signal exits 130); stderr: {}",
        p.stderr_so_far()
    );
    assert!(st.unwrap().success());
}

// ------------------------------------------------------------------------------------------------------
// Several sources: idleness, and whose watermark a window follows
// ------------------------------------------------------------------------------------------------------

/// A trade file whose event time starts a year from now (so that the wall-clock watermark of a paced
/// synthetic source is far behind it), symbols `ASYM…`, no trade later than the bound.
fn future_trades(d: &Path) -> usize {
    let start = (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64)
        + 365 * 86_400_000;
    let start = start.to_string();
    let f = gen(
        d,
        "a.csv",
        &[
            "-n",
            "3000",
            "--instruments",
            "5",
            "--seed",
            "5",
            "--start",
            &start,
            "--disorder",
            "300ms",
            "--late-fraction",
            "0",
        ],
    );
    let text = std::fs::read_to_string(&f).unwrap().replace(",SYM", ",ASYM");
    std::fs::write(&f, text).unwrap();
    3000
}

const A_SOURCE: &str = "[[source]]\nname = \"a\"\ntype = \"csv\"\npath = \"a.csv\"\nmax_out_of_orderness = \"300ms\"\n";

fn bars_job(sources: &str, window_input: &str) -> String {
    format!(
        "[metrics]\nlive = false\nsummary = false\n{sources}\n[[window]]\nname = \"bars\"\ntype = \"tumbling\"\n\
         size = \"1s\"\n{window_input}\n[[continuous]]\nname = \"ticks\"\ninput = \"a\"\n\
         [[sink]]\nstream = \"bars\"\ntype = \"csv\"\npath = \"bars.csv\"\n\
         [[sink]]\nstream = \"ticks\"\ntype = \"csv\"\npath = \"ticks.csv\"\n"
    )
}

/// Source `a`'s bars as sorted lines.
fn a_bars(path: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .skip(1)
        .filter(|l| l.starts_with("ASYM"))
        .map(String::from)
        .collect();
    v.sort();
    v
}

/// The bars of source `a` processed alone.
fn reference_bars(d: &Path) -> Vec<String> {
    let sub = d.join("reference");
    std::fs::create_dir(&sub).unwrap();
    std::fs::copy(d.join("a.csv"), sub.join("a.csv")).unwrap();
    run_config(&sub, "job.toml", &bars_job(A_SOURCE, ""));
    let v = a_bars(&sub.join("bars.csv"));
    assert!(v.len() > 8, "reference bars: {v:?}");
    v
}

fn slow_source(idle_timeout: Option<&str>) -> String {
    format!(
        "[[source]]\nname = \"b\"\ntype = \"synthetic\"\nevents = 0\nrate = 2\ninstruments = 1\nts_unit = \"ms\"\n{}",
        idle_timeout.map(|t| format!("idle_timeout = \"{t}\"\n")).unwrap_or_default()
    )
}

/// Source `b` sends a trade every 500 ms with event times far behind `a`'s: it holds the watermark back
/// unless it is marked idle between its trades.
#[test]
fn an_idle_source_stops_holding_the_watermark_back() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let n = future_trades(d);
    let want = reference_bars(d);

    // Without idle_timeout: `b` holds every window of `a` back, to the end.
    std::fs::write(d.join("held.toml"), bars_job(&format!("{A_SOURCE}{}", slow_source(None)), "")).unwrap();
    let mut p = Running::start(&["run", "--config", "held.toml"], d);
    assert!(
        wait_until(Duration::from_secs(30), || complete_lines(&d.join("ticks.csv")) > n),
        "source a was not consumed; stderr: {}",
        p.stderr_so_far()
    );
    p.signal("INT");
    assert!(p.wait_for(Duration::from_secs(10)).is_some_and(|s| s.success()), "stderr: {}", p.stderr_so_far());
    assert_eq!(
        a_bars(&d.join("bars.csv")),
        Vec::<String>::new(),
        "a's windows fired although b held the watermark back"
    );

    // With idle_timeout: once `a` has ended and `b` is idle, every window of `a` fires.
    std::fs::remove_file(d.join("ticks.csv")).unwrap();
    std::fs::write(d.join("idle.toml"), bars_job(&format!("{A_SOURCE}{}", slow_source(Some("100ms"))), "")).unwrap();
    let mut p = Running::start(&["run", "--config", "idle.toml"], d);
    let fired = wait_until(Duration::from_secs(30), || {
        complete_lines(&d.join("ticks.csv")) > n && a_bars(&d.join("bars.csv")).len() >= want.len()
    });
    p.signal("INT");
    assert!(p.wait_for(Duration::from_secs(10)).is_some_and(|s| s.success()), "stderr: {}", p.stderr_so_far());
    assert!(
        fired,
        "a's windows did not fire while b was idle: {} of {} bars",
        a_bars(&d.join("bars.csv")).len(),
        want.len()
    );
    assert_eq!(a_bars(&d.join("bars.csv")), want, "a's bars with an idle b are the bars of a alone");
}

/// A window that reads only source `a` follows `a`'s watermark, as a Flink window operator whose only
/// input is `a` does: source `b` (read by nothing but its own rejects) must not hold it back.
#[test]
fn a_window_reading_one_source_follows_that_sources_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let n = future_trades(d);
    let want = reference_bars(d);
    std::fs::write(d.join("job.toml"), bars_job(&format!("{A_SOURCE}{}", slow_source(None)), "input = \"a\"")).unwrap();
    let mut p = Running::start(&["run", "--config", "job.toml"], d);
    assert!(
        wait_until(Duration::from_secs(30), || complete_lines(&d.join("ticks.csv")) > n),
        "source a was not consumed; stderr: {}",
        p.stderr_so_far()
    );
    // `a` has ended (its final watermark is queued behind its last trade): the shards drain their rings
    // before exiting, so every window of `a` must be out once the process has stopped.
    p.signal("INT");
    assert!(p.wait_for(Duration::from_secs(10)).is_some_and(|s| s.success()), "stderr: {}", p.stderr_so_far());
    let got = a_bars(&d.join("bars.csv"));
    assert_eq!(
        got.len(),
        want.len(),
        "window `bars` has `input = \"a\"` and `a` has ended, yet {} of its {} windows fired: the watermark of \
         source `b`, which the window does not read, holds it back",
        got.len(),
        want.len()
    );
    assert_eq!(got, want);
}
