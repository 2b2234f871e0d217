//! The spec's own examples (D3.1.3, "Raw JSON example") are conformance vectors: each decodes,
//! re-encodes to the same JSON value, and validates against the JSON Schema.

mod common;

use common::{ALL, examples, schema_errors, schema_of};
use ebadge_model::{Level, Message, MessageType};
use serde_json::{Value, json};

/// The message types of the examples, in document order.
const ORDER: [&str; 33] = [
    "get_report",
    "get_periodic_report",
    "report",
    "get_energy_events",
    "get_energy_events_realtime",
    "energy_events",
    "activate",
    "accept_activation",
    "reject_activation",
    "modify_activation",
    "get_activation_capacity",
    "activation_capacity",
    "contingency_activate",
    "contingency_end",
    "load_price",
    "generation_price",
    "get_all_prices",
    "get_status_report",
    "status_report",
    "set_clock",
    "set_smart_mode",
    "get_capabilities",
    "capabilities",
    "device_capabilities",
    "balancing_reserve_bid",
    "response",
    "bid_accepted",
    "market_cleared",
    "balancing_energy_bid",
    "activate_bid",
    "request_balancing",
    "balancing_activated",
    "balancing_unachievable",
];

/// The JSON the encoder writes for a vector: the vector itself, except for the two errata the
/// decoder tolerates and the encoder corrects (docs/errata.md).
fn corrected(value: &Value) -> Value {
    let mut expected = value.clone();
    match value["msg"].as_str() {
        Some("get_report") => {
            expected["signals"] = json!(["total.ua", "total.ub", "total.uc", "WaterHeater01.p"]);
        }
        Some("modify_activation") => expected["quantity"] = json!(3.6),
        _ => {}
    }
    expected
}

#[test]
fn the_copy_of_the_vectors_is_current() {
    let shared = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/spec/examples.jsonl"
    );
    if let Ok(text) = std::fs::read_to_string(shared) {
        assert_eq!(
            text,
            common::EXAMPLES,
            "tests/vectors/examples.jsonl differs from {shared}"
        );
    }
}

#[test]
fn there_are_33_vectors_of_33_distinct_types_24_heh_and_9_market() {
    let lines = examples();
    assert_eq!(lines.len(), 33);
    let types: Vec<MessageType> = lines
        .iter()
        .map(|l| Message::decode(l).unwrap().message_type().unwrap())
        .collect();
    assert_eq!(types.iter().map(|t| t.as_str()).collect::<Vec<_>>(), ORDER);
    assert_eq!(types, MessageType::ALL);
    assert_eq!(types.iter().filter(|t| t.level() == Level::Heh).count(), 24);
    assert_eq!(
        types.iter().filter(|t| t.level() == Level::Market).count(),
        9
    );
}

#[test]
fn every_vector_decodes_and_reencodes_to_the_same_json_value() {
    for line in examples() {
        let original: Value = serde_json::from_str(line).unwrap();
        let message = Message::decode(line).unwrap_or_else(|e| panic!("{line}\n{e}"));
        let encoded: Value = serde_json::from_str(&message.encode().unwrap()).unwrap();
        assert_eq!(encoded, corrected(&original), "{line}");
        // And once more: the encoder's output is a fixed point.
        let again = Message::decode(&message.encode().unwrap()).unwrap();
        assert_eq!(again, message);
        assert_eq!(again.encode().unwrap(), message.encode().unwrap());
    }
}

#[test]
fn only_the_two_tolerated_errata_change_on_reencoding() {
    let changed: Vec<String> = examples()
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| corrected(v) != *v)
        .map(|v| v["msg"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(changed, ["get_report", "modify_activation"]);
}

#[test]
fn every_vector_and_its_reencoding_validate_against_the_schemas() {
    for line in examples() {
        let message = Message::decode(line).unwrap();
        let t = message.message_type().unwrap();
        for value in [
            serde_json::from_str::<Value>(line).unwrap(),
            message.to_value(),
        ] {
            assert!(
                schema_errors(&ALL, &value).is_empty(),
                "{line}: {:?}",
                schema_errors(&ALL, &value)
            );
            let own = schema_of(t);
            assert!(
                schema_errors(own, &value).is_empty(),
                "{line}: {:?}",
                schema_errors(own, &value)
            );
        }
    }
}

#[test]
fn extension_fields_survive_untouched() {
    let capabilities = examples()[22];
    let message = Message::decode(capabilities).unwrap();
    let ext = message.extensions().unwrap();
    assert_eq!(
        ext["ext_com_cybergrid_vpp_extended_description"],
        json!("some non-standard stuff")
    );
    let device = Message::decode(examples()[23]).unwrap();
    assert_eq!(
        device.extensions().unwrap()["ext_com_electriccars_ecar_battery_capacity"],
        json!(14.2)
    );
}

#[test]
fn erratum_1_a_comma_separated_signal_entry_is_read_as_the_list_it_means() {
    let Message::GetReport(m) = Message::decode(examples()[0]).unwrap() else {
        panic!()
    };
    let names: Vec<&str> = m.signals.iter().map(|s| s.as_str()).collect();
    assert_eq!(
        names,
        ["total.ua", "total.ub", "total.uc", "WaterHeater01.p"]
    );
    // Each part is still checked.
    let bad = examples()[0].replace("total.ub", "total");
    let err = Message::decode(&bad).unwrap_err();
    assert_eq!(err.field().as_deref(), Some("signals[1]"), "{err}");
}

#[test]
fn erratum_2_a_numeric_string_quantity_of_modify_activation_is_read_as_a_number() {
    let Message::ModifyActivation(m) = Message::decode(examples()[9]).unwrap() else {
        panic!()
    };
    assert_eq!(m.quantity, 3.6);
    // Only a plain decimal is tolerated, and only there.
    let bad = examples()[9].replace("\"3.6\"", "\"3.6 kW\"");
    assert_eq!(
        Message::decode(&bad).unwrap_err().field().as_deref(),
        Some("quantity")
    );
    let activate = examples()[6].replace("3.4", "\"3.4\"");
    assert_eq!(
        Message::decode(&activate).unwrap_err().field().as_deref(),
        Some("quantity")
    );
}

#[test]
fn erratum_4_contingency_messages_take_an_optional_heh_id() {
    let with = examples()[12].replace(
        "\"max_quantity\": 120",
        "\"max_quantity\": 120, \"heh_id\": \"heh-b827ebea02c1\"",
    );
    let message = Message::decode(&with).unwrap();
    assert_eq!(message.heh_id().unwrap().as_str(), "heh-b827ebea02c1");
    let without = Message::decode(examples()[13]).unwrap();
    assert_eq!(without.heh_id(), None);
    assert!(
        !without.encode().unwrap().contains("heh_id"),
        "absent stays absent"
    );
}
