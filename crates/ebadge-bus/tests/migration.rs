//! A changed convention provisioned on a live broker: an inbox changes type (quorum → classic,
//! as `queue_type = "auto"` now makes HEH inboxes on a cluster) while it holds messages and
//! while its sender keeps sending. Every message must reach the receiver once, with its sender.

mod common;

use common::*;
use ebadge_admin::broker::LocalBroker;
use ebadge_admin::provision;
use ebadge_admin::registry::{Builder, Registry};
use ebadge_bus::EntityName;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const SENDER: &str = "mig-vpp";
const RECEIVER: &str = "mig-heh";
const WAITING: u64 = 300;

fn registry(queue_type: &str) -> Registry {
    pair(SENDER, RECEIVER, queue_type)
}

/// A VPP `sender` and its HEH `receiver`, inboxes of `queue_type`.
fn pair(sender: &str, receiver: &str, queue_type: &str) -> Registry {
    Builder::new()
        .queue_type(queue_type.parse().unwrap())
        .entity(sender, None)
        .heh(receiver, sender)
        .build()
        .unwrap()
}

/// The type of `queue` on the live broker.
async fn queue_type(client: &ebadge_admin::mgmt::AdminClient, queue: &str) -> String {
    ebadge_admin::state::live_state(client)
        .await
        .unwrap()
        .values()
        .find_map(|item| match item {
            ebadge_admin::state::Item::Queue {
                name, queue_type, ..
            } if name == queue => Some(queue_type.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{queue} exists"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_an_inbox_type_on_a_live_broker_moves_its_messages_and_loses_none() {
    let profile = profile().await;
    let m = ebadge_testkit::management();
    let admin = ebadge_admin::mgmt::admin_client(&m);
    // Added beside the shared registry (no removals), with certificates.
    let apply = |r: Registry| {
        let (admin, m) = (&admin, &m);
        async move {
            let plan = provision::plan(admin, m, &r)
                .await
                .unwrap()
                .keeping_others(&r);
            plan.apply(m, |_, _| {}).await.unwrap();
            plan
        }
    };
    apply(registry("quorum")).await;
    LocalBroker::new(ebadge_testkit::broker_dir())
        .pki()
        .issue_missing([SENDER, RECEIVER])
        .unwrap();
    let inbox = ebadge_bus::conventions::inbox_queue(&EntityName::new(RECEIVER).unwrap());
    assert_eq!(queue_type(&admin, &inbox).await, "quorum");

    // Messages waiting in the inbox (the receiver is away), one of them from a client that sets
    // no user_id (a moved message needs one to prove its sender).
    let sender = Arc::new(client(&profile, SENDER).await);
    let to = EntityName::new(RECEIVER).unwrap();
    for n in 0..WAITING {
        sender.send(&to, &numbered_report(n)).unwrap();
    }
    sender.flush().await.unwrap();
    let bare = ebadge_testkit::connect(SENDER).await;
    let (channel, _) = ebadge_testkit::channel(&bare).await;
    ebadge_testkit::publish(&channel, "mig-vpp-to-mig-heh", "x", "bare", None).await;

    // The sender goes on sending through the migration.
    let stop = Arc::new(AtomicBool::new(false));
    let during = {
        let (sender, stop, to) = (sender.clone(), stop.clone(), to.clone());
        tokio::spawn(async move {
            let mut n = WAITING;
            while !stop.load(Ordering::Relaxed) {
                sender.send(&to, &numbered_report(n)).unwrap();
                n += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            n
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let plan = apply(registry("classic")).await;
    stop.store(true, Ordering::Relaxed);
    let sent = during.await.unwrap();
    sender.flush().await.unwrap();
    assert!(
        plan.change
            .iter()
            .any(|c| c.contains(&inbox) && c.contains("was quorum")),
        "the plan shows the change: {:?}",
        plan.change
    );
    assert_eq!(queue_type(&admin, &inbox).await, "classic");
    assert!(
        sent > WAITING + 20,
        "messages were sent during the migration ({})",
        sent - WAITING
    );

    let receiver = client(&profile, RECEIVER).await;
    let mut incoming = receiver.inbox().unwrap();
    let numbers = collect(&mut incoming, SENDER, sent, Duration::from_secs(20)).await;
    assert_each_once_any_order(&numbers, sent, &format!("the numbers from {SENDER}"));
    let quarantined = ebadge_testkit::quarantined(RECEIVER, 1).await;
    assert!(
        quarantined
            .iter()
            .any(|(from, reason)| from == SENDER && reason.contains("cannot be verified")),
        "the message without user_id is kept in the quarantine: {quarantined:?}"
    );
    assert_eq!(
        provision::plan(&admin, &m, &registry("classic"))
            .await
            .unwrap()
            .change,
        Vec::<String>::new(),
        "nothing left to do (no side queue left behind)"
    );
    receiver.close(Duration::from_secs(5)).await;
    sender.close(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_stopped_half_way_is_finished_by_the_next_provisioning() {
    const WAITING: u64 = 200;
    let (sender_name, receiver_name) = ("stop-vpp", "stop-heh");
    let profile = profile().await;
    let m = ebadge_testkit::management();
    let admin = ebadge_admin::mgmt::admin_client(&m);
    let plan = |queue_type: &str| {
        let (admin, m, r) = (&admin, &m, pair(sender_name, receiver_name, queue_type));
        async move {
            provision::plan(admin, m, &r)
                .await
                .unwrap()
                .keeping_others(&r)
        }
    };
    plan("quorum").await.apply(&m, |_, _| {}).await.unwrap();
    LocalBroker::new(ebadge_testkit::broker_dir())
        .pki()
        .issue_missing([sender_name, receiver_name])
        .unwrap();
    let inbox = ebadge_bus::conventions::inbox_queue(&EntityName::new(receiver_name).unwrap());
    let side = ebadge_admin::migrate::side_queue(&inbox);
    let sender = client(&profile, sender_name).await;
    let to = EntityName::new(receiver_name).unwrap();
    for n in 0..WAITING {
        sender.send(&to, &numbered_report(n)).unwrap();
    }
    sender.flush().await.unwrap();

    // Provisioning stops (killed) as soon as the migration has made its side queue.
    let interrupted = {
        let (plan, m) = (plan("classic").await, m.clone());
        tokio::spawn(async move { plan.apply(&m, |_, _| {}).await })
    };
    let api = ebadge_admin::mgmt::RawApi::new(&m);
    let started = std::time::Instant::now();
    while api.get(&format!("queues/%2F/{side}")).await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(30), "no side queue");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    interrupted.abort();
    let _ = interrupted.await;

    let again = plan("classic").await;
    assert!(
        again
            .change
            .iter()
            .any(|c| c.contains("a stopped migration left") && c.contains(&side)),
        "the next plan finishes the move: {:?}",
        again.change
    );
    again.apply(&m, |_, _| {}).await.unwrap();
    assert_eq!(queue_type(&admin, &inbox).await, "classic");
    assert!(
        api.get(&format!("queues/%2F/{side}")).await.is_err(),
        "no side queue left"
    );
    let receiver = client(&profile, receiver_name).await;
    let mut incoming = receiver.inbox().unwrap();
    let numbers = collect(&mut incoming, sender_name, WAITING, Duration::from_secs(20)).await;
    assert_each_once_any_order(&numbers, WAITING, "the waiting numbers");
    receiver.close(Duration::from_secs(5)).await;
    sender.close(Duration::from_secs(5)).await;
}

/// The layout before HEHs read in one hop: every exchange bound to `heh`'s inbox goes through
/// an incoming exchange `private-<heh>-in` instead.
fn two_hops(state: ebadge_admin::state::State, heh: &EntityName) -> ebadge_admin::state::State {
    use ebadge_admin::state::Item;
    use ebadge_bus::conventions::{inbox_queue, incoming_exchange};
    let (inbox, incoming) = (inbox_queue(heh), incoming_exchange(heh));
    let binding = |source: &str, destination: &str, destination_type: &str| Item::Binding {
        source: source.into(),
        destination: destination.into(),
        destination_type: destination_type.into(),
        routing_key: "#".into(),
    };
    let mut items: Vec<Item> = state
        .into_values()
        .map(|item| match item {
            Item::Binding {
                source,
                destination,
                ..
            } if destination == inbox => binding(&source, &incoming, "exchange"),
            item => item,
        })
        .collect();
    items.push(Item::Exchange {
        name: incoming.clone(),
        kind: "topic".into(),
        durable: true,
    });
    items.push(binding(&incoming, &inbox, "queue"));
    items.into_iter().map(|i| (i.key(), i)).collect()
}

/// HEHs moved from two routing hops to one: provisioning adds the direct binding before it
/// removes the old route, so a publisher that nothing retries for (no confirms, not mandatory:
/// an unroutable message is dropped) loses nothing while it happens, the broker delivers each
/// message once while both routes exist, and what waited in the inbox stays there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_an_heh_to_one_routing_hop_on_a_live_broker_loses_no_message() {
    use ebadge_admin::provision::Plan;
    use ebadge_admin::state::{State, desired};
    const SENDER: &str = "hop-vpp";
    const RECEIVER: &str = "hop-heh";
    let profile = profile().await;
    let m = ebadge_testkit::management();
    let admin = ebadge_admin::mgmt::admin_client(&m);
    let heh = EntityName::new(RECEIVER).unwrap();
    let registry = pair(SENDER, RECEIVER, "auto");
    // The plans leave the other tests' entities alone, as the demo's do.
    let plan_for = |state: State| {
        let (admin, m, registry) = (&admin, &m, &registry);
        async move {
            let live = ebadge_admin::state::live_state(admin).await.unwrap();
            Plan::compute(&state, &live, &m.user).keeping_others(registry)
        }
    };
    let now = desired(&registry, 1);
    // The broker as an older provisioning left it.
    plan_for(two_hops(now.clone(), &heh))
        .await
        .apply(&m, |_, _| {})
        .await
        .unwrap();
    LocalBroker::new(ebadge_testkit::broker_dir())
        .pki()
        .issue_missing([SENDER, RECEIVER])
        .unwrap();
    let old = ebadge_bus::conventions::incoming_exchange(&heh);
    let layout_finding = || async {
        ebadge_admin::audit::audit(&admin, &m)
            .await
            .unwrap()
            .into_iter()
            .filter(|v| v.kind == "layout" && v.detail.contains(&old))
            .count()
    };
    assert_eq!(layout_finding().await, 1, "audit reports the old layout");

    // Messages waiting in the inbox (the receiver is away), sent by our client.
    let sender = client(&profile, SENDER).await;
    let to = EntityName::new(RECEIVER).unwrap();
    for n in 0..WAITING {
        sender.send(&to, &numbered_report(n)).unwrap();
    }
    sender.flush().await.unwrap();
    sender.close(Duration::from_secs(5)).await;

    // A bare publisher goes on through the move, as fast as it can: nothing would return or
    // retry a message that found no route.
    let bare = ebadge_testkit::connect(SENDER).await;
    let (channel, _) = ebadge_testkit::channel(&bare).await;
    let exchange = ebadge_bus::conventions::pair_exchange(&EntityName::new(SENDER).unwrap(), &heh);
    let stop = Arc::new(AtomicBool::new(false));
    let during = {
        let (stop, exchange) = (stop.clone(), exchange.clone());
        tokio::spawn(async move {
            let mut n = WAITING;
            while !stop.load(Ordering::Relaxed) {
                let mut props = amqprs::BasicProperties::default();
                props.with_persistence(true);
                channel
                    .basic_publish(
                        props,
                        numbered_report(n).to_json_vec(),
                        amqprs::channel::BasicPublishArguments::new(&exchange, "report"),
                    )
                    .await
                    .unwrap();
                n += 1;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            (n, channel)
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let plan = plan_for(now.clone()).await;
    plan.apply(&m, |_, _| {}).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let (sent, _channel) = during.await.unwrap();
    let lines: Vec<String> = plan.lines().collect();
    for expected in [
        format!("+ binding {exchange} -> private-{RECEIVER}-inbox [#]"),
        format!("- binding {exchange} -> {old} [#]"),
        format!("- binding {old} -> private-{RECEIVER}-inbox [#]"),
        format!("- exchange {old} (topic, durable)"),
    ] {
        assert!(
            lines.contains(&expected),
            "the plan shows {expected:?}: {lines:#?}"
        );
    }
    assert!(
        sent > WAITING + 100,
        "sent during the move: {}",
        sent - WAITING
    );

    let receiver = client(&profile, RECEIVER).await;
    let mut incoming = receiver.inbox().unwrap();
    let numbers = collect(&mut incoming, SENDER, sent, Duration::from_secs(20)).await;
    // Bare messages carry no message_id: a second copy would not be dropped, so "once" holds.
    assert_each_once_any_order(&numbers, sent, &format!("the numbers from {SENDER}"));
    assert_eq!(layout_finding().await, 0, "audit finds the layout right");
    assert!(plan_for(now).await.is_empty(), "nothing left to do");
    receiver.close(Duration::from_secs(5)).await;
}
