//! Test-only crash points: `LAKEMESH_FAILPOINT=NAME` makes the process `abort()` (as a kill -9
//! would stop it: no destructor, no flush) when it reaches the point called NAME.
//!
//! Compiled in always and inert unless the variable is set, so the crash tests run the real
//! binary. The points, in delivery order (each sits just before the ledger records the step, the
//! worst moment to die): `after-claim`, `after-convert`, `after-upload-N` (the N-th object of a
//! file, 1-based, is in the bucket), `after-manifest` (claim-check manifest stored),
//! `after-announce` (message sent), `after-archive` (source moved to the archive).

use std::sync::OnceLock;

/// The environment variable naming the crash point.
pub const ENV: &str = "LAKEMESH_FAILPOINT";

fn armed() -> Option<&'static str> {
    static POINT: OnceLock<Option<String>> = OnceLock::new();
    POINT
        .get_or_init(|| std::env::var(ENV).ok().filter(|v| !v.is_empty()))
        .as_deref()
}

/// Aborts the process when `LAKEMESH_FAILPOINT` names `point`.
pub fn hit(point: &str) {
    if armed() == Some(point) {
        eprintln!("lakemesh-agent: failpoint {point}: aborting");
        std::process::abort();
    }
}
