//! The client's typed API on the real broker: quarantine of bad input, activations answered by
//! accept / reject / modify / silence, market requests and their responses, handler dispatch.

mod common;

use common::*;
use ebadge_bus::{ActivationOutcome, Client, Handled, Handler, Incoming};
use ebadge_model::{Activate, BalancingReserveBid, Message, Product, Time};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_invalid_messages_are_quarantined_with_a_reason_and_the_consumer_goes_on() {
    let profile = profile().await;
    let receiver = client(&profile, "op-quarantine").await;
    let mut inbox = receiver.inbox().unwrap();
    drain(&mut inbox).await;
    let before = receiver.counters().quarantined;

    let exchange = "heh-quarantine-to-op-quarantine";
    publish_raw(
        "heh-quarantine",
        exchange,
        [b"{\"msg\": \"report\", \"from\": ".to_vec()],
    )
    .await;
    publish_raw(
        "heh-quarantine",
        exchange,
        [br#"{"msg":"load_price","from":"2013-07-27T23:10:00","to":"2013-07-28T00:30:00Z","price":0.138}"#.to_vec()],
    )
    .await;
    let sender = client(&profile, "heh-quarantine").await;
    sender
        .send(&name("op-quarantine"), &numbered_report(7))
        .unwrap();

    let good = tokio::time::timeout(Duration::from_secs(10), inbox.next())
        .await
        .expect("the consumer carries on")
        .unwrap();
    good.ack();
    assert_eq!(number_of(&good.message), Some(7));
    // Counted once the broker confirmed each copy, which may come after the good message.
    for _ in 0..100 {
        if receiver.counters().quarantined - before >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(receiver.counters().quarantined - before, 2);

    // The quarantine holds both, with the reason and the sender.
    let reasons = ebadge_testkit::quarantined("op-quarantine", 2).await;
    assert!(reasons.len() >= 2, "{reasons:?}");
    assert!(
        reasons
            .iter()
            .all(|(from, reason)| from == "heh-quarantine" && !reason.is_empty()),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|(_, r)| r.contains("not valid JSON")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|(_, r)| r.contains("no offset")),
        "{reasons:?}"
    );
}

/// An HEH that answers by the ordered quantity: 1 accept, 2 reject, 3 counter-proposal, else silence.
struct Hub;

impl Handler for Hub {
    async fn on_activate(
        &mut self,
        client: &Client,
        incoming: &Incoming,
        order: &Activate,
    ) -> Handled {
        let answer = match order.quantity {
            1.0 => Message::AcceptActivation(order.accept()),
            2.0 => Message::RejectActivation(order.reject()),
            3.0 => Message::ModifyActivation(order.counter_proposal(order.from, order.to, 2.5)),
            _ => return Handled::Yes,
        };
        client.send(&incoming.from, &answer).unwrap();
        Handled::Yes
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activations_resolve_by_accept_reject_modify_or_timeout() {
    let profile = profile().await;
    let heh = client(&profile, "act-heh").await;
    let serving = heh.clone();
    tokio::spawn(async move { serving.serve(Hub).await });
    let vpp = client(&profile, "act-vpp").await;
    let t = |s: &str| Time::parse(s).unwrap();
    let order = |quantity: f64| {
        Activate::new(
            t("2030-01-01T10:00:00Z"),
            t("2030-01-01T11:15:00+01:00"),
            quantity,
        )
    };
    let to = name("act-heh");
    let wait = Duration::from_secs(10);

    let o = order(1.0);
    match vpp.activate(&to, &o, wait).await.unwrap() {
        ActivationOutcome::Accepted(a) => assert_eq!(a.id, o.id),
        other => panic!("{other:?}"),
    }
    let o = order(2.0);
    assert!(
        matches!(vpp.activate(&to, &o, wait).await.unwrap(), ActivationOutcome::Rejected(r) if r.id == o.id)
    );
    let o = order(3.0);
    match vpp.activate(&to, &o, wait).await.unwrap() {
        ActivationOutcome::Modified(m) => {
            assert_eq!(
                (m.id.clone(), m.modification_count, m.quantity),
                (o.id.clone(), 0, 2.5)
            );
            // Agreeing bumps the count; the HEH (quantity 2.5 → silence) does not answer.
            let agreed = m.agree();
            assert_eq!(agreed.modification_count, 1);
            assert_eq!(
                vpp.activate(&to, &agreed, Duration::from_millis(1500))
                    .await
                    .unwrap(),
                ActivationOutcome::TimedOut
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        vpp.activate(&to, &order(4.0), Duration::from_secs(1))
            .await
            .unwrap(),
        ActivationOutcome::TimedOut
    );
}

/// A TSO that acknowledges every market message that needs it.
struct Tso;

impl Handler for Tso {
    async fn on_balancing_reserve_bid(
        &mut self,
        client: &Client,
        incoming: &Incoming,
        _: &BalancingReserveBid,
    ) -> Handled {
        client.respond_ok(incoming).unwrap();
        Handled::Yes
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_market_message_gets_its_response_and_unhandled_types_are_counted() {
    let profile = profile().await;
    let tso = client(&profile, "market-tso").await;
    let serving = tso.clone();
    tokio::spawn(async move { serving.serve(Tso).await });
    let bsp = client(&profile, "market-bsp").await;
    let t = |s: &str| Time::parse(s).unwrap();
    let product = Product::new(true, t("2030-01-01T10:00:00Z"), t("2030-01-01T11:00:00Z"));
    let bid = BalancingReserveBid::new(product, 5.0, 10.0, 80.0);
    let response = bsp
        .request(
            &name("market-tso"),
            &Message::BalancingReserveBid(bid.clone()),
            Duration::from_secs(10),
        )
        .await
        .unwrap()
        .expect("the TSO answers");
    assert_eq!(response.msg_id, bid.msg_id);
    assert_eq!(response.response_code, 200);

    // A type the TSO's handler does not implement is acknowledged and counted, not lost in silence.
    let before = tso.counters().unhandled;
    bsp.send_confirmed(&name("market-tso"), &numbered_report(1))
        .await
        .unwrap();
    for _ in 0..50 {
        if tso.counters().unhandled > before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(tso.counters().unhandled, before + 1);
}
