//! Integration tests of the agent: real files in, Parquet read back out; and the delivery
//! service (the real binary) against the local AWS emulator (`lakemesh_shared::testbed`), which
//! each test binary starts on a free loopback port and stops.
#![allow(clippy::unwrap_used)]

mod agent_process;
mod changes;
mod cli;
mod columnar;
mod convert;
mod corpus;
mod crash;
mod delivery;
mod errors;
mod folder;
mod independent_reader;
mod least_privilege;
mod multipart;
mod offline;
mod support;
mod systemd;
