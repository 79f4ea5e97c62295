//! The service end to end against the emulator: a dropped file becomes exactly its objects and
//! one valid announcement; status, check-config and ingest as an operator uses them; the claim
//! check for a batch too large for one message.

use std::time::Duration;

use lakemesh_agent::ledger::State;
use lakemesh_shared::testbed::Emulator;

use crate::agent_process::{Site, TWO_YEARS, batch_of, name_of, states, two_year_keys};

#[tokio::test]
async fn a_dropped_file_becomes_its_objects_and_one_announcement() {
    let e = Emulator::shared().unwrap();
    let mut site = Site::new(e, "drop").await;
    // As if started by systemd, but standard error is not the journal: lines go to stderr.
    site.extra_env = vec![("JOURNAL_STREAM".into(), "8:4242".into())];
    site.write_config();
    let mut agent = site.start(None);
    site.drop_file("sejours_2026_11.csv", TWO_YEARS);
    let files = site.wait_settled(1, &mut agent, Duration::from_secs(60));
    assert_eq!(states(&files), [State::Done]);

    let batch = batch_of(TWO_YEARS);
    assert_eq!(site.keys(e).await, two_year_keys(&batch));
    let a = site.announcements(e).await;
    assert_eq!(a.len(), 1, "{a:#?}");
    let a = &a[0];
    assert_eq!(a.announcement_id, batch);
    assert_eq!(a.producer_id, "chu-lyon");
    assert_eq!(a.location, format!("s3://{}/products/stays/", site.bucket));
    assert_eq!(a.source.file, "sejours_2026_11.csv");
    assert_eq!(a.rows, 2);
    assert_eq!(a.partition_keys, ["year"]);
    let objects = a.objects.as_ref().unwrap();
    let mut keys: Vec<&str> = objects.iter().map(|o| o.key.as_str()).collect();
    keys.sort_unstable();
    assert_eq!(keys, two_year_keys(&batch));
    assert!(a.columns.iter().any(|c| c.name == "id" && c.ty == "bigint"));

    // The source is archived, the inbox, work and spool are empty, one INFO line says so
    // (on standard error: JOURNAL_STREAM does not match it).
    let archived = site.archived();
    assert_eq!(archived.len(), 1);
    assert!(name_of(&archived[0]).ends_with("sejours_2026_11.csv"));
    assert_eq!(std::fs::read_dir(site.inbox()).unwrap().count(), 0);
    assert_eq!(
        std::fs::read_dir(site.state().join("spool"))
            .unwrap()
            .count(),
        0
    );
    let log = agent.log();
    let line = log
        .lines()
        .find(|l| l.contains("delivered stays batch"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(
        line.starts_with("info: ")
            && line.contains(&format!("batch={batch}"))
            && line.contains("rows=2")
            && line.contains("objects=2")
            && line.contains("product=stays"),
        "{line}"
    );

    // status, while the service runs.
    let out = site.run(&["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("backlog: 0 files"), "{text}");
    assert!(text.contains(&format!("batch {batch} (2 rows)")), "{text}");
    let out = site.run(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["backlog"].as_array().map(Vec::len), Some(0));
    assert_eq!(v["last_delivered"]["batch_id"], batch.as_str());
    agent.stop();
}

#[tokio::test]
async fn check_config_reports_one_line_per_check() {
    let e = Emulator::shared().unwrap();
    let mut site = Site::new(e, "check").await;
    site.write_config();
    let out = site.run(&["check-config"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(lines.iter().all(|l| l.starts_with("ok ")), "{text}");
    assert!(lines[2].contains("HeadBucket") && lines[3].contains("GetQueueAttributes"));

    site.bucket = "no-such-bucket-lakemesh".into();
    site.queue = format!("{}/123456789012/no-such-queue", e.endpoint());
    site.write_config();
    let out = site.run(&["check-config"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("FAILED  bucket s3://no-such-bucket-lakemesh"),
        "{text}"
    );
    assert!(text.contains("FAILED  queue"), "{text}");

    std::fs::write(
        site.config_path(),
        "producer_id = \"x\"\nbucket = \"b-b-b\"\nqueue_url = \"q\"\n",
    )
    .unwrap();
    let out = site.run(&["check-config"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text.starts_with("FAILED  config") && text.contains("`queue_url`"),
        "{text}"
    );
}

#[tokio::test]
async fn ingest_delivers_one_file_and_force_sends_it_again() {
    let e = Emulator::shared().unwrap();
    let site = Site::new(e, "ingest").await;
    site.write_config();
    let file = site.dir.path().join("stays_export.csv");
    std::fs::write(&file, TWO_YEARS).unwrap();
    let out = site.run(&["ingest", file.to_str().unwrap(), "--product", "stays"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("delivered stays batch") && text.contains("2 rows, 2 objects"),
        "{text}"
    );
    assert!(file.exists(), "ingest copies; the original stays");

    // The same content again: recognised, not announced.
    let out = site.run(&["ingest", file.to_str().unwrap(), "--product", "stays"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("same content as file 1"),
        "{text}"
    );
    // --force: announced again, same id, same keys.
    let out = site.run(&[
        "ingest",
        file.to_str().unwrap(),
        "--product",
        "stays",
        "--force",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let a = site.announcements(e).await;
    assert_eq!(a.len(), 2);
    assert_eq!(a[0].announcement_id, a[1].announcement_id);
    assert_eq!(site.keys(e).await, two_year_keys(&batch_of(TWO_YEARS)));
    assert_eq!(
        states(&site.files()),
        [State::Done, State::Duplicate, State::Done]
    );

    let out = site.run(&["ingest", file.to_str().unwrap(), "--product", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no product named \"nope\""));
}

#[tokio::test]
async fn a_batch_too_large_for_one_message_goes_by_claim_check() {
    let e = Emulator::shared().unwrap();
    let mut site = Site::new(e, "claimcheck").await;
    // One partition per code: 1100 objects, an announcement well over 200 KiB.
    site.product_extra = String::new();
    site.write_config();
    let cfg = std::fs::read_to_string(site.config_path())
        .unwrap()
        .replace(
            "partition_by = [ { column = \"adm\", transform = \"year\" } ]",
            "partition_by = [ { column = \"code\" } ]",
        )
        .replace(
            "columns = [ ",
            "columns = [ { name = \"code\", type = \"string\" }, ",
        );
    std::fs::write(site.config_path(), cfg).unwrap();
    let mut csv = String::from("id,adm,code\n");
    for i in 0..1100 {
        csv.push_str(&format!("{i},2024-01-02,c{i:04}\n"));
    }
    let file = site.dir.path().join("many_codes.csv");
    std::fs::write(&file, &csv).unwrap();
    let out = site.run(&["ingest", file.to_str().unwrap(), "--product", "stays"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let batch = batch_of(&csv);
    let manifest_key = format!("products/_lakemesh/manifests/stays/{batch}.json");
    let keys = site.keys(e).await;
    assert_eq!(keys.len(), 1101);
    assert!(keys.contains(&manifest_key));
    let a = site.announcements(e).await;
    assert_eq!(a.len(), 1);
    assert!(a[0].is_claim_check());
    let s3 = e.s3(&e.sdk_config().await);
    let body = s3
        .get_object()
        .bucket(&site.bucket)
        .key(&manifest_key)
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes();
    let full = a[0].from_manifest(&body).unwrap();
    assert_eq!(full.objects.as_ref().map(Vec::len), Some(1100));
    assert_eq!(full.rows, 1100);
}
