//! The agent's loop: messages from the controller go to the device (acknowledged once the device
//! took them), the device's messages go to the controller, and once a second the failsafe looks
//! at the time and at the bus: whether the agent's inbox is consumed.

use crate::failsafe::{Failsafe, FailsafeConfig, Notices};
use ebadge_bus::device::Device;
use ebadge_bus::model::Time;
use ebadge_bus::{Client, EntityName};
use std::time::Duration;

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

/// Runs until the device is gone: passes messages between `client`'s inbox, `controller` and
/// `device`, keeping activations failsafe.
pub async fn run(
    client: &Client,
    controller: &EntityName,
    device: &mut impl Device,
    failsafe: FailsafeConfig,
) -> Result<(), AgentError> {
    let mut inbox = client.inbox().ok_or(AgentError::InboxTaken)?;
    let mut failsafe = Failsafe::new(failsafe);
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            incoming = inbox.next() => {
                let Some(incoming) = incoming else { return Ok(()) };
                failsafe.to_device(&incoming.message);
                match device.deliver(&incoming.message).await {
                    Ok(()) => incoming.ack(),
                    // Unacknowledged: the broker offers it again after a reconnect.
                    Err(e) => tracing::error!(error = %e, from = %incoming.from, "the device refused a message"),
                }
            }
            up = device.next() => {
                let message = up.ok_or(AgentError::DeviceGone)?;
                failsafe.from_device(&message);
                if let Err(e) = client.send(controller, &message) {
                    tracing::error!(error = %e, "a message of the device cannot be sent");
                }
            }
            _ = tick.tick() => {
                // The inbox consumed, not the connection: a connection can be up while the
                // controller cannot reach us (the inbox's node down, the inbox deleted).
                let notices = failsafe.tick(&Time::now(), client.is_consuming());
                pass_on(client, controller, device, notices).await;
            }
        }
    }
}

async fn pass_on(
    client: &Client,
    controller: &EntityName,
    device: &mut impl Device,
    notices: Notices,
) {
    for notice in notices.to_device {
        tracing::warn!(notice = %notice.to_json(), "telling the device");
        if let Err(e) = device.deliver(&notice).await {
            tracing::error!(error = %e, "the device refused the agent's notice");
        }
    }
    for message in notices.to_controller {
        if let Err(e) = client.send(controller, &message) {
            tracing::error!(error = %e, "a status report cannot be sent");
        }
    }
}
