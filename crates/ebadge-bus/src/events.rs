//! What the broker tells a session, as events on one channel: amqprs callbacks forwarded with
//! the generation of the channel they came from.

use amqprs::callbacks::{ChannelCallback, ConnectionCallback};
use amqprs::channel::Channel;
use amqprs::connection::Connection;
use amqprs::{Ack, BasicProperties, Cancel, Close, CloseChannel, Nack, Return};
use tokio::sync::mpsc;

/// What the broker told us, tagged with the channel generation it came from (0: the
/// connection; [`CONSUMER`]: the consuming channel; 1, 2, …: publishing channels, one after
/// another).
pub(crate) enum Event {
    Ack(u64, u64, bool),
    Nack(u64, u64, bool),
    Return(u64, Option<String>, String, String),
    ChannelClosed(u64, u16, String),
    /// The broker cancelled our consumer (its inbox was deleted, or its node went down).
    Cancelled,
    Closed(String),
}

/// The generation tag of the consuming channel's events.
pub(crate) const CONSUMER: u64 = u64::MAX;

/// Forwards amqprs callbacks as [`Event`]s.
pub(crate) struct Callbacks {
    tx: mpsc::UnboundedSender<Event>,
    generation: u64,
}

impl Callbacks {
    pub(crate) fn new(tx: &mpsc::UnboundedSender<Event>, generation: u64) -> Self {
        Self {
            tx: tx.clone(),
            generation,
        }
    }
}

#[async_trait::async_trait]
impl ChannelCallback for Callbacks {
    async fn close(
        &mut self,
        _: &Channel,
        close: CloseChannel,
    ) -> Result<(), amqprs::error::Error> {
        let _ = self.tx.send(Event::ChannelClosed(
            self.generation,
            close.reply_code(),
            close.reply_text().clone(),
        ));
        Ok(())
    }
    async fn cancel(&mut self, _: &Channel, _: Cancel) -> Result<(), amqprs::error::Error> {
        let _ = self.tx.send(Event::Cancelled);
        Ok(())
    }
    async fn flow(&mut self, _: &Channel, active: bool) -> Result<bool, amqprs::error::Error> {
        Ok(active)
    }
    async fn publish_ack(&mut self, _: &Channel, ack: Ack) {
        let _ = self.tx.send(Event::Ack(
            self.generation,
            ack.delivery_tag(),
            ack.mutiple(),
        ));
    }
    async fn publish_nack(&mut self, _: &Channel, nack: Nack) {
        let _ = self.tx.send(Event::Nack(
            self.generation,
            nack.delivery_tag(),
            nack.multiple(),
        ));
    }
    async fn publish_return(
        &mut self,
        _: &Channel,
        ret: Return,
        props: BasicProperties,
        _: Vec<u8>,
    ) {
        let _ = self.tx.send(Event::Return(
            self.generation,
            props.message_id().cloned(),
            ret.exchange().clone(),
            ret.routing_key().clone(),
        ));
    }
}

#[async_trait::async_trait]
impl ConnectionCallback for Callbacks {
    async fn close(&mut self, _: &Connection, close: Close) -> Result<(), amqprs::error::Error> {
        let _ = self.tx.send(Event::Closed(format!(
            "connection closed by the broker: {} {}",
            close.reply_code(),
            close.reply_text()
        )));
        Ok(())
    }
    async fn blocked(&mut self, _: &Connection, reason: String) {
        tracing::warn!(%reason, "the broker blocks our publishes (resource alarm)");
    }
    async fn unblocked(&mut self, _: &Connection) {}
    async fn secret_updated(&mut self, _: &Connection) {}
}
