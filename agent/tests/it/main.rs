//! Integration tests of the agent: real files in, Parquet read back out.
#![allow(clippy::unwrap_used)]

mod cli;
mod convert;
mod corpus;
mod errors;
mod independent_reader;
mod support;
