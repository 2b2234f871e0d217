//! The device side of an HEH: what the agent ([`crate::agent`]) drives. A device tells its controller
//! what it measures and answers (as eBADGE messages: `report`, `accept_activation`,
//! `status_report`, …) and hears what the controller sends (`activate`, `load_price`,
//! `get_report`, …), plus the agent's own notices (failsafe applied, bus back), which are
//! extension messages (`ext_ebadge_…`) so that one format goes both ways.

use ebadge_bus::model::Message;
use std::future::Future;

/// Why a device could not take a message.
#[derive(Debug, thiserror::Error)]
#[error("the device did not take the message: {0}")]
pub struct DeviceError(pub String);

/// A device an HEH agent drives.
///
/// ```
/// use ebadge_heh::device::{Device, DeviceError};
/// use ebadge_bus::model::Message;
///
/// /// A device that accepts every activation and says nothing else.
/// struct Agreeable(Vec<Message>);
///
/// impl Device for Agreeable {
///     async fn next(&mut self) -> Option<Message> {
///         match self.0.pop() {
///             Some(answer) => Some(answer),
///             None => std::future::pending().await,
///         }
///     }
///     async fn deliver(&mut self, message: &Message) -> Result<(), DeviceError> {
///         if let Message::Activate(order) = message {
///             self.0.push(order.accept().into());
///         }
///         Ok(())
///     }
/// }
/// ```
pub trait Device: Send {
    /// The next message the device has for its controller; `None` once the device is gone
    /// (the agent then stops). Must be cancel-safe: the agent drops it when something else
    /// happens first and calls it again.
    fn next(&mut self) -> impl Future<Output = Option<Message>> + Send;

    /// A message for the device: from the controller, or a notice of the agent's own. Must be
    /// cancel-safe too: the agent gives up on a delivery that takes longer than a few seconds
    /// (a device that stops reading must not hold its failsafe), and a message from the
    /// controller given up so is offered again by the broker.
    fn deliver(
        &mut self,
        message: &Message,
    ) -> impl Future<Output = Result<(), DeviceError>> + Send;
}
