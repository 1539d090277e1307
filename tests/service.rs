//! Under systemd (`Type=notify`, `WatchdogSec=`): the messages the job sends to `NOTIFY_SOCKET`, read from a
//! datagram socket of the test's own — READY=1 once it runs, STATUS= lines, WATCHDOG=1 pings at half the
//! watchdog period, STOPPING=1 when SIGTERM starts the drain; and `scripts/install.sh`, staged into a directory.

mod common;

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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
