//! Contracts and rules that `lakemesh-agent` and `lakemesh-syncd` must agree on, so that what the
//! agent writes is exactly what the daemon catalogs.
//!
//! - [`announcement`]: the announcement v1 message (types, versioning, validation, message
//!   attributes, the 200 KiB claim-check rule), matching `schema/announcement-v1.schema.json`.
//! - [`names`]: Athena/Glue-safe identifiers (normalising source headers, validating names given in
//!   configuration, reserved keywords), Hive partition value escaping, producer ids, bucket names
//!   and key prefixes.
//! - [`aws`]: the `[aws]` configuration section and AWS SDK configuration (region, endpoint
//!   override, path-style S3, retry and timeouts); with feature `s3`, the S3 client.
//! - [`logging`]: the `log` backend of both binaries.
//! - [`testbed`] (feature `testbed`, for integration tests): the local AWS emulator.
//!
//! This crate makes no AWS calls of its own (apart from the test bed) and holds no
//! product-specific logic: contracts, conversion, upload and cataloging belong to the agent and
//! daemon crates.

pub mod announcement;
pub mod aws;
pub mod lifecycle;
pub mod logging;
pub mod names;
#[cfg(feature = "testbed")]
pub mod testbed;
