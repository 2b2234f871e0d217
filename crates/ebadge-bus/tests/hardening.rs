//! The client against misbehaving peers and a broker that refuses, on the real broker: a peer
//! flooding invalid messages while the quarantine refuses them does not silence the receiver; a
//! message too large for the broker fails alone; a session that fails right after connecting
//! backs off; a quarantine that cannot be made does not stop the client;
//! a message the application drops without an ack comes again, one it rejects goes to the
//! quarantine with its reason; an activation's answer counts
//! only from the peer it was sent to; `close` says what it left behind.

mod common;

use common::*;
use ebadge_bus::{
    ActivationOutcome, Client, ClientConfig, FirstConnection, Inbox, SendError, Undelivered,
};
use ebadge_model::{Activate, Message, Time};
use std::time::{Duration, Instant};

/// The next message of `sender` in `inbox`, acknowledged (others are acknowledged and skipped).
async fn next_from(inbox: &mut Inbox, sender: &str, patience: Duration) -> Option<Message> {
    let deadline = Instant::now() + patience;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let incoming = tokio::time::timeout(left, inbox.next()).await.ok()??;
        incoming.ack();
        if incoming.from.as_str() == sender {
            return Some(incoming.message.clone());
        }
    }
}

/// Messages ready and unacknowledged in `queue`, as the management API counts them.
async fn queue_depth(queue: &str) -> u64 {
    let api = ebadge_admin::mgmt::RawApi::new(&ebadge_testkit::management());
    let info = api.get(&format!("queues/%2F/{queue}")).await.unwrap();
    info["messages"].as_u64().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_invalid_messages_into_a_refusing_quarantine_does_not_silence_the_receiver() {
    let profile = profile().await;
    let quarantine = "private-flood-op-quarantine";
    // What a run that failed half-way left.
    let admin = ebadge_testkit::admin().await;
    admin
        .delete_policy("/", "test-flood-quarantine", true)
        .await
        .unwrap();
    admin.delete_queue("/", quarantine, true).await.unwrap();
    let mut config = ClientConfig::new(profile.clone(), name("flood-op"));
    config.prefetch = 20;
    let receiver = Client::connect(config).await.unwrap();
    let mut inbox = receiver.inbox().unwrap();
    drain(&mut inbox).await;
    let exchange = "flood-heh-to-flood-op";
    // The first invalid message makes the quarantine; then it is bounded to what it holds and
    // refuses the rest (as a full one does).
    publish_raw(
        "flood-heh",
        exchange,
        (0..1).map(|n| format!("not json {n}").into_bytes()),
    )
    .await;
    wait_for("the first copy", Duration::from_secs(10), || {
        receiver.counters().quarantined >= 1
    })
    .await;
    let admin = ebadge_testkit::bound_queue(
        &ebadge_testkit::management(),
        "test-flood-quarantine",
        quarantine,
        ebadge_bus::conventions::QUARANTINE_TTL_MS,
        1,
    )
    .await;
    let before = receiver.counters();

    let invalid = 20 + 100;
    publish_raw(
        "flood-heh",
        exchange,
        (0..invalid).map(|n| format!("not json {n}").into_bytes()),
    )
    .await;
    let heh = client(&profile, "flood-heh").await;
    heh.send(&name("flood-op"), &numbered_report(1)).unwrap();
    let good = next_from(&mut inbox, "flood-heh", Duration::from_secs(30)).await;
    assert_eq!(
        good.as_ref().and_then(number_of),
        Some(1),
        "the valid message behind {invalid} invalid ones arrives, with the quarantine refusing"
    );
    // No original is held for a copy the quarantine refuses: the inbox is empty at once.
    let inbox_queue = "private-flood-op-inbox";
    let deadline = Instant::now() + Duration::from_secs(10);
    while queue_depth(inbox_queue).await > 0 {
        assert!(
            Instant::now() < deadline,
            "every invalid original was acknowledged: {:?}",
            receiver.counters()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Each copy is tried a few times with backoff (about 31 s), then dropped and counted:
    // every invalid message is in the quarantine or counted as dropped.
    wait_for(
        "every copy kept or counted as dropped",
        Duration::from_secs(90),
        || {
            let c = receiver.counters();
            (c.quarantined - before.quarantined)
                + (c.quarantine_dropped - before.quarantine_dropped)
                == invalid as u64
        },
    )
    .await;
    let c = receiver.counters();
    assert!(
        c.quarantine_dropped - before.quarantine_dropped >= invalid as u64 - 1,
        "a quarantine bounded to one message keeps none of them: {c:?}"
    );
    admin
        .delete_policy("/", "test-flood-quarantine", true)
        .await
        .unwrap();
    admin.purge_queue("/", quarantine).await.unwrap();
    receiver.close(Duration::from_secs(1)).await;
    heh.close(Duration::from_secs(1)).await;
}

/// A report padded to `bytes` with an extension field.
fn report_of(n: u64, bytes: usize) -> Message {
    Message::decode(&format!(
        r#"{{"msg":"report","from":"2013-07-21T10:00:00Z","to":"2013-07-21T10:01:00Z","resolution":60,"values":{{"total.p":[1.5]}},"heh_id":null,"ext_test_seq":{n},"ext_pad":"{}"}}"#,
        "x".repeat(bytes)
    ))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_too_large_for_the_broker_is_refused_in_send_or_fails_alone() {
    let profile = profile().await;
    let big = ebadge_bus::conventions::MAX_MESSAGE_BYTES + 1_000;
    let sender = client(&profile, "big-sender").await;
    let refused = sender.send(&name("big-receiver"), &report_of(0, big));
    assert!(
        matches!(refused, Err(SendError::TooLarge { size, max, .. }) if size > max),
        "{refused:?}"
    );
    assert!(
        refused
            .unwrap_err()
            .to_string()
            .contains("max_message_size"),
        "the error says what limit"
    );
    sender.close(Duration::from_secs(1)).await;

    // A client that believes the broker takes more: the broker closes the channel over the
    // large message, naming only its size; that message fails, the others arrive.
    let receiver = client(&profile, "big-receiver").await;
    let mut inbox = receiver.inbox().unwrap();
    drain(&mut inbox).await;
    let mut config = ClientConfig::new(profile.clone(), name("big-sender"));
    config.max_message_bytes = 2 * big;
    let sender = Client::connect(config).await.unwrap();
    let to = name("big-receiver");
    sender.send(&to, &numbered_report(1)).unwrap();
    sender.send(&to, &report_of(2, big)).unwrap();
    for n in 3..=5 {
        sender.send(&to, &numbered_report(n)).unwrap();
    }
    let flushed = tokio::time::timeout(Duration::from_secs(30), sender.flush())
        .await
        .expect("the refused message does not block the others");
    let Err(SendError::Undelivered(lost)) = flushed else {
        panic!("the large message is reported: {flushed:?}");
    };
    let lost: Vec<(u64, &str)> = lost
        .iter()
        .map(|u: &Undelivered| (u.seq, u.reason.as_str()))
        .collect();
    assert_eq!(lost.len(), 1, "only the large one: {lost:?}");
    assert_eq!(lost[0].0, 2, "{lost:?}");
    assert!(lost[0].1.contains("larger than"), "{lost:?}");
    let mut numbers = collect(&mut inbox, "big-sender", 4, Duration::from_secs(10)).await;
    numbers.sort_unstable();
    assert_eq!(numbers, [1, 3, 4, 5], "each of the others once");
    sender.close(Duration::from_secs(1)).await;
    receiver.close(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_that_fails_right_after_connecting_backs_off_instead_of_reconnecting_at_once() {
    let profile = profile().await;
    let proxy = ebadge_testkit::proxy::Proxy::start(broker_addr(&profile))
        .await
        .unwrap();
    let config = ClientConfig::new(via(&profile, proxy.addr), name("loop-op"));
    let (min, max) = (config.reconnect_min, config.reconnect_max);
    let client = Client::connect(config).await.unwrap();
    // The link drops every 300 ms: no session lasts long enough to count as a good one.
    let watched = Duration::from_secs(8);
    let deadline = Instant::now() + watched;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(300)).await;
        proxy.cut();
        proxy.restore();
    }
    let reconnects = client.counters().reconnects;
    // Reconnecting from `min` after every loss would reconnect after about every cut; backing
    // off from min to max allows only as many as the shortest waits fit in the time.
    let cuts = (watched.as_millis() / 300) as u64;
    let backing_off = (0..)
        .scan(Duration::ZERO, |total, k| {
            *total += (min * 2u32.pow(k)).min(max) / 2;
            Some(*total)
        })
        .take_while(|total| *total < watched)
        .count() as u64;
    assert!(reconnects >= 2, "the losses are repaired: {reconnects}");
    assert!(
        reconnects <= backing_off,
        "{reconnects} reconnects through {cuts} cuts in {watched:?}: not backing off (at most {backing_off})"
    );
    client.close(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quarantine_that_cannot_be_made_does_not_stop_the_client() {
    use rabbitmq_http_client::requests::ExchangeParams;
    let profile = profile().await;
    let admin = ebadge_testkit::admin().await;
    let quarantine = "private-loop-op-quarantine";
    // A quarantine exchange of the wrong type: declaring it fails, deterministically, as for a
    // quarantine whose node is down. (An earlier run left a good one.)
    admin.delete_queue("/", quarantine, true).await.unwrap();
    admin.delete_exchange("/", quarantine, true).await.unwrap();
    admin
        .declare_exchange("/", &ExchangeParams::durable_fanout(quarantine, None))
        .await
        .unwrap();
    let op = client(&profile, "loop-op").await;
    let mut inbox = op.inbox().unwrap();
    drain(&mut inbox).await;
    publish_raw(
        "loop-heh",
        "loop-heh-to-loop-op",
        (0..1).map(|n| format!("not json {n}").into_bytes()),
    )
    .await;
    let heh = client(&profile, "loop-heh").await;
    let mut heh_inbox = heh.inbox().unwrap();
    drain(&mut heh_inbox).await;
    heh.send(&name("loop-op"), &numbered_report(1)).unwrap();
    assert_eq!(
        next_from(&mut inbox, "loop-heh", Duration::from_secs(10))
            .await
            .as_ref()
            .and_then(number_of),
        Some(1),
        "what comes after the invalid message arrives"
    );
    op.send(&name("loop-heh"), &numbered_report(2)).unwrap();
    tokio::time::timeout(Duration::from_secs(10), op.flush())
        .await
        .expect("the client publishes with a copy it cannot quarantine yet")
        .unwrap();
    assert_eq!(
        next_from(&mut heh_inbox, "loop-op", Duration::from_secs(10))
            .await
            .as_ref()
            .and_then(number_of),
        Some(2)
    );
    assert_eq!(op.counters().reconnects, 0, "the session goes on");
    // Repaired, a later try of the copy makes the quarantine and puts it there.
    admin.delete_exchange("/", quarantine, true).await.unwrap();
    wait_for(
        "the copy quarantined after the repair",
        Duration::from_secs(40),
        || op.counters().quarantined >= 1,
    )
    .await;
    assert_eq!(op.counters().quarantine_dropped, 0);
    op.close(Duration::from_secs(1)).await;
    heh.close(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_dropped_without_an_ack_is_offered_again() {
    let profile = profile().await;
    let receiver = client(&profile, "rel-receiver").await;
    let mut inbox = receiver.inbox().unwrap();
    drain(&mut inbox).await;
    let sender = client(&profile, "rel-sender").await;
    sender
        .send(&name("rel-receiver"), &numbered_report(42))
        .unwrap();
    let first = tokio::time::timeout(Duration::from_secs(10), inbox.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(number_of(&first.message), Some(42));
    assert!(!first.redelivered);
    // The application fails on the way (a device that refused it): no ack.
    drop(first);
    let again = tokio::time::timeout(Duration::from_secs(10), inbox.next())
        .await
        .expect("a dropped message comes again")
        .unwrap();
    assert_eq!(number_of(&again.message), Some(42));
    assert!(again.redelivered, "the broker says it delivered it before");
    again.ack();
    assert_eq!(
        receiver.counters().duplicates,
        0,
        "not taken for a duplicate"
    );
    assert!(
        tokio::time::timeout(Duration::from_secs(2), inbox.next())
            .await
            .is_err(),
        "acknowledged, it does not come a third time"
    );

    // Dropped while a later message is acknowledged at once: the acknowledgement of the later
    // one (coalesced, `multiple`) must not take the dropped one with it.
    sender
        .send(&name("rel-receiver"), &numbered_report(43))
        .unwrap();
    sender
        .send(&name("rel-receiver"), &numbered_report(44))
        .unwrap();
    let mut two = Vec::new();
    while two.len() < 2 {
        let m = tokio::time::timeout(Duration::from_secs(10), inbox.next())
            .await
            .unwrap()
            .unwrap();
        two.push(m);
    }
    let later = two.pop().unwrap();
    let dropped = two.pop().unwrap();
    assert_eq!(number_of(&dropped.message), Some(43));
    drop(dropped);
    later.ack();
    let again = tokio::time::timeout(Duration::from_secs(10), inbox.next())
        .await
        .expect("the dropped one comes again")
        .unwrap();
    assert_eq!(number_of(&again.message), Some(43));
    again.ack();
    sender.close(Duration::from_secs(1)).await;
    receiver.close(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_the_application_rejects_goes_to_the_quarantine_with_its_reason_and_not_again() {
    let profile = profile().await;
    ebadge_testkit::quarantined("rej-receiver", 0).await;
    let receiver = client(&profile, "rej-receiver").await;
    let mut inbox = receiver.inbox().unwrap();
    drain(&mut inbox).await;
    let before = receiver.counters();
    let sender = client(&profile, "rej-sender").await;
    for n in [7, 8] {
        sender
            .send(&name("rej-receiver"), &numbered_report(n))
            .unwrap();
    }
    let first = tokio::time::timeout(Duration::from_secs(10), inbox.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(number_of(&first.message), Some(7));
    first.reject("ValueError: the device refused it");
    // An ack after the rejection changes nothing.
    first.ack();
    let second = tokio::time::timeout(Duration::from_secs(10), inbox.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(number_of(&second.message), Some(8));
    second.ack();
    let held = ebadge_testkit::quarantined("rej-receiver", 1).await;
    assert_eq!(
        held,
        vec![(
            "rej-sender".to_owned(),
            "rejected by the application: ValueError: the device refused it".to_owned()
        )]
    );
    assert!(
        tokio::time::timeout(Duration::from_secs(2), inbox.next())
            .await
            .is_err(),
        "a rejected message is not offered again"
    );
    assert_eq!(receiver.counters().rejected - before.rejected, 1);
    assert_eq!(receiver.counters().received - before.received, 2);
    sender.close(Duration::from_secs(1)).await;
    receiver.close(Duration::from_secs(1)).await;
    assert_eq!(queue_depth("private-rej-receiver-inbox").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reason_longer_than_a_frame_does_not_cut_the_receiver_off() {
    // RabbitMQ closes a connection whose content header exceeds frame_max (128 KiB): a reason
    // quoting a 200-KB field would end the session at every reconnect, for good.
    let profile = profile().await;
    ebadge_testkit::quarantined("frame-receiver", 0).await;
    let receiver = client(&profile, "frame-receiver").await;
    let mut inbox = receiver.inbox().unwrap();
    drain(&mut inbox).await;
    let huge = "a".repeat(200_000);
    publish_raw(
        "frame-sender",
        "frame-sender-to-frame-receiver",
        [format!(r#"{{"msg": "{huge}"}}"#).into_bytes()],
    )
    .await;
    let sender = client(&profile, "frame-sender").await;
    sender
        .send(&name("frame-receiver"), &numbered_report(1))
        .unwrap();
    let valid = tokio::time::timeout(Duration::from_secs(10), inbox.next())
        .await
        .expect("the valid message behind the invalid one arrives")
        .unwrap();
    valid.reject(&huge);
    // (More than two when an earlier run on this broker failed half-way.)
    let held = ebadge_testkit::quarantined("frame-receiver", 2).await;
    assert!(held.len() >= 2, "{held:?}");
    for (from, reason) in &held {
        assert_eq!(from, "frame-sender");
        assert!(
            reason.len() <= ebadge_bus::conventions::MAX_HEADER_VALUE_BYTES
                && reason.ends_with("bytes cut)"),
            "{} bytes: {}",
            reason.len(),
            &reason[..100]
        );
    }
    assert_eq!(receiver.counters().reconnects, 0);
    assert!(receiver.counters().quarantined >= 2);
    sender.close(Duration::from_secs(1)).await;
    receiver.close(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_activation_is_answered_only_by_its_peer_and_a_late_answer_reaches_the_application() {
    let profile = profile().await;
    let vpp = client(&profile, "peer-vpp").await;
    let mut inbox = vpp.inbox().unwrap();
    drain(&mut inbox).await;
    let heh_a = client(&profile, "peer-heh-a").await;
    let heh_b = client(&profile, "peer-heh-b").await;
    let t = |s: &str| Time::parse(s).unwrap();
    let order = Activate::new(t("2030-01-01T10:00:00Z"), t("2030-01-01T11:00:00Z"), 1.0);

    let activation = {
        let vpp = vpp.clone();
        let order = order.clone();
        tokio::spawn(async move {
            vpp.activate(&name("peer-heh-a"), &order, Duration::from_secs(20))
                .await
        })
    };
    // Another HEH answers with the same id and count first: not the answer.
    tokio::time::sleep(Duration::from_millis(500)).await;
    heh_b
        .send(
            &name("peer-vpp"),
            &Message::AcceptActivation(order.accept()),
        )
        .unwrap();
    let stray = next_from(&mut inbox, "peer-heh-b", Duration::from_secs(10)).await;
    assert!(
        matches!(stray, Some(Message::AcceptActivation(_))),
        "the other HEH's answer goes to the application: {stray:?}"
    );
    assert!(!activation.is_finished(), "still waiting for peer-heh-a");
    heh_a
        .send(
            &name("peer-vpp"),
            &Message::RejectActivation(order.reject()),
        )
        .unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(20), activation)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        matches!(outcome, ActivationOutcome::Rejected(ref r) if r.id == order.id),
        "{outcome:?}"
    );

    // An answer after the wait ended is not lost: the application gets it.
    let late = Activate::new(t("2030-01-02T10:00:00Z"), t("2030-01-02T11:00:00Z"), 1.0);
    let outcome = vpp
        .activate(&name("peer-heh-a"), &late, Duration::from_millis(300))
        .await
        .unwrap();
    assert_eq!(outcome, ActivationOutcome::TimedOut);
    heh_a
        .send(&name("peer-vpp"), &Message::AcceptActivation(late.accept()))
        .unwrap();
    let answer = next_from(&mut inbox, "peer-heh-a", Duration::from_secs(10)).await;
    assert!(
        matches!(answer, Some(Message::AcceptActivation(ref a)) if a.id == late.id),
        "{answer:?}"
    );
    for c in [vpp, heh_a, heh_b] {
        c.close(Duration::from_secs(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_says_how_many_messages_it_left_and_whether_they_are_lost() {
    // A broker that is not there: nothing is ever confirmed.
    let mut profile = profile().await;
    let unused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    profile.amqps_url = format!("amqps://localhost:{}", unused.local_addr().unwrap().port());
    drop(unused);
    let dir = tempfile::tempdir().unwrap();
    for durable in [false, true] {
        let mut config = ClientConfig::new(profile.clone(), name("rel-sender"));
        if durable {
            config.durable_outbox = Some(dir.path().join("outbox.sqlite"));
        }
        config.first_connection = FirstConnection::Background;
        let sender = Client::connect(config).await.unwrap();
        for n in 0..3 {
            sender
                .send(&name("rel-receiver"), &numbered_report(n))
                .unwrap();
        }
        let closed = sender.close(Duration::from_millis(200)).await;
        assert_eq!(closed.unconfirmed, 3, "durable: {durable}");
        assert_eq!(
            closed.discarded, !durable,
            "lost with an in-memory outbox, kept with a durable one"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_waiting_for_a_message_the_cap_drops_returns_with_it() {
    let mut profile = profile().await;
    let unused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    profile.amqps_url = format!("amqps://localhost:{}", unused.local_addr().unwrap().port());
    drop(unused);
    let mut config = ClientConfig::new(profile, name("rel-sender"));
    config.outbox_cap = 2;
    config.first_connection = FirstConnection::Background;
    let sender = Client::connect(config).await.unwrap();
    sender
        .send(&name("rel-receiver"), &numbered_report(0))
        .unwrap();
    let flushing = {
        let sender = sender.clone();
        tokio::spawn(async move { sender.flush().await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    for n in 1..=2 {
        sender
            .send(&name("rel-receiver"), &numbered_report(n))
            .unwrap();
    }
    let flushed = tokio::time::timeout(Duration::from_secs(5), flushing)
        .await
        .expect("the flush ends when the message it waits for is dropped")
        .unwrap();
    let Err(SendError::Undelivered(lost)) = flushed else {
        panic!("{flushed:?}");
    };
    assert_eq!(lost.iter().map(|u| u.seq).collect::<Vec<_>>(), [1]);
    sender.close(Duration::ZERO).await;
}
