//! Announcement v1: the message an agent sends (SQS body, JSON) when a batch of Parquet objects
//! of a data product is in its bucket, and the daemon reads.
//!
//! Owns:
//! - the wire types ([`Announcement`], [`Column`], [`Object`], [`Source`], [`Partition`]), exactly
//!   the JSON of DESIGN.md "Announcement v1" and of `shared/schema/announcement-v1.schema.json`;
//!   unknown fields are refused;
//! - versioning: [`Announcement::from_json`] reads the version first and refuses any but
//!   [`VERSION`] with an error that says so, before looking at the rest;
//! - validation ([`Announcement::validate`]): ids, Athena-safe names, the `location` shape, that
//!   every object key lies under it in the Hive layout of its partition values, SHA-256 hex,
//!   bounded sizes and counts, rows adding up, the claim-check pointer's key;
//! - the message attributes ([`Announcement::message_attributes`], checked by
//!   [`Announcement::check_message_attributes`]);
//! - the size rule ([`Announcement::envelope`]): a body over [`MAX_INLINE_BODY_BYTES`] travels as
//!   a manifest object at `{prefix}/_lakemesh/manifests/{product}/{batch_id}.json` and the
//!   message carries `manifest: "s3://…"` instead of `objects` (claim check), and the reverse
//!   ([`Announcement::from_manifest`]).
//!
//! Does not own: sending or receiving (the agent's `announce`, the daemon's intake), reading or
//! writing S3, or deciding whether a producer may announce that location (the daemon's producer
//! registry). Every error here is permanent: the same bytes never become valid on retry.

use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::names;

/// The announcement version this build writes and reads.
pub const VERSION: u32 = 1;
/// Largest body sent inline in an SQS message; above it the claim check applies (SQS's own limit
/// counts message attributes too, which this leaves room for).
pub const MAX_INLINE_BODY_BYTES: usize = 200 * 1024;
/// Largest manifest object the daemon reads.
pub const MAX_MANIFEST_BYTES: usize = 64 * 1024 * 1024;
/// Most objects one announcement lists.
pub const MAX_OBJECTS: usize = 100_000;
/// Most columns one product has.
pub const MAX_COLUMNS: usize = 1_000;
/// Most partition keys one product has.
pub const MAX_PARTITION_KEYS: usize = 32;
/// Largest S3 object (5 TiB).
pub const MAX_OBJECT_BYTES: u64 = 5 * 1024 * 1024 * 1024 * 1024;
/// Largest count or size in an announcement: 2^53 - 1, the largest integer every JSON reader
/// holds exactly.
pub const MAX_COUNT: u64 = (1 << 53) - 1;
/// Longest S3 key, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;
/// Longest `source_name` (a header as exported) or partition value, in bytes.
pub const MAX_TEXT_BYTES: usize = 1024;
/// Longest source file name, in bytes.
pub const MAX_FILE_NAME_BYTES: usize = 255;

/// SQS message attribute carrying the producer id (DataType `String`).
pub const ATTR_PRODUCER_ID: &str = "producer_id";
/// SQS message attribute carrying the announcement version (DataType `Number`).
pub const ATTR_ANNOUNCEMENT_VERSION: &str = "announcement_version";

/// One batch of a data product, as the agent announces it.
///
/// Exactly one of `objects` (inline) and `manifest` (claim check) is set in a valid
/// announcement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Announcement {
    /// Always [`VERSION`].
    pub version: u32,
    /// The batch id: the first 16 hex digits of the source file's SHA-256.
    pub announcement_id: String,
    /// The registered producer (`chu-lyon`).
    pub producer_id: String,
    /// The product's data type (`hospital_activity`); with the producer's origin it picks the
    /// Glue database.
    pub domain: String,
    /// The table name (`hospital_stays`).
    pub product: String,
    /// The product folder: `s3://{bucket}/{prefix}/{product}/` (`{prefix}/` absent when the
    /// producer writes at the bucket's root).
    pub location: String,
    /// Partition key names, outermost first (`["year", "month"]`).
    pub partition_keys: Vec<String>,
    /// The columns stored in the files, in file order (partition keys are not among them).
    pub columns: Vec<Column>,
    /// The objects written (inline form).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub objects: Option<Vec<Object>>,
    /// `s3://{bucket}/{prefix}/_lakemesh/manifests/{product}/{announcement_id}.json`: where the
    /// inline form of this announcement is stored (claim-check form).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub manifest: Option<String>,
    /// Rows in all objects together.
    pub rows: u64,
    /// The source file the batch was converted from.
    pub source: Source,
    /// When the batch was converted, UTC: `2026-12-03T10:00:00Z` (fractional seconds allowed).
    pub produced_at: String,
    /// The agent's version (`0.1.0`).
    pub agent_version: String,
}

/// A column of the product's table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Column {
    /// Athena-safe column name.
    pub name: String,
    /// Athena type as written in the files: `string`, `int`, `bigint`, `double`,
    /// `decimal(p,s)`, `boolean`, `date` or `timestamp`.
    #[serde(rename = "type")]
    pub ty: String,
    /// How the values were protected: `keep`, `hmac`, `year` or `truncate:N` (a dropped column
    /// is not in the files, so not here).
    pub pii: String,
    /// The column's header as exported (or its name when the file had none).
    pub source_name: String,
}

/// One Parquet object of the batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Object {
    /// The full S3 key in the location's bucket:
    /// `{prefix}/{product}/{k1=v1}/…/part-{announcement_id}-{n}.parquet`.
    pub key: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Rows in the object.
    pub rows: u64,
    /// SHA-256 of the object's bytes, lowercase hex.
    pub sha256: String,
    /// The object's partition values by key, in `partition_keys` order.
    pub partition: Partition,
}

/// Partition values of one object, in key order: `{"year": "2026", "month": "11"}` in JSON.
///
/// Values are written as they appear in the key's folder names, i.e. Hive-escaped (`a%2Fb`),
/// and [`names::HIVE_DEFAULT_PARTITION`] for a null or empty value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Partition(pub Vec<(String, String)>);

/// The source file of the batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// The file's name as dropped (no folder).
    pub file: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// Its SHA-256, lowercase hex.
    pub sha256: String,
}

/// What to send for an announcement: the inline body, or a pointer body plus the manifest
/// object to store first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Envelope {
    /// The body fits: send it as is.
    Inline {
        /// The SQS message body.
        body: String,
    },
    /// The body is too large: store `manifest` at `s3://{manifest_bucket}/{manifest_key}`, then
    /// send `body`, which points at it.
    ClaimCheck {
        /// The SQS message body: the announcement with `manifest` instead of `objects`.
        body: String,
        /// The bucket of the manifest (the location's).
        manifest_bucket: String,
        /// `{prefix}/_lakemesh/manifests/{product}/{announcement_id}.json`.
        manifest_key: String,
        /// The manifest object's bytes: the inline announcement, JSON.
        manifest: Vec<u8>,
    },
}

impl Envelope {
    /// The SQS message body to send.
    pub fn body(&self) -> &str {
        match self {
            Self::Inline { body } | Self::ClaimCheck { body, .. } => body,
        }
    }
}

/// One SQS message attribute of an announcement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageAttribute {
    /// [`ATTR_PRODUCER_ID`] or [`ATTR_ANNOUNCEMENT_VERSION`].
    pub name: &'static str,
    /// SQS DataType: `String` or `Number`.
    pub data_type: &'static str,
    /// The attribute's string value.
    pub value: String,
}

/// Where a product's objects live: `s3://{bucket}/{prefix}/{product}/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductLocation {
    /// The producer's bucket.
    pub bucket: String,
    /// The key prefix without leading or trailing `/`; empty for the bucket's root.
    pub prefix: String,
    /// The product (table) name, the last folder of the location.
    pub product: String,
}

impl ProductLocation {
    /// Parses a `location` and checks that its last folder is `product`. The reason names what
    /// is wrong.
    pub fn parse(location: &str, product: &str) -> Result<Self, String> {
        let rest = location
            .strip_prefix("s3://")
            .ok_or_else(|| format!("{location:?} must start with s3://"))?;
        let (bucket, path) = rest
            .split_once('/')
            .ok_or_else(|| format!("{location:?} has no key after the bucket"))?;
        names::check_bucket_name(bucket)?;
        if path.is_empty() {
            return Err(format!(
                "{location:?} has no product folder after the bucket"
            ));
        }
        let folders = path
            .strip_suffix('/')
            .ok_or_else(|| format!("{location:?} must end with '/' (it is a folder)"))?;
        let (prefix, last) = match folders.rsplit_once('/') {
            Some(("", _)) => {
                return Err(format!("{location:?}: empty, . or .. path segment"));
            }
            Some((prefix, last)) => (prefix, last),
            None => ("", folders),
        };
        if last != product {
            return Err(format!(
                "{location:?} must end with the product folder {product:?}/"
            ));
        }
        names::check_key_prefix(prefix).map_err(|e| format!("{location:?}: {e}"))?;
        Ok(Self {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
            product: product.to_owned(),
        })
    }

    /// `{prefix}/` or the empty string.
    fn prefix_slash(&self) -> String {
        if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        }
    }

    /// The `location` string: `s3://{bucket}/{prefix}/{product}/`.
    pub fn uri(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.product_key_prefix())
    }

    /// The key prefix of the product folder: `{prefix}/{product}/`.
    pub fn product_key_prefix(&self) -> String {
        format!("{}{}/", self.prefix_slash(), self.product)
    }

    /// The key of a batch's manifest: `{prefix}/_lakemesh/manifests/{product}/{batch_id}.json`.
    pub fn manifest_key(&self, batch_id: &str) -> String {
        format!(
            "{}_lakemesh/manifests/{}/{batch_id}.json",
            self.prefix_slash(),
            self.product
        )
    }

    /// `s3://{bucket}/{manifest_key}`.
    pub fn manifest_uri(&self, batch_id: &str) -> String {
        format!("s3://{}/{}", self.bucket, self.manifest_key(batch_id))
    }
}

/// Why an announcement (or its manifest, or its message attributes) cannot be used. All are
/// permanent: the message is poison and belongs in the dead-letter queue, with this text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnnouncementError {
    /// The body is not JSON, or not of the v1 shape (unknown or missing field, wrong type).
    #[error("announcement {id}: not a version 1 announcement: {reason}")]
    Malformed {
        /// `announcement_id` when it could be read, else `?`.
        id: String,
        /// serde's message, with line and column.
        reason: String,
    },
    /// The version is not one this build reads.
    #[error(
        "announcement {id}: version {found} is not supported (this build reads version {VERSION})"
    )]
    UnsupportedVersion {
        /// `announcement_id` when it could be read, else `?`.
        id: String,
        /// The version as written (`2`, `"1"`, `null`, `missing`).
        found: String,
    },
    /// A field breaks a rule.
    #[error("announcement {id}: `{field}`: {reason}")]
    Invalid {
        /// `announcement_id` as written (possibly itself the invalid field).
        id: String,
        /// The field path: `objects[3].sha256`, `columns[0].name`.
        field: String,
        /// What is wrong, showing the value.
        reason: String,
    },
    /// Even the claim-check pointer is over [`MAX_INLINE_BODY_BYTES`] (too many or too long
    /// column descriptions).
    #[error(
        "announcement {id}: the claim-check pointer body is {bytes} bytes, over the \
         {MAX_INLINE_BODY_BYTES}-byte limit (columns take too much room)"
    )]
    PointerTooLarge {
        /// `announcement_id`.
        id: String,
        /// Size of the pointer body.
        bytes: usize,
    },
    /// The manifest a pointer names is unusable or does not match the pointer.
    #[error("announcement {id}: manifest {uri}: {reason}")]
    Manifest {
        /// `announcement_id` of the pointer.
        id: String,
        /// The pointer's `manifest`.
        uri: String,
        /// What is wrong.
        reason: String,
    },
    /// A message attribute is missing or disagrees with the body.
    #[error("announcement {id}: message attribute `{name}`: {reason}")]
    Attribute {
        /// `announcement_id`.
        id: String,
        /// The attribute's name.
        name: &'static str,
        /// What is wrong.
        reason: String,
    },
}

impl Announcement {
    /// Reads an announcement body: the version first (anything but [`VERSION`] is refused as
    /// [`AnnouncementError::UnsupportedVersion`]), then the v1 shape (unknown fields refused),
    /// then [`Announcement::validate`].
    pub fn from_json(body: &[u8]) -> Result<Self, AnnouncementError> {
        #[derive(Deserialize)]
        struct Probe {
            // `present`: an explicit `null` is Some(Null), reported as "null", not "missing".
            #[serde(default, deserialize_with = "present")]
            version: Option<serde_json::Value>,
            announcement_id: Option<serde_json::Value>,
        }
        let probe: Probe =
            serde_json::from_slice(body).map_err(|e| AnnouncementError::Malformed {
                id: "?".into(),
                reason: e.to_string(),
            })?;
        let id = match &probe.announcement_id {
            Some(serde_json::Value::String(s)) if s.len() <= 64 => s.clone(),
            _ => "?".into(),
        };
        match &probe.version {
            Some(v) if v.as_u64() == Some(u64::from(VERSION)) => {}
            other => {
                return Err(AnnouncementError::UnsupportedVersion {
                    id,
                    found: other
                        .as_ref()
                        .map_or_else(|| "missing".into(), |v| v.to_string()),
                });
            }
        }
        let a: Self = serde_json::from_slice(body).map_err(|e| AnnouncementError::Malformed {
            id,
            reason: e.to_string(),
        })?;
        a.validate()?;
        Ok(a)
    }

    /// The compact JSON body (no validation; see [`Announcement::envelope`]).
    pub fn to_json(&self) -> String {
        // Serialising these types cannot fail: every map key is a string and no value is a
        // non-finite float.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Checks every rule of v1. The first broken rule is returned, naming the field.
    pub fn validate(&self) -> Result<(), AnnouncementError> {
        let bad = |field: &str, reason: String| AnnouncementError::Invalid {
            id: self.announcement_id.clone(),
            field: field.to_owned(),
            reason,
        };
        if self.version != VERSION {
            return Err(AnnouncementError::UnsupportedVersion {
                id: self.announcement_id.clone(),
                found: self.version.to_string(),
            });
        }
        if !is_lower_hex(&self.announcement_id, 16) {
            return Err(bad(
                "announcement_id",
                format!(
                    "{:?} is not a batch id (16 lowercase hex digits)",
                    self.announcement_id
                ),
            ));
        }
        names::check_producer_id(&self.producer_id).map_err(|e| bad("producer_id", e))?;
        names::check_identifier(&self.domain).map_err(|e| bad("domain", e.to_string()))?;
        names::check_identifier(&self.product).map_err(|e| bad("product", e.to_string()))?;
        let location = ProductLocation::parse(&self.location, &self.product)
            .map_err(|e| bad("location", e))?;
        if self.location.len() > MAX_KEY_BYTES {
            return Err(bad("location", format!("over {MAX_KEY_BYTES} bytes")));
        }

        check_file_name(&self.source.file).map_err(|e| bad("source.file", e))?;
        if self.source.bytes == 0 || self.source.bytes > MAX_COUNT {
            return Err(bad(
                "source.bytes",
                format!("{} is not a size from 1 to {MAX_COUNT}", self.source.bytes),
            ));
        }
        if !is_lower_hex(&self.source.sha256, 64) {
            return Err(bad(
                "source.sha256",
                format!(
                    "{:?} is not a SHA-256 (64 lowercase hex digits)",
                    self.source.sha256
                ),
            ));
        }
        if !self.source.sha256.starts_with(&self.announcement_id) {
            return Err(bad(
                "announcement_id",
                format!(
                    "{:?} must be the first 16 hex digits of source.sha256 ({:?})",
                    self.announcement_id,
                    &self.source.sha256[..16]
                ),
            ));
        }
        if self.partition_keys.len() > MAX_PARTITION_KEYS {
            return Err(bad(
                "partition_keys",
                format!(
                    "{} keys; at most {MAX_PARTITION_KEYS} are allowed",
                    self.partition_keys.len()
                ),
            ));
        }
        for (i, k) in self.partition_keys.iter().enumerate() {
            let field = format!("partition_keys[{i}]");
            names::check_identifier(k).map_err(|e| bad(&field, e.to_string()))?;
            if self.partition_keys[..i].contains(k) {
                return Err(bad(&field, format!("{k:?} is listed twice")));
            }
        }

        if self.columns.is_empty() || self.columns.len() > MAX_COLUMNS {
            return Err(bad(
                "columns",
                format!("{} columns; use 1 to {MAX_COLUMNS}", self.columns.len()),
            ));
        }
        for (i, c) in self.columns.iter().enumerate() {
            let field = |f: &str| format!("columns[{i}].{f}");
            names::check_identifier(&c.name).map_err(|e| bad(&field("name"), e.to_string()))?;
            if self.columns[..i].iter().any(|d| d.name == c.name) {
                return Err(bad(&field("name"), format!("{:?} is listed twice", c.name)));
            }
            if self.partition_keys.contains(&c.name) {
                return Err(bad(
                    &field("name"),
                    format!(
                        "{:?} is also a partition key; partition keys live in folder names only",
                        c.name
                    ),
                ));
            }
            check_column_type(&c.ty).map_err(|e| bad(&field("type"), e))?;
            check_pii(&c.pii).map_err(|e| bad(&field("pii"), e))?;
            check_text(&c.source_name, MAX_TEXT_BYTES)
                .map_err(|e| bad(&field("source_name"), e))?;
        }

        match (&self.objects, &self.manifest) {
            (Some(_), Some(_)) => {
                return Err(bad(
                    "manifest",
                    "both `objects` and `manifest` are set; a claim-check pointer carries only `manifest`"
                        .into(),
                ));
            }
            (None, None) => {
                return Err(bad(
                    "objects",
                    "missing: an announcement lists its `objects` or points at a `manifest`".into(),
                ));
            }
            (Some(objects), None) => self.validate_objects(objects, &location)?,
            (None, Some(uri)) => {
                let want = location.manifest_uri(&self.announcement_id);
                if *uri != want {
                    return Err(bad(
                        "manifest",
                        format!(
                            "{uri:?} must be {want:?} (the batch's manifest in the product's bucket and prefix)"
                        ),
                    ));
                }
            }
        }
        if self.rows > MAX_COUNT {
            return Err(bad("rows", format!("{} is over {MAX_COUNT}", self.rows)));
        }

        check_timestamp(&self.produced_at).map_err(|e| bad("produced_at", e))?;
        let version_ok = (1..=64).contains(&self.agent_version.len())
            && self
                .agent_version
                .starts_with(|c: char| c.is_ascii_alphanumeric())
            && self
                .agent_version
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
        if !version_ok {
            return Err(bad(
                "agent_version",
                format!(
                    "{:?} is not a version (1-64 characters A-Z a-z 0-9 . + -)",
                    self.agent_version
                ),
            ));
        }
        Ok(())
    }

    fn validate_objects(
        &self,
        objects: &[Object],
        location: &ProductLocation,
    ) -> Result<(), AnnouncementError> {
        let bad = |field: String, reason: String| AnnouncementError::Invalid {
            id: self.announcement_id.clone(),
            field,
            reason,
        };
        if objects.len() > MAX_OBJECTS {
            return Err(bad(
                "objects".into(),
                format!(
                    "{} objects; at most {MAX_OBJECTS} are allowed",
                    objects.len()
                ),
            ));
        }
        let folder = location.product_key_prefix();
        let file_prefix = format!("part-{}-", self.announcement_id);
        let mut keys = std::collections::HashSet::with_capacity(objects.len());
        let mut rows: u64 = 0;
        for (i, o) in objects.iter().enumerate() {
            let field = |f: &str| format!("objects[{i}].{f}");
            let keys_in_order = o.partition.0.iter().map(|(k, _)| k);
            if !keys_in_order.eq(self.partition_keys.iter()) {
                return Err(bad(
                    field("partition"),
                    format!(
                        "keys {:?} must be partition_keys {:?}, in that order",
                        o.partition
                            .0
                            .iter()
                            .map(|(k, _)| k.as_str())
                            .collect::<Vec<_>>(),
                        self.partition_keys
                    ),
                ));
            }
            let mut want = folder.clone();
            for (k, v) in &o.partition.0 {
                let f = field(&format!("partition.{k}"));
                if v.len() > MAX_TEXT_BYTES {
                    return Err(bad(f, format!("over {MAX_TEXT_BYTES} bytes")));
                }
                names::check_escaped_partition_value(v).map_err(|e| bad(f, e))?;
                want.push_str(&format!("{k}={v}/"));
            }
            if o.key.len() > MAX_KEY_BYTES {
                return Err(bad(field("key"), format!("over {MAX_KEY_BYTES} bytes")));
            }
            let file = o.key.strip_prefix(&want).ok_or_else(|| {
                bad(
                    field("key"),
                    format!(
                        "{:?} must lie in the folder of its partition, {want:?} (under the location {:?})",
                        o.key, self.location
                    ),
                )
            })?;
            let seq = file
                .strip_prefix(&file_prefix)
                .and_then(|r| r.strip_suffix(".parquet"));
            if !seq.is_some_and(|n| {
                !n.is_empty() && n.len() <= 9 && n.bytes().all(|b| b.is_ascii_digit())
            }) {
                return Err(bad(
                    field("key"),
                    format!("{:?}: the file must be named {file_prefix}N.parquet", o.key),
                ));
            }
            if !keys.insert(o.key.as_str()) {
                return Err(bad(field("key"), format!("{:?} is listed twice", o.key)));
            }
            if o.bytes == 0 || o.bytes > MAX_OBJECT_BYTES {
                return Err(bad(
                    field("bytes"),
                    format!("{} is not a size from 1 to {MAX_OBJECT_BYTES}", o.bytes),
                ));
            }
            if o.rows > MAX_COUNT {
                return Err(bad(
                    field("rows"),
                    format!("{} is over {MAX_COUNT}", o.rows),
                ));
            }
            if !is_lower_hex(&o.sha256, 64) {
                return Err(bad(
                    field("sha256"),
                    format!("{:?} is not a SHA-256 (64 lowercase hex digits)", o.sha256),
                ));
            }
            rows = rows.saturating_add(o.rows);
        }
        if rows != self.rows {
            return Err(bad(
                "rows".into(),
                format!("{} but the objects hold {rows} rows together", self.rows),
            ));
        }
        Ok(())
    }

    /// True when this is a claim-check pointer (`manifest` set instead of `objects`).
    pub fn is_claim_check(&self) -> bool {
        self.manifest.is_some()
    }

    /// The message attributes to send with the body: `producer_id` (String) and
    /// `announcement_version` (Number).
    pub fn message_attributes(&self) -> [MessageAttribute; 2] {
        [
            MessageAttribute {
                name: ATTR_PRODUCER_ID,
                data_type: "String",
                value: self.producer_id.clone(),
            },
            MessageAttribute {
                name: ATTR_ANNOUNCEMENT_VERSION,
                data_type: "Number",
                value: self.version.to_string(),
            },
        ]
    }

    /// Checks the received attributes (string values; `None` when absent) against the body.
    pub fn check_message_attributes(
        &self,
        producer_id: Option<&str>,
        announcement_version: Option<&str>,
    ) -> Result<(), AnnouncementError> {
        let bad = |name, reason: String| AnnouncementError::Attribute {
            id: self.announcement_id.clone(),
            name,
            reason,
        };
        match producer_id {
            None => return Err(bad(ATTR_PRODUCER_ID, "missing".into())),
            Some(p) if p != self.producer_id => {
                return Err(bad(
                    ATTR_PRODUCER_ID,
                    format!("{p:?} but the body says {:?}", self.producer_id),
                ));
            }
            Some(_) => {}
        }
        match announcement_version {
            None => Err(bad(ATTR_ANNOUNCEMENT_VERSION, "missing".into())),
            Some(v) if v.trim() != self.version.to_string() => Err(bad(
                ATTR_ANNOUNCEMENT_VERSION,
                format!("{v:?} but the body is version {}", self.version),
            )),
            Some(_) => Ok(()),
        }
    }

    /// What to send: the inline body when it is at most [`MAX_INLINE_BODY_BYTES`], else the
    /// claim check (manifest bytes, their key, and a pointer body). Validates first; the
    /// announcement must be in inline form (with `objects`).
    pub fn envelope(&self) -> Result<Envelope, AnnouncementError> {
        self.validate()?;
        if self.objects.is_none() {
            return Err(AnnouncementError::Invalid {
                id: self.announcement_id.clone(),
                field: "objects".into(),
                reason:
                    "an envelope is made from the inline form (with objects), not from a pointer"
                        .into(),
            });
        }
        let body = self.to_json();
        if body.len() <= MAX_INLINE_BODY_BYTES {
            return Ok(Envelope::Inline { body });
        }
        if body.len() > MAX_MANIFEST_BYTES {
            return Err(AnnouncementError::Invalid {
                id: self.announcement_id.clone(),
                field: "objects".into(),
                reason: format!(
                    "the manifest would be {} bytes, over {MAX_MANIFEST_BYTES}",
                    body.len()
                ),
            });
        }
        // validate() succeeded, so the location parses.
        let location = ProductLocation::parse(&self.location, &self.product).map_err(|reason| {
            AnnouncementError::Invalid {
                id: self.announcement_id.clone(),
                field: "location".into(),
                reason,
            }
        })?;
        let pointer = Self {
            objects: None,
            manifest: Some(location.manifest_uri(&self.announcement_id)),
            ..self.clone()
        };
        let pointer_body = pointer.to_json();
        if pointer_body.len() > MAX_INLINE_BODY_BYTES {
            return Err(AnnouncementError::PointerTooLarge {
                id: self.announcement_id.clone(),
                bytes: pointer_body.len(),
            });
        }
        Ok(Envelope::ClaimCheck {
            body: pointer_body,
            manifest_key: location.manifest_key(&self.announcement_id),
            manifest_bucket: location.bucket,
            manifest: body.into_bytes(),
        })
    }

    /// The bucket and key a claim-check pointer's `manifest` names (`None` for an inline
    /// announcement). Valid pointers only name the product's own bucket and manifest key.
    pub fn manifest_location(&self) -> Option<(String, String)> {
        let uri = self.manifest.as_deref()?.strip_prefix("s3://")?;
        let (bucket, key) = uri.split_once('/')?;
        Some((bucket.to_owned(), key.to_owned()))
    }

    /// Reads the manifest a pointer names: a valid inline announcement (at most
    /// [`MAX_MANIFEST_BYTES`]) equal to the pointer in every field but `objects`/`manifest`.
    pub fn from_manifest(&self, manifest: &[u8]) -> Result<Self, AnnouncementError> {
        let uri = self.manifest.clone().unwrap_or_default();
        let bad = |reason: String| AnnouncementError::Manifest {
            id: self.announcement_id.clone(),
            uri: uri.clone(),
            reason,
        };
        if self.manifest.is_none() {
            return Err(bad("this announcement is not a claim-check pointer".into()));
        }
        if manifest.len() > MAX_MANIFEST_BYTES {
            return Err(bad(format!(
                "{} bytes, over {MAX_MANIFEST_BYTES}",
                manifest.len()
            )));
        }
        let full = Self::from_json(manifest).map_err(|e| bad(e.to_string()))?;
        if full.objects.is_none() {
            return Err(bad(
                "the manifest is itself a pointer; it must list objects".into(),
            ));
        }
        let as_pointer = Self {
            objects: None,
            manifest: self.manifest.clone(),
            ..full.clone()
        };
        if as_pointer != *self {
            let field = first_difference(self, &as_pointer);
            return Err(bad(format!(
                "`{field}` differs between the message and the manifest"
            )));
        }
        Ok(full)
    }
}

/// Name of the first top-level field in which two announcements differ.
fn first_difference(a: &Announcement, b: &Announcement) -> &'static str {
    let pairs: [(&'static str, bool); 12] = [
        ("version", a.version == b.version),
        ("announcement_id", a.announcement_id == b.announcement_id),
        ("producer_id", a.producer_id == b.producer_id),
        ("domain", a.domain == b.domain),
        ("product", a.product == b.product),
        ("location", a.location == b.location),
        ("partition_keys", a.partition_keys == b.partition_keys),
        ("columns", a.columns == b.columns),
        ("rows", a.rows == b.rows),
        ("source", a.source == b.source),
        ("produced_at", a.produced_at == b.produced_at),
        ("agent_version", a.agent_version == b.agent_version),
    ];
    pairs
        .iter()
        .find(|(_, same)| !same)
        .map_or("manifest", |(name, _)| name)
}

fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Non-empty, at most `max` bytes, no control characters.
fn check_text(s: &str, max: usize) -> Result<(), String> {
    if s.is_empty() {
        return Err("empty".into());
    }
    if s.len() > max {
        return Err(format!("{} bytes; at most {max} are allowed", s.len()));
    }
    if let Some(c) = s.chars().find(|c| c.is_control()) {
        return Err(format!("{s:?} contains the control character {c:?}"));
    }
    Ok(())
}

/// A file name: text of at most [`MAX_FILE_NAME_BYTES`], not `.`/`..`, no `/`.
fn check_file_name(s: &str) -> Result<(), String> {
    check_text(s, MAX_FILE_NAME_BYTES)?;
    if s == "." || s == ".." || s.contains('/') {
        return Err(format!("{s:?} is not a file name (no folder, not . or ..)"));
    }
    Ok(())
}

/// The Athena types the agent writes, in their canonical spelling.
pub fn check_column_type(ty: &str) -> Result<(), String> {
    const PLAIN: [&str; 7] = [
        "string",
        "int",
        "bigint",
        "double",
        "boolean",
        "date",
        "timestamp",
    ];
    if PLAIN.contains(&ty) {
        return Ok(());
    }
    let args = ty
        .strip_prefix("decimal(")
        .and_then(|r| r.strip_suffix(')'));
    let canonical_number = |s: &str| {
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'))
    };
    if let Some((p, s)) = args.and_then(|a| a.split_once(','))
        && canonical_number(p)
        && canonical_number(s)
    {
        let (p, s): (u32, u32) = (p.parse().unwrap_or(0), s.parse().unwrap_or(u32::MAX));
        if (1..=38).contains(&p) && s <= p {
            return Ok(());
        }
        return Err(format!(
            "{ty:?}: decimal precision must be 1 to 38 and scale 0 to the precision"
        ));
    }
    Err(format!(
        "{ty:?} is not one of string, int, bigint, double, decimal(p,s), boolean, date, timestamp"
    ))
}

/// `keep`, `hmac`, `year` or `truncate:N` (N from 1 to 99999).
pub fn check_pii(pii: &str) -> Result<(), String> {
    if matches!(pii, "keep" | "hmac" | "year") {
        return Ok(());
    }
    if let Some(n) = pii.strip_prefix("truncate:")
        && (1..=5).contains(&n.len())
        && !n.starts_with('0')
        && n.bytes().all(|b| b.is_ascii_digit())
    {
        return Ok(());
    }
    if pii == "drop" {
        return Err(
            "\"drop\": a dropped column is not in the files and must not be announced".into(),
        );
    }
    Err(format!(
        "{pii:?} is not one of keep, hmac, year, truncate:N"
    ))
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction]Z`, a real date and time of day.
fn check_timestamp(ts: &str) -> Result<(), String> {
    let fail = || {
        Err(format!(
            "{ts:?} is not a UTC time like \"2026-12-03T10:00:00Z\""
        ))
    };
    let b = ts.as_bytes();
    if b.len() < 20 || !ts.is_ascii() {
        return fail();
    }
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        let s = &ts[r];
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    let shape = b[4] == b'-' && b[7] == b'-' && b[10] == b'T' && b[13] == b':' && b[16] == b':';
    let (Some(y), Some(mo), Some(d), Some(h), Some(mi), Some(s)) = (
        digits(0..4),
        digits(5..7),
        digits(8..10),
        digits(11..13),
        digits(14..16),
        digits(17..19),
    ) else {
        return fail();
    };
    let tail = &ts[19..];
    let tail_ok = tail == "Z"
        || tail
            .strip_prefix('.')
            .and_then(|f| f.strip_suffix('Z'))
            .is_some_and(|f| (1..=9).contains(&f.len()) && f.bytes().all(|c| c.is_ascii_digit()));
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    let date_ok = (1..=12).contains(&mo) && d >= 1 && d <= month_days[(mo.max(1) - 1) as usize];
    if shape && tail_ok && date_ok && h < 24 && mi < 60 && s < 60 {
        Ok(())
    } else {
        fail()
    }
}

/// `Option` fields that may be absent but, when present, must not be `null`.
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

impl Serialize for Partition {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Partition {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Ordered;
        impl<'de> Visitor<'de> for Ordered {
            type Value = Partition;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of partition key to string value")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Partition, A::Error> {
                let mut pairs: Vec<(String, String)> = Vec::new();
                while let Some((k, v)) = m.next_entry::<String, String>()? {
                    if pairs.iter().any(|(seen, _)| *seen == k) {
                        return Err(de::Error::custom(format!(
                            "partition key {k:?} appears twice"
                        )));
                    }
                    pairs.push((k, v));
                }
                Ok(Partition(pairs))
            }
        }
        d.deserialize_map(Ordered)
    }
}

#[cfg(test)]
mod tests;
