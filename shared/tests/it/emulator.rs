//! The test bed itself: shared instance, dedicated instances stop on drop, names are unique.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use lakemesh_shared::testbed::{Emulator, TestbedError};

#[test]
fn shared_is_one_instance_and_answers() {
    let a = Emulator::shared().unwrap();
    let b = Emulator::shared().unwrap();
    assert!(std::ptr::eq(a, b));
    assert!(
        a.endpoint().starts_with("http://127.0.0.1:"),
        "{}",
        a.endpoint()
    );
    TcpStream::connect(("127.0.0.1", a.port())).unwrap();
}

#[test]
fn a_dedicated_emulator_stops_when_dropped() {
    let e = Emulator::start().unwrap();
    let port = e.port();
    assert_ne!(port, Emulator::shared().unwrap().port());
    TcpStream::connect(("127.0.0.1", port)).unwrap();
    let t0 = Instant::now();
    drop(e);
    // The drop waited for the process to exit, so the port is closed right away.
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "port {port} still open"
    );
}

#[test]
fn reset_auth_is_refused_on_the_shared_emulator() {
    let e = Emulator::shared().unwrap();
    let err = e.reset_auth(0).unwrap_err();
    assert!(
        matches!(err, TestbedError::SharedState { what: "reset-auth" }),
        "{err}"
    );
    assert!(err.to_string().contains("Emulator::start()"), "{err}");
}

#[test]
fn set_transition_reaches_moto_and_is_refused_on_the_shared_emulator() {
    let shared = Emulator::shared().unwrap();
    let err = shared
        .set_transition("glue::crawl", r#"{"progression": "immediate"}"#)
        .unwrap_err();
    assert!(
        matches!(
            err,
            TestbedError::SharedState {
                what: "set-transition"
            }
        ),
        "{err}"
    );
    let e = Emulator::start().unwrap();
    e.set_transition("glue::crawl", r#"{"progression": "time", "seconds": 3}"#)
        .unwrap();
    let err = e.set_transition("glue::crawl", "not json").unwrap_err();
    assert!(matches!(err, TestbedError::Control { .. }), "{err}");
}

#[tokio::test]
async fn fresh_resources_have_unique_names() {
    let e = Emulator::shared().unwrap();
    let a = e.fresh_bucket("unique").await.unwrap();
    let b = e.fresh_bucket("unique").await.unwrap();
    assert_ne!(a, b);
    let q1 = e.fresh_queue("unique").await.unwrap();
    let q2 = e.fresh_queue("unique").await.unwrap();
    assert_ne!(q1, q2);
    let err = e.fresh_bucket("Bad_Prefix").await.unwrap_err().to_string();
    assert!(err.contains("\"Bad_Prefix\""), "{err}");
}
