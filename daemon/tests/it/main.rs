//! Integration tests of lakemesh-syncd against the local AWS emulator (moto with the project's
//! extensions, started by `lakemesh_shared::testbed`): announcements to Glue databases,
//! crawlers, tables and Lake Formation grants; policy plan/apply; coalesced crawls; forged
//! announcements; the dead-letter queue, visibility and shutdown; two daemons on one queue; the
//! binary's subcommands; the state store and `status`; the service under systemd (sd_notify,
//! policy reloads, the unit).

mod cli;
mod crawl;
mod direct;
mod forged;
mod intake;
mod least_privilege;
mod policy;
mod preview;
mod schema;
mod status;
mod support;
mod systemd;
mod verify;
