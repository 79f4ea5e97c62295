//! Upload of a converted batch's objects from the spool to the bucket.
//!
//! Owns: the object keys (`{prefix}/` + the converter's relative key, [`object_key`]); checking
//! each spool file against the SHA-256 the converter recorded before it leaves; single PUTs up
//! to `multipart_threshold_bytes` and multipart uploads above it (parts of
//! `multipart_part_bytes`, each retried up to `part_attempts` times on transient errors, the
//! upload aborted when it gives up so no orphan parts are left); bounded concurrency
//! (`upload_concurrency` objects at a time). Every request carries the SHA-256 checksum and every
//! answer is checked ([`crate::s3`]).
//!
//! Does not record progress (the caller is told of each object as it lands) nor retry whole
//! objects (the delivery loop's backoff does).

use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::backoff::{Backoff, clock_jitter};
use crate::config::ServiceSettings;
use crate::ledger::ObjectRecord;
use crate::s3::{Part, S3, S3Error};

/// Content type of the Parquet objects.
pub const PARQUET_CONTENT_TYPE: &str = "application/vnd.apache.parquet";

/// Why an object is not in the bucket.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The spool file cannot be read.
    #[error("{}: cannot read the spooled object for {key}: {source}", .path.display())]
    Read {
        /// The spool file.
        path: PathBuf,
        /// Its key.
        key: String,
        /// The OS error.
        source: io::Error,
    },
    /// The spool file is not what the converter wrote.
    #[error("{}: the spooled object for {key} changed (sha256 {found}, converted as {expected})", .path.display())]
    Changed {
        /// The spool file.
        path: PathBuf,
        /// Its key.
        key: String,
        /// SHA-256 found.
        found: String,
        /// SHA-256 recorded at conversion.
        expected: String,
    },
    /// S3 refused or could not be reached.
    #[error(transparent)]
    S3(#[from] S3Error),
    /// A part failed for good; the multipart upload was aborted.
    #[error("multipart upload {upload_id} of {key} aborted at part {part}: {source}")]
    Aborted {
        /// The key.
        key: String,
        /// The upload id.
        upload_id: String,
        /// The part that failed.
        part: i32,
        /// The last error.
        source: Box<S3Error>,
    },
    /// Shutdown was asked for between two parts (the upload was aborted).
    #[error("upload of {key} interrupted by shutdown")]
    Cancelled {
        /// The key.
        key: String,
    },
}

impl UploadError {
    /// Whether a later attempt may succeed as things are.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::S3(e) => e.is_transient(),
            Self::Aborted { source, .. } => source.is_transient(),
            Self::Cancelled { .. } => true,
            Self::Read { .. } | Self::Changed { .. } => false,
        }
    }

    /// Whether the spool lost or changed the object, so the source must be converted again.
    pub fn needs_reconversion(&self) -> bool {
        matches!(self, Self::Read { .. } | Self::Changed { .. })
    }
}

/// The full S3 key of an object the converter names `relative` (`{product}/{k=v}/part-…`):
/// `{prefix}/{relative}`, or `relative` when the prefix is empty.
pub fn object_key(prefix: &str, relative: &str) -> String {
    let prefix = prefix.trim_matches('/');
    if prefix.is_empty() {
        relative.to_owned()
    } else {
        format!("{prefix}/{relative}")
    }
}

/// How objects are sent.
#[derive(Debug, Clone)]
pub struct UploadSettings {
    /// Above this size: multipart.
    pub multipart_threshold_bytes: u64,
    /// Part size.
    pub part_bytes: u64,
    /// Attempts per part.
    pub part_attempts: u32,
    /// Objects in flight.
    pub concurrency: usize,
    /// Wait before the first retry of a part (doubled, capped at 30 s).
    pub part_retry_initial: Duration,
}

impl UploadSettings {
    /// From the service settings.
    pub fn from_service(s: &ServiceSettings) -> Self {
        Self {
            multipart_threshold_bytes: s.multipart_threshold_bytes,
            part_bytes: s.multipart_part_bytes,
            part_attempts: s.part_attempts,
            concurrency: s.upload_concurrency,
            part_retry_initial: Duration::from_millis(500),
        }
    }
}

/// The byte ranges of the parts of an object of `size` bytes: `(offset, length)`.
pub fn part_ranges(size: u64, part_bytes: u64) -> Vec<(u64, u64)> {
    let part = part_bytes.max(1);
    let mut out = Vec::new();
    let mut offset = 0;
    while offset < size {
        let len = part.min(size - offset);
        out.push((offset, len));
        offset += len;
    }
    out
}

fn hex_and_b64(bytes: &[u8]) -> (String, String) {
    let d = Sha256::digest(bytes);
    (hex::encode(d), aws_smithy_types::base64::encode(d))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(io::Error::other(format!("worker thread failed: {e}"))))
}

/// Uploads one object (single PUT or multipart).
pub async fn upload_object(
    s3: &S3,
    object: &ObjectRecord,
    settings: &UploadSettings,
    cancel: &CancellationToken,
) -> Result<(), UploadError> {
    let read_err = |source| UploadError::Read {
        path: object.local_path.clone(),
        key: object.key.clone(),
        source,
    };
    let size = std::fs::metadata(&object.local_path)
        .map_err(read_err)?
        .len();
    if size != object.bytes {
        return Err(UploadError::Changed {
            path: object.local_path.clone(),
            key: object.key.clone(),
            found: format!("{size} bytes"),
            expected: format!("{} bytes", object.bytes),
        });
    }
    if size <= settings.multipart_threshold_bytes {
        let path = object.local_path.clone();
        let (bytes, hex, b64) = blocking(move || {
            let bytes = std::fs::read(&path)?;
            let (hex, b64) = hex_and_b64(&bytes);
            Ok((Bytes::from(bytes), hex, b64))
        })
        .await
        .map_err(read_err)?;
        if hex != object.sha256 {
            return Err(UploadError::Changed {
                path: object.local_path.clone(),
                key: object.key.clone(),
                found: hex,
                expected: object.sha256.clone(),
            });
        }
        s3.put_object(&object.key, bytes, &b64, PARQUET_CONTENT_TYPE)
            .await?;
        return Ok(());
    }
    upload_multipart(s3, object, size, settings, cancel).await
}

async fn upload_multipart(
    s3: &S3,
    object: &ObjectRecord,
    size: u64,
    settings: &UploadSettings,
    cancel: &CancellationToken,
) -> Result<(), UploadError> {
    let key = &object.key;
    let file = std::sync::Arc::new(std::fs::File::open(&object.local_path).map_err(|source| {
        UploadError::Read {
            path: object.local_path.clone(),
            key: key.clone(),
            source,
        }
    })?);
    let upload_id = s3.create_multipart(key, PARQUET_CONTENT_TYPE).await?;
    log::debug!(
        "s3://{}/{key}: multipart upload {upload_id} started",
        s3.bucket()
    );
    let mut whole = Sha256::new();
    let mut parts: Vec<Part> = Vec::new();
    for (i, (offset, len)) in part_ranges(size, settings.part_bytes)
        .into_iter()
        .enumerate()
    {
        let number = i as i32 + 1;
        if cancel.is_cancelled() {
            let _ = s3.abort_multipart(key, &upload_id).await;
            return Err(UploadError::Cancelled { key: key.clone() });
        }
        let f = std::sync::Arc::clone(&file);
        let (chunk, b64, hasher) = match blocking(move || {
            let mut buf = vec![0u8; len as usize];
            f.read_exact_at(&mut buf, offset)?;
            let d = Sha256::digest(&buf);
            whole.update(&buf);
            Ok((Bytes::from(buf), aws_smithy_types::base64::encode(d), whole))
        })
        .await
        {
            Ok(v) => v,
            Err(source) => {
                let _ = s3.abort_multipart(key, &upload_id).await;
                return Err(UploadError::Read {
                    path: object.local_path.clone(),
                    key: key.clone(),
                    source,
                });
            }
        };
        whole = hasher;
        let mut backoff = Backoff::new(settings.part_retry_initial, Duration::from_secs(30));
        let part = loop {
            match s3
                .upload_part(key, &upload_id, number, chunk.clone(), &b64)
                .await
            {
                Ok(p) => break p,
                Err(e) if e.is_transient() && backoff.failures() + 1 < settings.part_attempts => {
                    let wait = backoff.fail(clock_jitter());
                    log::warn!("{e}; part {number} again in {:.1} s", wait.as_secs_f64());
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = cancel.cancelled() => {}
                    }
                }
                Err(e) => return Err(abort(s3, key, &upload_id, number, e).await),
            }
        };
        parts.push(part);
    }
    let found = hex::encode(whole.finalize());
    if found != object.sha256 {
        let _ = s3.abort_multipart(key, &upload_id).await;
        return Err(UploadError::Changed {
            path: object.local_path.clone(),
            key: key.clone(),
            found,
            expected: object.sha256.clone(),
        });
    }
    if let Err(e) = s3.complete_multipart(key, &upload_id, &parts).await {
        return Err(abort(s3, key, &upload_id, parts.len() as i32, e).await);
    }
    Ok(())
}

/// Gives up a multipart upload: aborts it (best effort) and says why.
async fn abort(s3: &S3, key: &str, upload_id: &str, part: i32, source: S3Error) -> UploadError {
    if let Err(e) = s3.abort_multipart(key, upload_id).await {
        log::warn!("{e} (a lifecycle rule aborting incomplete uploads removes its parts)");
    }
    UploadError::Aborted {
        key: key.to_owned(),
        upload_id: upload_id.to_owned(),
        part,
        source: Box::new(source),
    }
}

/// Uploads `objects` with at most `settings.concurrency` in flight, calling `landed(seq)` for
/// each one as soon as it is in the bucket. After the first failure no new object starts; the
/// ones in flight finish (and are reported), then the first error is returned.
pub async fn upload_all(
    s3: &S3,
    objects: Vec<ObjectRecord>,
    settings: &UploadSettings,
    cancel: &CancellationToken,
    mut landed: impl FnMut(&ObjectRecord) -> Result<(), UploadError>,
) -> Result<(), UploadError> {
    let mut queue = objects.into_iter();
    let mut running: JoinSet<(ObjectRecord, Result<(), UploadError>)> = JoinSet::new();
    let mut first_error: Option<UploadError> = None;
    loop {
        while first_error.is_none()
            && !cancel.is_cancelled()
            && running.len() < settings.concurrency.max(1)
        {
            let Some(o) = queue.next() else { break };
            let (s3, settings, cancel) = (s3.clone(), settings.clone(), cancel.clone());
            running.spawn(async move {
                let r = upload_object(&s3, &o, &settings, &cancel).await;
                (o, r)
            });
        }
        let Some(joined) = running.join_next().await else {
            break;
        };
        match joined {
            Ok((o, Ok(()))) => {
                if let Err(e) = landed(&o) {
                    first_error.get_or_insert(e);
                }
            }
            Ok((_, Err(e))) => {
                first_error.get_or_insert(e);
            }
            Err(join) => {
                first_error.get_or_insert(UploadError::Read {
                    path: PathBuf::new(),
                    key: String::new(),
                    source: io::Error::other(format!("upload task failed: {join}")),
                });
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    if cancel.is_cancelled() && queue.next().is_some() {
        return Err(UploadError::Cancelled {
            key: "(remaining objects)".into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_live_under_the_prefix() {
        assert_eq!(
            object_key(
                "products",
                "stays/year=2026/part-0123456789abcdef-0.parquet"
            ),
            "products/stays/year=2026/part-0123456789abcdef-0.parquet"
        );
        assert_eq!(
            object_key("", "stays/part-a-0.parquet"),
            "stays/part-a-0.parquet"
        );
        assert_eq!(object_key("/a/b/", "s/x"), "a/b/s/x");
    }

    #[test]
    fn parts_cover_the_object() {
        assert_eq!(part_ranges(10, 4), vec![(0, 4), (4, 4), (8, 2)]);
        assert_eq!(part_ranges(8, 4), vec![(0, 4), (4, 4)]);
        assert!(part_ranges(0, 4).is_empty());
    }
}
