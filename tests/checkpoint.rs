//! Checkpoints and recovery, end to end through the binary: a job killed with SIGKILL at random moments and
//! started again with the same config until it finishes writes exactly the files an uninterrupted run writes
//! — byte for byte with one worker, the same lines with several (whose interleaving in a file depends on
//! thread timing); also across a change of the number of workers, and past a damaged newest checkpoint.

mod common;

use common::{gen, run_config, ticklane, toml_path, Running};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Every stream a job writes: windows of three kinds with their late outputs, per-trade ticks, rejects.
const STREAMS: [&str; 8] = ["bars", "bars_late", "slide", "slide_late", "sess", "sess_late", "ticks", "trades_rejects"];

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

/// A small deterministic generator of kill delays (no rand dependency needed).
struct Delays(u64);

impl Delays {
    fn next(&mut self, lo_ms: u64, hi_ms: u64) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        Duration::from_millis(lo_ms + self.0 % (hi_ms - lo_ms))
    }
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

    let mut delays = Delays(0x9E37_79B9_7F4A_7C15);
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
    let err = check(&job("[checkpoint]\ndir = \"chk\"", "", "exactly_once = \"transactions\""));
    assert!(err.contains("exactly_once") && err.contains("replay"), "{err}");
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
    std::fs::write(&cfg, config(&input, &out, 1, Some(&chk))).expect("write config");
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
    for k in 1..=400 {
        let (out, chk) = (d.join(format!("out-{k}")), d.join(format!("chk-{k}")));
        let cfg = d.join(format!("job-{k}.toml"));
        std::fs::write(&cfg, job(&out, Some(&chk))).expect("write config");
        let args = ["run", "--config", cfg.to_str().expect("utf-8")];
        let o = std::process::Command::new(common::bin())
            .args(args)
            .current_dir(d)
            .env("TICKLANE_CRASH_AT", k.to_string())
            .output()
            .expect("run ticklane");
        let err = common::stderr(&o);
        if o.status.success() {
            assert!(!err.contains("crash point"), "{err}");
            break;
        }
        let point =
            err.lines().find(|l| l.starts_with("crash point")).unwrap_or_else(|| panic!("run {k} failed:\n{err}"));
        points.push(point.to_string());
        let again = ticklane(&args, d);
        assert!(again.status.success(), "after {point}: the restart failed:\n{}", common::stderr(&again));
        let got = read(&out);
        assert!(got == want, "after {point}: the output differs from the uninterrupted run's");
        let _ = std::fs::remove_dir_all(&out);
        let _ = std::fs::remove_dir_all(&chk);
    }
    let kinds: std::collections::BTreeSet<&str> = points
        .iter()
        .filter_map(|p| p.split("after ").nth(1))
        .map(|p| p.trim_end_matches(": aborting (TICKLANE_CRASH_AT)"))
        .collect();
    eprintln!("{} crash points, of {} kinds: {kinds:?}", points.len(), kinds.len());
    assert!(points.len() < 400, "the job never finished without crashing");
    for k in ["renaming a state file", "renaming a manifest", "syncing a sink file", "removing an old checkpoint"] {
        assert!(kinds.contains(k), "no crash point after {k}: {kinds:?}");
    }
}
