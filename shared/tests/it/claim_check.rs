//! The claim check end to end: an announcement over 200 KiB is stored as its manifest in the
//! product's bucket, the pointer travels through SQS, and the reader gets the full announcement
//! back from S3.

use aws_sdk_s3::primitives::ByteStream;
use lakemesh_shared::announcement::{Announcement, Envelope, MAX_INLINE_BODY_BYTES};
use lakemesh_shared::testbed::Emulator;

use crate::support::announcement;

#[tokio::test]
async fn manifest_round_trip_through_s3_and_sqs() {
    let e = Emulator::shared().unwrap();
    let sdk = e.sdk_config().await;
    let (s3, sqs) = (e.s3(&sdk), e.sqs(&sdk));
    let bucket = e.fresh_bucket("claimcheck").await.unwrap();
    let queue = e.fresh_queue("claimcheck").await.unwrap();

    // Sender: 3000 objects do not fit in a message.
    let a = announcement(&bucket, 3000);
    assert!(a.to_json().len() > MAX_INLINE_BODY_BYTES);
    let Envelope::ClaimCheck {
        body,
        manifest_bucket,
        manifest_key,
        manifest,
    } = a.envelope().unwrap()
    else {
        panic!("expected a claim check");
    };
    assert_eq!(manifest_bucket, bucket);
    assert_eq!(
        manifest_key,
        format!(
            "products/_lakemesh/manifests/hospital_stays/{}.json",
            a.announcement_id
        )
    );
    s3.put_object()
        .bucket(&manifest_bucket)
        .key(&manifest_key)
        .content_type("application/json")
        .body(ByteStream::from(manifest))
        .send()
        .await
        .unwrap();
    sqs.send_message()
        .queue_url(&queue)
        .message_body(&body)
        .send()
        .await
        .unwrap();

    // Receiver: the pointer names the manifest; the manifest is the announcement.
    let got = sqs
        .receive_message()
        .queue_url(&queue)
        .wait_time_seconds(2)
        .send()
        .await
        .unwrap();
    let pointer = Announcement::from_json(got.messages()[0].body().unwrap().as_bytes()).unwrap();
    assert!(pointer.is_claim_check());
    let (b, k) = pointer.manifest_location().unwrap();
    assert_eq!(
        (b.as_str(), k.as_str()),
        (bucket.as_str(), manifest_key.as_str())
    );
    let object = s3.get_object().bucket(&b).key(&k).send().await.unwrap();
    let bytes = object.body.collect().await.unwrap().into_bytes();
    let full = pointer.from_manifest(&bytes).unwrap();
    assert_eq!(full, a);
    assert_eq!(full.objects.as_ref().map(Vec::len), Some(3000));
}
