//! The 24 HEH-level message types of D3.1.3 section 5, exchanged between a home energy hub and its
//! controlling entity (an HEH operator or a VPP).
//!
//! Field kinds follow the spec's tables: `null` fields are written as `null` when empty (the spec
//! gives null a meaning), `opt` fields are left out when empty (the spec calls them optional).

use std::collections::BTreeMap;

use serde::Serializer;
use serde::ser::SerializeSeq;
use serde_json::{Value, json};

use crate::field::{Field, FieldError, Segment};
use crate::names::{HehId, Id, Name, SignalName};
use crate::rules::{
    Rules, no_duplicates, non_negative, not_before, not_before_opt, positive, report_length,
};
use crate::time::Time;

// ---------------------------------------------------------------- 5.2 measurements

json_object! {
    /// `get_report` (D3.1.3 5.2.1): request for an individual measurement. Controlling entity → HEH.
    GetReport {
        /// Start of the period to report.
        req from: Time,
        /// End of the period to report.
        req to: Time,
        /// Seconds per value; greater than 0.
        req resolution: f64 = {"exclusiveMinimum": 0},
        /// The `device.signal`s to report (erratum 1: a comma-separated entry is split).
        req signals: Vec<SignalName>,
        /// The HEH the request is about, when a VPP uses an HEH operator's service.
        null heh_id: HehId,
    }
}

impl Rules for GetReport {
    #[cfg(feature = "proptest")]
    fn repair(&mut self) {
        crate::rules::repair::order(&mut self.from, &mut self.to);
        self.resolution = crate::rules::repair::positive(self.resolution);
    }

    fn check_rules(&self) -> Result<(), FieldError> {
        not_before(&self.from, "from", &self.to, "to")?;
        positive(self.resolution, "resolution")
    }
}

json_object! {
    /// `get_periodic_report` (D3.1.3 5.2.2): request for periodic reports; overrides the previous
    /// one. Controlling entity → HEH.
    GetPeriodicReport {
        /// Seconds between reports, or -1 to stop periodic reports.
        req interval: f64 = {"anyOf": [{"const": -1}, {"exclusiveMinimum": 0}]},
        /// Start of the first report's period; null: any time between now and now + interval.
        null first_from: Time,
        /// Seconds per value; greater than 0.
        req resolution: f64 = {"exclusiveMinimum": 0},
        /// The `device.signal`s to report.
        req signals: Vec<SignalName>,
        /// The HEH the request is about, when a VPP uses an HEH operator's service.
        null heh_id: HehId,
        /// The ID of this periodic report request (optional).
        opt request_id: Id,
    }
}

impl GetPeriodicReport {
    /// The `interval` that stops periodic reports.
    pub const DISABLE: f64 = -1.0;

    /// True when this request stops periodic reports.
    pub fn disables(&self) -> bool {
        self.interval == Self::DISABLE
    }
}

impl Rules for GetPeriodicReport {
    #[cfg(feature = "proptest")]
    fn repair(&mut self) {
        self.resolution = crate::rules::repair::positive(self.resolution);
        if self.interval <= 0.0 {
            self.interval = if self.interval < -1.0 {
                Self::DISABLE
            } else {
                crate::rules::repair::positive(self.interval)
            };
        }
    }

    fn check_rules(&self) -> Result<(), FieldError> {
        if !(self.interval == Self::DISABLE || self.interval > 0.0) {
            return Err(FieldError::at(
                "interval",
                format!(
                    "must be -1 (stop) or greater than 0, found {}",
                    self.interval
                ),
            ));
        }
        positive(self.resolution, "resolution")
    }
}

json_object! {
    /// `report` (D3.1.3 5.2.3): measured values of signals, on request or periodically. HEH →
    /// controlling entity.
    Report {
        /// Start of the period covered.
        req from: Time,
        /// End of the period covered.
        req to: Time,
        /// Seconds per value; greater than 0.
        req resolution: f64 = {"exclusiveMinimum": 0},
        /// For each signal, (to - from) / resolution values, rounded up.
        req values: BTreeMap<SignalName, Vec<f64>>,
        /// The HEH the report is about, when an HEH operator reports to a VPP.
        null heh_id: HehId,
    }
}

impl Rules for Report {
    #[cfg(feature = "proptest")]
    fn repair(&mut self) {
        // Whole milliseconds up to a day, so that `to` lands exactly n resolutions after `from`.
        self.resolution = (crate::rules::repair::positive(self.resolution) * 1000.0)
            .round()
            .clamp(1.0, 86_400_000.0)
            / 1000.0;
        let n = self.values.values().next().map_or(0, Vec::len);
        for values in self.values.values_mut() {
            values.resize(n, 0.0);
        }
        let span = time::Duration::seconds_f64(self.resolution * n as f64);
        self.to = self
            .from
            .checked_add(span)
            .expect("a day past 2100 is in range");
    }

    fn check_rules(&self) -> Result<(), FieldError> {
        not_before(&self.from, "from", &self.to, "to")?;
        positive(self.resolution, "resolution")?;
        let expected = report_length(&self.from, &self.to, self.resolution);
        for (signal, values) in &self.values {
            if values.len() as u64 != expected {
                let reason = format!(
                    "{} values; from {} to {} at {} s needs {expected}",
                    values.len(),
                    self.from,
                    self.to,
                    self.resolution
                );
                return Err(
                    FieldError::at(signal.as_str(), reason).within(Segment::Key("values".into()))
                );
            }
        }
        Ok(())
    }
}

json_object! {
    /// `get_energy_events` (D3.1.3 5.2.4): request for energy-related anomalous events in a period.
    /// Controlling entity → HEH.
    GetEnergyEvents {
        /// Start of the period.
        req from: Time,
        /// End of the period.
        req to: Time,
        /// Minimum severity to include.
        req severity: i64,
    }
}

impl Rules for GetEnergyEvents {
    #[cfg(feature = "proptest")]
    fn repair(&mut self) {
        crate::rules::repair::order(&mut self.from, &mut self.to);
    }

    fn check_rules(&self) -> Result<(), FieldError> {
        not_before(&self.from, "from", &self.to, "to")
    }
}

json_object! {
    /// `get_energy_events_realtime` (D3.1.3 5.2.5): report events as they happen. Controlling
    /// entity → HEH.
    GetEnergyEventsRealtime {
        /// Minimum severity to report at once; very high disables real-time reporting.
        req severity: i64,
    }
}

impl Rules for GetEnergyEventsRealtime {}

nested_object! {
    /// One event of an `energy_events` message (the spec's table is shifted by a row, erratum 3:
    /// this follows the field names).
    EnergyEvent {
        /// Higher is more severe.
        req severity: i64,
        /// `voltage_low`, `voltage_high`, `frequency_low`, `frequency_high`, or a later addition.
        req r#type("type"): Name,
        /// When the event started.
        req start_time: Time,
        /// When it ended; null while it lasts.
        null end_time: Time,
    }
}

impl Rules for EnergyEvent {
    #[cfg(feature = "proptest")]
    fn repair(&mut self) {
        if let Some(end) = &mut self.end_time {
            crate::rules::repair::order(&mut self.start_time, end);
        }
    }

    fn check_rules(&self) -> Result<(), FieldError> {
        not_before_opt(
            Some(&self.start_time),
            "start_time",
            self.end_time.as_ref(),
            "end_time",
        )
    }
}

json_object! {
    /// `energy_events` (D3.1.3 5.2.6): energy-related events, on severe events or on request. HEH →
    /// controlling entity.
    EnergyEvents {
        /// The events.
        req events: Vec<EnergyEvent>,
    }
}

impl Rules for EnergyEvents {}

// ---------------------------------------------------------------- 5.3 activations and prices

json_object! {
    /// `activate` (D3.1.3 5.3.1): an activation order. Controlling entity → HEH. `id` and
    /// `modification_count` together identify it; a higher count modifies an accepted activation.
    Activate {
        /// Unique ID of the activation order, assigned by the VPP.
        req id: Id,
        /// Increased each time a modified activation is sent.
        req modification_count: u32,
        /// Start.
        req from: Time,
        /// End.
        req to: Time,
        /// kW; positive to increase generation or decrease load, negative for the reverse.
        req quantity: f64,
        /// Device ID; null for any/total.
        null device: Name,
        /// The HEH the order is for, when a VPP uses an HEH operator's service.
        null heh_id: HehId,
    }
}

impl Rules for Activate {
    #[cfg(feature = "proptest")]
    fn repair(&mut self) {
        crate::rules::repair::order(&mut self.from, &mut self.to);
    }

    fn check_rules(&self) -> Result<(), FieldError> {
        not_before(&self.from, "from", &self.to, "to")
    }
}

json_object! {
    /// `accept_activation` (D3.1.3 5.3.2): activation accepted. HEH → controlling entity.
    AcceptActivation {
        /// The ID of the accepted activation.
        req id: Id,
        /// Its modification count.
        req modification_count: u32,
    }
}

impl Rules for AcceptActivation {}

json_object! {
    /// `reject_activation` (D3.1.3 5.3.3): activation rejected; rejecting a modification keeps the
    /// previously accepted version. HEH → controlling entity.
    RejectActivation {
        /// The ID of the rejected activation.
        req id: Id,
        /// Its modification count.
        req modification_count: u32,
    }
}

impl Rules for RejectActivation {}

json_object! {
    /// `modify_activation` (D3.1.3 5.3.4): a counter-proposal; implies rejection of the original.
    /// HEH → controlling entity. All fields are present, changed or not.
    ModifyActivation {
        /// The ID of the activation.
        req id: Id,
        /// Its modification count.
        req modification_count: u32,
        /// Proposed start.
        req from: Time,
        /// Proposed end.
        req to: Time,
        /// Proposed kW (erratum 2: the spec's example writes it as a string; read, never written so).
        req quantity: f64,
        /// Device ID; null for any/total.
        null device: Name,
    }
}

impl Rules for ModifyActivation {
    #[cfg(feature = "proptest")]
    fn repair(&mut self) {
        crate::rules::repair::order(&mut self.from, &mut self.to);
    }

    fn check_rules(&self) -> Result<(), FieldError> {
        not_before(&self.from, "from", &self.to, "to")
    }
}

json_object! {
    /// `get_activation_capacity` (D3.1.3 5.3.5): request for the capacity available now.
    /// Controlling entity → HEH.
    GetActivationCapacity {
        /// The device to report for; null for the HEH's total.
        null device: Name,
        /// The HEH the request is about, when a VPP uses an HEH operator's service.
        null heh_id: HehId,
    }
}

impl Rules for GetActivationCapacity {}

json_object! {
    /// `activation_capacity` (D3.1.3 5.3.6): answer to `get_activation_capacity`. HEH →
    /// controlling entity.
    ActivationCapacity {
        /// The device reported for; null for the HEH's total.
        null device: Name,
        /// kW available for increasing production / decreasing load; not negative.
        req pos_capacity: f64 = {"minimum": 0},
        /// kW available for decreasing production / increasing load; not negative.
        req neg_capacity: f64 = {"minimum": 0},
        /// The HEH the answer is about, when an HEH operator answers a VPP.
        null heh_id: HehId,
    }
}

impl Rules for ActivationCapacity {
    #[cfg(feature = "proptest")]
    fn repair(&mut self) {
        self.pos_capacity = self.pos_capacity.abs();
        self.neg_capacity = self.neg_capacity.abs();
    }

    fn check_rules(&self) -> Result<(), FieldError> {
        non_negative(self.pos_capacity, "pos_capacity")?;
        non_negative(self.neg_capacity, "neg_capacity")
    }
}

json_object! {
    /// `contingency_activate` (D3.1.3 5.3.7): activate as much as possible up to `max_quantity`;
    /// not acknowledged. Controlling entity → HEH.
    ContingencyActivate {
        /// Unique ID.
        req id: Id,
        /// Start; a past time means as soon as possible.
        req from: Time,
        /// End.
        req to: Time,
        /// kW at most; null for no limit.
        null max_quantity: f64,
        /// The HEH the order is for (erratum 4: the example has none, the heh_id text applies);
        /// left out when not set.
        opt heh_id: HehId,
    }
}

impl Rules for ContingencyActivate {
    #[cfg(feature = "proptest")]
    fn repair(&mut self) {
        crate::rules::repair::order(&mut self.from, &mut self.to);
    }

    fn check_rules(&self) -> Result<(), FieldError> {
        not_before(&self.from, "from", &self.to, "to")
    }
}

json_object! {
    /// `contingency_end` (D3.1.3 5.3.8): when a contingency activation ends. Controlling entity →
    /// HEH.
    ContingencyEnd {
        /// The contingency activation being ended.
        req id: Id,
        /// When to end; a past time ends it at once.
        req end: Time,
        /// The HEH the order is for (erratum 4); left out when not set.
        opt heh_id: HehId,
    }
}

impl Rules for ContingencyEnd {}

json_object! {
    /// `load_price` (D3.1.3 5.3.9): the price at which the end user buys energy. Controlling
    /// entity → HEH.
    LoadPrice {
        /// Start of validity.
        req from: Time,
        /// End of validity.
        req to: Time,
        /// €/kWh.
        req price: f64,
    }
}

impl Rules for LoadPrice {
    #[cfg(feature = "proptest")]
    fn repair(&mut self) {
        crate::rules::repair::order(&mut self.from, &mut self.to);
    }

    fn check_rules(&self) -> Result<(), FieldError> {
        not_before(&self.from, "from", &self.to, "to")
    }
}

json_object! {
    /// `generation_price` (D3.1.3 5.3.10): the price at which the end user sells energy from a
    /// generator. Controlling entity → HEH.
    GenerationPrice {
        /// Start of validity.
        req from: Time,
        /// End of validity.
        req to: Time,
        /// €/kWh.
        req price: f64,
        /// The generator the price is for.
        req device: Name,
    }
}

impl Rules for GenerationPrice {
    #[cfg(feature = "proptest")]
    fn repair(&mut self) {
        crate::rules::repair::order(&mut self.from, &mut self.to);
    }

    fn check_rules(&self) -> Result<(), FieldError> {
        not_before(&self.from, "from", &self.to, "to")
    }
}

json_object! {
    /// `get_all_prices` (D3.1.3 5.3.11): request for all pricing information, sent by an HEH on
    /// first boot. HEH → controlling entity.
    GetAllPrices {}
}

impl Rules for GetAllPrices {}

// ---------------------------------------------------------------- 5.4 other

json_object! {
    /// `get_status_report` (D3.1.3 5.4.1): request for the current status and the events of a
    /// period. Controlling entity → HEH.
    GetStatusReport {
        /// Start of the period.
        req from: Time,
        /// End of the period.
        req to: Time,
        /// Events of this and higher severity are reported.
        req severity_threshold: i64,
    }
}

impl Rules for GetStatusReport {
    #[cfg(feature = "proptest")]
    fn repair(&mut self) {
        crate::rules::repair::order(&mut self.from, &mut self.to);
    }

    fn check_rules(&self) -> Result<(), FieldError> {
        not_before(&self.from, "from", &self.to, "to")
    }
}

nested_object! {
    /// One event of a `status_report`.
    StatusEvent {
        /// When it happened.
        req time: Time,
        /// Higher is more severe.
        req severity: i64,
        /// What happened, e.g. `network_down`.
        req r#type("type"): Name,
    }
}

impl Rules for StatusEvent {}

json_object! {
    /// `status_report` (D3.1.3 5.4.2): status, on request or on the most severe events. HEH →
    /// controlling entity.
    StatusReport {
        /// Free-form status, e.g. `OK`.
        req status: String,
        /// The HEH's clock, to check it is in sync.
        req clock: Time,
        /// Events of the period asked for.
        req events: Vec<StatusEvent>,
    }
}

impl Rules for StatusReport {}

json_object! {
    /// `set_clock` (D3.1.3 5.4.3): correct the HEH's clock. Controlling entity → HEH.
    SetClock {
        /// Seconds to add to the clock; null: re-sync by default means (NTP).
        null offset: f64,
    }
}

impl Rules for SetClock {}

string_enum! {
    /// The modes of `set_smart_mode`.
    SmartMode {
        /// Normal operation.
        Normal = "normal",
        /// All activations cancelled, every message but `set_smart_mode` ignored, logging on.
        Passive = "passive",
        /// Physical shutdown; needs a person to return to normal.
        Off = "off",
    }
}

json_object! {
    /// `set_smart_mode` (D3.1.3 5.4.4): switch the HEH between smart and non-smart operation.
    /// Controlling entity → HEH.
    SetSmartMode {
        /// `normal`, `passive` or `off`.
        req mode: SmartMode,
        /// Also forget activations, prices etc. and reboot; ignored when `mode` is `off`.
        req reset: bool,
    }
}

impl Rules for SetSmartMode {}

json_object! {
    /// `get_capabilities` (D3.1.3 5.4.5): request for the HEH's or a device's capabilities.
    /// Controlling entity → HEH.
    GetCapabilities {
        /// Device ID; null for the HEH itself.
        null device: Name,
    }
}

impl Rules for GetCapabilities {}

json_object! {
    /// `capabilities` (D3.1.3 5.4.6): the HEH's capabilities; sent on every boot, which tells the
    /// VPP the HEH is online (D3.1.3 7.1). HEH → controlling entity.
    Capabilities {
        /// e.g. "eBADGE Home Energy Hub".
        req device_name: String,
        /// e.g. "1.0".
        req device_version: String,
        /// Serial number (optional).
        opt device_sn: String,
        /// IP address (optional).
        opt device_ip: String,
        /// MAC address (optional).
        opt device_mac: String,
        /// The device IDs the HEH knows, possibly including `total`.
        req devices: Vec<Name> = {"uniqueItems": true},
    }
}

impl Rules for Capabilities {
    #[cfg(feature = "proptest")]
    fn repair(&mut self) {
        crate::rules::repair::dedupe(&mut self.devices);
    }

    fn check_rules(&self) -> Result<(), FieldError> {
        no_duplicates(&self.devices, "devices")
    }
}

string_enum! {
    /// What a device can be (`device_capabilities.classes`).
    DeviceClass {
        /// Uses energy.
        Consumer = "consumer",
        /// Produces energy.
        Generator = "generator",
        /// Stores energy.
        Storage = "storage",
    }
}

/// The optional `[min, max]` range of a signal.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    /// Lowest possible value.
    pub min: f64,
    /// Highest possible value.
    pub max: f64,
}

impl Field for Range {
    fn from_json(value: Value) -> Result<Self, FieldError> {
        let items = <Vec<f64>>::from_json(value)?;
        let [min, max] = items[..] else {
            return Err(FieldError::here(format!(
                "expected [min, max], found {} numbers",
                items.len()
            )));
        };
        let range = Range { min, max };
        range.check()?;
        Ok(range)
    }

    fn write<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(2))?;
        seq.serialize_element(&crate::field::AsJson(&self.min))?;
        seq.serialize_element(&crate::field::AsJson(&self.max))?;
        seq.end()
    }

    fn check(&self) -> Result<(), FieldError> {
        self.min.check()?;
        self.max.check()?;
        if self.min > self.max {
            return Err(FieldError::here(format!(
                "min {} is above max {}",
                self.min, self.max
            )));
        }
        Ok(())
    }

    fn schema() -> Value {
        json!({"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2})
    }
}

nested_object! {
    /// A signal a device can measure (`device_capabilities.signals`).
    SignalInfo {
        /// Signal name, e.g. `p`.
        req name: Name,
        /// Human-readable meaning.
        req desc: String,
        /// The unit every value is reported in (SHOULD be kW/kVA/kWh/A/V/Hz for electricity).
        req unit: String,
        /// Possible range of values (optional).
        opt range: Range,
    }
}

impl Rules for SignalInfo {}

json_object! {
    /// `device_capabilities` (D3.1.3 5.4.7): a device's capabilities and signals. HEH →
    /// controlling entity.
    DeviceCapabilities {
        /// Device ID.
        req device: Name,
        /// A subset (possibly empty) of consumer, generator, storage.
        req classes: Vec<DeviceClass> = {"uniqueItems": true},
        /// Hierarchical type, e.g. `car/electric`.
        req r#type("type"): String,
        /// Descriptive name.
        req device_name: String,
        /// Version.
        req version: String,
        /// What the device can measure.
        req signals: Vec<SignalInfo>,
        /// It can predict its profile.
        req can_predict_profile: bool,
        /// It can predict its curtailment capacity.
        req can_predict_curtailment_capacity: bool,
    }
}

impl Rules for DeviceCapabilities {
    #[cfg(feature = "proptest")]
    fn repair(&mut self) {
        crate::rules::repair::dedupe(&mut self.classes);
        let mut seen = Vec::new();
        self.signals.retain(|s| {
            if seen.contains(&s.name) {
                false
            } else {
                seen.push(s.name.clone());
                true
            }
        });
    }

    fn check_rules(&self) -> Result<(), FieldError> {
        no_duplicates(&self.classes, "classes")?;
        let names: Vec<&Name> = self.signals.iter().map(|s| &s.name).collect();
        no_duplicates(&names, "signals")
    }
}

#[cfg(feature = "proptest")]
mod arb {
    use super::{DeviceClass, Range, SmartMode};
    use crate::arb::Arb;
    use proptest::prelude::*;

    impl Arb for SmartMode {
        fn arb() -> BoxedStrategy<Self> {
            proptest::sample::select(SmartMode::ALL).boxed()
        }
    }

    impl Arb for DeviceClass {
        fn arb() -> BoxedStrategy<Self> {
            proptest::sample::select(DeviceClass::ALL).boxed()
        }
    }

    impl Arb for Range {
        fn arb() -> BoxedStrategy<Self> {
            (f64::arb(), f64::arb())
                .prop_map(|(a, b)| Range {
                    min: a.min(b),
                    max: a.max(b),
                })
                .boxed()
        }
    }
}
