//! The daemon's configuration file (`/etc/lakemesh/syncd.toml`): the raw TOML ([`RawConfig`],
//! whose field doc comments are the configuration reference), its validation into [`Settings`]
//! (every error names the key), the producer registry ([`Producer`]) and the database naming
//! rule ([`DatabaseNameRule`]).
//!
//! Does not own: the policy file (`policy`), reaching AWS (`check-config` in `commands`), or
//! deciding whether an announcement is acceptable (`validate`, which uses the registry).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use lakemesh_shared::aws::AwsSettings;
use lakemesh_shared::names;
use serde::Deserialize;

/// Default configuration file.
pub const DEFAULT_PATH: &str = "/etc/lakemesh/syncd.toml";
/// Default state directory (the unit's `StateDirectory=lakemesh-syncd`).
pub const DEFAULT_STATE_DIR: &str = "/var/lib/lakemesh-syncd";
/// Default database naming rule.
pub const DEFAULT_DATABASE_NAME: &str = "{domain}_{origin}";

/// The file as written. Unknown keys are refused.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// URL of the announcements queue (SQS, standard queue):
    /// `https://sqs.eu-west-3.amazonaws.com/999988887777/lakemesh-announcements`.
    pub queue_url: String,
    /// URL of the queue's dead-letter queue. Optional; when set, `check-config` verifies that
    /// the queue's redrive policy sends poison messages there.
    pub dead_letter_queue_url: Option<String>,
    /// The ministry policy (grants, column lists, row filters): a TOML file, see the README.
    pub policy_file: PathBuf,
    /// IAM role the Glue crawlers run as (`arn:aws:iam::ACCOUNT:role/NAME`). Required with
    /// `catalog_mode = "crawler"`.
    pub crawler_role_arn: Option<String>,
    /// IAM role Lake Formation uses to read registered producer locations (a custom role, not
    /// the service-linked role).
    pub registration_role_arn: String,
    /// Database naming rule: `{domain}` and `{origin}` with `a-z 0-9 _` around them. Default
    /// `"{domain}_{origin}"` (`hospital_activity_chu`).
    #[serde(default = "default_database_name")]
    pub database_name: String,
    /// `"crawler"` (default: one Glue crawler per product) or `"direct"` (the daemon writes the
    /// table and its partitions from the announcement).
    #[serde(default)]
    pub catalog_mode: CatalogMode,
    /// Messages worked on at once, 1 to 100. Default 10.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    /// Seconds an SQS receive waits for messages (long polling), 0 to 20. Default 20.
    #[serde(default = "default_wait_time_secs")]
    pub wait_time_secs: u64,
    /// Visibility timeout set on a message while its work runs, renewed every third of it, 10
    /// to 43200 seconds. Default 300.
    #[serde(default = "default_visibility_timeout_secs")]
    pub visibility_timeout_secs: u64,
    /// Seconds between two looks at a running crawler, 1 to 300. Default 15.
    #[serde(default = "default_crawler_poll_secs")]
    pub crawler_poll_secs: u64,
    /// Longest wait for one crawl, 60 to 86400 seconds. Default 7200.
    #[serde(default = "default_crawl_timeout_secs")]
    pub crawl_timeout_secs: u64,
    /// On SIGTERM, time given to in-flight messages before they are released to the queue, 1 to
    /// 3600 seconds. Default 60.
    #[serde(default = "default_shutdown_grace_secs")]
    pub shutdown_grace_secs: u64,
    /// Longest total time one step (a Glue or Lake Formation call) is retried with capped
    /// exponential backoff after transient errors (throttling, role propagation, concurrent
    /// modification), 1 to 3600 seconds. Default 120.
    #[serde(default = "default_retry_limit_secs")]
    pub retry_limit_secs: u64,
    /// Where the daemon keeps its state (`syncd.sqlite`: the announcements handled and the
    /// policy runs, read by `status`). Absolute. Default `/var/lib/lakemesh-syncd`.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// AWS client settings (the same section as the agent's).
    #[serde(default)]
    pub aws: AwsSettings,
    /// `lakemesh-syncd verify`: where its Athena probes run. Optional; `verify` needs it.
    pub verify: Option<RawVerify>,
    /// The producer registry: who may announce what, from where.
    #[serde(default, rename = "producer")]
    pub producers: Vec<RawProducer>,
}

/// One `[[producer]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProducer {
    /// The producer id its agent announces (`chu-lyon`).
    pub id: String,
    /// Its AWS account (12 digits).
    pub account_id: String,
    /// SQS `SenderId`s of its agent: the agent role's RoleId (`AROA…`, the `:session` part that
    /// SQS adds is ignored) or an IAM user's id (`AIDA…`).
    pub sender_ids: Vec<String>,
    /// The origin part of its database names (`chu`).
    pub origin: String,
    /// Its bucket.
    pub bucket: String,
    /// The key prefix its products live under. Default `products`; `""` for the bucket's root.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// The domains (data types) it may publish.
    pub domains: Vec<String>,
}

/// `[verify]`: the Athena probes of `lakemesh-syncd verify`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVerify {
    /// Athena workgroup the probes run in, e.g. `"lakemesh-verify"`. Queries run in the account
    /// of the principal whose role is assumed, so the workgroup must exist there (one per
    /// account, same name); give it a bytes-scanned limit, the probes need almost none.
    pub workgroup: String,
    /// Where the probes' results go: `s3://bucket/prefix/`, writable by every probed role and
    /// kept apart from other query results (a lifecycle rule can expire it).
    pub output_location: String,
    /// Longest wait for Lake Formation grants to take effect: a probe that does not hold yet is
    /// repeated with capped backoff until this has passed, 0 to 3600 seconds. Default 60.
    #[serde(default = "default_propagation_timeout_secs")]
    pub propagation_timeout_secs: u64,
    /// Longest run of one probe query before it is stopped, 5 to 3600 seconds. Default 120.
    #[serde(default = "default_query_timeout_secs")]
    pub query_timeout_secs: u64,
    /// Milliseconds between two looks at a running query, 50 to 60000. Default 500.
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
}

/// `[verify]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifySettings {
    /// Workgroup.
    pub workgroup: String,
    /// Result location (`s3://…/`, with the trailing slash).
    pub output_location: String,
    /// Propagation wait.
    pub propagation_timeout: Duration,
    /// Query timeout.
    pub query_timeout: Duration,
    /// Poll interval.
    pub poll_interval: Duration,
}

fn default_propagation_timeout_secs() -> u64 {
    60
}
fn default_query_timeout_secs() -> u64 {
    120
}
fn default_poll_interval_ms() -> u64 {
    500
}

fn check_verify(v: &RawVerify) -> Result<VerifySettings, (&'static str, String)> {
    let wg_ok = (1..=128).contains(&v.workgroup.len())
        && v.workgroup
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if !wg_ok {
        return Err((
            "verify.workgroup",
            format!(
                "{:?} is not a workgroup name (1 to 128 letters, digits, . _ -)",
                v.workgroup
            ),
        ));
    }
    let loc_ok = v
        .output_location
        .strip_prefix("s3://")
        .is_some_and(|r| r.split('/').next().is_some_and(|b| !b.is_empty()));
    if !loc_ok {
        return Err((
            "verify.output_location",
            format!(
                "{:?} is not an s3://bucket/prefix/ location",
                v.output_location
            ),
        ));
    }
    let range = |key: &'static str, val: u64, lo: u64, hi: u64, unit: &str| {
        if (lo..=hi).contains(&val) {
            Ok(())
        } else {
            Err((
                key,
                format!("{val} is out of range; use {lo} to {hi}{unit}"),
            ))
        }
    };
    range(
        "verify.propagation_timeout_secs",
        v.propagation_timeout_secs,
        0,
        3600,
        " seconds",
    )?;
    range(
        "verify.query_timeout_secs",
        v.query_timeout_secs,
        5,
        3600,
        " seconds",
    )?;
    range(
        "verify.poll_interval_ms",
        v.poll_interval_ms,
        50,
        60_000,
        " milliseconds",
    )?;
    let mut output_location = v.output_location.clone();
    if !output_location.ends_with('/') {
        output_location.push('/');
    }
    Ok(VerifySettings {
        workgroup: v.workgroup.clone(),
        output_location,
        propagation_timeout: Duration::from_secs(v.propagation_timeout_secs),
        query_timeout: Duration::from_secs(v.query_timeout_secs),
        poll_interval: Duration::from_millis(v.poll_interval_ms),
    })
}

/// How tables are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CatalogMode {
    /// A Glue crawler per product.
    #[default]
    Crawler,
    /// The daemon writes table and partitions from the announcement.
    Direct,
}

fn default_database_name() -> String {
    DEFAULT_DATABASE_NAME.into()
}
fn default_state_dir() -> PathBuf {
    DEFAULT_STATE_DIR.into()
}
fn default_prefix() -> String {
    "products".into()
}
fn default_max_in_flight() -> usize {
    10
}
fn default_wait_time_secs() -> u64 {
    20
}
fn default_visibility_timeout_secs() -> u64 {
    300
}
fn default_crawler_poll_secs() -> u64 {
    15
}
fn default_crawl_timeout_secs() -> u64 {
    7200
}
fn default_shutdown_grace_secs() -> u64 {
    60
}
fn default_retry_limit_secs() -> u64 {
    120
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Not TOML, or not the expected keys (serde's message names the key and line).
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
    /// A key's value is unusable.
    #[error("{path}: key `{key}`: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The key as written: `producer[1].sender_ids[0]`, `aws.region`.
        key: String,
        /// What is wrong and what would be right.
        reason: String,
    },
}

impl ConfigError {
    /// The key an [`ConfigError::Invalid`] names.
    pub fn key(&self) -> Option<&str> {
        match self {
            Self::Invalid { key, .. } => Some(key),
            _ => None,
        }
    }
}

/// A registered producer, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Producer {
    /// Producer id.
    pub id: String,
    /// AWS account id.
    pub account_id: String,
    /// Registered SQS sender ids (without `:session`).
    pub sender_ids: BTreeSet<String>,
    /// Origin (database name part).
    pub origin: String,
    /// Bucket.
    pub bucket: String,
    /// Key prefix without leading/trailing `/` (empty: the bucket's root).
    pub prefix: String,
    /// Allowed domains.
    pub domains: BTreeSet<String>,
}

impl Producer {
    /// The S3 ARN registered with Lake Formation for this producer's location:
    /// `arn:aws:s3:::bucket/prefix` (or the bucket alone).
    pub fn location_arn(&self) -> String {
        if self.prefix.is_empty() {
            format!("arn:aws:s3:::{}", self.bucket)
        } else {
            format!("arn:aws:s3:::{}/{}", self.bucket, self.prefix)
        }
    }

    /// Whether an SQS `SenderId` is one of this producer's: a role's `AROA…:session` is
    /// compared by the part before `:`, a user's `AIDA…` as is. Case-sensitive.
    pub fn accepts_sender(&self, sender_id: &str) -> bool {
        let principal = sender_id.split_once(':').map_or(sender_id, |(id, _)| id);
        !principal.is_empty() && self.sender_ids.contains(principal)
    }
}

/// The database naming rule: literal `a-z 0-9 _` with `{domain}` and `{origin}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseNameRule(String);

impl DatabaseNameRule {
    /// Checks the placeholders and literal characters.
    pub fn parse(rule: &str) -> Result<Self, String> {
        let mut rest = rule;
        let mut has_domain = false;
        while let Some(open) = rest.find('{') {
            let literal = &rest[..open];
            check_literal(literal)?;
            let close = rest[open..]
                .find('}')
                .ok_or_else(|| format!("{rule:?}: unclosed '{{'"))?;
            match &rest[open + 1..open + close] {
                "domain" => has_domain = true,
                "origin" => {}
                other => {
                    return Err(format!(
                        "{rule:?}: unknown placeholder {{{other}}}; use {{domain}} and {{origin}}"
                    ));
                }
            }
            rest = &rest[open + close + 1..];
        }
        check_literal(rest)?;
        if !has_domain {
            return Err(format!(
                "{rule:?} must contain {{domain}} (one database per data type)"
            ));
        }
        Ok(Self(rule.to_owned()))
    }

    /// The database name for a domain and origin; checked to be a safe identifier.
    pub fn render(&self, domain: &str, origin: &str) -> Result<String, String> {
        let name = self
            .0
            .replace("{domain}", domain)
            .replace("{origin}", origin);
        names::check_identifier(&name).map_err(|e| e.to_string())?;
        Ok(name)
    }
}

fn check_literal(s: &str) -> Result<(), String> {
    match s
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'))
    {
        Some(c) => Err(format!(
            "{c:?} is not allowed in a database name (use a-z, 0-9, _ and the placeholders)"
        )),
        None => Ok(()),
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The file it came from.
    pub path: PathBuf,
    /// Announcements queue.
    pub queue_url: String,
    /// Its dead-letter queue, if given.
    pub dead_letter_queue_url: Option<String>,
    /// The governance account (from the queue URL).
    pub account_id: String,
    /// Policy file, relative paths resolved against the configuration file's folder.
    pub policy_file: PathBuf,
    /// Crawler role (crawler mode).
    pub crawler_role_arn: Option<String>,
    /// Registration role.
    pub registration_role_arn: String,
    /// Database naming rule.
    pub database_name: DatabaseNameRule,
    /// Catalog mode.
    pub catalog_mode: CatalogMode,
    /// Concurrency bound.
    pub max_in_flight: usize,
    /// Long poll wait.
    pub wait_time: Duration,
    /// Visibility timeout while working.
    pub visibility_timeout: Duration,
    /// Crawler poll interval.
    pub crawler_poll: Duration,
    /// Crawl timeout.
    pub crawl_timeout: Duration,
    /// Shutdown grace period.
    pub shutdown_grace: Duration,
    /// Retry budget of one step.
    pub retry_limit: Duration,
    /// State directory.
    pub state_dir: PathBuf,
    /// `[aws]`.
    pub aws: AwsSettings,
    /// `[verify]`, if given.
    pub verify: Option<VerifySettings>,
    /// Producers by id.
    pub producers: BTreeMap<String, Producer>,
}

impl Settings {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text, path)
    }

    /// Parses and validates `text` (errors mention `path`).
    pub fn from_toml(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        Self::try_from_raw(raw, path)
    }

    /// Validates a parsed file.
    pub fn try_from_raw(raw: RawConfig, path: &Path) -> Result<Self, ConfigError> {
        let bad = |key: &str, reason: String| ConfigError::Invalid {
            path: path.to_owned(),
            key: key.to_owned(),
            reason,
        };
        let account_id = queue_account(&raw.queue_url).map_err(|r| bad("queue_url", r))?;
        if let Some(dlq) = &raw.dead_letter_queue_url {
            queue_account(dlq).map_err(|r| bad("dead_letter_queue_url", r))?;
            if *dlq == raw.queue_url {
                return Err(bad(
                    "dead_letter_queue_url",
                    "is the announcements queue itself".into(),
                ));
            }
        }
        if raw.policy_file.as_os_str().is_empty() {
            return Err(bad("policy_file", "empty path".into()));
        }
        let policy_file = if raw.policy_file.is_relative() {
            path.parent()
                .unwrap_or_else(|| Path::new("."))
                .join(&raw.policy_file)
        } else {
            raw.policy_file.clone()
        };
        match (&raw.crawler_role_arn, raw.catalog_mode) {
            (Some(arn), _) => check_role_arn(arn).map_err(|r| bad("crawler_role_arn", r))?,
            (None, CatalogMode::Crawler) => {
                return Err(bad(
                    "crawler_role_arn",
                    "missing: catalog_mode = \"crawler\" needs the role the crawlers run as".into(),
                ));
            }
            (None, CatalogMode::Direct) => {}
        }
        check_role_arn(&raw.registration_role_arn).map_err(|r| bad("registration_role_arn", r))?;
        let database_name =
            DatabaseNameRule::parse(&raw.database_name).map_err(|r| bad("database_name", r))?;
        let range = |key: &str, v: u64, lo: u64, hi: u64, unit: &str| {
            if (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err(bad(
                    key,
                    format!("{v} is out of range; use {lo} to {hi}{unit}"),
                ))
            }
        };
        range("max_in_flight", raw.max_in_flight as u64, 1, 100, "")?;
        range("wait_time_secs", raw.wait_time_secs, 0, 20, " seconds")?;
        range(
            "visibility_timeout_secs",
            raw.visibility_timeout_secs,
            10,
            43_200,
            " seconds",
        )?;
        range(
            "crawler_poll_secs",
            raw.crawler_poll_secs,
            1,
            300,
            " seconds",
        )?;
        range(
            "crawl_timeout_secs",
            raw.crawl_timeout_secs,
            60,
            86_400,
            " seconds",
        )?;
        range(
            "shutdown_grace_secs",
            raw.shutdown_grace_secs,
            1,
            3600,
            " seconds",
        )?;
        range(
            "retry_limit_secs",
            raw.retry_limit_secs,
            1,
            3600,
            " seconds",
        )?;
        if !raw.state_dir.is_absolute() {
            return Err(bad(
                "state_dir",
                format!("{:?} must be an absolute path", raw.state_dir),
            ));
        }
        raw.aws.validate().map_err(|e| ConfigError::Invalid {
            path: path.to_owned(),
            key: e.key.to_owned(),
            reason: e.reason,
        })?;

        let verify = match &raw.verify {
            None => None,
            Some(v) => Some(check_verify(v).map_err(|(k, r)| bad(k, r))?),
        };
        let mut producers = BTreeMap::new();
        for (i, p) in raw.producers.iter().enumerate() {
            let key = |k: &str| format!("producer[{i}].{k}");
            let producer = check_producer(p, &database_name).map_err(|(k, r)| bad(&key(&k), r))?;
            for other in producers.values() {
                if let Some(reason) = overlap(&producer, other) {
                    return Err(bad(&key("prefix"), reason));
                }
            }
            if producers.insert(producer.id.clone(), producer).is_some() {
                return Err(bad(&key("id"), format!("{:?} is registered twice", p.id)));
            }
        }
        Ok(Self {
            path: path.to_owned(),
            queue_url: raw.queue_url,
            dead_letter_queue_url: raw.dead_letter_queue_url,
            account_id,
            policy_file,
            crawler_role_arn: raw.crawler_role_arn,
            registration_role_arn: raw.registration_role_arn,
            database_name,
            catalog_mode: raw.catalog_mode,
            max_in_flight: raw.max_in_flight,
            wait_time: Duration::from_secs(raw.wait_time_secs),
            visibility_timeout: Duration::from_secs(raw.visibility_timeout_secs),
            crawler_poll: Duration::from_secs(raw.crawler_poll_secs),
            crawl_timeout: Duration::from_secs(raw.crawl_timeout_secs),
            shutdown_grace: Duration::from_secs(raw.shutdown_grace_secs),
            retry_limit: Duration::from_secs(raw.retry_limit_secs),
            state_dir: raw.state_dir,
            aws: raw.aws,
            verify,
            producers,
        })
    }

    /// The database of a producer's domain.
    pub fn database_for(&self, producer: &Producer, domain: &str) -> Result<String, String> {
        self.database_name.render(domain, &producer.origin)
    }

    /// Every database the registry can produce, with the producers and domains feeding it.
    pub fn databases(&self) -> BTreeMap<String, Vec<(&Producer, &str)>> {
        let mut out: BTreeMap<String, Vec<(&Producer, &str)>> = BTreeMap::new();
        for p in self.producers.values() {
            for d in &p.domains {
                // Rendering was checked for every producer and domain at load time.
                if let Ok(db) = self.database_for(p, d) {
                    out.entry(db).or_default().push((p, d));
                }
            }
        }
        out
    }
}

/// The account id in `https://sqs.REGION.amazonaws.com/ACCOUNT/NAME` (or an emulator's
/// `http://host:port/ACCOUNT/NAME`).
fn queue_account(url: &str) -> Result<String, String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("{url:?} must be an https:// queue URL"))?;
    let parts: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    match parts.as_slice() {
        [host, account, name]
            if !host.is_empty()
                && is_account_id(account)
                && !name.is_empty()
                && name.len() <= 80
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            Ok((*account).to_owned())
        }
        _ => Err(format!(
            "{url:?} is not a queue URL (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME)"
        )),
    }
}

fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// `arn:aws[-cn|-us-gov]:iam::ACCOUNT:role/PATH/NAME`.
fn check_role_arn(arn: &str) -> Result<(), String> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let ok = parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "iam"
        && parts[3].is_empty()
        && is_account_id(parts[4])
        && parts[5].strip_prefix("role/").is_some_and(|n| {
            !n.is_empty()
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+=,.@-_/".contains(&b))
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{arn:?} is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)"
        ))
    }
}

fn check_producer(p: &RawProducer, rule: &DatabaseNameRule) -> Result<Producer, (String, String)> {
    names::check_producer_id(&p.id).map_err(|r| ("id".into(), r))?;
    if !is_account_id(&p.account_id) {
        return Err((
            "account_id".into(),
            format!("{:?} is not a 12-digit AWS account id", p.account_id),
        ));
    }
    if p.sender_ids.is_empty() {
        return Err((
            "sender_ids".into(),
            "empty: list the SQS SenderId of the producer's agent role (AROA…) or user (AIDA…)"
                .into(),
        ));
    }
    let mut sender_ids = BTreeSet::new();
    for (i, s) in p.sender_ids.iter().enumerate() {
        let ok = (16..=128).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        if !ok {
            return Err((
                format!("sender_ids[{i}]"),
                format!(
                    "{s:?} is not an IAM unique id (AROA… for a role, AIDA… for a user; \
                     uppercase letters and digits, without the :session part)"
                ),
            ));
        }
        sender_ids.insert(s.clone());
    }
    names::check_identifier(&p.origin).map_err(|e| ("origin".into(), e.to_string()))?;
    names::check_bucket_name(&p.bucket).map_err(|r| ("bucket".into(), r))?;
    let prefix = p.prefix.trim_matches('/');
    names::check_key_prefix(prefix).map_err(|r| ("prefix".into(), r))?;
    if p.domains.is_empty() {
        return Err((
            "domains".into(),
            "empty: list the domains it may publish".into(),
        ));
    }
    let mut domains = BTreeSet::new();
    for (i, d) in p.domains.iter().enumerate() {
        names::check_identifier(d).map_err(|e| (format!("domains[{i}]"), e.to_string()))?;
        rule.render(d, &p.origin).map_err(|r| {
            (
                format!("domains[{i}]"),
                format!("gives an unusable database name: {r}"),
            )
        })?;
        domains.insert(d.clone());
    }
    Ok(Producer {
        id: p.id.clone(),
        account_id: p.account_id.clone(),
        sender_ids,
        origin: p.origin.clone(),
        bucket: p.bucket.clone(),
        prefix: prefix.to_owned(),
        domains,
    })
}

/// Two producers must not share a location: one prefix inside the other, same bucket.
fn overlap(a: &Producer, b: &Producer) -> Option<String> {
    if a.bucket != b.bucket {
        return None;
    }
    let inside = |x: &str, y: &str| x.is_empty() || y == x || y.starts_with(&format!("{x}/"));
    (inside(&a.prefix, &b.prefix) || inside(&b.prefix, &a.prefix)).then(|| {
        format!(
            "s3://{}/{} overlaps producer {:?}'s s3://{}/{}",
            a.bucket, a.prefix, b.id, b.bucket, b.prefix
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
queue_url = "https://sqs.eu-west-3.amazonaws.com/999988887777/lakemesh-announcements"
policy_file = "policy.toml"
crawler_role_arn = "arn:aws:iam::999988887777:role/lakemesh-crawler"
registration_role_arn = "arn:aws:iam::999988887777:role/lakemesh-lf-registration"
database_name = "{domain}_{origin}"
catalog_mode = "crawler"

[aws]
region = "eu-west-3"

[[producer]]
id = "chu-lyon"
account_id = "111122223333"
sender_ids = ["AROAEXAMPLEAGENTROLE"]
origin = "chu"
bucket = "chu-lyon-datamesh"
prefix = "products"
domains = ["hospital_activity"]
"#;

    fn load(text: &str) -> Result<Settings, ConfigError> {
        Settings::from_toml(text, Path::new("/etc/lakemesh/syncd.toml"))
    }

    fn key_of(text: &str) -> String {
        match load(text) {
            Err(e) => e.key().map(str::to_owned).unwrap_or_else(|| e.to_string()),
            Ok(_) => panic!("accepted"),
        }
    }

    #[test]
    fn design_example_loads_with_defaults() {
        let s = load(GOOD).unwrap();
        assert_eq!(s.account_id, "999988887777");
        assert_eq!(s.policy_file, Path::new("/etc/lakemesh/policy.toml"));
        assert_eq!(s.catalog_mode, CatalogMode::Crawler);
        assert_eq!(s.max_in_flight, 10);
        assert_eq!(s.wait_time, Duration::from_secs(20));
        assert_eq!(s.state_dir, Path::new("/var/lib/lakemesh-syncd"));
        let p = &s.producers["chu-lyon"];
        assert_eq!(p.location_arn(), "arn:aws:s3:::chu-lyon-datamesh/products");
        assert_eq!(
            s.database_for(p, "hospital_activity").unwrap(),
            "hospital_activity_chu"
        );
        assert_eq!(
            s.databases().keys().collect::<Vec<_>>(),
            ["hospital_activity_chu"]
        );
    }

    #[test]
    fn verify_section_defaults_and_errors_name_the_key() {
        assert_eq!(load(GOOD).unwrap().verify, None);
        let with = |body: &str| {
            format!(
                "{}\n[verify]\n{body}\n",
                GOOD.replace("[aws]\nregion = \"eu-west-3\"\n", "")
            )
        };
        let s = load(&with(
            "workgroup = \"lakemesh-verify\"\noutput_location = \"s3://ministry-athena/verify\"",
        ))
        .unwrap();
        let v = s.verify.unwrap();
        assert_eq!(v.output_location, "s3://ministry-athena/verify/");
        assert_eq!(v.propagation_timeout, Duration::from_secs(60));
        assert_eq!(v.query_timeout, Duration::from_secs(120));
        assert_eq!(v.poll_interval, Duration::from_millis(500));
        for (body, key) in [
            (
                "workgroup = \"bad name\"\noutput_location = \"s3://b/\"",
                "verify.workgroup",
            ),
            (
                "workgroup = \"w\"\noutput_location = \"/tmp/x\"",
                "verify.output_location",
            ),
            (
                "workgroup = \"w\"\noutput_location = \"s3://b/\"\npropagation_timeout_secs = 4000",
                "verify.propagation_timeout_secs",
            ),
            (
                "workgroup = \"w\"\noutput_location = \"s3://b/\"\npoll_interval_ms = 1",
                "verify.poll_interval_ms",
            ),
        ] {
            assert_eq!(key_of(&with(body)), key, "{body}");
        }
    }

    #[test]
    fn unknown_keys_are_refused_with_their_name() {
        let e = load(&GOOD.replace("catalog_mode", "catalog_mood")).unwrap_err();
        assert!(e.to_string().contains("catalog_mood"), "{e}");
        let e =
            load(&GOOD.replace("origin = \"chu\"", "origin = \"chu\"\ncolour = 1")).unwrap_err();
        assert!(e.to_string().contains("colour"), "{e}");
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            (
                GOOD.replace(
                    "https://sqs.eu-west-3.amazonaws.com/999988887777/",
                    "https://sqs/",
                ),
                "queue_url",
            ),
            (
                GOOD.replace("role/lakemesh-crawler", "user/x"),
                "crawler_role_arn",
            ),
            (
                GOOD.replace(
                    "catalog_mode = \"crawler\"",
                    "catalog_mode = \"crawler\"\nmax_in_flight = 0",
                ),
                "max_in_flight",
            ),
            (
                GOOD.replace(
                    "catalog_mode = \"crawler\"",
                    "catalog_mode = \"crawler\"\nwait_time_secs = 21",
                ),
                "wait_time_secs",
            ),
            (
                GOOD.replace("{domain}_{origin}", "{domain}-{origin}"),
                "database_name",
            ),
            (
                GOOD.replace("{domain}_{origin}", "{origin}"),
                "database_name",
            ),
            (
                GOOD.replace("{domain}_{origin}", "{domain}_{producer}"),
                "database_name",
            ),
            (
                GOOD.replace("\"111122223333\"", "\"1111\""),
                "producer[0].account_id",
            ),
            (
                GOOD.replace("AROAEXAMPLEAGENTROLE", "AROAEXAMPLE:session"),
                "producer[0].sender_ids[0]",
            ),
            (
                GOOD.replace("sender_ids = [\"AROAEXAMPLEAGENTROLE\"]", "sender_ids = []"),
                "producer[0].sender_ids",
            ),
            (
                GOOD.replace("origin = \"chu\"", "origin = \"CHU\""),
                "producer[0].origin",
            ),
            (
                GOOD.replace("chu-lyon-datamesh", "Bad_Bucket"),
                "producer[0].bucket",
            ),
            (
                GOOD.replace("prefix = \"products\"", "prefix = \"a//b\""),
                "producer[0].prefix",
            ),
            (
                GOOD.replace("[\"hospital_activity\"]", "[\"Hospital\"]"),
                "producer[0].domains[0]",
            ),
            (
                GOOD.replace("region = \"eu-west-3\"", "region = \"EU\""),
                "aws.region",
            ),
            (
                GOOD.replace(
                    "catalog_mode = \"crawler\"",
                    "catalog_mode = \"crawler\"\nstate_dir = \"state\"",
                ),
                "state_dir",
            ),
        ];
        for (text, key) in cases {
            assert_eq!(key_of(&text), key, "{text}");
        }
    }

    #[test]
    fn crawler_role_is_needed_in_crawler_mode_only() {
        let without = GOOD.replace(
            "crawler_role_arn = \"arn:aws:iam::999988887777:role/lakemesh-crawler\"\n",
            "",
        );
        assert_eq!(key_of(&without), "crawler_role_arn");
        load(&without.replace("\"crawler\"", "\"direct\"")).unwrap();
    }

    #[test]
    fn producers_must_be_unique_and_not_overlap() {
        let second = |id: &str, prefix: &str| {
            format!(
                "{GOOD}\n[[producer]]\nid = \"{id}\"\naccount_id = \"444455556666\"\nsender_ids = [\"AIDAEXAMPLEUSER00001\"]\norigin = \"ars\"\nbucket = \"chu-lyon-datamesh\"\nprefix = \"{prefix}\"\ndomains = [\"claims\"]\n"
            )
        };
        assert_eq!(key_of(&second("chu-lyon", "other")), "producer[1].id");
        assert_eq!(key_of(&second("ars", "products/sub")), "producer[1].prefix");
        assert_eq!(key_of(&second("ars", "")), "producer[1].prefix");
        let s = load(&second("ars", "products-2")).unwrap();
        assert_eq!(s.producers.len(), 2);
    }

    #[test]
    fn naming_rule() {
        let r = DatabaseNameRule::parse("{domain}_{origin}").unwrap();
        assert_eq!(r.render("claims", "cpam").unwrap(), "claims_cpam");
        let r = DatabaseNameRule::parse("lm_{domain}").unwrap();
        assert_eq!(r.render("claims", "cpam").unwrap(), "lm_claims");
        assert!(DatabaseNameRule::parse("{domain").is_err());
        assert!(DatabaseNameRule::parse("{Domain}").is_err());
        assert!(DatabaseNameRule::parse("x.{domain}").is_err());
        let r = DatabaseNameRule::parse("{origin}{domain}").unwrap();
        assert!(r.render("claims", "9x").unwrap_err().contains("start"));
    }

    #[test]
    fn sender_ids_compare_the_part_before_the_session() {
        let s = load(GOOD).unwrap();
        let p = &s.producers["chu-lyon"];
        assert!(p.accepts_sender("AROAEXAMPLEAGENTROLE"));
        assert!(p.accepts_sender("AROAEXAMPLEAGENTROLE:i-0123456789abcdef0"));
        assert!(!p.accepts_sender("AROAEXAMPLEAGENTROLX:i-0123"));
        assert!(!p.accepts_sender("aroaexampleagentrole"));
        assert!(!p.accepts_sender(""));
        assert!(!p.accepts_sender(":AROAEXAMPLEAGENTROLE"));
        assert!(!p.accepts_sender("AIDAIT2UOQQY3AUEKVGXU"));
    }

    /// The packaged default (`packaging/config/syncd.toml`, a conffile) refuses to start until
    /// its placeholders are replaced, naming the first key to edit; once they are, it loads.
    #[test]
    fn the_packaged_default_refuses_to_start_until_edited() {
        const PACKAGED: &str = include_str!("../../packaging/config/syncd.toml");
        assert_eq!(key_of(PACKAGED), "queue_url");
        let edited = PACKAGED.replace("CHANGE-ME", "999988887777");
        let s = load(&edited).unwrap();
        assert_eq!(s.state_dir, Path::new(DEFAULT_STATE_DIR));
        assert_eq!(s.policy_file, Path::new("/etc/lakemesh/policy.toml"));
        assert!(s.producers.is_empty());
        // one placeholder left is still refused, by its key
        let partly = PACKAGED.replacen("CHANGE-ME", "999988887777", 1);
        assert_eq!(key_of(&partly), "crawler_role_arn");
    }
}
