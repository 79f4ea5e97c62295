//! The daemon under systemd: the sd_notify protocol of a `Type=notify` service (READY once the
//! queue answered, STATUS lines, WATCHDOG pings from the intake loop at half `WatchdogSec` (none
//! when `$WATCHDOG_PID` names another process),
//! RELOADING then READY on SIGHUP with the policy re-read and re-linted, the old one kept when
//! the new one is invalid, STOPPING on SIGTERM), spoken to a test socket as systemd's
//! `$NOTIFY_SOCKET` (systemd is not PID 1 here); `check-config --offline`; and the shipped unit
//! checked by `systemd-analyze` where it exists.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lakemesh_shared::testbed::Emulator;

use crate::support::{DESIGN_POLICY, World};

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
            .expect("timeout");
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

/// `lakemesh-syncd` started on the world's configuration, standard error in a file.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn start(w: &World, args: &[&str], env: &[(&str, String)]) -> Self {
        let config = w.config_path();
        let log = w.dir.path().join("syncd.log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_lakemesh-syncd"));
        cmd.arg("--config")
            .arg(&config)
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", w.dir.path())
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        Self {
            child: cmd.spawn().expect("start lakemesh-syncd"),
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(sig)
            .arg(self.child.id().to_string())
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill {sig}");
    }

    fn wait(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                return s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("lakemesh-syncd did not exit\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn the_service_tells_systemd_when_it_is_ready_alive_reloading_and_stopping() {
    let e = Emulator::shared().expect("emulator");
    // one receive: the rejected message is in the dead-letter queue at the next receive
    let w = World::new(e, 1).await;
    w.write_policy(DESIGN_POLICY);
    let sock_path = w.dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).expect("bind");
    let mut d = Daemon::start(
        &w,
        &["run"],
        &[
            ("NOTIFY_SOCKET", sock_path.display().to_string()),
            ("WATCHDOG_USEC", "400000".into()),
        ],
    );

    let got = receive_until(&sock, Duration::from_secs(60), |m| m.contains("READY=1"));
    let ready = got.iter().find(|m| m.contains("READY=1"));
    assert!(ready.is_some(), "no READY=1: {got:?}\n{}", d.log());
    assert!(
        ready.is_some_and(|m| m.contains(&format!("STATUS=consuming {}", w.queue_url))),
        "{ready:?}"
    );
    // pings every 0.2 s (half of WATCHDOG_USEC), while the loop long-polls the queue
    let pings = receive_until(&sock, Duration::from_secs(5), |_| false)
        .iter()
        .filter(|m| m.contains("WATCHDOG=1"))
        .count();
    assert!(pings >= 5, "{pings} watchdog pings in 5 s\n{}", d.log());

    // a message handled: the status line counts it
    w.send_raw("not json at all", Some(&w.producer)).await;
    let got = receive_until(&sock, Duration::from_secs(30), |m| {
        m.contains("STATUS=") && m.contains("1 rejected")
    });
    assert!(
        got.iter().any(|m| m.contains("1 rejected")),
        "{got:?}\n{}",
        d.log()
    );

    // SIGHUP with an invalid policy: RELOADING, READY, and the running policy kept
    w.write_policy(
        "[[grant]]\nprincipal = \"arn:aws:iam::111122223333:role/x\"\ntables = { domain = \"d\" }\npermissions = [\"SELECT\"]\nrows = \"lower(region) = 'a'\"\n",
    );
    d.signal("-HUP");
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
    let log = d.log();
    assert!(
        log.contains("SIGHUP: policy: grant #1") && log.contains("keeping the running policy"),
        "{log}"
    );

    // one that parses but names a domain no registered producer has (a typo): refused as
    // at start, where check-config would refuse it too
    w.write_policy(
        "[[grant]]\nprincipal = \"arn:aws:iam::111122223333:role/x\"\ntables = { domain = \"DOMAINx\" }\npermissions = [\"SELECT\"]\n",
    );
    d.signal("-HUP");
    receive_until(&sock, Duration::from_secs(30), |m| m.contains("READY=1"));
    let log = d.log();
    assert!(
        log.contains("is no registered producer's domain")
            && log.contains("keeping the running policy"),
        "{log}"
    );

    // a valid one is put in force
    w.write_policy(DESIGN_POLICY);
    d.signal("-HUP");
    let got = receive_until(&sock, Duration::from_secs(30), |m| m.contains("READY=1"));
    assert!(
        got.iter()
            .any(|m| m.contains("READY=1") && m.contains("STATUS=consuming")),
        "{got:?}"
    );
    assert!(
        d.log().contains("SIGHUP: policy reloaded (2 grants"),
        "{}",
        d.log()
    );

    d.signal("-TERM");
    let got = receive_until(&sock, Duration::from_secs(30), |m| m.contains("STOPPING=1"));
    assert!(got.iter().any(|m| m.contains("STOPPING=1")), "{got:?}");
    let status = d.wait(Duration::from_secs(60));
    assert!(status.success(), "{status:?}\n{}", d.log());

    // the reloads are in the state store, the last failed one as the last policy error
    let out = Command::new(env!("CARGO_BIN_EXE_lakemesh-syncd"))
        .arg("--config")
        .arg(w.config_path())
        .args(["status", "--json"])
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .output()
        .expect("status");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["announcements"]["rejected"], 1, "{v}");
    // the failed reload came after the rejected announcement: it is the last error
    assert_eq!(v["last_error"]["source"], "policy", "{v}");
    assert!(
        v["last_error"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("is no registered producer's domain")),
        "{v}"
    );
}

#[tokio::test]
async fn a_watchdog_meant_for_another_process_is_not_pinged() {
    // systemd sets WATCHDOG_PID to the main process: anyone else must stay silent
    let e = Emulator::shared().expect("emulator");
    let w = World::new(e, 2).await;
    w.write_policy(DESIGN_POLICY);
    let sock_path = w.dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).expect("bind");
    let mut d = Daemon::start(
        &w,
        &["run"],
        &[
            ("NOTIFY_SOCKET", sock_path.display().to_string()),
            ("WATCHDOG_USEC", "200000".into()),
            ("WATCHDOG_PID", "1".into()),
        ],
    );
    let got = receive_until(&sock, Duration::from_secs(60), |m| m.contains("READY=1"));
    assert!(
        got.iter().any(|m| m.contains("READY=1")),
        "{got:?}\n{}",
        d.log()
    );
    let got = receive_until(&sock, Duration::from_secs(2), |_| false);
    assert!(!got.iter().any(|m| m.contains("WATCHDOG=1")), "{got:?}");
    d.signal("-TERM");
    assert!(d.wait(Duration::from_secs(60)).success(), "{}", d.log());
}

#[tokio::test]
async fn without_the_queue_the_service_waits_before_it_is_ready() {
    // ExecStartPre's `check-config --offline` passes with the network down; the service then
    // waits for the queue, telling why, and is not READY until it answers
    let e = Emulator::shared().expect("emulator");
    let mut w = World::new(e, 2).await;
    w.write_policy(DESIGN_POLICY);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let endpoint = format!("http://{}", closed.local_addr().expect("addr"));
    drop(closed);
    w.extra = String::new();
    let config = w
        .config_text()
        .replace(&e.settings().endpoint_url.unwrap_or_default(), &endpoint);
    let path = w.dir.path().join("offline.toml");
    std::fs::write(&path, config).expect("config");

    let out = Command::new(env!("CARGO_BIN_EXE_lakemesh-syncd"))
        .arg("--config")
        .arg(&path)
        .args(["check-config", "--offline"])
        .output()
        .expect("check-config");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{:?}", out.stderr);
    assert!(
        stdout.contains("1 producers") && stdout.contains("state:") && !stdout.contains("SQS"),
        "{stdout}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_lakemesh-syncd"))
        .arg("--config")
        .arg(&path)
        .arg("check-config")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .output()
        .expect("check-config");
    assert_eq!(out.status.code(), Some(1), "{out:?}");

    let sock_path = w.dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).expect("bind");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lakemesh-syncd"));
    cmd.arg("--config")
        .arg(&path)
        .arg("run")
        .env("NOTIFY_SOCKET", &sock_path)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .stderr(Stdio::null());
    let mut child = cmd.spawn().expect("run");
    let got = receive_until(&sock, Duration::from_secs(10), |m| m.contains("READY=1"));
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let status = child.wait().expect("wait");
    assert!(!got.iter().any(|m| m.contains("READY=1")), "{got:?}");
    assert!(
        got.iter()
            .any(|m| m.contains("STATUS=waiting for the queue")),
        "{got:?}"
    );
    assert!(
        status.success(),
        "SIGTERM while waiting exits 0: {status:?}"
    );
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
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
    let text = std::fs::read_to_string(repo().join("packaging/systemd/lakemesh-syncd.service"))
        .expect("unit")
        .replace(
            "/usr/bin/lakemesh-syncd",
            env!("CARGO_BIN_EXE_lakemesh-syncd"),
        );
    let unit = dir.join("lakemesh-syncd.service");
    std::fs::write(&unit, text).expect("unit");
    Some(unit)
}

#[test]
fn the_unit_verifies_without_a_single_warning() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(unit) = unit_for_test(dir.path()) else {
        return;
    };
    // `verify` exits 0 on unknown keys and bad values, printing warnings only: any output fails
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no", "--generators=no"])
        .arg(&unit)
        .output()
        .expect("systemd-analyze");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && text.trim().is_empty(), "{text}");
}

#[test]
fn the_unit_is_rated_ok_or_better_by_systemd_analyze_security() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(unit) = unit_for_test(dir.path()) else {
        return;
    };
    // "OK" is an exposure below 2.0 (4.0 would already be "MEDIUM")
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--threshold=19", "--no-pager"])
        .arg(&unit)
        .output()
        .expect("systemd-analyze");
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

#[test]
fn the_unit_runs_as_its_own_user_with_the_state_directory_of_the_configuration() {
    let unit = std::fs::read_to_string(repo().join("packaging/systemd/lakemesh-syncd.service"))
        .expect("unit");
    let sysusers = std::fs::read_to_string(repo().join("packaging/sysusers.d/lakemesh-syncd.conf"))
        .expect("sysusers");
    let tmpfiles = std::fs::read_to_string(repo().join("packaging/tmpfiles.d/lakemesh-syncd.conf"))
        .expect("tmpfiles");
    let value = |key: &str| {
        unit.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("no {key}="))
            .to_owned()
    };
    assert_eq!(value("User"), "lakemesh-syncd");
    assert!(
        sysusers.lines().any(|l| l.starts_with("u lakemesh-syncd ")),
        "{sysusers}"
    );
    let state = format!("/var/lib/{}", value("StateDirectory"));
    assert_eq!(state, lakemesh_syncd::config::DEFAULT_STATE_DIR);
    assert!(
        tmpfiles
            .lines()
            .any(|l| l.starts_with(&format!("d {state} ")) && l.contains("lakemesh-syncd")),
        "{tmpfiles}"
    );
    assert_eq!(
        value("Environment"),
        format!(
            "LAKEMESH_SYNCD_CONFIG={}",
            lakemesh_syncd::config::DEFAULT_PATH
        )
    );
}
