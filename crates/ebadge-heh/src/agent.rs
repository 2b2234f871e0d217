//! The agent's loop: messages from the controller go to the device (acknowledged once the device
//! took them), the device's messages go to the controller, and once a second the failsafe looks
//! at the time and at the bus.
//!
//! Two halves run side by side, joined by queues, so that the failsafe's clock never waits on
//! the device:
//! - the **bus half** reads the inbox (only while the device's queue has room: a device that
//!   stops taking messages stops the inbox, and the broker keeps the rest), passes the device's
//!   messages to the controller, and ticks the failsafe. Nothing in it waits on the device;
//! - the **device half** delivers to the device, the failsafe's notices first, each delivery
//!   given at most [`DELIVER_TIMEOUT`], and reads what the device has for the controller.
//!
//! A device that blocks (a program that writes reports but no longer reads its input) then
//! delays only what goes to it: the failsafe still ends activations at their `to` and applies
//! when the bus goes away, and the controller still hears of it.

use crate::device::Device;
use crate::failsafe::{Failsafe, FailsafeConfig, Notices, Remembered};
use crate::store::Store;
use ebadge_bus::model::{Message, Time};
use ebadge_bus::{Client, EntityName, Inbox, Incoming};
use std::collections::VecDeque;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Why the agent stopped.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The device program ended or closed its output.
    #[error("the device is gone (its program ended or closed its output)")]
    DeviceGone,
    /// The client's inbox was already taken.
    #[error("the client's inbox is taken: give the agent a client of its own")]
    InboxTaken,
}

/// How often the failsafe looks at the time and the bus.
pub const TICK: Duration = Duration::from_secs(1);

/// Longest wait for the device to take one message. Past it the message is left
/// unacknowledged (the broker offers it again) or, for a notice of the agent's own, offered
/// again a second later; meanwhile the device's own messages wait, but the failsafe does not.
pub const DELIVER_TIMEOUT: Duration = Duration::from_secs(5);

/// Messages from the controller waiting for the device, at most. Past it the agent stops
/// reading its inbox: the rest wait on the broker, within the client's prefetch.
pub const DEVICE_QUEUE: usize = 16;

/// Wait before a notice the device did not take is offered again.
const NOTICE_RETRY: Duration = Duration::from_secs(1);

/// Runs until the device is gone: passes messages between `client`'s inbox, `controller` and
/// `device`, keeping activations failsafe. Remembers nothing across restarts: see
/// [`run_with`].
pub async fn run(
    client: &Client,
    controller: &EntityName,
    device: &mut impl Device,
    failsafe: FailsafeConfig,
) -> Result<(), AgentError> {
    run_with(client, controller, device, failsafe, None).await
}

/// [`run`], with the failsafe's memory kept in `store`: what an earlier agent remembered is
/// applied at start ([`Failsafe::resume`]: an activation whose `to` passed meanwhile ends at
/// once), and every change is stored before it has consequences (an acceptance is stored before
/// it goes to the controller).
///
/// The client may be started without the broker
/// ([`FirstConnection::Background`](ebadge_bus::FirstConnection::Background)): the device runs, the
/// failsafe counts the outage from the start, and messages for the controller wait in the
/// outbox. A `deliver` of `device` that takes longer than [`DELIVER_TIMEOUT`] is dropped, so it
/// must be cancel-safe (the agent's [`CommandDevice`](crate::command::CommandDevice) is).
pub async fn run_with(
    client: &Client,
    controller: &EntityName,
    device: &mut impl Device,
    failsafe: FailsafeConfig,
    store: Option<Store>,
) -> Result<(), AgentError> {
    let inbox = client.inbox().ok_or(AgentError::InboxTaken)?;
    let remembered = match store.as_ref().map(Store::load).transpose() {
        Ok(remembered) => remembered.unwrap_or_default(),
        Err(e) => {
            // The device must run all the same; what it ran before is lost, and said so.
            tracing::error!(error = %e, "the failsafe's memory cannot be read: starting without it");
            Remembered::default()
        }
    };
    if !remembered.running().is_empty() {
        tracing::warn!(running = ?remembered.running(), "activations remembered from before the restart");
    }
    let (failsafe, notices) = Failsafe::resume(failsafe, &remembered, &Time::now());
    let (orders_tx, orders_rx) = mpsc::channel(DEVICE_QUEUE);
    let (notices_tx, notices_rx) = mpsc::unbounded_channel();
    // The bus half reads this queue at every turn and never waits: a few are plenty.
    let (up_tx, mut up_rx) = mpsc::channel(64);
    let mut bus = BusHalf {
        client,
        controller,
        failsafe,
        store,
        notices: notices_tx,
    };
    bus.remember();
    bus.pass_on(notices);
    let ended = tokio::select! {
        ended = bus.run(inbox, orders_tx, &mut up_rx) => ended,
        gone = device_half(device, orders_rx, notices_rx, up_tx) => Err(gone),
    };
    // What the device said before it went still goes to the controller (a device program
    // that writes its last report and exits).
    while let Ok(message) = up_rx.try_recv() {
        bus.device_said(&message);
    }
    ended
}

/// The half of the agent that never waits on the device.
struct BusHalf<'a> {
    client: &'a Client,
    controller: &'a EntityName,
    failsafe: Failsafe,
    store: Option<Store>,
    notices: mpsc::UnboundedSender<Message>,
}

impl BusHalf<'_> {
    async fn run(
        &mut self,
        mut inbox: Inbox,
        orders: mpsc::Sender<Incoming>,
        up: &mut mpsc::Receiver<Message>,
    ) -> Result<(), AgentError> {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                // A place in the device's queue first: while the device does not take messages,
                // the broker keeps them (both are cancel-safe: a permit dropped is given back).
                (permit, incoming) = async {
                    let permit = orders.reserve().await;
                    (permit, inbox.next().await)
                } => {
                    let (Ok(permit), Some(incoming)) = (permit, incoming) else { return Ok(()) };
                    self.failsafe.to_device(&incoming.message);
                    permit.send(incoming);
                }
                message = up.recv() => {
                    let message = message.ok_or(AgentError::DeviceGone)?;
                    self.device_said(&message);
                }
                _ = tick.tick() => {
                    // The inbox consumed, not the connection: a connection can be up while the
                    // controller cannot reach us (the inbox's node down, the inbox deleted).
                    let notices = self.failsafe.tick(&Time::now(), self.client.is_consuming());
                    self.remember();
                    self.pass_on(notices);
                    self.report_undelivered();
                }
            }
        }
    }

    /// A message of the device, for the controller.
    fn device_said(&mut self, message: &Message) {
        self.failsafe.from_device(message);
        // Stored before the acceptance leaves: the controller never believes in an activation
        // a restarted agent would not end.
        self.remember();
        self.send(message, "a message of the device cannot be sent");
    }

    /// Stores the failsafe's memory if it changed. A store that cannot be written does not stop
    /// the failsafe: it goes on from memory, and says so.
    fn remember(&mut self) {
        if let (true, Some(store)) = (self.failsafe.take_changed(), &self.store)
            && let Err(e) = store.save(&self.failsafe.remembered())
        {
            tracing::error!(error = %e, "the failsafe's memory cannot be stored: a restart now would forget it");
        }
    }

    fn pass_on(&self, notices: Notices) {
        for notice in notices.to_device {
            tracing::warn!(notice = %notice.to_json(), "telling the device");
            // Unbounded, and read first by the device half: notices are a few per activation.
            let _ = self.notices.send(notice);
        }
        for message in notices.to_controller {
            self.send(&message, "a notice for the controller cannot be sent");
        }
    }

    fn send(&self, message: &Message, what: &str) {
        if let Err(e) = self.client.send(self.controller, message) {
            tracing::error!(error = %e, "{what}");
        }
    }

    /// Says what the client gave up (dropped by the outbox's cap in a long outage, refused by
    /// the broker), and frees the records it keeps of them.
    fn report_undelivered(&self) {
        let lost = self.client.undelivered();
        if let Some(first) = lost.first() {
            tracing::warn!(
                count = lost.len(),
                dropped_in_all = self.client.counters().dropped,
                first = %first.reason,
                "messages for the controller were given up"
            );
        }
    }
}

/// What the device half does next.
enum Step {
    /// The device wrote a message (`None`: it is gone).
    Up(Option<Message>),
    /// A message from the controller for the device.
    Order(Incoming),
    /// The first waiting notice is due.
    Notice,
}

/// The half of the agent that waits on the device; returns when the device is gone.
async fn device_half(
    device: &mut impl Device,
    mut orders: mpsc::Receiver<Incoming>,
    mut notices: mpsc::UnboundedReceiver<Message>,
    up: mpsc::Sender<Message>,
) -> AgentError {
    let mut waiting: VecDeque<Message> = VecDeque::new();
    let mut next_try = Instant::now();
    loop {
        let step = tokio::select! {
            Some(notice) = notices.recv() => {
                if waiting.is_empty() {
                    next_try = Instant::now();
                }
                waiting.push_back(notice);
                continue;
            }
            _ = tokio::time::sleep_until(next_try), if !waiting.is_empty() => Step::Notice,
            // Notices go first: an activation's end must not wait behind the controller's chatter.
            Some(incoming) = orders.recv(), if waiting.is_empty() => Step::Order(incoming),
            message = device.next() => Step::Up(message),
        };
        match step {
            Step::Up(None) => return AgentError::DeviceGone,
            Step::Up(Some(message)) => {
                if up.send(message).await.is_err() {
                    return AgentError::DeviceGone;
                }
            }
            Step::Order(incoming) => match deliver(device, &incoming.message).await {
                Ok(()) => incoming.ack(),
                // Unacknowledged: the broker offers it again.
                Err(e) => {
                    tracing::error!(error = %e, from = %incoming.from, "the device did not take a message")
                }
            },
            Step::Notice => {
                let notice = waiting.front().expect("due only when waiting");
                match deliver(device, notice).await {
                    Ok(()) => {
                        waiting.pop_front();
                        next_try = Instant::now();
                    }
                    Err(e) => {
                        tracing::error!(error = %e, notice = %notice.to_json(), "the device did not take the agent's notice; offering it again");
                        next_try = Instant::now() + NOTICE_RETRY;
                    }
                }
            }
        }
    }
}

async fn deliver(device: &mut impl Device, message: &Message) -> Result<(), String> {
    match tokio::time::timeout(DELIVER_TIMEOUT, device.deliver(message)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!(
            "the device did not take it within {} s",
            DELIVER_TIMEOUT.as_secs()
        )),
    }
}
