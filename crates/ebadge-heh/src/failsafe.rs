//! Failsafe activations, without I/O: which activations the device runs, when each must end,
//! and what to do when the bus has been gone too long during one. The agent feeds it what
//! passes between the bus and the device and the time; it answers with notices for both.
//!
//! The rules:
//! - an accepted activation never outlives its `to`: at `to` the device is told to end it,
//!   whether the bus is there or not;
//! - when the bus has been unreachable for longer than [`FailsafeConfig::after`] while an
//!   activation runs, the device is told to apply the configured [`Behaviour`] (once per outage);
//! - when the bus is back after such an outage (or any outage longer than `after`), the device
//!   is told, and the controller gets a `status_report` with the outage's events
//!   (`network_down`, `failsafe_end` or `failsafe_limit`, `network_up`);
//! - "the bus" is the agent's inbox being consumed, not its connection: a connection can be up
//!   while the controller cannot reach the HEH (its inbox's node down, the inbox deleted);
//! - what the rules need survives a restart of the agent ([`Remembered`]): an activation whose
//!   `to` passed while the agent was not running ends when it starts again, and the controller
//!   is told so too ([`Failsafe::resume`]).

use ebadge_bus::model::{Activate, Message, Name, StatusEvent, StatusReport, Time};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use time::Duration;

/// What the device does when the bus has been gone too long during an activation.
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
#[serde(tag = "behaviour", rename_all = "snake_case", deny_unknown_fields)]
pub enum Behaviour {
    /// End the running activations (go back to normal operation).
    End,
    /// Hold a power limit (kW) until the activations' end or the bus's return.
    Limit {
        /// The limit, kW.
        limit_kw: f64,
    },
}

/// When and how the failsafe applies.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FailsafeConfig {
    /// How long the bus may be unreachable during an activation before the failsafe applies.
    pub after: Duration,
    /// What the device is told to do then.
    pub behaviour: Behaviour,
}

/// The extension message that tells the device an activation reached its `to`.
pub const ACTIVATION_END: &str = "ext_ebadge_activation_end";
/// The extension message that tells the device to apply the failsafe.
pub const FAILSAFE: &str = "ext_ebadge_failsafe";
/// The extension message that tells the device the bus is back.
pub const BUS_BACK: &str = "ext_ebadge_bus_back";

/// What a step of the failsafe asks the agent to pass on.
#[derive(Debug, Default, PartialEq)]
pub struct Notices {
    /// For the device.
    pub to_device: Vec<Message>,
    /// For the controller.
    pub to_controller: Vec<Message>,
}

/// The `reason` of an [`ACTIVATION_END`] for an activation whose `to` passed while the agent was
/// not running: it ends when the agent starts again, late, and the controller is told too.
pub const ENDED_AT_RESTART: &str = "restart";

/// The failsafe's state.
#[derive(Debug)]
pub struct Failsafe {
    config: FailsafeConfig,
    /// Orders passed to the device and not answered yet, by (id, modification_count).
    offered: HashMap<(String, u32), Activate>,
    /// Accepted activations that have not ended, by id (the latest accepted modification).
    running: BTreeMap<String, Activate>,
    /// Since when the bus is unreachable.
    down_since: Option<Time>,
    /// When the failsafe was applied in this outage.
    applied: Option<Time>,
    /// Whether what [`Remembered`] holds changed since the last [`Failsafe::take_changed`].
    changed: bool,
}

/// What the failsafe must remember across a restart of the agent (a crash, an update, an
/// out-of-memory kill): the activations the device runs, the start of an outage and whether the
/// failsafe was applied in it. Orders the device has not answered are not kept: their answer is
/// lost with the old device program, and the controller's wait for it times out.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Remembered {
    /// The accepted activations that have not ended, each as its `activate` message.
    running: Vec<String>,
    /// Since when the bus is unreachable, if it is.
    down_since: Option<String>,
    /// When the failsafe was applied in that outage.
    applied: Option<String>,
}

impl Remembered {
    /// As JSON, for a store.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("strings serialise")
    }

    /// From what [`to_json`](Self::to_json) wrote.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The ids of the activations remembered as running.
    pub fn running(&self) -> Vec<String> {
        self.running
            .iter()
            .filter_map(|json| match Message::decode(json) {
                Ok(Message::Activate(order)) => Some(order.id.as_str().to_owned()),
                _ => None,
            })
            .collect()
    }
}

fn extension(msg: &str, fields: Value) -> Message {
    let mut object = fields.as_object().cloned().unwrap_or_default();
    object.insert("msg".into(), msg.into());
    Message::decode(&Value::Object(object).to_string()).expect("the agent's notices are valid")
}

impl Failsafe {
    /// Nothing running, the bus assumed up.
    pub fn new(config: FailsafeConfig) -> Self {
        Self {
            config,
            offered: HashMap::new(),
            running: BTreeMap::new(),
            down_since: None,
            applied: None,
            changed: false,
        }
    }

    /// Starts again at `now` from what an earlier agent remembered. An activation whose `to`
    /// passed meanwhile ends at once: the device is told, and so is the controller (the device may
    /// have run it past its `to`; the message waits in the outbox until the bus is back). An
    /// outage goes on from its remembered start; a failsafe limit applied in it is told to the
    /// device again, since a device program started with the agent does not hold it.
    pub fn resume(config: FailsafeConfig, remembered: &Remembered, now: &Time) -> (Self, Notices) {
        let mut failsafe = Self::new(config);
        let mut notices = Notices::default();
        let time = |text: &Option<String>| text.as_deref().and_then(|t| Time::parse(t).ok());
        failsafe.down_since = time(&remembered.down_since);
        failsafe.applied = time(&remembered.applied).filter(|_| failsafe.down_since.is_some());
        for json in &remembered.running {
            let order = match Message::decode(json) {
                Ok(Message::Activate(order)) => order,
                // Written by this agent: only a damaged store gets here, and an unreadable order
                // cannot be ended either; said, not hidden.
                other => {
                    tracing::error!(remembered = %json, outcome = ?other.map(|m| m.type_name().to_owned()), "a remembered activation cannot be read; skipped");
                    continue;
                }
            };
            if order.to <= *now {
                let end = extension(
                    ACTIVATION_END,
                    json!({
                        "id": order.id.as_str(),
                        "modification_count": order.modification_count,
                        "reason": ENDED_AT_RESTART,
                        "to": order.to.to_string(),
                        "ended_at": now.to_string(),
                    }),
                );
                notices.to_device.push(end.clone());
                notices.to_controller.push(end);
                failsafe.changed = true;
            } else {
                failsafe.running.insert(order.id.as_str().to_owned(), order);
            }
        }
        if let (Some(_), Behaviour::Limit { .. }) = (failsafe.applied, config.behaviour)
            && !failsafe.running.is_empty()
        {
            notices.to_device.push(failsafe.failsafe_notice());
        }
        (failsafe, notices)
    }

    /// What to remember now (see [`Remembered`]).
    pub fn remembered(&self) -> Remembered {
        Remembered {
            running: self
                .running
                .values()
                .map(|order| Message::Activate(order.clone()).to_json())
                .collect(),
            down_since: self.down_since.as_ref().map(Time::to_string),
            applied: self.applied.as_ref().map(Time::to_string),
        }
    }

    /// Whether what is remembered changed since the last call: the agent stores it then.
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    /// A message the agent passes to the device: an `activate` waits for the device's answer.
    pub fn to_device(&mut self, message: &Message) {
        if let Message::Activate(order) = message {
            let key = (order.id.as_str().to_owned(), order.modification_count);
            self.offered.insert(key, order.clone());
        }
    }

    /// A message from the device for the controller: an accepted order runs from now on (a
    /// rejected modification leaves the version accepted before running).
    pub fn from_device(&mut self, message: &Message) {
        let answered = match message {
            Message::AcceptActivation(a) => Some((a.id.as_str(), a.modification_count, true)),
            Message::RejectActivation(r) => Some((r.id.as_str(), r.modification_count, false)),
            Message::ModifyActivation(m) => Some((m.id.as_str(), m.modification_count, false)),
            _ => None,
        };
        if let Some((id, count, accepted)) = answered
            && let Some(order) = self.offered.remove(&(id.to_owned(), count))
            && accepted
        {
            self.running.insert(id.to_owned(), order);
            self.changed = true;
        }
    }

    /// The ids of the activations the device runs now.
    pub fn running(&self) -> impl Iterator<Item = &str> {
        self.running.keys().map(String::as_str)
    }

    /// One step at `now`, with the bus reachable (`connected`: the agent's inbox consumed) or not.
    pub fn tick(&mut self, now: &Time, connected: bool) -> Notices {
        let mut notices = Notices::default();
        let ended: Vec<String> = self
            .running
            .iter()
            .filter(|(_, order)| order.to <= *now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in ended {
            let order = self.running.remove(&id).expect("listed above");
            self.changed = true;
            notices.to_device.push(extension(
                ACTIVATION_END,
                json!({"id": id, "modification_count": order.modification_count, "reason": "to"}),
            ));
        }
        match (connected, &self.down_since) {
            (false, None) => {
                self.down_since = Some(*now);
                self.changed = true;
            }
            (false, Some(since)) => {
                let active = self.running.values().any(|o| o.from <= *now);
                if self.applied.is_none() && active && now.since(since) >= self.config.after {
                    notices.to_device.push(self.apply(now));
                }
            }
            (true, Some(_)) => self.bus_back(now, &mut notices),
            (true, None) => {}
        }
        notices
    }

    fn apply(&mut self, now: &Time) -> Message {
        self.applied = Some(*now);
        self.changed = true;
        let notice = self.failsafe_notice();
        if self.config.behaviour == Behaviour::End {
            // Ended: `to` has nothing left to end, and the bus's return does not restart them.
            self.running.clear();
        }
        notice
    }

    /// The [`FAILSAFE`] notice for the running activations.
    fn failsafe_notice(&self) -> Message {
        let ids: Vec<String> = self.running.keys().cloned().collect();
        let mut fields = json!({"activations": ids, "down_since": self.down_since.as_ref().map(Time::to_string)});
        match self.config.behaviour {
            Behaviour::End => fields["action"] = "end".into(),
            Behaviour::Limit { limit_kw } => {
                fields["action"] = "limit".into();
                fields["limit_kw"] = limit_kw.into();
            }
        }
        extension(FAILSAFE, fields)
    }

    fn bus_back(&mut self, now: &Time, notices: &mut Notices) {
        let since = self.down_since.take().expect("called when down");
        let applied = self.applied.take();
        self.changed = true;
        if applied.is_none() && now.since(&since) < self.config.after {
            return;
        }
        notices.to_device.push(extension(
            BUS_BACK,
            json!({"down_since": since.to_string(), "failsafe_applied": applied.is_some()}),
        ));
        let event = |time: &Time, severity: i64, kind: &str| StatusEvent {
            time: *time,
            severity,
            r#type: Name::new(kind).expect("event names are valid"),
            ext: Default::default(),
        };
        let mut events = vec![event(&since, 3, "network_down")];
        if let Some(at) = &applied {
            let kind = match self.config.behaviour {
                Behaviour::End => "failsafe_end",
                Behaviour::Limit { .. } => "failsafe_limit",
            };
            events.push(event(at, 4, kind));
        }
        events.push(event(now, 1, "network_up"));
        notices
            .to_controller
            .push(Message::StatusReport(StatusReport {
                status: if applied.is_some() { "failsafe" } else { "OK" }.into(),
                clock: *now,
                events,
                ext: Default::default(),
            }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(seconds: i64) -> Time {
        Time::parse("2030-01-01T10:00:00Z")
            .unwrap()
            .checked_add(Duration::seconds(seconds))
            .unwrap()
    }

    fn order(from: i64, to: i64) -> Activate {
        Activate::new(t(from), t(to), 2.0)
    }

    fn failsafe(behaviour: Behaviour) -> Failsafe {
        Failsafe::new(FailsafeConfig {
            after: Duration::seconds(60),
            behaviour,
        })
    }

    /// `order` passed to the device and accepted by it.
    fn run(f: &mut Failsafe, order: &Activate) {
        f.to_device(&Message::Activate(order.clone()));
        f.from_device(&Message::AcceptActivation(order.accept()));
    }

    /// A status report's events as (time, type).
    fn timeline(report: &StatusReport) -> Vec<(String, &str)> {
        report
            .events
            .iter()
            .map(|e| (e.time.to_string(), e.r#type.as_str()))
            .collect()
    }

    fn kinds(messages: &[Message]) -> Vec<&str> {
        messages.iter().map(Message::type_name).collect()
    }

    #[test]
    fn an_accepted_activation_ends_at_its_to_with_the_bus_up() {
        let mut f = failsafe(Behaviour::End);
        let o = order(0, 300);
        run(&mut f, &o);
        assert_eq!(f.running().collect::<Vec<_>>(), [o.id.as_str()]);
        assert_eq!(f.tick(&t(299), true), Notices::default());
        let notices = f.tick(&t(300), true);
        assert_eq!(kinds(&notices.to_device), [ACTIVATION_END]);
        assert!(notices.to_device[0].to_json().contains(o.id.as_str()));
        assert_eq!(f.running().count(), 0);
        assert_eq!(f.tick(&t(301), true), Notices::default(), "told once");
    }

    #[test]
    fn only_accepted_orders_run_and_a_rejected_modification_keeps_the_accepted_one() {
        let mut f = failsafe(Behaviour::End);
        let rejected = order(0, 300);
        f.to_device(&Message::Activate(rejected.clone()));
        f.from_device(&Message::RejectActivation(rejected.reject()));
        assert_eq!(f.running().count(), 0);

        let accepted = order(0, 300);
        run(&mut f, &accepted);
        let mut modified = accepted.clone();
        modified.modification_count = 1;
        modified.to = t(900);
        f.to_device(&Message::Activate(modified.clone()));
        f.from_device(&Message::RejectActivation(modified.reject()));
        assert_eq!(
            kinds(&f.tick(&t(300), true).to_device),
            [ACTIVATION_END],
            "the accepted version (to = 300) still runs, not the rejected one (to = 900)"
        );
    }

    #[test]
    fn a_long_outage_during_an_activation_applies_the_failsafe_once_and_reports_it() {
        let mut f = failsafe(Behaviour::End);
        run(&mut f, &order(0, 3600));
        assert_eq!(
            f.tick(&t(10), false),
            Notices::default(),
            "the bus just went"
        );
        assert_eq!(f.tick(&t(69), false), Notices::default(), "59 s: not yet");
        let applied = f.tick(&t(70), false);
        assert_eq!(kinds(&applied.to_device), [FAILSAFE]);
        assert!(applied.to_device[0].to_json().contains(r#""action":"end""#));
        assert_eq!(f.running().count(), 0, "ended");
        assert_eq!(
            f.tick(&t(100), false),
            Notices::default(),
            "once per outage"
        );

        let back = f.tick(&t(130), true);
        assert_eq!(kinds(&back.to_device), [BUS_BACK]);
        let Message::StatusReport(report) = &back.to_controller[0] else {
            panic!("{back:?}")
        };
        assert_eq!(report.status, "failsafe");
        let events = timeline(report);
        assert_eq!(
            events,
            [
                (t(10).to_string(), "network_down"),
                (t(70).to_string(), "failsafe_end"),
                (t(130).to_string(), "network_up")
            ]
        );
    }

    #[test]
    fn a_limit_holds_until_the_activation_ends_at_its_to_even_without_the_bus() {
        let mut f = failsafe(Behaviour::Limit { limit_kw: 1.5 });
        run(&mut f, &order(0, 200));
        f.tick(&t(100), false);
        let applied = f.tick(&t(160), false);
        assert!(
            applied.to_device[0]
                .to_json()
                .contains(r#""action":"limit""#)
        );
        assert!(applied.to_device[0].to_json().contains(r#""limit_kw":1.5"#));
        assert_eq!(f.running().count(), 1, "held, not ended");
        assert_eq!(kinds(&f.tick(&t(200), false).to_device), [ACTIVATION_END]);
    }

    #[test]
    fn no_failsafe_without_a_running_activation_and_short_outages_pass_quietly() {
        let mut f = failsafe(Behaviour::End);
        run(&mut f, &order(500, 900));
        f.tick(&t(0), false);
        assert_eq!(
            f.tick(&t(120), false),
            Notices::default(),
            "the activation has not started: nothing to make safe"
        );
        let back = f.tick(&t(130), true);
        assert_eq!(
            kinds(&back.to_device),
            [BUS_BACK],
            "a long outage is still reported"
        );
        let Message::StatusReport(report) = &back.to_controller[0] else {
            panic!("{back:?}")
        };
        assert_eq!((report.status.as_str(), report.events.len()), ("OK", 2));

        f.tick(&t(200), false);
        assert_eq!(
            f.tick(&t(210), true),
            Notices::default(),
            "10 s: nothing to say"
        );
    }

    /// `f`'s memory as the store keeps it, read back by a new agent at `now`.
    fn restarted(f: &Failsafe, behaviour: Behaviour, now: i64) -> (Failsafe, Notices) {
        let stored = f.remembered().to_json();
        let config = FailsafeConfig {
            after: Duration::seconds(60),
            behaviour,
        };
        Failsafe::resume(config, &Remembered::from_json(&stored).unwrap(), &t(now))
    }

    #[test]
    fn an_activation_whose_to_passed_while_the_agent_was_down_ends_at_its_restart_and_both_hear_it()
    {
        let mut f = failsafe(Behaviour::End);
        let (short, long) = (order(0, 300), order(0, 900));
        run(&mut f, &short);
        run(&mut f, &long);
        assert!(f.take_changed(), "accepting is remembered");
        assert!(!f.take_changed(), "once");

        // Killed at 100 s, started again at 400 s: `short` ended meanwhile, `long` still runs.
        let (mut again, notices) = restarted(&f, Behaviour::End, 400);
        assert_eq!(kinds(&notices.to_device), [ACTIVATION_END]);
        assert_eq!(
            notices.to_device, notices.to_controller,
            "the controller hears it too"
        );
        let end = notices.to_device[0].to_json();
        for part in [
            short.id.as_str(),
            r#""reason":"restart""#,
            &format!(r#""to":"{}""#, t(300)),
            &format!(r#""ended_at":"{}""#, t(400)),
        ] {
            assert!(end.contains(part), "{part} in {end}");
        }
        assert_eq!(again.running().collect::<Vec<_>>(), [long.id.as_str()]);
        assert!(
            again.take_changed(),
            "the ended one is forgotten in the store"
        );
        assert_eq!(
            kinds(&again.tick(&t(900), true).to_device),
            [ACTIVATION_END],
            "the other ends at its to, as before the restart"
        );
    }

    #[test]
    fn an_outage_goes_on_across_a_restart_and_a_limit_applied_in_it_is_told_again() {
        let mut f = failsafe(Behaviour::Limit { limit_kw: 1.5 });
        run(&mut f, &order(0, 3600));
        f.tick(&t(10), false);
        let (mut again, notices) = restarted(&f, Behaviour::Limit { limit_kw: 1.5 }, 40);
        assert_eq!(notices, Notices::default(), "nothing applied yet");
        assert_eq!(
            kinds(&again.tick(&t(70), false).to_device),
            [FAILSAFE],
            "60 s after the outage began, not after the restart"
        );

        let (mut third, notices) = restarted(&again, Behaviour::Limit { limit_kw: 1.5 }, 80);
        assert_eq!(
            kinds(&notices.to_device),
            [FAILSAFE],
            "the new device holds the limit too"
        );
        assert!(notices.to_controller.is_empty());
        assert_eq!(
            third.tick(&t(90), false),
            Notices::default(),
            "once per outage"
        );
        let back = third.tick(&t(100), true);
        let Message::StatusReport(report) = &back.to_controller[0] else {
            panic!("{back:?}")
        };
        let events = timeline(report);
        assert_eq!(
            events,
            [
                (t(10).to_string(), "network_down"),
                (t(70).to_string(), "failsafe_limit"),
                (t(100).to_string(), "network_up")
            ],
            "the report covers the whole outage"
        );
    }

    #[test]
    fn nothing_remembered_starts_like_a_new_agent() {
        let (mut f, notices) = Failsafe::resume(
            FailsafeConfig {
                after: Duration::seconds(60),
                behaviour: Behaviour::End,
            },
            &Remembered::default(),
            &t(0),
        );
        assert_eq!(notices, Notices::default());
        assert_eq!(f.running().count(), 0);
        assert!(!f.take_changed());
    }
}
