//! The security boundary: whether a received message is an announcement the daemon may act
//! on. A message passes only if its body is a valid announcement v1 (unknown fields, other
//! versions and broken rules refused by `lakemesh_shared::announcement`), its producer is
//! registered, its message attributes agree with the body, its SQS `SenderId` is one of that
//! producer's registered sender ids, its location lies in that producer's bucket and prefix,
//! its domain is one the producer may publish, the names it makes (database, crawler) are
//! usable, and, for a claim check, the manifest (in the producer's own bucket, bounded in
//! size) matches the pointer.
//!
//! Anything else is a [`Rejection`]: permanent, logged as an audit event by `consume`, and
//! never acted on. Owns nothing else: the catalog and governance steps trust what passes.

use lakemesh_shared::announcement::{Announcement, MAX_MANIFEST_BYTES, ProductLocation};

use crate::aws_error::AwsError;
use crate::config::{Producer, Settings};
use crate::s3::S3;

/// Largest message body read (SQS's own limit).
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// What a message claims, as received.
#[derive(Debug, Clone, Copy)]
pub struct Envelope<'a> {
    /// The body.
    pub body: &'a str,
    /// SQS `SenderId`.
    pub sender_id: Option<&'a str>,
    /// `producer_id` message attribute.
    pub producer_id: Option<&'a str>,
    /// `announcement_version` message attribute.
    pub announcement_version: Option<&'a str>,
}

/// An announcement that passed, with what it resolves to.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// The announcement (inline form: a claim check's manifest was read).
    pub announcement: Announcement,
    /// Its producer.
    pub producer: Producer,
    /// Where its product lives.
    pub location: ProductLocation,
    /// Its Glue database.
    pub database: String,
}

/// Why a message is refused: an audit event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("producer={producer} sender={sender} announcement={announcement}: {reason}")]
pub struct Rejection {
    /// The producer it claims (`?` when unreadable).
    pub producer: String,
    /// Its SQS sender (`?` when absent).
    pub sender: String,
    /// `announcement_id` when readable, else `?`.
    pub announcement: String,
    /// What is wrong.
    pub reason: String,
}

/// Why validation did not finish.
#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    /// The message is refused.
    #[error("rejected: {0}")]
    Rejected(Rejection),
    /// The manifest could not be read now (S3 unreachable, throttled).
    #[error("reading the claim-check manifest: {0}")]
    Manifest(AwsError),
    /// The announced objects could not be listed now.
    #[error("listing the announced objects: {0}")]
    Objects(AwsError),
}

impl ValidateError {
    /// Whether a later attempt may pass.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Manifest(e) | Self::Objects(e) if e.is_transient())
    }
}

/// The checks that need no AWS call: everything but the claim-check manifest.
pub fn check(settings: &Settings, env: Envelope<'_>) -> Result<Accepted, Rejection> {
    let claimed = env
        .producer_id
        .map(|p| p.chars().take(64).collect::<String>())
        .unwrap_or_else(|| "?".into());
    let mut rejection = Rejection {
        producer: claimed,
        sender: env.sender_id.unwrap_or("?").chars().take(128).collect(),
        announcement: "?".into(),
        reason: String::new(),
    };
    let reject = |mut r: Rejection, reason: String| {
        r.reason = reason;
        Err(r)
    };
    if env.body.len() > MAX_BODY_BYTES {
        return reject(
            rejection,
            format!("body is {} bytes, over {MAX_BODY_BYTES}", env.body.len()),
        );
    }
    let a = match Announcement::from_json(env.body.as_bytes()) {
        Ok(a) => a,
        Err(e) => return reject(rejection, e.to_string()),
    };
    rejection.producer = a.producer_id.clone();
    rejection.announcement = a.announcement_id.clone();
    let Some(producer) = settings.producers.get(&a.producer_id) else {
        return reject(
            rejection,
            format!("producer {:?} is not registered", a.producer_id),
        );
    };
    if let Err(e) = a.check_message_attributes(env.producer_id, env.announcement_version) {
        return reject(rejection, e.to_string());
    }
    match env.sender_id {
        None => return reject(rejection, "the message has no SenderId".into()),
        Some(s) if !producer.accepts_sender(s) => {
            return reject(
                rejection,
                format!(
                    "SenderId {s:?} is not one of producer {:?}'s registered sender ids",
                    producer.id
                ),
            );
        }
        Some(_) => {}
    }
    // validate() (inside from_json) proved the location parses.
    let location = match ProductLocation::parse(&a.location, &a.product) {
        Ok(l) => l,
        Err(e) => return reject(rejection, format!("location: {e}")),
    };
    if location.bucket != producer.bucket || location.prefix != producer.prefix {
        let registered = if producer.prefix.is_empty() {
            format!("s3://{}/", producer.bucket)
        } else {
            format!("s3://{}/{}/", producer.bucket, producer.prefix)
        };
        return reject(
            rejection,
            format!(
                "location {:?} is outside producer {:?}'s registered {registered}",
                a.location, producer.id
            ),
        );
    }
    if !producer.domains.contains(&a.domain) {
        return reject(
            rejection,
            format!(
                "domain {:?} is not allowed for producer {:?} (allowed: {})",
                a.domain,
                producer.id,
                producer
                    .domains
                    .iter()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
    }
    let database = match settings.database_for(producer, &a.domain) {
        Ok(d) => d,
        Err(e) => return reject(rejection, format!("database name: {e}")),
    };
    if crate::catalog::crawler_name(&database, &a.product).len() > 255 {
        return reject(
            rejection,
            "database and product names are too long for a crawler name (255)".into(),
        );
    }
    if let Some((bucket, _)) = a.manifest_location()
        && bucket != producer.bucket
    {
        return reject(
            rejection,
            format!(
                "manifest in bucket {bucket:?}, not producer {:?}'s",
                producer.id
            ),
        );
    }
    Ok(Accepted {
        announcement: a,
        producer: producer.clone(),
        location,
        database,
    })
}

/// All checks; a claim check's manifest is read from the producer's bucket.
pub async fn validate(
    settings: &Settings,
    s3: &S3,
    env: Envelope<'_>,
) -> Result<Accepted, ValidateError> {
    let mut accepted = check(settings, env).map_err(ValidateError::Rejected)?;
    if let Some((bucket, key)) = accepted.announcement.manifest_location() {
        let rejected = |reason: String| {
            ValidateError::Rejected(Rejection {
                producer: accepted.producer.id.clone(),
                sender: env.sender_id.unwrap_or("?").to_owned(),
                announcement: accepted.announcement.announcement_id.clone(),
                reason,
            })
        };
        let bytes = match s3.get_bounded(&bucket, &key, MAX_MANIFEST_BYTES).await {
            Ok(b) => b,
            Err(e) if e.is("NoSuchKey") || e.is("TooLarge") || e.is("NoSuchBucket") => {
                return Err(rejected(format!("manifest s3://{bucket}/{key}: {e}")));
            }
            Err(e) => return Err(ValidateError::Manifest(e)),
        };
        let full = accepted
            .announcement
            .from_manifest(&bytes)
            .map_err(|e| rejected(e.to_string()))?;
        accepted.announcement = full;
    }
    check_objects(s3, &accepted, env.sender_id).await?;
    Ok(accepted)
}

/// Every announced object is in the producer's bucket with its announced size: listed per
/// partition folder and batch (`…/year=2026/part-{batch}-`), one ListObjectsV2 per folder.
async fn check_objects(
    s3: &S3,
    accepted: &Accepted,
    sender: Option<&str>,
) -> Result<(), ValidateError> {
    let a = &accepted.announcement;
    let bucket = &accepted.location.bucket;
    let rejected = |reason: String| {
        ValidateError::Rejected(Rejection {
            producer: accepted.producer.id.clone(),
            sender: sender.unwrap_or("?").to_owned(),
            announcement: a.announcement_id.clone(),
            reason,
        })
    };
    let mut by_prefix: std::collections::BTreeMap<String, Vec<(&str, u64)>> =
        std::collections::BTreeMap::new();
    for o in a.objects.as_deref().unwrap_or_default() {
        let folder = o.key.rsplit_once('/').map_or("", |(f, _)| f);
        by_prefix
            .entry(format!("{folder}/part-{}-", a.announcement_id))
            .or_default()
            .push((&o.key, o.bytes));
    }
    for (prefix, objects) in by_prefix {
        let listed: std::collections::BTreeMap<String, u64> = match s3.list(bucket, &prefix).await {
            Ok(l) => l.into_iter().collect(),
            Err(e) if e.is("NoSuchBucket") => {
                return Err(rejected(format!("bucket {bucket}: {e}")));
            }
            Err(e) => return Err(ValidateError::Objects(e)),
        };
        for (key, bytes) in objects {
            match listed.get(key) {
                None => {
                    return Err(rejected(format!(
                        "object s3://{bucket}/{key} is not in the bucket"
                    )));
                }
                Some(n) if *n != bytes => {
                    return Err(rejected(format!(
                        "object s3://{bucket}/{key} is {n} bytes, announced {bytes}"
                    )));
                }
                Some(_) => {}
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use lakemesh_shared::announcement::{Column, Object, Partition, Source};

    use super::*;

    const CONFIG: &str = r#"
queue_url = "https://sqs.eu-west-3.amazonaws.com/999988887777/lakemesh-announcements"
policy_file = "policy.toml"
crawler_role_arn = "arn:aws:iam::999988887777:role/lakemesh-crawler"
registration_role_arn = "arn:aws:iam::999988887777:role/lakemesh-lf-registration"

[[producer]]
id = "chu-lyon"
account_id = "111122223333"
sender_ids = ["AROAEXAMPLEAGENTROLE"]
origin = "chu"
bucket = "chu-lyon-datamesh"
prefix = "products"
domains = ["hospital_activity"]
"#;

    fn settings() -> Settings {
        Settings::from_toml(CONFIG, Path::new("syncd.toml")).unwrap()
    }

    fn announcement(bucket: &str, prefix: &str, domain: &str) -> Announcement {
        let sha = "ab".repeat(32);
        let id = sha[..16].to_owned();
        let loc = ProductLocation {
            bucket: bucket.into(),
            prefix: prefix.into(),
            product: "hospital_stays".into(),
        };
        Announcement {
            version: 1,
            announcement_id: id.clone(),
            producer_id: "chu-lyon".into(),
            domain: domain.into(),
            product: "hospital_stays".into(),
            location: loc.uri(),
            partition_keys: vec!["year".into()],
            columns: vec![Column {
                name: "region_code".into(),
                ty: "string".into(),
                pii: "keep".into(),
                source_name: "REGION".into(),
            }],
            objects: Some(vec![Object {
                key: format!("{}year=2026/part-{id}-0.parquet", loc.product_key_prefix()),
                bytes: 10,
                rows: 1,
                sha256: "cd".repeat(32),
                partition: Partition(vec![("year".into(), "2026".into())]),
            }]),
            manifest: None,
            rows: 1,
            source: Source {
                file: "x.csv".into(),
                bytes: 1,
                sha256: sha,
            },
            produced_at: "2026-12-03T10:00:00Z".into(),
            agent_version: "0.1.0".into(),
        }
    }

    fn env<'a>(body: &'a str, sender: Option<&'a str>) -> Envelope<'a> {
        Envelope {
            body,
            sender_id: sender,
            producer_id: Some("chu-lyon"),
            announcement_version: Some("1"),
        }
    }

    fn reason(body: &str, sender: Option<&str>) -> String {
        check(&settings(), env(body, sender)).unwrap_err().reason
    }

    const ROLE: Option<&str> = Some("AROAEXAMPLEAGENTROLE:i-0abc");

    #[test]
    fn a_registered_producer_passes() {
        let body = announcement("chu-lyon-datamesh", "products", "hospital_activity").to_json();
        let ok = check(&settings(), env(&body, ROLE)).unwrap();
        assert_eq!(ok.database, "hospital_activity_chu");
        assert_eq!(ok.producer.id, "chu-lyon");
    }

    #[test]
    fn forgeries_are_rejected_with_a_reason() {
        let good = announcement("chu-lyon-datamesh", "products", "hospital_activity");
        let body = good.to_json();
        assert!(reason(&body, Some("AIDAIT2UOQQY3AUEKVGXU")).contains("not one of producer"));
        assert!(reason(&body, None).contains("no SenderId"));
        let other = announcement("other-bucket", "products", "hospital_activity").to_json();
        assert!(reason(&other, ROLE).contains("outside producer"));
        let other = announcement("chu-lyon-datamesh", "elsewhere", "hospital_activity").to_json();
        assert!(reason(&other, ROLE).contains("outside producer"));
        let other = announcement("chu-lyon-datamesh", "products", "claims").to_json();
        assert!(reason(&other, ROLE).contains("domain \"claims\" is not allowed"));
        let mut unknown = good.clone();
        unknown.producer_id = "chu-nantes".into();
        let r = check(
            &settings(),
            Envelope {
                producer_id: Some("chu-nantes"),
                ..env(&unknown.to_json(), ROLE)
            },
        )
        .unwrap_err();
        assert!(r.reason.contains("not registered"), "{r}");
        assert_eq!(r.producer, "chu-nantes");
        assert!(reason("{not json", ROLE).contains("not a version 1 announcement"));
        let extra = body.replacen('{', "{\"extra\":1,", 1);
        assert!(
            reason(&extra, ROLE).contains("unknown field"),
            "{}",
            reason(&extra, ROLE)
        );
        let r = check(
            &settings(),
            Envelope {
                producer_id: Some("chu-lille"),
                ..env(&body, ROLE)
            },
        )
        .unwrap_err();
        assert!(r.reason.contains("message attribute `producer_id`"), "{r}");
        assert!(reason(&" ".repeat(MAX_BODY_BYTES + 1), ROLE).contains("over"));
    }

    #[test]
    fn a_manifest_elsewhere_is_rejected() {
        let mut a = announcement("chu-lyon-datamesh", "products", "hospital_activity");
        a.objects = None;
        a.manifest = Some(format!(
            "s3://evil-bucket/products/_lakemesh/manifests/hospital_stays/{}.json",
            a.announcement_id
        ));
        // The shared rules already refuse a manifest outside the location.
        assert!(reason(&a.to_json(), ROLE).contains("manifest"));
    }
}
