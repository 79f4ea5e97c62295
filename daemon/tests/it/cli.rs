//! The binary: `check-config` against the emulator, errors that name the key, `run --once`
//! logging audit lines, `plan`.

use std::process::{Command, Output};

use lakemesh_shared::testbed::Emulator;

use crate::support::World;

fn syncd(w: &World, args: &[&str]) -> Output {
    let config = w.config_path();
    if !w.dir.path().join("policy.toml").exists() {
        w.write_policy(crate::support::DESIGN_POLICY);
    }
    Command::new(env!("CARGO_BIN_EXE_lakemesh-syncd"))
        .arg("--config")
        .arg(&config)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", w.dir.path())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .expect("run lakemesh-syncd")
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test]
async fn check_config_plan_and_run_once() {
    let e = Emulator::shared().expect("emulator");
    let w = World::new(e, 2).await;
    let out = syncd(&w, &["check-config"]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("SQS: queue reachable; poison messages go to"),
        "{}",
        text(&out)
    );
    assert!(stdout.contains("Glue: catalog reachable"), "{}", text(&out));
    assert!(
        stdout.contains("Lake Formation: data lake settings reachable"),
        "{}",
        text(&out)
    );
    assert!(stdout.contains("policy: lint passed"), "{}", text(&out));

    let out = syncd(&w, &["plan"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("no changes"),
        "{}",
        text(&out)
    );

    w.send_raw("not json at all", Some(&w.producer)).await;
    let out = syncd(&w, &["run", "--once"]);
    assert!(out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("audit: rejected announcement")
            && stderr.contains("sender=AIDAIT2UOQQY3AUEKVGXU"),
        "{}",
        text(&out)
    );
    assert!(stderr.contains("poison (receive 1 of 2)"), "{}", text(&out));
    assert_eq!(w.depth(&w.dlq_url).await, 1);

    // plan --exit-code: 0 when Lake Formation holds the policy, 2 when there is drift.
    w.send(&w.upload("hospital_stays", &[1], 41).await).await;
    let out = syncd(&w, &["run", "--once"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = syncd(&w, &["plan", "--exit-code"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    w.write_policy(&crate::support::DESIGN_POLICY.replace(
        "exclude = [\"patient_id\"]",
        "exclude = [\"patient_id\", \"total_cost\"]",
    ));
    let out = syncd(&w, &["plan", "--exit-code"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("- revoke"),
        "{}",
        text(&out)
    );
    let out = syncd(&w, &["plan"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "without --exit-code: {}",
        text(&out)
    );
}

#[tokio::test]
async fn bad_configuration_and_policy_name_the_key_and_grant() {
    let e = Emulator::shared().expect("emulator");
    let mut w = World::new(e, 2).await;
    w.extra = "max_in_flight = 0".into();
    let out = syncd(&w, &["check-config"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("key `max_in_flight`"),
        "{}",
        text(&out)
    );

    w.extra = String::new();
    w.write_policy("[[grant]]\nprincipal = \"arn:aws:iam::111122223333:role/x\"\ntables = { domain = \"d\" }\npermissions = [\"SELECT\"]\nrows = \"lower(region) = 'a'\"\n");
    let out = syncd(&w, &["check-config"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("grant #1") && stderr.contains("function lower"),
        "{}",
        text(&out)
    );
}
