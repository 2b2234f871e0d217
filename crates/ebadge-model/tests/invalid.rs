//! The invalid corpus: messages the decoder must refuse, each with the message type and the field
//! its error names and a word of the reason. Each case also states whether the JSON Schema catches
//! it too, or whether it is one of the rules beyond JSON Schema (checked here: the schema accepts
//! it) or not JSON at all.

mod common;

use common::{ALL, examples, schema_errors};
use ebadge_model::Message;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Schema {
    /// The schema refuses it as well.
    Rejects,
    /// A rule JSON Schema cannot state; the schema accepts the message.
    Beyond,
    /// Not parseable as JSON (or JSON that a schema validator sees differently), so no schema check.
    NotJson,
}
use Schema::*;

struct Case {
    text: String,
    msg_type: Option<&'static str>,
    field: Option<&'static str>,
    reason: &'static str,
    schema: Schema,
}

/// A vector of the spec (by message type) with `from` replaced by `to`.
fn edit(msg_type: &str, from: &str, to: &str) -> String {
    let line = examples()
        .into_iter()
        .find(|l| l.contains(&format!("\"msg\": \"{msg_type}\"")))
        .unwrap_or_else(|| panic!("no vector of type {msg_type}"));
    assert!(line.contains(from), "{msg_type} vector has no {from:?}");
    line.replacen(from, to, 1)
}

fn case(
    text: String,
    msg_type: Option<&'static str>,
    field: Option<&'static str>,
    reason: &'static str,
    schema: Schema,
) -> Case {
    Case {
        text,
        msg_type,
        field,
        reason,
        schema,
    }
}

fn corpus() -> Vec<Case> {
    let lp = "load_price";
    vec![
        // Times (D3.1.3 4.2.4).
        case(
            edit(
                lp,
                "\"2013-07-27T23:10:00.000Z\"",
                "\"2013-07-27T23:10:00.000\"",
            ),
            Some(lp),
            Some("from"),
            "no offset",
            Rejects,
        ),
        case(
            edit("activate", "11:14:55.000Z", "11:14:55.000-00:00"),
            Some("activate"),
            Some("to"),
            "-00:00",
            Beyond,
        ),
        case(
            edit(
                "get_status_report",
                "2013-07-24T10:55:13",
                "2013-07-24t10:55:13",
            ),
            Some("get_status_report"),
            Some("from"),
            "'T'",
            Rejects,
        ),
        case(
            edit(lp, "2013-07-28T00:30", "2013-02-30T00:30"),
            Some(lp),
            Some("to"),
            "no such day",
            Beyond,
        ),
        case(
            edit(lp, "\"2013-07-27T23:10:00.000Z\"", "1374966600"),
            Some(lp),
            Some("from"),
            "expected a time string",
            Rejects,
        ),
        case(
            edit(
                "energy_events",
                "\"2013-07-23T16:33:56.345Z\"",
                "\"2013-07-23 16:33:56Z\"",
            ),
            Some("energy_events"),
            Some("events[0].start_time"),
            "'T'",
            Rejects,
        ),
        // Required fields, types, unknown fields.
        case(
            edit("report", "\"resolution\": 60, ", ""),
            Some("report"),
            Some("resolution"),
            "missing",
            Rejects,
        ),
        case(
            edit("activate", "\"quantity\": 3.4", "\"quantity\": null"),
            Some("activate"),
            Some("quantity"),
            "is null",
            Rejects,
        ),
        case(
            edit("get_report", "\"resolution\": 60", "\"resolution\": \"60\""),
            Some("get_report"),
            Some("resolution"),
            "expected a number",
            Rejects,
        ),
        case(
            edit("set_smart_mode", "false", "\"false\""),
            Some("set_smart_mode"),
            Some("reset"),
            "true or false",
            Rejects,
        ),
        case(
            edit("status_report", "\"severity\": 4", "\"severity\": \"high\""),
            Some("status_report"),
            Some("events[0].severity"),
            "integer",
            Rejects,
        ),
        case(
            edit("get_energy_events", "\"severity\": 1", "\"severity\": 1.5"),
            Some("get_energy_events"),
            Some("severity"),
            "integer",
            Rejects,
        ),
        case(
            edit(
                "accept_activation",
                "\"modification_count\": 0",
                "\"modification_count\": -1",
            ),
            Some("accept_activation"),
            Some("modification_count"),
            "from 0",
            Rejects,
        ),
        case(
            edit(
                lp,
                "\"price\": 0.138",
                "\"price\": 0.138, \"currency\": \"EUR\"",
            ),
            Some(lp),
            Some("currency"),
            "unknown field",
            Rejects,
        ),
        case(
            edit(
                "market_cleared",
                "\"positive\": true",
                "\"positive\": true, \"zone\": 1",
            ),
            Some("market_cleared"),
            Some("product.zone"),
            "unknown field",
            Rejects,
        ),
        case(
            edit("get_all_prices", "}", ", \"Msg\": 1}"),
            Some("get_all_prices"),
            Some("Msg"),
            "unknown field",
            Rejects,
        ),
        case(
            edit("capabilities", "\"devices\"", "\"Devices\""),
            Some("capabilities"),
            Some("devices"),
            "missing",
            Rejects,
        ),
        case(
            edit("energy_events", "\"events\": [", "\"events\": {\"a\": ["),
            Some("energy_events"),
            None,
            "not valid JSON",
            NotJson,
        ),
        case(
            edit("energy_events", "\"events\": [{", "\"events\": {\"e\": {").replace("}]}", "}}}"),
            Some("energy_events"),
            Some("events"),
            "expected an array",
            Rejects,
        ),
        // Message types.
        case(
            r#"{"msg": "get_prices"}"#.into(),
            None,
            Some("msg"),
            "unknown message type",
            Rejects,
        ),
        case(
            r#"{"msg": "ext_bad-name"}"#.into(),
            None,
            Some("msg"),
            "not a valid message type",
            Rejects,
        ),
        case(
            r#"{"msg": "Report"}"#.into(),
            None,
            Some("msg"),
            "unknown message type",
            Rejects,
        ),
        case(
            r#"{"device": null}"#.into(),
            None,
            Some("msg"),
            "missing",
            Rejects,
        ),
        case(
            r#"{"msg": 42}"#.into(),
            None,
            Some("msg"),
            "as a string",
            Rejects,
        ),
        case(
            r#"[{"msg": "get_all_prices"}]"#.into(),
            None,
            None,
            "JSON object",
            Rejects,
        ),
        // Names (D3.1.3 4.2.3).
        case(
            edit(lp, "}", ", \"ext_a-b\": 1}"),
            Some(lp),
            Some("[\"ext_a-b\"]"),
            "not a valid field name",
            Rejects,
        ),
        case(
            edit(lp, "}", ", \"ext_\": 1}"),
            Some(lp),
            Some("ext_"),
            "extensions must start",
            Rejects,
        ),
        case(
            edit(lp, "}", ", \"ext_Foo\": 1, \"ext_foo\": 2}"),
            Some(lp),
            Some("ext_foo"),
            "only in case",
            Beyond,
        ),
        case(
            r#"{"msg": "ext_x_led", "Color": 1, "color": 2}"#.into(),
            Some("ext_x_led"),
            Some("color"),
            "only in case",
            Beyond,
        ),
        case(
            r#"{"msg": "ext_x_led", "led-color": 1}"#.into(),
            Some("ext_x_led"),
            Some("[\"led-color\"]"),
            "not a valid field name",
            Rejects,
        ),
        case(
            edit("capabilities", "\"ECAR01\"", "\"ECAR-01\""),
            Some("capabilities"),
            Some("devices[0]"),
            "not a valid name",
            Rejects,
        ),
        case(
            edit(
                "activate",
                "\"device\": \"ECAR01\"",
                "\"device\": \"E CAR\"",
            ),
            Some("activate"),
            Some("device"),
            "not a valid name",
            Rejects,
        ),
        case(
            edit("get_periodic_report", "\"total.p\"", "\"total\""),
            Some("get_periodic_report"),
            Some("signals[0]"),
            "device.signal",
            Rejects,
        ),
        case(
            edit("report", "\"total.p\"", "\"totalp\""),
            Some("report"),
            Some("values.totalp"),
            "device.signal",
            Rejects,
        ),
        case(
            edit(
                "device_capabilities",
                "\"name\": \"p\"",
                "\"name\": \"p.gen\"",
            ),
            Some("device_capabilities"),
            Some("signals[0].name"),
            "not a valid name",
            Rejects,
        ),
        // Numbers (D3.1.3 4.2.4).
        case(
            edit(lp, "0.138", "1e400"),
            Some(lp),
            Some("price"),
            "out of range",
            NotJson,
        ),
        case(
            edit(lp, "0.138", "NaN"),
            Some(lp),
            Some("price"),
            "not valid JSON",
            NotJson,
        ),
        case(
            edit(lp, "0.138", "-Infinity"),
            Some(lp),
            Some("price"),
            "not valid JSON",
            NotJson,
        ),
        // What the spec rules out.
        case(
            edit("get_energy_events", "2013-07-23T17:20", "2013-07-23T15:20"),
            Some("get_energy_events"),
            Some("to"),
            "before from",
            Beyond,
        ),
        case(
            edit(
                "activate_bid",
                "\"to\": \"2013-07-24T11:14:55.000Z\"",
                "\"to\": \"2013-07-24T11:00:00+00:00\"",
            ),
            Some("activate_bid"),
            Some("to"),
            "before from",
            Beyond,
        ),
        case(
            edit(
                "market_cleared",
                "\"end\": \"2013-07-21T10:15:00.000Z\"",
                "\"end\": \"2013-07-21T10:00:00.000Z\"",
            ),
            Some("market_cleared"),
            Some("product.end"),
            "not after start",
            Beyond,
        ),
        case(
            edit("energy_events", "16:33:58.645Z", "16:33:50Z"),
            Some("energy_events"),
            Some("events[0].end_time"),
            "before start_time",
            Beyond,
        ),
        case(
            edit("get_report", "\"resolution\": 60", "\"resolution\": 0"),
            Some("get_report"),
            Some("resolution"),
            "greater than 0",
            Rejects,
        ),
        case(
            edit("report", "\"resolution\": 60", "\"resolution\": -60"),
            Some("report"),
            Some("resolution"),
            "greater than 0",
            Rejects,
        ),
        case(
            edit(
                "get_periodic_report",
                "\"interval\": 300",
                "\"interval\": 0",
            ),
            Some("get_periodic_report"),
            Some("interval"),
            "-1",
            Rejects,
        ),
        case(
            edit(
                "get_periodic_report",
                "\"interval\": 300",
                "\"interval\": -2",
            ),
            Some("get_periodic_report"),
            Some("interval"),
            "-1",
            Rejects,
        ),
        case(
            edit(
                "report",
                "[1.73, 1.68, 0.43, 0.33, 0.45]",
                "[1.73, 1.68, 0.43, 0.33]",
            ),
            Some("report"),
            Some("values[\"total.p\"]"),
            "needs 5",
            Beyond,
        ),
        case(
            edit("report", "\"resolution\": 60", "\"resolution\": 120"),
            Some("report"),
            Some("values[\"HeatPump01.p\"]"),
            "needs 3",
            Beyond,
        ),
        case(
            edit("set_smart_mode", "\"passive\"", "\"sleep\""),
            Some("set_smart_mode"),
            Some("mode"),
            "not one of normal, passive, off",
            Rejects,
        ),
        case(
            edit("device_capabilities", "\"storage\"", "\"battery\""),
            Some("device_capabilities"),
            Some("classes[1]"),
            "not one of consumer, generator, storage",
            Rejects,
        ),
        case(
            edit("device_capabilities", "\"storage\"", "\"consumer\""),
            Some("device_capabilities"),
            Some("classes"),
            "twice",
            Rejects,
        ),
        case(
            edit(
                "device_capabilities",
                "\"name\": \"p_gen\"",
                "\"name\": \"p\"",
            ),
            Some("device_capabilities"),
            Some("signals"),
            "twice",
            Beyond,
        ),
        case(
            edit("device_capabilities", "[0, 6.6]", "[6.6, 0]"),
            Some("device_capabilities"),
            Some("signals[0].range"),
            "above max",
            Beyond,
        ),
        case(
            edit("device_capabilities", "[0, 6.6]", "[0, 3, 6.6]"),
            Some("device_capabilities"),
            Some("signals[0].range"),
            "[min, max]",
            Rejects,
        ),
        case(
            edit("get_report", "1b8d6a00-0296", "1b8d6a00.0296"),
            Some("get_report"),
            Some("heh_id"),
            "'.'",
            Rejects,
        ),
        case(
            edit("activate", "304c3c50-0296", "304c3c50*0296"),
            Some("activate"),
            Some("heh_id"),
            "'*'",
            Rejects,
        ),
        case(
            edit("activation_capacity", "697e91d0-0296", "697e91d0#0296"),
            Some("activation_capacity"),
            Some("heh_id"),
            "'#'",
            Rejects,
        ),
        case(
            edit("get_activation_capacity", "697e91d0-0296", "697e91d0 0296"),
            Some("get_activation_capacity"),
            Some("heh_id"),
            "' '",
            Rejects,
        ),
        case(
            edit(
                "get_report",
                "\"1b8d6a00-0296-11e4-9191-0800200c9a66\"",
                "\"\"",
            ),
            Some("get_report"),
            Some("heh_id"),
            "empty",
            Rejects,
        ),
        case(
            edit(
                "activation_capacity",
                "\"pos_capacity\": 4.3",
                "\"pos_capacity\": -4.3",
            ),
            Some("activation_capacity"),
            Some("pos_capacity"),
            "negative",
            Rejects,
        ),
        case(
            edit(
                "balancing_energy_bid",
                "\"quantity\": 15",
                "\"quantity\": -15",
            ),
            Some("balancing_energy_bid"),
            Some("quantity"),
            "negative",
            Rejects,
        ),
        case(
            edit(
                "response",
                "\"response_code\": 200",
                "\"response_code\": 42",
            ),
            Some("response"),
            Some("response_code"),
            "100-599",
            Rejects,
        ),
        case(
            edit(
                "response",
                "\"response_code\": 200",
                "\"response_code\": 200.5",
            ),
            Some("response"),
            Some("response_code"),
            "integer",
            Rejects,
        ),
        case(
            edit(
                "bid_accepted",
                "\"fd127905-8005-44cc-8870-00ac8b6d27e3\"",
                "\"\"",
            ),
            Some("bid_accepted"),
            Some("msg_id"),
            "empty",
            Rejects,
        ),
        case(
            edit("balancing_unachievable", "\"79b25a8f", "\"\\u0007"),
            Some("balancing_unachievable"),
            Some("msg_id"),
            "control character",
            Rejects,
        ),
        // JSON itself.
        case(
            edit("set_clock", "}", ", \"offset\": 60}"),
            Some("set_clock"),
            None,
            "appears twice",
            NotJson,
        ),
        case(
            edit("get_all_prices", "}", "} trailing"),
            Some("get_all_prices"),
            None,
            "trailing characters",
            NotJson,
        ),
        case(
            r#"{"msg": "get_all_prices""#.into(),
            Some("get_all_prices"),
            None,
            "EOF",
            NotJson,
        ),
    ]
}

#[test]
fn the_corpus_is_large_enough() {
    let corpus = corpus();
    assert!(corpus.len() >= 40, "{} cases", corpus.len());
    let beyond = corpus.iter().filter(|c| c.schema == Beyond).count();
    assert!(beyond >= 5);
}

#[test]
fn every_invalid_message_is_refused_naming_type_and_field() {
    let mut failures = Vec::new();
    for c in corpus() {
        let err = match Message::decode(&c.text) {
            Ok(m) => {
                failures.push(format!("accepted {}\n  as {m:?}", c.text));
                continue;
            }
            Err(e) => e,
        };
        let text = err.to_string();
        let prefix_ok = c
            .msg_type
            .is_none_or(|t| text.starts_with(&format!("{t}: ")));
        if err.msg_type.as_deref() != c.msg_type
            || err.field().as_deref() != c.field
            || !text.contains(c.reason)
            || !prefix_ok
        {
            failures.push(format!(
                "{}\n  said {text:?} (type {:?}, field {:?})\n  want type {:?}, field {:?}, saying {:?}",
                c.text,
                err.msg_type,
                err.field(),
                c.msg_type,
                c.field,
                c.reason
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of the corpus failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn the_schema_refuses_exactly_the_cases_it_can_express() {
    for c in corpus() {
        let Ok(value) = serde_json::from_str::<Value>(&c.text) else {
            assert_eq!(
                c.schema, NotJson,
                "not JSON, but marked {:?}: {}",
                c.schema, c.text
            );
            continue;
        };
        let errors = schema_errors(&ALL, &value);
        match c.schema {
            Rejects => assert!(!errors.is_empty(), "the schema accepts {}", c.text),
            Beyond => assert!(
                errors.is_empty(),
                "marked beyond JSON Schema but refused: {}\n{errors:?}",
                c.text
            ),
            NotJson => {}
        }
    }
}

#[test]
fn invalid_utf8_is_refused() {
    let mut bytes =
        br#"{"msg": "set_smart_mode", "mode": "passive", "reset": false, "ext_x": "#.to_vec();
    bytes.extend_from_slice(b"\"\xff\xfe\"}");
    let err = Message::decode_slice(&bytes).unwrap_err();
    assert!(err.to_string().contains("not valid JSON"), "{err}");
    assert_eq!(err.field().as_deref(), Some("ext_x"));
}

/// The corpus as data, `tests/vectors/invalid.jsonl` (one JSON object a line: `text`,
/// `msg_type`, `field`, `reason`), for the decoders of other languages (the Python package's
/// tests check that it refuses every case for the same type and field). `EBADGE_BLESS=1` writes
/// it; without, the committed file must be current.
#[test]
fn the_corpus_file_for_other_languages_is_current() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/invalid.jsonl");
    let lines: String = corpus()
        .iter()
        .map(|c| {
            serde_json::json!({"text": c.text, "msg_type": c.msg_type, "field": c.field, "reason": c.reason})
                .to_string()
                + "\n"
        })
        .collect();
    if std::env::var_os("EBADGE_BLESS").is_some() {
        std::fs::write(path, &lines).unwrap();
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == lines,
        "{path} is not the corpus: run `EBADGE_BLESS=1 cargo test -p ebadge-model --test invalid` and commit it"
    );
}
