//! Helpers of the client tests: clients for the test registry's entities, numbered reports, and
//! a collector that checks every number arrives exactly once and in order.

#![allow(dead_code)]

use ebadge_bus::{Client, ClientConfig, EntityName, Inbox, Profile};
use ebadge_model::Message;
use std::time::Duration;

/// The shared test broker's profile.
pub async fn profile() -> Profile {
    ebadge_testkit::profile().await
}

/// The profile with the broker address replaced by `addr` (a proxy in front of it).
pub fn via(profile: &Profile, addr: std::net::SocketAddr) -> Profile {
    let mut p = profile.clone();
    p.amqps_url = format!("amqps://localhost:{}", addr.port());
    p
}

/// The broker address of a profile.
pub fn broker_addr(profile: &Profile) -> std::net::SocketAddr {
    let (_, port) = profile.host_and_port().unwrap();
    std::net::SocketAddr::from(([127, 0, 0, 1], port))
}

/// A client with a short reconnect ceiling (the tests cut links for seconds).
pub async fn client(profile: &Profile, name: &str) -> Client {
    let mut config = ClientConfig::new(profile.clone(), EntityName::new(name).unwrap());
    config.reconnect_max = Duration::from_secs(1);
    Client::connect(config).await.unwrap()
}

/// A report carrying its number in an extension field.
pub fn numbered_report(n: u64) -> Message {
    Message::decode(&format!(
        r#"{{"msg":"report","from":"2013-07-21T10:00:00Z","to":"2013-07-21T10:01:00Z","resolution":60,"values":{{"total.p":[1.5]}},"heh_id":null,"ext_test_seq":{n}}}"#
    ))
    .unwrap()
}

/// The number of a numbered report.
pub fn number_of(message: &Message) -> Option<u64> {
    message.extensions()?.get("ext_test_seq")?.as_u64()
}

/// Reads numbered reports from `sender` until `count` distinct numbers arrived or `patience`
/// passes without progress; returns the numbers in arrival order (duplicates included, so the
/// caller can assert there are none).
pub async fn collect(inbox: &mut Inbox, sender: &str, count: u64, patience: Duration) -> Vec<u64> {
    let mut numbers = Vec::new();
    let mut distinct = std::collections::BTreeSet::new();
    while (distinct.len() as u64) < count {
        match tokio::time::timeout(patience, inbox.next()).await {
            Ok(Some(incoming)) => {
                incoming.ack();
                if incoming.from.as_str() == sender
                    && let Some(n) = number_of(&incoming.message)
                {
                    numbers.push(n);
                    distinct.insert(n);
                }
            }
            _ => break,
        }
    }
    numbers
}

/// Asserts the numbers are exactly `0..count`, each once, in any order (`what` names them).
pub fn assert_each_once_any_order(numbers: &[u64], count: u64, what: &str) {
    let distinct: std::collections::BTreeSet<u64> = numbers.iter().copied().collect();
    assert_eq!(
        distinct,
        (0..count).collect(),
        "every one of {what} arrived"
    );
    assert_eq!(numbers.len() as u64, count, "each of {what} once");
}

/// Asserts the numbers are exactly `first..first+count`, each once, in order.
pub fn assert_exactly_once_in_order(numbers: &[u64], first: u64, count: u64) {
    let expected: Vec<u64> = (first..first + count).collect();
    if numbers != expected {
        let missing: Vec<_> = expected
            .iter()
            .filter(|n| !numbers.contains(n))
            .take(10)
            .collect();
        let mut sorted = numbers.to_vec();
        sorted.sort();
        let duplicates = sorted.windows(2).filter(|w| w[0] == w[1]).count();
        let out_of_order = numbers.windows(2).filter(|w| w[0] > w[1]).count();
        panic!(
            "got {} numbers for {count}: first missing {missing:?}, {duplicates} duplicates, {out_of_order} out of order",
            numbers.len()
        );
    }
}

/// Drains leftovers of earlier runs from an inbox (messages of other numbers).
pub async fn drain(inbox: &mut Inbox) {
    while let Ok(Some(incoming)) =
        tokio::time::timeout(Duration::from_millis(300), inbox.next()).await
    {
        incoming.ack();
    }
}

/// An entity name the test registry has.
pub fn name(s: &str) -> EntityName {
    EntityName::new(s).unwrap()
}

/// Waits until `done`, failing the test after `patience` (naming `what`).
pub async fn wait_for(what: &str, patience: Duration, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + patience;
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "waited {patience:?} for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Publishes raw `bodies` as `sender` to `exchange` (routing key `report`), the way a buggy or
/// hostile peer would, as fast as the channel takes them.
pub async fn publish_raw(sender: &str, exchange: &str, bodies: impl IntoIterator<Item = Vec<u8>>) {
    let connection = ebadge_testkit::connect(sender).await;
    let channel = connection.open_channel(None).await.unwrap();
    for body in bodies {
        let mut props = amqprs::BasicProperties::default();
        props
            .with_message_id(&uuid::Uuid::new_v4().to_string())
            .with_user_id(sender)
            .with_persistence(true);
        channel
            .basic_publish(
                props,
                body,
                amqprs::channel::BasicPublishArguments::new(exchange, "report"),
            )
            .await
            .unwrap();
    }
    // The broker handles a channel's publishes before its close.
    channel.close().await.unwrap();
    connection.close().await.unwrap();
}
