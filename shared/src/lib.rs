//! Contracts and rules that `lakemesh-agent` and `lakemesh-syncd` must agree on, so that what the
//! agent writes is exactly what the daemon catalogs.
//!
//! - [`names`]: Athena/Glue-safe identifiers (normalising source headers, validating names given in
//!   configuration, reserved keywords) and Hive partition value escaping.
//! - [`logging`]: the `log` backend of both binaries.
//!
//! Apart from logging, this crate holds pure rules and shared types only: no I/O, no AWS calls, no product-specific
//! logic (contracts, conversion and cataloging belong to the agent and daemon crates).

pub mod logging;
pub mod names;
