//! `ebadge msg check` and `ebadge msg schema`, run as a user runs them.

mod common;

use common::ebadge;
use std::process::Output;

use serde_json::Value;

const EXAMPLES: &str = include_str!("../../ebadge-model/tests/vectors/examples.jsonl");

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

#[test]
fn check_prints_ok_and_the_type_for_each_valid_line_and_exits_0() {
    let output = ebadge(&["msg", "check", "-"], EXAMPLES);
    assert_eq!(output.status.code(), Some(0));
    let lines: Vec<String> = stdout(&output).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 33);
    assert_eq!(lines[0], "ok get_report");
    assert_eq!(lines[32], "ok balancing_unachievable");
    assert!(String::from_utf8_lossy(&output.stderr).contains("33 valid, 0 invalid"));
}

#[test]
fn check_reads_a_file_too() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../ebadge-model/tests/vectors/examples.jsonl"
    );
    let output = ebadge(&["msg", "check", path, "--quiet"], "");
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(stdout(&output).lines().count(), 33);
    assert!(output.stderr.is_empty());
}

#[test]
fn check_prints_one_line_per_input_line_and_exits_1_on_any_invalid() {
    let input = concat!(
        "{\"msg\":\"get_all_prices\"}\n",
        "{\"msg\":\"load_price\",\"from\":\"2013-07-27T23:10:00\",\"to\":\"2013-07-28T00:30:00Z\",\"price\":1}\n",
        "\n",
        "not json\r\n",
        "{\"msg\":\"set_clock\",\"offset\":null}",
    );
    let output = ebadge(&["msg", "check"], input);
    assert_eq!(output.status.code(), Some(1));
    let out = stdout(&output);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 5, "{out}");
    assert_eq!(lines[0], "ok get_all_prices");
    assert!(
        lines[1].starts_with("invalid 2: load_price: field from: "),
        "{}",
        lines[1]
    );
    assert_eq!(lines[2], "invalid 3: empty line");
    assert!(
        lines[3].starts_with("invalid 4: not valid JSON"),
        "{}",
        lines[3]
    );
    assert_eq!(lines[4], "ok set_clock");
}

#[test]
fn check_json_gives_one_object_per_line_for_scripts() {
    let input = "{\"msg\":\"get_all_prices\"}\n{\"msg\":\"set_smart_mode\",\"mode\":\"sleep\",\"reset\":false}\n";
    let output = ebadge(&["msg", "check", "--json"], input);
    assert_eq!(output.status.code(), Some(1));
    let records: Vec<Value> = stdout(&output)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records[0]["ok"], true);
    assert_eq!(records[0]["type"], "get_all_prices");
    assert_eq!(records[1]["ok"], false);
    assert_eq!(records[1]["line"], 2);
    assert_eq!(records[1]["type"], "set_smart_mode");
    assert_eq!(records[1]["field"], "mode");
    assert!(
        records[1]["reason"]
            .as_str()
            .unwrap()
            .contains("normal, passive, off")
    );
}

#[test]
fn check_says_what_to_do_with_a_missing_file() {
    let output = ebadge(&["msg", "check", "/nonexistent/messages.jsonl"], "");
    assert_eq!(output.status.code(), Some(2));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        err.contains("cannot open /nonexistent/messages.jsonl"),
        "{err}"
    );
}

#[test]
fn schema_prints_the_2020_12_schema_of_all_types_or_one() {
    let all: Value = serde_json::from_slice(&ebadge(&["msg", "schema"], "").stdout).unwrap();
    assert_eq!(
        all["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    assert_eq!(
        all["oneOf"].as_array().unwrap().len(),
        34,
        "33 types and extensions"
    );
    let report: Value =
        serde_json::from_slice(&ebadge(&["msg", "schema", "report"], "").stdout).unwrap();
    assert_eq!(report["properties"]["msg"]["const"], "report");
    assert_eq!(
        report["required"],
        serde_json::json!(["msg", "from", "to", "resolution", "values"])
    );
}

#[test]
fn schema_of_an_unknown_type_lists_the_known_ones() {
    let output = ebadge(&["msg", "schema", "reprot"], "");
    assert_eq!(output.status.code(), Some(2));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        err.contains("unknown message type \"reprot\"") && err.contains("report"),
        "{err}"
    );
}

#[test]
fn schema_list_names_the_33_types_with_their_level() {
    let out = stdout(&ebadge(&["msg", "schema", "--list"], ""));
    assert_eq!(out.lines().count(), 33);
    assert!(out.contains("activate\tHeh") && out.contains("activate_bid\tMarket"));
}
