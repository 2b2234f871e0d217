//! Tolerance for the two errata of D3.1.3 whose examples a strict reading would refuse (see
//! `docs/errata.md`). Both are applied to the raw JSON before the typed decoder reads it, so the
//! types stay strict and the encoder always writes the corrected form.

use serde_json::{Map, Number, Value};

/// The types whose signal lists erratum 1 concerns, by their `msg` name (the spec's own words:
/// this module stays below the message types, which use it).
const SIGNAL_LISTS: [&str; 2] = ["get_report", "get_periodic_report"];

/// The type whose quantity erratum 2 concerns.
const QUANTITY_AS_STRING: &str = "modify_activation";

/// Applies the tolerated errata for messages of type `msg` (the `msg` name).
pub(crate) fn apply(msg: &str, map: &mut Map<String, Value>) {
    if SIGNAL_LISTS.contains(&msg) {
        split_signal_lists(map);
    } else if msg == QUANTITY_AS_STRING {
        number_from_string(map, "quantity");
    }
}

/// Erratum 1: the `get_report` example writes four signal names as one comma-separated string
/// (`["total.ua, total.ub, total.uc, WaterHeater01.p"]`). Such an entry is read as the list it
/// means; each part is then checked as a signal name.
fn split_signal_lists(map: &mut Map<String, Value>) {
    let Some(Value::Array(items)) = map.get_mut("signals") else {
        return;
    };
    if !items
        .iter()
        .any(|v| matches!(v, Value::String(s) if s.contains(',')))
    {
        return;
    }
    let mut split = Vec::with_capacity(items.len());
    for item in items.drain(..) {
        match item {
            Value::String(s) if s.contains(',') => {
                split.extend(
                    s.split(',')
                        .map(|part| Value::String(part.trim().to_owned())),
                );
            }
            other => split.push(other),
        }
    }
    *items = split;
}

/// Erratum 2: the `modify_activation` example writes `"quantity":"3.6"`. A string holding a plain
/// decimal number (`-?digits[.digits]`) is read as that number; anything else stays a string and
/// is refused by the typed decoder.
fn number_from_string(map: &mut Map<String, Value>, field: &str) {
    let Some(Value::String(s)) = map.get(field) else {
        return;
    };
    if !is_plain_decimal(s) {
        return;
    }
    if let Some(n) = s
        .parse::<f64>()
        .ok()
        .filter(|f| f.is_finite())
        .and_then(Number::from_f64)
    {
        map.insert(field.to_owned(), Value::Number(n));
    }
}

fn is_plain_decimal(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    let (int, frac) = digits.split_once('.').unwrap_or((digits, "0"));
    !int.is_empty()
        && !frac.is_empty()
        && int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
}

/// Widens a type's JSON Schema by exactly the tolerance [`apply`] gives its decoder, so that the
/// schema accepts what the decoder accepts (the spec's own examples included).
pub(crate) fn widen_schema(msg: &str, schema: &mut Value) {
    if SIGNAL_LISTS.contains(&msg) {
        let name = "[A-Za-z][A-Za-z0-9_]*\\.[A-Za-z][A-Za-z0-9_]*";
        schema["properties"]["signals"]["items"]["pattern"] =
            Value::from(format!("^\\s*{name}\\s*(,\\s*{name}\\s*)*$"));
    } else if msg == QUANTITY_AS_STRING {
        schema["properties"]["quantity"] = serde_json::json!({
            "anyOf": [{"type": "number"}, {"type": "string", "pattern": "^-?[0-9]+(\\.[0-9]+)?$"}]
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::MessageType;

    #[test]
    fn the_errata_name_types_that_exist() {
        for msg in SIGNAL_LISTS.into_iter().chain([QUANTITY_AS_STRING]) {
            assert!(MessageType::from_name(msg).is_some(), "{msg}");
        }
    }
}
