//! `ebadge tap --as NAME [PATTERN]`: a live copy of NAME's incoming stream through a non-durable
//! private queue, leaving the inbox untouched.

use std::process::ExitCode;

use amqprs::channel::{BasicConsumeArguments, QueueBindArguments, QueueDeclareArguments};
use anyhow::{Context, Result};
use clap::Args;
use ebadge_bus::EntityName;
use ebadge_bus::conventions::{incoming_exchange, private_prefix};
use ebadge_model::Message;

use super::ProfileArg;

/// Arguments of `tap`.
#[derive(Args)]
pub struct TapArgs {
    /// Whose stream (certificate CN).
    #[arg(long = "as", value_name = "NAME")]
    pub name: String,
    /// Binding pattern over routing keys `type[.heh_id]`, e.g. `report.#` or `*.heh-42`.
    #[arg(default_value = "#")]
    pub pattern: String,
    /// One line per message: {"from":..,"routing_key":..,"message":{..}} ("invalid" instead of
    /// "message" for bodies that are not valid eBADGE messages).
    #[arg(long)]
    pub json: bool,
    /// Stop after N messages.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    #[command(flatten)]
    pub profile: ProfileArg,
}

/// Runs `tap`.
pub async fn run(args: TapArgs) -> Result<ExitCode> {
    // AMQP short strings: amqprs panics past 255 bytes, so refuse it here with a reason.
    if args.pattern.len() > 255 {
        anyhow::bail!(
            "the pattern is {} bytes; a binding key has at most 255",
            args.pattern.len()
        );
    }
    let profile = args.profile.load()?;
    let me = EntityName::new(&args.name)?;
    let connection = ebadge_bus::connect(&profile, me.as_str()).await?;
    let channel = connection.open_channel(None).await?;
    let queue = format!(
        "{}tap-{}",
        private_prefix(&me),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let mut declare = QueueDeclareArguments::new(&queue);
    declare.exclusive(true).auto_delete(true).durable(false);
    channel
        .queue_declare(declare)
        .await
        .context("declaring the tap queue")?;
    channel
        .queue_bind(QueueBindArguments::new(
            &queue,
            &incoming_exchange(&me),
            &args.pattern,
        ))
        .await
        .context("binding the tap queue")?;
    let mut consume = BasicConsumeArguments::new(&queue, "tap");
    consume.auto_ack(true);
    let (_, mut rx) = channel.basic_consume_rx(consume).await?;
    eprintln!(
        "tap: {queue} bound to {} with {:?}",
        incoming_exchange(&me),
        args.pattern
    );
    let mut seen = 0;
    while args.count.is_none_or(|n| seen < n) {
        let Some(delivery) = rx.recv().await else {
            break;
        };
        let (Some(deliver), Some(props), Some(body)) = (
            delivery.deliver,
            delivery.basic_properties,
            delivery.content,
        ) else {
            continue;
        };
        let from = props.user_id().cloned().unwrap_or_else(|| "unknown".into());
        let decoded = Message::decode_slice(&body);
        if args.json {
            let line = match decoded {
                Ok(m) => super::json_line(&from, deliver.routing_key(), "message", &m.to_json()),
                Err(e) => super::json_line(
                    &from,
                    deliver.routing_key(),
                    "invalid",
                    &serde_json::to_string(&e.to_string())?,
                ),
            };
            println!("{line}");
        } else {
            match decoded {
                Ok(m) => println!("{from} {} {}", deliver.routing_key(), m.to_json()),
                Err(e) => println!(
                    "{from} {} INVALID ({e}) {}",
                    deliver.routing_key(),
                    String::from_utf8_lossy(&body)
                ),
            }
        }
        seen += 1;
    }
    let _ = connection.close().await;
    Ok(ExitCode::SUCCESS)
}
