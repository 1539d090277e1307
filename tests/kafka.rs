//! Kafka at both edges, against a real Kafka-protocol broker: the round trip through topics gives what the
//! file gives, two instances in one group give what one gives, bad messages go to the dead-letter topic with
//! their origin, and a broker restart loses nothing.
//!
//! The broker is named by `KAFKA_BOOTSTRAP` (`.ci/run` starts one with `scripts/broker.sh` and sets it).
//! Without it these tests print why and pass; with `CI=true` a missing broker is a failure. The restart test
//! starts a broker of its own (tansu on `PATH`, as `scripts/broker.sh install` leaves it), so it can stop it.

mod common;

use common::{gen, stderr, stdout, ticklane, ticklane_ok, wait_until, Running};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn broker(test: &str) -> Option<String> {
    match std::env::var("KAFKA_BOOTSTRAP") {
        Ok(b) if !b.is_empty() => Some(b),
        _ => {
            assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true but KAFKA_BOOTSTRAP is not set");
            eprintln!("SKIPPED {test}: KAFKA_BOOTSTRAP is not set (scripts/broker.sh start, then KAFKA_BOOTSTRAP=127.0.0.1:19092)");
            None
        }
    }
}

/// A topic name no other test run uses.
fn unique(name: &str) -> String {
    let n = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_nanos();
    format!("{name}-{}-{n}", std::process::id())
}

fn create(b: &str, topic: &str, partitions: u32, dir: &Path) {
    ticklane_ok(&["create-topic", "--brokers", b, "--topic", topic, "--partitions", &partitions.to_string()], dir);
}

fn produce(b: &str, topic: &str, file: &Path, extra: &[&str], dir: &Path) {
    let mut a = vec!["produce", "--brokers", b, "--topic", topic, "--file", file.to_str().expect("utf-8")];
    a.extend_from_slice(extra);
    ticklane_ok(&a, dir);
}

/// Every message of `topic` (waits until none has come for 3 s).
fn consume(b: &str, topic: &str, meta: bool, dir: &Path) -> Vec<String> {
    let mut a = vec!["consume", "--brokers", b, "--topic", topic, "--idle", "3s"];
    if meta {
        a.push("--meta");
    }
    let o = ticklane_ok(&a, dir);
    String::from_utf8(o.stdout).expect("utf-8").lines().map(str::to_string).collect()
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(str::to_string)
        .collect()
}

fn counted(v: &[String]) -> BTreeMap<&str, usize> {
    let mut m = BTreeMap::new();
    for l in v {
        *m.entry(l.as_str()).or_default() += 1;
    }
    m
}

/// Events read so far, from the last live line on stderr (`(total N)`).
fn total_in(r: &Running) -> u64 {
    let err = r.stderr_so_far();
    err.rsplit("(total ").next().and_then(|s| s.split(')').next()).and_then(|n| n.parse().ok()).unwrap_or(0)
}

/// Stops `r` with SIGTERM and returns its stderr (it must exit 0).
fn stop(mut r: Running) -> String {
    r.signal("TERM");
    let st = r.wait_for(Duration::from_secs(60)).expect("ticklane did not stop within 60 s of SIGTERM");
    let (_, err) = r.output();
    assert!(st.success(), "ticklane exited with {st}:\n{err}");
    err
}

/// The pipeline every test runs: 1 s tumbling bars with a late side output, from `source`, to `sinks`.
fn pipeline(source: &str, sinks: &str) -> String {
    format!(
        r#"
[pipeline]
fire_on_shutdown = true
[metrics]
interval = "100ms"
summary = false
{source}
[[window]]
name = "bars"
type = "tumbling"
size = "1s"
allowed_lateness = "500ms"
{sinks}
"#
    )
}

fn kafka_source(b: &str, topic: &str, group: &str, format: &str, extra: &str) -> String {
    format!(
        r#"[[source]]
name = "trades"
type = "kafka"
topics = ["{topic}"]
format = "{format}"
ts_unit = "ms"
max_out_of_orderness = "2s"
commit_interval = "200ms"
{extra}
kafka = {{ "bootstrap.servers" = "{b}", "group.id" = "{group}", "session.timeout.ms" = 6000, "heartbeat.interval.ms" = 1000 }}
"#
    )
}

fn kafka_sinks(b: &str, bars: &str, late: &str) -> String {
    format!(
        r#"[[sink]]
stream = "bars"
type = "kafka"
topic = "{bars}"
kafka = {{ "bootstrap.servers" = "{b}" }}
[[sink]]
stream = "bars_late"
type = "kafka"
topic = "{late}"
kafka = {{ "bootstrap.servers" = "{b}" }}
"#
    )
}

/// Runs the pipeline straight from the CSV file; returns (bars, late) as JSON lines.
fn file_run(dir: &Path, input: &Path) -> (Vec<String>, Vec<String>) {
    let src = format!(
        "[[source]]\nname = \"trades\"\ntype = \"csv\"\npath = \"{}\"\nts_unit = \"ms\"\nmax_out_of_orderness = \"2s\"\n",
        input.display()
    );
    let sinks = "[[sink]]\nstream = \"bars\"\ntype = \"jsonl\"\npath = \"file_bars.jsonl\"\n\
                 [[sink]]\nstream = \"bars_late\"\ntype = \"jsonl\"\npath = \"file_late.jsonl\"\n";
    common::run_config(dir, "file.toml", &pipeline(&src, sinks));
    (lines(&dir.join("file_bars.jsonl")), lines(&dir.join("file_late.jsonl")))
}

fn write_config(dir: &Path, name: &str, toml: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, toml).expect("write config");
    p
}

/// Starts `ticklane run` on `config` and waits until it has read `n` events.
fn run_until(dir: &Path, config: &Path, n: u64) -> Running {
    let r = Running::start(&["run", "--config", config.to_str().expect("utf-8")], dir);
    assert!(
        wait_until(Duration::from_secs(120), || total_in(&r) >= n),
        "ticklane read {} of {n} events in 120 s:\n{}",
        total_in(&r),
        r.stderr_so_far()
    );
    r
}

#[test]
fn kafka_round_trip_gives_what_the_file_gives() {
    let Some(b) = broker("kafka_round_trip_gives_what_the_file_gives") else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Disorder and very late trades, so the late side output and refirings are compared too.
    let input = gen(d, "trades.csv", &["-n", "20000", "--instruments", "40", "--late-fraction", "0.01"]);
    let (want_bars, want_late) = file_run(d, &input);
    assert!(!want_late.is_empty(), "the input should have late trades");
    for format in ["binary", "jsonl", "csv"] {
        let (tin, bars, late) = (unique("rt-in"), unique("rt-bars"), unique("rt-late"));
        // One partition: the topic keeps the file's order, so the watermark advances exactly as it does
        // reading the file.
        for t in [&tin, &bars, &late] {
            create(&b, t, 1, d);
        }
        produce(&b, &tin, &input, &["--format", format], d);
        let cfg = write_config(
            d,
            "kafka.toml",
            &pipeline(&kafka_source(&b, &tin, &unique("g"), format, ""), &kafka_sinks(&b, &bars, &late)),
        );
        let r = run_until(d, &cfg, 20000);
        let err = stop(r);
        let (got_bars, got_late) = (consume(&b, &bars, false, d), consume(&b, &late, false, d));
        assert_eq!(got_bars.len(), want_bars.len(), "{format}: bars\n{err}");
        assert_eq!(counted(&got_bars), counted(&want_bars), "{format}: bars differ");
        assert_eq!(counted(&got_late), counted(&want_late), "{format}: late trades differ");
        if format == "binary" {
            // `consume` from given offsets, and as a group member that resumes where it stopped.
            let o = ticklane_ok(
                &["consume", "--brokers", &b, "--topic", &bars, "--partition", "0", "--offset", "5", "-n", "3"],
                d,
            );
            assert_eq!(
                stdout(&o).lines().collect::<Vec<_>>(),
                got_bars[5..8].iter().map(String::as_str).collect::<Vec<_>>()
            );
            let g = unique("reader");
            let args = ["consume", "--brokers", &b, "--topic", &bars, "--group", &g, "--idle", "3s"];
            assert_eq!(stdout(&ticklane_ok(&args, d)).lines().count(), got_bars.len());
            assert_eq!(stdout(&ticklane_ok(&args, d)).lines().count(), 0, "the group read its messages again");
        }
    }
}

#[test]
fn two_instances_in_one_group_give_what_one_gives() {
    let Some(b) = broker("two_instances_in_one_group_give_what_one_gives") else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // In-order trades: with no late trades, each instrument's bars do not depend on how partitions
    // interleave, so the file run is what one instance gives.
    let input = gen(
        d,
        "trades.csv",
        &["-n", "20000", "--instruments", "40", "--disorder-fraction", "0", "--late-fraction", "0"],
    );
    let (want_bars, _) = file_run(d, &input);
    let (tin, bars, late, group) = (unique("grp-in"), unique("grp-bars"), unique("grp-late"), unique("g"));
    create(&b, &tin, 4, d);
    create(&b, &bars, 1, d);
    create(&b, &late, 1, d);
    // No idle_timeout: a partition that the broker serves late must hold the watermark back rather than be
    // overtaken (its trades would then be late, and differ from the file run's).
    let cfg = write_config(
        d,
        "kafka.toml",
        &pipeline(&kafka_source(&b, &tin, &group, "binary", ""), &kafka_sinks(&b, &bars, &late)),
    );
    let c = cfg.to_str().unwrap();
    let first = Running::start_logging(&["run", "--config", c], d, "info");
    assert!(
        wait_until(Duration::from_secs(60), || first.stderr_so_far().contains("partitions assigned")),
        "the first instance got no partitions:\n{}",
        first.stderr_so_far()
    );
    let second = Running::start_logging(&["run", "--config", c], d, "info");
    assert!(
        wait_until(Duration::from_secs(60), || second.stderr_so_far().contains("partitions assigned")
            && first.stderr_so_far().contains("partitions revoked")),
        "the group did not rebalance onto two instances:\nfirst:\n{}\nsecond:\n{}",
        first.stderr_so_far(),
        second.stderr_so_far()
    );
    produce(&b, &tin, &input, &["--format", "binary"], d);
    assert!(
        wait_until(Duration::from_secs(120), || total_in(&first) + total_in(&second) >= 20000),
        "the instances read {} + {} of 20000 events",
        total_in(&first),
        total_in(&second)
    );
    let (n1, n2) = (total_in(&first), total_in(&second));
    let (e1, e2) = (stop(first), stop(second));
    assert!(n1 > 0 && n2 > 0, "one instance read nothing ({n1} + {n2}):\n{e1}\n{e2}");
    assert_eq!(n1 + n2, 20000, "events read twice or lost:\n{e1}\n{e2}");
    let got = consume(&b, &bars, false, d);
    assert_eq!(counted(&got), counted(&want_bars), "two instances together differ from one");
}

#[test]
fn bad_messages_go_to_the_dead_letter_topic_with_their_origin() {
    let Some(b) = broker("bad_messages_go_to_the_dead_letter_topic_with_their_origin") else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let good = gen(d, "good.csv", &["-n", "3000", "--instruments", "10", "--late-fraction", "0"]);
    let text = std::fs::read_to_string(&good).unwrap();
    let bad = ["1700000000500,SYM1,not-a-price,5,B", "garbage", "1700000000700,SYM2,1.5", "1700000000800,,1.5,1,S"];
    let mut mixed = String::new();
    let mut bad_at = Vec::new(); // offsets of the bad messages (the header line is not sent)
    for (i, l) in text.lines().enumerate() {
        mixed.push_str(l);
        mixed.push('\n');
        if i > 0 && i % 700 == 0 {
            let k = bad_at.len();
            bad_at.push(i - 1 + 1 + k);
            mixed.push_str(bad[k % bad.len()]);
            mixed.push('\n');
        }
    }
    std::fs::write(d.join("mixed.csv"), &mixed).unwrap();
    let (tin, bars, late, dlq) = (unique("dl-in"), unique("dl-bars"), unique("dl-late"), unique("dl-dead"));
    for t in [&tin, &bars, &late, &dlq] {
        create(&b, t, 1, d);
    }
    produce(&b, &tin, &d.join("mixed.csv"), &[], d);
    let extra = format!("dead_letter = \"{dlq}\"");
    let sinks = format!(
        "{}[[sink]]\nstream = \"trades_rejects\"\ntype = \"csv\"\npath = \"rejects.csv\"\n",
        kafka_sinks(&b, &bars, &late)
    );
    let cfg = write_config(d, "kafka.toml", &pipeline(&kafka_source(&b, &tin, &unique("g"), "csv", &extra), &sinks));
    let r = run_until(d, &cfg, 3000);
    let err = stop(r);
    let dead = consume(&b, &dlq, true, d);
    assert_eq!(dead.len(), bad_at.len(), "dead letters:\n{}\n{err}", dead.join("\n"));
    for (k, (row, off)) in dead.iter().zip(&bad_at).enumerate() {
        let f: Vec<&str> = row.split('\t').collect();
        assert_eq!(f.len(), 5, "{row}");
        assert_eq!(f[4], bad[k % bad.len()], "payload kept as it was");
        let headers: BTreeMap<&str, &str> = f[3].split(',').filter_map(|h| h.split_once('=')).collect();
        assert_eq!(headers["ticklane.source.topic"], tin);
        assert_eq!(headers["ticklane.source.partition"], "0");
        assert_eq!(headers["ticklane.source.offset"], off.to_string(), "{row}");
        assert!(!headers["ticklane.reason"].is_empty(), "{row}");
    }
    let rejects = lines(&d.join("rejects.csv"));
    assert_eq!(rejects.len(), bad_at.len() + 1, "rejects stream (with its header):\n{}", rejects.join("\n"));
    // Nothing else was lost: the good trades give what the file gives.
    let (want_bars, _) = file_run(d, &good);
    assert_eq!(counted(&consume(&b, &bars, false, d)), counted(&want_bars));
}

/// A free port on 127.0.0.1.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn broker_script(args: &[&str]) -> std::process::Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/broker.sh");
    std::process::Command::new("bash").arg(script).args(args).output().expect("run scripts/broker.sh")
}

#[test]
fn a_broker_restart_loses_nothing() {
    if broker("a_broker_restart_loses_nothing").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port().to_string();
    let bdir = d.join("broker");
    let bdir_s = bdir.to_str().unwrap();
    let o = broker_script(&["start", &port, bdir_s]);
    assert!(o.status.success(), "cannot start a broker of this test's own: {}", stderr(&o));
    struct Stop(String);
    impl Drop for Stop {
        fn drop(&mut self) {
            broker_script(&["stop", &self.0]);
        }
    }
    let _guard = Stop(bdir_s.to_string());
    let b = format!("127.0.0.1:{port}");
    let input = gen(d, "trades.csv", &["-n", "10000", "--instruments", "20", "--late-fraction", "0"]);
    let text = std::fs::read_to_string(&input).unwrap();
    let all: Vec<&str> = text.lines().collect();
    let (head, tail) = all[1..].split_at(5000);
    std::fs::write(d.join("head.csv"), format!("{}\n{}\n", all[0], head.join("\n"))).unwrap();
    std::fs::write(d.join("tail.csv"), format!("{}\n{}\n", all[0], tail.join("\n"))).unwrap();
    let (tin, bars, late) = (unique("rs-in"), unique("rs-bars"), unique("rs-late"));
    for t in [&tin, &bars, &late] {
        create(&b, t, 1, d);
    }
    produce(&b, &tin, &d.join("head.csv"), &["--format", "binary"], d);
    let cfg = write_config(
        d,
        "kafka.toml",
        &pipeline(&kafka_source(&b, &tin, &unique("g"), "binary", ""), &kafka_sinks(&b, &bars, &late)),
    );
    let mut r = run_until(d, &cfg, 5000);
    // The broker goes away for 3 s: ticklane keeps running and says so.
    let o = broker_script(&["stop", bdir_s]);
    assert!(o.status.success(), "{}", stderr(&o));
    std::thread::sleep(Duration::from_secs(3));
    assert!(r.wait_for(Duration::ZERO).is_none(), "ticklane stopped without its broker:\n{}", r.stderr_so_far());
    let o = broker_script(&["start", &port, bdir_s]);
    assert!(o.status.success(), "cannot restart the broker: {}", stderr(&o));
    produce(&b, &tin, &d.join("tail.csv"), &["--format", "binary"], d);
    assert!(
        wait_until(Duration::from_secs(120), || total_in(&r) >= 10000),
        "read {} of 10000 after the restart:\n{}",
        total_in(&r),
        r.stderr_so_far()
    );
    let err = stop(r);
    let (want_bars, _) = file_run(d, &input);
    let got = consume(&b, &bars, false, d);
    // At least once: every bar is there. The group may rebalance when its coordinator comes back, and the
    // partition is then read again from the last commit: against this broker (no offset metadata returned) a
    // window spanning that commit may be written again in part, and nothing else.
    at_least_once(&want_bars, &got, false, &err);
}

/// Every bar of `want` is in `got`; with `strict`, nothing else is; without, anything else is a partial
/// re-emission of one of `want`'s windows (same symbol and window, fewer trades).
fn at_least_once(want: &[String], got: &[String], strict: bool, err: &str) {
    let (g, w) = (counted(got), counted(want));
    let missing: Vec<&&str> = w.keys().filter(|k| !g.contains_key(*k)).collect();
    assert!(missing.is_empty(), "bars lost: {missing:?}\n{err}");
    let extra: Vec<&&str> = g.keys().filter(|k| !w.contains_key(*k)).collect();
    if strict {
        assert!(extra.is_empty(), "bars the file run does not have: {extra:?}\n{err}");
    }
    let window = |row: &str| -> (String, i64, u64) {
        let v: serde_json::Value = serde_json::from_str(row).unwrap();
        (v["symbol"].as_str().unwrap().to_string(), v["window_start"].as_i64().unwrap(), v["count"].as_u64().unwrap())
    };
    let full: BTreeMap<(String, i64), u64> = want.iter().map(|r| window(r)).map(|(s, w, c)| ((s, w), c)).collect();
    for e in extra {
        let (s, ws, c) = window(e);
        assert!(full.get(&(s, ws)).is_some_and(|&n| c < n), "a bar the file run does not have: {e}\n{err}");
    }
}

#[test]
fn kafka_config_errors_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let check = |toml: &str| {
        std::fs::write(d.join("c.toml"), toml).unwrap();
        let o = ticklane(&["check", "--config", "c.toml"], d);
        assert!(!o.status.success(), "accepted:\n{toml}");
        stderr(&o)
    };
    let src =
        |kafka: &str| format!("[[source]]\nname = \"t\"\ntype = \"kafka\"\ntopics = [\"in\"]\nkafka = {{ {kafka} }}\n");
    let e = check(&src(r#""bootstrap.servers" = "h:1""#));
    assert!(e.contains("key `source[0].kafka`") && e.contains("group.id"), "{e}");
    let e = check(&src(r#""bootstrap.servers" = "h:1", "group.id" = "g", "enable.auto.commit" = true"#));
    assert!(e.contains("enable.auto.commit") && e.contains("must stay false"), "{e}");
    let e = check(&format!("{}dead_letter = \"in\"\n", src(r#""bootstrap.servers" = "h:1", "group.id" = "g""#)));
    assert!(e.contains("source[0].dead_letter") && e.contains("loop"), "{e}");
    let ok = src(r#""bootstrap.servers" = "h:1", "group.id" = "g""#);
    let e = check(&format!("{ok}[[sink]]\nstream = \"t_rejects\"\ntype = \"stdout\"\nformat = \"binary\"\n"));
    assert!(e.contains("sink[0].format") && e.contains("kafka sinks only"), "{e}");
    let e = check(&format!(
        "{ok}[[sink]]\nstream = \"t_rejects\"\ntype = \"kafka\"\nkafka = {{ \"bootstrap.servers\" = \"h:1\" }}\n"
    ));
    assert!(e.contains("sink[0].topic") && e.contains("needs a topic"), "{e}");
    let two = format!(
        "{ok}[[sink]]\nstream = \"t_rejects\"\ntype = \"kafka\"\ntopic = \"a\"\nkafka = {{ \"bootstrap.servers\" = \"h:1\" }}\n\
         [[sink]]\nstream = \"t_rejects\"\ntype = \"kafka\"\ntopic = \"b\"\nkafka = {{ \"bootstrap.servers\" = \"h:2\" }}\n"
    );
    let e = check(&two);
    assert!(e.contains("sink[1].kafka") && e.contains("producer `default`"), "{e}");
    let e = check(&format!("{ok}[[sink]]\nstream = \"t_rejects\"\ntype = \"csv\"\npath = \"x\"\ntopic = \"a\"\n"));
    assert!(e.contains("sink[0].topic") && e.contains("only applies to a kafka sink"), "{e}");
}

/// Offsets are committed only for messages whose results are durable and no longer held by any window: an
/// instance killed with SIGKILL mid-stream and started again with the same group loses no bar.
///
/// A window that spans the commit should not be written again in part: the commit's metadata carries the
/// largest event time before it, and the restarted instance drops the windows that started at or before
/// that. The broker used in CI stores offset metadata but does not return it, so there (`strict = false`) a
/// partial re-emission is allowed, and must be one: a bar of the same symbol and window with fewer trades.
fn kill_and_resume(b: &str, d: &Path, create: &dyn Fn(&str), strict: bool) {
    let input = gen(d, "trades.csv", &["-n", "20000", "--instruments", "20", "--late-fraction", "0"]);
    let (want_bars, _) = file_run(d, &input);
    let (tin, bars, late, group) = (unique("kill-in"), unique("kill-bars"), unique("kill-late"), unique("g"));
    for t in [&tin, &bars, &late] {
        create(t);
    }
    let cfg = write_config(
        d,
        "kafka.toml",
        &pipeline(&kafka_source(b, &tin, &group, "binary", ""), &kafka_sinks(b, &bars, &late)),
    );
    let c = cfg.to_str().unwrap();
    let first = Running::start_logging(&["run", "--config", c], d, "warn,ticklane::source=debug");
    // Paced input, so windows close and offsets are committed while trades are still coming.
    let feeder = {
        let (b, tin, input, d) = (b.to_string(), tin.clone(), input.clone(), d.to_path_buf());
        std::thread::spawn(move || produce(&b, &tin, &input, &["--format", "binary", "--rate", "4000"], &d))
    };
    assert!(
        wait_until(Duration::from_secs(120), || {
            first.stderr_so_far().contains("committing") && total_in(&first) >= 12000
        }),
        "no commits:\n{}",
        first.stderr_so_far()
    );
    first.signal("KILL");
    let mut first = first;
    assert!(first.wait_for(Duration::from_secs(10)).is_some(), "SIGKILL did not stop ticklane");
    let read_before = total_in(&first);
    feeder.join().expect("producer thread");
    // Start the replacement once the group has expired the killed member (session.timeout.ms): the broker
    // used in CI does not always hand a dead member's partitions to a member that joined before it expired.
    std::thread::sleep(Duration::from_secs(8));
    let again = Running::start_logging(&["run", "--config", c], d, "info");
    let mut last = (0, std::time::Instant::now());
    assert!(
        wait_until(Duration::from_secs(120), || {
            let n = total_in(&again);
            if n != last.0 {
                last = (n, std::time::Instant::now());
            }
            n > 0 && last.1.elapsed() > Duration::from_secs(3)
        }),
        "the restarted instance read nothing:\n{}",
        again.stderr_so_far().lines().filter(|l| !l.starts_with('[')).collect::<Vec<_>>().join("\n")
    );
    let resumed = total_in(&again);
    let err = stop(again);
    assert!(read_before < 20000 || resumed < 20000, "the restart read everything again: nothing was committed\n{err}");
    assert!(read_before + resumed >= 20000, "{read_before} + {resumed} events: some were skipped");
    let got = consume(b, &bars, false, d);
    at_least_once(&want_bars, &got, strict, &err);
    if strict {
        assert!(err.contains("window results not written again"), "no window was dropped on resuming:\n{err}");
    }
}

#[test]
fn a_killed_instance_restarts_from_its_commits_and_loses_nothing() {
    let Some(b) = broker("a_killed_instance_restarts_from_its_commits_and_loses_nothing") else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    kill_and_resume(&b, d, &|t| create(&b, t, 1, d), false);
}

/// The same against librdkafka's in-process mock cluster (no broker needed), which returns offset metadata:
/// no partial bar may appear.
#[test]
fn a_killed_instance_resumes_without_partial_windows_mock_cluster() {
    let mock = rdkafka::mocking::MockCluster::new(1).expect("mock cluster");
    let b = mock.bootstrap_servers();
    let dir = tempfile::tempdir().unwrap();
    kill_and_resume(&b, dir.path(), &|t| mock.create_topic(t, 1, 1).expect("mock topic"), true);
}

/// `input` with a last trade an hour after the others, of an instrument of its own: its watermark closes every
/// window of the others, as the end of a file does, in a job that never ends.
fn with_sentinel(d: &Path, input: &Path) -> PathBuf {
    let text = std::fs::read_to_string(input).expect("read input");
    let last: i64 =
        text.lines().last().and_then(|l| l.split(',').next()).and_then(|t| t.parse().ok()).expect("last ts");
    let p = d.join("trades-end.csv");
    std::fs::write(&p, format!("{text}{},ZZEND,1.0,1,B\n", last + 3_600_000)).expect("write input");
    p
}

/// Without the sentinel's own results.
fn without_sentinel(v: Vec<String>) -> Vec<String> {
    v.into_iter().filter(|l| !l.contains("ZZEND")).collect()
}

/// The exactly-once jobs: checkpoints every `interval`, two workers parking when idle, and no firing at the
/// stop (a restart resumes the windows open at the stop).
fn exactly_once_job(source: &str, sinks: &str, interval: &str) -> String {
    pipeline(source, sinks).replace(
        "[pipeline]\nfire_on_shutdown = true\n",
        &format!("[checkpoint]\ndir = \"chk\"\ninterval = \"{interval}\"\n[pipeline]\nworkers = 2\nwait = \"park\"\n"),
    )
}

/// Results per instrument (the `symbol` field of each JSON line), in the order written.
fn by_key(lines: &[String]) -> BTreeMap<String, Vec<String>> {
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for l in lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
        let key = v.get("symbol").and_then(|s| s.as_str()).unwrap_or_else(|| panic!("no symbol: {l}"));
        m.entry(key.to_string()).or_default().push(l.clone());
    }
    m
}

/// Kafka → ticklane → Kafka with checkpoints, killed with SIGKILL 20 times at random points (before the
/// first checkpoint, during restores, while results written before a restore are being computed again)
/// and started again each time with the same configuration: every result is in the output topics exactly
/// once, and each instrument's results are those of an uninterrupted run, in the same order.
fn killed_anywhere_kafka_output_is_exactly_once(b: &str, d: &Path, create: &dyn Fn(&str, i32)) {
    let n = 40_000;
    let input = gen(d, "trades.csv", &["-n", &n.to_string(), "--instruments", "20", "--late-fraction", "0.01"]);
    let input = with_sentinel(d, &input);
    let (want_bars, want_late) = file_run(d, &input);
    let want_bars = without_sentinel(want_bars);
    assert!(!want_late.is_empty(), "the input should have late trades");
    let (tin, bars, late) = (unique("exact-in"), unique("exact-bars"), unique("exact-late"));
    // One input partition keeps the file's order (so lateness is decided as in the file run); two output
    // partitions, so that reading back what was written covers several.
    create(&tin, 1);
    create(&bars, 2);
    create(&late, 1);
    // Paced, so the kills land while trades are still arriving (about 10 s of input).
    let feeder = {
        let (b, tin, input, d) = (b.to_string(), tin.clone(), input.clone(), d.to_path_buf());
        std::thread::spawn(move || produce(&b, &tin, &input, &["--format", "binary", "--rate", "4000"], &d))
    };
    let source = kafka_source(b, &tin, &unique("g"), "binary", "").replace("commit_interval = \"200ms\"\n", "");
    let toml = exactly_once_job(&source, &kafka_sinks(b, &bars, &late), "250ms");
    let cfg = write_config(d, "exact.toml", &toml);
    let args = ["run", "--config", cfg.to_str().expect("utf-8")];
    let mut delays = common::Delays(0xD1B5_4A32_D192_ED03);
    let (mut restored, mut replayed, mut from_start) = (0, 0, 0);
    let mut logs = String::new();
    for _ in 0..20 {
        let mut r = Running::start_logging(&args, d, "info");
        let wait = delays.next(150, 1500);
        if r.wait_for(wait).is_some() {
            let (_, err) = r.output();
            panic!("ticklane exited by itself:\n{err}");
        }
        r.signal("KILL");
        r.wait_for(Duration::from_secs(10)).expect("killed");
        let (_, err) = r.output();
        restored += err.contains("resuming from checkpoint") as usize;
        from_start += err.contains("its start record") as usize;
        replayed += err.contains("not written twice") as usize;
        logs.push_str(&err.lines().filter(|l| !l.starts_with('[')).collect::<Vec<_>>().join("\n"));
    }
    feeder.join().expect("producer thread");
    // The last run goes to the end of the input (whose last trade closes every window) and stops.
    let r = Running::start_logging(&args, d, "info");
    let mut last = (0, std::time::Instant::now());
    assert!(
        wait_until(Duration::from_secs(180), || {
            let t = total_in(&r);
            if t != last.0 {
                last = (t, std::time::Instant::now());
            }
            last.1.elapsed() > Duration::from_secs(4)
        }),
        "the last run did not settle:\n{}",
        r.stderr_so_far()
    );
    let err = stop(r);
    let (got_bars, got_late) = (without_sentinel(consume(b, &bars, false, d)), consume(b, &late, false, d));
    let ctx = format!("restored {restored}, from the start record {from_start}, replayed {replayed}\n{logs}\n{err}");
    assert_eq!(
        got_bars.len(),
        want_bars.len(),
        "bars: {} written, {} expected\n{ctx}",
        got_bars.len(),
        want_bars.len()
    );
    assert_eq!(counted(&got_bars), counted(&want_bars), "bars differ\n{ctx}");
    assert_eq!(by_key(&got_bars), by_key(&want_bars), "an instrument's bars are out of order\n{ctx}");
    assert_eq!(counted(&got_late), counted(&want_late), "late trades differ\n{ctx}");
    eprintln!("{} bars, {} late rows; of 20 killed runs {restored} resumed from a checkpoint, {from_start} from the start record, {replayed} found results written after their checkpoint", got_bars.len(), got_late.len());
    assert!(restored >= 5, "only {restored} runs resumed from a checkpoint\n{ctx}");
    assert!(replayed >= 3, "only {replayed} runs found results written after their checkpoint\n{ctx}");
}

#[test]
fn killed_anywhere_the_kafka_output_is_exactly_once() {
    let Some(b) = broker("killed_anywhere_the_kafka_output_is_exactly_once") else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    killed_anywhere_kafka_output_is_exactly_once(&b, d, &|t, p| create(&b, t, p as u32, d));
}

/// The same on librdkafka's in-process mock cluster (runs without a broker).
#[test]
fn killed_anywhere_the_kafka_output_is_exactly_once_mock_cluster() {
    let mock = rdkafka::mocking::MockCluster::new(1).expect("mock cluster");
    let b = mock.bootstrap_servers();
    let dir = tempfile::tempdir().unwrap();
    killed_anywhere_kafka_output_is_exactly_once(&b, dir.path(), &|t, p| {
        mock.create_topic(t, p, 1).expect("mock topic")
    });
}

/// Killed after writing results but before its first checkpoint (`interval = "1h"`), the job starts again
/// from its start record: what the killed run wrote is read back, computed again and not written twice.
fn killed_before_the_first_checkpoint(b: &str, d: &Path, create: &dyn Fn(&str, i32)) {
    let input = gen(d, "trades.csv", &["-n", "20000", "--instruments", "20", "--late-fraction", "0"]);
    let input = with_sentinel(d, &input);
    let (want_bars, _) = file_run(d, &input);
    let want_bars = without_sentinel(want_bars);
    let (tin, bars, late) = (unique("first-in"), unique("first-bars"), unique("first-late"));
    create(&tin, 1);
    create(&bars, 2);
    create(&late, 1);
    let feeder = {
        let (b, tin, input, d) = (b.to_string(), tin.clone(), input.clone(), d.to_path_buf());
        std::thread::spawn(move || produce(&b, &tin, &input, &["--format", "binary", "--rate", "5000"], &d))
    };
    let source = kafka_source(b, &tin, &unique("g"), "binary", "").replace("commit_interval = \"200ms\"\n", "");
    let toml = exactly_once_job(&source, &kafka_sinks(b, &bars, &late), "1h");
    let cfg = write_config(d, "first.toml", &toml);
    let args = ["run", "--config", cfg.to_str().expect("utf-8")];
    let mut r = Running::start_logging(&args, d, "info");
    assert!(
        wait_until(Duration::from_secs(60), || stdout(&ticklane_ok(
            &["consume", "--brokers", b, "--topic", &bars, "--idle", "200ms", "-n", "20"],
            d
        ))
        .lines()
        .count()
            >= 20),
        "no results written:\n{}",
        r.stderr_so_far()
    );
    r.signal("KILL");
    r.wait_for(Duration::from_secs(10)).expect("killed");
    assert!(d.join("chk/START.json").exists(), "no start record");
    feeder.join().expect("producer thread");
    let r = Running::start_logging(&args, d, "info");
    let mut last = (0, std::time::Instant::now());
    assert!(wait_until(Duration::from_secs(120), || {
        let t = total_in(&r);
        if t != last.0 {
            last = (t, std::time::Instant::now());
        }
        t > 0 && last.1.elapsed() > Duration::from_secs(3)
    }));
    let err = stop(r);
    assert!(err.contains("its start record"), "did not resume from the start record:\n{err}");
    assert!(err.contains("not written twice"), "nothing was read back:\n{err}");
    let got = without_sentinel(consume(b, &bars, false, d));
    assert_eq!(got.len(), want_bars.len(), "bars\n{err}");
    assert_eq!(by_key(&got), by_key(&want_bars), "bars differ\n{err}");
}

#[test]
fn killed_before_the_first_checkpoint_nothing_is_written_twice() {
    let Some(b) = broker("killed_before_the_first_checkpoint_nothing_is_written_twice") else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    killed_before_the_first_checkpoint(&b, d, &|t, p| create(&b, t, p as u32, d));
}

#[test]
fn killed_before_the_first_checkpoint_nothing_is_written_twice_mock_cluster() {
    let mock = rdkafka::mocking::MockCluster::new(1).expect("mock cluster");
    let b = mock.bootstrap_servers();
    let dir = tempfile::tempdir().unwrap();
    killed_before_the_first_checkpoint(&b, dir.path(), &|t, p| mock.create_topic(t, p, 1).expect("mock topic"));
}

/// A result that differs from what was written before the restore stops the job, naming the key, where the
/// written one is, and both: here a message put into the output topic after the kill stands for a result
/// that the restored run computes differently.
fn a_different_result_after_a_restore_stops_the_job(b: &str, d: &Path, create: &dyn Fn(&str, i32)) {
    let input = gen(d, "trades.csv", &["-n", "20000", "--instruments", "20", "--late-fraction", "0"]);
    let (tin, bars, late) = (unique("diff-in"), unique("diff-bars"), unique("diff-late"));
    create(&tin, 1);
    create(&bars, 1);
    create(&late, 1);
    // The first half before the kill, the second after: the restored run computes new bars for SYM0001,
    // which it compares with what the topic holds after the old ones.
    let text = std::fs::read_to_string(&input).expect("read input");
    let lines: Vec<&str> = text.lines().collect();
    let (first, second) = (d.join("first.csv"), d.join("second.csv"));
    std::fs::write(&first, lines[..10001].join("\n") + "\n").expect("write");
    std::fs::write(&second, format!("{}\n{}\n", lines[0], lines[10001..].join("\n"))).expect("write");
    produce(b, &tin, &first, &["--format", "binary"], d);
    let source = kafka_source(b, &tin, &unique("g"), "binary", "").replace("commit_interval = \"200ms\"\n", "");
    let cfg = write_config(d, "diff.toml", &exactly_once_job(&source, &kafka_sinks(b, &bars, &late), "1h"));
    let args = ["run", "--config", cfg.to_str().expect("utf-8")];
    let mut r = Running::start_logging(&args, d, "info");
    assert!(wait_until(Duration::from_secs(60), || total_in(&r) >= 10000), "not all read:\n{}", r.stderr_so_far());
    r.signal("KILL");
    r.wait_for(Duration::from_secs(10)).expect("killed");
    // A "result" for SYM0001 that no run computes.
    let bogus = d.join("bogus.csv");
    std::fs::write(&bogus, "ts,symbol,price,qty,side\n1700000000000,SYM0001,1.0,1,B\n").expect("write");
    produce(b, &bars, &bogus, &["--format", "jsonl"], d);
    produce(b, &tin, &second, &["--format", "binary"], d);
    let mut again = Running::start_logging(&args, d, "info");
    let st = again.wait_for(Duration::from_secs(60));
    if st.is_none() {
        again.signal("KILL");
        again.wait_for(Duration::from_secs(10));
    }
    let (_, err) = again.output();
    let st = st.unwrap_or_else(|| panic!("the job did not stop:\n{err}"));
    assert!(!st.success(), "the job succeeded:\n{err}");
    assert!(err.contains("key `SYM0001` computes a different result"), "{err}");
    assert!(err.contains(&format!("topic `{bars}` partition 0 offset")), "{err}");
}

#[test]
fn a_different_result_after_a_restore_stops_the_job_mock_cluster() {
    let mock = rdkafka::mocking::MockCluster::new(1).expect("mock cluster");
    let b = mock.bootstrap_servers();
    let dir = tempfile::tempdir().unwrap();
    a_different_result_after_a_restore_stops_the_job(&b, dir.path(), &|t, p| {
        mock.create_topic(t, p, 1).expect("mock topic")
    });
}

#[test]
fn a_different_result_after_a_restore_stops_the_job_on_the_broker() {
    let Some(b) = broker("a_different_result_after_a_restore_stops_the_job_on_the_broker") else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    a_different_result_after_a_restore_stops_the_job(&b, d, &|t, p| create(&b, t, p as u32, d));
}

/// A file → Kafka job whose sinks write in transactions (`exactly_once = "transactions"`), on a file source
/// paced so that several checkpoints commit: `extra_sink` goes into each sink's table.
fn transactional_job(input: &Path, b: &str, bars: &str, late: &str, extra_sink: &str, chk: &str) -> String {
    let src = format!(
        "[[source]]\nname = \"trades\"\ntype = \"csv\"\npath = \"{}\"\nts_unit = \"ms\"\nmax_out_of_orderness = \"2s\"\nspeed = 20.0\n",
        input.display()
    );
    let sinks = kafka_sinks(b, bars, late)
        .replace("type = \"kafka\"\n", &format!("type = \"kafka\"\nexactly_once = \"transactions\"\n{extra_sink}"));
    pipeline(&src, &sinks).replace(
        "[pipeline]\nfire_on_shutdown = true\n",
        &format!("[checkpoint]\ndir = \"{chk}\"\ninterval = \"200ms\"\n[pipeline]\n"),
    )
}

/// The number after `id=` in a log line (colours or not).
fn id_in(line: &str) -> Option<u64> {
    let mut plain = String::with_capacity(line.len());
    let mut esc = false;
    for c in line.chars() {
        match (esc, c) {
            (false, '\u{1b}') => esc = true,
            (true, 'm') => esc = false,
            (true, _) => {}
            (false, c) => plain.push(c),
        }
    }
    let rest = &plain[plain.find(" id=")? + 4..];
    rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

/// What the transactional tests start from: a one-broker mock cluster (`b` its address), a 20,000-trade input
/// in `dir`, the bars and late rows an uninterrupted file run makes of it, and two topics of their own for them.
struct TxnSetup {
    mock: rdkafka::mocking::MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    b: String,
    dir: tempfile::TempDir,
    input: std::path::PathBuf,
    want_bars: Vec<String>,
    want_late: Vec<String>,
    bars: String,
    late: String,
}

fn txn_setup(tag: &str) -> TxnSetup {
    let mock = rdkafka::mocking::MockCluster::new(1).expect("mock cluster");
    let b = mock.bootstrap_servers();
    let dir = tempfile::tempdir().unwrap();
    let input = gen(dir.path(), "trades.csv", &["-n", "20000", "--instruments", "20", "--late-fraction", "0.01"]);
    let (want_bars, want_late) = file_run(dir.path(), &input);
    let (bars, late) = (unique(&format!("{tag}-bars")), unique(&format!("{tag}-late")));
    for t in [&bars, &late] {
        mock.create_topic(t, 1, 1).expect("mock topic");
    }
    TxnSetup { mock, b, dir, input, want_bars, want_late, bars, late }
}

/// The transactional path's protocol on librdkafka's mock cluster (the broker CI runs has no transactions):
/// the producers initialise transactions, the output between two barriers is one transaction, closed at the
/// second and committed only once that checkpoint is complete on disk, the commit is recorded in
/// COMMITTED.json, the last one is committed at the end, and the run's results are all there once. (The mock
/// cluster neither hides aborted messages from read_committed consumers nor fences an older producer with
/// the same transactional.id, so those two properties rest on the broker and are not tested here.)
#[test]
fn transactional_sinks_commit_at_each_checkpoint_mock_cluster() {
    let TxnSetup { mock: _mock, b, dir, input, want_bars, want_late, bars, late } = txn_setup("txn");
    let d = dir.path();
    // 20,000 trades over about 10 s of event time at 20×: half a second, two or three commits.
    let cfg = write_config(d, "txn.toml", &transactional_job(&input, &b, &bars, &late, "", "chk"));
    let mut r = Running::start_logging(&["run", "--config", cfg.to_str().unwrap()], d, "info,ticklane::sink=debug");
    let st = r.wait_for(Duration::from_secs(60)).expect("the job ends with its input");
    let (_, err) = r.output();
    assert!(st.success(), "{err}");
    assert!(err.matches(" transaction committed").count() >= 2, "fewer than two commits:\n{err}");
    assert!(err.contains("last transaction committed"), "the last transaction was not committed at the end:\n{err}");
    // Each commit comes after its barrier closed the transaction and after the checkpoint completed.
    let lines: Vec<&str> = err.lines().collect();
    let at = |what: &str, id: u64| lines.iter().position(|l| l.contains(what) && id_in(l) == Some(id));
    let mut last = 0;
    for (i, l) in
        lines.iter().enumerate().filter(|(_, l)| l.contains(" transaction committed") && !l.contains("end of the run"))
    {
        let id = id_in(l).unwrap_or_else(|| panic!("no id in {l}"));
        let closed = at("transaction closed at the barrier", id).unwrap_or_else(|| panic!("{id} never closed:\n{err}"));
        let done = at("checkpoint complete", id).unwrap_or_else(|| panic!("{id} never completed:\n{err}"));
        assert!(
            closed < done && done < i,
            "checkpoint {id}: closed at line {closed}, complete at {done}, committed at {i}"
        );
        last = id;
    }
    let record = std::fs::read_to_string(d.join("chk").join("COMMITTED.json")).expect("the commit record");
    assert!(record.contains(&format!("\"id\":{last}")), "COMMITTED.json {record} does not record checkpoint {last}");
    let (got_bars, got_late) = (consume(&b, &bars, false, d), consume(&b, &late, false, d));
    assert_eq!(counted(&got_bars), counted(&want_bars), "bars");
    assert_eq!(counted(&got_late), counted(&want_late), "late rows");
}

/// Killed after a checkpoint completed and before its transaction was committed (or after the commit,
/// before it was recorded): the transaction is aborted when the job starts again (on a broker with
/// transactions), so the restore passes over that checkpoint, says why, and resumes from the one before —
/// here the start record —; replay-suppression skips whatever the commit did write, and the output is the
/// uninterrupted run's, each result once.
#[test]
fn killed_between_a_checkpoint_and_its_commit_the_restore_falls_back_mock_cluster() {
    for (n, point) in
        ["before committing a transaction", "committing the transactions of a checkpoint"].iter().enumerate()
    {
        let TxnSetup { mock: _mock, b, dir, input, want_bars, want_late, bars, late } =
            txn_setup(&format!("txn-crash{n}"));
        let d = dir.path();
        let cfg = write_config(d, "txn.toml", &transactional_job(&input, &b, &bars, &late, "", "chk"));
        let crashed = std::process::Command::new(common::bin())
            .args(["run", "--config", cfg.to_str().unwrap()])
            .current_dir(d)
            .env("RUST_LOG", "warn")
            .env("TICKLANE_CRASH_AT", format!("after:{point}"))
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run ticklane");
        let err = stderr(&crashed);
        assert!(!crashed.status.success() && err.contains(point), "did not stop {point}:\n{err}");
        assert!(d.join("chk").join("chk-00000000000000000001").join("MANIFEST.json").exists(), "{err}");
        assert!(!d.join("chk").join("COMMITTED.json").exists(), "a commit was recorded:\n{err}");

        let mut r = Running::start_logging(&["run", "--config", cfg.to_str().unwrap()], d, "info");
        let st = r.wait_for(Duration::from_secs(60)).expect("the job ends with its input");
        let (_, err) = r.output();
        assert!(st.success(), "{err}");
        assert!(
            err.contains("skipping checkpoint 1: its Kafka transactions are not recorded as committed"),
            "checkpoint 1 was not passed over:\n{err}"
        );
        assert!(err.contains("resuming from where the job started"), "{err}");
        let (got_bars, got_late) = (consume(&b, &bars, false, d), consume(&b, &late, false, d));
        assert_eq!(counted(&got_bars), counted(&want_bars), "bars after a crash {point}");
        assert_eq!(counted(&got_late), counted(&want_late), "late rows after a crash {point}");
    }
}

/// A broker that refuses the producers' transaction timeout (above its `transaction.max.timeout.ms`) stops the
/// job at its start, and the error says which settings to change.
#[test]
fn a_transaction_timeout_the_broker_refuses_is_explained_mock_cluster() {
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
    let TxnSetup { mock, b, dir, input, bars, late, .. } = txn_setup("txn-tt");
    let d = dir.path();
    mock.request_errors(
        RDKafkaApiKey::InitProducerId,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_INVALID_TRANSACTION_TIMEOUT],
    );
    let cfg = write_config(d, "txn-tt.toml", &transactional_job(&input, &b, &bars, &late, "", "chk"));
    let o = ticklane(&["run", "--config", cfg.to_str().unwrap()], d);
    let err = stderr(&o);
    assert!(!o.status.success(), "{err}");
    assert!(err.contains("transaction.max.timeout.ms") && err.contains("checkpoint.interval"), "{err}");
}

/// A savepoint of a job whose sinks write in transactions is answered once its transactions are committed,
/// and carries its own commit record: it restores under another `checkpoint.dir`, exactly once. One without that record
/// (and none in the job's directory) is refused with the reason, rather than restored with its results lost.
#[test]
fn a_savepoint_with_transactions_carries_its_commit_mock_cluster() {
    let TxnSetup { mock: _mock, b, dir, input, want_bars, want_late, bars, late } = txn_setup("txn-sp");
    let d = dir.path();
    // Paced slower than the other transactional jobs (about 5 s), and no periodic checkpoint before the savepoint.
    let toml = transactional_job(&input, &b, &bars, &late, "", "chk")
        .replace("speed = 20.0", "speed = 2.0")
        .replace("interval = \"200ms\"", "interval = \"1h\"");
    let cfg = write_config(d, "txn-sp.toml", &toml);
    let c = cfg.to_str().unwrap();
    let mut r = Running::start_logging(&["run", "--config", c], d, "info,ticklane::sink=debug");
    assert!(
        wait_until(Duration::from_secs(30), || r.stderr_so_far().contains("transaction")
            || d.join("chk").join("START.json").exists()),
        "{}",
        r.stderr_so_far()
    );
    std::thread::sleep(Duration::from_millis(500));
    let o = ticklane(&["savepoint", "--config", c, "--name", "mid"], d);
    assert!(o.status.success(), "{}", stderr(&o));
    let sp = d.join("chk").join("savepoints").join("mid");
    let record = std::fs::read_to_string(sp.join("COMMITTED.json")).expect("the savepoint's commit record");
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(sp.join("MANIFEST.json")).unwrap()).unwrap();
    let id = m["id"].as_u64().expect("id");
    assert!(record.contains(&format!("\"id\":{id}")), "{record}");
    let st = r.wait_for(Duration::from_secs(60)).expect("the job ends with its input");
    assert!(st.success(), "{}", r.output().1);

    // Restored under another checkpoint.dir onto the same topics: it computes again what followed the
    // savepoint, finds it written already, and writes none of it twice.
    let toml2 = transactional_job(&input, &b, &bars, &late, "", "chk2");
    let cfg2 = write_config(d, "txn-sp2.toml", &toml2);
    let from = sp.to_str().unwrap();
    let o = ticklane(&["run", "--config", cfg2.to_str().unwrap(), "--from-savepoint", from], d);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(counted(&consume(&b, &bars, false, d)), counted(&want_bars), "bars");
    assert_eq!(counted(&consume(&b, &late, false, d)), counted(&want_late), "late rows");

    // Without the record, the savepoint is refused.
    std::fs::remove_file(sp.join("COMMITTED.json")).unwrap();
    let toml3 = transactional_job(&input, &b, &bars, &late, "", "chk3");
    let cfg3 = write_config(d, "txn-sp3.toml", &toml3);
    let o = ticklane(&["run", "--config", cfg3.to_str().unwrap(), "--from-savepoint", from], d);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("not recorded as committed"), "{}", stderr(&o));
}

/// With a Kafka source, each transaction also carries the source's offsets at its barrier
/// (`send_offsets_to_transaction`), and the source commits none of its own: once everything is read and a
/// checkpoint has passed, the offsets sent are the end of the input. (The mock cluster accepts the offsets in
/// a transaction without storing them, so the group's committed offsets after a commit rest on the broker; that
/// the group has none here shows the source did not commit them outside the transactions.)
#[test]
fn transactional_sinks_commit_the_consumed_offsets_mock_cluster() {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let mock = rdkafka::mocking::MockCluster::new(1).expect("mock cluster");
    let b = mock.bootstrap_servers();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let n = 5_000u64;
    let input = gen(d, "trades.csv", &["-n", &n.to_string(), "--instruments", "20"]);
    let (tin, bars, late, group) = (unique("txn-in"), unique("txn-bars"), unique("txn-late"), unique("txn-g"));
    for t in [&tin, &bars, &late] {
        mock.create_topic(t, 1, 1).expect("mock topic");
    }
    produce(&b, &tin, &input, &["--format", "binary"], d);
    let source = kafka_source(&b, &tin, &group, "binary", "").replace("commit_interval = \"200ms\"\n", "");
    let sinks = kafka_sinks(&b, &bars, &late)
        .replace("type = \"kafka\"\n", "type = \"kafka\"\nexactly_once = \"transactions\"\n");
    let toml = exactly_once_job(&source, &sinks, "200ms");
    let cfg = write_config(d, "txn-offsets.toml", &toml);
    let r = Running::start_logging(&["run", "--config", cfg.to_str().unwrap()], d, "info,ticklane::sink=debug");
    // Everything read, then two more offsets sent: the newer one is taken after the last event.
    assert!(
        wait_until(Duration::from_secs(60), || total_in(&r) >= n),
        "read {} of {n}:\n{}",
        total_in(&r),
        r.stderr_so_far()
    );
    let sent = |r: &Running| r.stderr_so_far().matches("consumed offsets sent with the transaction").count();
    let before = sent(&r);
    assert!(
        wait_until(Duration::from_secs(30), || sent(&r) >= before + 2),
        "no offsets sent with a transaction after the input was read:\n{}",
        r.stderr_so_far()
    );
    let err = stop(r);
    assert!(err.contains("transaction committed"), "{err}");
    let last = err.lines().rfind(|l| l.contains("consumed offsets sent with the transaction")).expect("a line");
    assert!(last.contains(&format!("{tin}[0]={n}")), "the last offsets sent are not the end of the input: {last}");
    let c: BaseConsumer =
        rdkafka::ClientConfig::new().set("bootstrap.servers", &b).set("group.id", &group).create().expect("consumer");
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition(&tin, 0);
    let got = c.committed_offsets(tpl, Duration::from_secs(10)).expect("committed offsets");
    let e = got.find_partition(&tin, 0).expect("partition 0");
    assert_eq!(e.offset(), rdkafka::Offset::Invalid, "the source committed offsets outside the transactions");
}
