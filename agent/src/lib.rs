//! lakemesh-agent: the producer side of the lakemesh data mesh.
//!
//! This crate turns a hospital's CSV exports into Athena-ready, partitioned, pseudonymised Parquet
//! (`convert`, `infer`). Uploading and announcing belong to later modules; nothing here talks to AWS.

pub mod columns;
pub mod config;
pub mod contract;
pub mod convert;
pub mod datefmt;
pub mod decode;
pub mod infer;
pub mod parse;
pub mod pii;
pub mod spill;
pub mod tokenize;
pub mod writer;
