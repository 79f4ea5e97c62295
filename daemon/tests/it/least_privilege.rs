//! Least privilege, as far as the emulator enforces it (a dedicated emulator with IAM
//! enforcement on): with exactly `packaging/iam/syncd-policy.json`, the daemon consumes the
//! announcements queue (receive, visibility, delete), reads both depths for `status` (the
//! dead-letter queue found through the redrive policy) and reads claim-check
//! manifests; it is refused another queue and the product data itself.
//!
//! moto 5.2.5 authorises Glue and Lake Formation requests against the resource `*` (only SQS,
//! S3 and IAM name their resources), so the policy's resource-scoped Glue statements cannot be
//! enforced here: `scripts/test_packaging.py` checks that they are the ones the CloudFormation
//! template creates, and the integration tests exercise every call they allow.

use std::time::Duration;

use lakemesh_shared::testbed::{ACCOUNT_ID, Emulator, REGION};
use lakemesh_syncd::config::Settings;
use lakemesh_syncd::sqs::Sqs;

use crate::support::{CRAWLER_ROLE, DESIGN_POLICY, REGISTRATION_ROLE, World};

fn queue_arn(url: &str) -> String {
    let name = url.rsplit('/').next().unwrap_or_default();
    format!("arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{name}")
}

fn policy(w: &World) -> String {
    std::fs::read_to_string(
        lakemesh_shared::testbed::repo_root().join("packaging/iam/syncd-policy.json"),
    )
    .expect("policy")
    .replace("{queue_arn}", &queue_arn(&w.queue_url))
    .replace("{dlq_arn}", &queue_arn(&w.dlq_url))
    .replace("{region}", REGION)
    .replace("{account_id}", ACCOUNT_ID)
    .replace("{crawler_role_arn}", CRAWLER_ROLE)
    .replace("{registration_role_arn}", REGISTRATION_ROLE)
}

#[tokio::test]
async fn the_shipped_policy_consumes_and_reports_and_no_more() {
    // enforcement is global to an emulator: a dedicated one, alive as long as this test binary
    let e: &'static Emulator = Box::leak(Box::new(Emulator::start().expect("emulator")));
    let w = World::new(e, 3).await;
    w.write_policy(DESIGN_POLICY);
    let other = e.fresh_queue("other").await.expect("queue");
    w.send_raw("an announcement", Some(&w.producer)).await;
    let s3 = e.s3(&w.sdk);
    for key in [
        "products/_lakemesh/manifests/stays/b1.json",
        "products/stays/year=2026/part-b1-0.parquet",
    ] {
        s3.put_object()
            .bucket(&w.bucket)
            .key(key)
            .body(b"{}".to_vec().into())
            .send()
            .await
            .expect("put");
    }
    let user = e.create_user("syncd", &policy(&w)).await.expect("user");
    e.reset_auth(0).expect("reset-auth");
    let sdk = e.sdk_config_as(&user).await;

    // status: both depths, the dead-letter queue found through the redrive policy
    let text = w
        .config_text()
        .lines()
        .filter(|l| !l.starts_with("dead_letter_queue_url"))
        .collect::<Vec<_>>()
        .join("\n");
    let settings = Settings::from_toml(&text, &w.dir.path().join("syncd.toml")).expect("config");
    let status = lakemesh_syncd::commands::status(&settings, &sdk, 5)
        .await
        .expect("status");
    assert!(status.queue.reachable, "{status:?}");
    assert_eq!(status.queue.waiting, Some(1), "{status:?}");
    assert!(status.dead_letter_queue.reachable, "{status:?}");
    assert_eq!(
        status.dead_letter_queue.url.as_deref(),
        Some(w.dlq_url.as_str())
    );

    // intake: receive, extend, delete
    let sqs = Sqs::new(aws_sdk_sqs::Client::new(&sdk), &w.queue_url);
    let got = sqs
        .receive(10, Duration::from_secs(1), Duration::from_secs(30))
        .await
        .expect("receive");
    assert_eq!(got.len(), 1);
    sqs.set_visibility(&got[0].receipt_handle, Duration::from_secs(60))
        .await
        .expect("visibility");
    sqs.delete(&got[0].receipt_handle).await.expect("delete");

    // claim-check manifests yes, the data no
    let as_syncd = e.s3(&sdk);
    as_syncd
        .get_object()
        .bucket(&w.bucket)
        .key("products/_lakemesh/manifests/stays/b1.json")
        .send()
        .await
        .expect("manifest readable");
    assert!(
        as_syncd
            .get_object()
            .bucket(&w.bucket)
            .key("products/stays/year=2026/part-b1-0.parquet")
            .send()
            .await
            .is_err(),
        "the daemon must not read product data"
    );
    // another queue: refused
    let elsewhere = Sqs::new(aws_sdk_sqs::Client::new(&sdk), &other);
    assert!(
        elsewhere
            .receive(1, Duration::ZERO, Duration::from_secs(30))
            .await
            .is_err(),
        "receive from another queue must be refused"
    );
    assert!(elsewhere.attributes(&other).await.is_err());
}
