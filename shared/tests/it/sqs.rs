//! SQS through the emulator: an announcement with its message attributes, received with
//! SenderId and read back.

use aws_sdk_sqs::types::{MessageAttributeValue, MessageSystemAttributeName};
use lakemesh_shared::announcement::{
    ATTR_ANNOUNCEMENT_VERSION, ATTR_PRODUCER_ID, Announcement, Envelope,
};
use lakemesh_shared::testbed::{Emulator, MOTO_SENDER_ID};

use crate::support::announcement;

#[tokio::test]
async fn announcement_with_attributes_round_trips_with_sender_id() {
    let e = Emulator::shared().unwrap();
    let queue = e.fresh_queue("announcements").await.unwrap();
    let sqs = e.sqs(&e.sdk_config().await);
    let a = announcement("chu-lyon-datamesh", 3);
    let Envelope::Inline { body } = a.envelope().unwrap() else {
        panic!("three objects fit inline");
    };

    let mut send = sqs.send_message().queue_url(&queue).message_body(&body);
    for attr in a.message_attributes() {
        send = send.message_attributes(
            attr.name,
            MessageAttributeValue::builder()
                .data_type(attr.data_type)
                .string_value(attr.value)
                .build()
                .unwrap(),
        );
    }
    let sent = send.send().await.unwrap();

    let got = sqs
        .receive_message()
        .queue_url(&queue)
        .message_attribute_names("All")
        .message_system_attribute_names(MessageSystemAttributeName::SenderId)
        .wait_time_seconds(2)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap();
    let messages = got.messages();
    assert_eq!(messages.len(), 1);
    let m = &messages[0];
    assert_eq!(m.message_id(), sent.message_id());
    let sender = m
        .attributes()
        .and_then(|a| a.get(&MessageSystemAttributeName::SenderId))
        .map(String::as_str);
    assert_eq!(sender, Some(MOTO_SENDER_ID));
    let attr = |name: &str| {
        m.message_attributes()
            .and_then(|a| a.get(name))
            .and_then(|v| v.string_value())
    };
    assert_eq!(
        m.message_attributes()
            .and_then(|a| a.get(ATTR_ANNOUNCEMENT_VERSION))
            .map(|v| v.data_type()),
        Some("Number")
    );
    let back = Announcement::from_json(m.body().unwrap().as_bytes()).unwrap();
    back.check_message_attributes(attr(ATTR_PRODUCER_ID), attr(ATTR_ANNOUNCEMENT_VERSION))
        .unwrap();
    assert_eq!(back, a);
}
