//! What the application receives: [`Incoming`] messages, one by one from the [`Inbox`], each
//! acknowledged by the application when it is done with it.

use crate::conventions::EntityName;
use ebadge_model::Message;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::mpsc;

/// A message delivered to the application.
#[derive(Debug)]
pub struct Incoming {
    /// The sender: the `<sender>` of the pair exchange it came through, which only the sender
    /// may write to (the broker enforces it).
    pub from: EntityName,
    /// The routing key it came with (`type[.heh_id]`).
    pub routing_key: String,
    /// The exchange it was published to (`<sender>-to-<us or our group>`).
    pub exchange: String,
    /// AMQP message_id; `None` from clients that set none (then duplicates cannot be dropped).
    pub message_id: Option<String>,
    /// The decoded, valid message.
    pub message: Message,
    /// Whether the broker delivered it before (the application did not see that delivery).
    pub redelivered: bool,
    pub(crate) ack: AckHandle,
}

#[derive(Debug)]
pub(crate) struct AckHandle {
    /// The supervisor's handle for this message, valid across reconnects.
    pub(crate) id: u64,
    pub(crate) tx: mpsc::UnboundedSender<Settle>,
    pub(crate) acked: AtomicBool,
}

/// What the application did with a message it was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Settle {
    /// Done with it: the broker forgets it.
    Ack(u64),
    /// Dropped without an ack (an error on the way, say): the broker offers it again.
    Release(u64),
    /// Refused by the application: a copy goes to the quarantine with the reason, then the
    /// broker forgets the original.
    Reject(u64, Box<Rejected>),
}

/// What the quarantine copy of a message the application refused is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rejected {
    pub(crate) routing_key: String,
    pub(crate) body: Vec<u8>,
    pub(crate) headers: Vec<(String, String)>,
}

impl Incoming {
    /// Acknowledges the message: the broker forgets it. Until then the broker keeps it, across
    /// reconnects too: its redelivery waits, unseen by the application, for this call. A
    /// message dropped without this call is given back to the broker, which offers it again
    /// (with [`redelivered`](Self::redelivered) set): an application that fails on the way
    /// (the device is busy, a handler panics) sees it again.
    pub fn ack(&self) {
        if !self.ack.acked.swap(true, Ordering::Relaxed) {
            let _ = self.ack.tx.send(Settle::Ack(self.ack.id));
        }
    }

    /// Refuses the message: the application cannot act on it (a handler failed on it, say). It
    /// is not offered again: a copy goes to our quarantine queue with `reason` in its
    /// `x-ebadge-reason` header (as the client does with invalid messages), where an operator
    /// can look at it, and the broker forgets the original once the copy is confirmed. Counted in
    /// [`CounterSnapshot::rejected`](crate::CounterSnapshot::rejected). After
    /// [`ack`](Self::ack), it does nothing.
    ///
    /// The copy's body is the message as the client encodes it (the same JSON value as what
    /// arrived, `ext_` fields included).
    pub fn reject(&self, reason: &str) {
        if self.ack.acked.swap(true, Ordering::Relaxed) {
            return;
        }
        let mut headers = vec![
            (
                crate::conventions::QUARANTINE_REASON_HEADER.to_owned(),
                crate::conventions::bounded_header_value(&format!(
                    "rejected by the application: {reason}"
                ))
                .into_owned(),
            ),
            (
                crate::conventions::QUARANTINE_FROM_HEADER.to_owned(),
                self.from.as_str().to_owned(),
            ),
            ("x-ebadge-exchange".to_owned(), self.exchange.clone()),
        ];
        if let Some(id) = &self.message_id {
            headers.push(("x-ebadge-message-id".to_owned(), id.clone()));
        }
        let body = self
            .message
            .encode()
            .unwrap_or_else(|e| format!("(not encodable: {e})"))
            .into_bytes();
        let rejected = Rejected {
            routing_key: self.routing_key.clone(),
            body,
            headers,
        };
        let _ = self
            .ack
            .tx
            .send(Settle::Reject(self.ack.id, Box::new(rejected)));
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        if !self.ack.acked.load(Ordering::Relaxed) {
            let _ = self.ack.tx.send(Settle::Release(self.ack.id));
        }
    }
}

/// The stream of incoming messages (from [`crate::Client::inbox`]).
pub struct Inbox {
    rx: mpsc::Receiver<Incoming>,
}

impl Inbox {
    pub(crate) fn new(rx: mpsc::Receiver<Incoming>) -> Self {
        Self { rx }
    }

    /// The next message; `None` once the client is closed.
    pub async fn next(&mut self) -> Option<Incoming> {
        self.rx.recv().await
    }
}
