//! Interoperability with what we did not write: a plain pika client (`tests/pika/peer.py`,
//! Debian's python3-pika, configured as D3.2.3 and the seed's own library are) exchanges messages
//! both ways with `ebadge send`/`listen` and with the library. Bare properties (the seed's
//! `delivery_mode=2` only, or `content_type` only) are heard, not quarantined; invalid JSON and
//! offset-less times are quarantined with the reason.

mod common;

use common::ebadge_with;
use ebadge_bus::{Client, ClientConfig, EntityName, Profile};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

const PYTHON: &str = "/usr/bin/python3";

fn peer_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pika/peer.py")
}

fn report(n: u64) -> String {
    format!(
        r#"{{"msg":"report","from":"2013-07-21T10:00:00+02:00","to":"2013-07-21T10:01:00+02:00","resolution":60,"values":{{"total.p":[1.5]}},"heh_id":null,"ext_test_seq":{n}}}"#
    )
}

/// Runs the pika peer as `me` with `args` after the connection arguments; returns its stdout.
fn pika(profile: &Profile, me: &str, mode: &str, args: &[&str], stdin: &str) -> String {
    let (host, port) = profile.host_and_port().unwrap();
    let (cert, key) = profile.certificate(me);
    let port = port.to_string();
    let script = peer_script();
    let mut all: Vec<&OsStr> = vec![
        script.as_os_str(),
        mode.as_ref(),
        host.as_ref(),
        port.as_ref(),
    ];
    all.extend([profile.ca.as_os_str(), cert.as_os_str(), key.as_os_str()]);
    all.extend(args.iter().map(OsStr::new));
    let output = common::run(PYTHON, &all, stdin);
    assert!(
        output.status.success(),
        "pika {mode} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn name(s: &str) -> EntityName {
    EntityName::new(s).unwrap()
}

/// One test, run in order: each step reads the inboxes the one before filled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_pika_client_and_our_bus_talk_both_ways() {
    let profile = ebadge_testkit::profile().await;
    let path = ebadge_admin::broker::LocalBroker::new(ebadge_testkit::broker_dir()).profile_path();
    // Leftovers of earlier runs.
    ebadge_testkit::drain_inbox(&profile, "pika-op").await;
    ebadge_testkit::quarantined("pika-op", 0).await;
    pika(
        &profile,
        "pika-heh",
        "consume",
        &["private-pika-heh-inbox", "1000", "1"],
        "",
    );

    // 1. pika -> `ebadge listen`: the seed's two property sets and a full one are heard; invalid
    //    JSON and an offset-less time are quarantined.
    let exchange = "pika-heh-to-pika-op";
    let published = [
        (
            "seed-blocking",
            "{\"msg\": \"report\", \"from\": ".to_owned(),
        ),
        (
            "seed-blocking",
            report(0).replace("2013-07-21T10:00:00+02:00", "2013-07-21T10:00:00"),
        ),
        ("seed-blocking", report(1)),
        ("seed-async", report(2)),
        ("full", report(3)),
    ];
    for (props, body) in &published {
        pika(
            &profile,
            "pika-heh",
            "publish",
            &[exchange, "report", props],
            &format!("{body}\n"),
        );
    }
    let heard = ebadge_with(
        &path,
        &["listen", "--as", "pika-op", "--json", "--count", "3"],
        "",
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&heard.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    for (line, n) in lines.iter().zip(1..) {
        assert_eq!(line["from"], "pika-heh");
        assert_eq!(line["routing_key"], "report");
        assert_eq!(line["message"]["ext_test_seq"], n);
        // Offsets are kept as sent.
        assert_eq!(line["message"]["from"], "2013-07-21T10:00:00+02:00");
    }
    let quarantined = ebadge_testkit::quarantined("pika-op", 2).await;
    assert_eq!(quarantined.len(), 2, "{quarantined:?}");
    assert!(quarantined.iter().all(|(from, _)| from == "pika-heh"));
    assert!(
        quarantined[1].1.contains("no offset"),
        "{:?}",
        quarantined[1]
    );

    // 2. pika -> the library: bare properties, so no message_id; the sender comes from the
    //    exchange.
    let receiver = Client::connect(ClientConfig::new(profile.clone(), name("pika-op")))
        .await
        .unwrap();
    let mut inbox = receiver.inbox().unwrap();
    pika(
        &profile,
        "pika-heh",
        "publish",
        &[exchange, "report", "seed-blocking"],
        &format!("{}\n", report(6)),
    );
    let incoming = tokio::time::timeout(Duration::from_secs(10), inbox.next())
        .await
        .expect("heard")
        .unwrap();
    incoming.ack();
    assert_eq!(incoming.from.as_str(), "pika-heh");
    assert_eq!(incoming.message_id, None);
    assert_eq!(receiver.counters().without_message_id, 1);
    assert_eq!(receiver.counters().quarantined, 0);

    // 3. `ebadge send` -> pika, and 4. the library -> pika: pika reads its inbox as D3.2.3 says.
    let sent = ebadge_with(
        &path,
        &["send", "--as", "pika-op", "--to", "pika-heh"],
        r#"{"msg":"get_capabilities"}"#,
    );
    assert!(
        sent.status.success(),
        "{}",
        String::from_utf8_lossy(&sent.stderr)
    );
    let activation = ebadge_model::Message::decode(
        r#"{"msg":"activate","id":"938f2b97-314c-49e8-9860-f441df2284a1","modification_count":0,"from":"2013-07-24T11:10:20.000Z","to":"2013-07-24T11:14:55.000Z","quantity":3.4,"device":"ECAR01","heh_id":"pika-heh"}"#,
    )
    .unwrap();
    receiver
        .send_confirmed(&name("pika-heh"), &activation)
        .await
        .unwrap();
    let read = pika(
        &profile,
        "pika-heh",
        "consume",
        &["private-pika-heh-inbox", "2", "10"],
        "",
    );
    let read: Vec<serde_json::Value> = read
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(read.len(), 2, "{read:?}");
    assert_eq!(read[0]["exchange"], "pika-op-to-pika-heh");
    assert_eq!(read[0]["routing_key"], "get_capabilities");
    assert_eq!(read[0]["user_id"], "pika-op");
    assert_eq!(read[1]["routing_key"], "activate.pika-heh");
    let body: serde_json::Value = serde_json::from_str(read[1]["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["heh_id"], "pika-heh");
    receiver.close(Duration::from_secs(1)).await;
}

/// The bindings into the pair exchange `destination`, as the management API lists them:
/// (source, routing key, arguments).
async fn bindings_into(destination: &str) -> Vec<(String, String, serde_json::Value)> {
    let listed =
        ebadge_testkit::raw_get(&format!("exchanges/%2F/{destination}/bindings/destination")).await;
    listed
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["source"].as_str().unwrap().to_owned(),
                b["routing_key"].as_str().unwrap().to_owned(),
                b["arguments"].clone(),
            )
        })
        .collect()
}

/// The violations `ebadge audit --json` prints.
fn audit(path: &Path) -> Vec<serde_json::Value> {
    let out = ebadge_with(path, &["audit", "--json"], "");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A relayed sender (issue #26, item 9): `relay-vpp` may write `relay-vpp-to-relay-mkt` and read
/// `relay-ts-to-relay-vpp`, and RabbitMQ lets it bind the first to the second, so `relay-ts`'s
/// messages to `relay-vpp` reach `relay-mkt` through the exchange `relay-ts-to-relay-vpp`. Made
/// with a plain pika client, as an attacker would: the receiver quarantines what comes through
/// an exchange not addressed to it or its groups (and still hears its group), `ebadge audit`
/// reports the binding, provisioning removes it (arguments and all), and revoking `relay-vpp`
/// removes the relays it made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_binding_made_with_pika_is_quarantined_reported_and_removed() {
    let _exclusive = ebadge_testkit::EXCLUSIVE.lock().await;
    let profile = ebadge_testkit::profile().await;
    let path = ebadge_admin::broker::LocalBroker::new(ebadge_testkit::broker_dir()).profile_path();
    // A clean start: what an earlier run may have left.
    ebadge_testkit::provision_registry().await;
    for who in ["relay-mkt", "relay-vpp"] {
        ebadge_testkit::drain_inbox(&profile, who).await;
    }
    ebadge_testkit::quarantined("relay-mkt", 0).await;
    let (source, relay) = ("relay-ts-to-relay-vpp", "relay-vpp-to-relay-mkt");
    assert_eq!(bindings_into(relay).await, []);

    // 1. The broker lets relay-vpp make the binding (twice: once with arguments, which
    //    provisioning's items do not carry).
    pika(&profile, "relay-vpp", "bind", &[relay, source, "#"], "");
    pika(
        &profile,
        "relay-vpp",
        "bind",
        &[relay, source, "#", r#"{"x-hide":"1"}"#],
        "",
    );
    assert_eq!(bindings_into(relay).await.len(), 2);

    // 2. The audit reports it.
    let found = audit(&path);
    let relays: Vec<&serde_json::Value> = found
        .iter()
        .filter(|v| v["kind"] == "relay-binding")
        .collect();
    assert_eq!(relays.len(), 1, "{found:?}");
    let detail = relays[0]["detail"].as_str().unwrap();
    assert!(
        detail.starts_with(
            "relay-ts-to-relay-vpp is bound to the pair exchange relay-vpp-to-relay-mkt [#]: what is published to relay-ts-to-relay-vpp reaches relay-mkt"
        ),
        "{detail}"
    );

    // 3. relay-ts sends to relay-vpp (relayed to relay-mkt) and to its group relay-all;
    //    relay-vpp sends to relay-mkt itself.
    let client = |who: &str, groups: &[&str]| {
        let mut config = ClientConfig::new(profile.clone(), name(who));
        config.groups = groups.iter().map(|g| name(g)).collect();
        Client::connect(config)
    };
    let ts = client("relay-ts", &[]).await.unwrap();
    let vpp = client("relay-vpp", &[]).await.unwrap();
    let mut vpp_inbox = vpp.inbox().unwrap();
    let message = |n| ebadge_model::Message::decode(&report(n)).unwrap();
    ts.send_confirmed(&name("relay-vpp"), &message(100))
        .await
        .unwrap();
    ts.send_confirmed(&name("relay-all"), &message(101))
        .await
        .unwrap();
    vpp.send_confirmed(&name("relay-mkt"), &message(102))
        .await
        .unwrap();
    // relay-vpp, to whom it was sent, hears it.
    let heard = tokio::time::timeout(Duration::from_secs(10), vpp_inbox.next())
        .await
        .expect("relay-vpp hears relay-ts")
        .unwrap();
    heard.ack();
    assert_eq!(
        (heard.from.as_str(), heard.message.to_json().contains("100")),
        ("relay-ts", true)
    );

    // 4. `ebadge listen --as relay-mkt --group relay-all` prints the group's message and
    //    relay-vpp's own; never relay-ts's message to relay-vpp as if sent to relay-mkt.
    let heard = ebadge_with(
        &path,
        &[
            "listen",
            "--as",
            "relay-mkt",
            "--group",
            "relay-all",
            "--json",
            "--count",
            "2",
        ],
        "",
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&heard.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let got: Vec<(String, u64)> = lines
        .iter()
        .map(|l| {
            (
                l["from"].as_str().unwrap().to_owned(),
                l["message"]["ext_test_seq"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [("relay-ts".to_owned(), 101), ("relay-vpp".to_owned(), 102)],
        "{lines:?}"
    );
    let quarantined = ebadge_testkit::quarantined("relay-mkt", 1).await;
    assert_eq!(quarantined.len(), 1, "{quarantined:?}");
    let (from, reason) = &quarantined[0];
    assert_eq!(from, "relay-ts");
    assert!(
        reason.starts_with(
            "arrived through \"relay-ts-to-relay-vpp\", addressed to relay-vpp, not to relay-mkt (its groups are relay-all): relayed by relay-vpp"
        ),
        "{reason}"
    );

    // 5. Provisioning removes both bindings; the audit has no relay left.
    let management = ebadge_testkit::management();
    let registry = ebadge_admin::registry::Registry::parse(ebadge_testkit::REGISTRY).unwrap();
    let plan =
        ebadge_admin::provision::plan(&ebadge_testkit::admin().await, &management, &registry)
            .await
            .unwrap();
    assert_eq!(
        plan.remove,
        ["binding relay-ts-to-relay-vpp -> relay-vpp-to-relay-mkt [#]"],
        "{:?}",
        plan.lines().collect::<Vec<_>>()
    );
    plan.apply(&management, |_, _| {}).await.unwrap();
    assert_eq!(bindings_into(relay).await, []);
    assert!(
        !audit(&path).iter().any(|v| v["kind"] == "relay-binding"),
        "no relay left"
    );

    // 6. A revoked entity's relays go with it.
    pika(&profile, "relay-vpp", "bind", &[relay, source, "#"], "");
    pika(
        &profile,
        "relay-vpp",
        "bind",
        &[
            relay,
            "private-relay-vpp-in",
            "report.#",
            r#"{"x-hide":"1"}"#,
        ],
        "",
    );
    assert_eq!(bindings_into(relay).await.len(), 2);
    let revoked = ebadge_with(&path, &["revoke", "relay-vpp", "--json"], "");
    assert!(
        revoked.status.success(),
        "{}",
        String::from_utf8_lossy(&revoked.stderr)
    );
    let revoked: serde_json::Value = serde_json::from_slice(&revoked.stdout).unwrap();
    let mut removed: Vec<&str> = revoked["relay_bindings_removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    removed.sort();
    assert_eq!(
        removed,
        [
            "private-relay-vpp-in -> relay-vpp-to-relay-mkt [report.#]",
            "relay-ts-to-relay-vpp -> relay-vpp-to-relay-mkt [#]"
        ]
    );
    assert_eq!(bindings_into(relay).await, []);
    for c in [ts, vpp] {
        c.close(Duration::from_secs(1)).await;
    }
    // The registry still names relay-vpp: provisioning restores it with a new certificate.
    ebadge_testkit::provision_registry().await;
}
