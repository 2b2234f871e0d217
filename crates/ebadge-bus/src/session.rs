//! One connection's life, owned by the supervisor task of a [`Client`](crate::Client): connect
//! with backoff and jitter, set up the publishing (confirm mode) and consuming channels, then
//! publish from the outbox, settle confirms, forward acknowledgements and check every delivery
//! (quarantine, dedupe, answers to waiting requests) until the connection is lost or closed.

use crate::client::{
    AckHandle, Incoming, PendingKey, QUARANTINE_FROM_HEADER, QUARANTINE_REASON_HEADER, Shared,
};
use crate::connect::connect;
use crate::conventions::{EntityName, inbox_queue, quarantine_queue};
use crate::counters::Counters;
use crate::dedupe::DedupeWindow;
use crate::outbox::Outgoing;
use crate::publisher::Publisher;
use amqprs::callbacks::{ChannelCallback, ConnectionCallback};
use amqprs::channel::{
    BasicAckArguments, BasicConsumeArguments, BasicQosArguments, Channel, ConfirmSelectArguments,
    ExchangeDeclareArguments, QueueBindArguments, QueueDeclareArguments,
};
use amqprs::connection::Connection;
use amqprs::{Ack, BasicProperties, Cancel, Close, CloseChannel, Nack, Return};
use ebadge_model::Message;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

pub(crate) enum Event {
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
pub(crate) struct Supervisor {
    pub(crate) shared: Arc<Shared>,
    pub(crate) ack_rx: mpsc::UnboundedReceiver<(u64, u64)>,
    pub(crate) inbox_tx: mpsc::Sender<Incoming>,
    pub(crate) dedupe: DedupeWindow,
    pub(crate) session: u64,
    /// A message for the application that did not fit its inbox yet. It outlives a session: the
    /// dedupe window has seen it, so its redelivery would be dropped.
    pub(crate) waiting: Option<Incoming>,
    /// Delivery tags of this session handed towards the application and not acknowledged yet.
    pub(crate) unacked: BTreeSet<u64>,
}

impl Supervisor {
    /// A supervisor for `shared`'s connection, before its first session.
    pub(crate) fn new(
        shared: Arc<Shared>,
        ack_rx: mpsc::UnboundedReceiver<(u64, u64)>,
        inbox_tx: mpsc::Sender<Incoming>,
    ) -> Self {
        let dedupe = DedupeWindow::new(shared.config.dedupe_window);
        Self {
            shared,
            ack_rx,
            inbox_tx,
            dedupe,
            session: 0,
            waiting: None,
            unacked: BTreeSet::new(),
        }
    }

    pub(crate) async fn run(mut self, first: Option<Connection>) {
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
            // Tags are per channel: the new session starts with none outstanding.
            self.unacked.clear();
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
            // Provisioning makes the quarantine (a quorum queue in a cluster). Where it did not,
            // we make a classic one; a failed passive check closes only the channel it ran on.
            let quarantine = quarantine_queue(&me);
            let mut consume = conn.open_channel(None).await?;
            let mut check = QueueDeclareArguments::new(&quarantine);
            check.passive(true);
            if consume.queue_declare(check).await.is_err() {
                let mut exchange = ExchangeDeclareArguments::new(&quarantine, "topic");
                exchange.durable(true);
                publish.exchange_declare(exchange).await?;
                let mut queue = QueueDeclareArguments::new(&quarantine);
                queue.durable(true);
                publish.queue_declare(queue).await?;
                publish
                    .queue_bind(QueueBindArguments::new(&quarantine, &quarantine, "#"))
                    .await?;
                consume = conn.open_channel(None).await?;
            }
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
                    let mut tags: Vec<u64> = std::iter::from_fn(|| self.ack_rx.try_recv().ok())
                        .filter(|(session, _)| *session == self.session)
                        .map(|(_, tag)| tag)
                        .collect();
                    let _ = self.acknowledge(&consume, &mut tags).await;
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
                    let mut tags: Vec<u64> = ack.into_iter().chain(std::iter::from_fn(|| self.ack_rx.try_recv().ok()))
                        .filter(|(session, _)| *session == self.session)
                        .map(|(_, tag)| tag)
                        .collect();
                    self.acknowledge(&consume, &mut tags).await?;
                }
                // Backpressure without stalling: while the application's inbox is full, one message
                // waits here and no more are read (the prefetch bound stops the broker), but
                // confirms, acks and publishes go on.
                delivery = deliveries.recv(), if self.waiting.is_none() => match delivery {
                    None => return Err("the consumer ended".into()),
                    Some(d) => {
                        self.waiting = self.deliver(d, &consume).await?;
                        if let Some(incoming) = &self.waiting {
                            self.unacked.insert(incoming.ack.tag);
                        }
                    }
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

    /// Sends the application's acknowledgements, coalesced: every tag below the oldest message
    /// the application still holds goes in one `multiple` ack; the rest one by one.
    async fn acknowledge(&mut self, consume: &Channel, tags: &mut [u64]) -> Result<(), String> {
        for tag in tags.iter() {
            self.unacked.remove(tag);
        }
        let floor = self.unacked.first().copied().unwrap_or(u64::MAX);
        tags.sort_unstable();
        let below = tags.partition_point(|t| *t < floor);
        let fail = |e: amqprs::error::Error| format!("ack failed: {e}");
        if below > 0 {
            consume
                .basic_ack(BasicAckArguments::new(tags[below - 1], true))
                .await
                .map_err(fail)?;
        }
        for tag in &tags[below..] {
            consume
                .basic_ack(BasicAckArguments::new(*tag, false))
                .await
                .map_err(fail)?;
        }
        Ok(())
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
