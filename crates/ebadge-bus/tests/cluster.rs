//! High availability (D3.2.3 6.2.1-6.2.2) on a real three-node cluster behind haproxy: a node
//! killed under load, a second node restarted, a consumer outage against the TTL, a node whose
//! TLS is broken, and a VRRP failover between two haproxy hosts in network namespaces. Every
//! message is counted.

mod common;

use common::*;
use ebadge_admin::broker::LocalBroker;
use ebadge_admin::mgmt::RawApi;
use ebadge_bus::conventions::{DEFAULT_MAX_LENGTH, MESSAGE_TTL_MS};
use ebadge_bus::{Client, Profile};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The tests kill nodes and change policies: one at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn cluster_profile(broker: &LocalBroker) -> Profile {
    Profile::load(&broker.profile_path()).unwrap()
}

fn api(broker: &LocalBroker) -> RawApi {
    RawApi::new(&broker.management().unwrap())
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

/// Sends numbered reports from `sender` to `to` at `rate` a second until `stopping`; the task
/// returns how many it sent.
fn send_numbered(
    sender: Arc<Client>,
    to: &str,
    rate: u64,
    stopping: Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<u64> {
    let to = ebadge_bus::EntityName::new(to).unwrap();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(1000 / rate));
        let mut n = 0;
        while !stopping.load(std::sync::atomic::Ordering::Relaxed) {
            tick.tick().await;
            sender.send(&to, &numbered_report(n)).unwrap();
            n += 1;
        }
        n
    })
}

/// Asserts that `received` got every number below `sent` from `sender`, each once; returns them
/// in arrival order.
fn assert_each_once(received: &Received, sender: &str, sent: u64) -> Vec<u64> {
    let numbers = received
        .0
        .lock()
        .unwrap()
        .get(sender)
        .cloned()
        .unwrap_or_default();
    assert_each_once_any_order(&numbers, sent, &format!("the messages from {sender}"));
    numbers
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
    let api = api(&broker);
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
            .expect("every report confirmed within a minute")
            .expect("nothing undelivered");
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

/// The node that leads `queue` (a quorum queue), once the management API names one that is
/// online.
async fn leader_of(api: &RawApi, queue: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(q) = api.get(&format!("queues/%2F/{queue}")).await
            && let Some(leader) = q["leader"].as_str()
        {
            return leader.to_owned();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("no leader for {queue}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_of_the_receivers_quorum_inbox_stalls_no_sender() {
    const RATE: u64 = 100;
    let _one = ONE_AT_A_TIME.lock().await;
    let broker = ebadge_testkit::cluster().await;
    let profile = cluster_profile(&broker);
    let api = api(&broker);
    let vpp = client(&profile, "lead-vpp").await;
    let (received, _) = Received::start(&vpp, true).await;
    // The sender stays on a node that survives: only the queue's leader moves under it (the
    // case where a publishing channel was seen refused for minutes).
    let leader = leader_of(&api, "private-lead-vpp-inbox").await;
    let status = broker.status().unwrap();
    let index = status.nodes.iter().position(|n| n.name == leader).unwrap();
    let survivor = &status.nodes[(index + 1) % status.nodes.len()];
    let dir = tempfile::tempdir().unwrap();
    let mut config = ebadge_bus::ClientConfig::new(
        on_node(&profile, survivor),
        ebadge_bus::EntityName::new("lead-heh").unwrap(),
    );
    config.durable_outbox = Some(dir.path().join("outbox.sqlite"));
    config.reconnect_max = Duration::from_secs(1);
    let heh = Arc::new(Client::connect(config).await.unwrap());

    let stopping = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sender = send_numbered(heh.clone(), "lead-vpp", RATE, stopping.clone());
    // The outbox depth, sampled: how long the sender stays behind after the kill.
    let samples = Arc::new(Mutex::new(Vec::new()));
    let sampler = {
        let (heh, samples, stopping) = (heh.clone(), samples.clone(), stopping.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            while !stopping.load(std::sync::atomic::Ordering::Relaxed) {
                samples
                    .lock()
                    .unwrap()
                    .push((started.elapsed(), heh.counters().buffered));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            started
        })
    };

    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(leader_of(&api, "private-lead-vpp-inbox").await, leader);
    let sender_node = &survivor.name;
    let killed_at = Instant::now();
    assert!(broker.kill_node(index).unwrap().is_some());
    tokio::time::sleep(Duration::from_secs(20)).await;
    broker.up(&Default::default()).await.unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    stopping.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent = sender.await.unwrap();
    let started = sampler.await.unwrap();
    let flushed_at = Instant::now();
    tokio::time::timeout(Duration::from_secs(60), heh.flush())
        .await
        .expect("the sender catches up within a minute of the end")
        .expect("nothing undelivered");
    let flush = flushed_at.elapsed();
    received
        .wait_for(sent as usize, Duration::from_secs(30))
        .await;

    let numbers = assert_each_once(&received, "lead-heh", sent);
    // Back to a normal depth (a second's worth) after the kill: when, and the worst depth.
    let kill_offset = killed_at - started;
    let samples = samples.lock().unwrap().clone();
    let worst = samples
        .iter()
        .filter(|(t, _)| *t >= kill_offset)
        .map(|(_, b)| *b)
        .max()
        .unwrap_or(0);
    let caught_up = samples
        .iter()
        .rev()
        .take_while(|(_, b)| *b <= RATE)
        .last()
        .map(|(t, _)| t.saturating_sub(kill_offset));
    let counters = heh.counters();
    assert_eq!(counters.reconnects, 0, "the sender's node stayed up");
    eprintln!(
        "killed {leader} (leader of private-lead-vpp-inbox; the sender was on {sender_node}): \
         {sent} reports at {RATE}/s each once, {} out of order; outbox at most {worst} deep, \
         back to <= {RATE} {:?} after the kill; flush after the end took {} ms; sender {counters:?}",
        numbers.windows(2).filter(|w| w[0] > w[1]).count(),
        caught_up,
        flush.as_millis()
    );
    heh.close(Duration::from_secs(5)).await;
    vpp.close(Duration::from_secs(5)).await;
}

/// `profile`, connecting straight to `node` (not through haproxy).
fn on_node(profile: &Profile, node: &ebadge_admin::broker::NodeStatus) -> Profile {
    let mut direct = profile.clone();
    direct.amqps_url = node.amqps_url.clone();
    direct
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_node_of_an_hehs_classic_inbox_delays_its_messages_and_loses_none() {
    const RATE: u64 = 50;
    let _one = ONE_AT_A_TIME.lock().await;
    let broker = ebadge_testkit::cluster().await;
    let profile = cluster_profile(&broker);
    let api = api(&broker);
    // HEH inboxes are classic on a cluster: on one node, not replicated.
    let inbox = api.get("queues/%2F/private-home-heh-inbox").await.unwrap();
    assert_eq!(inbox["type"], "classic", "{inbox}");
    let home = inbox["node"].as_str().unwrap().to_owned();
    let status = broker.status().unwrap();
    let index = status.nodes.iter().position(|n| n.name == home).unwrap();
    let other = &status.nodes[(index + 1) % status.nodes.len()];
    // Both ends stay connected to a node that survives: only the inbox goes away.
    let vpp = Arc::new(client(&on_node(&profile, other), "home-vpp").await);
    let heh = client(&on_node(&profile, other), "home-heh").await;
    let (received, _) = Received::start(&heh, true).await;

    let stopping = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sender = send_numbered(vpp.clone(), "home-heh", RATE, stopping.clone());
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(broker.kill_node(index).unwrap().is_some());
    tokio::time::sleep(Duration::from_secs(15)).await;
    let during = received.distinct();
    broker.up(&Default::default()).await.unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    stopping.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent = sender.await.unwrap();
    tokio::time::timeout(Duration::from_secs(60), vpp.flush())
        .await
        .expect("the sender catches up within a minute of the end")
        .expect("nothing undelivered");
    received
        .wait_for(sent as usize, Duration::from_secs(30))
        .await;
    assert_each_once(&received, "home-vpp", sent);
    let counters = vpp.counters();
    assert!(
        counters.returned + counters.nacked > 0,
        "publishes were refused while the inbox's node was down: {counters:?}"
    );
    assert_eq!(
        heh.counters().reconnects,
        0,
        "the receiver kept its connection and only waited to consume again"
    );
    eprintln!(
        "killed {home} (the node of private-home-heh-inbox) for 15 s: {sent} messages at {RATE}/s \
         each once ({during} had arrived when the node came back); sender {counters:?}"
    );
    heh.close(Duration::from_secs(5)).await;
    vpp.close(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_outage_stays_bounded_by_the_ttl_and_delivers_only_live_messages() {
    const TTL: Duration = Duration::from_secs(3);
    const HEHS: usize = 5;
    const RATE_EACH: u64 = 20;
    const OUTAGE: Duration = Duration::from_secs(30);
    let _one = ONE_AT_A_TIME.lock().await;
    let broker = ebadge_testkit::cluster().await;
    let profile = cluster_profile(&broker);
    let api = api(&broker);
    let inbox = "private-out-vpp-inbox";

    // A shorter TTL for this inbox only, by a policy of higher priority, as an operator would.
    let admin = ebadge_testkit::bound_queue(
        &broker.management().unwrap(),
        "test-outage-ttl",
        inbox,
        TTL.as_millis() as u64,
        DEFAULT_MAX_LENGTH,
    )
    .await;

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
                .expect("confirmed")
                .expect("nothing undelivered");
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
    assert!(
        expired > confirmed / 2,
        "most of {confirmed} expired: {expired}"
    );
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

/// Two haproxy hosts sharing a virtual IP by VRRP (keepalived), each in a network namespace of
/// its own, joined to this host by a bridge; the cluster's nodes are reached at the bridge's
/// address. Torn down on drop.
struct VrrpPair {
    dir: tempfile::TempDir,
    haproxy: Vec<std::process::Child>,
    keepalived: Vec<std::process::Child>,
}

const BRIDGE: &str = "ebt-br0";
const HOST_IP: &str = "10.77.0.1";
const VIP_PORT: u16 = 5671;

fn ns(i: usize) -> String {
    format!("ebt-lb{i}")
}

fn sh(command: &str) -> String {
    let output = std::process::Command::new("sh")
        .args(["-c", command])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{command}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn teardown_network() {
    for i in 1..=2 {
        let _ = std::process::Command::new("sh")
            .args(["-c", &format!("ip netns del {0}; ip link del {0}-h", ns(i))])
            .stderr(std::process::Stdio::null())
            .status();
    }
    let _ = std::process::Command::new("ip")
        .args(["link", "del", BRIDGE])
        .stderr(std::process::Stdio::null())
        .status();
}

impl VrrpPair {
    fn start(broker: &LocalBroker) -> Self {
        assert_eq!(
            sh("id -u").trim(),
            "0",
            "the VRRP test makes network namespaces: run it as root"
        );
        teardown_network();
        sh(&format!(
            "ip link add {BRIDGE} type bridge && ip addr add {HOST_IP}/24 dev {BRIDGE} && ip link set {BRIDGE} up"
        ));
        for i in 1..=2 {
            let n = ns(i);
            sh(&format!(
                "ip netns add {n} && ip link add {n}-h type veth peer name eth0 netns {n} && \
                 ip link set {n}-h master {BRIDGE} up && ip -n {n} addr add 10.77.0.1{i}/24 dev eth0 && \
                 ip -n {n} link set eth0 up && ip -n {n} link set lo up"
            ));
        }
        let dir = tempfile::tempdir().unwrap();
        let backends: Vec<_> = broker
            .status()
            .unwrap()
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| ebadge_admin::haproxy::Backend {
                name: format!("node-{}", i + 1),
                host: HOST_IP.into(),
                amqps_port: n.amqps_url.rsplit(':').next().unwrap().parse().unwrap(),
                management_port: 0,
            })
            .collect();
        let spawn = |i: usize, name: &str, args: &[&str]| {
            let log = std::fs::File::create(dir.path().join(format!("{name}{i}.log"))).unwrap();
            std::process::Command::new("ip")
                .args(["netns", "exec", &ns(i)])
                .args(args)
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap()
        };
        let mut haproxy = Vec::new();
        let mut keepalived = Vec::new();
        for i in 1..=2 {
            let config = dir.path().join(format!("haproxy{i}.cfg"));
            let front = ebadge_admin::haproxy::Frontend {
                bind: "0.0.0.0".into(),
                max_connections: ebadge_admin::haproxy::LOCAL_MAX_CONNECTIONS,
                amqps_port: VIP_PORT,
                management_port: None,
                prometheus: None,
                admin_socket: dir.path().join(format!("haproxy{i}.sock")),
                check_ca: Some(broker.pki().ca_cert()),
            };
            std::fs::write(&config, ebadge_admin::haproxy::config(&front, &backends)).unwrap();
            let child = spawn(
                i,
                "haproxy",
                &[
                    ebadge_admin::haproxy::HAPROXY,
                    "-db",
                    "-f",
                    config.to_str().unwrap(),
                ],
            );
            // The primary has the higher priority; a failing check (haproxy gone) puts keepalived
            // in FAULT state, which hands the address over at once.
            let conf = format!(
                "global_defs {{\n  router_id {n}\n  enable_script_security\n  script_user root\n}}\n\
                 vrrp_script haproxy_alive {{\n  script \"/bin/kill -0 {pid}\"\n  interval 1\n  fall 1\n  rise 1\n}}\n\
                 vrrp_instance ebadge {{\n  state BACKUP\n  interface eth0\n  virtual_router_id 77\n  \
                 priority {prio}\n  advert_int 1\n  virtual_ipaddress {{\n    {vip}/24 dev eth0\n  }}\n  \
                 track_script {{\n    haproxy_alive\n  }}\n}}\n",
                n = ns(i),
                pid = child.id(),
                prio = 200 - 50 * i,
                vip = ebadge_testkit::VRRP_VIP,
            );
            haproxy.push(child);
            let conf_file = dir.path().join(format!("keepalived{i}.conf"));
            std::fs::write(&conf_file, conf).unwrap();
            let pid = |what: &str| {
                dir.path()
                    .join(format!("{what}{i}.pid"))
                    .display()
                    .to_string()
            };
            keepalived.push(spawn(
                i,
                "keepalived",
                &[
                    "keepalived",
                    "-n",
                    "-l",
                    "-D",
                    "-f",
                    conf_file.to_str().unwrap(),
                    "-p",
                    &pid("keepalived"),
                    "-r",
                    &pid("vrrp"),
                    "-c",
                    &pid("checkers"),
                ],
            ));
        }
        Self {
            dir,
            haproxy,
            keepalived,
        }
    }

    /// Whether host `i` (1 or 2) holds the virtual IP.
    fn holds_vip(&self, i: usize) -> bool {
        sh(&format!("ip -n {} -o -4 addr show dev eth0", ns(i)))
            .contains(&format!("{}/", ebadge_testkit::VRRP_VIP))
    }

    async fn wait_for_vip(&self, i: usize, patience: Duration) -> Duration {
        let started = Instant::now();
        while !self.holds_vip(i) {
            assert!(
                started.elapsed() < patience,
                "host {i} did not take the virtual IP within {patience:?}; keepalived log: {}",
                std::fs::read_to_string(self.dir.path().join(format!("keepalived{i}.log")))
                    .unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        started.elapsed()
    }
}

impl Drop for VrrpPair {
    fn drop(&mut self) {
        for child in self.keepalived.iter_mut().chain(self.haproxy.iter_mut()) {
            let _ = std::process::Command::new("kill")
                .arg(child.id().to_string())
                .stderr(std::process::Stdio::null())
                .status();
            let _ = child.wait();
        }
        teardown_network();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vrrp_moves_the_address_to_the_backup_haproxy_and_no_message_is_lost() {
    let _one = ONE_AT_A_TIME.lock().await;
    let broker = ebadge_testkit::cluster().await;
    let mut pair = VrrpPair::start(&broker);
    pair.wait_for_vip(1, Duration::from_secs(15)).await;
    assert!(!pair.holds_vip(2), "one address, one holder");

    let mut profile = cluster_profile(&broker);
    profile.amqps_url = format!("amqps://{}:{VIP_PORT}", ebadge_testkit::VRRP_VIP);
    let vpp = client(&profile, "vip-vpp").await;
    let (received, _) = Received::start(&vpp, true).await;
    let heh = Arc::new(client(&profile, "vip-heh").await);
    let sender = {
        let heh = heh.clone();
        tokio::spawn(async move {
            let to = ebadge_bus::EntityName::new("vip-vpp").unwrap();
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            for n in 0..1_000 {
                tick.tick().await;
                heh.send(&to, &numbered_report(n)).unwrap();
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(3)).await;

    // The primary haproxy dies; keepalived's check sees it within a second.
    let stopped_at = Instant::now();
    pair.haproxy[0].kill().unwrap();
    let _ = pair.haproxy[0].wait();
    let (moved, heh_back, vpp_back) = tokio::join!(
        pair.wait_for_vip(2, Duration::from_secs(15)),
        reconnect_time(&heh, stopped_at),
        reconnect_time(&vpp, stopped_at)
    );
    assert!(!pair.holds_vip(1), "the failed host gave the address up");
    sender.await.unwrap();
    tokio::time::timeout(Duration::from_secs(60), heh.flush())
        .await
        .expect("every report confirmed through the backup")
        .expect("nothing undelivered");
    received.wait_for(1_000, Duration::from_secs(20)).await;
    let numbers = received
        .0
        .lock()
        .unwrap()
        .get("vip-heh")
        .cloned()
        .unwrap_or_default();
    assert_exactly_once_in_order(&numbers, 0, 1_000);
    eprintln!(
        "VRRP: the address moved to the backup {} ms after the primary haproxy died; the HEH \
         reconnected after {} ms, the VPP after {} ms; 1,000 reports at 100 msgs/s each once, in \
         order (HEH {:?})",
        moved.as_millis(),
        heh_back.as_millis(),
        vpp_back.as_millis(),
        heh.counters()
    );
    heh.close(Duration::from_secs(5)).await;
    vpp.close(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_quorum_inbox_refuses_publishes_and_the_sender_keeps_them_until_there_is_room() {
    const ROOM: u64 = 10;
    const BURST: u64 = 200;
    const LATER: u64 = 20;
    let _one = ONE_AT_A_TIME.lock().await;
    let broker = ebadge_testkit::cluster().await;
    let profile = cluster_profile(&broker);
    let api = api(&broker);
    let inbox = "private-out-vpp-inbox";

    let vpp = client(&profile, "out-vpp").await;
    Received::start(&vpp, true).await;
    vpp.close(Duration::from_secs(5)).await;
    let admin = ebadge_testkit::bound_queue(
        &broker.management().unwrap(),
        "test-full-inbox",
        inbox,
        MESSAGE_TTL_MS,
        ROOM,
    )
    .await;
    // The management API shows the policy before the quorum queue applies it.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let heh = client(&profile, "out-heh-1").await;
    let to = ebadge_bus::EntityName::new("out-vpp").unwrap();
    for n in 0..BURST {
        heh.send(&to, &numbered_report(n)).unwrap();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after_burst = heh.counters();
    let held = api.get(&format!("queues/%2F/{inbox}")).await.unwrap()["messages"].clone();
    for n in BURST..BURST + LATER {
        heh.send(&to, &numbered_report(n)).unwrap();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    // A quorum queue learns it is over its bound after the enqueues in flight: the burst
    // overshoots, later publishes are refused. Refused messages stay with the sender.
    let later = heh.counters();
    let total = BURST + LATER;
    assert!(later.nacked > 0, "the full queue refuses: {later:?}");
    assert!(later.confirmed < total, "bounded: {later:?}");
    assert_eq!(
        later.confirmed, after_burst.confirmed,
        "nothing more gets in once it is full: {later:?}"
    );
    assert_eq!(later.buffered, total - later.confirmed, "kept: {later:?}");
    assert_eq!(later.dropped, 0);

    // Room again (the bound lifted, the VPP reads): the kept messages go in, each arrives once.
    admin
        .delete_policy("/", "test-full-inbox", true)
        .await
        .unwrap();
    let vpp = client(&profile, "out-vpp").await;
    let (received, _) = Received::start(&vpp, false).await;
    tokio::time::timeout(Duration::from_secs(30), heh.flush())
        .await
        .expect("the kept messages are confirmed once there is room")
        .expect("nothing undelivered");
    received
        .wait_for(total as usize, Duration::from_secs(10))
        .await;
    let mut numbers = received
        .0
        .lock()
        .unwrap()
        .get("out-heh-1")
        .cloned()
        .unwrap_or_default();
    numbers.sort();
    assert_eq!(numbers, (0..total).collect::<Vec<_>>(), "each once");
    eprintln!(
        "a quorum inbox bounded to {ROOM}: a burst of {BURST} put {} in (queue length {held}), \
         {LATER} more all refused; {} refusals in all, every message kept and delivered once later ({:?})",
        after_burst.confirmed,
        later.nacked,
        heh.counters()
    );
    heh.close(Duration::from_secs(5)).await;
    vpp.close(Duration::from_secs(5)).await;
}

/// `GET url`: the body.
async fn http_get(url: &str) -> String {
    ebadge_testkit::http_get(url)
        .await
        .expect("the endpoint answers")
        .1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_keeps_persistent_messages_in_its_shared_store() {
    let _one = ONE_AT_A_TIME.lock().await;
    let broker = ebadge_testkit::cluster().await;
    let state = broker.state().unwrap().expect("the cluster is up");
    let answers = broker
        .ctl(
            &state,
            &[
                "eval",
                "rpc:multicall(application, get_env, [rabbit, queue_index_embed_msgs_below]).",
            ],
        )
        .unwrap();
    assert!(
        answers.contains("{[{ok,0},{ok,0},{ok,0}],[]}"),
        "every node runs ebadge_admin::broker::cluster_fleet_settings: {answers}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_and_haproxy_serve_prometheus_metrics() {
    let _one = ONE_AT_A_TIME.lock().await;
    let broker = ebadge_testkit::cluster().await;
    let status = broker.status().unwrap();
    for node in &status.nodes {
        let url = node
            .prometheus_url
            .as_deref()
            .expect("every node has its endpoint");
        let text = http_get(url).await;
        assert!(
            text.contains(&format!(
                "rabbitmq_identity_info{{rabbitmq_node=\"{}\"",
                node.name
            )),
            "{url} serves the metrics of {}",
            node.name
        );
        let detailed = http_get(&url.replace(
            "/metrics",
            "/metrics/detailed?family=queue_coarse_metrics&family=queue_consumer_count",
        ))
        .await;
        assert!(
            detailed.contains("rabbitmq_detailed_queue_messages{"),
            "{detailed}"
        );
    }
    // haproxy's exporter sees the three nodes up (an earlier test may have restarted one: a
    // node is back in haproxy's eyes within its health checks).
    let url = status
        .haproxy_metrics_url
        .expect("a cluster's haproxy has its exporter");
    let three_up = "haproxy_backend_active_servers{proxy=\"amqps-nodes\"} 3";
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = http_get(&url).await;
        if text.contains(three_up) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{url} lacks `{three_up}`:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Puts a certificate of another CA into `node`'s PEM cache, where its TLS listener reads its
/// certificate and key from, as a wrong file copied to one node in a rotation would. (The local
/// cluster's nodes share one PKI directory, so the files cannot differ per node.) Dropping it
/// clears the node's cache: it reads its own files again.
struct ForeignCertificate<'a> {
    broker: &'a LocalBroker,
    node: String,
}

impl<'a> ForeignCertificate<'a> {
    fn put(broker: &'a LocalBroker, node: &str, foreign: &ebadge_admin::pki::Pki) -> Self {
        let (own_cert, own_key) = broker.pki().server();
        let (cert, key) = foreign.server();
        let code = format!(
            "Read = fun(F) -> {{ok, B}} = file:read_file(F), public_key:pem_decode(B) end, \
             Entries = [{{<<\"{}\">>, Read(\"{}\")}}, {{<<\"{}\">>, Read(\"{}\")}}], \
             case rpc:call('{node}', sys, replace_state, [ssl_pem_cache, \
               fun(S) -> true = ets:insert(ssl_pem_cache, Entries), S end]) of \
               {{badrpc, R}} -> error(R); _ -> ok end.",
            own_cert.display(),
            cert.display(),
            own_key.display(),
            key.display(),
        );
        let state = broker.state().unwrap().expect("the cluster is up");
        broker.ctl(&state, &["eval", &code]).unwrap();
        Self {
            broker,
            node: node.to_owned(),
        }
    }
}

impl Drop for ForeignCertificate<'_> {
    fn drop(&mut self) {
        // No unwrap: a panic while the test is already panicking would abort the whole run.
        let code = format!("ok = rpc:call('{}', ssl, clear_pem_cache, []).", self.node);
        let cleared = match self.broker.state() {
            Ok(Some(state)) => self.broker.ctl(&state, &["eval", &code]).map(|_| ()),
            _ => Ok(()),
        };
        if let Err(e) = cleared {
            eprintln!("{} keeps the foreign certificate: {e}", self.node);
        }
    }
}

/// How many AMQPS servers haproxy's exporter at `url` counts active.
async fn active_servers(url: &str) -> usize {
    let text = http_get(url).await;
    text.lines()
        .find_map(|l| l.strip_prefix("haproxy_backend_active_servers{proxy=\"amqps-nodes\"} "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("{url} counts no AMQPS servers:\n{text}"))
}

/// Waits up to 15 s for haproxy's exporter to count `active` AMQPS servers.
async fn wait_for_active_servers(url: &str, active: usize) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let now = active_servers(url).await;
        if now == active {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "haproxy counts {now} active servers, not {active}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The test cluster once haproxy counts all three nodes active: the broker, the profile through
/// haproxy, the status and haproxy's exporter URL.
async fn cluster_all_active() -> (
    LocalBroker,
    Profile,
    ebadge_admin::broker::BrokerStatus,
    String,
) {
    let broker = ebadge_testkit::cluster().await;
    let profile = cluster_profile(&broker);
    let status = broker.status().unwrap();
    let url = status
        .haproxy_metrics_url
        .clone()
        .expect("haproxy's exporter");
    wait_for_active_servers(&url, 3).await;
    (broker, profile, status, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_presenting_a_certificate_of_another_ca_is_taken_out_and_clients_reach_the_others() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (broker, profile, status, url) = cluster_all_active().await;
    let other = tempfile::tempdir().unwrap();
    let foreign = ebadge_admin::pki::Pki::new(other.path());
    foreign.init(&["localhost".into()]).unwrap();
    let victim = &status.nodes[1];
    let guard = ForeignCertificate::put(&broker, &victim.name, &foreign);

    let direct = Client::connect(ebadge_bus::ClientConfig::new(
        on_node(&profile, victim),
        ebadge_bus::EntityName::new("ha-heh-1").unwrap(),
    ))
    .await;
    assert!(
        direct.is_err(),
        "{} presents the other CA's certificate",
        victim.name
    );
    // A TCP check would keep it; with `leastconn` it would then get every new client.
    wait_for_active_servers(&url, 2).await;
    let mut clients = Vec::new();
    for i in 1..=9 {
        let name = format!("ha-heh-{i}");
        let config = ebadge_bus::ClientConfig::new(
            profile.clone(),
            ebadge_bus::EntityName::new(&name).unwrap(),
        );
        match Client::connect(config).await {
            Ok(client) => clients.push(client),
            Err(e) => panic!(
                "{name} connects through haproxy while {} is out: {e}",
                victim.name
            ),
        }
    }
    for client in &clients {
        client.close(Duration::from_secs(5)).await;
    }
    drop(guard);
    wait_for_active_servers(&url, 3).await;
}

/// A node stopped with SIGSTOP, resumed on `resume` or drop (also when the test fails).
struct Stalled(u32);

impl Stalled {
    fn start(pid: u32) -> Self {
        assert!(signal("-STOP", pid));
        Stalled(pid)
    }

    fn resume(&self) {
        assert!(signal("-CONT", self.0));
    }
}

impl Drop for Stalled {
    fn drop(&mut self) {
        signal("-CONT", self.0);
    }
}

fn signal(signal: &str, pid: u32) -> bool {
    std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success())
}

/// The fewest AMQPS servers haproxy's exporter at `url` counts active while sampled for `span`.
async fn fewest_active_servers(url: &str, span: Duration) -> usize {
    let mut fewest = usize::MAX;
    let until = Instant::now() + span;
    while Instant::now() < until {
        fewest = fewest.min(active_servers(url).await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    fewest
}

/// A node busy enough to leave TLS handshakes unanswered for a few seconds is still alive:
/// haproxy must keep it and its sessions. (A burst of 5,000 activations on two shared cores did
/// this: haproxy's 1-s handshake checks timed out twice, it marked two nodes down and cut the
/// VPP's connections mid-burst.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_answers_nothing_for_4_seconds_keeps_its_sessions() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (_broker, profile, status, url) = cluster_all_active().await;
    // Through haproxy with `leastconn`: two clients on each node.
    let mut clients = Vec::new();
    for i in 1..=6 {
        clients.push(client(&profile, &format!("ha-heh-{i}")).await);
    }

    let stalled = Stalled::start(status.nodes[1].pid.expect("node 2 runs"));
    let during = fewest_active_servers(&url, Duration::from_secs(4)).await;
    stalled.resume();
    let after = fewest_active_servers(&url, Duration::from_secs(4)).await;
    let reconnects: Vec<u64> = clients.iter().map(|c| c.counters().reconnects).collect();
    assert_eq!(
        (during, after),
        (3, 3),
        "haproxy took a stalled, living node out"
    );
    assert_eq!(reconnects, vec![0; 6], "no client lost its connection");
    for client in clients {
        client.close(Duration::from_secs(5)).await;
    }
}
