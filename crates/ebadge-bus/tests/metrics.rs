//! The client's Prometheus metrics on the real broker: what an operator scrapes matches what
//! happened (reports sent and received by type, a quarantine by reason, an activation's round
//! trip, confirms), and a fleet is one label set with its totals.

mod common;

use amqprs::channel::BasicPublishArguments;
use common::*;
use ebadge_bus::metrics::Metrics;
use ebadge_bus::{ActivationOutcome, Client, Handled, Handler, Incoming};
use ebadge_model::{Activate, Time};
use std::collections::HashMap;
use std::time::Duration;

/// An HEH that accepts every activation.
struct Accepting;

impl Handler for Accepting {
    async fn on_activate(
        &mut self,
        client: &Client,
        incoming: &Incoming,
        order: &Activate,
    ) -> Handled {
        client.send(&incoming.from, &order.accept().into()).unwrap();
        Handled::Yes
    }
}

/// `GET path` on the endpoint: the status code and the body.
async fn get(address: std::net::SocketAddr, path: &str) -> (u16, String) {
    ebadge_testkit::http_get(&format!("http://{address}{path}"))
        .await
        .expect("the endpoint answers")
}

/// The samples of an exposition: `name{labels}` (labels sorted by name) → value.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            let key = match key.split_once('{') {
                Some((name, labels)) => {
                    let mut labels: Vec<&str> = labels.trim_end_matches('}').split(',').collect();
                    labels.sort();
                    format!("{name}{{{}}}", labels.join(","))
                }
                None => key.to_owned(),
            };
            Some((key, value.parse().ok()?))
        })
        .collect()
}

fn sample(all: &HashMap<String, f64>, key: &str) -> f64 {
    *all.get(key)
        .unwrap_or_else(|| panic!("no sample {key} in the exposition"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scrape_counts_what_happened_by_type_reason_and_latency() {
    let profile = profile().await;
    let vpp = client(&profile, "op-metrics").await;
    let heh = client(&profile, "heh-metrics").await;
    let metrics = Metrics::new();
    metrics.watch("op-metrics", std::slice::from_ref(&vpp));
    metrics.watch("heh-metrics", std::slice::from_ref(&heh));
    let server = metrics.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let mut inbox = vpp.inbox().unwrap();

    for n in 0..5 {
        heh.send(&name("op-metrics"), &numbered_report(n)).unwrap();
    }
    heh.flush().await.unwrap();
    let numbers = collect(&mut inbox, "heh-metrics", 5, Duration::from_secs(10)).await;
    assert_each_once_any_order(&numbers, 5, "reports");

    // A malformed body from the HEH: quarantined as an invalid message.
    let connection = ebadge_bus::amqp::connect(&profile, "heh-metrics")
        .await
        .unwrap();
    let channel = connection.open_channel(None).await.unwrap();
    channel
        .basic_publish(
            amqprs::BasicProperties::default(),
            b"{\"msg\":\"report\"".to_vec(),
            BasicPublishArguments::new("heh-metrics-to-op-metrics", "report"),
        )
        .await
        .unwrap();

    let serving = heh.clone();
    tokio::spawn(async move { serving.serve(Accepting).await });
    let order = Activate::new(
        Time::parse("2030-01-01T10:00:00Z").unwrap(),
        Time::parse("2030-01-01T11:00:00Z").unwrap(),
        1.0,
    );
    let outcome = vpp
        .activate(&name("heh-metrics"), &order, Duration::from_secs(10))
        .await
        .unwrap();
    assert!(
        matches!(outcome, ActivationOutcome::Accepted(_)),
        "{outcome:?}"
    );
    heh.flush().await.unwrap();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let all = loop {
        let (status, body) = get(server.address(), "/metrics").await;
        assert_eq!(status, 200);
        assert!(
            body.ends_with("# EOF\n"),
            "an OpenMetrics exposition ends with # EOF"
        );
        let all = samples(&body);
        let key =
            r#"ebadge_messages_quarantined_total{entity="op-metrics",reason="invalid_message"}"#;
        if all.get(key) == Some(&1.0) || tokio::time::Instant::now() > deadline {
            break all;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    connection.close().await.unwrap();

    let s = |key: &str| sample(&all, key);
    assert_eq!(
        s(r#"ebadge_messages_sent_total{entity="heh-metrics",type="report"}"#),
        5.0
    );
    assert_eq!(
        s(r#"ebadge_messages_sent_total{entity="heh-metrics",type="accept_activation"}"#),
        1.0
    );
    assert_eq!(
        s(r#"ebadge_messages_sent_total{entity="op-metrics",type="activate"}"#),
        1.0
    );
    assert_eq!(
        s(r#"ebadge_messages_received_total{entity="op-metrics",type="report"}"#),
        5.0
    );
    assert_eq!(
        s(r#"ebadge_messages_received_total{entity="heh-metrics",type="activate"}"#),
        1.0
    );
    assert_eq!(
        s(r#"ebadge_messages_quarantined_total{entity="op-metrics",reason="invalid_message"}"#),
        1.0
    );
    assert_eq!(
        s(r#"ebadge_messages_quarantined_total{entity="op-metrics",reason="user_id_mismatch"}"#),
        0.0
    );
    assert_eq!(
        s(r#"ebadge_request_round_trip_seconds_count{entity="op-metrics",type="activate"}"#),
        1.0
    );
    assert_eq!(
        s(r#"ebadge_publish_confirm_seconds_count{entity="heh-metrics"}"#),
        6.0,
        "5 reports and 1 answer confirmed"
    );
    assert_eq!(
        s(r#"ebadge_messages_confirmed_total{entity="heh-metrics"}"#),
        6.0
    );
    assert_eq!(s(r#"ebadge_outbox_messages{entity="heh-metrics"}"#), 0.0);
    assert_eq!(s(r#"ebadge_connected{entity="op-metrics"}"#), 1.0);
    assert_eq!(s(r#"ebadge_clients{entity="op-metrics"}"#), 1.0);
    // The confirms on loopback took well under the 5-s bucket's bound.
    assert_eq!(
        s(r#"ebadge_publish_confirm_seconds_bucket{entity="heh-metrics",le="5.0"}"#),
        6.0
    );

    let (status, _) = get(server.address(), "/other").await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_is_one_label_set_with_its_totals() {
    let profile = profile().await;
    let fleet = vec![
        client(&profile, "fleet-heh-1").await,
        client(&profile, "fleet-heh-2").await,
    ];
    let metrics = Metrics::new();
    metrics.watch("fleet", &fleet);
    for (i, heh) in fleet.iter().enumerate() {
        for n in 0..=i as u64 {
            heh.send(&name("op-fleet"), &numbered_report(n)).unwrap();
        }
        heh.flush().await.unwrap();
    }
    let text = metrics.encode();
    let all = samples(&text);
    assert_eq!(sample(&all, r#"ebadge_clients{entity="fleet"}"#), 2.0);
    assert_eq!(sample(&all, r#"ebadge_connected{entity="fleet"}"#), 2.0);
    assert_eq!(
        sample(
            &all,
            r#"ebadge_messages_sent_total{entity="fleet",type="report"}"#
        ),
        3.0
    );
    assert_eq!(
        sample(&all, r#"ebadge_messages_confirmed_total{entity="fleet"}"#),
        3.0
    );
    assert!(
        !text.contains("fleet-heh"),
        "a fleet exposes its totals, not one label set per client"
    );
    for heh in &fleet {
        heh.close(Duration::from_secs(5)).await;
    }
    drop(fleet);
    let all = samples(&metrics.encode());
    assert_eq!(
        sample(&all, r#"ebadge_connected{entity="fleet"}"#),
        0.0,
        "closed clients are not connected"
    );
    assert_eq!(
        sample(&all, r#"ebadge_messages_confirmed_total{entity="fleet"}"#),
        3.0,
        "a closed client's counts stay: counters never go down"
    );
    let vpp = client(&profile, "op-fleet").await;
    drain(&mut vpp.inbox().unwrap()).await;
}
