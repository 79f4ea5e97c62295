//! S3 and SQS unreachable: the agent converts and keeps what is dropped, retries with capped
//! backoff, shows the backlog and the last error in `status`, and once the endpoint answers
//! (here: the configuration pointed at the live emulator and reloaded with SIGHUP) delivers
//! everything, in the order it was dropped.

use std::time::Duration;

use lakemesh_agent::ledger::State;
use lakemesh_shared::testbed::Emulator;

use crate::agent_process::{Site, wait_for};

fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test]
async fn nothing_is_lost_while_aws_is_unreachable_and_all_arrives_in_order() {
    let e = Emulator::shared().unwrap();
    let mut site = Site::new(e, "offline").await;
    let live = site.endpoint.clone();
    site.endpoint = format!("http://127.0.0.1:{}", closed_port());
    site.write_config();
    let mut agent = site.start(None);
    let names = ["a_first.csv", "b_second.csv", "c_third.csv"];
    for (i, n) in names.iter().enumerate() {
        site.drop_file(n, &format!("id,adm\n{i},2024-01-0{}\n", i + 1));
        // Each is claimed before the next arrives: claim order is drop order.
        wait_for(Duration::from_secs(20), || {
            (site.files().len() == i + 1).then_some(())
        })
        .unwrap_or_else(|| panic!("{n} not claimed; log:\n{}", agent.log()));
    }
    // All three converted and waiting; the first one keeps failing.
    let files = wait_for(Duration::from_secs(30), || {
        let f = site.files();
        (f.iter().all(|r| r.state == State::Converted) && f[0].attempts >= 2).then_some(f)
    })
    .unwrap_or_else(|| panic!("{:#?}\n{}", site.files(), agent.log()));
    assert_eq!(files.len(), 3);
    let out = site.run(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["backlog"].as_array().map(Vec::len), Some(3), "{v}");
    assert_eq!(v["objects_pending"], 3);
    let err = v["last_error"][0].as_str().unwrap_or_default().to_owned();
    assert!(
        err.contains("PutObject") && err.contains(&site.bucket),
        "{err}"
    );
    let text = String::from_utf8_lossy(&site.run(&["status"]).stdout).into_owned();
    assert!(
        text.contains("backlog: 3 files") && text.contains("last error: "),
        "{text}"
    );
    assert!(text.contains("failed attempts"), "{text}");
    assert!(site.keys(e).await.is_empty());

    // The endpoint answers again.
    site.endpoint = live;
    site.write_config();
    agent.signal("-HUP");
    let files = site.wait_settled(3, &mut agent, Duration::from_secs(60));
    assert!(files.iter().all(|f| f.state == State::Done), "{files:#?}");
    assert_eq!(site.keys(e).await.len(), 3);
    let a = site.announcements(e).await;
    let order: Vec<&str> = a.iter().map(|a| a.source.file.as_str()).collect();
    assert_eq!(order, names, "announced in drop order");
    assert!(agent.log().contains("reloaded"));
    agent.stop();
}
