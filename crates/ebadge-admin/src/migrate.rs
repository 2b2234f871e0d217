//! Changing the type of a live queue without losing what it holds. RabbitMQ cannot change a
//! queue's type in place: the queue must be deleted and declared again. So its messages move out
//! to a side queue and back, by the broker itself (dead-lettering); nothing passes through this
//! process, so nothing is lost if it stops half way (the next `ebadge provision` finishes the
//! move, see [`leftover_side_queues`]).
//!
//! Steps, for queue `q` with side queue `q-migrating`:
//! 1. the side queue is declared, dead-lettering to `q`, and bound like `q`; `q`'s bindings are
//!    removed (new messages go to the side queue);
//! 2. a policy bounds `q` to no message and dead-letters what it drops to the side queue (the
//!    broker drops nothing before the policy applies, so there is no race); once `q` is empty
//!    (nothing ready, nothing unacknowledged) it is deleted and declared with the new type;
//! 3. `q` is bound again, the side queue unbound, and the side queue's messages are rejected
//!    one batch after another, which dead-letters them into `q`. (A second automatic
//!    dead-lettering back into `q` would be dropped by RabbitMQ as a cycle; a rejection is
//!    not.) The empty side queue is deleted.
//!
//! Moved messages arrive through the default exchange with their first exchange in the
//! `x-first-death-exchange` header; the client believes it when the message's broker-checked
//! `user_id` names the same sender (see `ebadge_bus`'s inbound verdict). Their order may change
//! (a quorum queue dead-letters a batch newest first); the message TTL starts again in each
//! queue.

use crate::mgmt::ApiError;
use crate::mgmt::RawApi;
use reqwest::Method;
use serde_json::json;
use std::time::{Duration, Instant};

/// The suffix of the side queue that holds a queue's messages while it changes type.
pub const SIDE_SUFFIX: &str = "-migrating";

/// Prefix of the temporary policy that moves one queue's messages (`ebadge-migration-<queue>`,
/// so that migrations run side by side); it outranks every other policy.
pub const MOVE_POLICY: &str = "ebadge-migration";

/// How long a queue may take to empty (a consumer holding unacknowledged messages delays it).
const DRAIN_PATIENCE: Duration = Duration::from_secs(120);

/// The side queue of `queue`.
///
/// ```
/// assert_eq!(ebadge_admin::migrate::side_queue("private-x-inbox"), "private-x-inbox-migrating");
/// ```
pub fn side_queue(queue: &str) -> String {
    format!("{queue}{SIDE_SUFFIX}")
}

/// Side queues left by a migration that stopped half way, as (queue, side queue): their
/// messages still wait to be moved back (by [`finish`]).
pub fn leftover_side_queues(live: &crate::state::State) -> Vec<(String, String)> {
    live.values()
        .filter_map(|item| match item {
            crate::state::Item::Queue { name, .. } => name
                .strip_suffix(SIDE_SUFFIX)
                .filter(|q| q.starts_with("private-") && q.ends_with("-inbox"))
                .map(|q| (q.to_owned(), name.clone())),
            _ => None,
        })
        .collect()
}

/// Makes `queue` a queue of `queue_type`, keeping its messages and bindings.
pub async fn change_type(api: &RawApi, queue: &str, queue_type: &str) -> Result<(), ApiError> {
    let side = side_queue(queue);
    let bindings = bindings_of(api, queue).await?;
    tracing::info!("{queue}: new messages go to {side} while it changes type");
    declare(
        api,
        &side,
        json!({"x-queue-type": "classic",
               "x-dead-letter-exchange": "", "x-dead-letter-routing-key": queue}),
    )
    .await?;
    for (source, key, _) in &bindings {
        bind(api, source, &side, key).await?;
    }
    for (source, _, properties_key) in &bindings {
        unbind(api, source, queue, properties_key).await?;
    }
    tracing::info!("{queue}: moving its messages to {side}");
    move_all(api, queue, &side).await?;
    api.send(Method::DELETE, &format!("queues/%2F/{queue}"), &json!({}))
        .await?;
    declare(api, queue, json!({"x-queue-type": queue_type})).await?;
    for (source, key, _) in &bindings {
        bind(api, source, queue, key).await?;
    }
    tracing::info!("{queue}: now {queue_type}; moving its messages back");
    finish(api, &side).await
}

/// Moves the side queue's messages into its queue (already declared and bound) and deletes the
/// side queue: the last step of a migration, also run for one that stopped half way. New
/// messages reach the queue before the side queue is unbound, so one may arrive twice (the
/// client drops duplicates by message id), never not at all.
pub async fn finish(api: &RawApi, side: &str) -> Result<(), ApiError> {
    // A migration stopped while moving messages out leaves its policy on the queue: lifted
    // first, or what is rejected back would be dropped out again, back and forth.
    if let Some(queue) = side.strip_suffix(SIDE_SUFFIX) {
        api.send(
            Method::DELETE,
            &format!("policies/%2F/{MOVE_POLICY}-{queue}"),
            &json!({}),
        )
        .await?;
    }
    for (source, _, properties_key) in bindings_of(api, side).await? {
        unbind(api, &source, side, &properties_key).await?;
    }
    reject_all(api, side).await?;
    api.send(Method::DELETE, &format!("queues/%2F/{side}"), &json!({}))
        .await?;
    Ok(())
}

/// Dead-letters everything in `from` to `to` (by a policy) and waits until `from` holds
/// nothing.
async fn move_all(api: &RawApi, from: &str, to: &str) -> Result<(), ApiError> {
    let policy = format!("policies/%2F/{MOVE_POLICY}-{from}");
    api.send(
        Method::PUT,
        &policy,
        &json!({
            "pattern": format!("^{}$", regex::escape(from)),
            "apply-to": "queues",
            "priority": 1000,
            "definition": {"max-length": 0, "overflow": "drop-head",
                           "dead-letter-exchange": "", "dead-letter-routing-key": to},
        }),
    )
    .await?;
    let started = Instant::now();
    let drained = loop {
        match wait_empty(api, from, started).await {
            Ok(true) => break Ok(()),
            Ok(false) if started.elapsed() > DRAIN_PATIENCE => {
                break Err(ApiError::new(
                    format!("moving the messages of {from}"),
                    "the broker did not apply the moving policy in time: run `ebadge provision` again",
                ));
            }
            Ok(false) => tokio::time::sleep(Duration::from_millis(200)).await,
            Err(e) => break Err(e),
        }
    };
    api.send(Method::DELETE, &policy, &json!({})).await?;
    drained
}

/// Rejects everything in `side` (declared dead-lettering to its queue) until it holds nothing.
async fn reject_all(api: &RawApi, side: &str) -> Result<(), ApiError> {
    let started = Instant::now();
    loop {
        if take(api, side, 1000, "reject_requeue_false").await? > 0 {
            continue;
        }
        if wait_empty(api, side, started).await? {
            return Ok(());
        }
    }
}

/// Gets up to `count` ready messages of `queue` with the management API's `ackmode`
/// (`ack_requeue_true` peeks; `reject_requeue_false` dead-letters them); returns how many.
async fn take(api: &RawApi, queue: &str, count: u32, ackmode: &str) -> Result<usize, ApiError> {
    let got = api
        .send(
            Method::POST,
            &format!("queues/%2F/{queue}/get"),
            &json!({"count": count, "ackmode": ackmode, "encoding": "auto", "truncate": 1}),
        )
        .await?;
    Ok(got.as_array().map_or(0, Vec::len))
}

/// Waits until `queue` has no unacknowledged message and says whether it has no ready one
/// either (asked of the queue itself, not the statistics, which lag). Fails after
/// [`DRAIN_PATIENCE`] from `started`.
async fn wait_empty(api: &RawApi, queue: &str, started: Instant) -> Result<bool, ApiError> {
    loop {
        let ready = take(api, queue, 1, "ack_requeue_true").await? > 0;
        let unacked = api.get(&format!("queues/%2F/{queue}")).await?["messages_unacknowledged"]
            .as_u64()
            .unwrap_or(0);
        if unacked == 0 {
            return Ok(!ready);
        }
        if started.elapsed() > DRAIN_PATIENCE {
            return Err(ApiError::new(
                format!("moving the messages of {queue}"),
                format!(
                    "a consumer still holds {unacked} of its messages unacknowledged after {} s: \
                     run `ebadge provision` again to finish the migration",
                    DRAIN_PATIENCE.as_secs()
                ),
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// (source exchange, routing key, properties key) of every binding to `queue` but the default
/// exchange's.
async fn bindings_of(api: &RawApi, queue: &str) -> Result<Vec<(String, String, String)>, ApiError> {
    let list = api.get(&format!("queues/%2F/{queue}/bindings")).await?;
    Ok(list
        .as_array()
        .into_iter()
        .flatten()
        .filter(|b| b["source"].as_str().is_some_and(|s| !s.is_empty()))
        .map(|b| {
            let s = |k: &str| b[k].as_str().unwrap_or_default().to_owned();
            (s("source"), s("routing_key"), s("properties_key"))
        })
        .collect())
}

/// Declares the durable `queue` with `arguments`.
async fn declare(api: &RawApi, queue: &str, arguments: serde_json::Value) -> Result<(), ApiError> {
    api.send(
        Method::PUT,
        &format!("queues/%2F/{queue}"),
        &json!({"durable": true, "auto_delete": false, "arguments": arguments}),
    )
    .await
    .map(drop)
}

async fn bind(api: &RawApi, source: &str, queue: &str, key: &str) -> Result<(), ApiError> {
    api.send(
        Method::POST,
        &format!("bindings/%2F/e/{source}/q/{queue}"),
        &json!({"routing_key": key, "arguments": {}}),
    )
    .await
    .map(drop)
}

async fn unbind(
    api: &RawApi,
    source: &str,
    queue: &str,
    properties_key: &str,
) -> Result<(), ApiError> {
    api.send(
        Method::DELETE,
        &format!("bindings/%2F/e/{source}/q/{queue}/{properties_key}"),
        &json!({}),
    )
    .await
    .map(drop)
}
