//! A tap: a live copy of an entity's incoming stream, through a temporary queue in its private
//! namespace bound to its incoming exchange (an HEH has none: its tap binds to the exchanges of
//! the senders it names, [`Tap::open_from`]). The inbox is untouched: the application goes on
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

use crate::amqp::{ConnectError, connect};
use crate::conventions::{EntityName, incoming_exchange, pair_exchange, tap_queue};
use crate::profile::Profile;
use amqprs::channel::{
    BasicConsumeArguments, Channel, ConsumerMessage, ExchangeDeclareArguments, QueueBindArguments,
    QueueDeclareArguments,
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
    /// The entity has no incoming exchange: it is an HEH, whose senders' exchanges are bound
    /// straight to its inbox.
    #[error(
        "{0} has no incoming exchange private-{0}-in: an HEH reads in one hop, its senders' exchanges bound straight to its inbox. Name whose messages to tap: --from SENDER (the exchange SENDER-to-{0}) or --from SENDER-to-GROUP (a group exchange), once per source"
    )]
    NoIncomingExchange(EntityName),
    /// An exchange named by `--from` does not exist.
    #[error(
        "there is no exchange {0}: check --from (a sender's name, or a group exchange SENDER-to-GROUP)"
    )]
    NoSuchExchange(String),
    /// An exchange named by `--from` exists, but the broker refused to bind to it: only the
    /// receiver of a pair exchange and the members of a group may read it (D3.2.3 5.3).
    #[error(
        "the broker refused {me} a binding to {exchange}: an entity reads only the exchanges to itself (SENDER-to-{me}) and to the groups it is a member of"
    )]
    NotReadable {
        /// Who tapped.
        me: EntityName,
        /// The exchange.
        exchange: String,
    },
    /// `--from` named something that is neither an entity nor an exchange `S-to-R`.
    #[error("{0:?} is neither a sender's name nor an exchange SENDER-to-RECEIVER")]
    BadSource(String),
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
    /// The sender: the `<sender>` of the pair exchange it was published to, as a receiver
    /// takes it; else the `user_id` the broker checked; else `unknown`.
    pub from: String,
    /// The receiver half of that exchange when it is not the tapped entity: a group it is a
    /// member of, or, when someone relayed the message through a binding into a pair exchange,
    /// the entity it was really addressed to (the entity's client quarantines such a message
    /// unless it names one of its groups).
    pub to: Option<String>,
    /// The exchange it was published to.
    pub exchange: String,
    /// The routing key, `type[.heh_id]`.
    pub routing_key: String,
    /// The body as it travelled.
    pub body: Vec<u8>,
    /// The body decoded, or why it is not a valid eBADGE message.
    pub message: Result<Message, InvalidMessage>,
}

/// An open tap.
pub struct Tap {
    me: EntityName,
    connection: Connection,
    /// Kept open: amqprs closes a channel when its handle is dropped.
    _channel: Channel,
    queue: String,
    exchanges: Vec<String>,
    deliveries: UnboundedReceiver<ConsumerMessage>,
}

/// The exchange a `--from` source names for receiver `me`: a sender's name stands for its pair
/// exchange `<sender>-to-<me>`; a name with `-to-` is an exchange already (a group's).
///
/// ```
/// use ebadge_bus::{EntityName, tap::source_exchange};
/// let me = EntityName::new("heh-a")?;
/// assert_eq!(source_exchange(&me, "ts")?, "ts-to-heh-a");
/// assert_eq!(source_exchange(&me, "ts-to-all-hehs")?, "ts-to-all-hehs");
/// assert!(source_exchange(&me, "Not a name").is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn source_exchange(me: &EntityName, source: &str) -> Result<String, TapError> {
    if crate::conventions::parse_pair_exchange(source).is_some() {
        return Ok(source.to_owned());
    }
    let sender = EntityName::new(source).map_err(|_| TapError::BadSource(source.to_owned()))?;
    Ok(pair_exchange(&sender, me))
}

impl Tap {
    /// Taps `me`'s incoming stream for routing keys matching `pattern` (`#` for all, `report.#`,
    /// `*.heh-42`), connecting as `me` with its certificate: everything `me` receives, through
    /// its incoming exchange. An HEH has none ([`TapError::NoIncomingExchange`]): use
    /// [`Tap::open_from`].
    pub async fn open(profile: &Profile, me: &EntityName, pattern: &str) -> Result<Tap, TapError> {
        Tap::bound_to(profile, me, vec![incoming_exchange(me)], pattern).await
    }

    /// Taps what `me` receives from `sources`: each a sender's name (its pair exchange to `me`)
    /// or an exchange `S-to-R` that `me` may read (a group's), see [`source_exchange`].
    pub async fn open_from(
        profile: &Profile,
        me: &EntityName,
        sources: &[String],
        pattern: &str,
    ) -> Result<Tap, TapError> {
        let exchanges = sources
            .iter()
            .map(|s| source_exchange(me, s))
            .collect::<Result<Vec<_>, _>>()?;
        Tap::bound_to(profile, me, exchanges, pattern).await
    }

    /// Binds a new tap queue to `exchanges`. Each is looked up first (a passive declaration, on
    /// a channel of its own): the broker answers a binding to a missing exchange by closing the
    /// channel, which amqprs reports without the reason.
    async fn bound_to(
        profile: &Profile,
        me: &EntityName,
        exchanges: Vec<String>,
        pattern: &str,
    ) -> Result<Tap, TapError> {
        check_pattern(pattern)?;
        let broker = |what| move |source| TapError::Broker { what, source };
        let connection = connect(profile, me.as_str()).await?;
        let probe = connection
            .open_channel(None)
            .await
            .map_err(broker("opening a channel"))?;
        for exchange in &exchanges {
            let mut declare = ExchangeDeclareArguments::new(exchange, "topic");
            declare.passive = true;
            if probe.exchange_declare(declare).await.is_err() {
                let _ = connection.close().await;
                return Err(if *exchange == incoming_exchange(me) {
                    TapError::NoIncomingExchange(me.clone())
                } else {
                    TapError::NoSuchExchange(exchange.clone())
                });
            }
        }
        let _ = probe.close().await;
        let channel = connection
            .open_channel(None)
            .await
            .map_err(broker("opening a channel"))?;
        let queue = tap_queue(me, &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let mut declare = QueueDeclareArguments::new(&queue);
        declare.exclusive(true).auto_delete(true).durable(false);
        channel
            .queue_declare(declare)
            .await
            .map_err(broker("declaring the tap queue"))?;
        for exchange in &exchanges {
            // The exchange exists (looked up above), so a refused binding is a refused read.
            if channel
                .queue_bind(QueueBindArguments::new(&queue, exchange, pattern))
                .await
                .is_err()
            {
                let _ = connection.close().await;
                return Err(TapError::NotReadable {
                    me: me.clone(),
                    exchange: exchange.clone(),
                });
            }
        }
        let mut consume = BasicConsumeArguments::new(&queue, "tap");
        consume.auto_ack(true);
        let (_, deliveries) = channel
            .basic_consume_rx(consume)
            .await
            .map_err(broker("consuming from the tap queue"))?;
        Ok(Tap {
            me: me.clone(),
            connection,
            _channel: channel,
            queue,
            exchanges,
            deliveries,
        })
    }

    /// The tap's queue.
    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// The exchanges it is bound to.
    pub fn exchanges(&self) -> &[String] {
        &self.exchanges
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
            let exchange = deliver.exchange().clone();
            let pair = crate::conventions::parse_pair_exchange(&exchange);
            let from = match &pair {
                Some((sender, _)) => sender.as_str().to_owned(),
                None => props.user_id().cloned().unwrap_or_else(|| "unknown".into()),
            };
            let to = pair
                .filter(|(_, receiver)| *receiver != self.me)
                .map(|(_, receiver)| receiver.as_str().to_owned());
            return Some(Tapped {
                from,
                to,
                exchange,
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
