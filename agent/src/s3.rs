//! The S3 adapter: the agent's calls to its own bucket, with SHA-256 checksums sent
//! (`x-amz-checksum-sha256`) and checked on every answer.
//!
//! Owns: HeadBucket (check-config), PutObject, the multipart calls (create, upload part,
//! complete, abort) and what their errors mean ([`S3Error::is_transient`]). `SdkError` never
//! leaves this module. Does not decide what to upload or when to retry ([`crate::upload`]).

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::sdk_error::{Failure, classify};

/// A failed S3 call, with the bucket and key.
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    /// The call failed (no answer, or an error answer).
    #[error("s3://{bucket}/{key}: {operation}: {message}")]
    Call {
        /// The bucket.
        bucket: String,
        /// The key (empty for bucket calls).
        key: String,
        /// The API call.
        operation: &'static str,
        /// The SDK's error chain.
        message: String,
        /// The service's code, when it answered with one.
        code: Option<String>,
        /// Whether a later attempt may succeed.
        transient: bool,
    },
    /// S3 answered with another checksum than the one sent, or none.
    #[error(
        "s3://{bucket}/{key}: {operation}: checksum mismatch: sent sha256 {sent}, S3 answered {got:?}"
    )]
    Checksum {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
        /// The API call.
        operation: &'static str,
        /// The base64 SHA-256 sent.
        sent: String,
        /// What S3 answered.
        got: Option<String>,
    },
}

impl S3Error {
    /// Whether a later attempt may succeed: network trouble, throttling and server errors,
    /// and a checksum mismatch (the bytes were damaged on the way).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Call { transient, .. } => *transient,
            Self::Checksum { .. } => true,
        }
    }

    /// The service's error code, if it answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Call { code, .. } => code.as_deref(),
            Self::Checksum { .. } => None,
        }
    }
}

/// One uploaded part of a multipart upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// 1-based part number.
    pub number: i32,
    /// The ETag S3 answered.
    pub etag: String,
    /// The part's SHA-256, base64.
    pub sha256_b64: String,
}

/// Base64 of SHA-256 of `bytes`, as `x-amz-checksum-sha256` carries it.
pub fn sha256_b64(bytes: &[u8]) -> String {
    aws_smithy_types::base64::encode(Sha256::digest(bytes))
}

/// The checksum S3 reports for a completed multipart upload: base64 of SHA-256 of the
/// concatenated raw part checksums, then `-N`.
pub fn composite_sha256(parts: &[Part]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(aws_smithy_types::base64::decode(&p.sha256_b64).unwrap_or_default());
    }
    format!(
        "{}-{}",
        aws_smithy_types::base64::encode(h.finalize()),
        parts.len()
    )
}

/// The producer's bucket.
#[derive(Debug, Clone)]
pub struct S3 {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl S3 {
    /// The adapter for `bucket` through `client`.
    pub fn new(client: aws_sdk_s3::Client, bucket: &str) -> Self {
        Self {
            client,
            bucket: bucket.to_owned(),
        }
    }

    /// The bucket's name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    fn fail(&self, key: &str, operation: &'static str, f: Failure) -> S3Error {
        S3Error::Call {
            bucket: self.bucket.clone(),
            key: key.to_owned(),
            operation,
            message: f.message,
            code: f.code,
            transient: f.transient,
        }
    }

    fn check(
        &self,
        key: &str,
        operation: &'static str,
        sent: &str,
        got: Option<&str>,
    ) -> Result<(), S3Error> {
        if got == Some(sent) {
            Ok(())
        } else {
            Err(S3Error::Checksum {
                bucket: self.bucket.clone(),
                key: key.to_owned(),
                operation,
                sent: sent.to_owned(),
                got: got.map(str::to_owned),
            })
        }
    }

    /// HeadBucket: the bucket exists and these credentials may use it.
    pub async fn head_bucket(&self) -> Result<(), S3Error> {
        self.client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.fail("", "HeadBucket", classify(&e)))
    }

    /// PutObject of `body` at `key` with its SHA-256 checksum; S3 must answer the same one.
    pub async fn put_object(
        &self,
        key: &str,
        body: Bytes,
        sha256_b64: &str,
        content_type: &str,
    ) -> Result<(), S3Error> {
        let out = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .content_length(body.len() as i64)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .checksum_sha256(sha256_b64)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| self.fail(key, "PutObject", classify(&e)))?;
        self.check(key, "PutObject", sha256_b64, out.checksum_sha256())
    }

    /// CreateMultipartUpload with SHA-256 checksums; returns the upload id.
    pub async fn create_multipart(&self, key: &str, content_type: &str) -> Result<String, S3Error> {
        let out = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .send()
            .await
            .map_err(|e| self.fail(key, "CreateMultipartUpload", classify(&e)))?;
        out.upload_id.ok_or_else(|| S3Error::Call {
            bucket: self.bucket.clone(),
            key: key.to_owned(),
            operation: "CreateMultipartUpload",
            message: "the answer has no UploadId".into(),
            code: None,
            transient: true,
        })
    }

    /// UploadPart `number` with its SHA-256; S3 must answer the same one.
    pub async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: i32,
        body: Bytes,
        sha256_b64: &str,
    ) -> Result<Part, S3Error> {
        let out = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .content_length(body.len() as i64)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .checksum_sha256(sha256_b64)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| self.fail(key, "UploadPart", classify(&e)))?;
        self.check(key, "UploadPart", sha256_b64, out.checksum_sha256())?;
        Ok(Part {
            number,
            etag: out.e_tag.unwrap_or_default(),
            sha256_b64: sha256_b64.to_owned(),
        })
    }

    /// CompleteMultipartUpload of `parts`; when S3 reports the object's checksum it must be
    /// the composite of the parts' ones.
    pub async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[Part],
    ) -> Result<(), S3Error> {
        let completed = CompletedMultipartUpload::builder()
            .set_parts(Some(
                parts
                    .iter()
                    .map(|p| {
                        CompletedPart::builder()
                            .part_number(p.number)
                            .e_tag(&p.etag)
                            .checksum_sha256(&p.sha256_b64)
                            .build()
                    })
                    .collect(),
            ))
            .build();
        let out = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(completed)
            .send()
            .await
            .map_err(|e| self.fail(key, "CompleteMultipartUpload", classify(&e)))?;
        if let Some(got) = out.checksum_sha256() {
            let want = composite_sha256(parts);
            // Some S3-compatible stores leave out the `-N` suffix.
            let bare = want.split('-').next().unwrap_or_default();
            if got != want && got != bare {
                return Err(S3Error::Checksum {
                    bucket: self.bucket.clone(),
                    key: key.to_owned(),
                    operation: "CompleteMultipartUpload",
                    sent: want,
                    got: Some(got.to_owned()),
                });
            }
        }
        Ok(())
    }

    /// AbortMultipartUpload: its parts stop costing money.
    pub async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<(), S3Error> {
        self.client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.fail(key, "AbortMultipartUpload", classify(&e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_are_base64_sha256() {
        // SHA-256 of the empty string.
        assert_eq!(
            sha256_b64(b""),
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
        let p = |n, b: &[u8]| Part {
            number: n,
            etag: String::new(),
            sha256_b64: sha256_b64(b),
        };
        let c = composite_sha256(&[p(1, b"a"), p(2, b"b")]);
        assert!(c.ends_with("-2"), "{c}");
        let mut raw = Sha256::digest(b"a").to_vec();
        raw.extend_from_slice(&Sha256::digest(b"b"));
        assert_eq!(c, format!("{}-2", sha256_b64(&raw)));
    }
}
