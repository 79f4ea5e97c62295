//! Least privilege: with IAM enforcement on (a dedicated emulator), the agent works with exactly
//! `packaging/iam/agent-policy.json` (check-config, a delivery with its checksums, a multipart
//! upload, a claim check would be the same PutObject), and is refused outside it: another prefix,
//! another queue.

use lakemesh_shared::testbed::{ACCOUNT_ID, Emulator, REGION};

use crate::agent_process::{Site, TWO_YEARS, batch_of, two_year_keys};

fn policy(bucket: &str, prefix: &str, queue_url: &str) -> String {
    let text = std::fs::read_to_string(
        lakemesh_shared::testbed::repo_root().join("packaging/iam/agent-policy.json"),
    )
    .unwrap();
    let queue = queue_url.rsplit('/').next().unwrap();
    text.replace("{bucket}", bucket)
        .replace("{prefix}", prefix)
        .replace(
            "{queue_arn}",
            &format!("arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{queue}"),
        )
}

#[tokio::test]
async fn the_shipped_policy_is_enough_and_no_more() {
    let e = Emulator::start().unwrap();
    let mut site = Site::new(&e, "least").await;
    let other_queue = e.fresh_queue("other").await.unwrap();
    let user = e
        .create_user("agent", &policy(&site.bucket, "products", &site.queue))
        .await
        .unwrap();
    e.reset_auth(0).unwrap();
    site.credentials = (user.access_key_id.clone(), user.secret_access_key.clone());
    site.write_config();

    let out = site.run(&["check-config"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let file = site.dir.path().join("stays.csv");
    std::fs::write(&file, TWO_YEARS).unwrap();
    let out = site.run(&["ingest", file.to_str().unwrap(), "--product", "stays"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Outside the policy: another queue…
    let good_queue = site.queue.clone();
    site.queue = other_queue;
    site.write_config();
    let out = site.run(&["check-config"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("FAILED  queue") && text.contains("AccessDenied"),
        "{text}"
    );
    // …and another prefix (a fresh state folder, so the ledger does not know the file).
    site.queue = good_queue;
    site.prefix = "elsewhere".into();
    let state = site.state();
    std::fs::remove_dir_all(&state).unwrap();
    site.write_config();
    let out = site.run(&["ingest", file.to_str().unwrap(), "--product", "stays"]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("AccessDenied") && err.contains("elsewhere/stays"),
        "{err}"
    );
    assert!(err.contains("kept in the spool"), "{err}");

    // What was allowed landed, under its prefix only.
    e.disable_auth().unwrap();
    assert_eq!(site.keys(&e).await, two_year_keys(&batch_of(TWO_YEARS)));
    let a = site.announcements(&e).await;
    assert_eq!(a.len(), 1);
}
