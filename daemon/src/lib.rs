//! `lakemesh-syncd`, the central sync daemon of the governance account: it consumes the
//! producers' announcements from SQS, validates them against the producer registry, catalogs
//! the products in Glue (a database per domain and origin, a crawler per product, or tables
//! written directly) and makes Lake Formation hold what the ministry policy says (locations
//! registered, grants, column lists, row filters as data cells filters).
//!
//! Modules, in pipeline order: [`config`] (the configuration file and producer registry),
//! [`consume`] (SQS intake, visibility, shutdown), [`validate`] (the security boundary),
//! [`catalog`] (Glue databases, crawlers, coalesced crawls, direct tables), [`govern`] (Lake
//! Formation registration, grants, plan/apply), [`policy`] (the policy file, normal forms,
//! diff), [`lint`] (row filters parsed and checked); the AWS adapters [`sqs`], [`s3`], [`glue`],
//! [`lakeformation`] with their error type [`aws_error`]; [`backoff`] (the outer retry layer);
//! [`state`] (what was handled) and [`status`] (the report of `status`); [`commands`] (what
//! the binary's subcommands do, `status` among them). Checking the policy: [`preview`] (what a
//! principal would see, computed locally from the Parquet with [`evaluate`], the row-filter
//! evaluator) and [`verify`] (Athena probes as each principal, through [`sts`] and [`athena`]).
//!
//! Does not own: the announcement contract and name rules (`lakemesh_shared`), anything on the
//! producer side.

pub mod athena;
pub mod aws_error;
pub mod backoff;
pub mod catalog;
pub mod commands;
pub mod config;
pub mod consume;
pub mod evaluate;
pub mod glue;
pub mod govern;
pub mod lakeformation;
pub mod lint;
pub mod policy;
pub mod preview;
pub mod s3;
pub mod sqs;
pub mod state;
pub mod status;
pub mod sts;
pub mod validate;
pub mod verify;
