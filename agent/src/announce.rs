//! Announcements: the v1 message for a delivered batch, built from the converter's local
//! manifest and sent once every object is in the bucket.
//!
//! Owns: reading the converter's manifest (`OUT/_lakemesh/manifests/{product}/{batch}.json`,
//! keys relative to the output root, partition values as pairs) into a real
//! [`Announcement`] (full keys under `{prefix}/`, the product's `s3://` location, the producer
//! id, the file name as dropped) and validating it with the shared rules; sending it
//! ([`send`]): inline, or above 200 KiB the claim check (the manifest object first, then the
//! pointer message), with the shared module's message attributes.
//!
//! Does not decide when to announce (the delivery loop calls [`send`] after the ledger shows
//! every object uploaded) nor retry.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use lakemesh_shared::announcement::{
    self, Announcement, AnnouncementError, Column, Envelope, Object, Partition, ProductLocation,
    Source,
};
use serde::Deserialize;

use crate::s3::{S3, S3Error, sha256_b64};
use crate::sqs::{Sqs, SqsError};
use crate::upload::object_key;

/// Why an announcement could not be built or sent.
#[derive(Debug, thiserror::Error)]
pub enum AnnounceError {
    /// The converter's manifest cannot be read.
    #[error("{}: cannot read the batch manifest: {reason}", .path.display())]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The announcement breaks a v1 rule (a bug or a bad configuration, never transient).
    #[error(transparent)]
    Invalid(#[from] AnnouncementError),
    /// The claim-check manifest could not be stored.
    #[error("announcement {id}: storing the claim-check manifest: {source}")]
    Store {
        /// The announcement id.
        id: String,
        /// The S3 error.
        source: Box<S3Error>,
    },
    /// The message could not be sent.
    #[error("announcement {id}: {source}")]
    Send {
        /// The announcement id.
        id: String,
        /// The SQS error.
        source: Box<SqsError>,
    },
}

impl AnnounceError {
    /// Whether a later attempt may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Store { source, .. } => source.is_transient(),
            Self::Send { source, .. } => source.is_transient(),
            Self::Manifest { .. } | Self::Invalid(_) => false,
        }
    }
}

/// The converter's manifest, as `convert` writes it.
#[derive(Debug, Deserialize)]
struct LocalManifest {
    version: u32,
    batch_id: String,
    product: String,
    domain: String,
    partition_keys: Vec<String>,
    columns: Vec<LocalColumn>,
    objects: Vec<LocalObject>,
    rows: u64,
    source: LocalSource,
    produced_at: String,
    agent_version: String,
}

#[derive(Debug, Deserialize)]
struct LocalColumn {
    name: String,
    #[serde(rename = "type")]
    ty: String,
    pii: String,
    source_name: String,
}

#[derive(Debug, Deserialize)]
struct LocalObject {
    key: String,
    bytes: u64,
    rows: u64,
    sha256: String,
    partition: Vec<(String, String)>,
}

#[derive(Debug, Deserialize)]
struct LocalSource {
    bytes: u64,
    sha256: String,
}

/// Who announces and where the product lives.
#[derive(Debug, Clone)]
pub struct Origin<'a> {
    /// `producer_id`.
    pub producer_id: &'a str,
    /// `bucket`.
    pub bucket: &'a str,
    /// `prefix` (no leading or trailing `/`).
    pub prefix: &'a str,
}

/// Builds and validates the announcement of the batch whose converter manifest is at
/// `manifest_path`; `source_name` is the file's name as dropped.
pub fn build(
    origin: &Origin<'_>,
    manifest_path: &Path,
    source_name: &str,
) -> Result<Announcement, AnnounceError> {
    let bad = |reason: String| AnnounceError::Manifest {
        path: manifest_path.to_path_buf(),
        reason,
    };
    let bytes = std::fs::read(manifest_path).map_err(|e| bad(e.to_string()))?;
    let m: LocalManifest = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
    if m.version != 1 {
        return Err(bad(format!("manifest version {} is not 1", m.version)));
    }
    let location = ProductLocation {
        bucket: origin.bucket.to_owned(),
        prefix: origin.prefix.trim_matches('/').to_owned(),
        product: m.product.clone(),
    };
    let a = Announcement {
        version: announcement::VERSION,
        announcement_id: m.batch_id,
        producer_id: origin.producer_id.to_owned(),
        domain: m.domain,
        product: m.product,
        location: location.uri(),
        partition_keys: m.partition_keys,
        columns: m
            .columns
            .into_iter()
            .map(|c| Column {
                name: c.name,
                ty: c.ty,
                pii: c.pii,
                source_name: c.source_name,
            })
            .collect(),
        objects: Some(
            m.objects
                .into_iter()
                .map(|o| Object {
                    key: object_key(&location.prefix, &o.key),
                    bytes: o.bytes,
                    rows: o.rows,
                    sha256: o.sha256,
                    partition: Partition(o.partition),
                })
                .collect(),
        ),
        manifest: None,
        rows: m.rows,
        source: Source {
            file: source_name.to_owned(),
            bytes: m.source.bytes,
            sha256: m.source.sha256,
        },
        produced_at: m.produced_at,
        agent_version: m.agent_version,
    };
    a.validate()?;
    Ok(a)
}

/// How an announcement went out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// The SQS message id.
    pub message_id: String,
    /// The claim-check manifest key, when the body was too large to travel inline.
    pub manifest_key: Option<String>,
}

/// Sends `a` (validated again): inline, or the claim-check manifest to `s3` first and then the
/// pointer. `before_send` runs between the two (the crash tests' failpoint).
pub async fn send(
    s3: &S3,
    sqs: &Sqs,
    a: &Announcement,
    before_send: impl FnOnce(),
) -> Result<Sent, AnnounceError> {
    let envelope = a.envelope()?;
    let manifest_key = match &envelope {
        Envelope::Inline { .. } => None,
        Envelope::ClaimCheck {
            manifest_bucket,
            manifest_key,
            manifest,
            ..
        } => {
            if manifest_bucket != s3.bucket() {
                return Err(AnnounceError::Invalid(AnnouncementError::Invalid {
                    id: a.announcement_id.clone(),
                    field: "location".into(),
                    reason: format!(
                        "bucket {manifest_bucket:?} is not the agent's bucket {:?}",
                        s3.bucket()
                    ),
                }));
            }
            let sum = sha256_b64(manifest);
            s3.put_object(
                manifest_key,
                Bytes::from(manifest.clone()),
                &sum,
                "application/json",
            )
            .await
            .map_err(|source| AnnounceError::Store {
                id: a.announcement_id.clone(),
                source: Box::new(source),
            })?;
            Some(manifest_key.clone())
        }
    };
    before_send();
    let message_id = sqs
        .send_message(envelope.body(), &a.message_attributes())
        .await
        .map_err(|source| AnnounceError::Send {
            id: a.announcement_id.clone(),
            source: Box::new(source),
        })?;
    Ok(Sent {
        message_id,
        manifest_key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(dir: &Path) -> PathBuf {
        let sha = format!("0123456789abcdef{}", "1".repeat(48));
        let body = serde_json::json!({
            "version": 1, "batch_id": "0123456789abcdef", "product": "stays",
            "domain": "hospital_activity", "partition_keys": ["year", "dep"],
            "columns": [{"name": "id", "type": "bigint", "pii": "keep", "source_name": "ID"}],
            "objects": [{"key": "stays/year=2026/dep=2A%2F1/part-0123456789abcdef-0.parquet",
                         "bytes": 10, "rows": 2, "sha256": "a".repeat(64),
                         "partition": [["year", "2026"], ["dep", "2A%2F1"]]}],
            "rows": 2, "source": {"file": "x.csv", "bytes": 30, "sha256": sha},
            "produced_at": "2026-12-03T10:00:00Z", "agent_version": "0.1.0"
        });
        let p = dir.join("m.json");
        std::fs::write(&p, serde_json::to_vec(&body).unwrap()).unwrap();
        p
    }

    #[test]
    fn the_local_manifest_becomes_a_valid_announcement() {
        let d = tempfile::tempdir().unwrap();
        let origin = Origin {
            producer_id: "chu-lyon",
            bucket: "chu-lyon-datamesh",
            prefix: "products",
        };
        let a = build(&origin, &manifest(d.path()), "sejours 2026.csv").unwrap();
        assert_eq!(a.location, "s3://chu-lyon-datamesh/products/stays/");
        let o = &a.objects.as_ref().unwrap()[0];
        assert_eq!(
            o.key,
            "products/stays/year=2026/dep=2A%2F1/part-0123456789abcdef-0.parquet"
        );
        assert_eq!(o.partition.0[1], ("dep".into(), "2A%2F1".into()));
        assert_eq!(a.source.file, "sejours 2026.csv");
        assert_eq!(a.producer_id, "chu-lyon");
        let back = Announcement::from_json(a.to_json().as_bytes()).unwrap();
        assert_eq!(back, a);

        let root = Origin {
            prefix: "",
            ..origin
        };
        let a = build(&root, &manifest(d.path()), "x.csv").unwrap();
        assert_eq!(a.location, "s3://chu-lyon-datamesh/stays/");
    }

    #[test]
    fn a_bad_manifest_is_named() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("m.json");
        std::fs::write(&p, b"{}").unwrap();
        let origin = Origin {
            producer_id: "chu-lyon",
            bucket: "b-b-b",
            prefix: "products",
        };
        let e = build(&origin, &p, "x.csv").unwrap_err().to_string();
        assert!(e.contains("m.json") && e.contains("batch manifest"), "{e}");
    }
}
