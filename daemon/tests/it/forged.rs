//! Forged and malformed announcements change nothing in Glue or Lake Formation, are logged as
//! audit events (producer, sender, reason), and end in the dead-letter queue instead of
//! looping.

use lakemesh_shared::announcement::Envelope;
use lakemesh_shared::testbed::Emulator;

use crate::support::{World, log_lines};

async fn nothing_changed(w: &World) {
    let db = w.glue().get_database().name(w.database()).send().await;
    assert!(db.is_err(), "database {} must not exist", w.database());
    let resources = w.lf().list_resources().send().await.expect("resources");
    assert!(
        resources
            .resource_info_list()
            .iter()
            .all(|r| !r.resource_arn().unwrap_or_default().contains(&w.bucket)),
        "{:?}",
        resources.resource_info_list()
    );
    let crawlers = w.glue().list_crawlers().send().await.expect("crawlers");
    assert!(
        crawlers
            .crawler_names()
            .iter()
            .all(|c| !c.contains(&w.database()))
    );
}

/// Runs the daemon on what was sent; every message must be rejected and end in the DLQ.
async fn expect_rejected(w: &World, sent: usize, reasons: &[&str]) {
    let report = w.run_once().await;
    assert_eq!(report.done, 0, "{report:?}");
    assert_eq!(report.failed, 0, "{report:?}");
    // Each message is received twice (maxReceiveCount 2), then moved to the dead-letter queue.
    assert_eq!(
        report.rejections.len(),
        2 * sent,
        "{:#?}",
        report.rejections
    );
    for reason in reasons {
        assert!(
            report.rejections.iter().any(|r| r.reason.contains(reason)),
            "no rejection says {reason:?}: {:#?}",
            report.rejections
        );
        // The audit line quotes the reason (Debug form).
        let quoted = reason.replace('"', "\\\"");
        let audit = log_lines(&["audit: rejected announcement", &quoted]);
        assert!(!audit.is_empty(), "no audit line says {reason:?}");
    }
    assert_eq!(w.depth(&w.queue_url).await, 0, "nothing left in the queue");
    assert_eq!(
        w.depth(&w.dlq_url).await,
        sent as u64,
        "every forged message is in the DLQ"
    );
    nothing_changed(w).await;
}

#[tokio::test]
async fn forged_announcements_change_nothing_and_reach_the_dlq() {
    let e = Emulator::shared().expect("emulator");
    let w = World::new(e, 2).await;
    let good = w.upload("hospital_stays", &[1], 11).await;

    let mut unknown = good.clone();
    unknown.producer_id = "chu-nowhere".into();
    w.send(&unknown).await;

    let mut elsewhere = good.clone();
    elsewhere.location = elsewhere.location.replace("/products/", "/other/");
    for o in elsewhere.objects.iter_mut().flatten() {
        o.key = o.key.replacen("products/", "other/", 1);
    }
    w.send(&elsewhere).await;

    let mut other_bucket = good.clone();
    other_bucket.location = other_bucket
        .location
        .replace(&w.bucket, "someone-elses-bucket");
    w.send(&other_bucket).await;

    let mut domain = good.clone();
    domain.domain = "claims".into();
    w.send(&domain).await;

    w.send_raw("{\"version\": 1, \"announcement_id\": ", Some(&w.producer))
        .await;
    w.send_raw(
        &good.to_json().replacen('{', "{\"injected\": true, ", 1),
        Some(&w.producer),
    )
    .await;

    expect_rejected(
        &w,
        6,
        &[
            "producer \"chu-nowhere\" is not registered",
            "is outside producer",
            "domain \"claims\" is not allowed",
            "not a version 1 announcement",
            "unknown field `injected`",
        ],
    )
    .await;
    let line = log_lines(&["audit: rejected announcement", "chu-nowhere"]);
    assert!(
        line[0].contains("sender=AIDAIT2UOQQY3AUEKVGXU")
            && line[0].contains("claimed_producer=chu-nowhere"),
        "{line:?}"
    );
}

#[tokio::test]
async fn a_sender_that_is_not_the_producers_agent_is_rejected() {
    let e = Emulator::shared().expect("emulator");
    let mut w = World::new(e, 2).await;
    w.sender_ids = vec!["AROAREALAGENTROLE0000".into()];
    let a = w.upload("hospital_stays", &[1], 12).await;
    w.send(&a).await;
    expect_rejected(
        &w,
        1,
        &["SenderId \"AIDAIT2UOQQY3AUEKVGXU\" is not one of producer"],
    )
    .await;
}

#[tokio::test]
async fn claim_checks_must_match_their_manifest_in_the_producers_bucket() {
    let e = Emulator::shared().expect("emulator");
    let w = World::new(e, 2).await;
    let s3 = e.s3(&w.sdk);
    let months: Vec<u32> = (0..3000).map(|i| i % 12 + 1).collect();
    let mut big = w.upload("hospital_stays", &months[..1], 13).await;
    // 3000 objects listed (only the first uploaded: the crawler never runs here).
    let first = big.objects.as_ref().expect("objects")[0].clone();
    big.objects = Some(
        (0..3000)
            .map(|i| {
                let mut o = first.clone();
                o.key = first.key.replace("-0.parquet", &format!("-{i}.parquet"));
                o
            })
            .collect(),
    );
    big.rows = 4 * 3000;
    let Envelope::ClaimCheck {
        body,
        manifest_bucket,
        ..
    } = big.envelope().expect("valid")
    else {
        panic!("3000 objects need a claim check");
    };
    // 1: the manifest is missing.
    w.send_raw(&body, Some(&w.producer)).await;
    // 2: the manifest disagrees with its pointer (it lists one object, the pointer says 3000).
    let mut other = big.clone();
    other.announcement_id = "0123456789abcdef".into();
    other.source.sha256 = format!("0123456789abcdef{}", &other.source.sha256[16..]);
    for o in other.objects.iter_mut().flatten() {
        o.key = o.key.replace(&big.announcement_id, "0123456789abcdef");
    }
    let Envelope::ClaimCheck {
        body: body2,
        manifest_key: key2,
        ..
    } = other.envelope().expect("valid")
    else {
        panic!("claim check");
    };
    let mut tampered = other.clone();
    tampered.objects = Some(vec![other.objects.as_ref().expect("objects")[0].clone()]);
    tampered.rows = 4;
    s3.put_object()
        .bucket(&manifest_bucket)
        .key(&key2)
        .body(tampered.to_json().into_bytes().into())
        .send()
        .await
        .expect("put");
    w.send_raw(&body2, Some(&w.producer)).await;
    // 3: a pointer to a manifest in another bucket.
    let evil = body.replace(
        &format!("\"manifest\":\"s3://{manifest_bucket}/"),
        "\"manifest\":\"s3://attacker-bucket/",
    );
    assert_ne!(evil, body);
    w.send_raw(&evil, Some(&w.producer)).await;
    expect_rejected(
        &w,
        3,
        &[
            "NoSuchKey",
            "`rows` differs between the message and the manifest",
            "`manifest`: \"s3://attacker-bucket/",
        ],
    )
    .await;
}

/// Without a redrive policy nothing would ever take a poison message away: it must not spin
/// the daemon (received again at once, forever) nor be lost; `run --once` ends.
#[tokio::test]
async fn a_poison_message_on_a_queue_without_redrive_is_kept_but_not_spun() {
    let e = Emulator::shared().expect("emulator");
    let mut w = World::new(e, 2).await;
    w.queue_url = e.fresh_queue("no-redrive").await.expect("queue");
    w.send_raw("{not json", Some(&w.producer.clone())).await;
    let report = tokio::time::timeout(std::time::Duration::from_secs(60), w.run_once())
        .await
        .expect("run --once ends although the queue has no redrive policy");
    assert_eq!(report.done, 0, "{report:?}");
    assert_eq!(
        report.rejections.len(),
        1,
        "received once, then hidden for a while: {report:?}"
    );
    assert_eq!(w.depth(&w.queue_url).await, 1, "the message is kept");
    let lines = log_lines(&["no redrive policy: it comes back in 30 s"]);
    assert!(!lines.is_empty(), "the error says when it comes back");
    nothing_changed(&w).await;
}

/// Objects the announcement names must be in the producer's bucket with their sizes: a batch
/// that was never uploaded (or only partly) creates no crawler and no table.
#[tokio::test]
async fn an_announcement_of_objects_that_are_not_there_is_rejected() {
    let e = Emulator::shared().expect("emulator");
    let w = World::new(e, 2).await;
    let good = w.upload("hospital_stays", &[1], 21).await;

    let mut missing = good.clone();
    for o in missing.objects.iter_mut().flatten() {
        o.key = o.key.replace("month=01", "month=09");
        o.partition.0[1].1 = "09".into();
    }
    w.send(&missing).await;
    let mut resized = good.clone();
    for o in resized.objects.iter_mut().flatten() {
        o.bytes += 1;
    }
    w.send(&resized).await;
    expect_rejected(&w, 2, &["is not in the bucket", "bytes, announced"]).await;
}
