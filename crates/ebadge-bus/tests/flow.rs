//! Acknowledgements keep the stream flowing past the prefetch window, for an application that
//! reads its inbox in another task while the same client runs requests.

mod common;

use common::*;
use ebadge_bus::{ClientConfig, EntityName};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_messages_than_the_prefetch_window_all_arrive_when_acknowledged() {
    let profile = profile().await;
    let mut config = ClientConfig::new(profile.clone(), EntityName::new("cli-receiver").unwrap());
    config.prefetch = 5;
    let receiver = ebadge_bus::Client::connect(config).await.unwrap();
    let mut inbox = receiver.inbox().unwrap();
    drain(&mut inbox).await;
    let sender = client(&profile, "cli-sender").await;
    let to = EntityName::new("cli-receiver").unwrap();
    for n in 0..50 {
        sender.send(&to, &numbered_report(n)).unwrap();
    }
    sender.flush().await.expect("every message delivered");
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        while got.len() < 50 {
            match tokio::time::timeout(Duration::from_secs(10), inbox.next()).await {
                Ok(Some(i)) => {
                    i.ack();
                    got.extend(number_of(&i.message));
                }
                _ => break,
            }
        }
        got
    });
    let got = reader.await.unwrap();
    assert_exactly_once_in_order(&got, 0, 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coalesced_acknowledgements_never_cover_a_message_the_application_still_holds() {
    let profile = profile().await;
    let to = EntityName::new("ack-receiver").unwrap();
    {
        let first = ebadge_bus::Client::connect(ClientConfig::new(profile.clone(), to.clone()))
            .await
            .unwrap();
        let mut inbox = first.inbox().unwrap();
        drain(&mut inbox).await;
        let sender = client(&profile, "ack-sender").await;
        for n in 0..10 {
            sender.send(&to, &numbered_report(n)).unwrap();
        }
        sender.flush().await.expect("every message delivered");
        // Hold message 0, acknowledge 1..9 (a multiple ack up to 9 would take 0 with it).
        let held = tokio::time::timeout(Duration::from_secs(10), inbox.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(number_of(&held.message), Some(0));
        for _ in 1..10 {
            let i = tokio::time::timeout(Duration::from_secs(10), inbox.next())
                .await
                .unwrap()
                .unwrap();
            i.ack();
        }
        first.close(Duration::from_secs(2)).await;
    }
    let second = client(&profile, "ack-receiver").await;
    let mut inbox = second.inbox().unwrap();
    let again = tokio::time::timeout(Duration::from_secs(10), inbox.next())
        .await
        .unwrap()
        .unwrap();
    again.ack();
    assert_eq!(
        number_of(&again.message),
        Some(0),
        "the held message comes back"
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(500), inbox.next())
            .await
            .is_err(),
        "and only it"
    );
}
