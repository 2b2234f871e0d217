//! What the broker answers to a publish, and what the client makes of it, on the real broker:
//! a publish refused for good (no such exchange) leaves the outbox with its reason and the others
//! go on; a message no queue takes (published mandatory) is kept and delivered once a queue
//! takes it; a nack delays only the refused message; messages the cap dropped are reported; a
//! message the application holds is acknowledged only by the application, across a reconnect;
//! quarantine copies are kept apart from the outbox.

mod common;

use common::*;
use ebadge_bus::{Client, ClientConfig, SendError};
use ebadge_testkit::proxy::Proxy;
use std::time::{Duration, Instant};

/// The tests of this file share a sender and its receivers: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_refused_for_good_leaves_the_outbox_with_its_reason_and_the_others_go_on() {
    let _serial = SERIAL.lock().await;
    let profile = profile().await;
    let receiver = client(&profile, "set-ok").await;
    let mut inbox = receiver.inbox().unwrap();
    drain(&mut inbox).await;
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("outbox.sqlite");
    let mut config = ClientConfig::new(profile.clone(), name("set-sender"));
    config.durable_outbox = Some(outbox.clone());
    let sender = Client::connect(config).await.unwrap();

    // set-sender has no link with set-stranger: its exchange does not exist (404).
    sender.send(&name("set-ok"), &numbered_report(0)).unwrap();
    sender
        .send(&name("set-stranger"), &numbered_report(1))
        .unwrap();
    for n in 2..=10 {
        sender.send(&name("set-ok"), &numbered_report(n)).unwrap();
    }
    let flushed = tokio::time::timeout(Duration::from_secs(30), sender.flush())
        .await
        .expect("the refused message does not block the outbox");
    let Err(SendError::Undelivered(lost)) = flushed else {
        panic!("the refused message is reported: {flushed:?}");
    };
    assert_eq!(lost.len(), 1, "{lost:?}");
    assert_eq!(lost[0].exchange, "set-sender-to-set-stranger");
    assert!(lost[0].reason.contains("404"), "{}", lost[0].reason);
    let counters = sender.counters();
    assert_eq!((counters.failed, counters.buffered), (1, 0), "{counters:?}");

    let mut numbers = collect(&mut inbox, "set-sender", 10, Duration::from_secs(10)).await;
    numbers.sort();
    assert_eq!(numbers, [0, 2, 3, 4, 5, 6, 7, 8, 9, 10], "each once");
    // The operator finds it in the durable outbox's table `failed`.
    sender.close(Duration::from_secs(1)).await;
    let db = rusqlite::Connection::open(&outbox).unwrap();
    let (exchange, reason): (String, String) = db
        .query_row("SELECT exchange, reason FROM failed", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(exchange, "set-sender-to-set-stranger");
    assert!(reason.contains("no exchange"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unroutable_message_is_kept_and_delivered_once_a_queue_takes_it() {
    let _serial = SERIAL.lock().await;
    let profile = profile().await;
    let admin = ebadge_testkit::admin().await;
    admin
        .delete_queue("/", "private-set-noroute-inbox", true)
        .await
        .unwrap();
    let sender = client(&profile, "set-sender").await;
    for n in 0..3 {
        sender
            .send(&name("set-noroute"), &numbered_report(n))
            .unwrap();
    }
    // Without `mandatory` the broker would confirm them and they would be gone.
    wait_for("three returns", Duration::from_secs(10), || {
        sender.counters().returned >= 3
    })
    .await;
    let counters = sender.counters();
    assert_eq!(counters.buffered, 3, "kept: {counters:?}");
    assert_eq!(counters.confirmed, 0, "{counters:?}");

    // The operator provisions the inbox again: the retries reach it.
    ebadge_testkit::provision_registry().await;
    let receiver = client(&profile, "set-noroute").await;
    let mut inbox = receiver.inbox().unwrap();
    tokio::time::timeout(Duration::from_secs(40), sender.flush())
        .await
        .expect("delivered once routable")
        .expect("nothing given up");
    let numbers = collect(&mut inbox, "set-sender", 3, Duration::from_secs(10)).await;
    assert_exactly_once_in_order(&numbers, 0, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nack_delays_only_the_refused_messages() {
    let _serial = SERIAL.lock().await;
    let profile = profile().await;
    let full_inbox = "private-set-full-inbox";
    let admin = ebadge_testkit::admin().await;
    admin.purge_queue("/", full_inbox).await.unwrap();
    ebadge_testkit::bound_queue(
        &ebadge_testkit::management(),
        "test-set-full",
        full_inbox,
        900_000,
        5,
    )
    .await;
    let ok = client(&profile, "set-ok").await;
    let mut ok_inbox = ok.inbox().unwrap();
    drain(&mut ok_inbox).await;
    let before = ok.counters().duplicates;
    let sender = client(&profile, "set-sender").await;

    for n in 0..20 {
        sender.send(&name("set-full"), &numbered_report(n)).unwrap();
        sender.send(&name("set-ok"), &numbered_report(n)).unwrap();
    }
    let numbers = collect(&mut ok_inbox, "set-sender", 20, Duration::from_secs(10)).await;
    assert_exactly_once_in_order(&numbers, 0, 20);
    wait_for("nacks", Duration::from_secs(10), || {
        sender.counters().nacked >= 15
    })
    .await;
    // Let a few retries happen: only the refused messages go again.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        ok.counters().duplicates - before,
        0,
        "no healthy message was published twice"
    );
    // Seen later than 4 s when this ran right after the migration tests in `make test` (cause
    // not found): the replacement gets more time, the assertion stays.
    wait_for(
        "the nack-only channel replaced",
        Duration::from_secs(15),
        || sender.counters().channels_reopened >= 1,
    )
    .await;
    let counters = sender.counters();
    assert!(counters.republished <= counters.nacked, "{counters:?}");
    assert!(
        counters.channels_reopened >= 1,
        "a channel with only nacks for two seconds is replaced: {counters:?}"
    );
    assert!(counters.buffered >= 15, "refused ones kept: {counters:?}");

    // Room again: every refused message arrives, once.
    admin
        .delete_policy("/", "test-set-full", true)
        .await
        .unwrap();
    let full = client(&profile, "set-full").await;
    let mut full_inbox = full.inbox().unwrap();
    let numbers = collect(&mut full_inbox, "set-sender", 20, Duration::from_secs(40)).await;
    let mut sorted = numbers.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 20, "all 20 arrived: {numbers:?}");
    assert_eq!(numbers.len(), 20, "each once: {numbers:?}");
    tokio::time::timeout(Duration::from_secs(40), sender.flush())
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_reports_the_messages_the_outbox_cap_dropped() {
    let _serial = SERIAL.lock().await;
    let profile = profile().await;
    let ok = client(&profile, "set-ok").await;
    let mut inbox = ok.inbox().unwrap();
    drain(&mut inbox).await;
    let mut config = ClientConfig::new(profile.clone(), name("set-sender"));
    config.outbox_cap = 2;
    let sender = Client::connect(config).await.unwrap();
    // Five sends in a row, before the session task can publish one: the cap keeps two.
    for n in 0..5 {
        sender.send(&name("set-ok"), &numbered_report(n)).unwrap();
    }
    let Err(SendError::Undelivered(lost)) = sender.flush().await else {
        panic!("flush must not call dropped messages confirmed");
    };
    assert_eq!(lost.iter().map(|l| l.seq).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(lost[0].reason.contains("at most 2"), "{}", lost[0].reason);
    assert!(
        sender.flush().await.is_ok(),
        "each undelivered message is reported once"
    );
    let numbers = collect(&mut inbox, "set-sender", 2, Duration::from_secs(10)).await;
    assert_exactly_once_in_order(&numbers, 3, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_message_is_acknowledged_only_by_the_application_across_a_reconnect() {
    let profile = profile().await;
    let proxy = Proxy::start(broker_addr(&profile)).await.unwrap();
    let first = client(&via(&profile, proxy.addr), "hold-op").await;
    let mut inbox = first.inbox().unwrap();
    drain(&mut inbox).await;
    let sender = client(&profile, "hold-heh").await;
    sender
        .send_confirmed(&name("hold-op"), &numbered_report(1))
        .await
        .unwrap();
    let held = tokio::time::timeout(Duration::from_secs(10), inbox.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(number_of(&held.message), Some(1));

    // The link drops while the application holds the message; the broker redelivers it.
    proxy.cut();
    wait_for("the loss", Duration::from_secs(30), || {
        !first.is_connected()
    })
    .await;
    proxy.restore();
    wait_for("the reconnect", Duration::from_secs(30), || {
        first.is_connected()
    })
    .await;
    wait_for("the redelivery", Duration::from_secs(10), || {
        first.counters().duplicates >= 1
    })
    .await;
    // The application crashes before it acknowledged: the message must come back.
    first.close(Duration::from_secs(1)).await;
    drop(held);
    let second = client(&profile, "hold-op").await;
    let mut inbox = second.inbox().unwrap();
    let again = tokio::time::timeout(Duration::from_secs(10), inbox.next())
        .await
        .expect("the unacknowledged message is redelivered")
        .unwrap();
    assert_eq!(number_of(&again.message), Some(1));

    // Acknowledged after a reconnect, it is gone for good.
    again.ack();
    second.close(Duration::from_secs(1)).await;
    let third = client(&profile, "hold-op").await;
    let mut inbox = third.inbox().unwrap();
    assert!(
        tokio::time::timeout(Duration::from_secs(2), inbox.next())
            .await
            .is_err(),
        "acknowledged means gone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quarantine_copies_do_not_count_against_the_outbox_and_outlive_the_ttl() {
    let profile = profile().await;
    let mut config = ClientConfig::new(profile.clone(), name("qcap-op"));
    config.outbox_cap = 2;
    let receiver = Client::connect(config).await.unwrap();
    let quarantine = "private-qcap-op-quarantine";
    let api = ebadge_admin::mgmt::RawApi::new(&ebadge_testkit::management());
    // The quarantine is made on first use: missing counts as empty.
    let queued = || async {
        api.get(&format!("queues/%2F/{quarantine}"))
            .await
            .map_or(0, |q| q["messages"].as_u64().unwrap_or(0))
    };
    let before = queued().await;

    let connection = ebadge_testkit::connect("qcap-heh").await;
    let (channel, _) = ebadge_testkit::channel(&connection).await;
    for _ in 0..5 {
        // No from/to: invalid, so quarantined.
        ebadge_testkit::publish(
            &channel,
            "qcap-heh-to-qcap-op",
            "get_status_report",
            &ebadge_testkit::id(),
            None,
        )
        .await;
    }
    wait_for(
        "five confirmed quarantine copies",
        Duration::from_secs(10),
        || receiver.counters().quarantined >= 5,
    )
    .await;
    let counters = receiver.counters();
    assert_eq!(counters.dropped, 0, "{counters:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while queued().await < before + 5 {
        assert!(Instant::now() < deadline, "five copies in the quarantine");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // RabbitMQ 4.0's management API names a new queue's policy a statistics interval after
    // its first counts (3.10 names it at once).
    let info = loop {
        let info = api.get(&format!("queues/%2F/{quarantine}")).await.unwrap();
        if info["policy"] == "ebadge-quarantine" || Instant::now() > deadline {
            break info;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(info["policy"], "ebadge-quarantine", "{info}");
    assert!(
        info["effective_policy_definition"]["message-ttl"]
            .as_u64()
            .unwrap()
            > ebadge_bus::conventions::MESSAGE_TTL_MS
    );
}
