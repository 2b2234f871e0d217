//! The kit's side of the bus: it reads its own inbox raw, recording for each message what the
//! client under test put on the wire (exchange, routing key, properties, body), and it sends
//! the client requests with publisher confirms. Both come back by themselves after a cut link
//! or a broker restart, which the kit causes.

use super::KitError;
use amqprs::callbacks::ChannelCallback;
use amqprs::channel::{
    BasicConsumeArguments, BasicPublishArguments, Channel, ConfirmSelectArguments,
    QueueDeclareArguments, QueuePurgeArguments,
};
use amqprs::connection::Connection;
use amqprs::{Ack, BasicProperties, Cancel, CloseChannel, Nack, Return};
use ebadge_bus::conventions::{inbox_queue, new_message_id, pair_exchange, routing_key};
use ebadge_bus::{EntityName, Profile, amqp::connect};
use ebadge_model::{Message, Time};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, mpsc};

/// One message from the client, as it arrived.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Whose inbox it reached: one of the kit's entities.
    pub receiver: EntityName,
    /// When the kit read it.
    pub at: Instant,
    /// The exchange it was published to.
    pub exchange: String,
    /// Its routing key.
    pub routing_key: String,
    /// `delivery_mode` (2: persistent).
    pub delivery_mode: Option<u8>,
    /// `user_id`, if set.
    pub user_id: Option<String>,
    /// `message_id`, if set.
    pub message_id: Option<String>,
    /// The body.
    pub body: Vec<u8>,
}

impl Seen {
    /// The body as JSON, valid eBADGE or not: the kit recognises an answer by its type and
    /// its key fields, so that an invalid answer fails `valid-messages` alone, not every check
    /// that waits for it.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The message type (`msg`), if the body has one.
    pub fn kind(&self) -> Option<String> {
        self.json()?.get("msg")?.as_str().map(str::to_owned)
    }

    /// The time in `field`; one without an offset read as UTC (`valid-messages` reports it).
    pub fn time(&self, field: &str) -> Option<Time> {
        let json = self.json()?;
        let text = json.get(field)?.as_str()?;
        Time::parse(text)
            .or_else(|_| Time::parse(&format!("{text}Z")))
            .ok()
    }
}

/// What the kit has read so far, and a bell rung at each new message.
#[derive(Default)]
struct Inbox {
    seen: Mutex<Vec<Seen>>,
    rung: Notify,
}

/// The counterpart: reads and sends as the kit's entity.
pub struct Counterpart {
    profile: Profile,
    me: EntityName,
    client: EntityName,
    inbox: Arc<Inbox>,
    reader: tokio::task::JoinHandle<()>,
    sender: tokio::sync::Mutex<Option<Sender>>,
}

impl Counterpart {
    /// Empties both inboxes (what earlier runs left) and starts reading the kit's own.
    pub async fn start(
        profile: &Profile,
        me: &EntityName,
        client: &EntityName,
    ) -> Result<Counterpart, KitError> {
        for name in [me, client] {
            within(async {
                let connection = connect(profile, name.as_str()).await?;
                let channel = connection.open_channel(None).await.map_err(broker)?;
                channel
                    .queue_purge(QueuePurgeArguments::new(&inbox_queue(name)))
                    .await
                    .map_err(broker)?;
                let _ = connection.close().await;
                Ok(())
            })
            .await?;
        }
        let inbox = Arc::new(Inbox::default());
        let reader = tokio::spawn(read(profile.clone(), me.clone(), inbox.clone()));
        Ok(Counterpart {
            profile: profile.clone(),
            me: me.clone(),
            client: client.clone(),
            inbox,
            reader,
            sender: tokio::sync::Mutex::new(None),
        })
    }

    /// Everything read so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.inbox.seen.lock().unwrap().clone()
    }

    /// Waits until a message read after `since` satisfies `wanted`, at most until `deadline`.
    pub async fn wait_for(
        &self,
        since: Instant,
        deadline: Instant,
        wanted: impl Fn(&Seen) -> bool,
    ) -> Option<Seen> {
        loop {
            let rung = self.inbox.rung.notified();
            let found = self
                .inbox
                .seen
                .lock()
                .unwrap()
                .iter()
                .find(|s| s.at >= since && wanted(s))
                .cloned();
            if found.is_some() {
                return found;
            }
            if tokio::time::timeout_at(deadline.into(), rung)
                .await
                .is_err()
            {
                return None;
            }
        }
    }

    /// Sends `message` to the client with a fresh message id; see [`Counterpart::send_as`].
    pub async fn send(&self, message: &Message) -> Result<(), KitError> {
        self.send_as(message, &new_message_id()).await
    }

    /// Sends `message` with `message_id`, persistent, as a client of this project would, and
    /// waits for the broker's confirm; tries three times, on a fresh connection after a failure
    /// (the link or the broker may just be back).
    pub async fn send_as(&self, message: &Message, message_id: &str) -> Result<(), KitError> {
        let exchange = pair_exchange(&self.me, &self.client);
        let key = routing_key(message.type_name(), message.heh_id().map(|h| h.as_str()))
            .map_err(|e| KitError::Bus(e.to_string()))?;
        let mut props = BasicProperties::default();
        props
            .with_persistence(true)
            .with_message_id(message_id)
            .with_user_id(self.me.as_str());
        let mut last = String::new();
        for _ in 0..3 {
            let mut sender = self.sender.lock().await;
            if sender.is_none() {
                match Sender::open(&self.profile, &self.me).await {
                    Ok(s) => *sender = Some(s),
                    Err(e) => {
                        last = e.to_string();
                        drop(sender);
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                }
            }
            let s = sender.as_mut().expect("opened above");
            match s.publish(&exchange, &key, props.clone(), message).await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    last = e;
                    if let Some(s) = sender.take() {
                        let _ = s.connection.close().await;
                    }
                }
            }
        }
        Err(KitError::Bus(format!(
            "the kit could not send {} to {}: {last}",
            message.type_name(),
            self.client
        )))
    }

    /// How many consumers the client's inbox has now (a passive declaration as the client).
    pub async fn client_consumers(&self) -> Result<u32, KitError> {
        within(async {
            let connection = connect(&self.profile, self.client.as_str()).await?;
            let channel = connection.open_channel(None).await.map_err(broker)?;
            let mut declare = QueueDeclareArguments::new(&inbox_queue(&self.client));
            declare.passive(true);
            let answer = channel.queue_declare(declare).await.map_err(broker);
            let _ = connection.close().await;
            Ok(answer?.map_or(0, |(_, _, consumers)| consumers))
        })
        .await
    }

    /// Stops reading.
    pub async fn stop(self) {
        self.reader.abort();
        if let Some(s) = self.sender.lock().await.take() {
            let _ = s.connection.close().await;
        }
    }
}

fn broker(e: amqprs::error::Error) -> KitError {
    KitError::Bus(e.to_string())
}

/// A short exchange with the broker, given up after 10 s: a broker wedged after its restart
/// must not hold the kit.
async fn within<T>(
    work: impl std::future::Future<Output = Result<T, KitError>>,
) -> Result<T, KitError> {
    tokio::time::timeout(Duration::from_secs(10), work)
        .await
        .unwrap_or_else(|_| {
            Err(KitError::Bus(
                "the broker did not answer within 10 s".into(),
            ))
        })
}

/// Reads the kit's inbox for good: after the link or the broker went away, it connects again.
async fn read(profile: Profile, me: EntityName, inbox: Arc<Inbox>) {
    loop {
        if let Ok(connection) = connect(&profile, me.as_str()).await
            && let Ok(channel) = connection.open_channel(None).await
        {
            let mut args = BasicConsumeArguments::new(&inbox_queue(&me), "");
            args.auto_ack(true);
            if let Ok((_, mut deliveries)) = channel.basic_consume_rx(args).await {
                let mut alive = tokio::time::interval(Duration::from_secs(1));
                loop {
                    let delivery = tokio::select! {
                        // Deliveries first: what arrived before the connection went is kept.
                        biased;
                        delivery = deliveries.recv() => delivery,
                        // A broker that went away may leave the receiver open.
                        _ = alive.tick() => {
                            if connection.is_open() { continue } else { None }
                        }
                    };
                    let Some(delivery) = delivery else { break };
                    let (Some(deliver), Some(props), Some(body)) = (
                        delivery.deliver,
                        delivery.basic_properties,
                        delivery.content,
                    ) else {
                        continue;
                    };
                    inbox.seen.lock().unwrap().push(Seen {
                        receiver: me.clone(),
                        at: Instant::now(),
                        exchange: deliver.exchange().clone(),
                        routing_key: deliver.routing_key().clone(),
                        delivery_mode: props.delivery_mode(),
                        user_id: props.user_id().cloned(),
                        message_id: props.message_id().cloned(),
                        body,
                    });
                    inbox.rung.notify_waiters();
                }
            }
            // Held until here: amqprs closes a channel when its handle is dropped.
            drop(channel);
            let _ = connection.close().await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A confirming channel, and the broker's answers to its publishes.
struct Sender {
    connection: Connection,
    channel: Channel,
    answers: mpsc::UnboundedReceiver<Answer>,
}

enum Answer {
    Ack,
    Nack,
    Closed(String),
}

struct Confirms(mpsc::UnboundedSender<Answer>);

#[async_trait::async_trait]
impl ChannelCallback for Confirms {
    async fn close(
        &mut self,
        _: &Channel,
        close: CloseChannel,
    ) -> Result<(), amqprs::error::Error> {
        let _ = self.0.send(Answer::Closed(format!(
            "{} {}",
            close.reply_code(),
            close.reply_text()
        )));
        Ok(())
    }
    async fn cancel(&mut self, _: &Channel, _: Cancel) -> Result<(), amqprs::error::Error> {
        Ok(())
    }
    async fn flow(&mut self, _: &Channel, active: bool) -> Result<bool, amqprs::error::Error> {
        Ok(active)
    }
    async fn publish_ack(&mut self, _: &Channel, _: Ack) {
        let _ = self.0.send(Answer::Ack);
    }
    async fn publish_nack(&mut self, _: &Channel, _: Nack) {
        let _ = self.0.send(Answer::Nack);
    }
    async fn publish_return(&mut self, _: &Channel, _: Return, _: BasicProperties, _: Vec<u8>) {}
}

impl Sender {
    async fn open(profile: &Profile, me: &EntityName) -> Result<Sender, KitError> {
        let connection = connect(profile, me.as_str()).await?;
        let channel = connection.open_channel(None).await.map_err(broker)?;
        let (tx, answers) = mpsc::unbounded_channel();
        channel
            .register_callback(Confirms(tx))
            .await
            .map_err(broker)?;
        channel
            .confirm_select(ConfirmSelectArguments::default())
            .await
            .map_err(broker)?;
        Ok(Sender {
            connection,
            channel,
            answers,
        })
    }

    /// One publish, one confirm: the kit sends a message at a time.
    async fn publish(
        &mut self,
        exchange: &str,
        key: &str,
        props: BasicProperties,
        message: &Message,
    ) -> Result<(), String> {
        self.channel
            .basic_publish(
                props,
                message.to_json_vec(),
                BasicPublishArguments::new(exchange, key),
            )
            .await
            .map_err(|e| e.to_string())?;
        match tokio::time::timeout(Duration::from_secs(10), self.answers.recv()).await {
            Ok(Some(Answer::Ack)) => Ok(()),
            Ok(Some(Answer::Nack)) => Err("the broker refused it (nack)".into()),
            Ok(Some(Answer::Closed(why))) => Err(format!("the broker closed the channel: {why}")),
            Ok(None) => Err("the channel is gone".into()),
            Err(_) => Err("no confirm within 10 s".into()),
        }
    }
}
