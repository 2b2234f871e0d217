//! The operator's guarantees on a real RabbitMQ over TLS with real certificates (D3.2.3 5.3, 6.1):
//! each test asserts the broker's actual reply.

use amqprs::channel::{BasicConsumeArguments, QueueBindArguments, QueueDeclareArguments};
use ebadge_admin::registry::Registry;
use ebadge_admin::{audit, provision, revoke};
use ebadge_testkit::*;
use rustls::pki_types::pem::PemObject;
use std::time::{Duration, Instant};

const ACCESS_REFUSED: u16 = 403;
const PRECONDITION_FAILED: u16 = 406;

async fn refused(closed: &Closed) -> (u16, String) {
    closed.wait().await.expect("the broker closed the channel")
}

#[tokio::test]
async fn an_heh_publishes_to_its_own_exchange_only_and_cannot_forge_its_user_id() {
    let heh = connect("heh-a").await;
    let ts = connect("ts").await;
    let (ts_channel, _) = channel(&ts).await;

    let (ok, closed) = channel(&heh).await;
    let good = id();
    publish(&ok, "heh-a-to-ts", "report", &good, Some("heh-a")).await;
    assert_eq!(
        fetch(&ts_channel, "private-ts-inbox", &good).await,
        Some(Some("heh-a".to_owned())),
        "the operator receives it, with the sender's user_id"
    );
    assert!(closed.wait_briefly().await.is_none());

    let (c, closed) = channel(&heh).await;
    publish(&c, "heh-b-to-ts", "report", &id(), Some("heh-a")).await;
    let (code, text) = refused(&closed).await;
    assert_eq!(code, ACCESS_REFUSED, "{text}");
    assert!(
        text.contains("access to exchange 'heh-b-to-ts' in vhost '/' refused for user 'heh-a'"),
        "{text}"
    );

    let (c, closed) = channel(&heh).await;
    publish(&c, "", "private-ts-inbox", &id(), Some("heh-a")).await;
    let (code, text) = refused(&closed).await;
    assert_eq!(code, ACCESS_REFUSED, "{text}");
    assert!(text.contains("amq.default"), "{text}");

    let (c, closed) = channel(&heh).await;
    publish(&c, "heh-a-to-ts", "report", &id(), Some("heh-b")).await;
    let (code, text) = refused(&closed).await;
    assert_eq!(code, PRECONDITION_FAILED, "{text}");
    assert!(text.contains("user_id property set to 'heh-b'"), "{text}");
}

#[tokio::test]
async fn an_heh_cannot_read_another_inbox_nor_declare_outside_its_namespace() {
    let heh = connect("heh-a").await;

    let (c, closed) = channel(&heh).await;
    let _ = c
        .basic_consume_rx(BasicConsumeArguments::new("private-heh-b-inbox", "spy"))
        .await;
    let (code, text) = refused(&closed).await;
    assert_eq!(code, ACCESS_REFUSED, "{text}");
    assert!(
        text.contains(
            "access to queue 'private-heh-b-inbox' in vhost '/' refused for user 'heh-a'"
        ),
        "{text}"
    );

    for name in ["private-heh-b-tap", "tap", "heh-a-to-ts-tap"] {
        let (c, closed) = channel(&heh).await;
        let _ = c.queue_declare(QueueDeclareArguments::new(name)).await;
        let (code, text) = refused(&closed).await;
        assert_eq!(code, ACCESS_REFUSED, "{name}: {text}");
        assert!(
            text.contains(&format!("access to queue '{name}' in vhost '/' refused")),
            "{text}"
        );
    }

    // Inside its own namespace it may.
    let (c, closed) = channel(&heh).await;
    let mut args = QueueDeclareArguments::new("private-heh-a-tap");
    args.auto_delete(true);
    c.queue_declare(args).await.unwrap();
    assert!(closed.wait_briefly().await.is_none());
}

/// A TLS client configuration trusting `ca`, presenting `cert` (certificate, key) if given.
fn client_config(
    ca: &std::path::Path,
    cert: Option<&(std::path::PathBuf, std::path::PathBuf)>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(versions)
    .unwrap()
    .with_root_certificates(roots);
    match cert {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = rustls::pki_types::CertificateDer::pem_file_iter(cert)
                .unwrap()
                .map(Result::unwrap)
                .collect();
            let key = rustls::pki_types::PrivateKeyDer::from_pem_file(key).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
    }
}

/// Opens a TLS connection with `config` (SASL EXTERNAL, or PLAIN guest/guest) and returns the
/// error it must end with.
async fn open_refused(
    host: &str,
    port: u16,
    config: rustls::ClientConfig,
    external: bool,
) -> String {
    let mut args = amqprs::connection::OpenConnectionArguments::new(host, port, "guest", "guest");
    if external {
        args.credentials(amqprs::security::SecurityCredentials::new_external());
    }
    args.tls_adaptor(amqprs::tls::TlsAdaptor::new(
        tokio_rustls::TlsConnector::from(std::sync::Arc::new(config)),
        host.to_owned(),
    ));
    amqprs::connection::Connection::open(&args)
        .await
        .err()
        .expect("the broker refuses the connection")
        .to_string()
}

#[tokio::test]
async fn logins_other_than_a_certificate_of_our_ca_are_refused() {
    let profile = profile().await;
    let (host, port) = profile.host_and_port().unwrap();
    let (cert, key) = profile.certificate("heh-a");

    // PLAIN guest/guest over TLS (with a valid certificate, so only the mechanism is wrong).
    let config = ebadge_bus::amqp::tls_config(&profile.ca, &cert, &key).unwrap();
    let err = open_refused(&host, port, config, false).await;
    // The broker offers EXTERNAL only.
    assert!(
        err.contains("authentication 'PLAIN' is not supported by server"),
        "PLAIN: {err}"
    );

    // TLS without a client certificate, and with a certificate for the same name from another
    // CA. Under TLS 1.2 the broker's alert arrives inside the handshake, so we assert it exactly;
    // under TLS 1.3 the client finishes first and sees the alert or a reset, whichever wins.
    let foreign = tempfile::tempdir().unwrap();
    let pki = ebadge_admin::pki::Pki::new(foreign.path());
    pki.init(&["localhost".into()]).unwrap();
    let foreign_cert = pki.issue("heh-a", 1).unwrap();
    // Erlang's TLS 1.2 server answers a missing certificate with HandshakeFailure.
    for (client_cert, alert12, alert) in [
        (None, "HandshakeFailure", "CertificateRequired"),
        (Some(&foreign_cert), "UnknownCA", "UnknownCA"),
    ] {
        let tls12 = client_config(&profile.ca, client_cert, &[&rustls::version::TLS12]);
        let err = open_refused(&host, port, tls12, true).await;
        assert!(
            err.contains(&format!("received fatal alert: {alert12}")),
            "TLS 1.2, {alert12}: {err}"
        );
        let tls13 = client_config(&profile.ca, client_cert, &[&rustls::version::TLS13]);
        let err = open_refused(&host, port, tls13, true).await;
        assert!(
            err.contains(alert) || err.contains("reset by peer") || err.contains("peer shutdown"),
            "TLS 1.3, {alert}: {err}"
        );
    }

    // A certificate of our CA whose CN is no user.
    let (scert, skey) = LocalBrokerPki::issue("stranger");
    let err = ebadge_bus::amqp::connect_with(&profile, "stranger", &scert, &skey)
        .await
        .err()
        .expect("refused")
        .to_string();
    // RabbitMQ closes the socket after a refused EXTERNAL login and says why in its log.
    assert!(err.contains("peer shutdown"), "stranger: {err}");
    assert!(
        broker_log_contains("EXTERNAL login refused: user 'stranger' - invalid credentials").await
    );

    // Plain AMQP: no listener at all, and the TLS port does not speak it.
    let overview: serde_json::Value = raw_get("overview").await;
    let protocols: Vec<&str> = overview["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["protocol"].as_str())
        .collect();
    assert!(protocols.contains(&"amqp/ssl"), "{protocols:?}");
    assert!(!protocols.contains(&"amqp"), "{protocols:?}");
    let args = amqprs::connection::OpenConnectionArguments::new(&host, port, "guest", "guest");
    let plain = tokio::time::timeout(
        Duration::from_secs(10),
        amqprs::connection::Connection::open(&args),
    )
    .await;
    assert!(
        !matches!(plain, Ok(Ok(_))),
        "a plain AMQP connection to the TLS port must fail"
    );
}

#[tokio::test]
async fn a_message_sent_before_its_receiver_ever_connected_waits_in_its_inbox() {
    let ts = connect("ts").await;
    let (c, _) = channel(&ts).await;
    let message = id();
    publish(&c, "ts-to-late", "get_status_report", &message, Some("ts")).await;
    ts.close().await.unwrap();

    let late = connect("late").await;
    let (c, _) = channel(&late).await;
    assert_eq!(
        fetch(&c, "private-late-inbox", &message).await,
        Some(Some("ts".into()))
    );
}

#[tokio::test]
async fn group_members_receive_the_group_message_and_others_cannot_read_it() {
    let tso = connect("tso").await;
    let (c, _) = channel(&tso).await;
    let message = id();
    publish(&c, "tso-to-bsps", "market_cleared", &message, Some("tso")).await;
    for member in ["bsp1", "bsp2"] {
        let conn = connect(member).await;
        let (c, _) = channel(&conn).await;
        assert_eq!(
            fetch(&c, &format!("private-{member}-inbox"), &message).await,
            Some(Some("tso".into())),
            "{member}"
        );
    }
    let outsider = connect("bsp3").await;
    let (c, closed) = channel(&outsider).await;
    let mut args = QueueDeclareArguments::new("private-bsp3-spy");
    args.auto_delete(true);
    c.queue_declare(args).await.unwrap();
    let _ = c
        .queue_bind(QueueBindArguments::new(
            "private-bsp3-spy",
            "tso-to-bsps",
            "#",
        ))
        .await;
    let (code, text) = refused(&closed).await;
    assert_eq!(code, ACCESS_REFUSED, "{text}");
    assert!(
        text.contains("access to exchange 'tso-to-bsps' in vhost '/' refused for user 'bsp3'"),
        "{text}"
    );
}

#[tokio::test]
async fn the_read_regex_lookahead_holds_in_rabbitmq_a_tap_on_an_own_pair_exchange_but_no_foreign_private_queue()
 {
    profile().await;
    // vpp may bind a private queue of its own to ts-to-vpp (the `(?!private-).*-to-vpp` part).
    let vpp = connect("vpp").await;
    let (c, closed) = channel(&vpp).await;
    let mut args = QueueDeclareArguments::new("private-vpp-lookahead");
    args.auto_delete(true);
    c.queue_declare(args).await.unwrap();
    c.queue_bind(QueueBindArguments::new(
        "private-vpp-lookahead",
        "ts-to-vpp",
        "#",
    ))
    .await
    .expect("a tap on an exchange addressed to vpp");
    assert!(closed.wait_briefly().await.is_none());

    // ts makes a private queue whose name ends like an exchange addressed to vpp: still ts's.
    let ts = connect("ts").await;
    let (t, _) = channel(&ts).await;
    let mut args = QueueDeclareArguments::new("private-ts-spy-to-vpp");
    args.auto_delete(false);
    t.queue_declare(args).await.unwrap();
    let (c, closed) = channel(&vpp).await;
    let _ = c
        .basic_consume_rx(BasicConsumeArguments::new("private-ts-spy-to-vpp", "spy"))
        .await;
    let (code, text) = refused(&closed).await;
    assert_eq!(code, ACCESS_REFUSED, "{text}");
    t.queue_delete(amqprs::channel::QueueDeleteArguments::new(
        "private-ts-spy-to-vpp",
    ))
    .await
    .unwrap();
}

#[tokio::test]
async fn revoke_closes_the_open_connection_within_a_second_and_login_fails_after() {
    let _exclusive = EXCLUSIVE.lock().await;
    profile().await;
    provision_registry().await;
    let gone = connect("gone").await;
    let (c, _) = channel(&gone).await;
    let (_, mut rx) = c
        .basic_consume_rx(BasicConsumeArguments::new("private-gone-inbox", "consumer"))
        .await
        .unwrap();

    let started = Instant::now();
    let revoked = revoke::revoke(&admin().await, None, "gone").await.unwrap();
    assert!(revoked.user_deleted);
    // Who closes the connection first varies: RabbitMQ 3.10 drops a deleted user's connections
    // itself, and the management API lists a fresh connection only after its stats interval. The
    // effect is what counts: the consumer is cut off within a second.
    // The consumer's stream ends when the broker closes the connection.
    let ended = tokio::time::timeout(Duration::from_secs(1), async {
        while rx.recv().await.is_some() {}
    })
    .await;
    let elapsed = started.elapsed();
    assert!(
        ended.is_ok(),
        "the connection was still open 1 s after revoke"
    );
    assert!(!gone.is_open());
    eprintln!("revoke closed the consuming connection {elapsed:?} after the call");

    let err = ebadge_bus::amqp::connect(&profile().await, "gone")
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("peer shutdown"), "{err}");
    assert!(broker_log_contains("EXTERNAL login refused: user 'gone' - invalid credentials").await);
    provision_registry().await;
}

#[tokio::test]
async fn provisioning_is_idempotent_and_audit_reports_each_violation() {
    let _exclusive = EXCLUSIVE.lock().await;
    profile().await;
    provision_registry().await;
    let client = admin().await;
    let registry = Registry::parse(REGISTRY).unwrap();
    let management = ebadge_testkit::management();
    let again = provision::plan(&client, &management, &registry)
        .await
        .unwrap();
    assert!(
        again.is_empty(),
        "a second run changes nothing: {:?}",
        again.lines().collect::<Vec<_>>()
    );

    let clean = audit::audit(&client, &management).await.unwrap();
    assert_eq!(clean, vec![], "a provisioned broker passes the audit");

    // Break the conventions by hand, one of each kind.
    let violations = serde_json::json!({
        "users": [
            {"name": "guest", "password_hash": "", "tags": ""},
            {"name": "intruder", "password_hash": "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR", "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": ""}
        ],
        "permissions": [{"user": "heh-a", "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"}],
        "exchanges": [
            {"name": "rogue-direct", "vhost": "/", "type": "direct", "durable": true, "auto_delete": false, "internal": false, "arguments": {}},
            {"name": "private-heh-a-in", "vhost": "/", "type": "topic", "durable": true, "auto_delete": false, "internal": false, "arguments": {}}
        ],
        "queues": [
            {"name": "no-ttl-queue", "vhost": "/", "durable": true, "auto_delete": false, "arguments": {}},
            {"name": "private-heh-a-stream", "vhost": "/", "durable": true, "auto_delete": false, "arguments": {"x-queue-type": "stream"}},
            {"name": "private-heh-a-droppy", "vhost": "/", "durable": true, "auto_delete": false, "arguments": {"x-overflow": "drop-head"}},
            {"name": "private-heh-a-forgetful", "vhost": "/", "durable": true, "auto_delete": false, "arguments": {"x-queue-type": "quorum", "x-delivery-limit": 20}}
        ],
        "bindings": [{"source": "heh-b-to-ts", "vhost": "/", "destination": "private-heh-a-inbox", "destination_type": "queue", "routing_key": "#", "arguments": {}}],
        "policies": [{"vhost": "/", "name": "rogue", "pattern": "^no-ttl", "apply-to": "queues", "definition": {"max-length": 10}, "priority": 5}]
    });
    client.import_definitions(violations).await.unwrap();
    let found = audit::audit(&client, &management).await.unwrap();
    let kinds: std::collections::BTreeSet<&str> = found.iter().map(|v| v.kind).collect();
    for kind in [
        "guest",
        "password-user",
        "permissions",
        "default-exchange",
        "exchange-type",
        "queue-ttl",
        "queue-type",
        "queue-overflow",
        "queue-delivery-limit",
        "binding",
        "layout",
    ] {
        assert!(kinds.contains(kind), "{kind} not reported: {found:?}");
    }
    assert!(
        found
            .iter()
            .any(|v| v.detail.contains("user heh-a has configure \".*\"")),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|v| v.detail.contains("queue no-ttl-queue")),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|v| v.detail.contains("exchange rogue-direct is direct")),
        "{found:?}"
    );
    assert!(
        found.iter().any(|v| v.kind == "binding"
            && v.detail
                .contains("heh-b-to-ts is bound to private-heh-a-inbox")),
        "{found:?}"
    );
    assert!(
        found.iter().any(|v| v.kind == "layout"
            && v.detail
                .starts_with("private-heh-a-in exists: an HEH's pair")),
        "{found:?}"
    );

    // Provisioning repairs what it owns; the rest the operator removes.
    for user in ["guest", "intruder"] {
        client.delete_user(user, true).await.unwrap();
    }
    client
        .delete_exchange("/", "rogue-direct", true)
        .await
        .unwrap();
    for queue in [
        "no-ttl-queue",
        "private-heh-a-stream",
        "private-heh-a-droppy",
        "private-heh-a-forgetful",
    ] {
        client.delete_queue("/", queue, true).await.unwrap();
    }
    client.delete_policy("/", "rogue", true).await.unwrap();
    let repair = provision::plan(&client, &management, &registry)
        .await
        .unwrap();
    assert_eq!(
        repair.change.len(),
        1,
        "{:?}",
        repair.lines().collect::<Vec<_>>()
    );
    // The stray binding and the HEH's old incoming exchange are provisioning's to remove.
    assert_eq!(
        repair.remove,
        [
            "exchange private-heh-a-in (topic, durable)",
            "binding heh-b-to-ts -> private-heh-a-inbox [#]"
        ],
        "{:?}",
        repair.lines().collect::<Vec<_>>()
    );
    repair.apply(&management, |_, _| {}).await.unwrap();
    assert_eq!(audit::audit(&client, &management).await.unwrap(), vec![]);
}

#[tokio::test]
async fn imports_in_small_chunks_create_every_item_after_what_it_needs() {
    let _exclusive = EXCLUSIVE.lock().await;
    profile().await;
    provision_registry().await;
    let client = admin().await;
    let management = ebadge_testkit::management();
    let mut bigger = REGISTRY.to_owned();
    for i in 0..4 {
        bigger.push_str(&format!(
            "[[heh]]\nname = \"heh-chunky-{i}\"\noperator = \"ts\"\n"
        ));
    }
    let registry = Registry::parse(&bigger).unwrap();
    let plan = provision::plan(&client, &management, &registry)
        .await
        .unwrap();
    let items = plan.add.len();
    // Per HEH: user, permissions, two pair exchanges, inbox, two bindings.
    assert!(items >= 4 * 7, "{:?}", plan.lines().collect::<Vec<_>>());
    let mut progress = Vec::new();
    // Two items a request, as a big registry goes in requests of 5,000: a binding imported before
    // its exchange or queue, or a permission before its user, fails with 404.
    plan.apply_in_chunks(&management, 2, |done, total| progress.push((done, total)))
        .await
        .unwrap();
    assert_eq!(progress.last(), Some(&(items, items)), "{progress:?}");
    assert!(
        progress.len() >= items / 2,
        "one report per import: {progress:?}"
    );
    let again = provision::plan(&client, &management, &registry)
        .await
        .unwrap();
    assert!(
        again.is_empty(),
        "everything was created: {:?}",
        again.lines().collect::<Vec<_>>()
    );
    assert_eq!(audit::audit(&client, &management).await.unwrap(), vec![]);

    let back = provision::plan(&client, &management, &Registry::parse(REGISTRY).unwrap())
        .await
        .unwrap();
    assert_eq!(
        back.remove.len(),
        items,
        "{:?}",
        back.lines().collect::<Vec<_>>()
    );
    back.apply(&management, |_, _| {}).await.unwrap();
}

/// The serial number of the server certificate `port` presents.
async fn server_serial(
    port: u16,
    ca: &std::path::Path,
    cert: &(std::path::PathBuf, std::path::PathBuf),
) -> String {
    let config = client_config(ca, Some(cert), &[&rustls::version::TLS13]);
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    let der = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    let (_, parsed) = x509_parser::parse_x509_certificate(&der).unwrap();
    parsed.raw_serial_as_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_certificate_rotates_on_every_node_without_a_restart() {
    let broker = cluster().await;
    let pki = broker.pki();
    let profile = ebadge_bus::Profile::load(&broker.profile_path()).unwrap();
    let me = pki.client("vip-heh");
    let ports: Vec<u16> = broker
        .status()
        .unwrap()
        .nodes
        .iter()
        .map(|n| n.amqps_url.rsplit(':').next().unwrap().parse().unwrap())
        .collect();
    let open = ebadge_bus::Client::connect(ebadge_bus::ClientConfig::new(
        profile.clone(),
        ebadge_bus::EntityName::new("vip-heh").unwrap(),
    ))
    .await
    .unwrap();
    let mut before = Vec::new();
    for port in &ports {
        before.push(server_serial(*port, &pki.ca_cert(), &me).await);
    }

    let names = ["localhost", "127.0.0.1", "::1", VRRP_VIP].map(String::from);
    pki.issue_server(&names, 30).unwrap();
    assert_eq!(broker.reload_tls().await.unwrap(), ports.len());

    for (port, old) in ports.iter().zip(&before) {
        let new = server_serial(*port, &pki.ca_cert(), &me).await;
        assert_ne!(
            &new, old,
            "node on port {port} presents the new certificate"
        );
    }
    // The open connection carries on; a new one logs in.
    let to = ebadge_bus::EntityName::new("vip-vpp").unwrap();
    let report = ebadge_model::Message::decode(
        r#"{"msg":"report","from":"2026-11-25T10:00:00Z","to":"2026-11-25T10:01:00Z","resolution":60,"values":{"total.p":[1.5]},"heh_id":null}"#,
    )
    .unwrap();
    open.send_confirmed(&to, &report).await.unwrap();
    let fresh = ebadge_bus::Client::connect(ebadge_bus::ClientConfig::new(
        profile,
        ebadge_bus::EntityName::new("vip-heh").unwrap(),
    ))
    .await;
    assert!(fresh.is_ok(), "{:?}", fresh.err());
    open.close(Duration::from_secs(5)).await;

    // A wrong file (another CA's certificate) is caught by the reload, not by the next client.
    let other = tempfile::tempdir().unwrap();
    let foreign = ebadge_admin::pki::Pki::new(other.path());
    foreign.init(&names).unwrap();
    let ((own_cert, own_key), (cert, key)) = (pki.server(), foreign.server());
    std::fs::copy(key, own_key).unwrap();
    std::fs::copy(cert, own_cert).unwrap();
    let error = broker.reload_tls().await.unwrap_err().to_string();
    pki.issue_server(&names, 30).unwrap();
    assert_eq!(broker.reload_tls().await.unwrap(), ports.len());
    let first = &broker.status().unwrap().nodes[0].name;
    assert!(
        error.contains(&format!("node {first} does not complete TLS"))
            && error.contains("invalid peer certificate"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_audit_passes_and_reports_a_queue_that_is_not_replicated() {
    let broker = cluster().await;
    let management = broker.management().unwrap();
    let client = ebadge_admin::mgmt::admin_client(&management);
    assert_eq!(
        audit::audit(&client, &management).await.unwrap(),
        vec![],
        "a provisioned cluster conforms"
    );
    // HEH inboxes are classic (tagged users tell the audit so), the others replicated.
    let live = ebadge_admin::state::live_state(&client).await.unwrap();
    let kind = |queue: &str| {
        live.values()
            .find_map(|i| match i {
                ebadge_admin::state::Item::Queue {
                    name, queue_type, ..
                } if name == queue => Some(queue_type.clone()),
                _ => None,
            })
            .unwrap()
    };
    assert_eq!(kind("private-vip-heh-inbox"), "classic");
    assert_eq!(kind("private-vip-vpp-inbox"), "quorum");
    // What an entity may make in its own namespace: a durable classic queue, on one node only.
    let extra = serde_json::json!({
        "queues": [{"name": "private-vip-vpp-extra", "vhost": "/", "durable": true,
                    "auto_delete": false, "arguments": {"x-queue-type": "classic"}}]
    });
    client.import_definitions(extra).await.unwrap();
    let found = audit::audit(&client, &management).await.unwrap();
    client
        .delete_queue("/", "private-vip-vpp-extra", false)
        .await
        .unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].kind, "queue-replication");
    assert!(
        found[0]
            .detail
            .contains("queue private-vip-vpp-extra is a classic queue on a cluster of 3 nodes"),
        "{found:?}"
    );
    // Queues crowded on one node: classic queues declared client-local through one node, next
    // to the ones already there (spread evenly). A local cluster keeps what earlier runs' clients
    // made (their quarantines), so the crowd is sized from the live count: with N queues spread
    // over three nodes, 2N + 30 more on one node lead more than twice its share.
    let spread = live
        .values()
        .filter(|i| matches!(i, ebadge_admin::state::Item::Queue { durable: true, .. }))
        .count();
    let crowded = 2 * spread + 30;
    let crowd: Vec<serde_json::Value> = (0..crowded)
        .map(|i| {
            serde_json::json!({"name": format!("private-vip-vpp-crowd-{i}"), "vhost": "/",
                "durable": true, "auto_delete": false,
                "arguments": {"x-queue-type": "classic", "x-queue-master-locator": "client-local"}})
        })
        .collect();
    client
        .import_definitions(serde_json::json!({ "queues": crowd }))
        .await
        .unwrap();
    let found = audit::audit(&client, &management).await.unwrap();
    for i in 0..crowded {
        client
            .delete_queue("/", &format!("private-vip-vpp-crowd-{i}"), false)
            .await
            .unwrap();
    }
    assert!(
        found.iter().any(|v| v.kind == "queue-placement"),
        "{found:?}"
    );
}

/// The error of a login that must fail.
async fn refused_login(profile: &ebadge_bus::Profile, name: &str) -> String {
    match ebadge_bus::amqp::connect(profile, name).await {
        Ok(_) => panic!("{name} logged in with a certificate that must be refused"),
        Err(e) => e.to_string(),
    }
}

/// Copies `name`'s current certificate and key into a directory of their own; returns a profile
/// that uses them.
fn keep_certificate(
    profile: &ebadge_bus::Profile,
    name: &str,
    dir: &std::path::Path,
) -> ebadge_bus::Profile {
    let (cert, key) = profile.certificate(name);
    std::fs::create_dir_all(dir).unwrap();
    std::fs::copy(cert, dir.join(format!("{name}.pem"))).unwrap();
    std::fs::copy(key, dir.join(format!("{name}.key"))).unwrap();
    let mut kept = profile.clone();
    kept.certs = dir.to_owned();
    kept
}

#[tokio::test]
async fn a_revoked_certificate_stays_out_after_reprovisioning_and_a_reissued_one_replaces_the_old()
{
    let _exclusive = EXCLUSIVE.lock().await;
    let profile = profile().await;
    let pki = ebadge_admin::broker::LocalBroker::new(broker_dir()).pki();
    provision_registry().await;
    let dir = tempfile::tempdir().unwrap();
    let first = keep_certificate(&profile, "crl-a", &dir.path().join("first"));
    ebadge_bus::amqp::connect(&first, "crl-a")
        .await
        .expect("the first certificate works");

    let revoked = revoke::revoke(&admin().await, Some(&pki), "crl-a")
        .await
        .unwrap();
    assert!(revoked.certificate_revoked.is_some(), "{revoked:?}");
    // The registry still names crl-a: provisioning restores the user and issues a new certificate.
    provision_registry().await;
    let error = refused_login(&first, "crl-a").await;
    assert!(error.contains("CertificateRevoked"), "{error}");
    assert!(error.contains("was revoked"), "the hint says why: {error}");
    let second = keep_certificate(&profile, "crl-a", &dir.path().join("second"));
    ebadge_bus::amqp::connect(&second, "crl-a")
        .await
        .expect("the new certificate works");

    // Re-issuing (rotation) retires the certificate it replaces.
    pki.issue("crl-a", 30).unwrap();
    let error = refused_login(&second, "crl-a").await;
    assert!(error.contains("CertificateRevoked"), "{error}");
    ebadge_bus::amqp::connect(&profile, "crl-a")
        .await
        .expect("the newest certificate works");
    let reasons: Vec<String> = pki
        .revoked()
        .unwrap()
        .revoked
        .into_iter()
        .filter(|r| r.name == "crl-a")
        .map(|r| r.reason)
        .collect();
    assert_eq!(reasons[reasons.len() - 2..], ["revoked", "superseded"]);
}

#[tokio::test]
async fn the_local_broker_runs_with_the_fleet_settings() {
    let _ = profile().await;
    let broker = ebadge_admin::broker::LocalBroker::new(broker_dir());
    let state = broker.state().unwrap().expect("the test broker is up");
    let env = broker
        .ctl(
            &state,
            &[
                "eval",
                "[application:get_env(rabbit, K) || K <- [queue_leader_locator, queue_master_locator, classic_queue_default_version, tcp_listen_options, queue_index_embed_msgs_below]].",
            ],
        )
        .unwrap();
    for want in ["balanced", "random", "{ok,2}", "{backlog,4096}"] {
        assert!(
            env.contains(want),
            "{want} missing from the node's settings: {env}"
        );
    }
    assert!(
        !env.contains("{ok,0}"),
        "a single node keeps small messages in each classic queue's own store (its VPP inbox is \
         classic, and takes a stream faster that way): {env}"
    );
}

/// A running broker whose directory gives one port to two endpoints (an older `broker up` could
/// hand a port out twice; the node then answered TLS with its Prometheus endpoint's HTTP) is
/// repaired by the next `up`: the node gets a port of its own and is started again, instead of
/// `up` reporting a broken broker as running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_restarts_a_running_node_whose_ports_clash() {
    use ebadge_admin::broker::{LocalBroker, UpOptions};
    let dir = tempfile::tempdir().unwrap();
    let broker = LocalBroker::new(dir.path());
    broker.up(&UpOptions::default()).await.unwrap();
    let pid = broker.node_pid(0).expect("the node runs");
    let state_file = dir.path().join("broker.toml");
    let text = std::fs::read_to_string(&state_file).unwrap();
    let mut state: toml::Value = toml::from_str(&text).unwrap();
    let node = &mut state["nodes"][0];
    let amqps = node["amqps_port"].clone();
    node["prometheus_port"] = amqps.clone();
    std::fs::write(&state_file, toml::to_string(&state).unwrap()).unwrap();

    let (status, was_running) = broker.up(&UpOptions::default()).await.unwrap();
    assert!(
        !was_running,
        "a node with a clashing port is not reported as running"
    );
    let after = broker.state().unwrap().unwrap();
    assert_eq!(
        i64::from(after.nodes[0].amqps_port),
        amqps.as_integer().unwrap()
    );
    assert_ne!(after.nodes[0].prometheus_port, after.nodes[0].amqps_port);
    assert_ne!(broker.node_pid(0), Some(pid), "the node was started again");
    assert!(status.running, "{status:?}");
    // Up means answering: the management API, then a TLS handshake on AMQPS (`up` waits for both).
    let management = broker.management().unwrap();
    ebadge_admin::mgmt::RawApi::new(&management)
        .get("overview")
        .await
        .unwrap();
    broker.down().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_server_key_is_not_its_certificates_is_named_with_what_to_do() {
    use ebadge_admin::broker::{BrokerError, LocalBroker, UpOptions};
    let dir = tempfile::tempdir().unwrap();
    let broker = LocalBroker::new(dir.path());
    // A botched copy: the server certificate with a key that is not its own (the CA's, a valid
    // key of the same type). The node boots, answers its management API, accepts TCP on its
    // AMQPS port, and no client can trust it.
    broker.pki().init(&["localhost".into()]).unwrap();
    std::fs::copy(broker.pki().ca_key(), broker.pki().server().1).unwrap();
    let outcome = broker.up(&UpOptions::default()).await;
    broker.down().unwrap();
    let error = outcome.expect_err("up fails");
    assert!(matches!(error, BrokerError::Tls { .. }), "{error}");
    let text = error.to_string();
    assert!(
        text.contains("does not complete TLS")
            && text.contains("pki/server.key")
            && text.contains("reload-tls"),
        "{text}"
    );
}
