//! The one macro that turns a field table of D3.1.3 into a Rust type with its decoder, encoder,
//! checks and JSON Schema, so that the four can never disagree.
//!
//! Each field is declared with one of three kinds:
//! - `req`: must be present and not null; type `T`.
//! - `null`: may be null (the spec gives null a meaning, e.g. `heh_id`, `device`); type `Option<T>`;
//!   always written, as `null` when `None`.
//! - `opt`: may be left out (the spec calls it optional, e.g. `device_sn`, `range`); type
//!   `Option<T>`; written only when `Some`.
//!
//! Decoding reads absent and `null` alike for both optional kinds, so a peer that writes `null`
//! for an `opt` field or leaves out a `null` field is understood.
//!
//! A field may end in `= { ... }`: JSON Schema keywords that state, for the schema, a range rule
//! the type's `Rules` impl checks (e.g. `resolution: f64 = {"exclusiveMinimum": 0}`).

/// The Rust type of a field of the given kind.
macro_rules! field_type {
    (req $t:ty) => { $t };
    (null $t:ty) => { Option<$t> };
    (opt $t:ty) => { Option<$t> };
}

/// The JSON name of a field: the Rust name unless one is given (`r#type` is `"type"`).
macro_rules! json_name {
    ($f:ident) => {
        stringify!($f)
    };
    ($f:ident $j:literal) => {
        $j
    };
}

macro_rules! read_field {
    (req $r:ident $name:expr) => {
        $r.required($name)?
    };
    (null $r:ident $name:expr) => {
        $r.optional($name)?
    };
    (opt $r:ident $name:expr) => {
        $r.optional($name)?
    };
}

macro_rules! write_field {
    (req $m:ident $name:expr, $v:expr) => {
        $m.serialize_entry($name, &$crate::field::AsJson($v))?
    };
    (null $m:ident $name:expr, $v:expr) => {
        match $v {
            Some(v) => $m.serialize_entry($name, &$crate::field::AsJson(v))?,
            None => $m.serialize_entry($name, &())?,
        }
    };
    (opt $m:ident $name:expr, $v:expr) => {
        if let Some(v) = $v {
            $m.serialize_entry($name, &$crate::field::AsJson(v))?
        }
    };
}

macro_rules! check_field {
    (req $name:expr, $v:expr) => {
        $crate::field::Field::check($v).map_err(|e| e.within($crate::field::Segment::Key($name.to_owned())))?
    };
    (null $name:expr, $v:expr) => {
        if let Some(v) = $v {
            $crate::field::Field::check(v).map_err(|e| e.within($crate::field::Segment::Key($name.to_owned())))?
        }
    };
    (opt $name:expr, $v:expr) => {
        check_field!(null $name, $v)
    };
}

macro_rules! field_schema {
    (req $t:ty) => {
        <$t as $crate::field::Field>::schema()
    };
    (null $t:ty) => {
        serde_json::json!({"anyOf": [<$t as $crate::field::Field>::schema(), {"type": "null"}]})
    };
    (opt $t:ty) => {
        field_schema!(null $t)
    };
}

macro_rules! is_required {
    (req) => {
        true
    };
    (null) => {
        false
    };
    (opt) => {
        false
    };
}

#[cfg(feature = "proptest")]
macro_rules! arb_field {
    (req $t:ty) => {
        <$t as $crate::arb::Arb>::arb()
    };
    (null $t:ty) => {
        proptest::option::of(<$t as $crate::arb::Arb>::arb())
    };
    (opt $t:ty) => {
        proptest::option::of(<$t as $crate::arb::Arb>::arb())
    };
}

/// Declares a JSON object type (a message body or a nested object) from its field table.
macro_rules! json_object {
    (
        $(#[$meta:meta])*
        $name:ident {
            $( $(#[$fmeta:meta])* $kind:ident $field:ident $(($json:literal))? : $ty:ty $(= $extra:tt)? ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: field_type!($kind $ty), )*
            /// Extension fields (`ext_…`, D3.1.3 4.2.5), kept and re-encoded untouched.
            pub ext: $crate::field::Extensions,
        }

        impl $name {
            /// The JSON names of the core fields, in the order of the spec's field table.
            pub const FIELDS: &'static [&'static str] = &[ $( json_name!($field $($json)?) ),* ];

            /// The field table as data, for code generated in other languages (the Python classes).
            pub const TABLE: $crate::describe::Table = $crate::describe::Table {
                name: stringify!($name),
                doc: stringify!($(#[$meta])*),
                fields: &[ $( $crate::describe::FieldInfo {
                    json: json_name!($field $($json)?),
                    kind: stringify!($kind),
                    ty: stringify!($ty),
                    doc: stringify!($(#[$fmeta])*),
                }, )* ],
            };

            /// Reads the core fields and the extensions from `r`, then checks the type's rules.
            #[allow(unused_mut)] // a type without fields (get_all_prices) reads nothing
            pub(crate) fn read(mut r: $crate::field::ObjectReader) -> Result<Self, $crate::field::FieldError> {
                let mut value = Self {
                    $( $field: read_field!($kind r json_name!($field $($json)?)), )*
                    ext: $crate::field::Extensions::new(),
                };
                value.ext = r.finish()?;
                $crate::rules::Rules::check_rules(&value)?;
                Ok(value)
            }

            /// Writes the core fields, then the extensions.
            pub(crate) fn write_fields<M: serde::ser::SerializeMap>(&self, map: &mut M) -> Result<(), M::Error> {
                $( write_field!($kind map json_name!($field $($json)?), &self.$field); )*
                $crate::field::write_extensions(map, &self.ext)
            }

            /// Adds an extension field (`ext_<domain>_<name>`, D3.1.3 4.2.5).
            pub fn with_extension(mut self, name: &str, value: serde_json::Value) -> Result<Self, $crate::field::FieldError> {
                if !$crate::names::is_extension_name(name) {
                    return Err($crate::field::FieldError::at(name, "extension fields are named ext_<domain>_<name>, [A-Za-z0-9_] only"));
                }
                self.ext.insert(name.to_owned(), value);
                Ok(self)
            }

            /// Checks a value built in Rust against every rule the decoder applies.
            pub fn validate(&self) -> Result<(), $crate::field::FieldError> {
                $( check_field!($kind json_name!($field $($json)?), &self.$field); )*
                $crate::field::check_extensions(&self.ext)?;
                $crate::rules::Rules::check_rules(self)
            }

            /// The JSON Schema properties and required list of the core fields.
            #[allow(unused_mut)]
            pub(crate) fn schema_parts() -> (serde_json::Map<String, serde_json::Value>, Vec<&'static str>) {
                let mut properties = serde_json::Map::new();
                let mut required = Vec::new();
                $(
                    #[allow(unused_mut)]
                    let mut schema = field_schema!($kind $ty);
                    $( $crate::schema::refine(&mut schema, serde_json::json!($extra)); )?
                    properties.insert(json_name!($field $($json)?).to_owned(), schema);
                    if is_required!($kind) {
                        required.push(json_name!($field $($json)?));
                    }
                )*
                (properties, required)
            }
        }

        #[cfg(feature = "proptest")]
        impl $crate::arb::Arb for $name {
            fn arb() -> proptest::strategy::BoxedStrategy<Self> {
                use proptest::strategy::Strategy;
                ( $( arb_field!($kind $ty), )* $crate::arb::extensions(), )
                    .prop_map(|( $( $field, )* ext, )| {
                        let mut value = Self { $( $field, )* ext };
                        $crate::rules::Rules::repair(&mut value);
                        value
                    })
                    .boxed()
            }
        }
    };
}

/// Declares a nested object type (product, event, signal description): a [`json_object!`] that is
/// also a [`Field`](crate::field::Field).
macro_rules! nested_object {
    ($(#[$meta:meta])* $name:ident { $($body:tt)* }) => {
        json_object! { $(#[$meta])* $name { $($body)* } }

        impl $crate::field::Field for $name {
            fn from_json(value: serde_json::Value) -> Result<Self, $crate::field::FieldError> {
                Self::read($crate::field::ObjectReader::new(value)?)
            }

            fn write<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                use serde::ser::SerializeMap;
                let mut map = serializer.serialize_map(None)?;
                self.write_fields(&mut map)?;
                map.end()
            }

            fn check(&self) -> Result<(), $crate::field::FieldError> {
                self.validate()
            }

            fn schema() -> serde_json::Value {
                $crate::schema::object_schema(None, Self::schema_parts())
            }
        }
    };
}

/// Declares a closed set of string values as a Rust enum that is a [`Field`](crate::field::Field).
macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $( $(#[$vmeta:meta])* $variant:ident = $text:literal ),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every value, in the spec's order.
            pub const ALL: &'static [$name] = &[ $( $name::$variant ),+ ];

            /// The value as written in JSON.
            pub fn as_str(self) -> &'static str {
                match self { $( $name::$variant => $text, )+ }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::field::FieldError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $( $text => Ok($name::$variant), )+
                    other => Err($crate::field::FieldError::here(format!(
                        "{other:?} is not one of {}",
                        [$( $text ),+].join(", ")
                    ))),
                }
            }
        }

        impl $crate::field::Field for $name {
            fn from_json(value: serde_json::Value) -> Result<Self, $crate::field::FieldError> {
                match value {
                    serde_json::Value::String(s) => s.parse(),
                    other => Err($crate::field::wrong_type("a string", &other)),
                }
            }
            fn write<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
            fn schema() -> serde_json::Value {
                serde_json::json!({"type": "string", "enum": [$( $text ),+]})
            }
        }
    };
}

/// Calls the macro `$callback` with the one list of the 33 core message types, in the order of
/// D3.1.3, as `Level Variant "name",` triples. The data model generates its enums from it; other
/// crates generate per-type code (the client's handler trait) from the same list.
///
/// ```
/// macro_rules! count {
///     ($( $level:ident $variant:ident $name:literal ),+ $(,)?) => { [$( $name ),+].len() };
/// }
/// assert_eq!(ebadge_model::for_each_message_type!(count), 33);
/// ```
#[macro_export]
macro_rules! for_each_message_type {
    ($callback:ident) => {
        $callback! {
        Heh GetReport "get_report",
        Heh GetPeriodicReport "get_periodic_report",
        Heh Report "report",
        Heh GetEnergyEvents "get_energy_events",
        Heh GetEnergyEventsRealtime "get_energy_events_realtime",
        Heh EnergyEvents "energy_events",
        Heh Activate "activate",
        Heh AcceptActivation "accept_activation",
        Heh RejectActivation "reject_activation",
        Heh ModifyActivation "modify_activation",
        Heh GetActivationCapacity "get_activation_capacity",
        Heh ActivationCapacity "activation_capacity",
        Heh ContingencyActivate "contingency_activate",
        Heh ContingencyEnd "contingency_end",
        Heh LoadPrice "load_price",
        Heh GenerationPrice "generation_price",
        Heh GetAllPrices "get_all_prices",
        Heh GetStatusReport "get_status_report",
        Heh StatusReport "status_report",
        Heh SetClock "set_clock",
        Heh SetSmartMode "set_smart_mode",
        Heh GetCapabilities "get_capabilities",
        Heh Capabilities "capabilities",
        Heh DeviceCapabilities "device_capabilities",
        Market BalancingReserveBid "balancing_reserve_bid",
        Market Response "response",
        Market BidAccepted "bid_accepted",
        Market MarketCleared "market_cleared",
        Market BalancingEnergyBid "balancing_energy_bid",
        Market ActivateBid "activate_bid",
        Market RequestBalancing "request_balancing",
        Market BalancingActivated "balancing_activated",
        Market BalancingUnachievable "balancing_unachievable",
        }
    };
}
