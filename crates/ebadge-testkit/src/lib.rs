//! Test support for the eBADGE bus: one real broker per test run (booted by the first test that
//! needs it, reused by the rest and by later test binaries), one registry provisioned into it,
//! small AMQP helpers that record the broker's actual replies, and a TCP proxy that cuts links.

pub use ebadge_sim::proxy;

use amqprs::callbacks::ChannelCallback;
use amqprs::channel::{BasicPublishArguments, Channel};
use amqprs::connection::Connection;
use amqprs::{Ack, BasicProperties, Cancel, CloseChannel, Nack, Return};
use ebadge_admin::broker::LocalBroker;
use ebadge_admin::mgmt::{AdminClient, admin_client};
use ebadge_admin::profile::Management;
use ebadge_admin::registry::{Builder, Registry};
use ebadge_bus::Profile;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::OnceCell;

/// The registry every test runs against. Provisioning removes what a registry does not name, so
/// all test binaries share this one. Each test owns its senders and receivers (a receiver's inbox
/// consumed by two tests at once would split their messages).
///
/// Operator tests: an operator, two HEHs, a VPP linked to the operator, a group with a sender and
/// two members, a non-member, a late receiver and an entity to revoke. Simulator tests: a VPP
/// with four HEHs, a controller with two, and the market actors. Client tests: one operator
/// and HEH pair per fault scenario, an operator with four HEHs for publishing lanes, a VPP
/// with its HEH for activations, a TSO and a BSP for market
/// requests, two entities for the command line. Settlement tests: a sender linked to a healthy,
/// a full and an unroutable receiver, and a stranger it has no link with; pairs for held
/// messages, quarantine copies and the pika interoperability test. The hardening tests: an
/// operator flooded by its HEH, a sender of too large messages, an operator whose quarantine
/// cannot be made, a receiver that drops messages, one that rejects them, one sent reasons longer than a frame, a VPP answered by the wrong HEH. The relay test: `relay-vpp`
/// linked to `relay-ts` and to `relay-mkt`, and a group of `relay-ts` with `relay-mkt` in it.
/// The Python package's tests (`py-*`): an operator with its HEH, pairs for the command line and
/// pika, handler failures, asyncio beside threads and the broker restart, an entity for Ctrl-C,
/// and a VPP with five HEHs of the simulator's names (`ebadge sim heh --first 2304 --count 5`).
pub const REGISTRY: &str = r#"
[[entity]]
name = "flood-op"
[[heh]]
name = "flood-heh"
operator = "flood-op"
[[entity]]
name = "big-sender"
[[entity]]
name = "big-receiver"
[[link]]
between = ["big-sender", "big-receiver"]
[[entity]]
name = "loop-op"
[[heh]]
name = "loop-heh"
operator = "loop-op"
[[entity]]
name = "rel-sender"
[[entity]]
name = "rel-receiver"
[[link]]
between = ["rel-sender", "rel-receiver"]
[[entity]]
name = "rej-sender"
[[entity]]
name = "rej-receiver"
[[link]]
between = ["rej-sender", "rej-receiver"]
[[entity]]
name = "frame-sender"
[[entity]]
name = "frame-receiver"
[[link]]
between = ["frame-sender", "frame-receiver"]
[[entity]]
name = "peer-vpp"
[[heh]]
name = "peer-heh-a"
operator = "peer-vpp"
[[heh]]
name = "peer-heh-b"
operator = "peer-vpp"
[[entity]]
name = "ts"
role = "operator"
[[entity]]
name = "vpp"
[[entity]]
name = "tso"
[[entity]]
name = "bsp1"
[[entity]]
name = "bsp2"
[[entity]]
name = "bsp3"
[[entity]]
name = "late"
[[entity]]
name = "gone"
[[heh]]
name = "heh-a"
operator = "ts"
[[heh]]
name = "heh-b"
operator = "ts"
[[link]]
between = ["vpp", "ts"]
[[link]]
between = ["ts", "late"]
[[link]]
between = ["ts", "gone"]
[[entity]]
name = "op-cut"
[[heh]]
name = "heh-cut"
operator = "op-cut"
[[entity]]
name = "op-stall"
[[heh]]
name = "heh-stall"
operator = "op-stall"
[[entity]]
name = "op-restart"
[[heh]]
name = "heh-restart"
operator = "op-restart"
[[entity]]
name = "op-outbox"
[[heh]]
name = "heh-outbox"
operator = "op-outbox"
[[entity]]
name = "op-quarantine"
[[heh]]
name = "heh-quarantine"
operator = "op-quarantine"
[[entity]]
name = "op-metrics"
[[heh]]
name = "heh-metrics"
operator = "op-metrics"
[[entity]]
name = "agent-vpp"
[[heh]]
name = "agent-heh"
operator = "agent-vpp"
[[entity]]
name = "agent-cmd-vpp"
[[heh]]
name = "agent-cmd-heh"
operator = "agent-cmd-vpp"
[[entity]]
name = "agent-sim-vpp"
[[heh]]
name = "agent-sim-heh"
operator = "agent-sim-vpp"
[[entity]]
name = "agent-stall-vpp"
[[heh]]
name = "agent-stall-heh"
operator = "agent-stall-vpp"
[[entity]]
name = "agent-arm64-vpp"
[[heh]]
name = "agent-arm64-heh"
operator = "agent-arm64-vpp"
[[entity]]
name = "agent-armv7-vpp"
[[heh]]
name = "agent-armv7-heh"
operator = "agent-armv7-vpp"
[[entity]]
name = "agent-restart-vpp"
[[heh]]
name = "agent-restart-heh"
operator = "agent-restart-vpp"
[[entity]]
name = "op-fleet"
[[heh]]
name = "fleet-heh-1"
operator = "op-fleet"
[[heh]]
name = "fleet-heh-2"
operator = "op-fleet"
[[entity]]
name = "lanes-vpp"
[[heh]]
name = "lanes-heh-1"
operator = "lanes-vpp"
[[heh]]
name = "lanes-heh-2"
operator = "lanes-vpp"
[[heh]]
name = "lanes-heh-3"
operator = "lanes-vpp"
[[heh]]
name = "lanes-heh-4"
operator = "lanes-vpp"
[[entity]]
name = "example-vpp"
[[heh]]
name = "example-heh"
operator = "example-vpp"
[[entity]]
name = "act-vpp"
[[heh]]
name = "act-heh"
operator = "act-vpp"
[[entity]]
name = "market-tso"
[[entity]]
name = "market-bsp"
[[link]]
between = ["market-tso", "market-bsp"]
[[entity]]
name = "cli-sender"
[[entity]]
name = "cli-receiver"
[[link]]
between = ["cli-sender", "cli-receiver"]
[[entity]]
name = "cli-log-receiver"
[[entity]]
name = "close-sender"
[[entity]]
name = "close-receiver"
[[link]]
between = ["close-sender", "close-receiver"]
[[link]]
between = ["cli-sender", "cli-log-receiver"]
[[entity]]
name = "cli-metrics-sender"
[[entity]]
name = "cli-metrics-receiver"
[[link]]
between = ["cli-metrics-sender", "cli-metrics-receiver"]
[[entity]]
name = "sim-vpp"
[[heh]]
name = "sim-heh-1"
operator = "sim-vpp"
[[heh]]
name = "sim-heh-2"
operator = "sim-vpp"
[[heh]]
name = "sim-heh-3"
operator = "sim-vpp"
[[heh]]
name = "sim-heh-4"
operator = "sim-vpp"
[[entity]]
name = "sim-ctl"
[[heh]]
name = "sim-heh-5"
operator = "sim-ctl"
[[heh]]
name = "sim-heh-6"
operator = "sim-ctl"
[[entity]]
name = "m-tso"
[[entity]]
name = "m-tso2"
[[entity]]
name = "m-super"
[[entity]]
name = "m-bsp1"
[[entity]]
name = "m-bsp2"
[[link]]
between = ["m-tso", "m-bsp1"]
[[link]]
between = ["m-tso", "m-bsp2"]
[[link]]
between = ["m-tso", "m-super"]
[[link]]
between = ["m-tso2", "m-super"]
[[entity]]
name = "ack-sender"
[[entity]]
name = "ack-receiver"
[[link]]
between = ["ack-sender", "ack-receiver"]
[[entity]]
name = "set-sender"
[[entity]]
name = "set-ok"
[[entity]]
name = "set-full"
[[entity]]
name = "set-noroute"
[[entity]]
name = "set-stranger"
[[link]]
between = ["set-sender", "set-ok"]
[[link]]
between = ["set-sender", "set-full"]
[[link]]
between = ["set-sender", "set-noroute"]
[[entity]]
name = "hold-op"
[[heh]]
name = "hold-heh"
operator = "hold-op"
[[entity]]
name = "qcap-op"
[[heh]]
name = "qcap-heh"
operator = "qcap-op"
[[entity]]
name = "crl-a"
[[entity]]
name = "pika-op"
[[heh]]
name = "pika-heh"
operator = "pika-op"
[[entity]]
name = "tap-op"
[[heh]]
name = "tap-heh"
operator = "tap-op"
[[group]]
name = "tap-hehs"
sender = "tap-op"
members = ["tap-heh"]
[[group]]
name = "m-bsps"
sender = "m-tso"
members = ["m-bsp1", "m-bsp2"]
[[group]]
name = "bsps"
sender = "tso"
members = ["bsp1", "bsp2"]
[[entity]]
name = "relay-ts"
[[entity]]
name = "relay-vpp"
[[entity]]
name = "relay-mkt"
[[link]]
between = ["relay-ts", "relay-vpp"]
[[entity]]
name = "py-op"
[[heh]]
name = "py-heh"
operator = "py-op"
[[entity]]
name = "py-a"
[[entity]]
name = "py-b"
[[link]]
between = ["py-a", "py-b"]
[[entity]]
name = "py-hand"
[[entity]]
name = "py-feeder"
[[link]]
between = ["py-feeder", "py-hand"]
[[entity]]
name = "py-async"
[[entity]]
name = "py-thread"
[[link]]
between = ["py-async", "py-thread"]
[[entity]]
name = "py-sig"
[[entity]]
name = "py-rs-sender"
[[entity]]
name = "py-rs-receiver"
[[link]]
between = ["py-rs-sender", "py-rs-receiver"]
[[entity]]
name = "py-vpp"
[[heh]]
name = "heh-020000000900"
operator = "py-vpp"
[[heh]]
name = "heh-020000000901"
operator = "py-vpp"
[[heh]]
name = "heh-020000000902"
operator = "py-vpp"
[[heh]]
name = "heh-020000000903"
operator = "py-vpp"
[[heh]]
name = "heh-020000000904"
operator = "py-vpp"
[[link]]
between = ["relay-vpp", "relay-mkt"]
[[group]]
name = "relay-all"
sender = "relay-ts"
members = ["relay-mkt"]
"#;

/// Where the test brokers live: `$EBADGE_TEST_DIR`, else `target/tmp` of the workspace. A run
/// against another RabbitMQ (`make test-rabbitmq4`) uses directories of its own, since a node
/// cannot boot on another major version's data.
pub fn test_dir() -> PathBuf {
    std::env::var_os("EBADGE_TEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/tmp"))
}

/// The broker directory: `$EBADGE_TEST_BROKER`, else `ebadge-test-broker` in [`test_dir`]
/// (`make test` stops it at the end).
pub fn broker_dir() -> PathBuf {
    std::env::var_os("EBADGE_TEST_BROKER")
        .map(PathBuf::from)
        .unwrap_or_else(|| test_dir().join("ebadge-test-broker"))
}

static READY: OnceCell<()> = OnceCell::const_new();

/// Serialises the tests that change broker-wide state (audit violations, revocation).
pub static EXCLUSIVE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The broker's connection profile, once the broker is up and the registry provisioned.
pub async fn profile() -> Profile {
    let broker = LocalBroker::new(broker_dir());
    READY.get_or_init(provision_registry).await;
    Profile::load(&broker.profile_path()).expect("the profile written by broker up")
}

/// A broker of the caller's own (for tests that restart it), in `<test_dir>/<name>`, up and
/// provisioned with [`REGISTRY`]; its PKI is separate from the shared broker's.
pub async fn private_broker(name: &str) -> LocalBroker {
    let broker = LocalBroker::new(test_dir().join(name));
    provision(&broker).await;
    broker
}

/// The virtual IP of the VRRP test; the test cluster's server certificate names it.
pub const VRRP_VIP: &str = "10.77.0.100";

/// How many HEHs the failover test runs (50 at 2 reports/s: 100 msgs/s in total).
pub const HA_HEHS: usize = 50;

/// The registry of the cluster tests: a VPP with [`HA_HEHS`] HEHs for the failover test, a VPP
/// with five HEHs for the consumer outage, a pair for the VRRP test, one for the kill of a
/// queue leader and one for the kill of the node that holds an HEH's classic inbox.
pub fn cluster_registry() -> Builder {
    let vpps = ["ha-vpp", "out-vpp", "vip-vpp", "lead-vpp", "home-vpp"];
    let hehs = (1..=HA_HEHS)
        .map(|i| ("ha-vpp", format!("ha-heh-{i}")))
        .chain((1..=5).map(|i| ("out-vpp", format!("out-heh-{i}"))))
        .chain([("vip-vpp", "vip-heh".to_owned())])
        .chain([("lead-vpp", "lead-heh".to_owned())])
        .chain([("home-vpp", "home-heh".to_owned())]);
    let registry = vpps
        .into_iter()
        .fold(Builder::new(), |r, vpp| r.entity(vpp, None));
    hehs.fold(registry, |r, (operator, name)| r.heh(name, operator))
}

static CLUSTER: OnceCell<()> = OnceCell::const_new();

/// The test cluster: three nodes and haproxy in `ebadge-test-cluster` of [`test_dir`] (`make
/// test` stops it at the end), provisioned with [`cluster_registry`], its server certificate
/// also valid for [`VRRP_VIP`].
pub async fn cluster() -> LocalBroker {
    let broker = LocalBroker::new(test_dir().join("ebadge-test-cluster"));
    CLUSTER
        .get_or_init(|| async {
            let options = ebadge_admin::broker::UpOptions {
                port: None,
                nodes: Some(3),
                hosts: vec![VRRP_VIP.into()],
                ..Default::default()
            };
            provision_with(&broker, &options, &cluster_registry().build().unwrap()).await;
        })
        .await;
    broker
}

/// Erlang's `net_ticktime` on [`partition_cluster`]: a partition is noticed within 10–12.5 s
/// (RabbitMQ's default of 60 s would make each scenario last minutes).
pub const PARTITION_TICKTIME: u32 = 10;

/// The partition cluster: three nodes, each in a network namespace of its own, haproxy in
/// front, in `ebadge-partition-cluster` of [`test_dir`] (`make test` stops it at the end),
/// provisioned with `registry`, every link healed. Needs root.
pub async fn partition_cluster(registry: &Registry) -> LocalBroker {
    let broker = LocalBroker::new(test_dir().join("ebadge-partition-cluster"));
    if broker.state().ok().flatten().is_some() {
        // A run that was stopped halfway may have left a link cut.
        let _ = broker.heal_all();
    }
    let options = ebadge_admin::broker::UpOptions {
        nodes: Some(3),
        namespaces: true,
        net_ticktime: Some(PARTITION_TICKTIME),
        ..Default::default()
    };
    provision_with(&broker, &options, registry).await;
    broker
}

/// Brings the shared broker to the registry's state (and issues the certificates).
pub async fn provision_registry() {
    provision(&LocalBroker::new(broker_dir())).await;
}

async fn provision(broker: &LocalBroker) {
    provision_with(
        broker,
        &Default::default(),
        &Registry::parse(REGISTRY).unwrap(),
    )
    .await
}

/// Adds `registry`'s entities to the shared test broker (provisioned, certificates issued),
/// leaving everything else as it is: for tests and examples that own their entities.
pub async fn provision_beside(registry: &Registry) {
    profile().await;
    let others = ebadge_admin::local::Others::Keep;
    ebadge_admin::local::provision(
        &LocalBroker::new(broker_dir()),
        &Default::default(),
        registry,
        others,
        |_, _| {},
    )
    .await
    .unwrap_or_else(|e| panic!("the entities are added to the test broker: {e}"));
}

/// Brings `broker` up with `options` and to exactly the registry's state.
async fn provision_with(
    broker: &LocalBroker,
    options: &ebadge_admin::broker::UpOptions,
    registry: &Registry,
) {
    let others = ebadge_admin::local::Others::Remove;
    ebadge_admin::local::provision(broker, options, registry, others, |_, _| {})
        .await
        .unwrap_or_else(|e| {
            panic!(
                "the test broker in {} is ready: {e}",
                broker.dir().display()
            )
        });
}

/// The administrator's account on the test broker's management API.
pub fn management() -> Management {
    LocalBroker::new(broker_dir())
        .management()
        .expect("the test broker was set up")
}

/// An administrator client of the test broker.
pub async fn admin() -> AdminClient {
    admin_client(&management())
}

/// Connects as `name` with its certificate.
pub async fn connect(name: &str) -> Connection {
    let profile = profile().await;
    ebadge_bus::amqp::connect(&profile, name)
        .await
        .unwrap_or_else(|e| panic!("{name} connects: {e}"))
}

/// The broker's reply when it closed a channel: (code, text).
#[derive(Clone, Default)]
pub struct Closed(Arc<Mutex<Option<(u16, String)>>>);

impl Closed {
    /// Waits up to 3 s for the channel to be closed by the broker.
    pub async fn wait(&self) -> Option<(u16, String)> {
        for _ in 0..60 {
            if let Some(c) = self.0.lock().unwrap().clone() {
                return Some(c);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }
}

struct Recorder(Closed);

#[async_trait::async_trait]
impl ChannelCallback for Recorder {
    async fn close(
        &mut self,
        _: &Channel,
        close: CloseChannel,
    ) -> Result<(), amqprs::error::Error> {
        *self.0.0.lock().unwrap() = Some((close.reply_code(), close.reply_text().clone()));
        Ok(())
    }
    async fn cancel(&mut self, _: &Channel, _: Cancel) -> Result<(), amqprs::error::Error> {
        Ok(())
    }
    async fn flow(&mut self, _: &Channel, active: bool) -> Result<bool, amqprs::error::Error> {
        Ok(active)
    }
    async fn publish_ack(&mut self, _: &Channel, _: Ack) {}
    async fn publish_nack(&mut self, _: &Channel, _: Nack) {}
    async fn publish_return(&mut self, _: &Channel, _: Return, _: BasicProperties, _: Vec<u8>) {}
}

/// Opens a channel whose closing reply is recorded.
pub async fn channel(connection: &Connection) -> (Channel, Closed) {
    let channel = connection.open_channel(None).await.unwrap();
    let closed = Closed::default();
    channel
        .register_callback(Recorder(closed.clone()))
        .await
        .unwrap();
    (channel, closed)
}

/// Publishes a persistent JSON body with a message id (and optionally a claimed user_id).
pub async fn publish(
    channel: &Channel,
    exchange: &str,
    key: &str,
    id: &str,
    user_id: Option<&str>,
) {
    let mut props = BasicProperties::default();
    props
        .with_content_type("application/json")
        .with_persistence(true)
        .with_message_id(id);
    if let Some(u) = user_id {
        props.with_user_id(u);
    }
    let body = format!(r#"{{"msg":"get_status_report","ext_test_id":"{id}"}}"#);
    channel
        .basic_publish(
            props,
            body.into_bytes(),
            BasicPublishArguments::new(exchange, key),
        )
        .await
        .unwrap();
}

/// Reads `queue` with basic.get until the message with `id` appears (skipping, and acking,
/// leftovers of earlier runs); returns its properties' user_id.
pub async fn fetch(channel: &Channel, queue: &str, id: &str) -> Option<Option<String>> {
    use amqprs::channel::{BasicAckArguments, BasicGetArguments};
    for _ in 0..100 {
        match channel
            .basic_get(BasicGetArguments::new(queue))
            .await
            .ok()?
        {
            Some((ok, props, _)) => {
                channel
                    .basic_ack(BasicAckArguments::new(ok.delivery_tag(), false))
                    .await
                    .ok()?;
                if props.message_id().map(String::as_str) == Some(id) {
                    return Some(props.user_id().cloned());
                }
            }
            None => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    None
}

impl Closed {
    /// Waits half a second: for asserting that the broker did *not* close the channel.
    pub async fn wait_briefly(&self) -> Option<(u16, String)> {
        tokio::time::sleep(Duration::from_millis(500)).await;
        self.0.lock().unwrap().clone()
    }
}

/// Issues a certificate from the test broker's CA.
pub struct LocalBrokerPki;

impl LocalBrokerPki {
    /// Certificate and key for `name` (whether or not it is a user).
    pub fn issue(name: &str) -> (PathBuf, PathBuf) {
        LocalBroker::new(broker_dir()).pki().issue(name, 1).unwrap()
    }
}

/// GET on the management API, as JSON.
pub async fn raw_get(path: &str) -> serde_json::Value {
    let m = management();
    reqwest::Client::new()
        .get(format!("{}/api/{path}", m.url))
        .basic_auth(&m.user, Some(&m.password))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// `GET url` over plain HTTP (a metrics endpoint): the status code and the body; `None` while
/// nothing answers there.
pub async fn http_get(url: &str) -> Option<(u16, String)> {
    let response = reqwest::get(url).await.ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.ok()?))
}

/// Whether the broker's log says `text` (within 3 s).
pub async fn broker_log_contains(text: &str) -> bool {
    let log = LocalBroker::new(broker_dir()).console_log();
    for _ in 0..30 {
        if std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains(text)
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// A fresh message id.
pub fn id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Bounds `queue` by a policy `name` of higher priority than provisioning's (TTL, max length,
/// refuse publishes past it), and waits until the broker applies it (a quorum queue takes a
/// moment). Returns the admin client, to delete the policy at the end.
pub async fn bound_queue(
    management: &Management,
    name: &str,
    queue: &str,
    ttl_ms: u64,
    max_length: u64,
) -> AdminClient {
    use rabbitmq_http_client::commons::PolicyTarget;
    use rabbitmq_http_client::requests::PolicyParams;
    let admin = admin_client(management);
    let definition = ebadge_admin::state::queue_policy_definition(ttl_ms, max_length);
    admin
        .declare_policy(&PolicyParams {
            vhost: "/",
            name,
            pattern: &format!("^{queue}$"),
            apply_to: PolicyTarget::Queues,
            priority: 10,
            definition: definition.as_object().unwrap().clone(),
        })
        .await
        .unwrap();
    let api = ebadge_admin::mgmt::RawApi::new(management);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while api.get(&format!("queues/%2F/{queue}")).await.unwrap()["effective_policy_definition"]
        != definition
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the policy {name} applies"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    admin
}

/// (sender, reason) of every message in `name`'s quarantine, oldest first, removing them; waits
/// (up to 10 s) until there are at least `at_least`. A quarantine its client never made (it does
/// so on first use) reads as empty.
pub async fn quarantined(name: &str, at_least: usize) -> Vec<(String, String)> {
    use amqprs::channel::{BasicAckArguments, BasicGetArguments};
    use ebadge_bus::conventions::{QUARANTINE_FROM_HEADER, QUARANTINE_REASON_HEADER};
    let connection = connect(name).await;
    let channel = connection.open_channel(None).await.unwrap();
    let queue =
        ebadge_bus::conventions::quarantine_queue(&ebadge_bus::EntityName::new(name).unwrap());
    let header = |props: &BasicProperties, key: &str| {
        props
            .headers()
            .and_then(|h| h.get(&key.try_into().unwrap()).cloned())
            .map(|v| match v {
                amqprs::FieldValue::S(s) => s.to_string(),
                other => format!("{other:?}"),
            })
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    for _ in 0..100 {
        let Ok(got) = channel.basic_get(BasicGetArguments::new(&queue)).await else {
            break;
        };
        match got {
            Some((ok, props, _)) => {
                channel
                    .basic_ack(BasicAckArguments::new(ok.delivery_tag(), false))
                    .await
                    .unwrap();
                out.push((
                    header(&props, QUARANTINE_FROM_HEADER),
                    header(&props, QUARANTINE_REASON_HEADER),
                ));
            }
            None if out.len() >= at_least => break,
            None => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let _ = connection.close().await;
    out
}

/// Empties `name`'s inbox of what earlier runs on the same broker left (acknowledging each
/// message), so that a test reading it in order starts from nothing.
pub async fn drain_inbox(profile: &ebadge_bus::Profile, name: &str) {
    use std::time::Duration;
    let config =
        ebadge_bus::ClientConfig::new(profile.clone(), ebadge_bus::EntityName::new(name).unwrap());
    let drain = ebadge_bus::Client::connect(config).await.unwrap();
    let mut inbox = drain.inbox().unwrap();
    while let Ok(Some(i)) = tokio::time::timeout(Duration::from_millis(300), inbox.next()).await {
        i.ack();
    }
    drain.close(Duration::from_secs(1)).await;
}
