//! What each node is told: `rabbitmq.conf`, `advanced.config`, plugins, the Erlang cookie, the
//! definitions loaded at boot, and the environment of `rabbitmq-server` and `rabbitmqctl`.

use super::layout::{BrokerState, NodeState, create_dir, write_file};
use super::{ADMIN_USER, BrokerError, LocalBroker};
use std::path::{Path, PathBuf};

impl LocalBroker {
    pub(super) fn env(&self, node: &NodeState) -> Vec<(&'static str, PathBuf)> {
        let dir = self.node_dir(node);
        let long_names = node.address.is_some().then(|| {
            // Nodes in namespaces name each other by address.
            ("RABBITMQ_USE_LONGNAME", PathBuf::from("true"))
        });
        let mut env = vec![
            ("HOME", dir.join("home")),
            ("RABBITMQ_NODENAME", node.name.clone().into()),
            ("RABBITMQ_MNESIA_BASE", dir.join("mnesia")),
            ("RABBITMQ_LOG_BASE", dir.join("log")),
            ("RABBITMQ_CONFIG_FILE", dir.join("rabbitmq.conf")),
            ("RABBITMQ_ADVANCED_CONFIG_FILE", dir.join("advanced.config")),
            ("RABBITMQ_ENABLED_PLUGINS_FILE", dir.join("enabled_plugins")),
            ("RABBITMQ_CONF_ENV_FILE", dir.join("rabbitmq-env.conf")),
            ("RABBITMQ_PID_FILE", self.pid_path(node)),
            ("RABBITMQ_DIST_PORT", node.dist_port.to_string().into()),
        ];
        env.extend(long_names);
        env
    }

    pub(super) fn write_config(
        &self,
        state: &BrokerState,
        node: &NodeState,
    ) -> Result<(), BrokerError> {
        let dir = self.node_dir(node);
        for d in [dir.join("home"), dir.join("mnesia"), dir.join("log")] {
            create_dir(&d)?;
        }
        let pki = self.pki();
        let (server_cert, server_key) = pki.server();
        let definitions = dir.join("definitions.json");
        let mut conf = String::from(
            "# Written by `ebadge broker up`: TLS only, client certificates only, no guest.\n",
        );
        let settings = security_settings(node.amqps_port)
            .into_iter()
            .chain([
                ("management.tcp.ip".into(), node.host().to_owned()),
                ("prometheus.tcp.ip".into(), node.host().to_owned()),
                (
                    "prometheus.tcp.port".into(),
                    node.prometheus_port.to_string(),
                ),
                (
                    "management.tcp.port".into(),
                    node.management_port.to_string(),
                ),
                (
                    "definitions.import_backend".into(),
                    "local_filesystem".into(),
                ),
                (
                    "definitions.local.path".into(),
                    definitions.display().to_string(),
                ),
                ("log.console".into(), "true".into()),
                ("log.console.level".into(), "warning".into()),
            ])
            .chain(fleet_settings())
            .chain(cluster_settings(state))
            .chain(
                state
                    .net_ticktime
                    .map(|seconds| ("net_ticktime".to_owned(), seconds.to_string())),
            )
            .chain(state.statistics_interval.map(|seconds| {
                (
                    "collect_statistics_interval".to_owned(),
                    (u64::from(seconds) * 1000).to_string(),
                )
            }));
        for (key, value) in settings {
            conf.push_str(&format!("{key} = {value}\n"));
        }
        write_file(&dir.join("rabbitmq.conf"), &conf, false)?;
        pki.ensure_crl()?;
        write_file(
            &dir.join("advanced.config"),
            &advanced_config(&pki.ca_cert(), &server_cert, &server_key, &pki.crl_dir()),
            false,
        )?;
        write_file(&dir.join("enabled_plugins"), ENABLED_PLUGINS, false)?;
        write_file(&dir.join("rabbitmq-env.conf"), "", false)?;
        let cookie = dir.join("home").join(".erlang.cookie");
        let _ = std::fs::remove_file(&cookie);
        write_file(&cookie, &state.cookie, true)?;
        write_file(
            &definitions,
            &boot_definitions(&state.admin_password).to_string(),
            true,
        )
    }
}

/// The plugins every node runs (the contents of `enabled_plugins`, also in
/// `deploy/rabbitmq/`): the management API for provisioning and audit, login by certificate,
/// and the Prometheus endpoint.
pub const ENABLED_PLUGINS: &str =
    "[rabbitmq_management,rabbitmq_auth_mechanism_ssl,rabbitmq_prometheus].\n";

/// The rabbitmq.conf settings that make a node conform to D3.2.3 6.1 (TLS only, login by the
/// certificate's CN, EXTERNAL only), and the largest message it takes
/// ([`MAX_MESSAGE_BYTES`](ebadge_bus::conventions::MAX_MESSAGE_BYTES)); the TLS options
/// themselves are in [`advanced_config`].
/// The local broker writes them; `deploy/rabbitmq/` carries the same, and a test keeps the two
/// in step.
pub fn security_settings(amqps_port: u16) -> Vec<(String, String)> {
    [
        ("listeners.tcp", "none".to_owned()),
        ("listeners.ssl.default", amqps_port.to_string()),
        ("auth_mechanisms.1", "EXTERNAL".into()),
        ("ssl_cert_login_from", "common_name".into()),
        (
            "max_message_size",
            ebadge_bus::conventions::MAX_MESSAGE_BYTES.to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// The node's TLS options, as the Erlang terms of `advanced.config`: TLS 1.2/1.3, client
/// certificates required and verified, and checked against the CA's CRL in `crl_dir`
/// (`<issuer hash>.r0`, read at every handshake, so a revocation applies at once). rabbitmq.conf
/// cannot name a CRL directory, and `ssl_options` in advanced.config replaces rabbitmq.conf's
/// whole list, so all of them are here.
pub fn advanced_config(ca: &Path, cert: &Path, key: &Path, crl_dir: &Path) -> String {
    format!(
        "%% TLS options of the AMQPS listener (eBADGE bus, D3.2.3 6.1): client certificates\n\
         %% required, verified, and checked against the CA's revocation list.\n\
         [{{rabbit, [{{ssl_options, [\n\
         \x20   {{cacertfile, \"{}\"}},\n\
         \x20   {{certfile, \"{}\"}},\n\
         \x20   {{keyfile, \"{}\"}},\n\
         \x20   {{verify, verify_peer}},\n\
         \x20   {{fail_if_no_peer_cert, true}},\n\
         \x20   {{versions, ['tlsv1.3', 'tlsv1.2']}},\n\
         \x20   {{crl_check, peer}},\n\
         \x20   {{crl_cache, {{ssl_crl_hash_dir, {{internal, [{{dir, \"{}\"}}]}}}}}}\n\
         ]}}]}}].\n",
        ca.display(),
        cert.display(),
        key.display(),
        crl_dir.display()
    )
}

/// Settings for many connections and queues, on every node (`deploy/rabbitmq/rabbitmq.conf`
/// carries the same; a test keeps them in step): classic queues of version 2 (less memory and
/// disk I/O per queue than version 1), queue leaders spread over the nodes instead of all on
/// the node that handled the declaration (provisioning declares every queue through one node),
/// and a listen backlog that absorbs a fleet reconnecting at once (the default of 128 drops SYNs
/// and leaves HEHs waiting for their connect timeout). Classic queues are placed at random:
/// `min-masters` looks up every queue of the broker at each declaration, which makes
/// provisioning 20,000 HEH inboxes quadratic; quorum queues are `balanced` (least leaders below
/// 1,000 queues, random above).
pub fn fleet_settings() -> Vec<(String, String)> {
    [
        ("classic_queue.default_version", "2"),
        ("queue_master_locator", "random"),
        ("queue_leader_locator", "balanced"),
        ("tcp_listen_options.backlog", "4096"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// Settings for a fleet on a cluster, where the only classic queues are the HEHs' inboxes
/// (the rest are quorum queues): every persistent message goes to the node's shared message
/// store instead of the classic queue's own store. An activation burst puts one message into
/// each of thousands of inboxes; in their own stores each queue creates and syncs a file, in
/// the shared store one process appends them all and syncs them together (5,000 activations
/// 14 % faster on one node, 3.9–6.0 s instead of 5.4–8.8 s on fresh local clusters). Not on a
/// single node: there the VPP's inbox is classic too, and one queue taking a stream of reports
/// is 30 % slower through the shared store (docs/benchmarks.md, "Each lever").
pub fn cluster_fleet_settings() -> Vec<(String, String)> {
    vec![("queue_index_embed_msgs_below".to_owned(), "0".to_owned())]
}

/// Cluster formation by a fixed list of peers, and [`cluster_fleet_settings`] (nothing for a
/// single node).
fn cluster_settings(state: &BrokerState) -> Vec<(String, String)> {
    if state.nodes.len() < 2 {
        return Vec::new();
    }
    let mut settings = cluster_fleet_settings();
    settings.extend([
        (
            "cluster_name".to_owned(),
            format!("ebadge-{}", state.amqps_port()),
        ),
        (
            "cluster_formation.peer_discovery_backend".into(),
            "classic_config".into(),
        ),
        // A node cut off from the majority stops serving rather than diverge.
        ("cluster_partition_handling".into(), "pause_minority".into()),
    ]);
    for (i, node) in state.nodes.iter().enumerate() {
        settings.push((
            format!("cluster_formation.classic_config.nodes.{}", i + 1),
            node.name.clone(),
        ));
    }
    settings
}

/// Definitions loaded at boot: vhost `/` and the administrator, so RabbitMQ never seeds `guest`.
fn boot_definitions(admin_password: &str) -> serde_json::Value {
    use rabbitmq_http_client::password_hashing::{
        base64_encoded_salted_password_hash_sha256, salt,
    };
    let hash = base64_encoded_salted_password_hash_sha256(&salt(), admin_password);
    serde_json::json!({
        "vhosts": [{"name": "/"}],
        "users": [{
            "name": ADMIN_USER,
            "password_hash": hash,
            "hashing_algorithm": "rabbit_password_hashing_sha256",
            "tags": "administrator"
        }],
        "permissions": [{"user": ADMIN_USER, "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"}]
    })
}

#[cfg(test)]
mod tests {
    use super::super::{LocalBroker, UpOptions, statistics_interval};

    /// The `collect_statistics_interval` line of each node's rabbitmq.conf, for a broker set
    /// up with `options`.
    fn statistics_line(options: &UpOptions) -> Option<String> {
        let dir = tempfile::tempdir().unwrap();
        let broker = LocalBroker::new(dir.path());
        broker.pki().init(&["localhost".to_owned()]).unwrap();
        let state = broker.new_state(options).unwrap();
        let lines: Vec<Option<String>> = state
            .nodes
            .iter()
            .map(|node| {
                broker.write_config(&state, node).unwrap();
                let conf =
                    std::fs::read_to_string(broker.node_dir(node).join("rabbitmq.conf")).unwrap();
                conf.lines()
                    .find(|l| l.starts_with("collect_statistics_interval"))
                    .map(str::to_owned)
            })
            .collect();
        assert!(lines.windows(2).all(|w| w[0] == w[1]), "{lines:?}");
        lines[0].clone()
    }

    #[test]
    fn a_statistics_interval_reaches_every_node_in_milliseconds_and_none_leaves_rabbitmqs_default()
    {
        let asked = UpOptions {
            nodes: Some(3),
            statistics_interval: Some(60),
            ..UpOptions::default()
        };
        assert_eq!(
            statistics_line(&asked).as_deref(),
            Some("collect_statistics_interval = 60000")
        );
        assert_eq!(statistics_line(&UpOptions::default()), None);
    }

    #[test]
    fn a_directory_keeps_its_statistics_interval_and_refuses_a_change_while_a_node_runs() {
        // Not asked: what the directory has, running or not.
        assert_eq!(statistics_interval(Some(60), None, true), Ok(Some(60)));
        assert_eq!(statistics_interval(None, None, false), Ok(None));
        // Asked, all nodes stopped: taken.
        assert_eq!(statistics_interval(Some(60), Some(30), false), Ok(Some(30)));
        assert_eq!(statistics_interval(None, Some(60), false), Ok(Some(60)));
        // Asked for what it has, with nodes running: nothing to change.
        assert_eq!(statistics_interval(Some(60), Some(60), true), Ok(Some(60)));
        // Asked for another, with a node running (a partly stopped cluster too): refused,
        // naming what the running nodes use.
        assert_eq!(
            statistics_interval(Some(60), Some(30), true),
            Err("60 s".to_owned())
        );
        assert_eq!(
            statistics_interval(None, Some(60), true),
            Err("5 s (RabbitMQ's default)".to_owned())
        );
    }
}
