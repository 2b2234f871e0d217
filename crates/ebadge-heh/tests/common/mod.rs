//! What the agent tests share: a device that records what it is told and accepts every
//! activation, the agent run with it, orders, and the controller's view.

#![allow(dead_code)] // each test binary uses a part

use ebadge_bus::model::{Activate, Message, Time};
use ebadge_bus::{ActivationOutcome, Client, EntityName};
use ebadge_heh::agent;
use ebadge_heh::device::{Device, DeviceError};
use ebadge_heh::failsafe::FailsafeConfig;
use std::time::Duration;
use tokio::sync::mpsc;

/// A device in the test: accepts every activation and shows the test what it was told.
pub struct Recorder {
    answers: mpsc::UnboundedReceiver<Message>,
    answer: mpsc::UnboundedSender<Message>,
    told: mpsc::UnboundedSender<Message>,
}

impl Recorder {
    fn new() -> (Self, mpsc::UnboundedReceiver<Message>) {
        let (answer, answers) = mpsc::unbounded_channel();
        let (told, seen) = mpsc::unbounded_channel();
        (
            Self {
                answers,
                answer,
                told,
            },
            seen,
        )
    }
}

impl Device for Recorder {
    async fn next(&mut self) -> Option<Message> {
        self.answers.recv().await
    }
    async fn deliver(&mut self, message: &Message) -> Result<(), DeviceError> {
        if let Message::Activate(order) = message {
            let _ = self.answer.send(order.accept().into());
        }
        let _ = self.told.send(message.clone());
        Ok(())
    }
}

/// Runs the agent for `heh` with a [`Recorder`] as its device and `failsafe`; returns its task
/// and what the device is told.
pub fn start_agent_with(
    heh: Client,
    controller: &str,
    failsafe: FailsafeConfig,
) -> (
    tokio::task::JoinHandle<Result<(), agent::AgentError>>,
    mpsc::UnboundedReceiver<Message>,
) {
    let (mut device, seen) = Recorder::new();
    let controller = EntityName::new(controller).unwrap();
    let running =
        tokio::spawn(async move { agent::run(&heh, &controller, &mut device, failsafe).await });
    (running, seen)
}

/// Waits (at most `patience`) for the device to be told a message of type `kind`.
pub async fn told(
    seen: &mut mpsc::UnboundedReceiver<Message>,
    kind: &str,
    patience: Duration,
) -> Message {
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        match tokio::time::timeout_at(deadline, seen.recv()).await {
            Ok(Some(m)) if m.type_name() == kind => return m,
            Ok(Some(_)) => {}
            _ => panic!("the device was not told {kind} within {patience:?}"),
        }
    }
}

/// An order from a second ago until `seconds` from now.
pub fn order_for(seconds: i64) -> Activate {
    let now = Time::now();
    Activate::new(
        now.checked_add(time::Duration::seconds(-1)).unwrap(),
        now.checked_add(time::Duration::seconds(seconds)).unwrap(),
        1.0,
    )
}

/// Sends `order` to `heh` and waits for the device to accept that very order.
pub async fn accepted(vpp: &Client, heh: &EntityName, order: &Activate) {
    let outcome = vpp
        .activate(heh, order, Duration::from_secs(20))
        .await
        .unwrap();
    assert!(
        matches!(outcome, ActivationOutcome::Accepted(ref a) if a.id == order.id),
        "{outcome:?}"
    );
}

/// The next `status_report` in `vpp`'s inbox.
pub async fn status_report(vpp: &Client) -> ebadge_bus::model::StatusReport {
    next_status_report(&mut vpp.inbox().unwrap()).await
}

/// The next `status_report` in `inbox`, acknowledging what comes before it.
pub async fn next_status_report(inbox: &mut ebadge_bus::Inbox) -> ebadge_bus::model::StatusReport {
    loop {
        let incoming = tokio::time::timeout(Duration::from_secs(30), inbox.next())
            .await
            .expect("a status report within 30 s")
            .unwrap();
        incoming.ack();
        if let Message::StatusReport(report) = &incoming.message {
            return report.clone();
        }
    }
}
