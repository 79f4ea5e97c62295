//! The agent's configuration file (`/etc/lakemesh/agent.toml`): producer identity, bucket,
//! queue, state folders and the product contracts.
//!
//! Owns parsing and validation into [`AgentConfig`]; every error names the key. It does not
//! connect to AWS (reachability is checked by `check-config`).

use std::path::{Path, PathBuf};

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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAgentConfig {
    producer_id: String,
    bucket: String,
    #[serde(default = "default_prefix")]
    prefix: String,
    queue_url: String,
    pseudonym_key_file: Option<PathBuf>,
    #[serde(default = "default_state_dir")]
    state_dir: PathBuf,
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
        let mut products = Vec::with_capacity(raw.product.len());
        for (i, p) in raw.product.into_iter().enumerate() {
            let c = Contract::try_from(p).map_err(|source| ConfigError::Product {
                path: path.into(),
                source,
            })?;
            if products.iter().any(|q: &Contract| q.name == c.name) {
                return Err(bad(
                    &format!("product[{i}].name"),
                    format!("product {:?} is declared twice", c.name),
                ));
            }
            products.push(c);
        }
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
            state_dir: raw.state_dir,
            aws: raw.aws,
            products,
        })
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
}
