//! The state store and `lakemesh-syncd status`: announcements accepted and rejected as the
//! service recorded them, the queue and dead-letter queue depths read from the emulator, the
//! policy file against the last `apply`, text and JSON; and a queue that does not answer.

use std::process::{Command, Output};
use std::sync::Arc;

use lakemesh_shared::testbed::Emulator;
use lakemesh_syncd::commands;

use crate::support::{DESIGN_POLICY, World};

fn status(config: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lakemesh-syncd"))
        .arg("--config")
        .arg(config)
        .arg("status")
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .expect("run lakemesh-syncd status")
}

fn json(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "{o:?}");
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {o:?}"))
}

#[tokio::test]
async fn status_reports_what_the_service_handled_the_queues_and_the_policy() {
    let e = Emulator::shared().expect("emulator");
    // one receive: the rejected message goes to the dead-letter queue at the next receive
    let mut w = World::new(e, 1).await;
    w.extra = "catalog_mode = \"direct\"".into();
    w.write_policy(DESIGN_POLICY);
    let config = w.config_path();

    // before the service ever ran: nothing recorded, nothing created by `status`
    let v = json(&status(&config, &["--json"]));
    assert_eq!(v["state_present"], false, "{v}");
    assert!(!w.dir.path().join("state/syncd.sqlite").exists());

    let a = w.upload("hospital_stays", &[3], 41).await;
    w.send(&a).await;
    w.send_raw("{\"version\": 1, \"product\": \"x\"}", Some(&w.producer))
        .await;
    let report = w.run_once().await;
    assert_eq!((report.done, report.rejections.len()), (1, 1), "{report:?}");
    let (settings, policy) = w.load();
    commands::apply(Arc::clone(&settings), policy, &w.sdk)
        .await
        .expect("apply");

    let v = json(&status(&config, &["--json"]));
    let mut keys: Vec<&str> = v
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "announcements",
            "config",
            "dead_letter_queue",
            "last_error",
            "last_success",
            "policy",
            "queue",
            "recent_failures",
            "state_error",
            "state_file",
            "state_present"
        ]
    );
    assert_eq!(v["state_present"], true);
    assert_eq!(v["queue"]["url"], w.queue_url.as_str());
    assert_eq!(v["queue"]["reachable"], true);
    assert_eq!(v["queue"]["waiting"], 0, "{v}");
    assert_eq!(v["dead_letter_queue"]["url"], w.dlq_url.as_str(), "{v}");
    assert_eq!(v["dead_letter_queue"]["waiting"], 1, "{v}");
    assert_eq!(
        v["announcements"],
        serde_json::json!({"accepted": 1, "rejected": 1, "failed": 0})
    );
    let last = &v["last_success"];
    assert_eq!(last["producer"], w.producer.as_str());
    assert_eq!(last["product"], "hospital_stays");
    assert_eq!(last["batch_id"], a.announcement_id.as_str());
    assert_eq!(last["outcome"], "accepted");
    let failures = v["recent_failures"].as_array().expect("array");
    assert_eq!(failures.len(), 1, "{v}");
    assert_eq!(failures[0]["outcome"], "rejected");
    assert_eq!(failures[0]["product"], "x");
    assert!(
        failures[0]["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{v}"
    );
    assert_eq!(v["last_error"]["source"], "announcement");
    assert_eq!(v["policy"]["differs_from_last_applied"], false, "{v}");
    assert_eq!(v["policy"]["sha256"], v["policy"]["last_applied_sha256"]);

    // the policy edited on disk, not applied yet
    w.write_policy(&DESIGN_POLICY.replace("\"SELECT\", \"DESCRIBE\"", "\"SELECT\""));
    let v = json(&status(&config, &["--json"]));
    assert_eq!(v["policy"]["differs_from_last_applied"], true, "{v}");

    let out = status(&config, &[]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "announcements  1 accepted, 1 rejected, 0 failed",
        &format!("queue          {}: 0 waiting", w.queue_url),
        &format!("dead letters   {}: 1 waiting", w.dlq_url),
        "last success   ",
        &format!("announcement {} of {}", a.announcement_id, w.producer),
        "differs from the one last applied",
        "recent failures (newest first):",
        "rejected announcement ? of",
    ] {
        assert!(text.contains(want), "{want:?} not in\n{text}");
    }
}

#[tokio::test]
async fn status_says_when_the_queue_does_not_answer() {
    let e = Emulator::shared().expect("emulator");
    let w = World::new(e, 2).await;
    w.write_policy(DESIGN_POLICY);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let endpoint = format!("http://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let path = w.dir.path().join("offline.toml");
    std::fs::write(
        &path,
        w.config_text()
            .replace(&e.settings().endpoint_url.unwrap_or_default(), &endpoint)
            .replace("[aws]", "[aws]\nmax_attempts = 1\nconnect_timeout_secs = 1"),
    )
    .expect("config");
    let v = json(&status(&path, &["--json"]));
    assert_eq!(v["queue"]["reachable"], false, "{v}");
    assert!(v["queue"]["error"].is_string(), "{v}");
    assert_eq!(v["dead_letter_queue"]["reachable"], false, "{v}");
    let out = status(&path, &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    let queue = w
        .queue_url
        .replace(&e.settings().endpoint_url.unwrap_or_default(), &endpoint);
    assert!(
        text.contains(&format!("queue          {queue}: not reachable (")),
        "{text}"
    );
    assert!(text.contains("dead letters   "), "{text}");
}

/// A state database that is not one (a disk error, a file copied over it): the queues and the
/// policy are still reported, the store's error is named, and the exit status is 1.
#[tokio::test]
async fn a_corrupt_state_database_is_reported_with_everything_else() {
    let e = Emulator::shared().expect("emulator");
    let w = World::new(e, 2).await;
    let (settings, _) = w.load();
    std::fs::create_dir_all(&settings.state_dir).expect("state dir");
    std::fs::write(
        settings.state_dir.join(lakemesh_syncd::state::FILE_NAME),
        b"this is not a database, not even close; sqlite wants its magic header here",
    )
    .expect("garbage");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lakemesh-syncd"))
        .arg("--config")
        .arg(w.config_path())
        .arg("status")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .output()
        .expect("status");
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("UNREADABLE"), "{text}");
    assert!(
        text.contains("0 waiting"),
        "the queues are still shown: {text}"
    );
}
