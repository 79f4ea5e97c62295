//! Least privilege: with IAM enforcement on (a dedicated emulator), the agent works with exactly
//! `packaging/iam/agent-policy.json` (check-config, a delivery with its checksums, a multipart
//! upload, a claim check would be the same PutObject), and is refused outside it: another prefix,
//! another queue.

use lakemesh_shared::testbed::{ACCOUNT_ID, Emulator, REGION};
use sha2::Digest;

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

    // A multipart upload (the object is above the 5 MiB threshold) under the same policy.
    let mut csv = String::from("id,adm,note\n");
    let mut h = sha2::Sha256::digest(b"seed").to_vec();
    for i in 0..180_000 {
        h = sha2::Sha256::digest(&h).to_vec();
        csv.push_str(&format!("{i},2024-01-02,{}\n", hex::encode(&h)));
    }
    let wide = site.dir.path().join("wide.csv");
    std::fs::write(&wide, &csv).unwrap();
    let cfg = std::fs::read_to_string(site.config_path())
        .unwrap()
        .replace(
            "columns = [ ",
            "extra_columns = \"ignore\"\ncolumns = [ { name = \"note\", type = \"string\" }, ",
        );
    std::fs::write(
        site.config_path(),
        format!("multipart_threshold_bytes = 5242880\nmultipart_part_bytes = 5242880\n{cfg}"),
    )
    .unwrap();
    let out = site.run(&["ingest", wide.to_str().unwrap(), "--product", "stays"]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    assert!(err.contains("multipart upload"), "{err}");

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
    let mut want = two_year_keys(&batch_of(TWO_YEARS));
    want.push(format!(
        "products/stays/year=2024/part-{}-0.parquet",
        batch_of(&csv)
    ));
    want.sort();
    assert_eq!(site.keys(&e).await, want);
    let a = site.announcements(&e).await;
    assert_eq!(a.len(), 2);
    assert!(a[1].objects.as_ref().unwrap()[0].bytes > 5 * 1024 * 1024);
}
