//! The folder protocol with the real service: a file still being written, a marker arriving
//! late, the same export dropped twice, a 0-byte file, a file the converter refuses (and its
//! retry once the contract is fixed).

use std::io::Write;
use std::time::{Duration, Instant};

use lakemesh_agent::ledger::State;
use lakemesh_shared::testbed::Emulator;

use crate::agent_process::{BAD_DATE, Site, TWO_YEARS, batch_of, states, two_year_keys, wait_for};

#[tokio::test]
async fn a_file_still_being_written_is_claimed_only_once_complete() {
    let e = Emulator::shared().unwrap();
    let site = Site::new(e, "partial").await;
    site.write_config();
    let mut agent = site.start(None);
    std::fs::create_dir_all(site.inbox()).unwrap();
    let path = site.inbox().join("growing.csv");
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(b"id,adm\n").unwrap();
    // A slow copy: a row every 300 ms for 3 s (settle_secs = 1).
    let started = Instant::now();
    let mut rows = 0;
    while started.elapsed() < Duration::from_secs(3) {
        rows += 1;
        writeln!(f, "{rows},2024-01-02").unwrap();
        f.flush().unwrap();
        std::thread::sleep(Duration::from_millis(300));
        assert!(site.files().is_empty(), "claimed while still growing");
    }
    drop(f);
    let files = site.wait_settled(1, &mut agent, Duration::from_secs(30));
    assert_eq!(files[0].rows, Some(rows));
    let a = site.announcements(e).await;
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].rows, rows);
    agent.stop();
}

#[tokio::test]
async fn with_require_marker_the_file_waits_for_its_marker() {
    let e = Emulator::shared().unwrap();
    let mut site = Site::new(e, "marker").await;
    site.settings = "require_marker = true".into();
    site.write_config();
    let mut agent = site.start(None);
    site.drop_file("stays.csv", TWO_YEARS);
    // Well past settle_secs: still waiting for the marker.
    std::thread::sleep(Duration::from_millis(2500));
    agent.assert_running();
    assert!(site.files().is_empty());
    assert!(site.inbox().join("stays.csv").exists());
    std::fs::write(site.inbox().join("stays.csv.done"), b"").unwrap();
    site.wait_settled(1, &mut agent, Duration::from_secs(30));
    assert!(
        !site.inbox().join("stays.csv.done").exists(),
        "marker removed"
    );
    assert_eq!(site.keys(e).await, two_year_keys(&batch_of(TWO_YEARS)));
    agent.stop();
}

#[tokio::test]
async fn the_same_export_dropped_twice_is_announced_once() {
    let e = Emulator::shared().unwrap();
    let site = Site::new(e, "twice").await;
    site.write_config();
    let mut agent = site.start(None);
    site.drop_file("export.csv", TWO_YEARS);
    site.wait_settled(1, &mut agent, Duration::from_secs(30));
    site.drop_file("export_copy.csv", TWO_YEARS);
    // Another export with the same header but other rows is another file.
    site.drop_file("other.csv", "id,adm\n7,2024-03-04\n");
    let files = site.wait_settled(3, &mut agent, Duration::from_secs(30));
    let by_name = |n: &str| files.iter().find(|f| f.name == n).unwrap().state;
    assert_eq!(by_name("export.csv"), State::Done);
    assert_eq!(by_name("export_copy.csv"), State::Duplicate);
    assert_eq!(by_name("other.csv"), State::Done);
    let a = site.announcements(e).await;
    assert_eq!(a.len(), 2, "{a:#?}");
    assert_eq!(site.archived().len(), 3, "the duplicate is archived too");
    agent.stop();
}

#[tokio::test]
async fn an_empty_file_is_ignored_until_it_grows() {
    let e = Emulator::shared().unwrap();
    let site = Site::new(e, "empty").await;
    site.write_config();
    let mut agent = site.start(None);
    std::fs::create_dir_all(site.inbox()).unwrap();
    let path = site.inbox().join("placeholder.csv");
    std::fs::write(&path, b"").unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    agent.assert_running();
    assert!(site.files().is_empty());
    assert!(path.exists());
    std::fs::write(&path, TWO_YEARS).unwrap();
    let files = site.wait_settled(1, &mut agent, Duration::from_secs(30));
    assert_eq!(states(&files), [State::Done]);
    agent.stop();
}

#[tokio::test]
async fn a_refused_file_goes_to_failed_with_its_report_and_comes_back_with_retry() {
    let e = Emulator::shared().unwrap();
    let mut site = Site::new(e, "refused").await;
    site.write_config();
    let mut agent = site.start(None);
    site.drop_file("bad_dates.csv", BAD_DATE);
    let files = site.wait_settled(1, &mut agent, Duration::from_secs(30));
    assert_eq!(states(&files), [State::Failed]);
    let failed = site.failed();
    assert!(failed.join("bad_dates.csv").exists());
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(failed.join("bad_dates.csv.error.json")).unwrap())
            .unwrap();
    assert_eq!(report["errors"][0]["line"], 2);
    assert_eq!(report["errors"][0]["value"], "02/01/2024");
    assert!(site.keys(e).await.is_empty(), "nothing uploaded");
    assert!(site.announcements(e).await.is_empty());
    let text = String::from_utf8_lossy(&site.run(&["status"]).stdout).into_owned();
    assert!(
        text.contains("1 failed") && text.contains("retry --product stays"),
        "{text}"
    );

    // Fix the contract (a second date format), reload, send the file back.
    site.product_extra.clear();
    site.write_config();
    let fixed = std::fs::read_to_string(site.config_path())
        .unwrap()
        .replace(
            "formats = [\"%Y-%m-%d\"]",
            "formats = [\"%Y-%m-%d\", \"%d/%m/%Y\"]",
        );
    std::fs::write(site.config_path(), fixed).unwrap();
    agent.signal("-HUP");
    wait_for(Duration::from_secs(10), || {
        agent.log().contains("reloaded").then_some(())
    })
    .unwrap_or_else(|| panic!("{}", agent.log()));
    // A report is not an export: naming it is refused, and nothing moves.
    let out = site.run(&["retry", "--product", "stays", "bad_dates.csv.error.json"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("a report beside a failed file") && err.contains("(bad_dates.csv)"),
        "{err}"
    );
    assert!(failed.join("bad_dates.csv.error.json").exists());
    assert!(failed.join("bad_dates.csv").exists());
    let out = site.run(&["retry", "--product", "stays"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("bad_dates.csv: back in the inbox"), "{text}");
    assert!(!failed.join("bad_dates.csv.error.json").exists());
    let files = site.wait_settled(2, &mut agent, Duration::from_secs(30));
    assert_eq!(states(&files), [State::Retried, State::Done]);
    assert_eq!(site.announcements(e).await.len(), 1);
    agent.stop();

    let out = site.run(&["retry", "--product", "stays", "nope.csv"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such failed file"));
}
