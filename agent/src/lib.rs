//! lakemesh-agent: the producer side of the lakemesh data mesh.
//!
//! Turns a hospital's CSV exports into Athena-ready, partitioned, pseudonymised Parquet
//! (`convert`, `infer`) and delivers them: drop folders watched by the folder protocol
//! (`watch`), a ledger of every step (`ledger`), upload to the producer's bucket (`upload`
//! through the `s3` adapter) and the announcement to the governance queue (`announce` through
//! the `sqs` adapter), run as a service or one file at a time (`service`, over the steps of
//! `pipeline`), with `status`, `retry` and `check` for operators.

pub mod announce;
pub mod backoff;
pub mod check;
pub mod chunk;
pub mod columns;
pub mod config;
pub mod contract;
pub mod convert;
pub mod datefmt;
pub mod decode;
pub mod failpoint;
pub mod infer;
pub mod intern;
pub mod layout;
pub mod ledger;
pub mod parse;
pub mod pii;
pub mod pipeline;
pub mod readahead;
pub mod retry;
pub mod s3;
pub mod sdk_error;
pub mod service;
pub mod spill;
pub mod sqs;
pub mod status;
pub mod tokenize;
pub mod upload;
pub mod validity;
pub mod watch;
pub mod writer;
