//! Under systemd (`Type=notify`, `WatchdogSec=`): the messages the job sends to `NOTIFY_SOCKET`, read from a
//! datagram socket of the test's own — READY=1 once it runs, STATUS= lines, WATCHDOG=1 pings at half the
//! watchdog period, STOPPING=1 when SIGTERM starts the drain, RELOADING=1 and READY=1 around a reload (SIGHUP);
//! and `scripts/install.sh`, staged into a directory.

mod common;

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A child process killed when dropped, so that a failing test leaves no job running.
struct Job(std::process::Child);

impl Drop for Job {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Every datagram received until `until` holds or `limit` passes.
fn read_until(sock: &UnixDatagram, got: &mut Vec<String>, limit: Duration, until: impl Fn(&[String]) -> bool) {
    let end = Instant::now() + limit;
    let mut buf = [0u8; 4096];
    while Instant::now() < end && !until(got) {
        if let Ok(n) = sock.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
}

#[test]
fn the_service_manager_hears_ready_status_watchdog_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("job.toml"), common::paced_job("", "")).unwrap();
    let path = d.join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let mut child = Command::new(common::bin())
        .args(["run", "--config", "job.toml"])
        .current_dir(d)
        .env("NOTIFY_SOCKET", &path)
        .env("WATCHDOG_USEC", "400000")
        .env("WATCHDOG_PID", std::process::id().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut got = Vec::new();
    // WATCHDOG_PID names another process (the test's): the job must not take the watchdog as its own.
    read_until(&sock, &mut got, Duration::from_secs(3), |_| false);
    let _ = child.kill();
    let _ = child.wait();
    assert!(got.iter().any(|m| m.lines().any(|l| l == "READY=1")), "{got:?}");
    assert!(!got.iter().any(|m| m.contains("WATCHDOG=1")), "pings for another process's watchdog: {got:?}");

    // Now for this process, as systemd sets it (the shell's pid, which exec keeps): pings every 200 ms,
    // status lines, and STOPPING=1 at SIGTERM.
    let mut child = Command::new("sh")
        .args(["-c", "WATCHDOG_PID=$$ exec \"$0\" run --config job.toml", common::bin()])
        .current_dir(d)
        .env("NOTIFY_SOCKET", &path)
        .env("WATCHDOG_USEC", "400000")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut got = Vec::new();
    read_until(&sock, &mut got, Duration::from_secs(20), |g| {
        g.iter().filter(|m| m.contains("WATCHDOG=1")).count() >= 5
    });
    let first = got.first().cloned().unwrap_or_default();
    assert!(first.lines().any(|l| l == "READY=1"), "READY=1 is not the first message: {got:?}");
    assert!(first.lines().any(|l| l.starts_with("STATUS=running")), "{first:?}");
    assert!(got.iter().filter(|m| m.contains("WATCHDOG=1")).count() >= 5, "{got:?}");
    assert!(got.iter().any(|m| m.starts_with("STATUS=in ") && m.contains("ev/s")), "no live status: {got:?}");
    let st = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(st.success());
    read_until(&sock, &mut got, Duration::from_secs(20), |g| g.iter().any(|m| m.contains("STOPPING=1")));
    let status = child.wait().unwrap();
    assert!(status.success(), "exit {status}");
    assert!(got.iter().any(|m| m.lines().any(|l| l == "STOPPING=1")), "{got:?}");
}

/// SIGHUP re-reads the config: a latency alert's bound and the log filter change live (the alert fires, the
/// checkpoint lines stop), a changed checkpoint interval is named as needing a restart, and a file that no
/// longer parses is reported with its line while the job runs on.
#[test]
fn a_reload_applies_alerts_and_the_log_filter_and_names_what_needs_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Every event timed, so that every bar is: with the default (one event in four) about a quarter are, and
    // under load the alert once saw none within 10 s.
    let job = |above: &str, filter: &str, interval: &str| {
        common::paced_job(
            "listen = \"127.0.0.1:0\"\nlatency_sample = 1",
            &format!(
                "[log]\nfilter = \"{filter}\"\n[checkpoint]\ndir = \"chk\"\ninterval = \"{interval}\"\n\
                 [[alerts.latency]]\nstage = \"end_to_end\"\nquantile = 0.5\nabove = \"{above}\"\n"
            ),
        )
    };
    std::fs::write(d.join("job.toml"), job("10s", "info", "200ms")).unwrap();
    let path = d.join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let log = d.join("stderr.log");
    let mut running = Job(Command::new(common::bin())
        .args(["run", "--config", "job.toml"])
        .current_dir(d)
        .env("NOTIFY_SOCKET", &path)
        // The config's filter wins over this.
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap());
    let pid = running.0.id().to_string();
    let stderr = || std::fs::read_to_string(&log).unwrap_or_default();
    let mut got = Vec::new();
    read_until(&sock, &mut got, Duration::from_secs(20), |g| g.iter().any(|m| m.contains("READY=1")));
    assert!(got.iter().any(|m| m.contains("READY=1")), "{got:?}\n{}", stderr());
    assert!(
        common::wait_until(Duration::from_secs(20), || stderr().matches("checkpoint complete").count() >= 2),
        "{}",
        stderr()
    );
    let addr = common::metrics_addr_in(&stderr()).expect("the endpoint's address is logged");
    let firing = || common::http_get(&addr, "/metrics").2.contains("ticklane_alert_firing{alert=\"latency\"");
    std::thread::sleep(Duration::from_millis(600));
    assert!(!firing(), "a p50 above 10 s");

    // A lower bound, checkpoint lines off, a new checkpoint interval.
    std::fs::write(d.join("job.toml"), job("1ns", "info,ticklane::checkpoint=warn", "300ms")).unwrap();
    let reload = |got: &mut Vec<String>| {
        let before = got.len();
        let st = Command::new("kill").args(["-HUP", &pid]).status().unwrap();
        assert!(st.success());
        read_until(&sock, got, Duration::from_secs(10), |g| g[before..].iter().any(|m| m.contains("READY=1")));
        let new = &got[before..];
        let at = new.iter().position(|m| m.lines().any(|l| l == "RELOADING=1"));
        let at = at.unwrap_or_else(|| panic!("no RELOADING=1: {new:?}"));
        assert!(new[at].lines().any(|l| l.starts_with("MONOTONIC_USEC=")), "{new:?}");
        let ready = new[at..].iter().find(|m| m.lines().any(|l| l == "READY=1"));
        ready.unwrap_or_else(|| panic!("no READY=1 after RELOADING=1: {new:?}")).clone()
    };
    let ready = reload(&mut got);
    assert!(
        ready.contains(
            "STATUS=reloaded: applied alerts.latency[0].above, log.filter; needs a restart: checkpoint.interval"
        ),
        "{ready:?}"
    );
    let err = stderr();
    assert!(
        err.lines()
            .any(|l| l.contains("WARN") && l.contains("key=checkpoint.interval") && l.contains("needs a restart")),
        "{err}"
    );
    assert!(common::wait_until(Duration::from_secs(10), firing), "the new bound is not in effect\n{}", stderr());
    let seen = stderr().len();
    std::thread::sleep(Duration::from_millis(1200));
    let after = stderr()[seen..].to_string();
    assert!(!after.contains("checkpoint complete"), "the checkpoint lines were not filtered out:\n{after}");

    // A file that does not parse: named with its line, and nothing changes.
    std::fs::write(d.join("job.toml"), "[pipeline]\nworkers = 2\n[metrics\n").unwrap();
    let ready = reload(&mut got);
    assert!(ready.contains("STATUS=reload failed, running config kept: "), "{ready:?}");
    let err = stderr();
    assert!(err.contains("the running config is kept") && err.contains("job.toml:3:"), "{err}");
    assert!(running.0.try_wait().unwrap().is_none(), "the job stopped:\n{err}");
    assert!(firing(), "the rules running before are kept");

    let st = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(st.success());
    let status = running.0.wait().unwrap();
    assert!(status.success(), "exit {status}\n{}", stderr());
}

/// `scripts/install.sh` staged into a directory: the binary, the default config (checked), the unit pointing
/// at the binary; a second install keeps an edited config.
#[test]
fn the_install_script_stages_binary_config_and_unit() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path();
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let install = |expect_ok: bool| {
        let o = Command::new("bash")
            .arg(repo.join("scripts/install.sh"))
            .env("DESTDIR", dest)
            .env("PREFIX", "/opt/tl")
            .env("TICKLANE_BIN", common::bin())
            .output()
            .unwrap();
        let out = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        assert_eq!(o.status.success(), expect_ok, "{out}");
        out
    };
    let out = install(true);
    assert!(dest.join("opt/tl/bin/ticklane").is_file(), "{out}");
    let conf = dest.join("etc/ticklane/ticklane.toml");
    assert_eq!(
        std::fs::read_to_string(&conf).unwrap(),
        std::fs::read_to_string(repo.join("config/systemd/ticklane.toml")).unwrap()
    );
    let unit = std::fs::read_to_string(dest.join("etc/systemd/system/ticklane.service")).unwrap();
    assert!(unit.contains("\nType=notify\n") && unit.contains("\nWatchdogSec="), "{unit}");
    assert!(unit.contains("ExecStart=/opt/tl/bin/ticklane run --config /etc/ticklane/ticklane.toml"), "{unit}");

    // An edited config is kept, and checked: a broken one fails the install with the key named.
    std::fs::write(&conf, "[metrics]\nlisten = \"nowhere\"\n").unwrap();
    let out = install(false);
    assert!(out.contains("keeping") && out.contains("metrics.listen"), "{out}");
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), "[metrics]\nlisten = \"nowhere\"\n");
}

/// A SIGHUP while the job is still starting (here: its postgres sink waits for a database that is not there)
/// is held until the job is ready, so that no READY=1 reaches the service manager before the job runs.
#[test]
fn a_reload_during_the_start_does_not_say_ready_early() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let job = format!(
        "[[source]]\nname = \"t\"\ntype = \"synthetic\"\nevents = 1000\n[[window]]\nname = \"bars\"\n\
         type = \"tumbling\"\nsize = \"1s\"\n[[sink]]\nstream = \"bars\"\ntype = \"postgres\"\n[sink.postgres]\n\
         connect = \"postgresql://ticklane@127.0.0.1:{port}/ticklane\"\ntable = \"bars\"\n"
    );
    std::fs::write(d.join("job.toml"), job).unwrap();
    let path = d.join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let log = d.join("stderr.log");
    let mut running = Job(Command::new(common::bin())
        .args(["run", "--config", "job.toml"])
        .current_dir(d)
        .env("NOTIFY_SOCKET", &path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap());
    let stderr = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        common::wait_until(Duration::from_secs(20), || stderr().contains("cannot connect at the start")),
        "the sink is not waiting for its database:\n{}",
        stderr()
    );
    let pid = running.0.id().to_string();
    assert!(Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    let mut got = Vec::new();
    read_until(&sock, &mut got, Duration::from_millis(1500), |g| !g.is_empty());
    assert!(got.iter().all(|m| !m.contains("READY=1") && !m.contains("RELOADING=1")), "{got:?}");
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let t = Instant::now();
    while running.0.try_wait().unwrap().is_none() && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let st = running.0.try_wait().unwrap().expect("a stop ends the wait");
    assert!(!st.success());
    read_until(&sock, &mut got, Duration::from_millis(300), |_| false);
    assert!(got.iter().all(|m| !m.contains("READY=1")), "READY=1 from a job that never ran: {got:?}");
}
