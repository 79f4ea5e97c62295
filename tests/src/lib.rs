//! lakemesh-e2e: the whole mesh on one machine.
//!
//! - [`mesh`]: a small ministry against a dedicated local AWS emulator: two producers (a
//!   university hospital and an insurer) with their own buckets and agents, and the central
//!   `lakemesh-syncd` with a producer registry and the ministry's policy; the sample exports of
//!   `examples/mesh/` dropped into the agents' folders; agents and daemon run as real processes.
//! - [`report`]: what the mesh holds afterwards, read back from AWS and the agents' ledgers.
//!
//! The README's first command (`scripts/demo`) runs the `lakemesh-mesh` binary; the end-to-end
//! test (`e2e/`) runs the same scenario and checks every step's outcome.

pub mod mesh;
pub mod report;

use std::path::PathBuf;

/// Where a binary of the workspace was built, beside the running executable (`target/debug/`
/// for tests and `target/release/` for the demo: `cargo test --workspace` and `cargo build`
/// build them there).
pub fn sibling_binary(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    exe.ancestors()
        .skip(1)
        .take(2)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}
