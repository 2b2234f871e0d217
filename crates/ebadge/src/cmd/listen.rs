//! `ebadge listen --as NAME [--group GROUP]… [--json] [--count N]`: print the messages arriving in
//! NAME's inbox.

use anyhow::Result;
use clap::Args;
use ebadge_bus::{Client, ClientConfig};

use super::ReadArgs;
use crate::output::{Body, Status};

/// Arguments of `listen`.
#[derive(Args)]
#[command(mut_arg("name", |arg| arg.help("Whose inbox (certificate CN)")))]
pub struct ListenArgs {
    #[command(flatten)]
    pub read: ReadArgs,
    /// A group NAME is a member of, once per group: its messages (through SENDER-to-GROUP) are
    /// heard. A message through an exchange addressed to anyone else is quarantined as
    /// relayed (reason not_addressed).
    #[arg(long = "group", value_name = "GROUP")]
    pub groups: Vec<String>,
}

/// Runs `listen`. Each message is acknowledged once printed; invalid ones never reach here (the
/// client quarantines them).
pub async fn run(args: ListenArgs) -> Result<Status> {
    let profile = args.read.profile.load()?;
    let mut config = ClientConfig::new(profile, args.read.entity()?);
    config.groups = super::group_names(&args.groups)?;
    let client = Client::connect(config).await?;
    let metrics = args.read.metrics.serve().await?;
    if let Some((metrics, _)) = &metrics {
        metrics.watch(&args.read.name, std::slice::from_ref(&client));
    }
    let mut inbox = client.inbox().expect("a new client has its inbox");
    let mut out = args.read.printer();
    while out.wants_more() {
        let Some(incoming) = inbox.next().await else {
            break;
        };
        out.print(
            incoming.from.as_str(),
            None,
            &incoming.routing_key,
            &Body::Message(incoming.message.to_json()),
        )?;
        incoming.ack();
    }
    client.close(std::time::Duration::from_secs(2)).await;
    Ok(Status::Ok)
}
