//! lakemesh-syncd.
pub mod config;
pub mod lint;
pub mod policy;
