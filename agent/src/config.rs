//! The agent's configuration file (`/etc/lakemesh/agent.toml`): producer identity, bucket,
//! queue, state folders and the product contracts.
//!
//! Owns parsing and validation into [`AgentConfig`] (with the service's [`ServiceSettings`]);
//! every error names the key. The field doc comments of the raw shape are the configuration
//! reference. It does not connect to AWS (reachability is checked by `check-config`, in
//! [`crate::check`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use lakemesh_shared::names;

use crate::contract::{Contract, ContractError, RawContract};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {path}: {message}")]
    Toml { path: PathBuf, message: String },
    #[error("config {path}: key `{key}`: {reason}")]
    Invalid {
        path: PathBuf,
        key: String,
        reason: String,
    },
    #[error("config {path}: {source}")]
    Product {
        path: PathBuf,
        source: ContractError,
    },
    #[error("config {path}: no product named {name:?} (known: {known})")]
    UnknownProduct {
        path: PathBuf,
        name: String,
        known: String,
    },
}

/// `[aws]`: the same section as in the daemon's config; keys, defaults and validation live in
/// `lakemesh_shared::aws`.
pub use lakemesh_shared::aws::AwsSettings;

/// `/etc/lakemesh/agent.toml` as written. The field doc comments are the configuration
/// reference (README "Agent configuration").
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAgentConfig {
    /// Registered producer id (`a-z 0-9 - _`), e.g. `"chu-lyon"`.
    producer_id: String,
    /// The producer's own bucket.
    bucket: String,
    /// Every key lives under `s3://{bucket}/{prefix}/`. Default `"products"`.
    #[serde(default = "default_prefix")]
    prefix: String,
    /// SQS queue of the governance account receiving announcements.
    queue_url: String,
    /// Key of `pii = "hmac"` columns (0600, at least 32 bytes); never logged.
    pseudonym_key_file: Option<PathBuf>,
    /// Ledger (`ledger.sqlite`), `spool/`, and per product `inbox/P`, `work/P`, `archive/P`,
    /// `failed/P`. Default `/var/lib/lakemesh`.
    #[serde(default = "default_state_dir")]
    state_dir: PathBuf,
    /// Where converted batches wait for upload (one folder per claimed file). Default
    /// `{state_dir}/spool`.
    spool_dir: Option<PathBuf>,
    /// Seconds a dropped file's size and modification time must stay unchanged before it is
    /// claimed (when `require_marker` is false), 0 to 86400. Default 30.
    #[serde(default = "default_settle_secs")]
    settle_secs: u64,
    /// Claim a file only once its marker `NAME.done` or `NAME.ok` exists beside it (the export
    /// job writes the marker after the file). Default false: wait `settle_secs` instead.
    #[serde(default)]
    require_marker: bool,
    /// Seconds between full scans of every inbox, 1 to 3600, on top of file-system events
    /// (network shares deliver none). Default 60.
    #[serde(default = "default_rescan_secs")]
    rescan_secs: u64,
    /// Days a delivered source file is kept under `archive/P/YYYY-MM-DD/`, 0 to 3650; 0 deletes it
    /// as soon as its batch is announced. Default 30.
    #[serde(default = "default_archive_retention_days")]
    archive_retention_days: u64,
    /// Objects uploaded at the same time, 1 to 64. Default 4.
    #[serde(default = "default_upload_concurrency")]
    upload_concurrency: usize,
    /// Objects larger than this are sent as multipart uploads, 5 MiB to 5 GiB. Default 16 MiB.
    #[serde(default = "default_multipart_threshold_bytes")]
    multipart_threshold_bytes: u64,
    /// Size of one multipart part, 5 MiB to 5 GiB. Default 16 MiB.
    #[serde(default = "default_multipart_part_bytes")]
    multipart_part_bytes: u64,
    /// Attempts per multipart part before the upload is aborted, 1 to 20. Default 5.
    #[serde(default = "default_part_attempts")]
    part_attempts: u32,
    /// First wait after a failed delivery step (S3 or SQS unreachable, throttling), 1 to 3600
    /// seconds; doubled after each further failure up to `retry_max_secs`. Default 2.
    #[serde(default = "default_retry_initial_secs")]
    retry_initial_secs: u64,
    /// Longest wait between two attempts of a delivery step, `retry_initial_secs` to 86400
    /// seconds. Default 300.
    #[serde(default = "default_retry_max_secs")]
    retry_max_secs: u64,
    /// Threads one conversion may use (0: one per core). Default 1.
    #[serde(default = "default_convert_threads")]
    convert_threads: usize,
    /// Memory for buffered values of one conversion, 8 to 65536 MiB. Default 64.
    #[serde(default = "default_convert_memory_mib")]
    convert_memory_mib: usize,
    /// Seconds `run` waits for the current step to finish after SIGTERM before it exits
    /// anyway, 1 to 3600 (the ledger makes the next start resume). Default 30.
    #[serde(default = "default_shutdown_grace_secs")]
    shutdown_grace_secs: u64,
    #[serde(default)]
    aws: AwsSettings,
    #[serde(default)]
    product: Vec<RawContract>,
}

fn default_prefix() -> String {
    "products".into()
}

fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/lakemesh")
}

fn default_settle_secs() -> u64 {
    30
}

fn default_rescan_secs() -> u64 {
    60
}

fn default_archive_retention_days() -> u64 {
    30
}

fn default_upload_concurrency() -> usize {
    4
}

const MIB: u64 = 1024 * 1024;
/// S3's smallest multipart part (all but the last).
pub const MIN_PART_BYTES: u64 = 5 * MIB;
/// S3's largest single PUT and largest part.
pub const MAX_PART_BYTES: u64 = 5 * 1024 * MIB;

fn default_multipart_threshold_bytes() -> u64 {
    16 * MIB
}

fn default_multipart_part_bytes() -> u64 {
    16 * MIB
}

fn default_part_attempts() -> u32 {
    5
}

fn default_retry_initial_secs() -> u64 {
    2
}

fn default_retry_max_secs() -> u64 {
    300
}

fn default_convert_threads() -> usize {
    1
}

fn default_convert_memory_mib() -> usize {
    64
}

fn default_shutdown_grace_secs() -> u64 {
    30
}

/// How the service behaves: folder protocol, upload and retry settings (validated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSettings {
    /// `settle_secs`.
    pub settle: Duration,
    /// `require_marker`.
    pub require_marker: bool,
    /// `rescan_secs`.
    pub rescan: Duration,
    /// `archive_retention_days`.
    pub archive_retention_days: u64,
    /// `upload_concurrency`.
    pub upload_concurrency: usize,
    /// `multipart_threshold_bytes`.
    pub multipart_threshold_bytes: u64,
    /// `multipart_part_bytes`.
    pub multipart_part_bytes: u64,
    /// `part_attempts`.
    pub part_attempts: u32,
    /// `retry_initial_secs`.
    pub retry_initial: Duration,
    /// `retry_max_secs`.
    pub retry_max: Duration,
    /// `convert_threads` (0 resolved to the number of cores).
    pub convert_threads: usize,
    /// `convert_memory_mib`, in bytes.
    pub convert_memory_bytes: usize,
    /// `shutdown_grace_secs`.
    pub shutdown_grace: Duration,
}

impl Default for ServiceSettings {
    fn default() -> Self {
        Self {
            settle: Duration::from_secs(default_settle_secs()),
            require_marker: false,
            rescan: Duration::from_secs(default_rescan_secs()),
            archive_retention_days: default_archive_retention_days(),
            upload_concurrency: default_upload_concurrency(),
            multipart_threshold_bytes: default_multipart_threshold_bytes(),
            multipart_part_bytes: default_multipart_part_bytes(),
            part_attempts: default_part_attempts(),
            retry_initial: Duration::from_secs(default_retry_initial_secs()),
            retry_max: Duration::from_secs(default_retry_max_secs()),
            convert_threads: 1,
            convert_memory_bytes: default_convert_memory_mib() * MIB as usize,
            shutdown_grace: Duration::from_secs(default_shutdown_grace_secs()),
        }
    }
}

/// A validated agent configuration.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub path: PathBuf,
    /// Registered producer id, e.g. "chu-lyon".
    pub producer_id: String,
    /// The producer's own bucket.
    pub bucket: String,
    /// Every key lives under `s3://bucket/prefix/`.
    pub prefix: String,
    /// SQS queue of the governance account receiving announcements.
    pub queue_url: String,
    /// Key of `pii = "hmac"` columns (0600).
    pub pseudonym_key_file: Option<PathBuf>,
    /// ledger.sqlite, spool/, inbox/P, work/P, archive/P, failed/P.
    pub state_dir: PathBuf,
    /// Converted batches waiting for upload.
    pub spool_dir: PathBuf,
    /// Folder protocol, upload and retry settings.
    pub service: ServiceSettings,
    pub aws: AwsSettings,
    pub products: Vec<Contract>,
}

impl AgentConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        let raw: RawAgentConfig = toml::from_str(&text).map_err(|e| ConfigError::Toml {
            path: path.into(),
            message: e.to_string().trim_end().to_string(),
        })?;
        let bad = |key: &str, reason: String| ConfigError::Invalid {
            path: path.into(),
            key: key.into(),
            reason,
        };
        names::check_producer_id(&raw.producer_id).map_err(|e| bad("producer_id", e))?;
        names::check_bucket_name(&raw.bucket).map_err(|e| bad("bucket", e))?;
        let prefix = raw.prefix.trim_matches('/').to_string();
        names::check_key_prefix(&prefix).map_err(|e| bad("prefix", e))?;
        if !(raw.queue_url.starts_with("https://") || raw.queue_url.starts_with("http://")) {
            return Err(bad(
                "queue_url",
                format!("{:?} is not an SQS queue URL", raw.queue_url),
            ));
        }
        raw.aws.validate().map_err(|e| bad(e.key, e.reason))?;
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
        range("settle_secs", raw.settle_secs, 0, 86_400, " seconds")?;
        range("rescan_secs", raw.rescan_secs, 1, 3600, " seconds")?;
        range(
            "archive_retention_days",
            raw.archive_retention_days,
            0,
            3650,
            " days",
        )?;
        range(
            "upload_concurrency",
            raw.upload_concurrency as u64,
            1,
            64,
            "",
        )?;
        range(
            "multipart_threshold_bytes",
            raw.multipart_threshold_bytes,
            MIN_PART_BYTES,
            MAX_PART_BYTES,
            " bytes",
        )?;
        range(
            "multipart_part_bytes",
            raw.multipart_part_bytes,
            MIN_PART_BYTES,
            MAX_PART_BYTES,
            " bytes",
        )?;
        range("part_attempts", u64::from(raw.part_attempts), 1, 20, "")?;
        range(
            "retry_initial_secs",
            raw.retry_initial_secs,
            1,
            3600,
            " seconds",
        )?;
        range(
            "retry_max_secs",
            raw.retry_max_secs,
            raw.retry_initial_secs,
            86_400,
            " seconds (at least retry_initial_secs)",
        )?;
        range("convert_threads", raw.convert_threads as u64, 0, 256, "")?;
        range(
            "convert_memory_mib",
            raw.convert_memory_mib as u64,
            8,
            65_536,
            " MiB",
        )?;
        range(
            "shutdown_grace_secs",
            raw.shutdown_grace_secs,
            1,
            3600,
            " seconds",
        )?;
        if raw.state_dir.as_os_str().is_empty() || !raw.state_dir.is_absolute() {
            return Err(bad(
                "state_dir",
                format!("{:?} must be an absolute path", raw.state_dir),
            ));
        }
        if let Some(s) = &raw.spool_dir
            && !s.is_absolute()
        {
            return Err(bad("spool_dir", format!("{s:?} must be an absolute path")));
        }
        let service = ServiceSettings {
            settle: Duration::from_secs(raw.settle_secs),
            require_marker: raw.require_marker,
            rescan: Duration::from_secs(raw.rescan_secs),
            archive_retention_days: raw.archive_retention_days,
            upload_concurrency: raw.upload_concurrency,
            multipart_threshold_bytes: raw.multipart_threshold_bytes,
            multipart_part_bytes: raw.multipart_part_bytes,
            part_attempts: raw.part_attempts,
            retry_initial: Duration::from_secs(raw.retry_initial_secs),
            retry_max: Duration::from_secs(raw.retry_max_secs),
            convert_threads: match raw.convert_threads {
                0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
                n => n,
            },
            convert_memory_bytes: raw.convert_memory_mib * MIB as usize,
            shutdown_grace: Duration::from_secs(raw.shutdown_grace_secs),
        };
        let mut products = Vec::with_capacity(raw.product.len());
        for (i, p) in raw.product.into_iter().enumerate() {
            let c = Contract::try_from(p).map_err(|source| ConfigError::Product {
                path: path.into(),
                source,
            })?;
            if let Some(inbox) = &c.inbox
                && !inbox.is_absolute()
            {
                return Err(bad(
                    &format!("product[{i}].inbox"),
                    format!("{inbox:?} must be an absolute path"),
                ));
            }
            if products.iter().any(|q: &Contract| q.name == c.name) {
                return Err(bad(
                    &format!("product[{i}].name"),
                    format!("product {:?} is declared twice", c.name),
                ));
            }
            products.push(c);
        }
        if products.is_empty() {
            return Err(bad(
                "product",
                "no [[product]]: the agent would have nothing to deliver".into(),
            ));
        }
        let spool_dir = raw
            .spool_dir
            .clone()
            .unwrap_or_else(|| raw.state_dir.join("spool"));
        check_inboxes(&products, &raw.state_dir, &spool_dir)
            .map_err(|(key, why)| bad(&key, why))?;
        if products.iter().any(Contract::needs_pseudonym_key) && raw.pseudonym_key_file.is_none() {
            return Err(bad(
                "pseudonym_key_file",
                "a product pseudonymises a column (pii = \"hmac\"): set the key file".into(),
            ));
        }
        Ok(Self {
            path: path.into(),
            producer_id: raw.producer_id,
            bucket: raw.bucket,
            prefix,
            queue_url: raw.queue_url,
            pseudonym_key_file: raw.pseudonym_key_file,
            spool_dir,
            state_dir: raw.state_dir,
            service,
            aws: raw.aws,
            products,
        })
    }

    /// What the service needs beyond a valid file, checked when it starts, on each reload and
    /// by `check-config`: the pseudonym key loads (present, 0600, long enough) when a product
    /// pseudonymises. Not part of [`AgentConfig::load`], so that `status` and `retry` work for
    /// an operator who may not read the key.
    pub fn check_key(&self) -> Result<(), ConfigError> {
        if let Some(k) = &self.pseudonym_key_file
            && self.products.iter().any(Contract::needs_pseudonym_key)
        {
            crate::pii::PseudonymKey::load(k).map_err(|e| ConfigError::Invalid {
                path: self.path.clone(),
                key: "pseudonym_key_file".into(),
                reason: e.to_string(),
            })?;
        }
        Ok(())
    }

    pub fn product(&self, name: &str) -> Result<&Contract, ConfigError> {
        self.products
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| ConfigError::UnknownProduct {
                path: self.path.clone(),
                name: name.into(),
                known: self
                    .products
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

/// Every product's drop folder is its own: not shared with another product, not inside
/// another's, and apart from the agent's own folders (a drop folder inside `failed/` would
/// take refused files and their reports for new exports).
fn check_inboxes(
    products: &[Contract],
    state_dir: &Path,
    spool_dir: &Path,
) -> Result<(), (String, String)> {
    let inboxes: Vec<(usize, PathBuf)> = products
        .iter()
        .enumerate()
        .map(|(i, p)| {
            (
                i,
                p.inbox
                    .clone()
                    .unwrap_or_else(|| state_dir.join("inbox").join(&p.name)),
            )
        })
        .collect();
    let own = [
        state_dir.join("work"),
        state_dir.join("archive"),
        state_dir.join("failed"),
        spool_dir.to_path_buf(),
    ];
    for (i, inbox) in &inboxes {
        let key = format!("product[{i}].inbox");
        for dir in &own {
            if inbox.starts_with(dir) || dir.starts_with(inbox) {
                return Err((
                    key,
                    format!(
                        "{} overlaps the agent's own folder {}: give the product a drop folder of its own",
                        inbox.display(),
                        dir.display()
                    ),
                ));
            }
        }
        for (j, other) in &inboxes {
            if j != i && (inbox.starts_with(other) || other.starts_with(inbox)) {
                return Err((
                    key,
                    format!(
                        "{} is also (or contains, or is inside) the drop folder of product {:?}: each product needs its own",
                        inbox.display(),
                        products[*j].name
                    ),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: &str = r#"
producer_id = "chu-lyon"
bucket = "chu-lyon-datamesh"
queue_url = "https://sqs.eu-west-3.amazonaws.com/111122223333/lakemesh-announcements"
pseudonym_key_file = "/etc/lakemesh/pseudonym.key"
state_dir = "/var/lib/lakemesh"

[aws]
region = "eu-west-3"
endpoint_url = "http://127.0.0.1:5055"
force_path_style = true

[[product]]
name = "hospital_stays"
domain = "hospital_activity"
csv = { delimiter = ";", encoding = "windows-1252", header = true, decimal = ",", null_values = ["", "NA"] }
partition_by = [ { column = "admission_date", transform = "year" } ]
columns = [
  { name = "patient_id", type = "string", pii = "hmac" },
  { name = "admission_date", type = "date", formats = ["%d/%m/%Y"] },
]
"#;

    fn load(text: &str) -> Result<AgentConfig, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("agent.toml");
        std::fs::write(&p, text).unwrap();
        AgentConfig::load(&p)
    }

    fn second_product(inbox: Option<&str>) -> String {
        let inbox = inbox
            .map(|i| format!("inbox = {i:?}\n"))
            .unwrap_or_default();
        format!(
            r#"
[[product]]
name = "other_stays"
domain = "hospital_activity"
{inbox}columns = [ {{ name = "id", type = "bigint" }} ]
"#
        )
    }

    #[test]
    fn every_product_has_a_drop_folder_of_its_own() {
        let err = |text: &str| load(text).unwrap_err().to_string();
        // Two products in one folder: every file would go to the first.
        let cfg = CFG.replace(
            "[[product]]\nname = \"hospital_stays\"",
            "[[product]]\nname = \"hospital_stays\"\ninbox = \"/srv/drop\"",
        );
        let e = err(&format!("{cfg}{}", second_product(Some("/srv/drop"))));
        assert!(
            e.contains("product[0].inbox") && e.contains("other_stays"),
            "{e}"
        );
        let e = err(&format!("{cfg}{}", second_product(Some("/srv/drop/sub"))));
        assert!(e.contains("other_stays"), "{e}");
        // A drop folder inside failed/: refused files and reports would be claimed again.
        let e = err(&format!(
            "{CFG}{}",
            second_product(Some("/var/lib/lakemesh/failed/hospital_stays"))
        ));
        assert!(
            e.contains("product[1].inbox") && e.contains("failed"),
            "{e}"
        );
        let e = err(&format!(
            "{CFG}{}",
            second_product(Some("/var/lib/lakemesh"))
        ));
        assert!(
            e.contains("inbox"),
            "the whole state folder as a drop folder: {e}"
        );
        load(&format!("{CFG}{}", second_product(Some("/srv/other")))).unwrap();
        load(&format!("{CFG}{}", second_product(None))).unwrap();
    }

    #[test]
    fn a_configuration_without_products_is_refused() {
        let text = &CFG[..CFG.find("[[product]]").unwrap()];
        let e = load(text).unwrap_err().to_string();
        assert!(e.contains("key `product`") || e.contains("product"), "{e}");
        assert!(e.contains("nothing to deliver"), "{e}");
    }

    #[test]
    fn the_pseudonym_key_is_checked_apart_from_the_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k.key");
        let with_key = |mode: u32, bytes: &[u8]| {
            std::fs::write(&key, bytes).unwrap();
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).unwrap();
            let cfg = load(&CFG.replace("/etc/lakemesh/pseudonym.key", &key.display().to_string()))
                .expect("the file itself is valid");
            cfg.check_key().map_err(|e| e.to_string())
        };
        with_key(0o600, &[7u8; 32]).unwrap();
        let e = with_key(0o644, &[7u8; 32]).unwrap_err();
        assert!(
            e.contains("pseudonym_key_file") && e.contains("group or others"),
            "{e}"
        );
        let e = with_key(0o600, b"short").unwrap_err();
        assert!(e.contains("pseudonym_key_file"), "{e}");
        std::fs::remove_file(&key).unwrap();
        let cfg =
            load(&CFG.replace("/etc/lakemesh/pseudonym.key", &key.display().to_string())).unwrap();
        assert!(cfg.check_key().is_err(), "a missing key file");
    }

    #[test]
    fn design_example_loads() {
        let c = load(CFG).unwrap();
        assert_eq!(c.prefix, "products");
        assert!(c.aws.force_path_style);
        assert_eq!(c.product("hospital_stays").unwrap().partition_by.len(), 1);
        let e = c.product("nope").unwrap_err().to_string();
        assert!(e.contains("hospital_stays"), "{e}");
    }

    #[test]
    fn errors_name_keys() {
        let e = load(&CFG.replace("chu-lyon-datamesh", "Bad_Bucket"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`bucket`"), "{e}");
        let e = load(&CFG.replace("pseudonym_key_file = \"/etc/lakemesh/pseudonym.key\"\n", ""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("pseudonym_key_file"), "{e}");
        let e = load(&CFG.replace("type = \"date\"", "type = \"dat\""))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("hospital_stays") && e.contains("columns[1].type"),
            "{e}"
        );
        let e = load(&format!("{CFG}\nfoo = 1\n")).unwrap_err().to_string();
        assert!(e.contains("foo"), "{e}");
        let e = load(&CFG.replace("chu-lyon\"", "CHU Lyon\""))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`producer_id`") && e.contains("a-z 0-9 - _"),
            "{e}"
        );
        let e = load(&CFG.replace("state_dir", "prefix = \"a//b\"\nstate_dir"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`prefix`"), "{e}");
    }

    #[test]
    fn service_defaults() {
        let c = load(CFG).unwrap();
        assert_eq!(c.service, ServiceSettings::default());
        assert_eq!(c.service.settle, Duration::from_secs(30));
        assert!(!c.service.require_marker);
        assert_eq!(c.spool_dir, PathBuf::from("/var/lib/lakemesh/spool"));
    }

    #[test]
    fn service_keys_are_checked_and_named() {
        let with = |extra: &str| load(&CFG.replace("[aws]", &format!("{extra}\n[aws]")));
        let c = with("settle_secs = 1\nrequire_marker = true\nupload_concurrency = 2").unwrap();
        assert_eq!(c.service.settle, Duration::from_secs(1));
        assert!(c.service.require_marker);
        assert_eq!(c.service.upload_concurrency, 2);
        for (line, key) in [
            ("upload_concurrency = 0", "`upload_concurrency`"),
            ("multipart_part_bytes = 1024", "`multipart_part_bytes`"),
            ("rescan_secs = 0", "`rescan_secs`"),
            (
                "retry_initial_secs = 10\nretry_max_secs = 5",
                "`retry_max_secs`",
            ),
            ("spool_dir = \"spool\"", "`spool_dir`"),
            ("settle_sec = 3", "settle_sec"),
        ] {
            let e = with(line).unwrap_err().to_string();
            assert!(e.contains(key), "{line}: {e}");
        }
        let e = load(&CFG.replace(
            "name = \"hospital_stays\"",
            "name = \"hospital_stays\"\ninbox = \"rel/inbox\"",
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("`product[0].inbox`"), "{e}");
    }

    #[test]
    fn aws_section_is_validated_by_the_shared_rules() {
        let e = load(&CFG.replace("http://127.0.0.1:5055", "127.0.0.1:5055"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("key `aws.endpoint_url`") && e.contains("must start with http"),
            "{e}"
        );
        let e = load(&CFG.replace("force_path_style = true", "max_attempts = 0"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("key `aws.max_attempts`"), "{e}");
        let e = load(&CFG.replace("force_path_style", "force_path_styl"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("force_path_styl"), "{e}");
        let c = load(CFG).unwrap();
        assert_eq!(
            c.aws.max_attempts,
            lakemesh_shared::aws::DEFAULT_MAX_ATTEMPTS
        );
        assert_eq!(c.aws.region.as_deref(), Some("eu-west-3"));
    }

    /// The packaged default (`packaging/config/agent.toml`, a conffile) refuses to start until
    /// its placeholders are replaced, naming the key to edit; once they are, it loads.
    #[test]
    fn the_packaged_default_refuses_to_start_until_edited() {
        const PACKAGED: &str = include_str!("../../packaging/config/agent.toml");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        std::fs::write(&path, PACKAGED).unwrap();
        match AgentConfig::load(&path) {
            Err(ConfigError::Invalid { key, .. }) => assert_eq!(key, "producer_id"),
            other => panic!("{other:?}"),
        }
        let edited = format!(
            "{}\n[[product]]\nname = \"stays\"\ndomain = \"hospital_activity\"\ncolumns = [ {{ name = \"stay_id\", type = \"bigint\" }} ]\n",
            PACKAGED.replace("CHANGE-ME", "chu-lyon")
        );
        std::fs::write(&path, edited).unwrap();
        let cfg = AgentConfig::load(&path).unwrap();
        assert_eq!(cfg.producer_id, "chu-lyon");
        assert_eq!(cfg.products.len(), 1);
    }
}
