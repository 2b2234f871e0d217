//! The rules every client keeps, whatever its role, checked from what the kit saw: how it
//! logged in, what it sent (exchange, routing key, body, properties), what the broker refused it.

use super::client::{ClientProcess, log_tail};
use super::counterpart::Counterpart;
use super::counterpart::Seen;
use super::report::{Check, Outcome};
use super::{KitOptions, Target, seconds};
use ebadge_bus::EntityName;
use ebadge_bus::conventions::{pair_exchange, routing_key};
use std::time::{Duration, Instant};

/// How the client logged in, from the management API: EXTERNAL over TLS with a certificate
/// whose CN is its name, or why not.
pub(super) async fn login(target: &Target, name: &str) -> Result<String, String> {
    let m = target.management().map_err(|e| e.to_string())?;
    let api = ebadge_admin::mgmt::RawApi::new(&m);
    // The management API lists a connection once the node has emitted its statistics: up to 15 s,
    // three of RabbitMQ's default 5-s intervals (5 s was seen too short once, on a busy machine).
    for _ in 0..60 {
        let list = api
            .get("connections?columns=user,auth_mechanism,ssl,peer_cert_subject,client_properties")
            .await
            .map_err(|e| e.to_string())?;
        let mine: Vec<&serde_json::Value> = list
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["user"] == name)
            .collect();
        if let Some(bad) = mine
            .iter()
            .find(|c| c["auth_mechanism"] != "EXTERNAL" || c["ssl"] != true)
        {
            return Err(format!(
                "a connection as {name} logged in with {} (ssl: {}): the bus takes only EXTERNAL over TLS",
                bad["auth_mechanism"], bad["ssl"]
            ));
        }
        if let Some(c) = mine.first() {
            let product = c["client_properties"]["product"].as_str().unwrap_or("?");
            return Ok(format!(
                "{} connection(s), EXTERNAL over TLS, certificate {}, client {product}",
                mine.len(),
                c["peer_cert_subject"].as_str().unwrap_or("?")
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Err(format!(
        "the broker lists no connection as {name} although its inbox has a consumer"
    ))
}

/// The rules every message keeps, over all the kit read (each through the pair exchange from
/// `name` to the entity whose inbox it reached). With nothing read they cannot fail,
/// so they say so.
pub(super) fn every_message(seen: &[Seen], name: &EntityName, consumed: bool) -> Vec<Check> {
    let judge = |bad: Vec<String>, what: &str| {
        if !consumed && seen.is_empty() {
            Outcome::Skip("the client sent nothing".into())
        } else if bad.is_empty() {
            Outcome::Pass(format!("all {} messages {what}", seen.len()))
        } else {
            let shown: Vec<&String> = bad.iter().take(3).collect();
            Outcome::Fail(format!(
                "{} of {} messages: {}",
                bad.len(),
                seen.len(),
                shown
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            ))
        }
    };
    let mut keys = Vec::new();
    let mut invalid = Vec::new();
    let mut transient = Vec::new();
    let mut forged = Vec::new();
    for s in seen {
        let value: Option<serde_json::Value> = serde_json::from_slice(&s.body).ok();
        let msg_type = value
            .as_ref()
            .and_then(|v| v["msg"].as_str().map(str::to_owned));
        let heh_id = value
            .as_ref()
            .and_then(|v| v["heh_id"].as_str().map(str::to_owned));
        let expected = msg_type
            .as_deref()
            .and_then(|t| routing_key(t, heh_id.as_deref()).ok());
        let exchange = pair_exchange(name, &s.receiver);
        if s.exchange != exchange || expected.as_deref() != Some(s.routing_key.as_str()) {
            keys.push(format!(
                "{} through {:?} with key {:?}, expected {exchange:?} with {:?}",
                msg_type.as_deref().unwrap_or("a message without msg"),
                s.exchange,
                s.routing_key,
                expected.as_deref().unwrap_or("type[.heh_id]")
            ));
        }
        if let Err(e) = ebadge_model::Message::decode_slice(&s.body) {
            invalid.push(e.to_string());
        }
        if s.delivery_mode != Some(2) {
            transient.push(format!(
                "{} with delivery_mode {:?}",
                msg_type.as_deref().unwrap_or("?"),
                s.delivery_mode
            ));
        }
        if let Some(user) = &s.user_id
            && user != name.as_str()
        {
            forged.push(format!("user_id {user:?}"));
        }
    }
    vec![
        Check {
            id: "routing-keys",
            section: "D3.2.3 5.3.1",
            title: "publishes to its pair exchange with the routing key type[.heh_id]",
            outcome: judge(keys, "through its pair exchange with the right key"),
        },
        Check {
            id: "valid-messages",
            section: "D3.1.3 4-6",
            title: "every message is valid D3.1.3 (times with offsets, no NaN, names, fields)",
            outcome: judge(invalid, "valid"),
        },
        Check {
            id: "persistent",
            section: "D3.2.3 6.2.4",
            title: "every message is persistent (delivery_mode 2)",
            outcome: judge(transient, "persistent"),
        },
        Check {
            id: "user-id",
            section: "D3.2.3 5.3.2",
            title: "a user_id, when set, is its own name",
            outcome: judge(forged, "without user_id or with its own"),
        },
    ]
}

/// What the broker refused the client, from the broker's log since the run began: a publish to
/// another's exchange, a forged `user_id`, a declaration outside its namespace.
pub(super) fn refusals(target: &Target, offset: u64, name: &str) -> Check {
    use std::io::{Read, Seek, SeekFrom};
    let Some(broker) = target.local() else {
        return Check {
            id: REFUSALS.0,
            section: REFUSALS.1,
            title: REFUSALS.2,
            outcome: Outcome::Skip(
                "the kit reads refusals from a local broker's log, and this broker is not local"
                    .into(),
            ),
        };
    };
    let path = broker.console_log();
    let mut text = String::new();
    let read = std::fs::File::open(&path).and_then(|mut f| {
        f.seek(SeekFrom::Start(offset))?;
        f.read_to_string(&mut text)
    });
    let marker = format!("user: '{name}'");
    let outcome = match read {
        Err(e) => Outcome::Skip(format!(
            "cannot read the broker's log {}: {e}",
            path.display()
        )),
        Ok(_) => {
            let lines: Vec<&str> = text.lines().collect();
            let refused: Vec<String> = lines
                .iter()
                .enumerate()
                .filter(|(_, l)| l.contains("Channel error") && l.contains(&marker))
                .map(|(i, _)| {
                    lines
                        .get(i + 1)
                        .map_or("", |l| l.split("] ").last().unwrap_or(l))
                        .trim()
                        .to_owned()
                })
                .collect();
            if refused.is_empty() {
                Outcome::Pass("the broker refused it nothing".into())
            } else {
                Outcome::Fail(format!(
                    "the broker refused it {} time(s): {}",
                    refused.len(),
                    refused[..refused.len().min(3)].join("; ")
                ))
            }
        }
    };
    Check {
        id: REFUSALS.0,
        section: REFUSALS.1,
        title: REFUSALS.2,
        outcome,
    }
}

const REFUSALS: (&str, &str, &str) = (
    "no-refusals",
    "D3.2.3 5.3.2",
    "publishes and declares only what its permissions allow (its own exchanges and namespace)",
);

/// The first check of either role: a consumer on the client's inbox within `start_within`
/// (asked as the client, through `kit`), or the end of its output if it exited first; then how
/// it logged in.
pub(super) async fn connects(
    broker: &Target,
    kit: &Counterpart,
    process: &mut ClientProcess,
    log: &std::path::Path,
    options: &KitOptions,
) -> Outcome {
    let started = Instant::now();
    loop {
        if let Some(status) = process.exited() {
            return Outcome::Fail(format!(
                "the client exited ({status}) before it consumed its inbox; its output ends:\n{}",
                log_tail(log, 10)
            ));
        }
        if kit.client_consumers().await.unwrap_or(0) > 0 {
            break;
        }
        if started.elapsed() > options.start_within {
            return Outcome::Fail(format!(
                "no consumer on its inbox within {}; its output ends:\n{}",
                seconds(options.start_within),
                log_tail(log, 10)
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let consuming = started.elapsed();
    match login(broker, options.name.as_str()).await {
        Ok(how) => Outcome::Pass(format!("consuming after {}; {how}", seconds(consuming))),
        Err(why) => Outcome::Fail(why),
    }
}
