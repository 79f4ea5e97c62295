//! A source or a configuration that changes under the agent: an export job that paused longer
//! than `settle_secs` and writes on into the claimed file (a rename keeps its open handle), and
//! a bucket corrected by a reload while a batch waits. Nothing is sent that no longer matches:
//! the file is converted again, whole, for where the configuration now says.

use std::io::Write;

use lakemesh_agent::config::AgentConfig;
use lakemesh_agent::ledger::State;
use lakemesh_agent::pipeline::{Agent, PipelineError, Prepared};
use lakemesh_shared::testbed::Emulator;
use tokio_util::sync::CancellationToken;

use crate::agent_process::Site;

async fn agent_of(e: &Emulator, site: &Site) -> Agent {
    let cfg = AgentConfig::load(&site.write_config()).unwrap();
    Agent::new(cfg, &e.sdk_config().await).unwrap()
}

fn append(path: &std::path::Path, text: &str) {
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

#[tokio::test]
async fn a_file_still_written_after_its_claim_is_converted_whole() {
    let e = Emulator::shared().unwrap();
    let site = Site::new(e, "grow").await;
    let agent = agent_of(e, &site).await;
    let cancel = CancellationToken::new();
    let dropped = site.drop_file("slow.csv", "id,adm\n1,2024-01-02\n");
    let rec = agent
        .claim("stays", &dropped, false, false)
        .unwrap()
        .unwrap();
    // The writer goes on after the claim, before the conversion.
    append(&rec.work_path, "2,2023-05-06\n3,2023-07-08\n");
    assert!(matches!(
        agent.prepare(&rec, &cancel).await.unwrap(),
        Prepared::Converted
    ));
    let rec = agent.ledger().file(rec.id).unwrap();
    assert_eq!(
        rec.rows,
        Some(3),
        "every row written, not the 1 there was at the claim"
    );
    assert_eq!(rec.bytes, std::fs::metadata(&rec.work_path).unwrap().len());

    // …and again after the conversion, before anything was uploaded: converted again.
    append(&rec.work_path, "4,2022-01-01\n");
    let err = agent.deliver(&rec, &cancel).await.unwrap_err();
    assert!(
        matches!(err, PipelineError::Reconvert { .. }) && err.is_transient(),
        "{err}"
    );
    assert!(
        err.to_string().contains("changed after its conversion"),
        "{err}"
    );
    let rec = agent.ledger().file(rec.id).unwrap();
    assert_eq!(rec.state, State::Claimed);
    assert!(site.keys(e).await.is_empty(), "nothing was uploaded");
    agent.prepare(&rec, &cancel).await.unwrap();
    let rec = agent.ledger().file(rec.id).unwrap();
    let d = agent.deliver(&rec, &cancel).await.unwrap();
    assert_eq!(d.rows, 4);
    let a = site.announcements(e).await;
    assert_eq!(a.len(), 1, "one announcement, of the whole file: {a:#?}");
    assert_eq!(a[0].rows, 4);
    assert_eq!(a[0].announcement_id, d.batch_id);
    let keys = site.keys(e).await;
    assert!(
        keys.iter().all(|k| k.contains(&d.batch_id)),
        "only the final batch's objects: {keys:?}"
    );
}

#[tokio::test]
async fn a_batch_converted_for_another_bucket_is_converted_again_for_the_reloaded_one() {
    let e = Emulator::shared().unwrap();
    let mut site = Site::new(e, "rebucket").await;
    let right = site.bucket.clone();
    // The first configuration names a bucket that does not exist.
    site.bucket = "lakemesh-no-such-bucket".into();
    let wrong = agent_of(e, &site).await;
    let cancel = CancellationToken::new();
    let dropped = site.drop_file("s.csv", "id,adm\n1,2024-01-02\n");
    let rec = wrong
        .claim("stays", &dropped, false, false)
        .unwrap()
        .unwrap();
    wrong.prepare(&rec, &cancel).await.unwrap();
    let rec = wrong.ledger().file(rec.id).unwrap();
    assert!(
        wrong.deliver(&rec, &cancel).await.is_err(),
        "no such bucket"
    );
    drop(wrong);

    // The operator fixes the bucket and reloads.
    site.bucket = right.clone();
    let agent = agent_of(e, &site).await;
    let rec = agent.ledger().file(rec.id).unwrap();
    let err = agent.deliver(&rec, &cancel).await.unwrap_err();
    assert!(err.to_string().contains("configuration changed"), "{err}");
    let rec = agent.ledger().file(rec.id).unwrap();
    agent.prepare(&rec, &cancel).await.unwrap();
    let rec = agent.ledger().file(rec.id).unwrap();
    agent.deliver(&rec, &cancel).await.unwrap();
    let a = site.announcements(e).await;
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].location, format!("s3://{right}/products/stays/"));
    let keys = site.keys(e).await;
    for o in a[0].objects.as_deref().unwrap() {
        assert!(
            keys.contains(&o.key),
            "{} is in s3://{right}: {keys:?}",
            o.key
        );
    }
}
