//! Integration tests of lakemesh-shared against the local AWS emulator (feature `testbed`):
//! the test bed itself, S3 checksums, SQS attributes and SenderId, the announcement claim check
//! through S3 and SQS, and IAM enforcement with reset-auth.
//!
//! Every test starts loopback emulators only (the shared one, or a dedicated one when it changes
//! global state) and leaves none behind.

mod auth;
mod claim_check;
mod emulator;
mod s3;
mod sqs;
mod support;
