//! The constructors make valid messages, and the answers they build match what they answer.

use std::collections::BTreeMap;

use ebadge_model::*;
use serde_json::json;

fn t(s: &str) -> Time {
    s.parse().unwrap()
}

#[test]
fn an_activation_round_with_a_counter_proposal() {
    let order = Activate::new(t("2013-07-24T11:10:20Z"), t("2013-07-24T11:14:55Z"), 3.4);
    assert_eq!(order.modification_count, 0);
    assert_ne!(
        order.id,
        Activate::new(order.from, order.to, 1.0).id,
        "fresh IDs"
    );
    let counter = order.counter_proposal(t("2013-07-24T11:11:25Z"), order.to, 3.6);
    assert!(counter.answers(&order));
    let revised = counter.agree();
    assert_eq!(
        (
            revised.id.clone(),
            revised.modification_count,
            revised.quantity
        ),
        (order.id.clone(), 1, 3.6)
    );
    assert!(
        !order.accept().answers(&revised),
        "an answer to count 0 does not answer count 1"
    );
    assert!(revised.reject().answers(&revised));
    let again = revised.modified(revised.from, revised.to, 2.0);
    assert_eq!(again.modification_count, 2);
    for m in [
        Message::from(order),
        counter.into(),
        revised.clone().into(),
        revised.accept().into(),
        again.into(),
    ] {
        m.validate().unwrap();
        assert_eq!(Message::decode(&m.encode().unwrap()).unwrap(), m);
    }
}

#[test]
fn activation_key_pairs_answers_with_orders() {
    let order = Message::from(Activate::new(
        t("2013-07-24T11:10:20Z"),
        t("2013-07-24T11:14:55Z"),
        1.0,
    ));
    let Message::Activate(a) = &order else {
        unreachable!()
    };
    assert_eq!(
        Message::from(a.reject()).activation_key(),
        order.activation_key()
    );
    assert_eq!(
        Message::from(GetAllPrices {
            ext: Extensions::new()
        })
        .activation_key(),
        None
    );
}

#[test]
fn a_report_computes_its_end_and_refuses_ragged_values() {
    let p = SignalName::new("total.p").unwrap();
    let q = SignalName::new("total.q").unwrap();
    let values = BTreeMap::from([(p.clone(), vec![1.0; 4]), (q.clone(), vec![0.5; 4])]);
    let report = Report::new(t("2013-07-21T10:00:00+02:00"), 15.0, values).unwrap();
    assert_eq!(report.to.to_string(), "2013-07-21T10:01:00+02:00");
    Message::from(report).validate().unwrap();
    let ragged = BTreeMap::from([(p, vec![1.0; 4]), (q, vec![0.5; 3])]);
    let err = Report::new(t("2013-07-21T10:00:00Z"), 15.0, ragged).unwrap_err();
    assert_eq!(err.path.to_string(), "values[\"total.q\"]");
    assert!(Report::new(t("2013-07-21T10:00:00Z"), 0.0, BTreeMap::new()).is_err());
}

#[test]
fn market_messages_get_fresh_ids_and_responses_echo_them() {
    let product = Product::new(true, t("2013-07-21T10:00:00Z"), t("2013-07-21T10:15:00Z"));
    let bid = Message::from(BalancingReserveBid::new(product.clone(), 45.3, 1.4, 8.32));
    assert!(bid.requires_response());
    let ok = bid.ok_response().unwrap();
    assert!(ok.is_ok());
    assert_eq!(Some(&ok.msg_id), bid.msg_id());
    let refused = Response::error(ok.msg_id.clone(), 409, "gate closed");
    assert!(!refused.is_ok());
    assert!(
        !Message::from(ok).requires_response(),
        "a response is never answered"
    );
    for m in [
        bid,
        BalancingEnergyBid::new(product, 15.0, 14.11).into(),
        BidAccepted::new(Id::new_uuid(), 33.1).into(),
        ActivateBid::new(Id::new_uuid(), 15.0).into(),
        RequestBalancing::new(-4.5).into(),
        BalancingUnachievable::new(Id::new_uuid()).into(),
        refused.into(),
    ] {
        m.validate().unwrap();
    }
}

#[test]
fn validate_catches_what_the_type_system_cannot() {
    let mut price = LoadPrice {
        from: t("2013-07-27T23:10:00Z"),
        to: t("2013-07-28T00:30:00Z"),
        price: f64::NAN,
        ext: Extensions::new(),
    };
    let err = Message::from(price.clone()).encode().unwrap_err();
    assert_eq!(
        (err.msg_type.as_deref(), err.field().as_deref()),
        (Some("load_price"), Some("price"))
    );
    price.price = 0.1;
    price.to = t("2013-07-27T23:00:00Z");
    assert_eq!(
        Message::from(price)
            .validate()
            .unwrap_err()
            .field()
            .as_deref(),
        Some("to")
    );
}

#[test]
fn extensions_are_added_by_checked_name() {
    let m = GetAllPrices {
        ext: Extensions::new(),
    }
    .with_extension("ext_si_xlab_reason", json!("reboot"))
    .unwrap();
    assert_eq!(
        Message::from(m).encode().unwrap(),
        r#"{"msg":"get_all_prices","ext_si_xlab_reason":"reboot"}"#
    );
    assert!(
        GetAllPrices {
            ext: Extensions::new()
        }
        .with_extension("reason", json!(1))
        .is_err()
    );
    assert!(
        GetAllPrices {
            ext: Extensions::new()
        }
        .with_extension("ext_a.b", json!(1))
        .is_err()
    );
}
