//! `ebadge listen --as NAME [--group GROUP]… [--json] [--count N]`: print the messages arriving in
//! NAME's inbox.

use anyhow::Result;
use clap::Args;
use ebadge_bus::{Client, ClientConfig, EntityName};

use super::{MetricsArg, ProfileArg};
use crate::output::{self, Body, Format, Lines, Status};

/// Arguments of `listen`.
#[derive(Args)]
pub struct ListenArgs {
    /// Whose inbox (certificate CN).
    #[arg(long = "as", value_name = "NAME")]
    pub name: String,
    /// A group NAME is a member of, once per group: its messages (through SENDER-to-GROUP) are
    /// heard. A message through an exchange addressed to anyone else is quarantined as
    /// relayed (reason not_addressed).
    #[arg(long = "group", value_name = "GROUP")]
    pub groups: Vec<String>,
    /// One line per message: {"from":..,"routing_key":..,"message":{..}}.
    #[arg(long)]
    pub json: bool,
    /// Stop after N messages.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    #[command(flatten)]
    pub profile: ProfileArg,
    #[command(flatten)]
    pub metrics: MetricsArg,
}

/// Runs `listen`. Each message is acknowledged once printed; invalid ones never reach here (the
/// client quarantines them).
pub async fn run(args: ListenArgs) -> Result<Status> {
    let profile = args.profile.load()?;
    let mut config = ClientConfig::new(profile, EntityName::new(&args.name)?);
    config.groups = super::group_names(&args.groups)?;
    let client = Client::connect(config).await?;
    let metrics = args.metrics.serve().await?;
    if let Some((metrics, _)) = &metrics {
        metrics.watch(&args.name, std::slice::from_ref(&client));
    }
    let mut inbox = client.inbox().expect("a new client has its inbox");
    let format = Format::json_if(args.json);
    let mut out = Lines::live();
    let mut seen = 0;
    while args.count.is_none_or(|n| seen < n) {
        let Some(incoming) = inbox.next().await else {
            break;
        };
        out.line(output::message_line(
            format,
            incoming.from.as_str(),
            None,
            &incoming.routing_key,
            &Body::Message(incoming.message.to_json()),
        ))?;
        incoming.ack();
        seen += 1;
    }
    client.close(std::time::Duration::from_secs(2)).await;
    Ok(Status::Ok)
}
