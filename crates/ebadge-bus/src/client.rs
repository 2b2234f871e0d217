//! The client: typed send and receive over the bus conventions, with a reliability layer the
//! caller does not see. Reconnects with backoff and jitter; keeps every send in the outbox until
//! the broker confirms it and republishes in order after a reconnect; drops redelivered
//! duplicates; moves invalid incoming messages to `private-<me>-quarantine` with the reason.

use crate::connect::{ConnectError, connect};
use crate::conventions::{
    EntityName, NameError, inbox_queue, pair_exchange, quarantine_queue, routing_key,
};
use crate::counters::{CounterSnapshot, Counters};
use crate::dedupe::DedupeWindow;
use crate::handler::{Handled, Handler, dispatch};
use crate::outbox::{Outbox, OutboxError, Outgoing};
use crate::profile::Profile;
use amqprs::callbacks::{ChannelCallback, ConnectionCallback};
use amqprs::channel::{
    BasicAckArguments, BasicConsumeArguments, BasicPublishArguments, BasicQosArguments, Channel,
    ConfirmSelectArguments, ExchangeDeclareArguments, QueueBindArguments, QueueDeclareArguments,
};
use amqprs::connection::Connection;
use amqprs::{
    Ack, BasicProperties, Cancel, Close, CloseChannel, FieldName, FieldTable, FieldValue, LongStr,
    Nack, Return,
};
use ebadge_model::{
    AcceptActivation, Activate, InvalidMessage, Message, ModifyActivation, RejectActivation,
    Response,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, mpsc, oneshot, watch};

/// Header naming why a message was quarantined.
pub const QUARANTINE_REASON_HEADER: &str = "x-ebadge-reason";
/// Header naming who sent a quarantined message (its user_id, or `unknown`).
pub const QUARANTINE_FROM_HEADER: &str = "x-ebadge-from";

/// How a client behaves; [`ClientConfig::new`] gives the defaults.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Where the broker is and where the certificates are.
    pub profile: Profile,
    /// Who we are (the certificate CN).
    pub name: EntityName,
    /// Most messages kept for confirmation in memory (or on disk with `durable_outbox`); the
    /// oldest are dropped past it, and counted. Default 100,000: a 60-s outage at 10 msgs/s
    /// needs 600, a VPP's burst of 5,000 activations fits many times.
    pub outbox_cap: usize,
    /// Keep the outbox in this SQLite file, so sends survive a process restart.
    pub durable_outbox: Option<PathBuf>,
    /// Unacknowledged deliveries the broker may push at once.
    pub prefetch: u16,
    /// Message ids remembered for duplicate detection.
    pub dedupe_window: usize,
    /// First reconnect delay; doubles up to `reconnect_max`, with ±50 % jitter.
    pub reconnect_min: Duration,
    /// Longest reconnect delay.
    pub reconnect_max: Duration,
    /// Incoming messages buffered for the application.
    pub inbox_capacity: usize,
}

impl ClientConfig {
    /// Defaults for entity `name` with `profile`.
    pub fn new(profile: Profile, name: EntityName) -> Self {
        Self {
            profile,
            name,
            outbox_cap: 100_000,
            durable_outbox: None,
            prefetch: 1000,
            dedupe_window: 100_000,
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
            inbox_capacity: 10_000,
        }
    }
}

/// A send that could not be accepted.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The message breaks the data model; nothing was sent.
    #[error("not sent: {0}")]
    Invalid(#[from] InvalidMessage),
    /// The routing key or exchange name cannot be used.
    #[error("not sent: {0}")]
    Name(#[from] NameError),
    /// The durable outbox could not store it.
    #[error("not sent: {0}")]
    Outbox(#[from] OutboxError),
    /// The client was shut down.
    #[error("not sent: the client is closed")]
    Closed,
}

/// A request that got no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// Sending failed.
    #[error(transparent)]
    Send(#[from] SendError),
    /// A market message without `msg_id` expects no response.
    #[error("{0} carries no msg_id, so no response will come")]
    NoResponseExpected(String),
}

/// How an HEH answered an activation order.
#[derive(Debug, Clone, PartialEq)]
pub enum ActivationOutcome {
    /// `accept_activation`.
    Accepted(AcceptActivation),
    /// `reject_activation`.
    Rejected(RejectActivation),
    /// `modify_activation`: a counter-proposal.
    Modified(ModifyActivation),
    /// No answer within the timeout.
    TimedOut,
}

/// A message delivered to the application.
#[derive(Debug)]
pub struct Incoming {
    /// The sender, as the broker validated it (AMQP user_id).
    pub from: EntityName,
    /// The routing key it came with (`type[.heh_id]`).
    pub routing_key: String,
    /// The exchange it was published to (`<sender>-to-<us or our group>`).
    pub exchange: String,
    /// AMQP message_id.
    pub message_id: String,
    /// The decoded, valid message.
    pub message: Message,
    /// Whether the broker delivered it before (the application did not see that delivery).
    pub redelivered: bool,
    ack: AckHandle,
}

#[derive(Debug)]
struct AckHandle {
    session: u64,
    tag: u64,
    tx: mpsc::UnboundedSender<(u64, u64)>,
}

impl Incoming {
    /// Acknowledges the message: the broker forgets it. Unacknowledged messages come back after
    /// a reconnect (and the dedupe window then drops them, since the application saw them).
    pub fn ack(&self) {
        let _ = self.ack.tx.send((self.ack.session, self.ack.tag));
    }
}

/// The stream of incoming messages (from [`Client::inbox`]).
pub struct Inbox {
    rx: mpsc::Receiver<Incoming>,
}

impl Inbox {
    /// The next message; `None` once the client is closed.
    pub async fn next(&mut self) -> Option<Incoming> {
        self.rx.recv().await
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum PendingKey {
    Activation(String, u32),
    Market(String),
}

struct Shared {
    config: ClientConfig,
    outbox: Mutex<Outbox>,
    wake: Notify,
    progress: Notify,
    counters: Counters,
    highest_published: AtomicU64,
    pending: Mutex<HashMap<PendingKey, oneshot::Sender<Message>>>,
    channel: Mutex<Option<Channel>>,
    connected: watch::Sender<bool>,
    shutdown: watch::Sender<bool>,
    ack_tx: mpsc::UnboundedSender<(u64, u64)>,
    inbox_rx: Mutex<Option<mpsc::Receiver<Incoming>>>,
    supervisor: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// A connected entity. Cheap to clone; all clones share one connection and one outbox.
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("name", &self.shared.config.name)
            .finish()
    }
}

impl Client {
    /// Connects as `config.name`. The first connection must succeed (so a wrong certificate or
    /// address is reported at once); later losses are repaired in the background.
    pub async fn connect(config: ClientConfig) -> Result<Client, ConnectError> {
        let first = connect(&config.profile, config.name.as_str()).await?;
        Self::launch(config, Some(first))
    }

    /// Starts without waiting for the broker: sends go to the outbox and leave when a connection
    /// comes up (an HEH booting while its uplink is down). Fails only if the outbox cannot open.
    pub fn start(config: ClientConfig) -> Result<Client, ConnectError> {
        Self::launch(config, None)
    }

    fn launch(config: ClientConfig, first: Option<Connection>) -> Result<Client, ConnectError> {
        let outbox = match &config.durable_outbox {
            Some(path) => Outbox::durable(path, config.outbox_cap).map_err(|e| ConnectError::File {
                what: "durable outbox",
                path: path.clone(),
                reason: e.source.to_string(),
                hint: "The outbox is an SQLite file; check the directory exists and is writable",
            })?,
            None => Outbox::in_memory(config.outbox_cap),
        };
        // Messages left by an earlier process were published before, maybe: count them as such.
        let highest = outbox.after(0).last().map_or(0, |o| o.seq);
        let (ack_tx, ack_rx) = mpsc::unbounded_channel();
        let (inbox_tx, inbox_rx) = mpsc::channel(config.inbox_capacity.max(1));
        let shared = Arc::new(Shared {
            outbox: Mutex::new(outbox),
            wake: Notify::new(),
            progress: Notify::new(),
            counters: Counters::default(),
            highest_published: AtomicU64::new(highest),
            pending: Mutex::new(HashMap::new()),
            channel: Mutex::new(None),
            connected: watch::channel(false).0,
            shutdown: watch::channel(false).0,
            ack_tx,
            inbox_rx: Mutex::new(Some(inbox_rx)),
            supervisor: Mutex::new(None),
            config,
        });
        let supervisor = Supervisor {
            shared: shared.clone(),
            ack_rx,
            inbox_tx,
            dedupe: DedupeWindow::new(shared.config.dedupe_window),
            session: 0,
            waiting: None,
        };
        let handle = tokio::spawn(supervisor.run(first));
        *shared.supervisor.lock().unwrap() = Some(handle);
        Ok(Client { shared })
    }

    /// Our entity name.
    pub fn name(&self) -> &EntityName {
        &self.shared.config.name
    }

    /// Sends a message to `peer` (an entity or a group): validated, then kept in the outbox until
    /// the broker confirms it. Returns its message_id at once; the reliability layer does the rest.
    pub fn send(&self, peer: &EntityName, message: &Message) -> Result<String, SendError> {
        let body = message.encode()?;
        let key = routing_key(message.type_name(), message.heh_id().map(|h| h.as_str()))?;
        self.enqueue(Outgoing {
            seq: 0,
            exchange: pair_exchange(&self.shared.config.name, peer),
            routing_key: key,
            message_id: uuid::Uuid::new_v4().to_string(),
            msg_type: message.type_name().to_owned(),
            body: body.into_bytes(),
            headers: Vec::new(),
        })
        .map(|o| o.message_id)
    }

    /// Sends and waits until the broker has confirmed this message (and every earlier one).
    pub async fn send_confirmed(
        &self,
        peer: &EntityName,
        message: &Message,
    ) -> Result<String, SendError> {
        let id = self.send(peer, message)?;
        let seq = self.shared.highest_enqueued();
        self.wait_confirmed(seq).await;
        Ok(id)
    }

    /// Waits until every message sent so far is confirmed by the broker.
    pub async fn flush(&self) {
        let seq = self.shared.highest_enqueued();
        self.wait_confirmed(seq).await;
    }

    async fn wait_confirmed(&self, seq: u64) {
        loop {
            let progress = self.shared.progress.notified();
            let done = {
                let outbox = self.shared.outbox.lock().unwrap();
                outbox.oldest_seq().is_none_or(|oldest| oldest > seq)
            };
            if done {
                return;
            }
            progress.await;
        }
    }

    fn enqueue(&self, message: Outgoing) -> Result<Outgoing, SendError> {
        if *self.shared.shutdown.borrow() {
            return Err(SendError::Closed);
        }
        let stored = self.shared.outbox.lock().unwrap().push(message)?;
        Counters::add(&self.shared.counters.sent, 1);
        self.shared.wake.notify_one();
        Ok(stored)
    }

    /// Sends an activation order to an HEH (or its operator) and waits for the answer matching its
    /// id and modification_count, or the timeout.
    pub async fn activate(
        &self,
        peer: &EntityName,
        order: &Activate,
        timeout: Duration,
    ) -> Result<ActivationOutcome, RequestError> {
        let key = PendingKey::Activation(order.id.as_str().to_owned(), order.modification_count);
        let answer = self
            .request_with(peer, &Message::Activate(order.clone()), key, timeout)
            .await?;
        Ok(match answer {
            Some(Message::AcceptActivation(m)) => ActivationOutcome::Accepted(m),
            Some(Message::RejectActivation(m)) => ActivationOutcome::Rejected(m),
            Some(Message::ModifyActivation(m)) => ActivationOutcome::Modified(m),
            _ => ActivationOutcome::TimedOut,
        })
    }

    /// Sends a market message carrying `msg_id` and waits for its `response` (None on timeout).
    pub async fn request(
        &self,
        peer: &EntityName,
        message: &Message,
        timeout: Duration,
    ) -> Result<Option<Response>, RequestError> {
        let msg_id = message
            .msg_id()
            .ok_or_else(|| RequestError::NoResponseExpected(message.type_name().to_owned()))?;
        let key = PendingKey::Market(msg_id.as_str().to_owned());
        Ok(
            match self.request_with(peer, message, key, timeout).await? {
                Some(Message::Response(r)) => Some(r),
                _ => None,
            },
        )
    }

    /// Answers a market message that carries `msg_id` with `200 OK` (D3.1.3 6.1.2).
    pub fn respond_ok(&self, incoming: &Incoming) -> Result<Option<String>, SendError> {
        match incoming.message.ok_response() {
            Some(response) => self
                .send(&incoming.from, &Message::Response(response))
                .map(Some),
            None => Ok(None),
        }
    }

    async fn request_with(
        &self,
        peer: &EntityName,
        message: &Message,
        key: PendingKey,
        timeout: Duration,
    ) -> Result<Option<Message>, SendError> {
        let (tx, rx) = oneshot::channel();
        self.shared.pending.lock().unwrap().insert(key.clone(), tx);
        if let Err(e) = self.send(peer, message) {
            self.shared.pending.lock().unwrap().remove(&key);
            return Err(e);
        }
        let answer = tokio::time::timeout(timeout, rx)
            .await
            .ok()
            .and_then(Result::ok);
        self.shared.pending.lock().unwrap().remove(&key);
        Ok(answer)
    }

    /// The stream of incoming messages. There is one: the second call returns `None`.
    pub fn inbox(&self) -> Option<Inbox> {
        self.shared
            .inbox_rx
            .lock()
            .unwrap()
            .take()
            .map(|rx| Inbox { rx })
    }

    /// Runs `handler` on every incoming message until the client closes, acknowledging each
    /// after its method returns.
    pub async fn serve<H: Handler>(&self, mut handler: H) {
        let Some(mut inbox) = self.inbox() else {
            tracing::error!("serve: the inbox was taken already");
            return;
        };
        while let Some(incoming) = inbox.next().await {
            if dispatch(&mut handler, self, &incoming).await == Handled::No {
                Counters::add(&self.shared.counters.unhandled, 1);
                tracing::info!(msg = incoming.message.type_name(), from = %incoming.from, "no handler for this message type");
            }
            incoming.ack();
        }
    }

    /// The counters now.
    pub fn counters(&self) -> CounterSnapshot {
        let outbox = self.shared.outbox.lock().unwrap();
        self.shared
            .counters
            .snapshot(outbox.len(), outbox.dropped())
    }

    /// Whether a connection is up now.
    pub fn is_connected(&self) -> bool {
        *self.shared.connected.borrow()
    }

    /// Waits until a connection is up.
    pub async fn connected(&self) {
        let mut rx = self.shared.connected.subscribe();
        let _ = rx.wait_for(|c| *c).await;
    }

    /// The current publishing channel, for custom AMQP use (D3.2.3 6.4: the library stays
    /// transparent). It changes after a reconnect; publishes on it bypass the outbox.
    pub fn channel(&self) -> Option<Channel> {
        self.shared.channel.lock().unwrap().clone()
    }

    /// Waits for every send to be confirmed (at most `timeout`), then sends the acknowledgements
    /// given so far and closes the connection.
    pub async fn close(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.flush()).await;
        self.shared.shutdown.send_replace(true);
        self.shared.wake.notify_one();
        let handle = self.shared.supervisor.lock().unwrap().take();
        if let Some(handle) = handle {
            let _ = tokio::time::timeout(Duration::from_secs(5), handle).await;
        }
    }
}

impl Shared {
    fn highest_enqueued(&self) -> u64 {
        self.outbox
            .lock()
            .unwrap()
            .after(0)
            .last()
            .map_or(0, |o| o.seq)
    }
}

enum Event {
    Ack(u64, bool),
    Nack(u64, bool),
    Closed(String),
}

struct Callbacks(mpsc::UnboundedSender<Event>);

#[async_trait::async_trait]
impl ChannelCallback for Callbacks {
    async fn close(
        &mut self,
        _: &Channel,
        close: CloseChannel,
    ) -> Result<(), amqprs::error::Error> {
        let _ = self.0.send(Event::Closed(format!(
            "channel closed by the broker: {} {}",
            close.reply_code(),
            close.reply_text()
        )));
        Ok(())
    }
    async fn cancel(&mut self, _: &Channel, _: Cancel) -> Result<(), amqprs::error::Error> {
        let _ = self
            .0
            .send(Event::Closed("consumer cancelled by the broker".into()));
        Ok(())
    }
    async fn flow(&mut self, _: &Channel, active: bool) -> Result<bool, amqprs::error::Error> {
        Ok(active)
    }
    async fn publish_ack(&mut self, _: &Channel, ack: Ack) {
        let _ = self.0.send(Event::Ack(ack.delivery_tag(), ack.mutiple()));
    }
    async fn publish_nack(&mut self, _: &Channel, nack: Nack) {
        let _ = self
            .0
            .send(Event::Nack(nack.delivery_tag(), nack.multiple()));
    }
    async fn publish_return(&mut self, _: &Channel, _: Return, _: BasicProperties, _: Vec<u8>) {}
}

#[async_trait::async_trait]
impl ConnectionCallback for Callbacks {
    async fn close(&mut self, _: &Connection, close: Close) -> Result<(), amqprs::error::Error> {
        let _ = self.0.send(Event::Closed(format!(
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

/// Owns the connection's life: sessions one after another, with backoff between them.
struct Supervisor {
    shared: Arc<Shared>,
    ack_rx: mpsc::UnboundedReceiver<(u64, u64)>,
    inbox_tx: mpsc::Sender<Incoming>,
    dedupe: DedupeWindow,
    session: u64,
    /// A message for the application that did not fit its inbox yet. It outlives a session: the
    /// dedupe window has seen it, so its redelivery would be dropped.
    waiting: Option<Incoming>,
}

impl Supervisor {
    async fn run(mut self, first: Option<Connection>) {
        let mut connection = first;
        let mut delay = self.shared.config.reconnect_min;
        let mut shutdown = self.shared.shutdown.subscribe();
        loop {
            let conn = match connection.take() {
                Some(c) => c,
                None => match connect(
                    &self.shared.config.profile,
                    self.shared.config.name.as_str(),
                )
                .await
                {
                    Ok(c) => {
                        if self.session > 0 {
                            Counters::add(&self.shared.counters.reconnects, 1);
                        }
                        c
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, retry_in = ?delay, "reconnect failed");
                        let jittered = delay.mul_f64(0.5 + fastrand::f64());
                        tokio::select! {
                            _ = tokio::time::sleep(jittered) => {}
                            _ = shutdown.changed() => return,
                        }
                        delay = (delay * 2).min(self.shared.config.reconnect_max);
                        continue;
                    }
                },
            };
            self.session += 1;
            let ended = self.session(conn).await;
            self.shared.connected.send_replace(false);
            *self.shared.channel.lock().unwrap() = None;
            match ended {
                Ok(()) => return,
                Err(reason) => {
                    tracing::warn!(%reason, "connection lost; reconnecting");
                    delay = self.shared.config.reconnect_min;
                    let jittered = delay.mul_f64(0.5 + fastrand::f64());
                    tokio::time::sleep(jittered).await;
                }
            }
        }
    }

    /// One connection's life. Ok on shutdown, Err(reason) on loss.
    async fn session(&mut self, conn: Connection) -> Result<(), String> {
        let me = self.shared.config.name.clone();
        let (events_tx, mut events) = mpsc::unbounded_channel();
        let setup = async {
            conn.register_callback(Callbacks(events_tx.clone())).await?;
            let publish = conn.open_channel(None).await?;
            publish
                .register_callback(Callbacks(events_tx.clone()))
                .await?;
            publish
                .confirm_select(ConfirmSelectArguments::default())
                .await?;
            // The quarantine lives in our namespace; declaring it is idempotent.
            let quarantine = quarantine_queue(&me);
            let mut exchange = ExchangeDeclareArguments::new(&quarantine, "topic");
            exchange.durable(true);
            publish.exchange_declare(exchange).await?;
            let mut queue = QueueDeclareArguments::new(&quarantine);
            queue.durable(true);
            publish.queue_declare(queue).await?;
            publish
                .queue_bind(QueueBindArguments::new(&quarantine, &quarantine, "#"))
                .await?;
            let consume = conn.open_channel(None).await?;
            consume
                .register_callback(Callbacks(events_tx.clone()))
                .await?;
            consume
                .basic_qos(BasicQosArguments::new(
                    0,
                    self.shared.config.prefetch,
                    false,
                ))
                .await?;
            let mut args = BasicConsumeArguments::new(&inbox_queue(&me), "");
            args.manual_ack(true);
            let (_, deliveries) = consume.basic_consume_rx(args).await?;
            Ok::<_, amqprs::error::Error>((publish, consume, deliveries))
        };
        let (publish, consume, mut deliveries) = setup.await.map_err(|e| e.to_string())?;
        *self.shared.channel.lock().unwrap() = Some(publish.clone());
        self.shared.connected.send_replace(true);

        let mut publisher = Publisher {
            next_tag: 1,
            inflight: BTreeMap::new(),
            sent_upto: 0,
            retry: BTreeSet::new(),
        };
        let mut shutdown = self.shared.shutdown.subscribe();
        let io_failure = conn.listen_network_io_failure();
        tokio::pin!(io_failure);
        let mut retry_timer = tokio::time::interval(Duration::from_secs(1));
        let inbox_tx = self.inbox_tx.clone();
        loop {
            publisher
                .publish_pending(&self.shared, &publish)
                .await
                .map_err(|e| format!("publish failed: {e}"))?;
            tokio::select! {
                _ = &mut io_failure => return Err("network failure".into()),
                _ = shutdown.changed() => {
                    // Acknowledgements the application gave before closing must reach the
                    // broker, or those messages come back to the next run.
                    while let Ok((session, tag)) = self.ack_rx.try_recv() {
                        if session == self.session {
                            let _ = consume.basic_ack(BasicAckArguments::new(tag, false)).await;
                        }
                    }
                    let _ = conn.clone().close().await;
                    return Ok(());
                }
                event = events.recv() => match event {
                    Some(Event::Ack(tag, multiple)) => publisher.confirm(&self.shared, tag, multiple),
                    Some(Event::Nack(tag, multiple)) => publisher.nack(&self.shared, tag, multiple),
                    Some(Event::Closed(reason)) => return Err(reason),
                    None => return Err("callbacks ended".into()),
                },
                _ = self.shared.wake.notified() => {}
                _ = retry_timer.tick() => publisher.schedule_retries(),
                ack = self.ack_rx.recv() => {
                    tracing::trace!(?ack, session = self.session, "ack");
                    if let Some((session, tag)) = ack
                        && session == self.session
                    {
                        consume
                            .basic_ack(BasicAckArguments::new(tag, false))
                            .await
                            .map_err(|e| format!("ack failed: {e}"))?;
                    }
                }
                // Backpressure without stalling: while the application's inbox is full, one message
                // waits here and no more are read (the prefetch bound stops the broker), but
                // confirms, acks and publishes go on.
                delivery = deliveries.recv(), if self.waiting.is_none() => match delivery {
                    None => return Err("the consumer ended".into()),
                    Some(d) => self.waiting = self.deliver(d, &consume).await?,
                },
                permit = inbox_tx.reserve(), if self.waiting.is_some() => match permit {
                    Ok(permit) => permit.send(self.waiting.take().expect("guarded by is_some")),
                    Err(_) => {
                        tracing::debug!("the application dropped its inbox; message left unacknowledged");
                        self.waiting = None;
                    }
                },
            }
        }
    }

    /// Checks one delivery: quarantined, dropped as a duplicate, handed to a waiting requester,
    /// or returned for the application.
    async fn deliver(
        &mut self,
        delivery: amqprs::channel::ConsumerMessage,
        consume: &Channel,
    ) -> Result<Option<Incoming>, String> {
        let (Some(deliver), Some(props), Some(body)) = (
            delivery.deliver,
            delivery.basic_properties,
            delivery.content,
        ) else {
            return Ok(None);
        };
        let tag = deliver.delivery_tag();
        let ack = |tag| consume.basic_ack(BasicAckArguments::new(tag, false));
        let from = props.user_id().cloned();
        let message_id = props.message_id().cloned();
        let verdict = match (&from, &message_id) {
            (None, _) => Err("no user_id: the sender is unknown".to_owned()),
            (_, None) => Err("no message_id".to_owned()),
            (Some(user), Some(_)) => match EntityName::new(user) {
                Err(e) => Err(e.to_string()),
                Ok(name) => Message::decode_slice(&body)
                    .map(|m| (name, m))
                    .map_err(|e| e.to_string()),
            },
        };
        let (from_name, message) = match verdict {
            Ok(v) => v,
            Err(reason) => {
                self.quarantine(
                    &deliver,
                    from.as_deref(),
                    message_id.as_deref(),
                    body,
                    &reason,
                )?;
                return ack(tag).await.map(|_| None).map_err(|e| e.to_string());
            }
        };
        let message_id = message_id.unwrap_or_default();
        if !self.dedupe.first_time(from_name.as_str(), &message_id) {
            Counters::add(&self.shared.counters.duplicates, 1);
            return ack(tag).await.map(|_| None).map_err(|e| e.to_string());
        }
        // An awaited answer goes to its requester, not to the application's handlers.
        let key = match &message {
            Message::AcceptActivation(_)
            | Message::RejectActivation(_)
            | Message::ModifyActivation(_) => message
                .activation_key()
                .map(|(id, count)| PendingKey::Activation(id.as_str().to_owned(), count)),
            Message::Response(r) => Some(PendingKey::Market(r.msg_id.as_str().to_owned())),
            _ => None,
        };
        let waiter = key.and_then(|key| self.shared.pending.lock().unwrap().remove(&key));
        if let Some(waiter) = waiter {
            let _ = waiter.send(message);
            Counters::add(&self.shared.counters.received, 1);
            return ack(tag).await.map(|_| None).map_err(|e| e.to_string());
        }
        Counters::add(&self.shared.counters.received, 1);
        let incoming = Incoming {
            from: from_name,
            routing_key: deliver.routing_key().clone(),
            exchange: deliver.exchange().clone(),
            message_id,
            message,
            redelivered: deliver.redelivered(),
            ack: AckHandle {
                session: self.session,
                tag,
                tx: self.shared.ack_tx.clone(),
            },
        };
        Ok(Some(incoming))
    }

    fn quarantine(
        &self,
        deliver: &amqprs::Deliver,
        from: Option<&str>,
        message_id: Option<&str>,
        body: Vec<u8>,
        reason: &str,
    ) -> Result<(), String> {
        tracing::warn!(from = from.unwrap_or("unknown"), %reason, "quarantined an invalid message");
        let me = &self.shared.config.name;
        let stored = self.shared.outbox.lock().unwrap().push(Outgoing {
            seq: 0,
            exchange: quarantine_queue(me),
            routing_key: deliver.routing_key().clone(),
            message_id: message_id.map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned),
            msg_type: "quarantined".into(),
            body,
            headers: vec![
                (QUARANTINE_REASON_HEADER.into(), reason.to_owned()),
                (
                    QUARANTINE_FROM_HEADER.into(),
                    from.unwrap_or("unknown").to_owned(),
                ),
                ("x-ebadge-exchange".into(), deliver.exchange().clone()),
            ],
        });
        stored.map_err(|e| e.to_string())?;
        Counters::add(&self.shared.counters.quarantined, 1);
        self.shared.wake.notify_one();
        Ok(())
    }
}

/// Publishing state of one session.
struct Publisher {
    next_tag: u64,
    /// Delivery tag → outbox sequence number.
    inflight: BTreeMap<u64, u64>,
    /// Highest sequence number published in this session.
    sent_upto: u64,
    /// Nacked sequence numbers to publish again at the next retry tick.
    retry: BTreeSet<u64>,
}

/// Publishes per loop turn at most this many, so acks and deliveries keep flowing.
const PUBLISH_BATCH: usize = 2_000;

impl Publisher {
    async fn publish_pending(
        &mut self,
        shared: &Shared,
        channel: &Channel,
    ) -> Result<(), amqprs::error::Error> {
        let batch: Vec<Outgoing> = {
            let outbox = shared.outbox.lock().unwrap();
            outbox
                .after(self.sent_upto)
                .take(PUBLISH_BATCH)
                .cloned()
                .collect()
        };
        let me = shared.config.name.as_str();
        let highest = shared.highest_published.load(Ordering::Relaxed);
        for message in &batch {
            let mut props = BasicProperties::default();
            props
                .with_content_type("application/json")
                .with_persistence(true)
                .with_message_id(&message.message_id)
                .with_message_type(&message.msg_type)
                .with_timestamp(unix_now())
                .with_user_id(me);
            if !message.headers.is_empty() {
                let mut table = FieldTable::new();
                for (k, v) in &message.headers {
                    if let (Ok(k), Ok(v)) = (
                        FieldName::try_from(k.as_str()),
                        LongStr::try_from(v.clone()),
                    ) {
                        table.insert(k, FieldValue::S(v));
                    }
                }
                props.with_headers(table);
            }
            channel
                .basic_publish(
                    props,
                    message.body.clone(),
                    BasicPublishArguments::new(&message.exchange, &message.routing_key),
                )
                .await?;
            if message.seq <= highest {
                Counters::add(&shared.counters.republished, 1);
            }
            self.inflight.insert(self.next_tag, message.seq);
            self.next_tag += 1;
            self.sent_upto = message.seq;
        }
        if let Some(last) = batch.last() {
            shared
                .highest_published
                .fetch_max(last.seq, Ordering::Relaxed);
            if batch.len() == PUBLISH_BATCH {
                shared.wake.notify_one();
            }
        }
        Ok(())
    }

    fn settled(&mut self, tag: u64, multiple: bool) -> Vec<u64> {
        if multiple {
            let rest = self.inflight.split_off(&(tag + 1));
            std::mem::replace(&mut self.inflight, rest)
                .into_values()
                .collect()
        } else {
            self.inflight.remove(&tag).into_iter().collect()
        }
    }

    fn confirm(&mut self, shared: &Shared, tag: u64, multiple: bool) {
        let seqs = self.settled(tag, multiple);
        let mut outbox = shared.outbox.lock().unwrap();
        for seq in &seqs {
            if let Err(e) = outbox.confirm(*seq) {
                tracing::error!(error = %e, "could not remove a confirmed message from the outbox");
            }
        }
        drop(outbox);
        Counters::add(&shared.counters.confirmed, seqs.len() as u64);
        shared.progress.notify_waiters();
    }

    fn nack(&mut self, shared: &Shared, tag: u64, multiple: bool) {
        let seqs = self.settled(tag, multiple);
        Counters::add(&shared.counters.nacked, seqs.len() as u64);
        tracing::warn!(
            count = seqs.len(),
            "the broker refused messages (nack); retrying in a second"
        );
        self.retry.extend(seqs);
    }

    /// Nacked messages go out again (after the ones in flight: a nack is a full queue, rare).
    fn schedule_retries(&mut self) {
        if let Some(first) = self.retry.first().copied() {
            self.sent_upto = self.sent_upto.min(first - 1);
            // Everything after `first` is published again; receivers drop the copies.
            self.retry.clear();
        }
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
