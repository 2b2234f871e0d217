//! The consuming side of a session (see [`Consumer`]).

use crate::backoff::Backoff;
use crate::conventions::{EntityName, inbox_queue};
use crate::events::{CONSUMER, Callbacks, Event};
use amqprs::channel::{BasicConsumeArguments, BasicQosArguments, Channel};
use amqprs::connection::Connection;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Longest wait between two attempts to consume an inbox that is unavailable.
const CONSUME_RETRY_MAX: Duration = Duration::from_secs(30);

/// The consuming side of a session: a channel consuming the entity's inbox, or, while the inbox
/// cannot be consumed (its classic queue's node is down, it is being migrated, it is not
/// provisioned yet), none and the time of the next attempt. The connection stays: publishing
/// goes on, and a fleet whose inboxes' node is down does not reconnect in a storm.
pub(crate) struct Consumer {
    pub(crate) channel: Option<Channel>,
    pub(crate) deliveries: Option<mpsc::UnboundedReceiver<amqprs::channel::ConsumerMessage>>,
    pub(crate) retry_at: Option<Instant>,
    pub(crate) backoff: Backoff,
}

impl Default for Consumer {
    fn default() -> Self {
        Self {
            channel: None,
            deliveries: None,
            retry_at: None,
            backoff: Backoff::new(Duration::from_secs(1), CONSUME_RETRY_MAX),
        }
    }
}

impl Consumer {
    /// Consumes `me`'s inbox on a new channel of `conn`; on failure, schedules the next attempt.
    pub(crate) async fn open(
        &mut self,
        conn: &Connection,
        events: &mpsc::UnboundedSender<Event>,
        me: &EntityName,
        prefetch: u16,
    ) {
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
        match attempt.await {
            Ok((channel, deliveries)) => {
                *self = Self {
                    channel: Some(channel),
                    deliveries: Some(deliveries),
                    ..Self::default()
                };
            }
            Err(e) => {
                let wait = self.backoff.next_jittered();
                tracing::warn!(error = %e, retry_in = ?wait, "cannot consume the inbox (its node down, or being migrated?); publishing goes on");
                self.retry_at = Some(Instant::now() + wait);
            }
        }
    }

    pub(crate) fn is_open(&self) -> bool {
        self.deliveries.is_some()
    }

    /// Whether an attempt to consume again is due.
    pub(crate) fn due(&self) -> bool {
        self.retry_at.is_some_and(|at| Instant::now() >= at)
    }

    pub(crate) async fn next(&mut self) -> Option<amqprs::channel::ConsumerMessage> {
        self.deliveries.as_mut()?.recv().await
    }
}
