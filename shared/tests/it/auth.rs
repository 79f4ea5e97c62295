//! IAM enforcement (`reset-auth`) on a dedicated emulator: a user holding a least-privilege
//! policy may do what it allows and nothing else; the static test credentials stop working.

use aws_sdk_s3::primitives::ByteStream;
use lakemesh_shared::testbed::Emulator;

fn code<E: aws_sdk_s3::error::ProvideErrorMetadata>(e: &E) -> Option<String> {
    // The error's code (`AccessDenied`), as the SDK parsed it.
    e.code().map(str::to_owned)
}

#[tokio::test]
async fn actions_outside_the_policy_are_denied() {
    // Dedicated: enforcement is global to the emulator and would break every other test.
    let e = Emulator::start().unwrap();
    let bucket = e.fresh_bucket("least-privilege").await.unwrap();
    let queue = e.fresh_queue("least-privilege").await.unwrap();
    let policy = format!(
        r#"{{"Version": "2012-10-17", "Statement": [
            {{"Effect": "Allow", "Action": ["s3:PutObject", "s3:GetObject"],
              "Resource": "arn:aws:s3:::{bucket}/products/*"}}]}}"#
    );
    let user = e.create_user("agent", &policy).await.unwrap();
    assert!(
        user.arn.ends_with(&format!(":user/{}", user.name)),
        "{}",
        user.arn
    );
    e.reset_auth(0).unwrap();

    let as_user = e.sdk_config_as(&user).await;
    let s3 = e.s3(&as_user);
    s3.put_object()
        .bucket(&bucket)
        .key("products/hospital_stays/a.parquet")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap();
    s3.get_object()
        .bucket(&bucket)
        .key("products/hospital_stays/a.parquet")
        .send()
        .await
        .unwrap();

    // Outside the policy: another action, another key, another service.
    let err = s3
        .delete_object()
        .bucket(&bucket)
        .key("products/hospital_stays/a.parquet")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code(&err).as_deref(),
        Some("AccessDenied"),
        "{}",
        aws_sdk_s3::error::DisplayErrorContext(&err)
    );
    let err = s3
        .put_object()
        .bucket(&bucket)
        .key("elsewhere/a.parquet")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err).as_deref(), Some("AccessDenied"));
    let err = e
        .sqs(&as_user)
        .send_message()
        .queue_url(&queue)
        .message_body("{}")
        .send()
        .await
        .unwrap_err();
    // moto 5.2.5 renders SQS's auth errors in the query protocol's XML while the SDK speaks
    // JSON, so the SDK sees an unparsed 403 rather than the AccessDenied code S3 gives above.
    let raw = err.raw_response().expect("a response");
    let text = String::from_utf8_lossy(raw.body().bytes().unwrap_or_default()).into_owned();
    assert_eq!(raw.status().as_u16(), 403, "{text}");
    assert!(
        text.contains("AccessDenied") && text.contains("sqs:SendMessage"),
        "{text}"
    );

    // Unknown credentials are refused outright.
    let anonymous = e.s3(&e.sdk_config().await);
    let err = anonymous
        .get_object()
        .bucket(&bucket)
        .key("products/hospital_stays/a.parquet")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code(&err).as_deref(),
        Some("InvalidAccessKeyId"),
        "{}",
        aws_sdk_s3::error::DisplayErrorContext(&err)
    );

    // And off again.
    e.disable_auth().unwrap();
    anonymous
        .delete_object()
        .bucket(&bucket)
        .key("products/hospital_stays/a.parquet")
        .send()
        .await
        .unwrap();
}
