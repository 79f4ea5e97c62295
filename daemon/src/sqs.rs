//! SQS adapter: receiving announcements (long polling, message and system attributes),
//! extending and resetting their visibility, deleting them, reading queue attributes.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use lakemesh_shared::announcement::{ATTR_ANNOUNCEMENT_VERSION, ATTR_PRODUCER_ID};

use crate::aws_error::AwsError;

const SERVICE: &str = "SQS";

/// One received message.
#[derive(Debug, Clone)]
pub struct Received {
    /// SQS message id.
    pub message_id: String,
    /// Handle for visibility changes and deletion.
    pub receipt_handle: String,
    /// The body.
    pub body: String,
    /// `SenderId` system attribute.
    pub sender_id: Option<String>,
    /// `ApproximateReceiveCount` (1 on the first delivery).
    pub receive_count: u32,
    /// `producer_id` message attribute.
    pub producer_id: Option<String>,
    /// `announcement_version` message attribute.
    pub announcement_version: Option<String>,
}

/// A queue.
#[derive(Debug, Clone)]
pub struct Sqs {
    client: Client,
    queue_url: String,
}

fn secs(d: Duration) -> i32 {
    i32::try_from(d.as_secs()).unwrap_or(i32::MAX)
}

impl Sqs {
    /// The queue at `queue_url`.
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }

    /// The queue URL.
    pub fn url(&self) -> &str {
        &self.queue_url
    }

    /// Receives up to `max` (1-10) messages, waiting up to `wait` for the first, hidden for
    /// `visibility`.
    pub async fn receive(
        &self,
        max: i32,
        wait: Duration,
        visibility: Duration,
    ) -> Result<Vec<Received>, AwsError> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(max.clamp(1, 10))
            .wait_time_seconds(secs(wait))
            .visibility_timeout(secs(visibility))
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::SenderId)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, "ReceiveMessage", &self.queue_url, e))?;
        let mut messages = Vec::new();
        for m in out.messages() {
            let (Some(id), Some(handle)) = (m.message_id(), m.receipt_handle()) else {
                return Err(AwsError::invalid_answer(
                    SERVICE,
                    "ReceiveMessage",
                    &self.queue_url,
                    "a message without MessageId or ReceiptHandle",
                ));
            };
            let system = |name: &MessageSystemAttributeName| {
                m.attributes().and_then(|a| a.get(name)).cloned()
            };
            let attr = |name: &str| {
                m.message_attributes()
                    .and_then(|a| a.get(name))
                    .and_then(|v| v.string_value())
                    .map(str::to_owned)
            };
            messages.push(Received {
                message_id: id.to_owned(),
                receipt_handle: handle.to_owned(),
                body: m.body().unwrap_or_default().to_owned(),
                sender_id: system(&MessageSystemAttributeName::SenderId),
                receive_count: system(&MessageSystemAttributeName::ApproximateReceiveCount)
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(1),
                producer_id: attr(ATTR_PRODUCER_ID),
                announcement_version: attr(ATTR_ANNOUNCEMENT_VERSION),
            });
        }
        Ok(messages)
    }

    /// Sets a message's visibility timeout (0 makes it visible again now).
    pub async fn set_visibility(
        &self,
        receipt: &str,
        visibility: Duration,
    ) -> Result<(), AwsError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt)
            .visibility_timeout(secs(visibility))
            .send()
            .await
            .map_err(|e| {
                AwsError::from_sdk(SERVICE, "ChangeMessageVisibility", &self.queue_url, e)
            })?;
        Ok(())
    }

    /// Deletes a message.
    pub async fn delete(&self, receipt: &str) -> Result<(), AwsError> {
        self.client
            .delete_message()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, "DeleteMessage", &self.queue_url, e))?;
        Ok(())
    }

    /// Every attribute of the queue at `url` (`QueueArn`, `RedrivePolicy`, …) by name.
    pub async fn attributes(&self, url: &str) -> Result<HashMap<String, String>, AwsError> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::All)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, "GetQueueAttributes", url, e))?;
        Ok(out
            .attributes()
            .map(|a| {
                a.iter()
                    .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
                    .collect()
            })
            .unwrap_or_default())
    }
}

/// `maxReceiveCount` and `deadLetterTargetArn` of a `RedrivePolicy` attribute.
pub fn redrive(policy: &str) -> Option<(u32, String)> {
    let v: serde_json::Value = serde_json::from_str(policy).ok()?;
    let count = match &v["maxReceiveCount"] {
        serde_json::Value::Number(n) => u32::try_from(n.as_u64()?).ok()?,
        serde_json::Value::String(s) => s.parse().ok()?,
        _ => return None,
    };
    Some((count, v["deadLetterTargetArn"].as_str()?.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redrive_policy_in_both_spellings() {
        assert_eq!(
            redrive(
                r#"{"deadLetterTargetArn":"arn:aws:sqs:eu-west-3:1:dlq","maxReceiveCount":"3"}"#
            ),
            Some((3, "arn:aws:sqs:eu-west-3:1:dlq".into()))
        );
        assert_eq!(
            redrive(r#"{"deadLetterTargetArn":"arn:x","maxReceiveCount":5}"#),
            Some((5, "arn:x".into()))
        );
        assert_eq!(redrive("{}"), None);
    }
}
