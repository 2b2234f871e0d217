//! High availability (D3.2.3 6.2.1-6.2.2) on a real three-node cluster behind haproxy: a node
//! killed under load, a second node restarted, a consumer outage against the TTL, and a VRRP
//! failover between two haproxy hosts in network namespaces. Every message is counted.

mod common;

use common::*;
use ebadge_admin::broker::LocalBroker;
use ebadge_admin::mgmt::RawApi;
use ebadge_bus::{Client, Profile};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The tests kill nodes and change policies: one at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn cluster_profile(broker: &LocalBroker) -> Profile {
    Profile::load(&broker.profile_path()).unwrap()
}

fn api(profile: &Profile) -> RawApi {
    RawApi::new(profile.management.as_ref().unwrap())
}

/// Numbers received per sender, in arrival order, by a task that reads `client`'s inbox.
#[derive(Clone, Default)]
struct Received(Arc<Mutex<BTreeMap<String, Vec<u64>>>>);

impl Received {
    /// Records what arrives (after draining what earlier runs left, if `drain_first`).
    async fn start(client: &Client, drain_first: bool) -> (Self, Arc<Mutex<Option<Instant>>>) {
        let received = Self::default();
        let last = Arc::new(Mutex::new(None));
        let mut inbox = client.inbox().unwrap();
        if drain_first {
            drain(&mut inbox).await;
        }
        let (r, l) = (received.clone(), last.clone());
        tokio::spawn(async move {
            while let Some(incoming) = inbox.next().await {
                incoming.ack();
                if let Some(n) = number_of(&incoming.message) {
                    r.0.lock()
                        .unwrap()
                        .entry(incoming.from.to_string())
                        .or_default()
                        .push(n);
                    *l.lock().unwrap() = Some(Instant::now());
                }
            }
        });
        (received, last)
    }

    fn distinct(&self) -> usize {
        self.0
            .lock()
            .unwrap()
            .values()
            .map(|v| v.iter().collect::<BTreeSet<_>>().len())
            .sum()
    }

    /// Waits until `expected` distinct numbers arrived (or `patience` passes without progress).
    async fn wait_for(&self, expected: usize, patience: Duration) {
        let mut seen = self.distinct();
        let mut progress = Instant::now();
        while seen < expected && progress.elapsed() < patience {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let now = self.distinct();
            if now > seen {
                seen = now;
                progress = Instant::now();
            }
        }
    }
}

/// Waits until the management API lists `user`'s connection and returns the node it is on.
async fn node_of(api: &RawApi, user: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(connections) = api.get("connections").await {
            let node = connections
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| c["user"] == user)
                .and_then(|c| c["node"].as_str().map(str::to_owned));
            if let Some(node) = node {
                return node;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("the management API never listed {user}'s connection");
}

/// Time until `client` is connected again after a fault.
async fn reconnect_time(client: &Client, since: Instant) -> Duration {
    // First see it lose the connection (haproxy cuts the sessions of a dead node), then return.
    let deadline = since + Duration::from_secs(10);
    while client.is_connected() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    while !client.is_connected() {
        assert!(
            since.elapsed() < Duration::from_secs(120),
            "no reconnect within 2 minutes"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    since.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_and_a_restarted_node_lose_no_message() {
    let _one = ONE_AT_A_TIME.lock().await;
    let broker = ebadge_testkit::cluster().await;
    let profile = cluster_profile(&broker);
    let api = api(&profile);
    let vpp = client(&profile, "ha-vpp").await;
    let (received, last_arrival) = Received::start(&vpp, true).await;
    let mut hehs = Vec::new();
    for i in 1..=ebadge_testkit::HA_HEHS {
        hehs.push(Arc::new(client(&profile, &format!("ha-heh-{i}")).await));
    }

    // Each HEH sends 2 numbered reports a second (100 msgs/s in all) until told to stop.
    let stopping = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut senders = Vec::new();
    for (i, heh) in hehs.iter().enumerate() {
        let (heh, stopping) = (heh.clone(), stopping.clone());
        senders.push(tokio::spawn(async move {
            let to = ebadge_bus::EntityName::new("ha-vpp").unwrap();
            // Spread the HEHs over the half second.
            tokio::time::sleep(Duration::from_millis(10 * i as u64)).await;
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            let mut n = 0;
            while !stopping.load(std::sync::atomic::Ordering::Relaxed) {
                tick.tick().await;
                heh.send(&to, &numbered_report(n)).unwrap();
                n += 1;
            }
            n
        }));
    }

    tokio::time::sleep(Duration::from_secs(5)).await;
    let victim = node_of(&api, "ha-vpp").await;
    let status = broker.status().unwrap();
    let index = status.nodes.iter().position(|n| n.name == victim).unwrap();
    let killed_at = Instant::now();
    assert!(broker.kill_node(index).unwrap().is_some());
    let vpp_reconnect = reconnect_time(&vpp, killed_at).await;
    let arrivals_before = received.distinct();
    while received.distinct() == arrivals_before {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let delivery_gap = killed_at.elapsed();
    eprintln!(
        "killed {victim} (the VPP's node): VPP reconnected after {} ms, deliveries resumed after {} ms",
        vpp_reconnect.as_millis(),
        delivery_gap.as_millis()
    );
    tokio::time::sleep(Duration::from_secs(5)).await;

    // The killed node comes back (rejoins, its quorum replicas catch up); then another restarts.
    let back = Instant::now();
    broker.up(&Default::default()).await.unwrap();
    eprintln!("{victim} back in {} ms", back.elapsed().as_millis());
    tokio::time::sleep(Duration::from_secs(5)).await;
    let second = (index + 1) % status.nodes.len();
    let restarted_at = Instant::now();
    let stopper = broker.clone();
    tokio::task::spawn_blocking(move || stopper.stop_node(second).unwrap())
        .await
        .unwrap();
    broker.up(&Default::default()).await.unwrap();
    eprintln!(
        "{} restarted in {} ms",
        status.nodes[second].name,
        restarted_at.elapsed().as_millis()
    );
    tokio::time::sleep(Duration::from_secs(5)).await;

    stopping.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut sent = BTreeMap::new();
    for (i, task) in senders.into_iter().enumerate() {
        sent.insert(format!("ha-heh-{}", i + 1), task.await.unwrap());
    }
    for heh in &hehs {
        tokio::time::timeout(Duration::from_secs(60), heh.flush())
            .await
            .expect("every report confirmed within a minute");
    }
    let total: u64 = sent.values().sum();
    received
        .wait_for(total as usize, Duration::from_secs(30))
        .await;

    let got = received.0.lock().unwrap().clone();
    let mut reordered = 0;
    for (heh, count) in &sent {
        let numbers = got.get(heh).cloned().unwrap_or_default();
        let distinct: BTreeSet<u64> = numbers.iter().copied().collect();
        assert_eq!(
            distinct,
            (0..*count).collect(),
            "{heh}: every number it sent, none other"
        );
        assert_eq!(numbers.len() as u64, *count, "{heh}: each number once");
        reordered += numbers.windows(2).filter(|w| w[0] > w[1]).count();
    }
    let reconnects: u64 = hehs.iter().map(|h| h.counters().reconnects).sum();
    let republished: u64 = hehs.iter().map(|h| h.counters().republished).sum();
    assert!(reconnects > 0, "the kill cut some HEHs' connections too");
    eprintln!(
        "{total} reports from {} HEHs through a kill -9 and a restart: each once; \
         {reordered} arrived out of order; HEHs reconnected {reconnects} times and republished \
         {republished}; VPP {:?}; last arrival {:?} ago",
        hehs.len(),
        vpp.counters(),
        last_arrival.lock().unwrap().map(|t| t.elapsed())
    );
    for heh in hehs {
        heh.close(Duration::from_secs(5)).await;
    }
    vpp.close(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_outage_stays_bounded_by_the_ttl_and_delivers_only_live_messages() {
    use rabbitmq_http_client::commons::PolicyTarget;
    use rabbitmq_http_client::requests::PolicyParams;
    const TTL: Duration = Duration::from_secs(3);
    const HEHS: usize = 5;
    const RATE_EACH: u64 = 20;
    const OUTAGE: Duration = Duration::from_secs(30);
    let _one = ONE_AT_A_TIME.lock().await;
    let broker = ebadge_testkit::cluster().await;
    let profile = cluster_profile(&broker);
    let api = api(&profile);
    let m = profile.management.clone().unwrap();
    let admin = ebadge_admin::broker::admin_client(&m.url, &m.password);
    let inbox = "private-out-vpp-inbox";

    // A shorter TTL for this inbox only, by a policy of higher priority, as an operator would.
    let definition = serde_json::json!({"message-ttl": TTL.as_millis() as u64,
        "max-length": 1_000_000, "overflow": "reject-publish"});
    admin
        .declare_policy(&PolicyParams {
            vhost: "/",
            name: "test-outage-ttl",
            pattern: "^private-out-vpp-inbox$",
            apply_to: PolicyTarget::Queues,
            priority: 10,
            definition: definition.as_object().unwrap().clone(),
        })
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while api.get(&format!("queues/%2F/{inbox}")).await.unwrap()["effective_policy_definition"]
        ["message-ttl"]
        != TTL.as_millis() as u64
    {
        assert!(Instant::now() < deadline, "the test policy applies");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The VPP empties its inbox and goes away.
    let vpp = client(&profile, "out-vpp").await;
    Received::start(&vpp, true).await;
    vpp.close(Duration::from_secs(5)).await;

    let sent_at: Arc<Mutex<BTreeMap<(String, u64), Instant>>> = Default::default();
    let mut senders = Vec::new();
    for i in 1..=HEHS {
        let heh = client(&profile, &format!("out-heh-{i}")).await;
        let sent_at = sent_at.clone();
        senders.push(tokio::spawn(async move {
            let to = ebadge_bus::EntityName::new("out-vpp").unwrap();
            let mut tick = tokio::time::interval(Duration::from_millis(1000 / RATE_EACH));
            let started = Instant::now();
            let mut n = 0;
            while started.elapsed() < OUTAGE {
                tick.tick().await;
                heh.send(&to, &numbered_report(n)).unwrap();
                sent_at
                    .lock()
                    .unwrap()
                    .insert((format!("out-heh-{i}"), n), Instant::now());
                n += 1;
            }
            tokio::time::timeout(Duration::from_secs(30), heh.flush())
                .await
                .expect("confirmed");
            let confirmed = heh.counters().confirmed;
            heh.close(Duration::from_secs(5)).await;
            confirmed
        }));
    }
    // Queue length and broker memory while nobody reads (the management API refreshes its
    // statistics every 5 s).
    let mut lengths = Vec::new();
    let mut memory = Vec::new();
    let started = Instant::now();
    while started.elapsed() < OUTAGE {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let queue = api.get(&format!("queues/%2F/{inbox}")).await.unwrap();
        lengths.push(queue["messages"].as_u64().unwrap_or(0));
        let nodes = api.get("nodes").await.unwrap();
        memory.push(
            nodes
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|n| n["mem_used"].as_u64())
                .sum::<u64>(),
        );
    }
    let mut confirmed = 0;
    for s in senders {
        confirmed += s.await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    // The VPP comes back: it gets what is younger than the TTL, nothing older.
    let back = Instant::now();
    let vpp = client(&profile, "out-vpp").await;
    let (received, _) = Received::start(&vpp, false).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let got = received.0.lock().unwrap().clone();
    let sent_at = sent_at.lock().unwrap().clone();
    let slack = Duration::from_secs(1);
    let mut delivered = 0;
    for (heh, numbers) in &got {
        let distinct: BTreeSet<_> = numbers.iter().collect();
        assert_eq!(distinct.len(), numbers.len(), "{heh}: no duplicates");
        for n in numbers {
            let at = sent_at[&(heh.clone(), *n)];
            assert!(
                back.duration_since(at) <= TTL + slack,
                "{heh} #{n} was {:?} old when the VPP came back: it should have expired",
                back.duration_since(at)
            );
            delivered += 1;
        }
    }
    for ((heh, n), at) in &sent_at {
        if back.duration_since(*at) + slack < TTL {
            assert!(
                got.get(heh).is_some_and(|v| v.contains(n)),
                "{heh} #{n}, {:?} old, was still live and must arrive",
                back.duration_since(*at)
            );
        }
    }
    let expired = confirmed - delivered;
    let rate = HEHS as u64 * RATE_EACH;
    let bound = 2 * rate * TTL.as_secs();
    let longest = *lengths.iter().max().unwrap();
    assert!(
        longest <= bound,
        "queue length stays near rate x TTL ({}), at most {bound}: saw {lengths:?}",
        rate * TTL.as_secs()
    );
    assert!(expired > confirmed / 2, "most of {confirmed} expired: {expired}");
    let third = memory.len() / 3;
    let mean = |s: &[u64]| s.iter().sum::<u64>() / s.len() as u64;
    let growth = mean(&memory[memory.len() - third..]) as i64 - mean(&memory[..third]) as i64;
    assert!(
        growth < 64 << 20,
        "broker memory does not grow with the outage: {memory:?}"
    );
    eprintln!(
        "outage of {} s at {rate} msgs/s, TTL {} s: {confirmed} confirmed, {delivered} delivered \
         after it, {expired} expired; queue length samples {lengths:?} (bound {bound}); broker \
         memory {} MiB to {} MiB (growth of the last third over the first {} KiB)",
        OUTAGE.as_secs(),
        TTL.as_secs(),
        memory.iter().min().unwrap() >> 20,
        memory.iter().max().unwrap() >> 20,
        growth / 1024
    );
    vpp.close(Duration::from_secs(5)).await;
    admin
        .delete_policy("/", "test-outage-ttl", true)
        .await
        .unwrap();
}
