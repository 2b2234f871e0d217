//! A tap: a live copy of an entity's incoming stream, through a temporary queue in its private
//! namespace bound to its incoming exchange. The inbox is untouched: the application goes on
//! receiving everything, and the tap's queue disappears with its connection.
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use ebadge_bus::{EntityName, Profile, tap::Tap};
//! let profile = Profile::load(&Profile::locate(None))?;
//! let mut tap = Tap::open(&profile, &EntityName::new("vpp")?, "report.#").await?;
//! while let Some(seen) = tap.next().await {
//!     println!("{} {} {:?}", seen.from, seen.routing_key, seen.message.map(|m| m.to_json()));
//! }
//! # Ok(()) }
//! ```

use crate::connect::{ConnectError, connect};
use crate::conventions::{EntityName, incoming_exchange, tap_queue};
use crate::profile::Profile;
use amqprs::channel::{
    BasicConsumeArguments, Channel, ConsumerMessage, QueueBindArguments, QueueDeclareArguments,
};
use amqprs::connection::Connection;
use ebadge_model::{InvalidMessage, Message};
use tokio::sync::mpsc::UnboundedReceiver;

/// Why a tap could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum TapError {
    /// The binding pattern is longer than AMQP allows.
    #[error("the pattern is {0} bytes; a binding key has at most 255")]
    PatternTooLong(usize),
    /// The connection failed.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The broker refused the queue, the binding or the consumer.
    #[error("{what}: {source}")]
    Broker {
        /// What was being done.
        what: &'static str,
        /// The broker's answer.
        source: amqprs::error::Error,
    },
}

/// Refuses a binding pattern longer than AMQP allows (amqprs would panic on it): a check that
/// needs no broker, to run before anything else.
pub fn check_pattern(pattern: &str) -> Result<(), TapError> {
    if pattern.len() > 255 {
        return Err(TapError::PatternTooLong(pattern.len()));
    }
    Ok(())
}

/// One message seen by a tap.
#[derive(Debug)]
pub struct Tapped {
    /// The sender, as the broker stamped it (`user_id`), or `unknown`.
    pub from: String,
    /// The routing key, `type[.heh_id]`.
    pub routing_key: String,
    /// The body as it travelled.
    pub body: Vec<u8>,
    /// The body decoded, or why it is not a valid eBADGE message.
    pub message: Result<Message, InvalidMessage>,
}

/// An open tap.
pub struct Tap {
    connection: Connection,
    /// Kept open: amqprs closes a channel when its handle is dropped.
    _channel: Channel,
    queue: String,
    exchange: String,
    deliveries: UnboundedReceiver<ConsumerMessage>,
}

impl Tap {
    /// Taps `me`'s incoming stream for routing keys matching `pattern` (`#` for all, `report.#`,
    /// `*.heh-42`), connecting as `me` with its certificate.
    pub async fn open(profile: &Profile, me: &EntityName, pattern: &str) -> Result<Tap, TapError> {
        check_pattern(pattern)?;
        let broker = |what| move |source| TapError::Broker { what, source };
        let connection = connect(profile, me.as_str()).await?;
        let channel = connection
            .open_channel(None)
            .await
            .map_err(broker("opening a channel"))?;
        let queue = tap_queue(me, &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let exchange = incoming_exchange(me);
        let mut declare = QueueDeclareArguments::new(&queue);
        declare.exclusive(true).auto_delete(true).durable(false);
        channel
            .queue_declare(declare)
            .await
            .map_err(broker("declaring the tap queue"))?;
        channel
            .queue_bind(QueueBindArguments::new(&queue, &exchange, pattern))
            .await
            .map_err(broker("binding the tap queue"))?;
        let mut consume = BasicConsumeArguments::new(&queue, "tap");
        consume.auto_ack(true);
        let (_, deliveries) = channel
            .basic_consume_rx(consume)
            .await
            .map_err(broker("consuming from the tap queue"))?;
        Ok(Tap {
            connection,
            _channel: channel,
            queue,
            exchange,
            deliveries,
        })
    }

    /// The tap's queue.
    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// The exchange it is bound to (the entity's incoming exchange).
    pub fn exchange(&self) -> &str {
        &self.exchange
    }

    /// The next message, or `None` when the connection is gone.
    pub async fn next(&mut self) -> Option<Tapped> {
        loop {
            let delivery = self.deliveries.recv().await?;
            let (Some(deliver), Some(props), Some(body)) = (
                delivery.deliver,
                delivery.basic_properties,
                delivery.content,
            ) else {
                continue;
            };
            return Some(Tapped {
                from: props.user_id().cloned().unwrap_or_else(|| "unknown".into()),
                routing_key: deliver.routing_key().clone(),
                message: Message::decode_slice(&body),
                body,
            });
        }
    }

    /// Closes the connection (the broker deletes the tap's queue with it).
    pub async fn close(self) {
        let _ = self.connection.close().await;
    }
}
