//! The agent under systemd: the sd_notify protocol of a `Type=notify` service (READY once
//! delivering, WATCHDOG pings at half `WatchdogSec`, RELOADING then READY on SIGHUP, STOPPING on
//! SIGTERM), spoken to a test socket as systemd's `$NOTIFY_SOCKET` (systemd is not PID 1 here);
//! and the shipped unit checked by `systemd-analyze` where it exists.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use lakemesh_shared::testbed::Emulator;

use crate::agent_process::Site;

/// Datagrams received until `until` matches one, or the limit passes.
fn receive_until(
    sock: &UnixDatagram,
    limit: Duration,
    until: impl Fn(&str) -> bool,
) -> Vec<String> {
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        if let Ok(n) = sock.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            let done = until(&msg);
            got.push(msg);
            if done {
                break;
            }
        }
    }
    got
}

#[tokio::test]
async fn the_service_tells_systemd_when_it_is_ready_alive_reloading_and_stopping() {
    let e = Emulator::shared().unwrap();
    let mut site = Site::new(e, "notify").await;
    let sock_path = site.dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    site.extra_env = vec![
        ("NOTIFY_SOCKET".into(), sock_path.display().to_string()),
        ("WATCHDOG_USEC".into(), "400000".into()),
    ];
    site.write_config();
    let mut agent = site.start(None);

    let got = receive_until(&sock, Duration::from_secs(60), |m| m.contains("READY=1"));
    let ready = got.iter().find(|m| m.contains("READY=1"));
    assert!(ready.is_some(), "no READY=1: {got:?}\n{}", agent.log());
    assert!(
        ready.is_some_and(|m| m.contains("STATUS=delivering stays to s3://")),
        "{ready:?}"
    );
    // pings every 0.2 s (half of WATCHDOG_USEC)
    let pings = receive_until(&sock, Duration::from_secs(5), |_| false)
        .iter()
        .filter(|m| m.contains("WATCHDOG=1"))
        .count();
    assert!(pings >= 5, "{pings} watchdog pings in 5 s");

    agent.signal("-HUP");
    let got = receive_until(&sock, Duration::from_secs(30), |m| m.contains("READY=1"));
    let reloading = got.iter().position(|m| m.contains("RELOADING=1"));
    let ready = got.iter().position(|m| m.contains("READY=1"));
    assert!(
        matches!((reloading, ready), (Some(a), Some(b)) if a < b),
        "RELOADING then READY: {got:?}"
    );
    assert!(
        got.iter()
            .any(|m| m.contains("RELOADING=1") && m.contains("MONOTONIC_USEC=")),
        "systemd 253+ needs MONOTONIC_USEC with RELOADING: {got:?}"
    );

    agent.signal("-TERM");
    let got = receive_until(&sock, Duration::from_secs(30), |m| m.contains("STOPPING=1"));
    assert!(got.iter().any(|m| m.contains("STOPPING=1")), "{got:?}");
    let status = agent.wait(Duration::from_secs(60));
    assert!(status.success(), "{status:?}\n{}", agent.log());
}

fn repo() -> PathBuf {
    std::path::PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("run by cargo"))
        .join("..")
}

/// The shipped unit with its binary path pointing at the one just built (systemd-analyze checks
/// that the command exists).
fn unit_for_test(dir: &Path) -> Option<PathBuf> {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("NOTICE: systemd-analyze not found; the unit checks are skipped");
        return None;
    }
    let text = std::fs::read_to_string(repo().join("packaging/systemd/lakemesh-agent.service"))
        .unwrap()
        .replace(
            "/usr/bin/lakemesh-agent",
            env!("CARGO_BIN_EXE_lakemesh-agent"),
        );
    let unit = dir.join("lakemesh-agent.service");
    std::fs::write(&unit, text).unwrap();
    Some(unit)
}

#[test]
fn the_unit_verifies_without_a_single_warning() {
    let dir = tempfile::tempdir().unwrap();
    let Some(unit) = unit_for_test(dir.path()) else {
        return;
    };
    // `verify` exits 0 on unknown keys and bad values, printing warnings only: any output fails
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no", "--generators=no"])
        .arg(&unit)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && text.trim().is_empty(), "{text}");
}

#[test]
fn the_unit_is_rated_ok_or_better_by_systemd_analyze_security() {
    let dir = tempfile::tempdir().unwrap();
    let Some(unit) = unit_for_test(dir.path()) else {
        return;
    };
    // "OK" is an exposure below 2.0 (4.0 would already be "MEDIUM")
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--threshold=19", "--no-pager"])
        .arg(&unit)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no verdict: {text}"));
    assert!(
        out.status.success() && (line.contains(" OK") || line.contains("SAFE")),
        "{line}"
    );
}

#[tokio::test]
async fn check_config_offline_lets_the_service_start_without_the_network() {
    // ExecStartPre runs `check-config --offline`: a network outage must not stop the start
    let e = Emulator::shared().unwrap();
    let mut site = Site::new(e, "offline-check").await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    site.endpoint = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    site.write_config();
    let out = site.run(&["check-config", "--offline"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("ok      config") && !text.contains("bucket"),
        "{text}"
    );
    let out = site.run(&["check-config"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("FAILED  bucket"), "{text}");
}
