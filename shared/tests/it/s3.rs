//! S3 through the emulator: an object put with a SHA-256 checksum reads back with it.
//!
//! Not tested here: that a wrong checksum is refused. moto 5.2.5 stores and returns whatever
//! `x-amz-checksum-sha256` the client sends, where S3 answers BadDigest.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode};
use lakemesh_shared::testbed::Emulator;

use crate::support::sha256_base64;

#[tokio::test]
async fn put_with_sha256_checksum_and_read_it_back() {
    let e = Emulator::shared().unwrap();
    let bucket = e.fresh_bucket("checksum").await.unwrap();
    let s3 = e.s3(&e.sdk_config().await);
    let body = b"PAR1 not really parquet, but bytes all the same".repeat(100);
    let sum = sha256_base64(&body);

    let put = s3
        .put_object()
        .bucket(&bucket)
        .key("products/hospital_stays/year=2026/part-0123456789abcdef-0.parquet")
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .checksum_sha256(&sum)
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(put.checksum_sha256(), Some(sum.as_str()));

    let got = s3
        .get_object()
        .bucket(&bucket)
        .key("products/hospital_stays/year=2026/part-0123456789abcdef-0.parquet")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .unwrap();
    assert_eq!(got.checksum_sha256(), Some(sum.as_str()));
    assert_eq!(got.content_length(), Some(body.len() as i64));
    let bytes = got.body.collect().await.unwrap().into_bytes();
    assert_eq!(&bytes[..], &body[..]);
}
