//! The reliability layer under real faults (D3.2.3 6.2.3): a TCP proxy cuts the sender's link,
//! the broker restarts, the sender process restarts; every number must reach the receiving
//! application exactly once, in order.

mod common;

use common::*;
use ebadge_bus::FirstConnection;
use ebadge_testkit::proxy::Proxy;
use std::time::{Duration, Instant};

/// Sends numbered reports at 100 msgs/s from `first` on, until `until` returns true.
async fn send_at_100_per_second(
    sender: &ebadge_bus::Client,
    to: &str,
    first: u64,
    seconds: f64,
) -> u64 {
    let to = ebadge_bus::EntityName::new(to).unwrap();
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let n = (seconds * 100.0) as u64;
    for i in 0..n {
        tick.tick().await;
        sender.send(&to, &numbered_report(first + i)).unwrap();
    }
    first + n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_cuts_of_10_and_70_seconds_lose_nothing_and_duplicate_nothing() {
    let profile = profile().await;
    let proxy = Proxy::start(broker_addr(&profile)).await.unwrap();
    let receiver = client(&profile, "op-cut").await;
    let mut inbox = receiver.inbox().unwrap();
    drain(&mut inbox).await;
    let sender = client(&via(&profile, proxy.addr), "heh-cut").await;

    let started = Instant::now();
    let mut next = send_at_100_per_second(&sender, "op-cut", 0, 2.0).await;
    for outage in [10.0, 70.0] {
        proxy.cut();
        next = send_at_100_per_second(&sender, "op-cut", next, outage).await;
        proxy.restore();
        next = send_at_100_per_second(&sender, "op-cut", next, 2.0).await;
    }
    tokio::time::timeout(Duration::from_secs(60), sender.flush())
        .await
        .expect("every message confirmed within a minute of the last restore")
        .expect("nothing undelivered");
    let numbers = collect(&mut inbox, "heh-cut", next, Duration::from_secs(20)).await;
    assert_exactly_once_in_order(&numbers, 0, next);

    let sent = sender.counters();
    assert_eq!(sent.sent, next);
    assert_eq!(sent.confirmed, next);
    assert_eq!(sent.dropped, 0);
    assert!(sent.reconnects >= 2, "{sent:?}");
    eprintln!(
        "{next} reports over {:.0} s with cuts of 10 s and 70 s: sender {sent:?}, receiver {:?}",
        started.elapsed().as_secs_f64(),
        receiver.counters()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_loses_nothing() {
    let broker = ebadge_testkit::private_broker("ebadge-restart-broker").await;
    let profile = ebadge_bus::Profile::load(&broker.profile_path()).unwrap();
    let receiver = client(&profile, "op-restart").await;
    let mut inbox = receiver.inbox().unwrap();
    drain(&mut inbox).await;
    let sender = client(&profile, "heh-restart").await;

    let mut next = send_at_100_per_second(&sender, "op-restart", 0, 2.0).await;
    let stopping = broker.clone();
    let restart = tokio::spawn(async move {
        tokio::task::spawn_blocking(move || stopping.down().unwrap())
            .await
            .unwrap();
    });
    next = send_at_100_per_second(&sender, "op-restart", next, 3.0).await;
    restart.await.unwrap();
    next = send_at_100_per_second(&sender, "op-restart", next, 1.0).await;
    broker.up(&Default::default()).await.unwrap();
    next = send_at_100_per_second(&sender, "op-restart", next, 2.0).await;

    tokio::time::timeout(Duration::from_secs(60), sender.flush())
        .await
        .expect("every message confirmed after the restart")
        .expect("nothing undelivered");
    let numbers = collect(&mut inbox, "heh-restart", next, Duration::from_secs(20)).await;
    assert_exactly_once_in_order(&numbers, 0, next);
    let counters = sender.counters();
    assert!(counters.reconnects >= 1, "{counters:?}");
    assert!(receiver.counters().received >= next);
    eprintln!(
        "{next} reports across a broker restart: sender {counters:?}, receiver {:?}",
        receiver.counters()
    );
    broker.down().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_link_is_noticed_by_heartbeats_and_loses_nothing() {
    let profile = profile().await;
    let proxy = Proxy::start(broker_addr(&profile)).await.unwrap();
    let receiver = client(&profile, "op-stall").await;
    let mut inbox = receiver.inbox().unwrap();
    drain(&mut inbox).await;
    let sender = client(&via(&profile, proxy.addr), "heh-stall").await;

    let mut next = send_at_100_per_second(&sender, "op-stall", 0, 2.0).await;
    // Packets vanish without an error: only missing heartbeats (and connect timeouts) tell.
    proxy.stall();
    next = send_at_100_per_second(&sender, "op-stall", next, 40.0).await;
    assert!(
        !sender.is_connected(),
        "a 40-s stall is noticed (heartbeats every 10 s)"
    );
    proxy.restore();
    next = send_at_100_per_second(&sender, "op-stall", next, 2.0).await;
    tokio::time::timeout(Duration::from_secs(90), sender.flush())
        .await
        .expect("every message confirmed after the stall")
        .expect("nothing undelivered");
    let numbers = collect(&mut inbox, "heh-stall", next, Duration::from_secs(20)).await;
    assert_exactly_once_in_order(&numbers, 0, next);
    assert!(sender.counters().reconnects >= 1, "{:?}", sender.counters());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_patiently_waits_out_a_broker_that_does_not_answer_yet() {
    let profile = profile().await;
    let proxy = Proxy::start(broker_addr(&profile)).await.unwrap();
    let mut config = ebadge_bus::ClientConfig::new(
        via(&profile, proxy.addr),
        ebadge_bus::EntityName::new("heh-cut").unwrap(),
    );
    config.reconnect_max = Duration::from_secs(1);
    // The broker answers nothing for 3 s (a connection storm, a node still booting).
    proxy.cut();
    let started = Instant::now();
    let restore = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(3)).await;
        proxy.restore();
        proxy
    });
    let mut patient = config.clone();
    patient.first_connection = FirstConnection::WaitUpTo(Duration::from_secs(60));
    let client = ebadge_bus::Client::connect(patient)
        .await
        .expect("connected once the broker answers");
    assert!(started.elapsed() >= Duration::from_secs(3));
    tokio::time::timeout(Duration::from_secs(10), client.connected())
        .await
        .expect("the session is up");
    client.close(Duration::from_secs(1)).await;
    let proxy = restore.await.unwrap();

    // Out of patience: the last error, with its hint.
    proxy.cut();
    let mut patient = config;
    patient.first_connection = FirstConnection::WaitUpTo(Duration::from_secs(2));
    let error = ebadge_bus::Client::connect(patient)
        .await
        .expect_err("the broker never answered")
        .to_string();
    assert!(error.contains("connecting to"), "{error}");
}

/// A client closed while its link is down must not come back: its supervisor, waking from the
/// reconnect delay, used to open a new session that never saw the close and went on consuming,
/// taking (and acknowledging) messages meant for the next reader of the inbox.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_closed_while_reconnecting_never_consumes_again() {
    let profile = profile().await;
    let inbox_name = "private-close-receiver-inbox";
    ebadge_testkit::drain_inbox(&profile, "close-receiver").await;
    let proxy = Proxy::start(broker_addr(&profile)).await.unwrap();
    let mut config = ebadge_bus::ClientConfig::new(
        via(&profile, proxy.addr),
        ebadge_bus::EntityName::new("close-receiver").unwrap(),
    );
    config.reconnect_min = Duration::from_secs(2);
    let receiver = ebadge_bus::Client::connect(config).await.unwrap();
    receiver.connected().await;

    // Cut the link and let it through again at once: the client notices the loss and waits
    // 1–3 s before it reconnects. Close it in that wait.
    proxy.cut();
    let lost = Instant::now();
    while receiver.is_connected() {
        assert!(
            lost.elapsed() < Duration::from_secs(30),
            "the cut was never noticed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    proxy.restore();
    let closing = Instant::now();
    receiver.close(Duration::from_secs(1)).await;
    assert!(
        closing.elapsed() < Duration::from_secs(3),
        "close waited {:?} for a supervisor that should have stopped at once",
        closing.elapsed()
    );

    // Long after the reconnect delay, a message sent to it stays in its inbox, unconsumed.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let sender = client(&profile, "close-sender").await;
    sender
        .send(
            &ebadge_bus::EntityName::new("close-receiver").unwrap(),
            &numbered_report(1),
        )
        .unwrap();
    sender.flush().await.expect("delivered");
    sender.close(Duration::from_secs(1)).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    let queue = loop {
        let queue = ebadge_testkit::raw_get(&format!("queues/%2F/{inbox_name}")).await;
        if queue["messages"] == 1 || Instant::now() > deadline {
            break queue;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(queue["consumers"], 0, "a closed client consumes: {queue}");
    assert_eq!(queue["messages_ready"], 1, "{queue}");
    ebadge_testkit::drain_inbox(&profile, "close-receiver").await;
}

/// A client publishing over several connections (`publish_connections`) loses one of them in
/// the middle of a burst: the broker closes it (as an operator would, or a node shutting down).
/// The session ends, every connection is remade, and each lane sends again what it had in
/// flight: every HEH gets every number exactly once, in the order sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publishing_connection_closed_mid_burst_loses_nothing_and_keeps_each_receivers_order() {
    const PER_HEH: u64 = 5_000;
    let profile = profile().await;
    let hehs = ["lanes-heh-1", "lanes-heh-2", "lanes-heh-3", "lanes-heh-4"];
    let mut receivers = Vec::new();
    for heh in hehs {
        let receiver = client(&profile, heh).await;
        let mut inbox = receiver.inbox().unwrap();
        drain(&mut inbox).await;
        receivers.push((receiver, inbox));
    }
    let mut config = ebadge_bus::ClientConfig::new(
        profile.clone(),
        ebadge_bus::EntityName::new("lanes-vpp").unwrap(),
    );
    config.publish_connections = 3;
    config.reconnect_max = Duration::from_secs(1);
    let sender = ebadge_bus::Client::connect(config).await.unwrap();

    // The management API lists a connection some seconds after it opened.
    let admin = ebadge_testkit::admin().await;
    let target = "lanes-vpp publishing 2/3";
    let deadline = Instant::now() + Duration::from_secs(30);
    let connection = loop {
        let mut listed = admin.list_connections().await.unwrap();
        listed.retain(|c| c.username == "lanes-vpp");
        let labels: Vec<_> = listed
            .iter()
            .map(|c| c.client_properties.connection_name.clone())
            .collect();
        if let Some(c) = listed
            .iter()
            .find(|c| c.client_properties.connection_name == target)
        {
            assert_eq!(
                listed.len(),
                4,
                "one consuming and three publishing: {labels:?}"
            );
            break c.name.clone();
        }
        assert!(Instant::now() < deadline, "no {target:?} among {labels:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };

    for n in 0..PER_HEH {
        for heh in hehs {
            let to = ebadge_bus::EntityName::new(heh).unwrap();
            sender.send(&to, &numbered_report(n)).unwrap();
        }
    }
    admin
        .close_connection(&connection, Some("test: a lane lost mid-burst"), false)
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(120), sender.flush())
        .await
        .expect("every message confirmed within two minutes")
        .expect("nothing undelivered");
    for ((_, inbox), heh) in receivers.iter_mut().zip(hehs) {
        let numbers = collect(inbox, "lanes-vpp", PER_HEH, Duration::from_secs(20)).await;
        eprintln!("{heh}: {} deliveries", numbers.len());
        assert_exactly_once_in_order(&numbers, 0, PER_HEH);
    }
    let counters = sender.counters();
    assert_eq!(
        counters.confirmed,
        PER_HEH * hehs.len() as u64,
        "{counters:?}"
    );
    assert!(
        counters.reconnects >= 1,
        "the closed lane ended the session: {counters:?}"
    );
    assert!(
        counters.republished > 0,
        "the lane was closed with messages in flight: {counters:?}"
    );
    eprintln!(
        "{} reports over three lanes, one closed mid-burst: {counters:?}",
        counters.sent
    );
}

/// A message that a consumer held unacknowledged when its link was cut, 25 times over, is
/// still there, and still first. RabbitMQ 4.0 (Debian 13) drops it from a quorum queue after
/// 20 such returns unless a policy lifts the `delivery-limit`; provisioning writes that policy on
/// RabbitMQ 4 (`conventions::QUORUM_POLICY`). A VPP inbox is a quorum queue on a cluster. On 3.10
/// this passes without the policy (no default limit); `make test-rabbitmq4` runs it on 4.0, where
/// without the policy the 22nd consumer finds the message gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quorum_queue_message_lost_unacknowledged_25_times_is_still_delivered_first() {
    use amqprs::channel::{BasicGetArguments, QueueDeclareArguments, QueueDeleteArguments};
    let owner = "lanes-vpp";
    let queue = format!("private-{owner}-returns");
    let connection = ebadge_testkit::connect(owner).await;
    let (channel, _) = ebadge_testkit::channel(&connection).await;
    let mut arguments = amqprs::FieldTable::new();
    arguments.insert(
        "x-queue-type".try_into().unwrap(),
        amqprs::FieldValue::S("quorum".try_into().unwrap()),
    );
    channel
        .queue_delete(QueueDeleteArguments::new(&queue))
        .await
        .unwrap();
    channel
        .queue_declare(
            QueueDeclareArguments::new(&queue)
                .durable(true)
                .arguments(arguments)
                .finish(),
        )
        .await
        .unwrap();
    connection.close().await.unwrap();
    // The owner may not write to the default exchange; the management account may.
    let api = ebadge_admin::mgmt::RawApi::new(&ebadge_testkit::management());
    for body in ["first", "second"] {
        let routed = api
            .send(
                ebadge_admin::mgmt::Method::POST,
                "exchanges/%2F/amq.default/publish",
                &serde_json::json!({"properties": {"delivery_mode": 2}, "routing_key": queue,
                    "payload": body, "payload_encoding": "string"}),
            )
            .await
            .unwrap();
        assert_eq!(routed["routed"], true, "{routed}");
    }

    let get = |channel: amqprs::channel::Channel, queue: String| async move {
        for _ in 0..100 {
            if let Some((_, _, body)) = channel
                .basic_get(BasicGetArguments::new(&queue))
                .await
                .unwrap()
            {
                return Some(String::from_utf8(body).unwrap());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    };
    let profile = profile().await;
    let proxy = Proxy::start(broker_addr(&profile)).await.unwrap();
    let through_proxy = via(&profile, proxy.addr);
    for round in 1..=26 {
        let connection = ebadge_bus::amqp::connect(&through_proxy, owner)
            .await
            .unwrap();
        let (channel, _) = ebadge_testkit::channel(&connection).await;
        let body = get(channel.clone(), queue.clone()).await;
        assert_eq!(
            body.as_deref(),
            Some("first"),
            "round {round}: the message held and lost {} times before",
            round - 1
        );
        if round == 26 {
            channel
                .queue_delete(QueueDeleteArguments::new(&queue))
                .await
                .unwrap();
            connection.close().await.unwrap();
            break;
        }
        // The link cut without an ack: the broker takes the message back.
        proxy.cut();
        drop(connection);
        proxy.restore();
    }
}
