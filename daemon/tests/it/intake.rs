//! Intake behaviour: visibility extended while a long crawl runs, in-flight messages released
//! at shutdown, and two daemons on one queue ending in the same state as one.

use std::sync::OnceLock;
use std::time::Duration;

use lakemesh_shared::testbed::Emulator;
use lakemesh_syncd::commands;
use tokio_util::sync::CancellationToken;

use crate::support::{World, log_lines};

/// An emulator whose crawls take 6 s running and 6 s finishing.
fn slow_emulator() -> &'static Emulator {
    static SLOW: OnceLock<Emulator> = OnceLock::new();
    SLOW.get_or_init(|| {
        let e = Emulator::start().expect("dedicated emulator");
        e.set_transition("glue::crawl", r#"{"progression": "time", "seconds": 6}"#)
            .expect("set-transition");
        e
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn visibility_is_extended_while_a_long_crawl_runs() {
    let w = World::new(slow_emulator(), 3).await;
    // visibility_timeout_secs = 10 (the smallest allowed): renewed every 3.3 s.
    let w = World {
        extra: "visibility_timeout_secs = 10".into(),
        ..w
    };
    let a = w.upload("hospital_stays", &[1], 21).await;
    w.send(&a).await;
    let sqs = w.emulator.sqs(&w.sdk);
    let queue = w.queue_url.clone();
    let peek = async {
        // Well past the 10 s visibility timeout, while the crawl still runs.
        tokio::time::sleep(Duration::from_secs(13)).await;
        let got = sqs
            .receive_message()
            .queue_url(&queue)
            .wait_time_seconds(0)
            .send()
            .await
            .expect("receive");
        got.messages().len()
    };
    let (report, seen_by_other) = tokio::join!(w.run_once(), peek);
    assert_eq!(
        seen_by_other, 0,
        "the message stayed invisible during its work"
    );
    assert_eq!(
        (report.received, report.done, report.failed),
        (1, 1, 0),
        "{report:?}"
    );
    assert!(!log_lines(&["visibility extended by 10 s"]).is_empty());
    assert_eq!(w.depth(&w.queue_url).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_releases_messages_still_in_flight() {
    let w = World::new(slow_emulator(), 3).await;
    let w = World {
        extra: "shutdown_grace_secs = 1\nvisibility_timeout_secs = 60".into(),
        ..w
    };
    let a = w.upload("hospital_stays", &[1], 22).await;
    w.send(&a).await;
    let (settings, policy) = w.load();
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    let crawler = format!(
        "crawler=lakemesh-{}-hospital_stays: crawl started",
        w.database()
    );
    let service = tokio::spawn({
        let sdk = w.sdk.clone();
        async move { commands::run(settings, policy, &sdk, false, shutdown).await }
    });
    for _ in 0..100 {
        if !log_lines(&[&crawler]).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!log_lines(&[&crawler]).is_empty(), "the crawl started");
    stop.cancel();
    let report = tokio::time::timeout(Duration::from_secs(30), service)
        .await
        .expect("stopped within the grace period")
        .expect("task")
        .expect("run");
    assert_eq!(
        (report.received, report.released, report.done),
        (1, 1, 0),
        "{report:?}"
    );
    let got = w
        .emulator
        .sqs(&w.sdk)
        .receive_message()
        .queue_url(&w.queue_url)
        .wait_time_seconds(1)
        .send()
        .await
        .expect("receive");
    assert_eq!(
        got.messages().len(),
        1,
        "the released message is visible again at once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_daemons_on_one_queue_reach_the_same_state() {
    let e = Emulator::shared().expect("emulator");
    let w = World::new(e, 3).await;
    for m in 1..=4 {
        let a = w.upload("hospital_stays", &[m], 30 + i64::from(m)).await;
        w.send(&a).await;
    }
    let w = World {
        extra: "max_in_flight = 2".into(),
        ..w
    };
    let (one, two) = tokio::join!(w.run_once(), w.run_once());
    assert_eq!(one.done + two.done, 4, "{one:?} {two:?}");
    assert_eq!(one.failed + two.failed, 0, "{one:?} {two:?}");
    let parts = w
        .glue()
        .get_partitions()
        .database_name(w.database())
        .table_name("hospital_stays")
        .send()
        .await
        .expect("partitions");
    assert_eq!(parts.partitions().len(), 4);
    let (settings, policy) = w.load();
    let plan = commands::plan(settings, policy, &w.sdk)
        .await
        .expect("plan");
    assert!(plan.is_empty(), "{plan:?}");
    // The filter was created once, whoever came first.
    let filters = w
        .lf()
        .list_data_cells_filter()
        .table(
            aws_sdk_lakeformation::types::TableResource::builder()
                .database_name(w.database())
                .name("hospital_stays")
                .build()
                .expect("table"),
        )
        .send()
        .await
        .expect("filters");
    assert_eq!(filters.data_cells_filters().len(), 1);
}
