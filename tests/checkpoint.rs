//! Checkpoints and recovery, end to end through the binary: a job killed with SIGKILL at random moments and
//! started again with the same config until it finishes writes exactly the files an uninterrupted run writes
//! — byte for byte with one worker, the same lines with several (whose interleaving in a file depends on
//! thread timing); also across a change of the number of workers, and past a damaged newest checkpoint. Sinks
//! writing part files commit only what a complete checkpoint holds, and their parts put together are the file.

mod common;

use common::{gen, run_config, ticklane, toml_path, Running};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Every stream a job writes: windows of three kinds with their late outputs, per-trade ticks, the trades passed
/// through, rejects.
const STREAMS: [&str; 9] =
    ["bars", "bars_late", "slide", "slide_late", "sess", "sess_late", "ticks", "passed", "trades_rejects"];

fn tmp() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("ticklane-checkpoint-").tempdir().expect("temp dir")
}

/// A trade file with malformed lines among the trades (they go to the rejects stream with their numbers).
fn input(dir: &Path, n: u32) -> PathBuf {
    let path = gen(dir, "clean.csv", &["-n", &n.to_string(), "--instruments", "300", "--seed", "11"]);
    let text = std::fs::read_to_string(&path).expect("read trades");
    let mut out = String::with_capacity(text.len() + 1000);
    for (i, line) in text.lines().enumerate() {
        if i > 0 && i % 40_000 == 0 {
            out.push_str("not,a,trade\n");
        }
        out.push_str(line);
        out.push('\n');
    }
    let p = dir.join("trades.csv");
    std::fs::write(&p, out).expect("write trades");
    p
}

fn config(input: &Path, out: &Path, workers: usize, checkpoints: Option<&Path>) -> String {
    let mut c = format!(
        r#"
[pipeline]
workers = {workers}

[metrics]
live = false
summary = false

[[source]]
name = "trades"
type = "csv"
path = {input}
max_out_of_orderness = "1s"

[[window]]
name = "bars"
type = "tumbling"
size = "1s"
allowed_lateness = "2s"
aggregates = ["open", "high", "low", "close", "volume", "vwap", "twap", "count"]

[[window]]
name = "slide"
type = "sliding"
size = "10s"
slide = "2s"
aggregates = ["volume", "vwap", "count"]

[[window]]
name = "sess"
type = "session"
gap = "300ms"
allowed_lateness = "500ms"

[[continuous]]
name = "ticks"
ema_half_life = "2s"
session_reset = "1h"

[[stream]]
name = "passed"
events = "trade"
"#,
        input = toml_path(input)
    );
    for s in STREAMS {
        c.push_str(&format!(
            "\n[[sink]]\nstream = \"{s}\"\ntype = \"csv\"\npath = {}\n",
            toml_path(&out.join(format!("{s}.csv")))
        ));
    }
    if let Some(dir) = checkpoints {
        c.push_str(&format!("\n[checkpoint]\ndir = {}\ninterval = \"40ms\"\n", toml_path(dir)));
    }
    c
}

fn outputs(dir: &Path) -> Vec<(String, Vec<u8>)> {
    STREAMS.iter().map(|s| (s.to_string(), std::fs::read(dir.join(format!("{s}.csv"))).unwrap_or_default())).collect()
}

fn sorted_lines(files: &[(String, Vec<u8>)]) -> Vec<(String, Vec<String>)> {
    files
        .iter()
        .map(|(s, b)| {
            let mut l: Vec<String> = String::from_utf8_lossy(b).lines().map(str::to_string).collect();
            l.sort();
            (s.clone(), l)
        })
        .collect()
}

/// Runs `cfg` until it exits 0, killing it with SIGKILL after each of `kills` delays first. Returns how many
/// runs resumed from a checkpoint.
fn run_with_kills(dir: &Path, cfg: &Path, kills: &[Duration]) -> usize {
    let args = ["run", "--config", cfg.to_str().expect("utf-8")];
    let mut resumed = 0;
    for (i, &after) in kills.iter().enumerate() {
        let mut r = Running::start_logging(&args, dir, "info");
        if r.wait_for(after).is_some() {
            let (_, err) = r.output();
            assert!(!err.contains("error"), "run {i} failed:\n{err}");
            resumed += err.contains("resuming from checkpoint") as usize;
            return resumed;
        }
        r.signal("KILL");
        r.wait_for(Duration::from_secs(10)).expect("killed");
        let (_, err) = r.output();
        resumed += err.contains("resuming from checkpoint") as usize;
    }
    let mut r = Running::start_logging(&args, dir, "info");
    let st = r.wait_for(Duration::from_secs(120)).expect("the last run finishes");
    let (_, err) = r.output();
    assert!(st.success(), "the last run failed ({st}):\n{err}");
    resumed + err.contains("resuming from checkpoint") as usize
}

/// Runs `ticklane ARGS` until `n` checkpoints are complete, then kills it with SIGKILL; a run that finishes
/// first (a fast machine) is left to finish — either way at least `n` checkpoints are on disk.
fn kill_after_checkpoints(args: &[&str], dir: &Path, n: usize) {
    let mut r = Running::start_logging(args, dir, "info");
    let t = std::time::Instant::now();
    while r.stderr_so_far().matches("checkpoint complete").count() < n {
        assert!(t.elapsed() < Duration::from_secs(30), "not {n} checkpoints:\n{}", r.stderr_so_far());
        if r.wait_for(Duration::from_millis(5)).is_some() {
            return;
        }
    }
    r.signal("KILL");
    r.wait_for(Duration::from_secs(10)).expect("killed");
}

#[test]
fn killed_anywhere_the_output_is_byte_identical() {
    let dir = tmp();
    let d = dir.path();
    let input = input(d, 400_000);
    let reference = d.join("reference");
    run_config(d, "reference.toml", &config(&input, &reference, 1, None));
    let want = outputs(&reference);
    assert!(want.iter().all(|(s, b)| !b.is_empty() || s == "slide_late"), "the reference run wrote nothing");
    // How long an uninterrupted run takes here, to kill within it.
    let t = std::time::Instant::now();
    run_config(d, "timing.toml", &config(&input, &d.join("timing"), 1, Some(&d.join("timing-chk"))));
    let span = (t.elapsed().as_millis() as u64).max(300);

    let mut delays = common::Delays(0x9E37_79B9_7F4A_7C15);
    let mut resumed = 0;
    for round in 0..20 {
        let out = d.join(format!("out-{round}"));
        let chk = d.join(format!("chk-{round}"));
        let cfg = d.join(format!("job-{round}.toml"));
        std::fs::write(&cfg, config(&input, &out, 1, Some(&chk))).expect("write config");
        let kills: Vec<Duration> = (0..1 + round % 3).map(|_| delays.next(30, span)).collect();
        resumed += run_with_kills(d, &cfg, &kills);
        for ((s, got), (_, w)) in outputs(&out).iter().zip(&want) {
            assert!(got == w, "round {round} (kills after {kills:?}): {s}.csv differs from the uninterrupted run's");
        }
    }
    // Kills before the first checkpoint restart from scratch; enough must come later for this to test restores.
    assert!(resumed >= 5, "only {resumed} of the restarts resumed from a checkpoint: the kills came too early");
}

/// `systemctl stop` (SIGTERM) with checkpoints: the job stops reading, drains into a final checkpoint and exits 0.
/// That checkpoint's source position is the end of what was read (every line before it counted as an event or
/// a reject), each output file stands exactly at the length it records, so the next start cuts nothing back and
/// writes nothing twice — and the files end byte-identical to an uninterrupted run's.
#[test]
fn a_stopped_job_takes_a_final_checkpoint_and_resumes_there() {
    use ticklane::checkpoint::manifest::latest_valid;
    let dir = tmp();
    let d = dir.path();
    // 50 s of event time, replayed at 15 times its speed: 3.3 s, stopped after 1.5 s (past the first malformed
    // line, at 40,000, unless the machine is slow).
    let input = input(d, 100_000);
    let reference = d.join("reference");
    run_config(d, "reference.toml", &config(&input, &reference, 1, None));
    let want = outputs(&reference);
    let (out, chk) = (d.join("out"), d.join("chk"));
    // No checkpoint on schedule: the only one is the final one.
    let cfg = config(&input, &out, 1, Some(&chk))
        .replace("interval = \"40ms\"", "interval = \"1h\"")
        .replace("max_out_of_orderness = \"1s\"", "max_out_of_orderness = \"1s\"\nspeed = 15.0");
    std::fs::write(d.join("job.toml"), &cfg).unwrap();
    let args = ["run", "--config", "job.toml"];
    let mut r = Running::start_logging(&args, d, "info");
    std::thread::sleep(Duration::from_millis(1500));
    r.signal("TERM");
    let st = r.wait_for(Duration::from_secs(30)).expect("stopped");
    let (_, err) = r.output();
    assert!(st.success(), "exit {st}:\n{err}");
    assert!(err.contains("final checkpoint complete"), "{err}");
    assert!(!err.contains("checkpoint abandoned"), "{err}");

    let newest = latest_valid(&chk).unwrap().expect("a checkpoint").manifest.expect("its manifest");
    assert!(err.contains(&format!("id={} ", newest.id)), "the newest checkpoint is not the final one:\n{err}");
    // What was read: the summary's events and rejects, every line before the position but the header.
    let summary = err.lines().find(|l| l.starts_with("ticklane: ")).unwrap_or_else(|| panic!("no summary:\n{err}"));
    let number_before = |what: &str| -> u64 {
        let at = summary.find(what).unwrap_or_else(|| panic!("no `{what}` in {summary}"));
        summary[..at].split_whitespace().last().unwrap().parse().unwrap()
    };
    let (events, rejected) = (number_before(" events in"), number_before(" rejected"));
    let offset = newest.sources[0].byte_offset.expect("a file position") as usize;
    let text = std::fs::read(&input).unwrap();
    assert!(offset > 0 && offset < text.len(), "stopped at {offset} of {} bytes: not mid-run", text.len());
    let lines = text[..offset].iter().filter(|&&b| b == b'\n').count() as u64;
    assert_eq!(lines, 1 + events + rejected, "{summary}");
    for (j, (s, _)) in outputs(&out).iter().enumerate() {
        let at = &newest.sinks[j];
        let len = std::fs::metadata(out.join(format!("{s}.csv"))).unwrap().len();
        assert_eq!(at.bytes, Some(len), "{s}.csv has output after the final checkpoint");
    }

    let mut r = Running::start_logging(&args, d, "info");
    let st = r.wait_for(Duration::from_secs(60)).expect("the restart finishes");
    let (_, err) = r.output();
    assert!(st.success(), "exit {st}:\n{err}");
    assert!(err.contains(&format!("resuming from checkpoint id={}", newest.id)), "{err}");
    for ((s, got), (_, w)) in outputs(&out).iter().zip(&want) {
        assert!(got == w, "{s}.csv differs from the uninterrupted run's");
    }
}

#[test]
fn rescaled_between_restarts_the_results_are_the_same() {
    let dir = tmp();
    let d = dir.path();
    let input = input(d, 300_000);
    let reference = d.join("reference");
    run_config(d, "reference.toml", &config(&input, &reference, 4, None));
    let want = sorted_lines(&outputs(&reference));
    let (out, chk) = (d.join("out"), d.join("chk"));
    // 4 workers, killed after a checkpoint; 2 workers, the same; 3 workers to the end — each resuming the
    // checkpoint of the one before.
    let mut resumed = 0;
    for (workers, kill) in [(4, true), (2, true), (3, false)] {
        let cfg = d.join(format!("job-{workers}.toml"));
        std::fs::write(&cfg, config(&input, &out, workers, Some(&chk))).expect("write config");
        let mut r = Running::start_logging(&["run", "--config", cfg.to_str().expect("utf-8")], d, "info");
        let t = std::time::Instant::now();
        let before = r.stderr_so_far().matches("checkpoint complete").count();
        while kill && r.stderr_so_far().matches("checkpoint complete").count() == before {
            assert!(t.elapsed() < Duration::from_secs(60), "no checkpoint:\n{}", r.stderr_so_far());
            if r.wait_for(Duration::from_millis(5)).is_some() {
                break;
            }
        }
        if kill && r.wait_for(Duration::ZERO).is_none() {
            r.signal("KILL");
        }
        let st = r.wait_for(Duration::from_secs(120)).expect("exits");
        let (_, err) = r.output();
        assert!(kill || st.success(), "the last run failed:\n{err}");
        resumed += err.contains("resuming from checkpoint") as usize;
    }
    assert!(resumed >= 2, "only {resumed} runs resumed from a checkpoint");
    assert_eq!(sorted_lines(&outputs(&out)), want);
}

#[test]
fn a_damaged_newest_checkpoint_is_skipped_for_the_one_before() {
    let dir = tmp();
    let d = dir.path();
    let input = input(d, 300_000);
    let reference = d.join("reference");
    run_config(d, "reference.toml", &config(&input, &reference, 1, None));
    let (out, chk) = (d.join("out"), d.join("chk"));
    let cfg = d.join("job.toml");
    std::fs::write(&cfg, config(&input, &out, 1, Some(&chk))).expect("write config");
    let args = ["run", "--config", cfg.to_str().expect("utf-8")];
    // Run until at least two checkpoints are complete, then kill.
    // The newest of at least two checkpoints gets damaged.
    kill_after_checkpoints(&args, d, 2);
    let mut dirs: Vec<PathBuf> =
        std::fs::read_dir(&chk).expect("checkpoints").map(|e| e.expect("entry").path()).collect();
    dirs.sort();
    let complete: Vec<&PathBuf> = dirs.iter().filter(|p| p.join("MANIFEST.json").exists()).collect();
    assert!(complete.len() >= 2, "{dirs:?}");
    let newest = complete[complete.len() - 1];
    let shard = newest.join("shard-0.state");
    let mut bytes = std::fs::read(&shard).expect("state file");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&shard, bytes).expect("damage");

    let listing = ticklane(&["checkpoints", "--dir", chk.to_str().expect("utf-8")], d);
    let text = common::stdout(&listing);
    assert!(text.contains("FAILED"), "the listing does not flag the damaged checkpoint:\n{text}");

    let mut r = Running::start_logging(&args, d, "info");
    let st = r.wait_for(Duration::from_secs(120)).expect("finishes");
    let (_, err) = r.output();
    assert!(st.success(), "{err}");
    let skipped = newest.file_name().and_then(|n| n.to_str()).expect("name").to_string();
    assert!(err.contains(&skipped) && err.contains("WARN"), "no warning about {skipped}:\n{err}");
    assert!(err.contains("resuming from checkpoint"), "did not resume from the previous checkpoint:\n{err}");
    for ((s, got), (_, w)) in outputs(&out).iter().zip(&outputs(&reference)) {
        assert!(got == w, "{s}.csv differs from the uninterrupted run's");
    }
}

#[test]
fn kafka_options_that_contradict_checkpoints_are_named() {
    let dir = tmp();
    let d = dir.path();
    let check = |toml: &str| {
        let cfg = d.join("k.toml");
        std::fs::write(&cfg, toml).expect("write");
        let o = ticklane(&["check", "--config", cfg.to_str().expect("utf-8")], d);
        assert!(!o.status.success(), "accepted:\n{toml}");
        common::stderr(&o)
    };
    let job = |checkpoint: &str, source_extra: &str, sink_extra: &str| {
        format!(
            r#"
{checkpoint}
[[source]]
name = "k"
type = "kafka"
topics = ["t"]
{source_extra}
kafka = {{ "bootstrap.servers" = "127.0.0.1:1", "group.id" = "g" }}
[[window]]
name = "bars"
type = "tumbling"
size = "1s"
[[sink]]
stream = "bars"
type = "kafka"
topic = "out"
{sink_extra}
kafka = {{ "bootstrap.servers" = "127.0.0.1:1" }}
"#
        )
    };
    let err = check(&job("[checkpoint]\ndir = \"chk\"", "commit_interval = \"1s\"", ""));
    assert!(err.contains("source[0].commit_interval") && err.contains("checkpoint completes"), "{err}");
    let err = check(&job("", "", "exactly_once = \"replay\""));
    assert!(err.contains("sink[0].exactly_once") && err.contains("checkpoint"), "{err}");
    let err = check(&job("[pipeline]\nfire_on_shutdown = true\n[checkpoint]\ndir = \"chk\"", "", ""));
    assert!(err.contains("pipeline.fire_on_shutdown") && err.contains("sink[0]"), "{err}");
    let err = check(&job("[checkpoint]\ndir = \"chk\"", "", "exactly_once = \"transactional\""));
    assert!(err.contains("exactly_once") && err.contains("replay") && err.contains("transactions"), "{err}");
    let err = check(&job("", "", "exactly_once = \"transactions\""));
    assert!(err.contains("sink[0].exactly_once") && err.contains("checkpoint"), "{err}");
    let small = job("[checkpoint]\ndir = \"chk\"\ninterval = \"10s\"", "", "exactly_once = \"transactions\"").replace(
        "kafka = { \"bootstrap.servers\" = \"127.0.0.1:1\" }\n",
        "kafka = { \"bootstrap.servers\" = \"127.0.0.1:1\", \"transaction.timeout.ms\" = 5000 }\n",
    );
    let err = check(&small);
    assert!(err.contains("transaction.timeout.ms") && err.contains("checkpoint.interval"), "{err}");
}

#[test]
fn run_from_savepoint_resumes_an_older_checkpoint_with_other_workers() {
    let dir = tmp();
    let d = dir.path();
    let input = input(d, 300_000);
    let reference = d.join("reference");
    run_config(d, "reference.toml", &config(&input, &reference, 1, None));
    let (out, chk) = (d.join("out"), d.join("chk"));
    let cfg = d.join("job.toml");
    // Paced (150 s of trades at 100×: about 1.5 s), so that the job is still running after two checkpoints
    // however loaded the machine is.
    let paced = config(&input, &out, 1, Some(&chk))
        .replace("max_out_of_orderness = \"1s\"\n", "max_out_of_orderness = \"1s\"\nspeed = 100.0\n");
    std::fs::write(&cfg, paced).expect("write config");
    kill_after_checkpoints(&["run", "--config", cfg.to_str().expect("utf-8")], d, 2);
    let mut complete: Vec<PathBuf> = std::fs::read_dir(&chk)
        .expect("checkpoints")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.join("MANIFEST.json").exists())
        .collect();
    complete.sort();
    assert!(complete.len() >= 2, "{complete:?}");
    let oldest = complete[0].clone();
    let newest_manifest = std::fs::read(complete[complete.len() - 1].join("MANIFEST.json")).expect("manifest");

    // Two workers now; the older checkpoint's file positions are behind what the output file holds.
    let cfg2 = d.join("job2.toml");
    std::fs::write(&cfg2, config(&input, &out, 2, Some(&chk))).expect("write config");
    let o = ticklane(
        &["run", "--config", cfg2.to_str().expect("utf-8"), "--from-savepoint", oldest.to_str().expect("utf-8")],
        d,
    );
    assert!(o.status.success(), "{}", common::stderr(&o));
    assert_eq!(sorted_lines(&outputs(&out)), sorted_lines(&outputs(&reference)));
    // New checkpoints got new ids: the newer ones of the first run were not written over.
    let last = complete[complete.len() - 1].join("MANIFEST.json");
    if last.exists() {
        assert_eq!(std::fs::read(&last).expect("manifest"), newest_manifest, "{} was rewritten", last.display());
    }
}

/// `ticklane savepoint` asks the running job for a named snapshot through its control socket and returns
/// once it is on disk; the job goes on. A second job on the same checkpoint directory is refused. The job,
/// killed later, resumes from the savepoint with three workers instead of one and writes what an
/// uninterrupted run writes.
#[test]
fn a_savepoint_of_a_running_job_resumes_with_other_workers() {
    let dir = tmp();
    let d = dir.path();
    let input = input(d, 300_000);
    let reference = d.join("reference");
    run_config(d, "reference.toml", &config(&input, &reference, 1, None));
    let (out, chk) = (d.join("out"), d.join("chk"));
    // Paced (150 s of trades at 50×: about 3 s) and no periodic checkpoint: the savepoint is the only one.
    let job = |workers: usize, paced: bool| {
        let c = config(&input, &out, workers, Some(&chk)).replace("interval = \"40ms\"", "interval = \"1h\"");
        if paced {
            c.replace("max_out_of_orderness = \"1s\"\n", "max_out_of_orderness = \"1s\"\nspeed = 50.0\n")
        } else {
            c
        }
    };
    let cfg = d.join("job.toml");
    std::fs::write(&cfg, job(1, true)).expect("write config");
    let c = cfg.to_str().expect("utf-8");
    let mut r = Running::start_logging(&["run", "--config", c], d, "info");
    assert!(
        common::wait_until(Duration::from_secs(30), || common::complete_lines(&out.join("bars.csv")) > 10),
        "no output:\n{}",
        r.stderr_so_far()
    );
    let second = ticklane(&["run", "--config", c], d);
    assert!(!second.status.success(), "a second job on the same checkpoint.dir started");
    assert!(common::stderr(&second).contains("another ticklane job"), "{}", common::stderr(&second));

    let o = ticklane(&["savepoint", "--config", c, "--name", "mid"], d);
    assert!(o.status.success(), "{}\n{}", common::stderr(&o), r.stderr_so_far());
    let sp = PathBuf::from(common::stdout(&o).trim());
    let sp = if sp.is_relative() { d.join(sp) } else { sp };
    assert_eq!(sp, chk.join("savepoints").join("mid"));
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sp.join("MANIFEST.json")).expect("manifest")).expect("json");
    assert_eq!((m["kind"].as_str(), m["name"].as_str()), (Some("savepoint"), Some("mid")));
    let again = ticklane(&["savepoint", "--config", c, "--name", "mid"], d);
    assert!(!again.status.success() && common::stderr(&again).contains("exists already"));
    let listed = common::stdout(&common::ticklane_ok(&["checkpoints", "--dir", chk.to_str().expect("utf-8")], d));
    assert!(listed.contains("savepoint:mid") && listed.contains(" ok"), "{listed}");
    assert!(r.wait_for(Duration::ZERO).is_none(), "the job stopped after the savepoint:\n{}", r.stderr_so_far());
    r.signal("KILL");
    r.wait_for(Duration::from_secs(10)).expect("killed");

    let cfg3 = d.join("job3.toml");
    std::fs::write(&cfg3, job(3, false)).expect("write config");
    let o = ticklane(
        &["run", "--config", cfg3.to_str().expect("utf-8"), "--from-savepoint", sp.to_str().expect("utf-8")],
        d,
    );
    assert!(o.status.success(), "{}", common::stderr(&o));
    assert_eq!(sorted_lines(&outputs(&out)), sorted_lines(&outputs(&reference)));
    let no_job = ticklane(&["savepoint", "--config", c], d);
    assert!(common::stderr(&no_job).contains("no job is running"), "{}", common::stderr(&no_job));
}

/// Killed between any two writes: the job is aborted at each crash point in turn (`TICKLANE_CRASH_AT`: after
/// every write, fsync, rename and removal a checkpoint makes, in state files, manifests, the start record
/// and the sink files), then started again without it; every time the output is byte-identical to an
/// uninterrupted run's. The loop ends at the first crash point the job no longer reaches.
#[test]
fn killed_between_any_two_writes_the_output_is_byte_identical() {
    let dir = tmp();
    let d = dir.path();
    let input = gen(d, "trades.csv", &["-n", "100000", "--instruments", "300", "--seed", "5"]);
    let job = |out: &Path, chk: Option<&Path>| {
        let mut c = format!(
            r#"
[metrics]
live = false
summary = false
[[source]]
name = "trades"
type = "csv"
path = {}
max_out_of_orderness = "1s"
speed = 200.0
[[window]]
name = "bars"
type = "tumbling"
size = "1s"
allowed_lateness = "2s"
[[window]]
name = "sess"
type = "session"
gap = "300ms"
"#,
            toml_path(&input)
        );
        for s in ["bars", "sess"] {
            c.push_str(&format!(
                "[[sink]]\nstream = \"{s}\"\ntype = \"csv\"\npath = {}\n",
                toml_path(&out.join(format!("{s}.csv")))
            ));
        }
        if let Some(chk) = chk {
            // The bars as part files too: their closing and commits are crash points as well.
            c.push_str(&format!(
                "[[sink]]\nstream = \"bars\"\ntype = \"csv\"\npath = {}\nparts = true\n",
                toml_path(&out.join("parts").join("bars.csv"))
            ));
            // retain = 1: old checkpoints are removed too, between the writes of new ones.
            c.push_str(&format!("[checkpoint]\ndir = {}\ninterval = \"60ms\"\nretain = 1\n", toml_path(chk)));
        }
        c
    };
    let read = |out: &Path| ["bars", "sess"].map(|s| std::fs::read(out.join(format!("{s}.csv"))).unwrap_or_default());
    let reference = d.join("reference");
    run_config(d, "reference.toml", &job(&reference, None));
    let want = read(&reference);
    assert!(want.iter().all(|b| !b.is_empty()));
    let mut points = Vec::new();
    // Kills at `at` (a crash point's number, or `after:KIND`), restarts, and checks the output; `None` if
    // the job finished without reaching it.
    let kill_at = |tag: &str, at: &str| -> Option<String> {
        let (out, chk) = (d.join(format!("out-{tag}")), d.join(format!("chk-{tag}")));
        let cfg = d.join(format!("job-{tag}.toml"));
        std::fs::write(&cfg, job(&out, Some(&chk))).expect("write config");
        let args = ["run", "--config", cfg.to_str().expect("utf-8")];
        let o = std::process::Command::new(common::bin())
            .args(args)
            .current_dir(d)
            .env("TICKLANE_CRASH_AT", at)
            .output()
            .expect("run ticklane");
        let err = common::stderr(&o);
        if o.status.success() {
            assert!(!err.contains("crash point"), "{err}");
            return None;
        }
        let point = err
            .lines()
            .find(|l| l.starts_with("crash point"))
            .unwrap_or_else(|| panic!("run {tag} failed:\n{err}"))
            .to_string();
        let again = ticklane(&args, d);
        assert!(again.status.success(), "after {point}: the restart failed:\n{}", common::stderr(&again));
        let got = read(&out);
        assert!(got == want, "after {point}: the output differs from the uninterrupted run's");
        let parts = committed(&out.join("parts"), "bars", header_of(&want[0]));
        assert!(
            parts == want[0],
            "after {point}: the part files put together differ from the uninterrupted run's bars"
        );
        let _ = std::fs::remove_dir_all(&out);
        let _ = std::fs::remove_dir_all(&chk);
        Some(point)
    };
    for k in 1..=400 {
        match kill_at(&k.to_string(), &k.to_string()) {
            Some(point) => points.push(point),
            None => break,
        }
    }
    let kind_of =
        |p: &String| p.split("after ").nth(1).map(|p| p.trim_end_matches(": aborting (TICKLANE_CRASH_AT)").to_string());
    let mut kinds: std::collections::BTreeSet<String> = points.iter().filter_map(kind_of).collect();
    eprintln!("{} crash points, of {} kinds: {kinds:?}", points.len(), kinds.len());
    assert!(points.len() < 400, "the job never finished without crashing");
    // Where the n-th point falls depends on how checkpoints and input interleave, which a loaded machine
    // changes: a kind the numbered kills happened to miss is killed at by name.
    for k in [
        "renaming a state file",
        "renaming a manifest",
        "syncing a sink file",
        "removing an old checkpoint",
        "syncing a part file",
        "committing a part file",
    ] {
        if !kinds.contains(k) {
            let point = kill_at(&k.replace(' ', "-"), &format!("after:{k}"));
            assert!(point.is_some(), "the job never passed a crash point after {k}: {kinds:?}");
            kinds.extend(point.as_ref().and_then(kind_of));
        }
    }
}

/// `config` with every sink writing part files (one worker, checkpoints in `chk`).
fn parts_config(input: &Path, out: &Path, chk: &Path) -> String {
    let c = config(input, out, 1, Some(chk));
    let at = c.find("[[sink]]").expect("sinks");
    let (head, sinks) = c.split_at(at);
    format!("{head}{}", sinks.replace("type = \"csv\"\n", "type = \"csv\"\nparts = true\n"))
}

/// The part files of stream `s` in `dir`: (number, in progress, path), by number.
fn part_files(dir: &Path, s: &str) -> Vec<(u64, bool, PathBuf)> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten() {
        let path = e.expect("entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).expect("utf-8").to_string();
        let (plain, in_progress) = match name.strip_prefix('.').and_then(|n| n.strip_suffix(".inprogress")) {
            Some(n) => (n.to_string(), true),
            None => (name.clone(), false),
        };
        let Some(digits) = plain.strip_prefix(&format!("{s}-")).and_then(|n| n.strip_suffix(".csv")) else { continue };
        if digits.len() >= 6 && digits.bytes().all(|c| c.is_ascii_digit()) {
            v.push((digits.parse().expect("part number"), in_progress, path));
        }
    }
    v.sort();
    v
}

/// The committed parts of stream `s` in `dir` put together, the CSV header kept once; panics unless they are
/// numbered 1, 2, … without a gap and each starts with `header`.
fn committed(dir: &Path, s: &str, header: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, (n, _, path)) in part_files(dir, s).into_iter().filter(|p| !p.1).enumerate() {
        assert_eq!(n, i as u64 + 1, "{}: the committed parts are not numbered from 1 without a gap", path.display());
        let bytes = std::fs::read(&path).expect("part file");
        assert!(bytes.starts_with(header) && bytes.len() > header.len(), "{}: no header or no rows", path.display());
        if out.is_empty() {
            out.extend_from_slice(header);
        }
        out.extend_from_slice(&bytes[header.len()..]);
    }
    out
}

/// The header line of a reference output file.
fn header_of(file: &[u8]) -> &[u8] {
    &file[..file.iter().position(|&c| c == b'\n').map_or(file.len(), |i| i + 1)]
}

#[test]
fn part_files_killed_anywhere_commit_only_checkpointed_output() {
    use ticklane::checkpoint::manifest::latest_valid;
    let dir = tmp();
    let d = dir.path();
    let input = input(d, 400_000);
    let reference = d.join("reference");
    run_config(d, "reference.toml", &config(&input, &reference, 1, None));
    let want = outputs(&reference);
    // An uninterrupted run with part files, which also says how long a run takes here.
    let t = std::time::Instant::now();
    let timing = d.join("timing");
    run_config(d, "timing.toml", &parts_config(&input, &timing, &d.join("timing-chk")));
    let span = (t.elapsed().as_millis() as u64).max(300);
    for (s, w) in &want {
        let got = committed(&timing, s, header_of(w));
        assert!(got == *w || (got.is_empty() && header_of(w) == &w[..]), "uninterrupted: the parts of {s} differ");
        assert!(part_files(&timing, s).len() > 1 || s.ends_with("late"), "{s}: one part only");
    }

    let mut delays = common::Delays(0x2545_F491_4F6C_DD1D);
    let (mut kills, mut early, mut resumed) = (0, 0, 0);
    // Eight rounds, and more (up to 16) while fewer than 10 runs were killed: the delays are drawn from the
    // timing run, and on a loaded machine the runs after it may finish before them.
    let mut round = 0;
    while round < 8 || (kills < 10 && round < 16) {
        let (out, chk) = (d.join(format!("out-{round}")), d.join(format!("chk-{round}")));
        let cfg = d.join(format!("job-{round}.toml"));
        std::fs::write(&cfg, parts_config(&input, &out, &chk)).expect("write config");
        let args = ["run", "--config", cfg.to_str().expect("utf-8")];
        let mut finished = false;
        for k in 0..2 + round % 2 {
            let mut r = Running::start_logging(&args, d, "info");
            let exited = if round == 0 && k == 0 {
                // Once output is being written, before the first checkpoint (40 ms): a restart from the start.
                let first = out.join(".ticks-000001.csv.inprogress");
                let t = std::time::Instant::now();
                loop {
                    if let Some(st) = r.child.try_wait().expect("try_wait") {
                        break Some(st);
                    }
                    if first.exists() || t.elapsed() > Duration::from_secs(10) {
                        break None;
                    }
                    std::thread::sleep(Duration::from_micros(500));
                }
            } else {
                r.wait_for(delays.next(30, span * 3 / 4))
            };
            if let Some(st) = exited {
                let (_, err) = r.output();
                assert!(st.success(), "round {round}: run {k} failed:\n{err}");
                finished = true;
                break;
            }
            // Once a SIGTERM: a stopped job commits what its final checkpoint holds, and nothing after it.
            let stop = round == 2 && k == 0;
            r.signal(if stop { "TERM" } else { "KILL" });
            r.wait_for(Duration::from_secs(10)).expect("killed");
            let (_, err) = r.output();
            kills += !stop as usize;
            early += !err.contains("checkpoint complete") as usize;
            resumed += err.contains("resuming from checkpoint") as usize;
            // Killed anywhere, what is committed is what the uninterrupted run wrote, up to somewhere: parts of
            // the newest complete checkpoint (below its next part), or everything once the input has ended.
            let newest = latest_valid(&chk).expect("checkpoints").and_then(|c| c.manifest);
            for (j, (s, w)) in want.iter().enumerate() {
                let got = committed(&out, s, header_of(w));
                assert!(w.starts_with(&got), "round {round}, kill {k}: the committed parts of {s} are not a prefix");
                let next = newest.as_ref().and_then(|m| m.sinks[j].next_part).unwrap_or(1);
                let last = part_files(&out, s).iter().filter(|p| !p.1).map(|p| p.0).max().unwrap_or(0);
                assert!(
                    last < next || got == *w,
                    "round {round}, kill {k}: part {last} of {s} is committed, the newest complete checkpoint ends \
                     before part {next}"
                );
            }
        }
        if !finished {
            let mut r = Running::start_logging(&args, d, "info");
            let st = r.wait_for(Duration::from_secs(120)).expect("the last run finishes");
            let (_, err) = r.output();
            assert!(st.success(), "round {round}: the last run failed ({st}):\n{err}");
            resumed += err.contains("resuming from checkpoint") as usize;
        }
        for (s, w) in &want {
            let files = part_files(&out, s);
            assert!(files.iter().all(|f| !f.1), "round {round}: {s}: parts left in progress: {files:?}");
            let got = committed(&out, s, header_of(w));
            assert!(
                got == *w || (got.is_empty() && header_of(w) == &w[..]),
                "round {round}: the parts of {s} put together differ from the uninterrupted run's file"
            );
        }
        round += 1;
    }
    assert!(kills >= 10, "only {kills} kills in {round} rounds: the runs finished first");
    assert!(early >= 1, "no kill before the first checkpoint");
    assert!(resumed >= 3, "only {resumed} of the restarts resumed from a checkpoint: the kills came too early");
}

#[test]
fn part_files_are_named_after_the_path_and_a_restore_cleans_up() {
    use ticklane::checkpoint::manifest::SinkPosition;
    use ticklane::record::{RejectReason, RejectRow};
    let dir = tmp();
    let d = dir.path();
    let out = d.join("out");
    let toml = format!(
        r#"
[checkpoint]
dir = {chk}
[[source]]
name = "trades"
type = "csv"
path = "trades.csv"
[[sink]]
stream = "trades_rejects"
type = "csv"
parts = true
path = {path}
"#,
        chk = toml_path(&d.join("chk")),
        path = toml_path(&out.join("rej.csv"))
    );
    let plan = ticklane::config::parse(&toml, "test.toml").expect("valid");
    let (sp, def) = (&plan.sinks[0], &plan.streams[plan.sinks[0].stream as usize]);
    let open = |resume: Option<&SinkPosition>| {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        ticklane::sink::open(sp, def, 0, &stop, &mut ticklane::sink::Producers::default(), true, resume)
    };
    let row = |i: u64| RejectRow::new(i, RejectReason::BadPrice, format!("t{i},x,1").as_bytes());
    let file = |name: &str| out.join(name);
    let names = || -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&out)
            .expect("dir")
            .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
            .collect();
        v.sort();
        v
    };

    // A new job deletes the parts of an old one, nothing else.
    std::fs::create_dir_all(&out).expect("dir");
    for f in ["rej-000001.csv", ".rej-000009.csv.inprogress", "rej.csv", "rej-000001.jsonl", "other-000001.csv"] {
        std::fs::write(file(f), "old\n").expect("write");
    }
    let mut s = open(None).expect("open");
    assert_eq!(names(), ["other-000001.csv", "rej-000001.jsonl", "rej.csv"]);
    let start = s.checkpoint(0).expect("start position");
    assert_eq!((start.kind.as_str(), start.next_part, start.pending.len()), ("parts", Some(1), 0));
    assert_eq!(start.path.as_deref(), out.join("rej.csv").to_str());

    // Checkpoint 1 closes part 1; checkpoint 2 has nothing new (no empty part); 2 completes: part 1 is final.
    for i in 1..=3 {
        s.write_reject(&row(i)).expect("write");
    }
    let p1 = s.checkpoint(1).expect("checkpoint 1");
    assert_eq!(p1.next_part, Some(2));
    assert_eq!(p1.pending.iter().map(|p| (p.part, p.name.as_str())).collect::<Vec<_>>(), [(1, "rej-000001.csv")]);
    let part1 = std::fs::read(file(".rej-000001.csv.inprogress")).expect("part 1 in progress");
    assert_eq!(p1.pending[0].bytes, part1.len() as u64);
    let header = b"line,reason,text\n";
    assert!(part1.starts_with(header), "{}", String::from_utf8_lossy(&part1));
    let p2 = s.checkpoint(2).expect("checkpoint 2");
    assert_eq!((p2.next_part, p2.pending.len()), (Some(2), 1));
    s.checkpoint_complete(2).expect("complete");
    assert_eq!(std::fs::read(file("rej-000001.csv")).expect("part 1"), part1);
    assert!(!file(".rej-000001.csv.inprogress").exists());

    // Part 2 closes at checkpoint 3, which does not complete; part 3 is being written when the job dies.
    s.write_reject(&row(4)).expect("write");
    let p3 = s.checkpoint(3).expect("checkpoint 3");
    assert_eq!((p3.next_part, p3.pending.iter().map(|p| p.part).collect::<Vec<_>>()), (Some(3), vec![2]));
    s.write_reject(&row(5)).expect("write");
    s.flush().expect("flush");
    drop(s);
    // Left behind by other runs: a final part after the checkpoint (a run that reached its end) and a part
    // in progress below it that the checkpoint does not list.
    std::fs::write(file("rej-000004.csv"), "later\n").expect("write");
    std::fs::write(file(".rej-000001.csv.inprogress"), "stray\n").expect("write");
    assert_eq!(
        names(),
        [
            ".rej-000001.csv.inprogress",
            ".rej-000002.csv.inprogress",
            ".rej-000003.csv.inprogress",
            "other-000001.csv",
            "rej-000001.csv",
            "rej-000001.jsonl",
            "rej-000004.csv",
            "rej.csv"
        ]
    );

    // A restore from checkpoint 3 commits part 2, deletes parts 3 and 4 and the stray one, and goes on at 3.
    let mut s = open(Some(&p3)).expect("restore");
    assert_eq!(names(), ["other-000001.csv", "rej-000001.csv", "rej-000001.jsonl", "rej-000002.csv", "rej.csv"]);
    assert_eq!(std::fs::read(file("rej-000001.csv")).expect("part 1"), part1);
    let part2 = std::fs::read(file("rej-000002.csv")).expect("part 2");
    assert!(part2.starts_with(header) && part2.len() as u64 == p3.pending[0].bytes);
    s.write_reject(&row(5)).expect("write");
    // The end of the input commits the part being written.
    s.finish(true).expect("finish");
    assert_eq!(
        names(),
        ["other-000001.csv", "rej-000001.csv", "rej-000001.jsonl", "rej-000002.csv", "rej-000003.csv", "rej.csv"]
    );
    let part3 = std::fs::read(file("rej-000003.csv")).expect("part 3");
    assert!(part3.starts_with(header) && part3.ends_with(b"\n") && part3.len() > header.len());
    drop(s);

    // A pending part shorter than the checkpoint says is an error naming it; a stop leaves the part in progress.
    std::fs::rename(file("rej-000002.csv"), file(".rej-000002.csv.inprogress")).expect("rename");
    std::fs::write(file(".rej-000002.csv.inprogress"), header).expect("cut");
    let err = open(Some(&p3)).err().expect("a short part is an error").to_string();
    assert!(err.contains(".rej-000002.csv.inprogress") && err.contains("shorter"), "{err}");
    std::fs::write(file(".rej-000002.csv.inprogress"), &part2).expect("write");
    let mut s = open(Some(&p3)).expect("restore");
    s.write_reject(&row(6)).expect("write");
    s.finish(false).expect("finish");
    assert!(file(".rej-000003.csv.inprogress").exists() && !file("rej-000003.csv").exists());
}

#[test]
fn part_files_need_a_file_sink_and_checkpoints() {
    let dir = tmp();
    let d = dir.path();
    let check = |sink: &str, checkpoint: bool| {
        let cfg = d.join("p.toml");
        let chk = if checkpoint { "[checkpoint]\ndir = \"chk\"\n" } else { "" };
        let toml = format!(
            "{chk}[[source]]\nname = \"t\"\ntype = \"csv\"\npath = \"t.csv\"\n[[window]]\nname = \"bars\"\n\
             type = \"tumbling\"\nsize = \"1s\"\n[[sink]]\nstream = \"bars\"\nparts = true\n{sink}\n"
        );
        std::fs::write(&cfg, &toml).expect("write");
        let o = ticklane(&["check", "--config", cfg.to_str().expect("utf-8")], d);
        (o.status.success(), common::stderr(&o))
    };
    let (ok, err) = check("type = \"csv\"\npath = \"out/bars.csv\"", false);
    assert!(!ok && err.contains("sink[0].parts") && err.contains("[checkpoint] dir"), "{err}");
    let (ok, err) = check("type = \"stdout\"", true);
    assert!(!ok && err.contains("sink[0].parts") && err.contains("only applies to csv and jsonl"), "{err}");
    let (ok, err) =
        check("type = \"kafka\"\ntopic = \"bars\"\nkafka = { \"bootstrap.servers\" = \"127.0.0.1:1\" }", true);
    assert!(!ok && err.contains("sink[0].parts") && err.contains("only applies to csv and jsonl"), "{err}");
    let (ok, err) = check(
        "type = \"csv\"\npath = \"out/bars.csv\"\n[[sink]]\nstream = \"bars\"\ntype = \"csv\"\npath = \"out/bars-000001.csv\"",
        true,
    );
    assert!(!ok && err.contains("sink[1].path") && err.contains("part file of sink[0]"), "{err}");
    for ty in ["csv", "jsonl"] {
        let (ok, err) = check(&format!("type = \"{ty}\"\npath = \"out/bars.{ty}\""), true);
        assert!(ok, "{ty}: {err}");
    }
}

/// What an itch job writes: its trades, quotes and level updates passed through, bars and spreads, rejects.
const ITCH_STREAMS: [&str; 6] = ["trades", "quotes", "levels", "bars", "spread", "feed_rejects"];

/// A generated ITCH feed (a few faults among the messages, so rejects and counters are restored too).
fn itch_feed(dir: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let path = dir.join(name);
    let mut args = vec![
        "itch-gen",
        "--out",
        path.to_str().expect("utf-8"),
        "--messages",
        "200000",
        "--stocks",
        "8",
        "--seed",
        "23",
        "--faults",
        "0.001",
    ];
    args.extend_from_slice(extra);
    common::ticklane_ok(&args, dir);
    path
}

/// An itch source paced so that a run lasts about 1.5 s (the session is 6.5 h), so checkpoints are taken
/// while the pacer holds messages.
fn itch_config(feed: &Path, out: &Path, checkpoints: Option<&Path>) -> String {
    let mut c = format!(
        r#"
{head}[[stream]]
name = "trades"
events = "trade"
[[stream]]
name = "quotes"
events = "quote"
[[stream]]
name = "levels"
events = "level"
{windows}"#,
        head = common::itch_source("2024-01-02", &format!("path = {}\nspeed = 15600.0", toml_path(feed))),
        windows = common::ITCH_WINDOWS,
    );
    for s in ITCH_STREAMS {
        c.push_str(&format!(
            "\n[[sink]]\nstream = \"{s}\"\ntype = \"csv\"\npath = {}\n",
            toml_path(&out.join(format!("{s}.csv")))
        ));
    }
    if let Some(dir) = checkpoints {
        c.push_str(&format!("\n[checkpoint]\ndir = {}\ninterval = \"100ms\"\n", toml_path(dir)));
    }
    c
}

fn itch_outputs(dir: &Path) -> Vec<(&'static str, Vec<u8>)> {
    ITCH_STREAMS.iter().map(|&s| (s, std::fs::read(dir.join(format!("{s}.csv"))).unwrap_or_default())).collect()
}

/// An itch job (plain and gzip feed, paced) killed with SIGKILL after `kills` times ≥ 2 checkpoints, then run to
/// its end, writes exactly what an uninterrupted run writes: the books, the last quotes, the directory and the
/// record index all come back, and the replay starts at the message after the checkpoint's.
fn itch_killed_after_checkpoints(feed: &Path, tag: &str, kills: usize) {
    let d = feed.parent().expect("dir");
    let reference = d.join(format!("reference-{tag}"));
    run_config(d, &format!("reference-{tag}.toml"), &itch_config(feed, &reference, None));
    let want = itch_outputs(&reference);
    assert!(want.iter().all(|(_, b)| !b.is_empty()), "the reference run wrote nothing");
    let (out, chk) = (d.join(format!("out-{tag}")), d.join(format!("chk-{tag}")));
    let cfg = d.join(format!("job-{tag}.toml"));
    std::fs::write(&cfg, itch_config(feed, &out, Some(&chk))).expect("write config");
    let args = ["run", "--config", cfg.to_str().expect("utf-8")];
    for _ in 0..kills {
        kill_after_checkpoints(&args, d, 2);
    }
    let mut r = Running::start_logging(&args, d, "info");
    let st = r.wait_for(Duration::from_secs(120)).expect("the last run finishes");
    let (_, err) = r.output();
    assert!(st.success(), "the last run failed ({st}):\n{err}");
    assert!(err.contains("resuming from checkpoint"), "the last run did not restore:\n{err}");
    for ((s, got), (_, w)) in itch_outputs(&out).iter().zip(&want) {
        assert!(got == w, "{tag}: {s}.csv differs from the uninterrupted run's");
    }
}

#[test]
fn an_itch_feed_killed_after_checkpoints_writes_what_an_uninterrupted_run_writes() {
    let dir = tmp();
    let feed = itch_feed(dir.path(), "day.itch", &[]);
    itch_killed_after_checkpoints(&feed, "plain", 2);
}

#[test]
fn a_gzip_itch_feed_restored_once_writes_what_an_uninterrupted_run_writes() {
    let dir = tmp();
    let feed = itch_feed(dir.path(), "day.itch.gz", &["--gzip"]);
    itch_killed_after_checkpoints(&feed, "gzip", 1);
}
