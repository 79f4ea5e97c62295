//! S3 adapter: reading a claim-check manifest, bounded in size; listing the keys of an
//! announced batch (ListBucket: names and sizes, never the data); and, for `preview`, reading
//! a product's objects. The service itself reads no product data (crawlers do).

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

    /// Keys and sizes under `prefix` (all pages), in the order S3 lists them (lexicographic).
    pub async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<(String, u64)>, AwsError> {
        let resource = format!("s3://{bucket}/{prefix}");
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(bucket)
                .prefix(prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| AwsError::from_sdk(SERVICE, "ListObjectsV2", &resource, e))?;
            for o in page.contents() {
                if let Some(k) = o.key() {
                    out.push((k.to_owned(), o.size().unwrap_or(0).max(0) as u64));
                }
            }
            match page.next_continuation_token() {
                Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_owned()),
                _ => return Ok(out),
            }
        }
    }

    /// Every key under `prefix` (all pages), in the order S3 lists them (lexicographic).
    pub async fn list_keys(&self, bucket: &str, prefix: &str) -> Result<Vec<String>, AwsError> {
        Ok(self
            .list(bucket, prefix)
            .await?
            .into_iter()
            .map(|(k, _)| k)
            .collect())
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
