//! A simulated HEH: devices with signals, synthetic but plausible load profiles, and answers to
//! every request a controlling entity may send (D3.1.3 section 5), by a configurable policy.

use ebadge_bus::{Client, EntityName, Handled, Handler, Incoming};
use ebadge_model::rules::report_length;
use ebadge_model::*;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// How the HEH answers an activation it cannot fully serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Refuse orders above capacity.
    Reject,
    /// Counter-propose the capacity (`modify_activation`).
    Modify,
}

/// What a simulated HEH is.
#[derive(Debug, Clone)]
pub struct HehSpec {
    /// Its entity name.
    pub name: EntityName,
    /// The entity that controls it (VPP or operator): announcements go there.
    pub controller: EntityName,
    /// Flexible capacity in kW, reported and used to answer activations.
    pub capacity_kw: f64,
    /// Above capacity: reject or counter-propose.
    pub policy: Policy,
}

/// The devices every simulated HEH has: a heat pump, a PV inverter and the meter (`total`).
pub const DEVICES: [(&str, DeviceClass, &str); 3] = [
    ("total", DeviceClass::Consumer, "meter"),
    ("HeatPump01", DeviceClass::Consumer, "heat_pump"),
    ("PV01", DeviceClass::Generator, "pv_inverter"),
];

/// A simulated HEH, as a message handler.
pub struct SimHeh {
    spec: HehSpec,
    mode: SmartMode,
    clock_offset_s: f64,
    last_price: Option<f64>,
    periodic: HashMap<String, tokio::task::JoinHandle<()>>,
}

impl SimHeh {
    /// A new HEH in normal mode.
    pub fn new(spec: HehSpec) -> Self {
        Self {
            spec,
            mode: SmartMode::Normal,
            clock_offset_s: 0.0,
            last_price: None,
            periodic: HashMap::new(),
        }
    }

    /// Its mode (`set_smart_mode`).
    pub fn mode(&self) -> SmartMode {
        self.mode
    }

    /// The `capabilities` and `device_capabilities` an HEH sends at start (D3.1.3 7.1).
    pub fn announcements(&self) -> Vec<Message> {
        let name = |s: &str| Name::new(s).expect("device names follow the rule");
        let mut out = vec![Message::Capabilities(Capabilities {
            device_name: "eBADGE simulated HEH".into(),
            device_version: env!("CARGO_PKG_VERSION").into(),
            device_sn: Some(self.spec.name.to_string()),
            device_ip: None,
            device_mac: None,
            devices: DEVICES.iter().map(|(d, _, _)| name(d)).collect(),
            ext: Extensions::new(),
        })];
        for (device, class, kind) in DEVICES {
            let signal = |s: &str, desc: &str, unit: &str| SignalInfo {
                name: name(s),
                desc: desc.into(),
                unit: unit.into(),
                range: None,
                ext: Extensions::new(),
            };
            out.push(Message::DeviceCapabilities(DeviceCapabilities {
                device: name(device),
                classes: vec![class],
                r#type: kind.into(),
                device_name: format!("simulated {kind}"),
                version: "1".into(),
                signals: vec![
                    signal("p", "active power", "kW"),
                    signal("q", "reactive power", "kvar"),
                ],
                can_predict_profile: false,
                can_predict_curtailment_capacity: true,
                ext: Extensions::new(),
            }));
        }
        out
    }

    /// Sends the announcements to the controller.
    pub fn announce(&self, client: &Client) -> Result<(), ebadge_bus::SendError> {
        for m in self.announcements() {
            client.send(&self.spec.controller, &m)?;
        }
        Ok(())
    }

    fn now(&self) -> Time {
        let now = Time::now();
        Time::from_datetime(now.datetime() + time::Duration::seconds_f64(self.clock_offset_s))
    }
}

/// Synthetic values of `signal` over `n` periods of `resolution` s from `from`: a daily curve
/// with noise, negative for the PV generator.
pub fn profile(signal: &SignalName, from: &Time, resolution: f64, n: usize) -> Vec<f64> {
    let start = from.unix_nanos() as f64 / 1e9;
    let seed = signal.as_str().bytes().map(f64::from).sum::<f64>();
    (0..n)
        .map(|i| {
            let t = start + i as f64 * resolution;
            let day = (t / 86_400.0 * std::f64::consts::TAU).sin();
            let base = if signal.as_str().starts_with("PV01") {
                -(day.max(0.0) * 4.0)
            } else {
                1.2 + 0.8 * day + (seed % 7.0) / 10.0
            };
            ((base + (fastrand::f64() - 0.5) * 0.1) * 100.0).round() / 100.0
        })
        .collect()
}

/// A report of `signals` over `from..to`.
pub fn report(
    from: Time,
    to: Time,
    resolution: f64,
    signals: &[SignalName],
    heh_id: Option<HehId>,
) -> Report {
    let n = report_length(&from, &to, resolution) as usize;
    let values: BTreeMap<SignalName, Vec<f64>> = signals
        .iter()
        .map(|s| (s.clone(), profile(s, &from, resolution, n)))
        .collect();
    Report {
        from,
        to,
        resolution,
        values,
        heh_id,
        ext: Extensions::new(),
    }
}

impl Handler for SimHeh {
    async fn on_set_smart_mode(&mut self, _: &Client, _: &Incoming, m: &SetSmartMode) -> Handled {
        self.mode = m.mode;
        if m.mode != SmartMode::Normal {
            for (_, task) in self.periodic.drain() {
                task.abort();
            }
        }
        Handled::Yes
    }

    async fn on_get_report(
        &mut self,
        client: &Client,
        incoming: &Incoming,
        m: &GetReport,
    ) -> Handled {
        if self.mode == SmartMode::Normal {
            let r = report(m.from, m.to, m.resolution, &m.signals, m.heh_id.clone());
            let _ = client.send(&incoming.from, &Message::Report(r));
        }
        Handled::Yes
    }

    async fn on_get_periodic_report(
        &mut self,
        client: &Client,
        incoming: &Incoming,
        m: &GetPeriodicReport,
    ) -> Handled {
        if self.mode != SmartMode::Normal {
            return Handled::Yes;
        }
        let key = m
            .request_id
            .as_ref()
            .map(|i| i.as_str().to_owned())
            .unwrap_or_default();
        if let Some(task) = self.periodic.remove(&key) {
            task.abort();
        }
        if m.disables() {
            return Handled::Yes;
        }
        let (client, to, request) = (client.clone(), incoming.from.clone(), m.clone());
        let interval = Duration::from_secs_f64(m.interval);
        self.periodic.insert(
            key,
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(interval);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let end = Time::now();
                    let start = Time::from_datetime(
                        end.datetime() - time::Duration::seconds_f64(request.interval),
                    );
                    let r = report(
                        start,
                        end,
                        request.resolution,
                        &request.signals,
                        request.heh_id.clone(),
                    );
                    if client.send(&to, &Message::Report(r)).is_err() {
                        return;
                    }
                }
            }),
        );
        Handled::Yes
    }

    async fn on_activate(
        &mut self,
        client: &Client,
        incoming: &Incoming,
        order: &Activate,
    ) -> Handled {
        if self.mode != SmartMode::Normal {
            return Handled::Yes;
        }
        let answer = if order.quantity.abs() <= self.spec.capacity_kw {
            Message::AcceptActivation(order.accept())
        } else {
            match self.spec.policy {
                Policy::Reject => Message::RejectActivation(order.reject()),
                Policy::Modify => Message::ModifyActivation(order.counter_proposal(
                    order.from,
                    order.to,
                    self.spec.capacity_kw.copysign(order.quantity),
                )),
            }
        };
        let _ = client.send(&incoming.from, &answer);
        Handled::Yes
    }

    async fn on_get_activation_capacity(
        &mut self,
        client: &Client,
        incoming: &Incoming,
        m: &GetActivationCapacity,
    ) -> Handled {
        if self.mode == SmartMode::Normal {
            let answer = ActivationCapacity {
                device: m.device.clone(),
                pos_capacity: self.spec.capacity_kw,
                neg_capacity: self.spec.capacity_kw / 2.0,
                heh_id: m.heh_id.clone(),
                ext: Extensions::new(),
            };
            let _ = client.send(&incoming.from, &Message::ActivationCapacity(answer));
        }
        Handled::Yes
    }

    async fn on_get_status_report(
        &mut self,
        client: &Client,
        incoming: &Incoming,
        _: &GetStatusReport,
    ) -> Handled {
        if self.mode == SmartMode::Normal {
            let answer = StatusReport {
                status: "ok".into(),
                clock: self.now(),
                events: Vec::new(),
                ext: Extensions::new(),
            };
            let _ = client.send(&incoming.from, &Message::StatusReport(answer));
        }
        Handled::Yes
    }

    async fn on_set_clock(&mut self, _: &Client, _: &Incoming, m: &SetClock) -> Handled {
        if self.mode == SmartMode::Normal {
            self.clock_offset_s = m.offset.unwrap_or(0.0);
        }
        Handled::Yes
    }

    async fn on_load_price(&mut self, _: &Client, _: &Incoming, m: &LoadPrice) -> Handled {
        if self.mode == SmartMode::Normal {
            self.last_price = Some(m.price);
        }
        Handled::Yes
    }

    async fn on_get_capabilities(
        &mut self,
        client: &Client,
        _: &Incoming,
        _: &GetCapabilities,
    ) -> Handled {
        if self.mode == SmartMode::Normal {
            let _ = self.announce(client);
        }
        Handled::Yes
    }

    async fn on_get_energy_events(
        &mut self,
        client: &Client,
        incoming: &Incoming,
        _: &GetEnergyEvents,
    ) -> Handled {
        if self.mode == SmartMode::Normal {
            let answer = EnergyEvents {
                events: Vec::new(),
                ext: Extensions::new(),
            };
            let _ = client.send(&incoming.from, &Message::EnergyEvents(answer));
        }
        Handled::Yes
    }
}
