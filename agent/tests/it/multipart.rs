//! Multipart upload through the upload module against the emulator: an object above the
//! threshold goes in parts with SHA-256 checksums, reads back identical, and leaves no
//! incomplete upload; a spool file that changed is refused before anything is sent.

use lakemesh_agent::ledger::ObjectRecord;
use lakemesh_agent::s3::S3;
use lakemesh_agent::upload::{UploadError, UploadSettings, upload_object};
use lakemesh_shared::testbed::Emulator;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

const MIB: u64 = 1024 * 1024;

fn settings() -> UploadSettings {
    UploadSettings {
        multipart_threshold_bytes: 5 * MIB,
        part_bytes: 5 * MIB,
        part_attempts: 3,
        concurrency: 2,
        part_retry_initial: std::time::Duration::from_millis(100),
    }
}

/// 11 MiB of bytes that do not repeat: three parts (5, 5, 1 MiB).
fn eleven_mib() -> Vec<u8> {
    let mut out = Vec::with_capacity(11 * MIB as usize);
    let mut block = Sha256::digest(b"seed").to_vec();
    while out.len() < 11 * MIB as usize {
        block = Sha256::digest(&block).to_vec();
        out.extend_from_slice(&block);
    }
    out.truncate(11 * MIB as usize);
    out
}

#[tokio::test]
async fn a_large_object_goes_in_parts_and_reads_back_whole() {
    let e = Emulator::shared().unwrap();
    let bucket = e.fresh_bucket("multipart").await.unwrap();
    let client = e.s3(&e.sdk_config().await);
    let s3 = S3::new(client.clone(), &bucket);
    let dir = tempfile::tempdir().unwrap();
    let bytes = eleven_mib();
    let path = dir.path().join("part-0.parquet");
    std::fs::write(&path, &bytes).unwrap();
    let key = "products/stays/year=2024/part-0123456789abcdef-0.parquet";
    let object = ObjectRecord {
        seq: 0,
        key: key.into(),
        local_path: path.clone(),
        bytes: bytes.len() as u64,
        sha256: hex::encode(Sha256::digest(&bytes)),
        uploaded: false,
    };
    upload_object(&s3, &object, &settings(), &CancellationToken::new())
        .await
        .unwrap();
    let got = client
        .get_object()
        .bucket(&bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    let body = got.body.collect().await.unwrap().into_bytes();
    assert_eq!(body.len(), bytes.len());
    assert!(body[..] == bytes[..]);
    let open = client
        .list_multipart_uploads()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    assert!(open.uploads().is_empty(), "{:?}", open.uploads());

    // The spool file changed after conversion: refused, nothing sent.
    std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
    let err = upload_object(&s3, &object, &settings(), &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(
        matches!(err, UploadError::Changed { .. }) && err.needs_reconversion(),
        "{err}"
    );
}

#[tokio::test]
async fn a_multipart_upload_that_cannot_complete_is_aborted() {
    let e = Emulator::shared().unwrap();
    let bucket = e.fresh_bucket("abort").await.unwrap();
    let client = e.s3(&e.sdk_config().await);
    let s3 = S3::new(client.clone(), &bucket);
    let dir = tempfile::tempdir().unwrap();
    let bytes = eleven_mib();
    let path = dir.path().join("part-0.parquet");
    std::fs::write(&path, &bytes).unwrap();
    let object = ObjectRecord {
        seq: 0,
        key: "products/stays/part-0123456789abcdef-0.parquet".into(),
        local_path: path,
        bytes: bytes.len() as u64,
        sha256: hex::encode(Sha256::digest(&bytes)),
        uploaded: false,
    };
    // Parts below S3's 5 MiB minimum: every part is accepted, CompleteMultipartUpload is refused
    // (EntityTooSmall), and the upload must not be left behind.
    let small = UploadSettings {
        multipart_threshold_bytes: MIB,
        part_bytes: 2 * MIB,
        ..settings()
    };
    let err = upload_object(&s3, &object, &small, &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(matches!(err, UploadError::Aborted { .. }), "{err}");
    assert!(err.to_string().contains("EntityTooSmall"), "{err}");
    let open = client
        .list_multipart_uploads()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    assert!(open.uploads().is_empty(), "{:?}", open.uploads());
    let listed = client
        .list_objects_v2()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    assert!(listed.contents().is_empty());
}
