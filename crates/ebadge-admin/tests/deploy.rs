//! The production files in `deploy/` stay valid and in step with what the code writes: haproxy
//! and keepalived check them with their own parsers, the security lines of rabbitmq.conf and the
//! queue policy of the boot definitions are the ones the local broker and provisioning use.
//! `EBADGE_BLESS=1 cargo test --test deploy` rewrites the generated haproxy.cfg.

use ebadge_admin::haproxy::{self, Backend, Frontend};
use ebadge_bus::conventions::QUEUE_POLICY;
use std::path::{Path, PathBuf};

fn deploy(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy")
        .join(file)
}

/// Where deploy/README.md has the bus CA copied on the haproxy hosts.
const PRODUCTION_CHECK_CA: &str = "/etc/haproxy/ebadge-ca.pem";

/// `haproxy -c` on `text` with the CA the health checks name replaced by a real one (haproxy
/// loads it while it checks the file); the file is written as `name` in `dir`.
fn haproxy_check(dir: &Path, name: &str, text: &str) -> Result<(), String> {
    let pki = ebadge_admin::pki::Pki::new(dir.join("pki"));
    pki.init(&["localhost".into()]).unwrap();
    let file = dir.join(name);
    let ca = pki.ca_cert();
    std::fs::write(
        &file,
        text.replace(PRODUCTION_CHECK_CA, ca.to_str().unwrap()),
    )
    .unwrap();
    haproxy::check(&file)
}

/// The production haproxy: three nodes mq1-mq3 at 10.0.0.11-13, AMQPS only (the management API
/// stays on each node's loopback), room for 50,000 HEHs.
fn production_haproxy() -> String {
    let front = Frontend {
        bind: "0.0.0.0".into(),
        max_connections: 50_000,
        amqps_port: 5671,
        management_port: None,
        // Scraped by a Prometheus on the host; the management network's address in production.
        prometheus: Some("127.0.0.1:8405".into()),
        admin_socket: "/run/haproxy/ebadge.sock".into(),
        check_ca: Some(PRODUCTION_CHECK_CA.into()),
    };
    let nodes: Vec<Backend> = (1..=3)
        .map(|i| Backend {
            name: format!("mq{i}"),
            host: format!("10.0.0.1{i}"),
            amqps_port: 5671,
            management_port: 15672,
        })
        .collect();
    haproxy::config(&front, &nodes)
}

#[test]
fn haproxy_cfg_is_what_the_code_writes_and_haproxy_accepts_it() {
    let file = deploy("haproxy/haproxy.cfg");
    let expected = production_haproxy();
    if std::env::var_os("EBADGE_BLESS").is_some() {
        std::fs::write(&file, &expected).unwrap();
    }
    let actual = std::fs::read_to_string(&file).unwrap();
    assert_eq!(
        actual, expected,
        "deploy/haproxy/haproxy.cfg differs from haproxy::config (EBADGE_BLESS=1 rewrites it)"
    );
    assert!(
        actual.contains(&format!(
            "check-ssl verify required ca-file {PRODUCTION_CHECK_CA}"
        )),
        "the AMQPS checks verify each node's certificate"
    );
    let dir = tempfile::tempdir().unwrap();
    haproxy_check(dir.path(), "haproxy.cfg", &actual)
        .expect("haproxy -c accepts deploy/haproxy/haproxy.cfg");
}

#[test]
fn haproxy_check_reports_a_broken_file_in_its_own_words() {
    let dir = tempfile::tempdir().unwrap();
    let error = haproxy_check(
        dir.path(),
        "broken.cfg",
        &production_haproxy().replace("balance leastconn", "balance nowhere"),
    )
    .unwrap_err();
    assert!(
        error.contains("broken.cfg:") && error.contains("balance only supports"),
        "{error}"
    );
}

#[test]
fn keepalived_accepts_both_hosts_files() {
    for host in ["lb1", "lb2"] {
        let file = deploy(&format!("keepalived/keepalived-{host}.conf"));
        let output = std::process::Command::new("keepalived")
            .args(["--config-test", "-f"])
            .arg(&file)
            .output()
            .expect("keepalived is installed (make deps)");
        assert!(
            output.status.success(),
            "{}: {}",
            file.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let (lb1, lb2) = (
        std::fs::read_to_string(deploy("keepalived/keepalived-lb1.conf")).unwrap(),
        std::fs::read_to_string(deploy("keepalived/keepalived-lb2.conf")).unwrap(),
    );
    let vip = |text: &str| {
        text.lines()
            .find(|l| l.contains("dev eth0") && l.trim().starts_with(char::is_numeric))
            .map(str::trim)
            .map(str::to_owned)
    };
    assert_eq!(vip(&lb1), vip(&lb2), "both hosts share one virtual IP");
    assert!(lb1.contains("priority 150") && lb2.contains("priority 100"));
}

#[test]
fn rabbitmq_conf_carries_the_security_settings_the_local_broker_uses() {
    let conf = std::fs::read_to_string(deploy("rabbitmq/rabbitmq.conf")).unwrap();
    let lines: Vec<&str> = conf.lines().map(str::trim).collect();
    let settings = ebadge_admin::broker::security_settings(5671)
        .into_iter()
        .chain(ebadge_admin::broker::fleet_settings())
        .chain(ebadge_admin::broker::cluster_fleet_settings());
    for (key, value) in settings {
        let line = format!("{key} = {value}");
        assert!(
            lines.contains(&line.as_str()),
            "deploy/rabbitmq/rabbitmq.conf lacks `{line}`"
        );
    }
    assert!(lines.contains(&"cluster_formation.peer_discovery_backend = classic_config"));
    assert!(
        lines.contains(&"prometheus.tcp.ip = 127.0.0.1"),
        "the Prometheus endpoint stays off the clients' network"
    );
    assert_eq!(
        std::fs::read_to_string(deploy("rabbitmq/enabled_plugins")).unwrap(),
        ebadge_admin::broker::ENABLED_PLUGINS,
        "deploy/rabbitmq/enabled_plugins runs the plugins the local broker runs"
    );
    assert!(
        !conf.contains("\nssl_options."),
        "TLS options live in advanced.config (it replaces rabbitmq.conf's ssl_options)"
    );
    let advanced = std::fs::read_to_string(deploy("rabbitmq/advanced.config")).unwrap();
    assert_eq!(
        advanced,
        ebadge_admin::broker::advanced_config(
            Path::new("/etc/rabbitmq/tls/ca.pem"),
            Path::new("/etc/rabbitmq/tls/server.pem"),
            Path::new("/etc/rabbitmq/tls/server.key"),
            Path::new("/etc/rabbitmq/tls/crl"),
        ),
        "deploy/rabbitmq/advanced.config is what the local broker writes, with production paths"
    );
}

#[test]
fn boot_definitions_carry_the_policies_provisioning_sets() {
    let defs: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(deploy("rabbitmq/definitions.json")).unwrap(),
    )
    .unwrap();
    let registry = ebadge_admin::registry::Registry::parse("").unwrap();
    let desired = ebadge_admin::state::desired(&registry, 3);
    let policies = desired
        .values()
        .filter(|item| matches!(item, ebadge_admin::state::Item::Policy { .. }));
    let want = ebadge_admin::state::to_definitions(policies);
    assert_eq!(defs["policies"], want["policies"]);
    assert!(
        defs["policies"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == QUEUE_POLICY)
    );
    assert!(
        defs.get("users").is_none(),
        "no account in a committed file: the administrator is made on the host"
    );
}

#[test]
fn the_operator_profile_parses() {
    let profile =
        ebadge_admin::profile::OperatorProfile::load(&deploy("ebadge/profile.toml")).unwrap();
    assert!(profile.client.amqps_url.starts_with("amqps://"));
    assert_eq!(
        profile.management.url, "http://127.0.0.1:15672",
        "the management API stays on the node's loopback"
    );
}
