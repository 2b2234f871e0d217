//! A simulated HEH: devices with signals, synthetic but plausible load profiles, and answers to
//! every request a controlling entity may send (D3.1.3 section 5), by a configurable policy.

use ebadge_bus::{Client, EntityName};
use ebadge_model::rules::report_length;
use ebadge_model::*;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;
use tokio::sync::mpsc;

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

/// Where a simulated HEH's messages go: answers to the entity that asked, announcements and
/// periodic reports to its controller.
#[derive(Clone)]
pub enum Outlet {
    /// Straight on the bus, through the HEH's own client, to `to`.
    Bus {
        /// The HEH's client.
        client: Client,
        /// Who gets the message.
        to: EntityName,
    },
    /// To an HEH agent ([`SimDevice`]), which sends them to its controller.
    Agent(mpsc::UnboundedSender<Message>),
}

impl Outlet {
    /// Hands `message` on; `false` once nobody takes messages any more.
    fn send(&self, message: Message) -> bool {
        match self {
            Outlet::Bus { client, to } => client.send(to, &message).is_ok(),
            Outlet::Agent(agent) => agent.send(message).is_ok(),
        }
    }
}

impl SimHeh {
    /// Serves `client`'s inbox until it closes: each message is answered to its sender, then
    /// acknowledged.
    pub async fn serve(mut self, client: &Client) {
        let Some(mut inbox) = client.inbox() else {
            tracing::error!("a simulated HEH needs the client's inbox, which was taken already");
            return;
        };
        while let Some(incoming) = inbox.next().await {
            let reply = Outlet::Bus {
                client: client.clone(),
                to: incoming.from.clone(),
            };
            if !self.handle(&incoming.message, &reply) {
                tracing::info!(msg = incoming.message.type_name(), from = %incoming.from, "a simulated HEH does not take this message type");
            }
            incoming.ack();
        }
    }

    /// Does what the HEH does on `message`, answering through `reply`. `false` for a message
    /// an HEH does not take (market messages, answers, extensions).
    pub fn handle(&mut self, message: &Message, reply: &Outlet) -> bool {
        let normal = self.mode == SmartMode::Normal;
        match message {
            Message::SetSmartMode(m) => {
                self.mode = m.mode;
                if m.mode != SmartMode::Normal {
                    for (_, task) in self.periodic.drain() {
                        task.abort();
                    }
                }
            }
            Message::GetReport(m) if normal => {
                let r = report(m.from, m.to, m.resolution, &m.signals, m.heh_id.clone());
                reply.send(Message::Report(r));
            }
            Message::GetPeriodicReport(m) if normal => self.periodic_report(m, reply),
            Message::Activate(order) if normal => {
                reply.send(self.answer(order));
            }
            Message::GetActivationCapacity(m) if normal => {
                reply.send(Message::ActivationCapacity(ActivationCapacity {
                    device: m.device.clone(),
                    pos_capacity: self.spec.capacity_kw,
                    neg_capacity: self.spec.capacity_kw / 2.0,
                    heh_id: m.heh_id.clone(),
                    ext: Extensions::new(),
                }));
            }
            Message::GetStatusReport(_) if normal => {
                reply.send(Message::StatusReport(StatusReport {
                    status: "ok".into(),
                    clock: self.now(),
                    events: Vec::new(),
                    ext: Extensions::new(),
                }));
            }
            Message::SetClock(m) if normal => self.clock_offset_s = m.offset.unwrap_or(0.0),
            Message::LoadPrice(m) if normal => self.last_price = Some(m.price),
            Message::GetCapabilities(_) if normal => {
                for m in self.announcements() {
                    reply.send(m);
                }
            }
            Message::GetEnergyEvents(_) if normal => {
                reply.send(Message::EnergyEvents(EnergyEvents {
                    events: Vec::new(),
                    ext: Extensions::new(),
                }));
            }
            // Out of normal mode the simulated HEH hears these but does not answer.
            Message::GetReport(_)
            | Message::GetPeriodicReport(_)
            | Message::Activate(_)
            | Message::GetActivationCapacity(_)
            | Message::GetStatusReport(_)
            | Message::SetClock(_)
            | Message::LoadPrice(_)
            | Message::GetCapabilities(_)
            | Message::GetEnergyEvents(_) => {}
            _ => return false,
        }
        true
    }

    /// The last `load_price` heard, in its currency per kWh.
    pub fn last_price(&self) -> Option<f64> {
        self.last_price
    }

    fn answer(&self, order: &Activate) -> Message {
        if order.quantity.abs() <= self.spec.capacity_kw {
            return Message::AcceptActivation(order.accept());
        }
        match self.spec.policy {
            Policy::Reject => Message::RejectActivation(order.reject()),
            Policy::Modify => Message::ModifyActivation(order.counter_proposal(
                order.from,
                order.to,
                self.spec.capacity_kw.copysign(order.quantity),
            )),
        }
    }

    fn periodic_report(&mut self, m: &GetPeriodicReport, reply: &Outlet) {
        let key = m
            .request_id
            .as_ref()
            .map(|i| i.as_str().to_owned())
            .unwrap_or_default();
        if let Some(task) = self.periodic.remove(&key) {
            task.abort();
        }
        if m.disables() {
            return;
        }
        let (reply, request) = (reply.clone(), m.clone());
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
                    if !reply.send(Message::Report(r)) {
                        return;
                    }
                }
            }),
        );
    }
}

impl Drop for SimHeh {
    fn drop(&mut self) {
        for (_, task) in self.periodic.drain() {
            task.abort();
        }
    }
}

/// The simulated HEH as the device of an HEH agent (`ebadge-heh`'s
/// [`Device`](ebadge_heh::device::Device) interface): it announces itself, answers what the
/// controller asks and keeps what the agent tells it (failsafe notices) in
/// [`notices`](Self::notices). For tests of the agent without a device program.
pub struct SimDevice {
    heh: SimHeh,
    outlet: Outlet,
    queued: mpsc::UnboundedReceiver<Message>,
    notices: Vec<Message>,
}

impl SimDevice {
    /// A device that first announces `spec`'s HEH (`capabilities`, `device_capabilities`).
    pub fn new(spec: HehSpec) -> Self {
        let heh = SimHeh::new(spec);
        let (tx, queued) = mpsc::unbounded_channel();
        for m in heh.announcements() {
            let _ = tx.send(m);
        }
        Self {
            heh,
            outlet: Outlet::Agent(tx),
            queued,
            notices: Vec::new(),
        }
    }

    /// The agent's own notices (`ext_ebadge_…`) heard so far, oldest first.
    pub fn notices(&self) -> &[Message] {
        &self.notices
    }

    /// The HEH behind the device.
    pub fn heh(&self) -> &SimHeh {
        &self.heh
    }
}

impl ebadge_heh::device::Device for SimDevice {
    async fn next(&mut self) -> Option<Message> {
        self.queued.recv().await
    }

    async fn deliver(&mut self, message: &Message) -> Result<(), ebadge_heh::device::DeviceError> {
        if !self.heh.handle(message, &self.outlet) {
            self.notices.push(message.clone());
        }
        Ok(())
    }
}
