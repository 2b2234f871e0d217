//! The consuming side of a session (see [`Consumer`]).

use crate::conventions::{EntityName, inbox_queue};
use crate::events::{CONSUMER, Callbacks, Event};
use amqprs::channel::{BasicConsumeArguments, BasicQosArguments, Channel};
use amqprs::connection::Connection;
use tokio::sync::mpsc;

/// The consuming side of a session: a channel consuming the entity's inbox, or none while the
/// inbox cannot be consumed (when to try again is [`crate::reception::Reception`]'s decision).
#[derive(Default)]
pub(crate) struct Consumer {
    pub(crate) channel: Option<Channel>,
    pub(crate) deliveries: Option<mpsc::UnboundedReceiver<amqprs::channel::ConsumerMessage>>,
}

impl Consumer {
    /// Consumes `me`'s inbox on a new channel of `conn`.
    pub(crate) async fn open(
        &mut self,
        conn: &Connection,
        events: &mpsc::UnboundedSender<Event>,
        me: &EntityName,
        prefetch: u16,
    ) -> Result<(), amqprs::error::Error> {
        let attempt = async {
            let channel = conn.open_channel(None).await?;
            channel
                .register_callback(Callbacks::new(events, CONSUMER))
                .await?;
            channel
                .basic_qos(BasicQosArguments::new(0, prefetch, false))
                .await?;
            let mut args = BasicConsumeArguments::new(&inbox_queue(me), "");
            args.manual_ack(true);
            let (_, deliveries) = channel.basic_consume_rx(args).await?;
            Ok::<_, amqprs::error::Error>((channel, deliveries))
        };
        let (channel, deliveries) = attempt.await?;
        *self = Self {
            channel: Some(channel),
            deliveries: Some(deliveries),
        };
        Ok(())
    }

    pub(crate) fn is_open(&self) -> bool {
        self.deliveries.is_some()
    }

    pub(crate) async fn next(&mut self) -> Option<amqprs::channel::ConsumerMessage> {
        self.deliveries.as_mut()?.recv().await
    }
}
