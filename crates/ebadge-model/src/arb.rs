//! The [`Arb`] trait (a type with a strategy for its valid values) and its strategies for the
//! field types below the messages: numbers, names, times, extension fields (feature
//! `proptest`). Apart from [`crate::arbitrary`], which builds whole messages: each message type
//! implements `Arb` next to its definition (the field table's macro), so the trait must sit
//! below the types, and the message strategies above them.

use std::collections::BTreeMap;

use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use serde_json::Value;
use time::{OffsetDateTime, UtcOffset};

use crate::field::Extensions;
use crate::names::{HehId, Id, Name, SignalName};
use crate::time::Time;

/// A type with a strategy for its valid values.
pub trait Arb: Sized + std::fmt::Debug {
    /// Generates valid values.
    fn arb() -> BoxedStrategy<Self>;
}

impl Arb for f64 {
    fn arb() -> BoxedStrategy<Self> {
        prop_oneof![
            any::<i32>().prop_map(f64::from),
            -1.0e6..1.0e6,
            proptest::num::f64::NORMAL | proptest::num::f64::SUBNORMAL | proptest::num::f64::ZERO,
        ]
        .boxed()
    }
}

impl Arb for i64 {
    fn arb() -> BoxedStrategy<Self> {
        any::<i64>().boxed()
    }
}

impl Arb for u32 {
    fn arb() -> BoxedStrategy<Self> {
        any::<u32>().boxed()
    }
}

impl Arb for bool {
    fn arb() -> BoxedStrategy<Self> {
        any::<bool>().boxed()
    }
}

impl Arb for String {
    fn arb() -> BoxedStrategy<Self> {
        any::<String>().boxed()
    }
}

impl<T: Arb + 'static> Arb for Vec<T> {
    fn arb() -> BoxedStrategy<Self> {
        vec(T::arb(), 0..4).boxed()
    }
}

impl Arb for BTreeMap<SignalName, Vec<f64>> {
    fn arb() -> BoxedStrategy<Self> {
        btree_map(SignalName::arb(), vec(f64::arb(), 0..6), 0..4).boxed()
    }
}

impl Arb for Time {
    fn arb() -> BoxedStrategy<Self> {
        // 1970 to 2100, any offset a clock can have, 0-9 fraction digits, Z or +00:00 for UTC.
        (
            0i64..4_102_444_800,
            0u32..1_000_000_000,
            -(23 * 60 + 59)..=(23 * 60 + 59i32),
            0u8..=9,
            any::<bool>(),
        )
            .prop_map(|(secs, nanos, offset_minutes, digits, zulu)| {
                let offset =
                    UtcOffset::from_whole_seconds(offset_minutes * 60).expect("offset in range");
                let instant = OffsetDateTime::from_unix_timestamp(secs)
                    .expect("in range")
                    .to_offset(offset);
                Time::from_parts(
                    instant.replace_nanosecond(nanos).expect("in range"),
                    digits,
                    zulu,
                )
            })
            .boxed()
    }
}

fn name_strategy() -> impl Strategy<Value = String> {
    "[A-Za-z][A-Za-z0-9_]{0,10}"
}

impl Arb for Name {
    fn arb() -> BoxedStrategy<Self> {
        name_strategy()
            .prop_map(|s| Name::new(s).expect("matches the name rule"))
            .boxed()
    }
}

impl Arb for SignalName {
    fn arb() -> BoxedStrategy<Self> {
        (name_strategy(), name_strategy())
            .prop_map(|(d, s)| SignalName::new(format!("{d}.{s}")).expect("two names"))
            .boxed()
    }
}

impl Arb for HehId {
    fn arb() -> BoxedStrategy<Self> {
        prop_oneof![
            "[!-\"$-)+-\\-/-~]{1,24}",
            "[0-9a-f]{12}".prop_map(|mac| format!("heh-{mac}")),
            Just(uuid::Uuid::new_v4().to_string()),
        ]
        .prop_map(|s| HehId::new(s).expect("a valid heh_id"))
        .boxed()
    }
}

impl Arb for Id {
    fn arb() -> BoxedStrategy<Self> {
        prop_oneof![
            any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).to_string()),
            "[^\\x00-\\x1f\\x7f-\\x9f]{1,40}",
        ]
        .prop_map(|s| Id::new(s).expect("a valid id"))
        .boxed()
    }
}

/// Any JSON value, small: what an extension field may hold.
pub fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        f64::arb().prop_map(Value::from),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            btree_map(any::<String>(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Zero to two `ext_` fields.
pub fn extensions() -> BoxedStrategy<Extensions> {
    btree_map("ext_[a-z][a-z0-9_]{0,12}", json_value(), 0..3).boxed()
}
