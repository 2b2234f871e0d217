//! The HEH role: the kit is the HEH's controller. It asks for a status report, a report and an
//! activation, asks for periodic reports, cuts the link, restarts the broker, delivers an order
//! twice, and then reads back everything the HEH sent for the rules every message must keep.

use super::client::ClientProcess;
use super::counterpart::{Counterpart, Seen};
use super::report::{Check, Outcome, Report};
use super::rules::{connects, every_message, refusals};
use super::stage::Stage;
use super::{KitError, KitOptions, Target, now, seconds};
use crate::proxy::Proxy;
use ebadge_admin::registry::Builder;
use ebadge_bus::conventions::new_message_id;
use ebadge_model::{
    Activate, Extensions, GetPeriodicReport, GetReport, GetStatusReport, Message, SignalName, Time,
};
use std::time::{Duration, Instant};

/// The signal the kit asks for: every HEH has the total (D3.1.3 5.2: `device.signal`, the
/// device `total` being the whole home).
const SIGNAL: &str = "total.p";

/// Runs the HEH role against `target`; `progress` hears what the kit is doing, a line at a
/// time.
pub async fn run_heh(
    broker: &Target,
    options: &KitOptions,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Report, KitError> {
    let started = Instant::now();
    let (name, counterpart) = (&options.name, &options.counterpart);
    progress(&format!(
        "provisioning {name} and its controller {counterpart} on {}",
        broker.describe()
    ));
    let registry = Builder::new()
        .entity(counterpart.as_str(), Some("vpp"))
        .heh(name.as_str(), counterpart.as_str())
        .build()
        .map_err(|e| KitError::Broker(e.to_string()))?;
    let stage = Stage::prepare(
        broker,
        &registry,
        &options.work_dir,
        name,
        Some(counterpart),
        &[],
    )
    .await?;
    let (proxy, log) = (&stage.proxy, &stage.log);
    let kit = Counterpart::start(&stage.profile, counterpart, name).await?;

    progress(&format!("starting {:?}", options.command));
    let mut process = ClientProcess::start(&options.command, &stage.files, log)?;
    let mut run = Run {
        kit: &kit,
        options,
        checks: Vec::new(),
    };
    run.scenario(broker, proxy, &mut process, log, progress)
        .await;
    // Reports asked for are stopped before the client is, so none outlives the run.
    let _ = kit
        .send(&Message::GetPeriodicReport(GetPeriodicReport::new(
            GetPeriodicReport::DISABLE,
            1.0,
            vec![signal()],
        )))
        .await;
    process.stop(Duration::from_secs(5)).await;
    let seen = kit.seen();
    run.checks
        .extend(every_message(&seen, name, run.consumed()));
    run.checks
        .push(refusals(broker, stage.log_offset, name.as_str()));
    let checks = run.checks;
    kit.stop().await;
    Ok(Report {
        role: "heh",
        client: name.to_string(),
        counterpart: counterpart.to_string(),
        command: options.command.clone(),
        client_log: log.display().to_string(),
        seconds: started.elapsed().as_secs_f64(),
        checks,
    })
}

fn signal() -> SignalName {
    SignalName::new(SIGNAL).expect("a valid signal name")
}

/// One run's state: the checks so far.
struct Run<'a> {
    kit: &'a Counterpart,
    options: &'a KitOptions,
    checks: Vec<Check>,
}

impl Run<'_> {
    fn push(
        &mut self,
        id: &'static str,
        section: &'static str,
        title: &'static str,
        outcome: Outcome,
    ) {
        self.checks.push(Check {
            id,
            section,
            title,
            outcome,
        });
    }

    /// True once the client consumed its inbox (the first check).
    fn consumed(&self) -> bool {
        self.checks
            .first()
            .is_some_and(|c| c.id == "connects" && c.holds())
    }

    async fn scenario(
        &mut self,
        broker: &Target,
        proxy: &Proxy,
        process: &mut ClientProcess,
        log: &std::path::Path,
        progress: &(dyn Fn(&str) + Sync),
    ) {
        progress("waiting for the client to consume its inbox");
        let connects = connects(broker, self.kit, process, log, self.options).await;
        self.push(
            "connects",
            "D3.2.3 6.1",
            "logs in with its certificate only (EXTERNAL over TLS) and consumes its inbox",
            connects,
        );
        if !self.consumed() {
            let reason = "the client never consumed its inbox (see `connects`)";
            for (id, section, title) in LATER {
                self.push(id, section, title, Outcome::Skip(reason.into()));
            }
            return;
        }
        progress("asking for a status report, a report and an activation");
        let outcome = self.answers_status_report().await;
        self.push(LATER[0].0, LATER[0].1, LATER[0].2, outcome);
        let outcome = self.answers_report().await;
        self.push(LATER[1].0, LATER[1].1, LATER[1].2, outcome);
        let outcome = self.answers_activation().await;
        self.push(LATER[2].0, LATER[2].1, LATER[2].2, outcome);
        progress("asking for a report every second");
        let outcome = self.sends_periodic_reports().await;
        let periodic = matches!(outcome, Outcome::Pass(_));
        self.push(LATER[3].0, LATER[3].1, LATER[3].2, outcome);

        progress(&format!(
            "cutting the link for {} s",
            self.options.outage.as_secs()
        ));
        let down = now();
        proxy.cut();
        tokio::time::sleep(self.options.outage).await;
        let back = now();
        proxy.restore();
        let outage = Outage {
            down,
            back,
            restored: Instant::now(),
        };
        self.after_outage(&outage, periodic, 4).await;

        let Some(local) = broker.local() else {
            for (id, section, title) in &LATER[6..8] {
                let why = "the kit restarts only a local broker of its own (--dir)";
                self.push(id, section, title, Outcome::Skip(why.into()));
            }
            progress("delivering an activation twice");
            let outcome = self.tolerates_duplicate().await;
            self.push(LATER[8].0, LATER[8].1, LATER[8].2, outcome);
            return;
        };
        progress("restarting the broker");
        match restart(local).await {
            Ok(outage) => self.after_outage(&outage, periodic, 6).await,
            Err(e) => {
                for (id, section, title) in &LATER[6..8] {
                    self.push(
                        id,
                        section,
                        title,
                        Outcome::Skip(format!("the broker did not restart: {e}")),
                    );
                }
            }
        }

        progress("delivering an activation twice");
        let outcome = self.tolerates_duplicate().await;
        self.push(LATER[8].0, LATER[8].1, LATER[8].2, outcome);
    }

    /// Sends `request` and waits for a message that `answers` it.
    async fn ask(&self, request: Message, what: &str, answers: impl Fn(&Seen) -> bool) -> Outcome {
        let sent = Instant::now();
        if let Err(e) = self.kit.send(&request).await {
            return Outcome::Skip(e.to_string());
        }
        let within = self.options.answer_within;
        match self.kit.wait_for(sent, sent + within, answers).await {
            Some(seen) => Outcome::Pass(format!(
                "{} in {} (limit {})",
                seen.kind().unwrap_or_default(),
                seconds(seen.at - sent),
                seconds(within)
            )),
            None => Outcome::Fail(format!(
                "no {what} within {} of the {}",
                seconds(within),
                request.type_name()
            )),
        }
    }

    async fn answers_status_report(&self) -> Outcome {
        self.ask(status_request(), "status_report", |s| {
            s.kind().as_deref() == Some("status_report")
        })
        .await
    }

    async fn answers_report(&self) -> Outcome {
        let to = now();
        let from = to
            .checked_add(time::Duration::seconds(-60))
            .expect("a minute ago is a time");
        let request = GetReport::new(from, to, 60.0, vec![signal()]);
        let (want_from, want_to) = (request.from, request.to);
        self.ask(
            Message::GetReport(request),
            "report of the period asked for",
            |s| is_report(s) && s.time("from") == Some(want_from) && s.time("to") == Some(want_to),
        )
        .await
    }

    async fn answers_activation(&self) -> Outcome {
        let order = activation(1);
        let asked = order.clone();
        self.ask(
            Message::Activate(order),
            "accept_activation, reject_activation or modify_activation with its id and modification_count",
            move |s| answers_order(s, &asked),
        )
        .await
    }

    async fn sends_periodic_reports(&self) -> Outcome {
        let sent = Instant::now();
        let request = GetPeriodicReport::new(1.0, 1.0, vec![signal()]);
        if let Err(e) = self.kit.send(&Message::GetPeriodicReport(request)).await {
            return Outcome::Skip(e.to_string());
        }
        let deadline = sent + self.options.answer_within + Duration::from_secs(3);
        let mut last = None;
        for _ in 0..3 {
            let after = last.unwrap_or(sent);
            match self
                .kit
                .wait_for(after, deadline, |s| is_report(s) && s.at > after)
                .await
            {
                Some(seen) => last = Some(seen.at),
                None => break,
            }
        }
        // Three reports of three periods a second or more apart, not one burst.
        let ends: std::collections::BTreeSet<i128> = self
            .kit
            .seen()
            .iter()
            .filter(|s| s.at >= sent && is_report(s))
            .filter_map(|s| s.time("to").map(|t| t.unix_nanos()))
            .collect();
        let spread = match (ends.first(), ends.last()) {
            (Some(first), Some(last)) => (last - first) as f64 / 1e9,
            _ => 0.0,
        };
        match last {
            Some(at) if ends.len() >= 3 && spread >= 1.5 => Outcome::Pass(format!(
                "{} reports in {}, their periods ending over {spread:.1} s, after a request for one a second",
                ends.len(),
                seconds(at - sent)
            )),
            _ => Outcome::Fail(format!(
                "{} reports of distinct periods within {} of a get_periodic_report asking for one a second, ending over {spread:.1} s (3 wanted, over 2 s)",
                ends.len(),
                seconds(deadline - sent)
            )),
        }
    }

    /// The two checks after `outage`: the client comes back and answers; the reports it made
    /// meanwhile arrive. `at` is the index of the first in [`LATER`].
    async fn after_outage(&mut self, outage: &Outage, periodic: bool, at: usize) {
        let since = Instant::now();
        let deadline = since + self.options.start_within;
        let mut consuming = None;
        while Instant::now() < deadline {
            if self.kit.client_consumers().await.unwrap_or(0) > 0 {
                consuming = Some(since.elapsed());
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let outcome = match consuming {
            None => Outcome::Fail(format!(
                "not consuming its inbox again within {} after the outage",
                seconds(self.options.start_within)
            )),
            Some(after) => match self.answers_status_report().await {
                Outcome::Pass(answer) => Outcome::Pass(format!(
                    "consuming again {} after the outage; {answer}",
                    seconds(after)
                )),
                other => other,
            },
        };
        self.push(LATER[at].0, LATER[at].1, LATER[at].2, outcome);
        // Back and answering, a client that kept what it made meanwhile has sent it too.
        let outcome = if periodic {
            let deadline = Instant::now() + self.options.answer_within;
            self.made_during(outage, deadline).await
        } else {
            Outcome::Skip("it sent no periodic reports (see `sends-periodic-reports`)".into())
        };
        self.push(LATER[at + 1].0, LATER[at + 1].1, LATER[at + 1].2, outcome);
    }

    /// Waits until `deadline` for a report whose period ends inside the outage (a second's margin
    /// each side), arrived after it: one the client made while it could not send.
    async fn made_during(&self, outage: &Outage, deadline: Instant) -> Outcome {
        let (down, back) = (&outage.down, &outage.back);
        let margin = time::Duration::seconds(1);
        let (first, last) = (
            down.checked_add(margin).expect("a time"),
            back.checked_add(-margin).expect("a time"),
        );
        let inside =
            |s: &Seen| is_report(s) && s.time("to").is_some_and(|to| to >= first && to <= last);
        match self.kit.wait_for(outage.restored, deadline, inside).await {
            Some(_) => {
                let count = self
                    .kit
                    .seen()
                    .iter()
                    .filter(|s| s.at >= outage.restored && inside(s))
                    .count();
                Outcome::Pass(format!(
                    "{count} reports made during the {} s outage arrived after it",
                    back.since(down).whole_seconds()
                ))
            }
            None => Outcome::Fail(format!(
                "none of the reports due during the outage ({first} to {last}) arrived: what the client sends while the bus is away must be kept and sent when it is back"
            )),
        }
    }

    /// The same activation twice with one message id, as a redelivery after a lost
    /// acknowledgement brings it; then a fresh request must still be answered.
    async fn tolerates_duplicate(&self) -> Outcome {
        let order = activation(2);
        let id = new_message_id();
        let sent = Instant::now();
        for _ in 0..2 {
            if let Err(e) = self
                .kit
                .send_as(&Message::Activate(order.clone()), &id)
                .await
            {
                return Outcome::Skip(e.to_string());
            }
        }
        tokio::time::sleep(self.options.answer_within.min(Duration::from_secs(2))).await;
        let answers = self
            .kit
            .seen()
            .iter()
            .filter(|s| s.at >= sent && answers_order(s, &order))
            .count();
        match self.answers_status_report().await {
            Outcome::Pass(next) => Outcome::Pass(format!(
                "answered the order delivered twice {answers} time(s), and the next request: {next}"
            )),
            Outcome::Fail(why) => Outcome::Fail(format!(
                "after an order delivered twice (answered {answers} time(s)): {why}"
            )),
            skip => skip,
        }
    }
}

/// The checks after `connects`, in order: skipped together when it fails.
const LATER: [(&str, &str, &str); 9] = [
    (
        "answers-get_status_report",
        "D3.1.3 5.4.1-5.4.2",
        "answers get_status_report with a status_report",
    ),
    (
        "answers-get_report",
        "D3.1.3 5.2.1, 5.2.3",
        "answers get_report with a report of the period asked for",
    ),
    (
        "answers-activate",
        "D3.1.3 5.3.1-5.3.4",
        "answers activate with accept_activation, reject_activation or modify_activation",
    ),
    (
        "sends-periodic-reports",
        "D3.1.3 5.2.2",
        "sends the periodic reports get_periodic_report asks for",
    ),
    (
        "survives-link-cut",
        "D3.2.3 6.2.3",
        "comes back by itself after a cut link and answers",
    ),
    (
        "buffers-across-link-cut",
        "D3.2.3 6.2.3",
        "what it sent while the link was cut arrives afterwards",
    ),
    (
        "survives-broker-restart",
        "D3.2.3 6.2.3",
        "comes back by itself after a broker restart and answers",
    ),
    (
        "buffers-across-broker-restart",
        "D3.2.3 6.2.3",
        "what it sent while the broker was down arrives afterwards",
    ),
    (
        "tolerates-duplicate",
        "D3.2.3 6.2.3",
        "a message delivered twice does not stop it",
    ),
];

fn status_request() -> Message {
    let to = now();
    Message::GetStatusReport(GetStatusReport {
        from: to
            .checked_add(time::Duration::hours(-1))
            .expect("an hour ago is a time"),
        to,
        severity_threshold: 0,
        ext: Extensions::new(),
    })
}

/// An activation a minute from now for a quarter of an hour, with an id the kit recognises.
fn activation(n: u32) -> Activate {
    let from = now()
        .checked_add(time::Duration::minutes(1))
        .expect("a time");
    let to = from
        .checked_add(time::Duration::minutes(15))
        .expect("a time");
    let mut order = Activate::new(from, to, 0.5);
    order.id = ebadge_model::Id::new(format!("kit-{n}-{}", new_message_id())).expect("a valid id");
    order
}

/// An answer to `order`: its type, and the order's `id` and `modification_count`.
fn answers_order(s: &Seen, order: &Activate) -> bool {
    let answer = matches!(
        s.kind().as_deref(),
        Some("accept_activation" | "reject_activation" | "modify_activation")
    );
    answer
        && s.json().is_some_and(|v| {
            v["id"] == order.id.as_str() && v["modification_count"] == order.modification_count
        })
}

fn is_report(s: &Seen) -> bool {
    s.kind().as_deref() == Some("report")
}

/// An outage: from `down` (nothing the client sends from then on can arrive) to `back`, and
/// when the kit let the client through again.
struct Outage {
    down: Time,
    back: Time,
    restored: Instant,
}

/// Stops the broker and starts it again; the outage runs from the moment it stopped.
async fn restart(broker: &ebadge_admin::broker::LocalBroker) -> Result<Outage, String> {
    let stopping = broker.clone();
    tokio::task::spawn_blocking(move || stopping.down())
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let down = now();
    broker
        .up(&Default::default())
        .await
        .map_err(|e| e.to_string())?;
    Ok(Outage {
        down,
        back: now(),
        restored: Instant::now(),
    })
}
