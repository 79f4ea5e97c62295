//! S3 adapter: reading a claim-check manifest, bounded in size, and, for `preview`, listing a
//! product's objects and reading them. The service itself reads no product data (crawlers do).

use aws_sdk_s3::Client;

use crate::aws_error::AwsError;

const SERVICE: &str = "S3";

/// An S3 client.
#[derive(Debug, Clone)]
pub struct S3 {
    client: Client,
}

impl S3 {
    /// Wraps a client.
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// The object's bytes; an error (code `TooLarge`, permanent) when it is over `max` bytes,
    /// checked before reading the body.
    pub async fn get_bounded(
        &self,
        bucket: &str,
        key: &str,
        max: usize,
    ) -> Result<Vec<u8>, AwsError> {
        let resource = format!("s3://{bucket}/{key}");
        let out = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, "GetObject", &resource, e))?;
        let too_large = |n: u64| {
            let mut e = AwsError::invalid_answer(
                SERVICE,
                "GetObject",
                &resource,
                format!("{n} bytes, over the {max}-byte limit"),
            );
            e.code = Some("TooLarge".into());
            e
        };
        let len = out.content_length().unwrap_or(0).max(0) as u64;
        if len > max as u64 {
            return Err(too_large(len));
        }
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| {
                AwsError::invalid_answer(
                    SERVICE,
                    "GetObject",
                    &resource,
                    format!("reading the body: {e}"),
                )
                .transient()
            })?
            .into_bytes();
        if bytes.len() > max {
            return Err(too_large(bytes.len() as u64));
        }
        Ok(bytes.to_vec())
    }

    /// Every key under `prefix` (all pages), in the order S3 lists them (lexicographic).
    pub async fn list_keys(&self, bucket: &str, prefix: &str) -> Result<Vec<String>, AwsError> {
        let resource = format!("s3://{bucket}/{prefix}");
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .client
                .list_objects_v2()
                .bucket(bucket)
                .prefix(prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| AwsError::from_sdk(SERVICE, "ListObjectsV2", &resource, e))?;
            keys.extend(
                out.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_owned)),
            );
            match out.next_continuation_token() {
                Some(t) if out.is_truncated() == Some(true) => token = Some(t.to_owned()),
                _ => break,
            }
        }
        Ok(keys)
    }

    /// The whole object.
    pub async fn get(&self, bucket: &str, key: &str) -> Result<bytes::Bytes, AwsError> {
        let resource = format!("s3://{bucket}/{key}");
        let out = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, "GetObject", &resource, e))?;
        Ok(out
            .body
            .collect()
            .await
            .map_err(|e| {
                AwsError::invalid_answer(
                    SERVICE,
                    "GetObject",
                    &resource,
                    format!("reading the body: {e}"),
                )
                .transient()
            })?
            .into_bytes())
    }
}
