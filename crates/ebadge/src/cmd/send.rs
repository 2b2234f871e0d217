//! `ebadge send --as NAME --to PEER [FILE|-]`: validate and send JSON messages, one per line.

use std::io::BufRead;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use ebadge_bus::{Client, ClientConfig, EntityName, FirstConnection};
use ebadge_model::Message;

use super::{ProfileArg, open_input};
use crate::output::{Format, Status};

/// Arguments of `send`.
#[derive(Args)]
pub struct SendArgs {
    /// Who we are (certificate CN).
    #[arg(long = "as", value_name = "NAME")]
    pub name: String,
    /// The receiving entity or group.
    #[arg(long, value_name = "PEER")]
    pub to: String,
    /// A group NAME is a member of, once per group: a group message that arrives while `send`
    /// runs is then left for NAME's application instead of quarantined as not addressed to it.
    #[arg(long = "group", value_name = "GROUP")]
    pub groups: Vec<String>,
    /// File with one JSON message per line; "-" or nothing for standard input.
    pub file: Option<PathBuf>,
    /// Keep unconfirmed messages in this SQLite file: they survive a restart and are sent by the
    /// next `ebadge send` with the same outbox (even with no input), e.g. after an outage.
    #[arg(long, value_name = "FILE")]
    pub outbox: Option<PathBuf>,
    /// How long to wait for the broker's confirms before giving up (messages stay in --outbox).
    #[arg(long, default_value = "30", value_name = "SECONDS")]
    pub timeout: u64,
    /// One JSON object per input line: {"line","sent","type","message_id"} or {"line","sent":false,"reason"}.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub profile: ProfileArg,
}

/// Runs `send`: exit 0 when every line was valid and is confirmed, 1 if a line was invalid,
/// 3 if confirms did not arrive in time, 4 if the broker refused messages for good.
pub async fn run(args: SendArgs) -> Result<Status> {
    let profile = args.profile.load()?;
    let me = EntityName::new(&args.name)?;
    let to = EntityName::new(&args.to)?;
    let mut config = ClientConfig::new(profile, me);
    config.groups = super::group_names(&args.groups)?;
    config.durable_outbox = args.outbox.clone();
    // With a durable outbox the broker may be away: messages wait on disk until it is back.
    if args.outbox.is_some() {
        config.first_connection = FirstConnection::Background;
    }
    let client = Client::connect(config).await?;
    let left = client.counters().buffered;
    if left > 0 {
        eprintln!("send: {left} messages left in the outbox by an earlier run go first");
    }
    let format = Format::json_if(args.json);
    let mut invalid = 0usize;
    for (index, line) in open_input(args.file.as_deref())?.lines().enumerate() {
        let line = line.context("reading the input")?;
        let n = index + 1;
        if line.trim().is_empty() {
            continue;
        }
        let result = Message::decode(&line)
            .map_err(anyhow::Error::from)
            .and_then(|m| Ok((client.send(&to, &m)?, m)));
        match result {
            Ok((id, m)) => format.print(
                &serde_json::json!({"line": n, "sent": true, "type": m.type_name(), "message_id": id}),
                || format!("sent {} {id}", m.type_name()),
            )?,
            Err(e) => {
                invalid += 1;
                format.print(
                    &serde_json::json!({"line": n, "sent": false, "reason": e.to_string()}),
                    || format!("invalid {n}: {e}"),
                )?;
            }
        }
    }
    let confirmed = tokio::time::timeout(Duration::from_secs(args.timeout), client.flush()).await;
    let undelivered = match &confirmed {
        Ok(Err(ebadge_bus::SendError::Undelivered(lost))) => lost.clone(),
        _ => Vec::new(),
    };
    for lost in &undelivered {
        eprintln!(
            "send: not delivered: {} {} to {}: {}",
            lost.msg_type, lost.message_id, lost.exchange, lost.reason
        );
    }
    let counters = client.counters();
    eprintln!(
        "send: {} sent, {} confirmed, {} waiting, {invalid} invalid",
        counters.sent, counters.confirmed, counters.buffered
    );
    if confirmed.is_err() {
        match &args.outbox {
            Some(file) => eprintln!(
                "send: the broker did not confirm {} messages in {} s; they stay in {} for the next run",
                counters.buffered,
                args.timeout,
                file.display()
            ),
            None => eprintln!(
                "send: the broker did not confirm {} messages in {} s; they are lost with this process (use --outbox FILE to keep them)",
                counters.buffered, args.timeout
            ),
        }
        return Ok(Status::Unconfirmed);
    }
    client.close(Duration::from_secs(1)).await;
    Ok(if !undelivered.is_empty() {
        Status::Refused
    } else {
        Status::held(invalid == 0)
    })
}
