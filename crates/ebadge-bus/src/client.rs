//! The client: typed send and receive over the bus conventions, with a reliability layer the
//! caller does not see. Reconnects with backoff and jitter; keeps every send in the outbox until
//! the broker confirms it and republishes in order after a reconnect; retries what the broker
//! refused (nack, no route) with backoff and reports what it refuses for good; drops redelivered
//! duplicates; moves invalid incoming messages to `private-<me>-quarantine` with the reason.

use crate::amqp::{self, ConnectError};
use crate::client_state::ClientState;
use crate::config::{ClientConfig, FirstConnection};
use crate::conventions::{EntityName, NameError, new_message_id, pair_exchange, routing_key};
use crate::counters::{CounterSnapshot, Counters};
use crate::incoming::{Inbox, Incoming};
use crate::outbox::{Outbox, OutboxError, Outgoing, Undelivered};
use crate::reception::PendingKey;
use crate::session::Supervisor;
use amqprs::connection::Connection;
use ebadge_model::{
    AcceptActivation, Activate, InvalidMessage, Message, ModifyActivation, RejectActivation,
    Response,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::{Notify, mpsc, oneshot, watch};

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
    /// The encoded message is larger than the broker takes.
    #[error(
        "not sent: the {msg_type} message is {size} bytes, more than the broker's max_message_size of {max} bytes (split it, or raise the limit on the broker and in the profile's max_message_bytes)"
    )]
    TooLarge {
        /// Its type.
        msg_type: String,
        /// Its encoded size.
        size: usize,
        /// The limit ([`ClientConfig::max_message_bytes`]).
        max: usize,
    },
    /// Messages left the outbox without a confirm: refused by the broker for good, unroutable
    /// for longer than the message TTL, or dropped by the outbox cap. Each names its reason.
    #[error("{} message(s) not delivered; the first: {} to {}: {}", .0.len(), .0[0].msg_type, .0[0].exchange, .0[0].reason)]
    Undelivered(Vec<Undelivered>),
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

/// A connected entity. Cheap to clone; all clones share one connection and one outbox.
#[derive(Clone)]
pub struct Client {
    shared: Arc<ClientState>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("name", &self.shared.config.name)
            .finish()
    }
}

impl Client {
    /// Connects as `config.name`, and keeps connected: later losses are repaired in the
    /// background. Whether the first connection must succeed now, may be waited for, or is
    /// made in the background is `config.first_connection` ([`FirstConnection`]).
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// use ebadge_bus::{Client, ClientConfig, EntityName, FirstConnection, Profile};
    /// use std::time::Duration;
    /// let profile = Profile::load(&Profile::locate(None))?;
    /// let mut config = ClientConfig::new(profile, EntityName::new("vpp")?);
    /// config.first_connection = FirstConnection::WaitUpTo(Duration::from_secs(60));
    /// let vpp = Client::connect(config).await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect(config: ClientConfig) -> Result<Client, ConnectError> {
        let (profile, name) = (&config.profile, config.name.as_str());
        let first = match config.first_connection {
            FirstConnection::Required => Some(amqp::connect(profile, name).await?),
            FirstConnection::WaitUpTo(patience) => Some(
                amqp::connect_patiently(
                    profile,
                    name,
                    patience,
                    (config.reconnect_min, config.reconnect_max),
                )
                .await?,
            ),
            FirstConnection::Background => None,
        };
        Self::launch(config, first)
    }

    fn launch(config: ClientConfig, first: Option<Connection>) -> Result<Client, ConnectError> {
        let outbox = match &config.durable_outbox {
            Some(path) => Outbox::durable(path, config.outbox_cap, config.outbox_sync).map_err(|e| ConnectError::File {
                what: "durable outbox",
                path: path.clone(),
                reason: e.source.to_string(),
                hint: "The outbox is an SQLite file; check the directory exists and is writable",
            })?,
            None => Outbox::in_memory(config.outbox_cap),
        };
        let (ack_tx, ack_rx) = mpsc::unbounded_channel();
        let (inbox_tx, inbox_rx) = mpsc::channel(config.inbox_capacity.max(1));
        let shared = Arc::new(ClientState {
            outbox: Mutex::new(outbox),
            wake: Notify::new(),
            progress: Notify::new(),
            counters: Counters::default(),
            observed: OnceLock::new(),
            pending: Mutex::new(HashMap::new()),
            connected: watch::channel(false).0,
            consuming: watch::channel(false).0,
            shutdown: watch::channel(false).0,
            ack_tx,
            inbox_rx: Mutex::new(Some(inbox_rx)),
            supervisor: Mutex::new(None),
            config,
        });
        let supervisor = Supervisor::new(shared.clone(), ack_rx, inbox_tx);
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
        let max = self.shared.config.max_message_bytes;
        if body.len() > max {
            return Err(SendError::TooLarge {
                msg_type: message.type_name().to_owned(),
                size: body.len(),
                max,
            });
        }
        let key = routing_key(message.type_name(), message.heh_id().map(|h| h.as_str()))?;
        self.enqueue(Outgoing {
            seq: 0,
            exchange: pair_exchange(&self.shared.config.name, peer),
            routing_key: key,
            message_id: new_message_id(),
            msg_type: message.type_name().to_owned(),
            body: body.into_bytes(),
            headers: Vec::new(),
        })
        .map(|o| {
            if let Some(observed) = self.shared.observed.get() {
                observed.sent(message);
            }
            o.message_id
        })
    }

    /// Sends and waits until every message sent so far has left the outbox; `Ok` when this one
    /// and all earlier ones were confirmed, else the undelivered ones with their reasons.
    pub async fn send_confirmed(
        &self,
        peer: &EntityName,
        message: &Message,
    ) -> Result<String, SendError> {
        let id = self.send(peer, message)?;
        self.flush().await?;
        Ok(id)
    }

    /// Waits until every message sent so far has left the outbox. `Ok` when all were confirmed
    /// by the broker; otherwise the ones that were not, each with its reason (each is reported
    /// once: by this, [`send_confirmed`](Self::send_confirmed) or [`undelivered`](Self::undelivered)).
    pub async fn flush(&self) -> Result<(), SendError> {
        let seq = self.shared.outbox.lock().unwrap().last_assigned();
        loop {
            let progress = self.shared.progress.notified();
            {
                let mut outbox = self.shared.outbox.lock().unwrap();
                if outbox.oldest_seq().is_none_or(|oldest| oldest > seq) {
                    let lost = outbox.take_undelivered(seq);
                    return if lost.is_empty() {
                        Ok(())
                    } else {
                        Err(SendError::Undelivered(lost))
                    };
                }
            }
            progress.await;
        }
    }

    /// The messages given up since the last call (or flush), each with its reason: refused by
    /// the broker (no such exchange, access refused), unroutable or nacked for longer than the
    /// message TTL, or dropped by the outbox cap. Counted in [`CounterSnapshot::failed`] and
    /// [`CounterSnapshot::dropped`]; a durable outbox also keeps them in its table `failed`.
    pub fn undelivered(&self) -> Vec<Undelivered> {
        self.shared
            .outbox
            .lock()
            .unwrap()
            .take_undelivered(u64::MAX)
    }

    fn enqueue(&self, message: Outgoing) -> Result<Outgoing, SendError> {
        if *self.shared.shutdown.borrow() {
            return Err(SendError::Closed);
        }
        let (stored, evicted) = {
            let mut outbox = self.shared.outbox.lock().unwrap();
            let dropped = outbox.dropped();
            let stored = outbox.push(message)?;
            (stored, outbox.dropped() > dropped)
        };
        Counters::add(&self.shared.counters.sent, 1);
        self.shared.wake.notify_one();
        if evicted {
            // A `flush` may wait for the message the cap just dropped: it is settled now.
            self.shared.progress.notify_waiters();
        }
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
        let key = PendingKey::Activation {
            peer: peer.as_str().to_owned(),
            id: order.id.as_str().to_owned(),
            count: order.modification_count,
        };
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
        let key = PendingKey::Market {
            peer: peer.as_str().to_owned(),
            msg_id: msg_id.as_str().to_owned(),
        };
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
        let (tx, mut rx) = oneshot::channel();
        self.shared.pending.lock().unwrap().insert(key.clone(), tx);
        let sent_at = std::time::Instant::now();
        if let Err(e) = self.send(peer, message) {
            self.shared.pending.lock().unwrap().remove(&key);
            return Err(e);
        }
        let answer = match tokio::time::timeout(timeout, &mut rx).await {
            Ok(answer) => answer.ok(),
            Err(_) => {
                self.shared.pending.lock().unwrap().remove(&key);
                // An answer handed over as the wait ended is ours (it was acknowledged for us);
                // one that comes later goes to the application's inbox.
                rx.close();
                rx.try_recv().ok()
            }
        };
        if let (Some(observed), Some(_)) = (self.shared.observed.get(), &answer) {
            observed.round_trip(message, sent_at.elapsed());
        }
        Ok(answer)
    }

    /// The stream of incoming messages. There is one: the second call returns `None`.
    pub fn inbox(&self) -> Option<Inbox> {
        self.shared.inbox_rx.lock().unwrap().take().map(Inbox::new)
    }

    /// Counts a message no handler took (see [`crate::Handler`]): for dispatchers outside this
    /// crate (the Python package's handlers), so that `unhandled` and its metric count them.
    pub fn count_unhandled(&self) {
        Counters::add(&self.shared.counters.unhandled, 1);
    }

    /// The counters now.
    pub fn counters(&self) -> CounterSnapshot {
        self.shared.snapshot().0
    }

    /// How long the oldest message in the outbox has waited for the broker's confirm; None when
    /// nothing waits. The age of what the counters' `buffered` counts: it grows while a
    /// receiver's queue is down or the broker unreachable.
    pub fn oldest_unconfirmed(&self) -> Option<Duration> {
        self.shared.snapshot().1
    }

    pub(crate) fn shared(&self) -> &Arc<ClientState> {
        &self.shared
    }

    /// Whether a connection is up now.
    pub fn is_connected(&self) -> bool {
        *self.shared.connected.borrow()
    }

    /// Whether the inbox is being consumed now, so that what is sent to us reaches us. Stricter
    /// than [`is_connected`](Self::is_connected): the connection can be up while the inbox
    /// cannot be consumed (its classic queue's node is down, or the broker cancelled the
    /// consumer because the queue was deleted), and then the controller cannot reach us.
    pub fn is_consuming(&self) -> bool {
        *self.shared.consuming.borrow()
    }

    /// Waits until a connection is up.
    pub async fn connected(&self) {
        let mut rx = self.shared.connected.subscribe();
        let _ = rx.wait_for(|c| *c).await;
    }

    /// Waits for every send to be confirmed (at most `timeout`), then sends the acknowledgements
    /// given so far and closes the connection. Also when the link is down or being remade: once
    /// this returns, the client neither reconnects nor consumes (at most 5 s more are given to a
    /// clean close; then the connection is dropped and the broker requeues what it held).
    ///
    /// Says what it left behind: messages still unconfirmed when `timeout` ended are lost with
    /// an in-memory outbox, and kept for the next start with a durable one (also logged).
    pub async fn close(&self, timeout: Duration) -> Closed {
        if let Ok(Err(e)) = tokio::time::timeout(timeout, self.flush()).await {
            tracing::error!(error = %e, "closing with undelivered messages");
        }
        let unconfirmed = self.shared.outbox.lock().unwrap().len();
        let closed = Closed {
            unconfirmed,
            discarded: unconfirmed > 0 && self.shared.config.durable_outbox.is_none(),
        };
        if closed.discarded {
            tracing::error!(
                unconfirmed,
                ?timeout,
                "closing: messages the broker did not confirm in time are discarded with the in-memory outbox (give close a longer timeout, or use a durable outbox)"
            );
        } else if unconfirmed > 0 {
            tracing::warn!(
                unconfirmed,
                "closing: unconfirmed messages stay in the durable outbox and go out at the next start"
            );
        }
        self.shared.shutdown.send_replace(true);
        self.shared.wake.notify_one();
        let handle = self.shared.supervisor.lock().unwrap().take();
        if let Some(mut handle) = handle {
            // Nothing of a closed client may live on: a supervisor still busy after 5 s is
            // stopped, so it cannot consume (and take) messages meant for the next reader.
            if tokio::time::timeout(Duration::from_secs(5), &mut handle)
                .await
                .is_err()
            {
                // Debug, not warn: a fleet closing thousands of clients at once logs it thousands
                // of times.
                tracing::debug!("the connection did not close within 5 s; dropped");
                handle.abort();
            }
        }
        closed
    }
}

/// What [`Client::close`] left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed {
    /// Messages the broker had not confirmed when the timeout ended.
    pub unconfirmed: usize,
    /// Whether they are lost: the outbox was in memory. With a durable outbox they stay in
    /// its file and go out when a client opens it again.
    pub discarded: bool,
}
