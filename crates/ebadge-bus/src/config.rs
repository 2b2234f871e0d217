//! How a client behaves: [`ClientConfig`], with the defaults of [`ClientConfig::new`].

use crate::conventions::EntityName;
use crate::outbox::OutboxSync;
use crate::profile::Profile;
use std::path::PathBuf;
use std::time::Duration;

/// What [`Client::connect`](crate::Client::connect) does about the first connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FirstConnection {
    /// It must succeed at once, so that a wrong certificate or address, or a broker that is
    /// down, is reported to whoever started the program (the default).
    #[default]
    Required,
    /// A broker that does not answer or refuses for now is tried again, with the reconnect
    /// backoff and jitter, for up to this long: what a fleet booting at once needs (a
    /// connection storm overflows a busy broker's accept queue), and an HEH after a broker
    /// restart. Errors that trying again cannot fix (a missing certificate file, a bad
    /// address) return at once.
    WaitUpTo(Duration),
    /// Not waited for: `connect` returns at once, sends go to the outbox and leave when a
    /// connection comes up (an HEH booting while its uplink is down). Fails only if the outbox
    /// cannot open.
    Background,
}

/// How a client behaves; [`ClientConfig::new`] gives the defaults.
///
/// ```
/// use ebadge_bus::{ClientConfig, EntityName, FirstConnection, Profile};
/// # let profile = Profile { amqps_url: "amqps://localhost:5671".into(), ca: "ca.pem".into(),
/// #     certs: "certs".into(), heartbeat_seconds: None, max_message_bytes: None };
/// let mut config = ClientConfig::new(profile, EntityName::new("heh-b827ebea02c1")?);
/// config.first_connection = FirstConnection::Background; // the uplink may be down at boot
/// config.durable_outbox = Some("/var/lib/ebadge/outbox.sqlite".into());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Where the broker is and where the certificates are.
    pub profile: Profile,
    /// Who we are (the certificate CN).
    pub name: EntityName,
    /// Whether [`Client::connect`](crate::Client::connect) waits for the broker, and how long.
    /// Default: [`FirstConnection::Required`].
    pub first_connection: FirstConnection,
    /// The groups we are a member of (the registry's `[[group]]`s that list us): messages
    /// through a group exchange `<sender>-to-<group>` are heard only for these. A message through
    /// an exchange addressed to anyone else is quarantined (`not_addressed`): another entity
    /// relayed it to us (see `ebadge audit`). Default: none.
    pub groups: Vec<EntityName>,
    /// Most messages kept for confirmation in memory (or on disk with `durable_outbox`); the
    /// oldest are dropped past it, and counted. Default 100,000: a 60-s outage at 10 msgs/s
    /// needs 600, a VPP's burst of 5,000 activations fits many times.
    pub outbox_cap: usize,
    /// Keep the outbox in this SQLite file, so sends survive a process restart.
    pub durable_outbox: Option<PathBuf>,
    /// How the durable outbox writes to the disk: [`OutboxSync::Full`] (default) survives a
    /// power cut; [`OutboxSync::Normal`] only a crash of the process, with fewer writes.
    pub outbox_sync: OutboxSync,
    /// Unacknowledged deliveries the broker may push at once.
    pub prefetch: u16,
    /// Message ids remembered for duplicate detection.
    pub dedupe_window: usize,
    /// First reconnect delay; doubles up to `reconnect_max`, with ±50 % jitter.
    pub reconnect_min: Duration,
    /// Longest reconnect delay.
    pub reconnect_max: Duration,
    /// Incoming messages buffered for the application.
    pub inbox_capacity: usize,
    /// Largest message body `send` accepts: the broker's `max_message_size` (a larger message
    /// would make the broker close the publishing channel). Default: the profile's
    /// `max_message_bytes`, else [`MAX_MESSAGE_BYTES`](crate::conventions::MAX_MESSAGE_BYTES).
    pub max_message_bytes: usize,
    /// Connections of its own to publish on, each with one confirm-mode channel that takes a
    /// share of the outbox by destination (every message for one exchange goes through the
    /// same channel, so each receiver gets them in order). 0, the default: publish on the
    /// consuming connection (an HEH does not need more connections).
    ///
    /// Why a back-end that sends bursts wants them: RabbitMQ throttles a connection that
    /// publishes faster than its queues take in (flow control) by no longer reading from it,
    /// which holds back the acknowledgements of a consumer on the same connection; and one
    /// channel is one process on one node of a cluster, which takes a burst in alone. Behind
    /// haproxy, several connections land on several nodes, which take it in side by side. On one
    /// node more than 1 gain nothing and hold the answers back: see
    /// [`Self::burst_publish_connections`], and the figures in `docs/vpp-guide.md`.
    pub publish_connections: usize,
}

impl ClientConfig {
    /// The [`Self::publish_connections`] measured best for a back-end that sends bursts, on a
    /// broker of `nodes` nodes: 1 on one node, 4 on a cluster (docs/benchmarks.md).
    ///
    /// ```
    /// use ebadge_bus::ClientConfig;
    /// assert_eq!(ClientConfig::burst_publish_connections(1), 1);
    /// assert_eq!(ClientConfig::burst_publish_connections(3), 4);
    /// ```
    pub fn burst_publish_connections(nodes: usize) -> usize {
        if nodes > 1 { 4 } else { 1 }
    }

    /// Defaults for entity `name` with `profile`.
    pub fn new(profile: Profile, name: EntityName) -> Self {
        Self {
            name,
            first_connection: FirstConnection::default(),
            groups: Vec::new(),
            outbox_cap: 100_000,
            durable_outbox: None,
            outbox_sync: OutboxSync::default(),
            prefetch: 1000,
            dedupe_window: 100_000,
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
            inbox_capacity: 10_000,
            publish_connections: 0,
            max_message_bytes: profile
                .max_message_bytes
                .unwrap_or(crate::conventions::MAX_MESSAGE_BYTES),
            profile,
        }
    }
}
