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

/// An error and its causes on one line, `outer: cause: cause`, leaving out a cause whose text
/// the message already holds (errors that print their source themselves).
pub fn error_chain(top: &(dyn std::error::Error + 'static)) -> String {
    let mut out = top.to_string();
    let mut cause = top.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

/// `println!` for command output that may go to a pipe closed early (`… | head -1`): a write
/// error (EPIPE) ends the output quietly instead of panicking; the command's work and exit
/// code are unaffected.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        let _ = ::std::writeln!(::std::io::stdout().lock(), $($arg)*);
    }};
}

/// `print!` with the same behaviour as [`outln!`].
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        let _ = ::std::write!(::std::io::stdout().lock(), $($arg)*);
    }};
}
