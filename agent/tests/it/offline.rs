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

#[tokio::test]
async fn an_outage_of_the_emulator_itself_loses_nothing() {
    // The service really goes away (the emulator process is stopped, its port closes) while
    // files are dropped, then comes back on the same port, empty as after a restart: the
    // producer's bucket and queue are created again and everything dropped meanwhile arrives.
    let e1 = Emulator::start().unwrap();
    let port = e1.port();
    let site = Site::new(&e1, "outage").await;
    site.write_config();
    let mut agent = site.start(None);
    site.drop_file("a_before.csv", "id,adm\n1,2024-01-01\n");
    site.wait_settled(1, &mut agent, Duration::from_secs(60));
    assert_eq!(site.keys(&e1).await.len(), 1);
    assert_eq!(site.announcements(&e1).await.len(), 1);

    drop(e1);
    let names = ["b_during.csv", "c_during.csv"];
    for (i, n) in names.iter().enumerate() {
        site.drop_file(n, &format!("id,adm\n{},2024-02-0{}\n", i + 2, i + 1));
        wait_for(Duration::from_secs(20), || {
            (site.files().len() == i + 2).then_some(())
        })
        .unwrap_or_else(|| panic!("{n} not claimed; log:\n{}", agent.log()));
    }
    let status = wait_for(Duration::from_secs(30), || {
        let out = site.run(&["status", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        (v["backlog"].as_array().map(Vec::len) == Some(2) && v["last_error"].is_array())
            .then_some(v)
    })
    .unwrap_or_else(|| panic!("no backlog shown:\n{}", agent.log()));
    assert!(
        status["last_error"][0]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "{status}"
    );

    let e2 = Emulator::start_on(port).unwrap();
    e2.create_bucket(&site.bucket).await.unwrap();
    let queue_name = site.queue.rsplit('/').next().unwrap().to_owned();
    assert_eq!(e2.create_queue(&queue_name, &[]).await.unwrap(), site.queue);
    let files = site.wait_settled(3, &mut agent, Duration::from_secs(90));
    assert!(files.iter().all(|f| f.state == State::Done), "{files:#?}");
    assert_eq!(
        site.keys(&e2).await.len(),
        2,
        "the two files dropped during the outage"
    );
    let order: Vec<String> = site
        .announcements(&e2)
        .await
        .into_iter()
        .map(|a| a.source.file)
        .collect();
    assert_eq!(order, names, "announced once each, in drop order");
    agent.stop();
}
