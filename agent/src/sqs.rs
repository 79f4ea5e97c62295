//! The SQS adapter: sending announcements to the governance account's queue.
//!
//! Owns SendMessage (with message attributes), GetQueueAttributes (check-config) and what their
//! errors mean ([`SqsError::is_transient`]). `SdkError` never leaves this module. Does not build
//! the message ([`crate::announce`]).

use aws_sdk_sqs::types::{MessageAttributeValue, QueueAttributeName};
use lakemesh_shared::announcement::MessageAttribute;

use crate::sdk_error::classify;

/// A failed SQS call, with the queue.
#[derive(Debug, thiserror::Error)]
#[error("queue {queue}: {operation}: {message}")]
pub struct SqsError {
    /// The queue URL.
    pub queue: String,
    /// The API call.
    pub operation: &'static str,
    /// The SDK's error chain.
    pub message: String,
    /// The service's code, when it answered with one.
    pub code: Option<String>,
    transient: bool,
}

impl SqsError {
    /// Whether a later attempt may succeed (network trouble, throttling, server errors).
    pub fn is_transient(&self) -> bool {
        self.transient
    }
}

/// The announcement queue.
#[derive(Debug, Clone)]
pub struct Sqs {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl Sqs {
    /// The adapter for `queue_url` through `client`.
    pub fn new(client: aws_sdk_sqs::Client, queue_url: &str) -> Self {
        Self {
            client,
            queue_url: queue_url.to_owned(),
        }
    }

    /// The queue URL.
    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    fn fail(
        &self,
        operation: &'static str,
        message: String,
        code: Option<String>,
        transient: bool,
    ) -> SqsError {
        SqsError {
            queue: self.queue_url.clone(),
            operation,
            message,
            code,
            transient,
        }
    }

    /// SendMessage of `body` with `attributes`; returns the message id.
    pub async fn send_message(
        &self,
        body: &str,
        attributes: &[MessageAttribute],
    ) -> Result<String, SqsError> {
        let mut req = self
            .client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body);
        for a in attributes {
            let value = MessageAttributeValue::builder()
                .data_type(a.data_type)
                .string_value(&a.value)
                .build()
                .map_err(|e| {
                    self.fail(
                        "SendMessage",
                        format!("message attribute {}: {e}", a.name),
                        None,
                        false,
                    )
                })?;
            req = req.message_attributes(a.name, value);
        }
        let out = req.send().await.map_err(|e| {
            let f = classify(&e);
            self.fail("SendMessage", f.message, f.code, f.transient)
        })?;
        out.message_id.ok_or_else(|| {
            self.fail(
                "SendMessage",
                "the answer has no MessageId".into(),
                None,
                true,
            )
        })
    }

    /// GetQueueAttributes: the queue exists and these credentials may see it.
    pub async fn get_queue_attributes(&self) -> Result<(), SqsError> {
        self.client
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                let f = classify(&e);
                self.fail("GetQueueAttributes", f.message, f.code, f.transient)
            })
    }
}
