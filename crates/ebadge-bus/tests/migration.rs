//! A changed convention provisioned on a live broker: an inbox changes type (quorum → classic,
//! as `queue_type = "auto"` now makes HEH inboxes on a cluster) while it holds messages and
//! while its sender keeps sending. Every message must reach the receiver once, with its sender.

mod common;

use common::*;
use ebadge_admin::broker::LocalBroker;
use ebadge_admin::provision;
use ebadge_admin::registry::Registry;
use ebadge_bus::EntityName;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const SENDER: &str = "mig-vpp";
const RECEIVER: &str = "mig-heh";
const WAITING: u64 = 300;

fn registry(queue_type: &str) -> Registry {
    Registry::parse(&format!(
        "[options]\nqueue_type = \"{queue_type}\"\n[[entity]]\nname = \"{SENDER}\"\n\
         [[heh]]\nname = \"{RECEIVER}\"\noperator = \"{SENDER}\"\n"
    ))
    .unwrap()
}

/// The type of `queue` on the live broker.
async fn queue_type(client: &ebadge_admin::provision::AdminClient, queue: &str) -> String {
    provision::live_state(client)
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
    let m = profile.management.clone().unwrap();
    let admin = ebadge_admin::broker::admin_client(&m.url, &m.password);
    // Added beside the shared registry (no removals), with certificates.
    let apply = |r: Registry| {
        let (admin, m) = (&admin, &m);
        async move {
            let plan = provision::plan(admin, m, &r)
                .await
                .unwrap()
                .without_removals();
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
    let mut distinct = numbers.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(
        distinct,
        (0..sent).collect::<Vec<_>>(),
        "every number arrived, from {SENDER}"
    );
    assert_eq!(numbers.len(), distinct.len(), "none twice");
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
