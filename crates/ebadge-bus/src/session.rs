//! One connection's life, owned by the supervisor task of a [`Client`](crate::Client): connect
//! with backoff and jitter, set up the publishing (confirm mode) and consuming ([`crate::consumer`]) channels, then
//! publish from the outbox, settle what the broker answers ([`Publisher`]), forward the
//! application's acknowledgements and check every delivery until the connection is lost or
//! closed. This module does the I/O; the decisions are the pure cores' ([`crate::settlement`]
//! for what is published, [`crate::reception`] for what is received).

use crate::amqp::{connect, connect_labelled};
use crate::backoff::Backoff;
use crate::client_state::ClientState;
use crate::consumer::Consumer;
use crate::conventions::{EntityName, quarantine_queue};
use crate::counters::Counters;
use crate::events::{CONSUMER, Callbacks, Event};
use crate::incoming::{AckHandle, Incoming, Settle};
use crate::publisher::Publisher;
use crate::reception::{Delivery, Received, Reception};
use crate::settlement::{Lane, Reopen, Settled, Settlement};
use crate::verdict::RejectClass;
use amqprs::channel::{
    BasicAckArguments, BasicNackArguments, Channel, ConfirmSelectArguments,
    ExchangeDeclareArguments, QueueBindArguments, QueueDeclareArguments,
};
use amqprs::connection::Connection;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Makes `private-<me>-quarantine` (exchange, durable queue, binding): on first use, so that an
/// entity that never receives anything invalid costs the broker no quarantine, and again after
/// the quarantine could not route a copy (an operator deleted a part of it). A classic queue:
/// durable on its node (a crash delays the operator's look, loses nothing). The queue is
/// declared only if a passive check, on a channel of its own (a missing queue closes it), does
/// not find it: an existing one may carry arguments an operator gave it. The exchange and the
/// binding are declared every time; both are idempotent.
async fn ensure_quarantine(conn: &Connection, me: &EntityName) -> Result<(), amqprs::error::Error> {
    let quarantine = quarantine_queue(me);
    let check_channel = conn.open_channel(None).await?;
    let mut check = QueueDeclareArguments::new(&quarantine);
    check.passive(true);
    let exists = check_channel.queue_declare(check).await.is_ok();
    let channel = if exists {
        check_channel
    } else {
        conn.open_channel(None).await?
    };
    let mut exchange = ExchangeDeclareArguments::new(&quarantine, "topic");
    exchange.durable(true);
    channel.exchange_declare(exchange).await?;
    if !exists {
        let mut queue = QueueDeclareArguments::new(&quarantine);
        queue.durable(true);
        channel.queue_declare(queue).await?;
    }
    channel
        .queue_bind(QueueBindArguments::new(&quarantine, &quarantine, "#"))
        .await?;
    let _ = channel.close().await;
    Ok(())
}

/// The header in which RabbitMQ keeps the exchange a dead-lettered message was first published
/// to (a queue migration moves messages by dead-lettering them).
const FIRST_DEATH_EXCHANGE: &str = "x-first-death-exchange";

/// A session that lasted this long was a good one: the next reconnect starts from the shortest
/// delay again. A session that fails sooner (the broker refuses something at every start, or a
/// link that drops right after the handshake) keeps backing off, so a deterministic failure
/// does not cost the broker a TLS handshake ten times a second.
const SESSION_STABLE: Duration = Duration::from_secs(10);

/// Owns the connection's life: sessions one after another, with backoff between them.
pub(crate) struct Supervisor {
    shared: Arc<ClientState>,
    /// What the application did with the messages it was given (by handle id).
    ack_rx: mpsc::UnboundedReceiver<Settle>,
    inbox_tx: mpsc::Sender<Incoming>,
    /// The receiving side's decisions and state: outlives channels and connections.
    reception: Reception,
    /// What is in flight and what waits for a retry, one per publishing lane (the first also
    /// carries the quarantine copies): outlives channels and connections.
    settlements: Vec<Settlement>,
    /// Publishing channels opened so far (their generations).
    generation: u64,
    sessions: u64,
    /// A message for the application that did not fit its inbox yet. It outlives a session: the
    /// dedupe window has seen it, so its redelivery is recognised as held.
    waiting: Option<Incoming>,
    /// Whether this session made sure the quarantine exists (again after it could not route a
    /// copy).
    quarantine_ready: bool,
    /// The delay before the next connection attempt.
    reconnect: Backoff,
}

/// The lane that publishes quarantine copies.
const QUARANTINE_LANE: usize = 0;

/// One publishing lane of a session: the connection it publishes on, its confirm-mode channel,
/// and when that channel may be replaced. Its settlement is the supervisor's, by index.
struct LaneLink<'c> {
    conn: &'c Connection,
    publisher: Publisher,
    reopen: Reopen,
}

impl Supervisor {
    /// A supervisor for `shared`'s connection, before its first session.
    pub(crate) fn new(
        shared: Arc<ClientState>,
        ack_rx: mpsc::UnboundedReceiver<Settle>,
        inbox_tx: mpsc::Sender<Incoming>,
    ) -> Self {
        let config = &shared.config;
        let reception = Reception::new(
            config.name.clone(),
            config.groups.clone(),
            config.prefetch,
            config.dedupe_window,
        );
        let reconnect = Backoff::new(shared.config.reconnect_min, shared.config.reconnect_max);
        // Messages left by an earlier process were published before, maybe: count them as such.
        let published_before = shared.outbox.lock().unwrap().newest_seq().unwrap_or(0);
        let settlements = Lane::all(shared.config.publish_connections)
            .into_iter()
            .map(|lane| Settlement::for_lane(lane, published_before))
            .collect();
        Self {
            shared,
            ack_rx,
            inbox_tx,
            reception,
            settlements,
            generation: 0,
            sessions: 0,
            waiting: None,
            quarantine_ready: false,
            reconnect,
        }
    }

    pub(crate) async fn run(mut self, first: Option<Connection>) {
        let mut connection = first;
        let mut shutdown = self.shared.shutdown.subscribe();
        loop {
            // A close that came while the link was down or being remade: no new session.
            if *shutdown.borrow() {
                return;
            }
            let conn = match connection.take() {
                Some(c) => c,
                None => match connect(
                    &self.shared.config.profile,
                    self.shared.config.name.as_str(),
                )
                .await
                {
                    Ok(c) => {
                        if self.sessions > 0 {
                            Counters::add(&self.shared.counters.reconnects, 1);
                        }
                        c
                    }
                    Err(e) => {
                        let wait = self.reconnect.next_jittered();
                        tracing::warn!(error = %e, retry_in = ?wait, "reconnect failed");
                        tokio::select! {
                            _ = tokio::time::sleep(wait) => {}
                            _ = closed(&mut shutdown) => return,
                        }
                        continue;
                    }
                },
            };
            self.sessions += 1;
            // Tags are per channel: held messages wait for their redelivery.
            self.reception.new_connection();
            let began = Instant::now();
            let ended = self.session(conn).await;
            self.shared.connected.send_replace(false);
            self.shared.consuming.send_replace(false);
            match ended {
                Ok(()) => return,
                Err(reason) => {
                    if began.elapsed() >= SESSION_STABLE {
                        self.reconnect.reset();
                    }
                    let wait = self.reconnect.next_jittered();
                    tracing::warn!(%reason, retry_in = ?wait, "connection lost; reconnecting");
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = closed(&mut shutdown) => return,
                    }
                }
            }
        }
    }

    /// Opens a confirm-mode publishing channel with the next generation.
    async fn publishing_channel(
        &mut self,
        conn: &Connection,
        events: &mpsc::UnboundedSender<Event>,
    ) -> Result<(Channel, u64), amqprs::error::Error> {
        self.generation += 1;
        let channel = conn.open_channel(None).await?;
        channel
            .register_callback(Callbacks::new(events, self.generation))
            .await?;
        channel
            .confirm_select(ConfirmSelectArguments::default())
            .await?;
        Ok((channel, self.generation))
    }

    /// Replaces lane `index`'s publishing channel; what was in flight on it goes out again.
    async fn reopen(
        &mut self,
        index: usize,
        lane: &mut LaneLink<'_>,
        events: &mpsc::UnboundedSender<Event>,
    ) -> Result<(), String> {
        let old = lane.publisher.channel().clone();
        if old.is_open() {
            let _ = old.close().await;
        }
        let (channel, generation) = self
            .publishing_channel(lane.conn, events)
            .await
            .map_err(|e| format!("reopening the publishing channel failed: {e}"))?;
        self.settlements[index].channel_lost(Instant::now());
        lane.publisher = Publisher::new(channel, generation);
        Counters::add(&self.shared.counters.channels_reopened, 1);
        Ok(())
    }

    /// One connection's life, plus the publishing connections of
    /// [`crate::ClientConfig::publish_connections`]. Ok on shutdown, Err(reason) on loss.
    async fn session(&mut self, conn: Connection) -> Result<(), String> {
        let (events_tx, events) = mpsc::unbounded_channel();
        let config = &self.shared.config;
        let mut publishing = Vec::with_capacity(config.publish_connections);
        let mut opened = Ok(());
        let count = config.publish_connections;
        for lane in 1..=count {
            let label = format!("{} publishing {lane}/{count}", config.name);
            match connect_labelled(&config.profile, config.name.as_str(), &label).await {
                Ok(c) => publishing.push(c),
                Err(e) => {
                    opened = Err(format!("opening a publishing connection failed: {e}"));
                    break;
                }
            }
        }
        let ended = match opened {
            Ok(()) => self.serve(&conn, &publishing, events_tx, events).await,
            Err(e) => {
                let _ = conn.clone().close().await;
                Err(e)
            }
        };
        close_within(publishing, Duration::from_secs(2)).await;
        ended
    }

    /// Serves one session: consumes on `conn`, publishes on `publishing` (a lane each), or on
    /// `conn` too when there are none.
    async fn serve(
        &mut self,
        conn: &Connection,
        publishing: &[Connection],
        events_tx: mpsc::UnboundedSender<Event>,
        mut events: mpsc::UnboundedReceiver<Event>,
    ) -> Result<(), String> {
        let me = self.shared.config.name.clone();
        // Any of the connections failing ends the session (and so all of them). Polled once
        // here, in this task, so each listens before anything can fail: amqprs tells a failure
        // only to listeners already subscribed.
        let mut failures: Vec<std::pin::Pin<Box<dyn Future<Output = bool> + Send + '_>>> =
            std::iter::once(conn)
                .chain(publishing)
                .map(|c| Box::pin(c.listen_network_io_failure()) as _)
                .collect();
        let io_failure = std::future::poll_fn(move |cx| {
            if failures.iter_mut().any(|f| f.as_mut().poll(cx).is_ready()) {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        });
        tokio::pin!(io_failure);
        if ready_now(io_failure.as_mut()).await {
            return Err("network failure".into());
        }
        let lane_conns: Vec<&Connection> = if publishing.is_empty() {
            vec![conn]
        } else {
            publishing.iter().collect()
        };
        let setup = async {
            for c in std::iter::once(conn).chain(publishing) {
                c.register_callback(Callbacks::new(&events_tx, 0)).await?;
            }
            let mut lanes = Vec::with_capacity(lane_conns.len());
            for lane_conn in &lane_conns {
                let (publish, generation) = self.publishing_channel(lane_conn, &events_tx).await?;
                lanes.push(LaneLink {
                    conn: lane_conn,
                    publisher: Publisher::new(publish, generation),
                    reopen: Reopen::default(),
                });
            }
            Ok::<_, amqprs::error::Error>(lanes)
        };
        let mut lanes = setup.await.map_err(|e| e.to_string())?;
        let mut consumer = Consumer::default();
        self.consume(&mut consumer, conn, &events_tx).await;
        // Refused messages that were being retried on the lost connection go out again now;
        // quarantine copies of its deliveries are void (their originals come again).
        let now = Instant::now();
        for settlement in &mut self.settlements {
            settlement.channel_lost(now);
            settlement.forget_quarantine();
        }
        self.shared.connected.send_replace(true);

        let mut shutdown = self.shared.shutdown.subscribe();
        let mut retry_timer = tokio::time::interval(Duration::from_secs(1));
        // After a long await in the loop, one tick, not a burst of the missed ones (two
        // "nacked ticks" milliseconds apart would replace a channel too soon).
        retry_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Armed only while something waits on it; armed anew, its first tick is a second
        // away (not at once: a message given back must not come back in a loop).
        let mut retry_armed = false;
        let inbox_tx = self.inbox_tx.clone();
        self.quarantine_ready = false;
        loop {
            if self.settlements[QUARANTINE_LANE].quarantine_waiting() && !self.quarantine_ready {
                match ensure_quarantine(lanes[QUARANTINE_LANE].conn, &me).await {
                    Ok(()) => self.quarantine_ready = true,
                    // Its node down, an exchange of another type in the way: the copies are
                    // refused and tried again after their backoff, never the session ended
                    // (nothing else could be sent while a copy waits).
                    Err(e) => {
                        let why = format!("making the quarantine failed: {e}");
                        tracing::warn!(%why, "the quarantine is unavailable");
                        let settled = self.settlements[QUARANTINE_LANE]
                            .quarantine_unavailable(&why, Instant::now());
                        self.settled(settled, &consumer).await?;
                    }
                }
            }
            for index in 0..lanes.len() {
                let lane = &lanes[index];
                let Err(e) = lane
                    .publisher
                    .publish_pending(&self.shared, &mut self.settlements[index])
                    .await
                else {
                    continue;
                };
                // A channel the broker closed over a refused publish: its close event is queued
                // (amqprs calls the callback before it marks the channel closed).
                let generation = lane.publisher.generation;
                while let Ok(event) = events.try_recv() {
                    self.on_event(event, &events_tx, &mut lanes, &mut consumer)
                        .await?;
                }
                if lanes[index].publisher.generation == generation {
                    return Err(format!("publish failed: {e}"));
                }
            }
            // A lane that had nacks is ticked once more after they stop, so that its count of
            // nacked ticks and its reopening backoff start from zero at the next incident.
            let needs_tick = self.reception.needs_tick()
                || self.settlements.iter().any(Settlement::needs_tick)
                || lanes.iter().any(|l| l.reopen.needs_tick());
            if needs_tick && !retry_armed {
                retry_timer.reset();
            }
            retry_armed = needs_tick;
            tokio::select! {
                _ = &mut io_failure => return Err("network failure".into()),
                _ = closed(&mut shutdown) => {
                    // Acknowledgements the application gave before closing must reach the
                    // broker, or those messages come back to the next run.
                    let settles = std::iter::from_fn(|| self.ack_rx.try_recv().ok()).collect();
                    let tags = self.reception.closing(settles);
                    let _ = self.acknowledge(&consumer, tags).await;
                    // Quarantine copies on their way get a moment to be confirmed: those holding
                    // their originals are acknowledged rather than quarantined again by the next
                    // run, the others are not lost.
                    let patience = tokio::time::sleep(Duration::from_secs(2));
                    tokio::pin!(patience);
                    let quarantine = &mut self.settlements[QUARANTINE_LANE];
                    if self.quarantine_ready && quarantine.quarantine_waiting() {
                        let _ = lanes[QUARANTINE_LANE]
                            .publisher
                            .publish_pending(&self.shared, quarantine)
                            .await;
                    }
                    while self.settlements[QUARANTINE_LANE].quarantine_pending() {
                        tokio::select! {
                            _ = &mut patience => break,
                            Some(event) = events.recv() => {
                                if self.on_event(event, &events_tx, &mut lanes, &mut consumer).await.is_err() {
                                    break;
                                }
                            }
                        }
                    }
                    let lost = self.settlements[QUARANTINE_LANE].abandon_quarantine();
                    Counters::add(&self.shared.counters.quarantine_dropped, lost);
                    let _ = conn.clone().close().await;
                    return Ok(());
                }
                event = events.recv() => match event {
                    Some(event) => self.on_event(event, &events_tx, &mut lanes, &mut consumer).await?,
                    None => return Err("callbacks ended".into()),
                },
                _ = self.shared.wake.notified() => {}
                _ = retry_timer.tick(), if retry_armed => {
                    self.give_back(&consumer).await?;
                    let now = Instant::now();
                    for (index, lane) in lanes.iter_mut().enumerate() {
                        self.settlements[index].tick(now);
                        self.after_tick(index, lane, &events_tx).await?;
                    }
                    if self.reception.consume_due(now) {
                        self.consume(&mut consumer, conn, &events_tx).await;
                    }
                }
                settle = self.ack_rx.recv() => {
                    let settles: Vec<Settle> = settle.into_iter().chain(std::iter::from_fn(|| self.ack_rx.try_recv().ok())).collect();
                    self.settle_by_application(&consumer, settles).await?;
                }
                // Backpressure without stalling: while the application's inbox is full, one message
                // waits here and no more are read (the prefetch bound stops the broker), but
                // confirms, acks and publishes go on.
                delivery = consumer.next(), if self.waiting.is_none() && consumer.is_open() => match delivery {
                    None => self.consumer_lost(&mut consumer, "the consumer ended"),
                    Some(d) => self.waiting = self.deliver(d, &consumer).await?,
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

    /// Replaces lane `index`'s publishing channel when it gets only nacks
    /// ([`Reopen::after_tick`]).
    async fn after_tick(
        &mut self,
        index: usize,
        lane: &mut LaneLink<'_>,
        events: &mpsc::UnboundedSender<Event>,
    ) -> Result<(), String> {
        let nacks = self.settlements[index].nacks_since_ack();
        if lane.reopen.after_tick(nacks, Instant::now()) {
            tracing::warn!(
                nacks,
                "only nacks on a publishing channel: opening a new one"
            );
            self.reopen(index, lane, events).await?;
        }
        Ok(())
    }

    async fn on_event(
        &mut self,
        event: Event,
        events: &mpsc::UnboundedSender<Event>,
        lanes: &mut [LaneLink<'_>],
        consumer: &mut Consumer,
    ) -> Result<(), String> {
        // Events of a publishing channel we replaced are ignored: what it had in flight goes
        // out again.
        let lane_of = |g: u64| lanes.iter().position(|l| l.publisher.generation == g);
        match event {
            Event::Ack(g, tag, multiple) => {
                let Some(index) = lane_of(g) else {
                    return Ok(());
                };
                let settled = {
                    let mut outbox = self.shared.outbox.lock().unwrap();
                    self.settlements[index].confirmed(&mut outbox, tag, multiple, Instant::now())
                };
                self.settled(settled, consumer).await?;
            }
            Event::Nack(g, tag, multiple) => {
                let Some(index) = lane_of(g) else {
                    return Ok(());
                };
                let settled = {
                    let mut outbox = self.shared.outbox.lock().unwrap();
                    self.settlements[index].nacked(&mut outbox, tag, multiple, Instant::now())
                };
                self.settled(settled, consumer).await?;
            }
            Event::Return(g, message_id, exchange, key) => {
                if let Some(index) = lane_of(g) {
                    self.settlements[index].returned(message_id, &exchange, &key);
                }
            }
            Event::ChannelClosed(CONSUMER, code, text) => {
                self.consumer_lost(
                    consumer,
                    &format!("consuming channel closed by the broker: {code} {text}"),
                );
            }
            Event::ChannelClosed(g, code, text) => {
                let Some(index) = lane_of(g) else {
                    return Ok(());
                };
                if !matches!(code, 403 | 404 | 406) {
                    return Err(format!(
                        "publishing channel closed by the broker: {code} {text}"
                    ));
                }
                let quarantine = quarantine_queue(&self.shared.config.name);
                let settled = {
                    let mut outbox = self.shared.outbox.lock().unwrap();
                    self.settlements[index].refused_for_good(
                        &mut outbox,
                        &quarantine,
                        code,
                        &text,
                        Instant::now(),
                    )
                };
                self.settled(settled, consumer).await?;
                self.reopen(index, &mut lanes[index], events).await?;
            }
            Event::Cancelled => self.consumer_lost(consumer, "the broker cancelled the consumer"),
            Event::Closed(reason) => return Err(reason),
        }
        Ok(())
    }

    /// Adds what the broker's answer settled to the counters, wakes whoever waits on progress
    /// (`flush`, `send_confirmed`), and acknowledges the originals whose quarantine copy is
    /// safe or ours now.
    async fn settled(&mut self, settled: Settled, consumer: &Consumer) -> Result<(), String> {
        let counters = &self.shared.counters;
        Counters::add(&counters.confirmed, settled.confirmed);
        Counters::add(&counters.nacked, settled.nacked);
        Counters::add(&counters.returned, settled.returned);
        Counters::add(&counters.failed, settled.failed);
        Counters::add(&counters.quarantined, settled.quarantined);
        Counters::add(&counters.quarantine_dropped, settled.quarantine_dropped);
        self.shared.progress.notify_waiters();
        if settled.quarantine_gone {
            // A part of it may have been deleted: declare it again before the next copy.
            self.quarantine_ready = false;
        }
        if settled.originals.is_empty() {
            return Ok(());
        }
        let tags = self.reception.copies_settled(settled.originals);
        self.acknowledge(consumer, tags).await
    }

    /// Consumes the inbox on a new channel of `conn`, or schedules the next attempt.
    async fn consume(
        &mut self,
        consumer: &mut Consumer,
        conn: &Connection,
        events: &mpsc::UnboundedSender<Event>,
    ) {
        let config = &self.shared.config;
        match consumer
            .open(conn, events, &config.name, config.prefetch)
            .await
        {
            Ok(()) => self.reception.consumer_opened(),
            Err(e) => {
                let wait = self.reception.consume_failed(Instant::now());
                tracing::warn!(error = %e, retry_in = ?wait, "cannot consume the inbox (its node down, or being migrated?); publishing goes on");
            }
        }
        self.shared
            .consuming
            .send_replace(self.reception.is_consuming());
    }

    /// The consumer's channel is gone: what it delivered and the application still holds comes
    /// again on the next one, and the quarantine copies holding its originals are void.
    fn consumer_lost(&mut self, consumer: &mut Consumer, reason: &str) {
        if !self.reception.consumer_lost(Instant::now()) {
            return;
        }
        tracing::warn!(%reason, "lost the inbox consumer; consuming again shortly");
        self.shared.consuming.send_replace(false);
        if let Some(channel) = consumer.channel.take() {
            tokio::spawn(async move {
                let _ = channel.close().await;
            });
        }
        consumer.deliveries = None;
        self.settlements[QUARANTINE_LANE].forget_quarantine();
    }

    /// Carries out what the application did with its messages: acknowledgements, rejected
    /// messages' quarantine copies (their originals acknowledged when the copies are confirmed),
    /// messages given back at the next tick.
    async fn settle_by_application(
        &mut self,
        consumer: &Consumer,
        settles: Vec<Settle>,
    ) -> Result<(), String> {
        let inbox_open = !self.inbox_tx.is_closed();
        let outcome = self.reception.by_application(
            settles,
            &mut self.settlements[QUARANTINE_LANE],
            inbox_open,
        );
        let counters = &self.shared.counters;
        Counters::add(&counters.rejected, outcome.rejected.len() as u64);
        Counters::add(&counters.quarantine_dropped, outcome.dropped.len() as u64);
        for headers in &outcome.rejected {
            if let Some(observed) = self.shared.observed.get() {
                observed.quarantined(RejectClass::Rejected);
            }
            tracing::warn!(?headers, "quarantining a message the application rejected");
        }
        for headers in &outcome.dropped {
            tracing::error!(
                ?headers,
                "too many quarantine copies wait to be published: a rejected message is dropped"
            );
        }
        self.acknowledge(consumer, outcome.ack).await
    }

    /// Gives back the messages the application dropped (`basic.nack` with requeue): the broker
    /// offers them again, marked redelivered.
    async fn give_back(&mut self, consumer: &Consumer) -> Result<(), String> {
        let tags = self.reception.give_back();
        let Some(consume) = consumer.channel.as_ref() else {
            return Ok(());
        };
        for tag in tags {
            consume
                .basic_nack(BasicNackArguments::new(tag, false, true))
                .await
                .map_err(|e| format!("giving a message back failed: {e}"))?;
        }
        Ok(())
    }

    /// Sends acknowledgements for `tags`, coalesced below the oldest tag still held.
    async fn acknowledge(&mut self, consumer: &Consumer, tags: Vec<u64>) -> Result<(), String> {
        let Some(consume) = consumer.channel.as_ref().filter(|_| !tags.is_empty()) else {
            return Ok(());
        };
        let plan = self.reception.ack_plan(tags);
        let fail = |e: amqprs::error::Error| format!("ack failed: {e}");
        if let Some(upto) = plan.multiple_upto {
            consume
                .basic_ack(BasicAckArguments::new(upto, true))
                .await
                .map_err(fail)?;
        }
        for tag in plan.single {
            consume
                .basic_ack(BasicAckArguments::new(tag, false))
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
        consumer: &Consumer,
    ) -> Result<Option<Incoming>, String> {
        let (Some(deliver), Some(props), Some(body)) = (
            delivery.deliver,
            delivery.basic_properties,
            delivery.content,
        ) else {
            return Ok(None);
        };
        let first_death_exchange = props
            .headers()
            .and_then(|h| h.get(&FIRST_DEATH_EXCHANGE.try_into().ok()?).cloned())
            .and_then(|v| match v {
                amqprs::FieldValue::S(s) => Some(s.to_string()),
                amqprs::FieldValue::x(bytes) => String::from_utf8(bytes.into()).ok(),
                _ => None,
            });
        let delivery = Delivery {
            tag: deliver.delivery_tag(),
            exchange: deliver.exchange().clone(),
            routing_key: deliver.routing_key().clone(),
            user_id: props.user_id().cloned(),
            first_death_exchange,
            message_id: props.message_id().cloned(),
            body,
        };
        let counters = &self.shared.counters;
        let fresh = match self
            .reception
            .delivered(delivery, &mut self.settlements[QUARANTINE_LANE])
        {
            Received::Quarantined {
                from,
                class,
                reason,
                ack,
                dropped,
            } => {
                if let Some(observed) = self.shared.observed.get() {
                    observed.quarantined(class);
                }
                let from = from.as_deref().unwrap_or("unknown");
                tracing::warn!(from, %reason, "quarantining an invalid message");
                if let Some(headers) = dropped {
                    tracing::error!(
                        ?headers,
                        "too many quarantine copies wait to be published: an invalid message is dropped"
                    );
                    Counters::add(&counters.quarantine_dropped, 1);
                }
                self.acknowledge(consumer, ack.into_iter().collect())
                    .await?;
                return Ok(None);
            }
            Received::Duplicate { ack } => {
                Counters::add(&counters.duplicates, 1);
                self.acknowledge(consumer, ack.into_iter().collect())
                    .await?;
                return Ok(None);
            }
            Received::Fresh(fresh) => *fresh,
        };
        if fresh.key.is_none() {
            Counters::add(&counters.without_message_id, 1);
        }
        Counters::add(&counters.received, 1);
        if let Some(observed) = self.shared.observed.get() {
            observed.received(&fresh.message);
        }
        // An awaited answer goes to its requester, not to the application's handlers.
        let waiter = fresh
            .answers
            .as_ref()
            .and_then(|key| self.shared.pending.lock().unwrap().remove(key));
        let message = match waiter {
            Some(waiter) => match waiter.send(fresh.message) {
                Ok(()) => {
                    self.acknowledge(consumer, vec![fresh.tag]).await?;
                    return Ok(None);
                }
                // Its requester stopped waiting just now: the application gets it, as any
                // late answer.
                Err(message) => message,
            },
            None => fresh.message,
        };
        let message_id = fresh.key.as_ref().map(|(_, id)| id.clone());
        Ok(Some(Incoming {
            from: fresh.from,
            routing_key: fresh.routing_key,
            exchange: fresh.exchange,
            message_id,
            message,
            redelivered: deliver.redelivered(),
            ack: AckHandle {
                id: self.reception.hand_over(fresh.key, fresh.tag),
                tx: self.shared.ack_tx.clone(),
                acked: false.into(),
            },
        }))
    }
}

/// Closes `connections` side by side, each given up after `patience`: a stalled link (the loss
/// that ended the session may be one) would never answer the close, and the supervisor must go
/// on to reconnect.
async fn close_within(connections: Vec<Connection>, patience: Duration) {
    let closing: Vec<_> = connections
        .into_iter()
        .map(|c| tokio::spawn(tokio::time::timeout(patience, c.close())))
        .collect();
    for close in closing {
        let _ = close.await;
    }
}

/// Polls `future` once: whether it is ready already.
async fn ready_now(future: std::pin::Pin<&mut impl Future<Output = ()>>) -> bool {
    let mut future = Some(future);
    std::future::poll_fn(|cx| {
        let ready = future.take().expect("polled once").poll(cx).is_ready();
        std::task::Poll::Ready(ready)
    })
    .await
}

/// Resolves once the client is closed, at once if it already is (`changed` would wait for the
/// next change and miss a close that came before this session began).
async fn closed(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|down| *down).await;
}
