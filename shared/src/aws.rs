//! AWS client construction shared by the agent and the daemon: the `[aws]` section of both
//! configuration files ([`AwsSettings`]) and the [`SdkConfig`] built from it.
//!
//! Owns:
//! - the `[aws]` keys, their defaults and their validation (every error names the key);
//! - how an [`SdkConfig`] is made: the standard credential chain (environment, profile, web
//!   identity, ECS/IMDS; credentials are never in a config file), the region from the settings or
//!   that chain, the endpoint override (`endpoint_url`, else `AWS_ENDPOINT_URL` and the
//!   service-specific `AWS_ENDPOINT_URL_<SERVICE>` as aws-config reads them), the standard retry
//!   mode with an explicit number of attempts, and explicit connect and operation timeouts;
//! - with the `s3` feature, the S3 client that honours `force_path_style`.
//!
//! Does not own: which services a binary uses (each crate depends on its own client crates),
//! calling AWS, or mapping service errors (the adapters named after each service do that).

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, ConfigLoader, Region};
pub use aws_types::SdkConfig;
use serde::Deserialize;

/// Default of `max_attempts`: the SDK's standard retry mode default (first try plus two retries).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// Default of `connect_timeout_secs`.
pub const DEFAULT_CONNECT_TIMEOUT_SECS: u64 = 10;
/// Default of `operation_timeout_secs`.
pub const DEFAULT_OPERATION_TIMEOUT_SECS: u64 = 300;
/// Shortest `operation_timeout_secs` accepted: an SQS long poll waits 20 s for messages, and an
/// operation timeout below that would cut every poll short.
pub const MIN_OPERATION_TIMEOUT_SECS: u64 = 30;

/// `[aws]`: the same section in the agent's and the daemon's configuration.
///
/// The field doc comments are the configuration reference.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsSettings {
    /// AWS region, e.g. `"eu-west-3"`. Default: the standard chain (`AWS_REGION`, the profile,
    /// instance metadata).
    pub region: Option<String>,
    /// Endpoint override for every service: an emulator (`"http://127.0.0.1:5055"`) or a VPC
    /// endpoint. Default: `AWS_ENDPOINT_URL` (or `AWS_ENDPOINT_URL_S3`, `_SQS`…) when set,
    /// else the service's public endpoint.
    pub endpoint_url: Option<String>,
    /// Path-style S3 addressing (`http://host/bucket/key`), which emulators need. Default false
    /// (virtual-hosted style, as AWS prefers).
    #[serde(default)]
    pub force_path_style: bool,
    /// Attempts per AWS call in the SDK's standard retry mode (exponential backoff with jitter,
    /// transient errors and throttling only), 1 to 10. Default 3. The agent's and daemon's own
    /// capped backoff comes on top, around whole steps.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Time allowed to open a TCP (and TLS) connection, 1 to 300 seconds. Default 10.
    #[serde(default = "default_connect_timeout_secs")]
    pub connect_timeout_secs: u64,
    /// Time allowed for one AWS call including its retries, 30 to 3600 seconds. Default 300.
    /// It must cover the largest single request: one multipart part or small-object upload over
    /// the site's uplink, and the daemon's 20 s SQS long poll.
    #[serde(default = "default_operation_timeout_secs")]
    pub operation_timeout_secs: u64,
}

fn default_max_attempts() -> u32 {
    DEFAULT_MAX_ATTEMPTS
}

fn default_connect_timeout_secs() -> u64 {
    DEFAULT_CONNECT_TIMEOUT_SECS
}

fn default_operation_timeout_secs() -> u64 {
    DEFAULT_OPERATION_TIMEOUT_SECS
}

impl Default for AwsSettings {
    fn default() -> Self {
        Self {
            region: None,
            endpoint_url: None,
            force_path_style: false,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            connect_timeout_secs: DEFAULT_CONNECT_TIMEOUT_SECS,
            operation_timeout_secs: DEFAULT_OPERATION_TIMEOUT_SECS,
        }
    }
}

/// A value of `[aws]` that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("key `{key}`: {reason}")]
pub struct AwsSettingsError {
    /// The key, spelled as in the file: `aws.region`, `aws.endpoint_url`…
    pub key: &'static str,
    /// What is wrong and what would be right.
    pub reason: String,
}

impl AwsSettings {
    /// Checks every key; the first bad one is returned, named as in the file (`aws.…`).
    pub fn validate(&self) -> Result<(), AwsSettingsError> {
        let bad = |key, reason: String| Err(AwsSettingsError { key, reason });
        if let Some(region) = &self.region
            && let Err(reason) = check_region(region)
        {
            return bad("aws.region", reason);
        }
        if let Some(url) = &self.endpoint_url
            && let Err(reason) = check_endpoint_url(url)
        {
            return bad("aws.endpoint_url", reason);
        }
        if !(1..=10).contains(&self.max_attempts) {
            return bad(
                "aws.max_attempts",
                format!("{} is out of range; use 1 to 10", self.max_attempts),
            );
        }
        if !(1..=300).contains(&self.connect_timeout_secs) {
            return bad(
                "aws.connect_timeout_secs",
                format!(
                    "{} is out of range; use 1 to 300 seconds",
                    self.connect_timeout_secs
                ),
            );
        }
        if !(MIN_OPERATION_TIMEOUT_SECS..=3600).contains(&self.operation_timeout_secs) {
            return bad(
                "aws.operation_timeout_secs",
                format!(
                    "{} is out of range; use {MIN_OPERATION_TIMEOUT_SECS} to 3600 seconds \
                     (it must cover the 20 s SQS long poll and the largest upload request)",
                    self.operation_timeout_secs
                ),
            );
        }
        Ok(())
    }

    /// The SDK retry policy these settings ask for: standard mode, `max_attempts` attempts.
    pub fn retry_config(&self) -> RetryConfig {
        RetryConfig::standard().with_max_attempts(self.max_attempts)
    }

    /// The SDK timeouts these settings ask for: connect and whole-operation timeouts.
    pub fn timeout_config(&self) -> TimeoutConfig {
        TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(self.connect_timeout_secs))
            .operation_timeout(Duration::from_secs(self.operation_timeout_secs))
            .build()
    }
}

/// A region name as AWS spells them: lowercase letters, digits and `-`, starting with a letter
/// (`eu-west-3`, `us-gov-west-1`, `cn-north-1`).
fn check_region(region: &str) -> Result<(), String> {
    let ok = (2..=32).contains(&region.len())
        && region.starts_with(|c: char| c.is_ascii_lowercase())
        && !region.ends_with('-')
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{region:?} is not a region name (lowercase letters, digits and -, e.g. \"eu-west-3\")"
        ))
    }
}

/// `http://` or `https://`, a host, an optional port, an optional path; no user, query or
/// fragment (the SDK would silently drop or misuse them).
fn check_endpoint_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("{url:?} must start with http:// or https://"))?;
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{url:?} contains a space or control character"));
    }
    if rest.contains(['?', '#']) {
        return Err(format!("{url:?} must not have a query or fragment"));
    }
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.contains('@') {
        return Err(format!(
            "{url:?} must not carry credentials; use the standard AWS credential chain"
        ));
    }
    let (host, port) = match authority.rsplit_once(':') {
        // `[::1]:5000` splits at the last colon; `[::1]` alone has none after the bracket.
        Some((h, p)) if !p.contains(']') => (h, Some(p)),
        _ => (authority, None),
    };
    if host.is_empty() || host == "[]" {
        return Err(format!("{url:?} has no host"));
    }
    if let Some(p) = port
        && !p.parse::<u16>().is_ok_and(|n| n > 0)
    {
        return Err(format!(
            "{url:?}: port {p:?} is not a number from 1 to 65535"
        ));
    }
    Ok(())
}

/// The aws-config loader for `settings`: region, endpoint, retry and timeouts set, credentials
/// left to the standard chain. Validates the settings first.
///
/// Callers that must not read the machine's environment (the emulator test bed) add
/// `.empty_test_environment()` and explicit credentials before `load()`.
pub fn config_loader(settings: &AwsSettings) -> Result<ConfigLoader, AwsSettingsError> {
    settings.validate()?;
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(settings.retry_config())
        .timeout_config(settings.timeout_config());
    if let Some(region) = &settings.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if let Some(url) = &settings.endpoint_url {
        loader = loader.endpoint_url(url.trim_end_matches('/'));
    }
    Ok(loader)
}

/// The [`SdkConfig`] for `settings` with the standard credential chain (see [`config_loader`]).
///
/// Resolving the chain may read files and, on EC2/ECS, ask the instance metadata service;
/// credentials themselves are fetched lazily, on the first call that needs them.
pub async fn sdk_config(settings: &AwsSettings) -> Result<SdkConfig, AwsSettingsError> {
    Ok(config_loader(settings)?.load().await)
}

/// An S3 client for `sdk`, path-style when `settings.force_path_style` is set.
#[cfg(feature = "s3")]
pub fn s3_client(sdk: &SdkConfig, settings: &AwsSettings) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::config::Builder::from(sdk)
        .force_path_style(settings.force_path_style)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_toml(text: &str) -> Result<AwsSettings, String> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct File {
            aws: AwsSettings,
        }
        let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
        Ok(file.aws)
    }

    fn key_of(s: &AwsSettings) -> &'static str {
        s.validate().expect_err("should be invalid").key
    }

    #[test]
    fn defaults_are_explicit_and_valid() {
        let s = from_toml("[aws]\n").unwrap();
        assert_eq!(s, AwsSettings::default());
        assert_eq!(s.max_attempts, 3);
        assert_eq!(s.connect_timeout_secs, 10);
        assert_eq!(s.operation_timeout_secs, 300);
        assert!(!s.force_path_style);
        s.validate().unwrap();
    }

    #[test]
    fn design_example_parses() {
        let s = from_toml(
            "[aws]\nregion = \"eu-west-3\"\nendpoint_url = \"http://127.0.0.1:5055\"\nforce_path_style = true\n",
        )
        .unwrap();
        assert_eq!(s.region.as_deref(), Some("eu-west-3"));
        assert_eq!(s.endpoint_url.as_deref(), Some("http://127.0.0.1:5055"));
        assert!(s.force_path_style);
        s.validate().unwrap();
    }

    #[test]
    fn unknown_keys_are_refused() {
        let e = from_toml("[aws]\nregoin = \"eu-west-3\"\n").unwrap_err();
        assert!(e.contains("regoin"), "{e}");
    }

    #[test]
    fn region_rule() {
        for ok in ["eu-west-3", "us-gov-west-1", "cn-north-1", "us-east-1"] {
            let s = AwsSettings {
                region: Some(ok.into()),
                ..Default::default()
            };
            s.validate().unwrap();
        }
        for bad in [
            "",
            "EU-WEST-3",
            "eu west 3",
            "eu-west-3-",
            "3eu",
            "eu_west_3",
        ] {
            let s = AwsSettings {
                region: Some(bad.into()),
                ..Default::default()
            };
            assert_eq!(key_of(&s), "aws.region", "{bad:?}");
        }
    }

    #[test]
    fn endpoint_url_rule() {
        for ok in [
            "http://127.0.0.1:5055",
            "https://vpce-1.s3.eu-west-3.vpce.amazonaws.com",
            "http://localhost:4566/",
            "http://[::1]:5000",
            "http://[::1]",
            "https://proxy.example/aws",
        ] {
            let s = AwsSettings {
                endpoint_url: Some(ok.into()),
                ..Default::default()
            };
            s.validate().unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for (bad, why) in [
            ("127.0.0.1:5055", "must start with http"),
            ("ftp://host", "must start with http"),
            ("http://", "no host"),
            ("http://:5000", "no host"),
            ("http://host:0", "port \"0\""),
            ("http://host:99999", "port \"99999\""),
            ("http://host:port", "port \"port\""),
            ("http://user:pw@host", "credentials"),
            ("http://host/?a=b", "query"),
            ("http://ho st", "space"),
        ] {
            let s = AwsSettings {
                endpoint_url: Some(bad.into()),
                ..Default::default()
            };
            let e = s.validate().unwrap_err();
            assert_eq!(e.key, "aws.endpoint_url", "{bad}");
            assert!(e.to_string().contains(why), "{bad}: {e}");
            assert!(e.to_string().starts_with("key `aws.endpoint_url`: "), "{e}");
        }
    }

    #[test]
    fn numeric_ranges() {
        let with = |f: fn(&mut AwsSettings)| {
            let mut s = AwsSettings::default();
            f(&mut s);
            s
        };
        assert_eq!(key_of(&with(|s| s.max_attempts = 0)), "aws.max_attempts");
        assert_eq!(key_of(&with(|s| s.max_attempts = 11)), "aws.max_attempts");
        assert_eq!(
            key_of(&with(|s| s.connect_timeout_secs = 0)),
            "aws.connect_timeout_secs"
        );
        assert_eq!(
            key_of(&with(|s| s.operation_timeout_secs = 20)),
            "aws.operation_timeout_secs"
        );
        assert_eq!(
            key_of(&with(|s| s.operation_timeout_secs = 3601)),
            "aws.operation_timeout_secs"
        );
        with(|s| s.max_attempts = 1).validate().unwrap();
        with(|s| s.operation_timeout_secs = 30).validate().unwrap();
    }

    #[test]
    fn retry_and_timeouts_follow_the_settings() {
        let s = AwsSettings {
            max_attempts: 5,
            connect_timeout_secs: 7,
            operation_timeout_secs: 90,
            ..Default::default()
        };
        let r = s.retry_config();
        assert_eq!(r.max_attempts(), 5);
        assert_eq!(r.mode(), aws_config::retry::RetryMode::Standard);
        let t = s.timeout_config();
        assert_eq!(t.connect_timeout(), Some(Duration::from_secs(7)));
        assert_eq!(t.operation_timeout(), Some(Duration::from_secs(90)));
    }

    #[tokio::test]
    async fn sdk_config_carries_region_endpoint_retry_and_timeouts() {
        let s = AwsSettings {
            region: Some("eu-west-3".into()),
            endpoint_url: Some("http://127.0.0.1:5055/".into()),
            max_attempts: 4,
            ..Default::default()
        };
        let sdk = config_loader(&s)
            .unwrap()
            .empty_test_environment()
            .no_credentials()
            .load()
            .await;
        assert_eq!(sdk.region().map(|r| r.as_ref()), Some("eu-west-3"));
        assert_eq!(sdk.endpoint_url(), Some("http://127.0.0.1:5055"));
        assert_eq!(sdk.retry_config().map(|r| r.max_attempts()), Some(4));
        let t = sdk.timeout_config().expect("timeouts set");
        assert_eq!(t.connect_timeout(), Some(Duration::from_secs(10)));
        assert_eq!(t.operation_timeout(), Some(Duration::from_secs(300)));
    }

    #[test]
    fn invalid_settings_build_no_loader() {
        let s = AwsSettings {
            endpoint_url: Some("nope".into()),
            ..Default::default()
        };
        assert_eq!(
            config_loader(&s).err().map(|e| e.key),
            Some("aws.endpoint_url")
        );
    }
}
