//! Publishing state of one session: what was published under which delivery tag, and the
//! settlement of publisher confirms against the outbox.

use crate::client::Shared;
use crate::counters::Counters;
use crate::outbox::Outgoing;
use amqprs::channel::{BasicPublishArguments, Channel};
use amqprs::{BasicProperties, FieldName, FieldTable, FieldValue, LongStr};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;

/// Publishing state of one session.
pub(crate) struct Publisher {
    pub(crate) next_tag: u64,
    /// Delivery tag → outbox sequence number.
    pub(crate) inflight: BTreeMap<u64, u64>,
    /// Highest sequence number published in this session.
    pub(crate) sent_upto: u64,
    /// Nacked sequence numbers to publish again at the next retry tick.
    pub(crate) retry: BTreeSet<u64>,
}

/// Publishes per loop turn at most this many, so acks and deliveries keep flowing.
const PUBLISH_BATCH: usize = 2_000;

impl Publisher {
    pub(crate) async fn publish_pending(
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
        let (count, last_seq) = (batch.len(), batch.last().map(|m| m.seq));
        for message in batch {
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
                for (k, v) in message.headers {
                    if let (Ok(k), Ok(v)) = (FieldName::try_from(k.as_str()), LongStr::try_from(v))
                    {
                        table.insert(k, FieldValue::S(v));
                    }
                }
                props.with_headers(table);
            }
            channel
                .basic_publish(
                    props,
                    message.body,
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
        if let Some(last) = last_seq {
            shared.highest_published.fetch_max(last, Ordering::Relaxed);
            if count == PUBLISH_BATCH {
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

    pub(crate) fn confirm(&mut self, shared: &Shared, tag: u64, multiple: bool) {
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

    pub(crate) fn nack(&mut self, shared: &Shared, tag: u64, multiple: bool) {
        let seqs = self.settled(tag, multiple);
        Counters::add(&shared.counters.nacked, seqs.len() as u64);
        tracing::warn!(
            count = seqs.len(),
            "the broker refused messages (nack); retrying in a second"
        );
        self.retry.extend(seqs);
    }

    /// Nacked messages go out again (after the ones in flight: a nack is a full queue, rare).
    pub(crate) fn schedule_retries(&mut self) {
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
