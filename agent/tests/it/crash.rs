//! kill -9 at every step: the real binary aborts at a failpoint (`LAKEMESH_FAILPOINT`), starts
//! again, and the file is delivered once: the same keys (no object under a second key), one
//! archived source, an announcement at least once and always with the same id.

use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use lakemesh_agent::ledger::State;
use lakemesh_shared::testbed::Emulator;

use crate::agent_process::{Site, TWO_YEARS, batch_of, states, two_year_keys};

async fn crash_and_resume(point: &str, claim_check_ok: bool) {
    let e = Emulator::shared().unwrap();
    let mut site = Site::new(e, "crash").await;
    // One object at a time, so `after-upload-1` leaves the second one for the next start.
    site.settings = "upload_concurrency = 1".into();
    site.write_config();
    let mut first = site.start(Some(point));
    site.drop_file("stays.csv", TWO_YEARS);
    let status = first.wait(Duration::from_secs(60));
    assert_eq!(
        status.signal(),
        Some(libc::SIGABRT),
        "{point}: {status}; log:\n{}",
        first.log()
    );
    assert!(first.log().contains(&format!("failpoint {point}")));

    let mut second = site.start(None);
    let files = site.wait_settled(1, &mut second, Duration::from_secs(60));
    second.stop();
    assert_eq!(states(&files), [State::Done], "{point}");

    let batch = batch_of(TWO_YEARS);
    assert_eq!(site.keys(e).await, two_year_keys(&batch), "{point}");
    let a = site.announcements(e).await;
    assert!(!a.is_empty(), "{point}: never announced");
    assert!(
        a.iter().all(|a| a.announcement_id == batch),
        "{point}: {a:#?}"
    );
    if !claim_check_ok {
        assert!(a.iter().all(|a| !a.is_claim_check()));
    }
    // Exactly one announcement unless the crash came after the send.
    if point != "after-announce" {
        assert_eq!(a.len(), 1, "{point}: {a:#?}");
    }
    assert_eq!(site.archived().len(), 1, "{point}");
    assert_eq!(std::fs::read_dir(site.inbox()).unwrap().count(), 0);
    let work = site.state().join("work").join("stays");
    assert_eq!(std::fs::read_dir(work).unwrap().count(), 0, "{point}");
}

#[tokio::test]
async fn kill_after_claim() {
    crash_and_resume("after-claim", false).await;
}

#[tokio::test]
async fn kill_after_convert() {
    crash_and_resume("after-convert", false).await;
}

#[tokio::test]
async fn kill_after_the_first_upload() {
    crash_and_resume("after-upload-1", false).await;
}

#[tokio::test]
async fn kill_after_the_last_upload() {
    crash_and_resume("after-upload-2", false).await;
}

#[tokio::test]
async fn kill_after_announce() {
    crash_and_resume("after-announce", false).await;
}

#[tokio::test]
async fn kill_after_archive() {
    crash_and_resume("after-archive", false).await;
}
