//! Publishing on one confirm-mode channel: what [`Settlement::due`] hands out goes out,
//! `mandatory` and persistent, with the properties every message of ours carries. What the
//! broker answers is settled in [`crate::settlement`], which does no I/O.

use crate::client_state::ClientState;
use crate::conventions::{bounded_header_value, quarantine_queue};
use crate::counters::Counters;
use crate::settlement::{Publish, Settlement};
use amqprs::channel::{BasicPublishArguments, Channel};
use amqprs::{BasicProperties, FieldName, FieldTable, FieldValue, LongStr};
use std::time::Instant;

/// The publishing side of one channel.
pub(crate) struct Publisher {
    channel: Channel,
    /// Which channel of this client this is: events of an older one are ignored.
    pub(crate) generation: u64,
}

impl Publisher {
    /// A publisher on a fresh confirm-mode `channel`.
    pub(crate) fn new(channel: Channel, generation: u64) -> Self {
        Self {
            channel,
            generation,
        }
    }

    /// The channel's handle, to close it.
    pub(crate) fn channel(&self) -> &Channel {
        &self.channel
    }

    /// Publishes what waits, as `settlement` orders it; a full batch wakes the session again.
    pub(crate) async fn publish_pending(
        &self,
        shared: &ClientState,
        settlement: &mut Settlement,
    ) -> Result<(), amqprs::error::Error> {
        let (due, full) = {
            let outbox = shared.outbox.lock().unwrap();
            settlement.due(&outbox, Instant::now())
        };
        let me = shared.config.name.as_str();
        let mut due = due.into_iter();
        while let Some(mut publish) = due.next() {
            match &mut publish {
                Publish::Quarantine(copy) => {
                    let props = properties(me, &copy.message_id, &copy.headers);
                    let exchange = quarantine_queue(&shared.config.name);
                    // The settlement keeps the copy, body and all: it goes out again if this
                    // channel is lost before the confirm.
                    let sent = self
                        .publish(props, copy.body.clone(), &exchange, &copy.routing_key)
                        .await;
                    if let Err(e) = sent {
                        // Nothing else keeps a copy: hand it, and what was not tried, back.
                        hand_back(settlement, std::iter::once(publish).chain(due));
                        return Err(e);
                    }
                }
                Publish::Outbox { message, again, .. } => {
                    let props = properties(me, &message.message_id, &message.headers);
                    // The outbox keeps its own copy; the settlement needs no body.
                    let body = std::mem::take(&mut message.body);
                    if let Err(e) = self
                        .publish(props, body, &message.exchange, &message.routing_key)
                        .await
                    {
                        hand_back(settlement, due);
                        return Err(e);
                    }
                    if *again {
                        Counters::add(&shared.counters.republished, 1);
                    }
                }
            }
            settlement.published(publish);
        }
        if full {
            shared.wake.notify_one();
        }
        Ok(())
    }

    async fn publish(
        &self,
        props: BasicProperties,
        body: Vec<u8>,
        exchange: &str,
        routing_key: &str,
    ) -> Result<(), amqprs::error::Error> {
        let mut args = BasicPublishArguments::new(exchange, routing_key);
        // Mandatory: a message no queue takes comes back (basic.return) instead of being
        // confirmed and lost.
        args.mandatory(true);
        self.channel.basic_publish(props, body, args).await
    }
}

/// Hands what the channel did not take back to `settlement`, in order.
fn hand_back(settlement: &mut Settlement, items: impl Iterator<Item = Publish>) {
    let items: Vec<Publish> = items.collect();
    for item in items.into_iter().rev() {
        settlement.unpublished(item);
    }
}

/// Persistent delivery, `message_id`, `user_id` and `headers` (each value bounded: see
/// [`bounded_header_value`]): why no more is said at
/// [`crate::conventions::new_message_id`].
fn properties(me: &str, message_id: &str, headers: &[(String, String)]) -> BasicProperties {
    let mut props = BasicProperties::default();
    props
        .with_persistence(true)
        .with_message_id(message_id)
        .with_user_id(me);
    if !headers.is_empty() {
        let mut table = FieldTable::new();
        for (k, v) in headers {
            if let (Ok(k), Ok(v)) = (
                FieldName::try_from(k.as_str()),
                LongStr::try_from(bounded_header_value(v).into_owned()),
            ) {
                table.insert(k, FieldValue::S(v));
            }
        }
        props.with_headers(table);
    }
    props
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_carries_persistence_its_id_and_sender_and_nothing_the_routing_key_says() {
        let id = crate::conventions::new_message_id();
        let props = properties("heh-42", &id, &[]);
        assert_eq!(props.delivery_mode(), Some(2));
        assert_eq!(props.message_id(), Some(&id));
        assert_eq!(props.user_id().map(String::as_str), Some("heh-42"));
        assert_eq!(
            (
                props.message_type(),
                props.content_type(),
                props.timestamp()
            ),
            (None, None, None)
        );
        assert!(props.headers().is_none());
    }
}
