//! Helpers shared by the integration tests: a valid announcement of any size.

use lakemesh_shared::announcement::{
    Announcement, Column, Object, Partition, ProductLocation, Source,
};
use sha2::{Digest, Sha256};

/// SHA-256 of `bytes`, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// SHA-256 of `bytes`, base64 (S3's `x-amz-checksum-sha256`).
pub fn sha256_base64(bytes: &[u8]) -> String {
    aws_smithy_types::base64::encode(Sha256::digest(bytes))
}

/// A valid inline announcement of `objects` objects in `bucket` (one month each, cycling).
pub fn announcement(bucket: &str, objects: u32) -> Announcement {
    let source_sha = sha256_hex(format!("source of {bucket} {objects}").as_bytes());
    let id = source_sha[..16].to_string();
    let location = ProductLocation {
        bucket: bucket.into(),
        prefix: "products".into(),
        product: "hospital_stays".into(),
    };
    let objects: Vec<Object> = (0..objects)
        .map(|n| {
            let month = format!("{:02}", n % 12 + 1);
            Object {
                key: format!(
                    "{}year=2026/month={month}/part-{id}-{n}.parquet",
                    location.product_key_prefix()
                ),
                bytes: 1000 + u64::from(n),
                rows: 10,
                sha256: sha256_hex(&n.to_le_bytes()),
                partition: Partition(vec![
                    ("year".into(), "2026".into()),
                    ("month".into(), month),
                ]),
            }
        })
        .collect();
    Announcement {
        version: 1,
        announcement_id: id,
        producer_id: "chu-lyon".into(),
        domain: "hospital_activity".into(),
        product: "hospital_stays".into(),
        location: location.uri(),
        partition_keys: vec!["year".into(), "month".into()],
        columns: vec![Column {
            name: "patient_id".into(),
            ty: "string".into(),
            pii: "hmac".into(),
            source_name: "NUM_PATIENT".into(),
        }],
        rows: 10 * objects.len() as u64,
        objects: Some(objects),
        manifest: None,
        source: Source {
            file: "sejours_2026_11.csv".into(),
            bytes: 5678,
            sha256: source_sha,
        },
        produced_at: "2026-12-03T10:00:00Z".into(),
        agent_version: "0.1.0".into(),
    }
}
