//! `ebadge tap --as NAME [--from SENDER]... [PATTERN]`: a live copy of NAME's incoming stream
//! through a non-durable private queue, leaving the inbox untouched.

use anyhow::Result;
use clap::Args;
use ebadge_bus::EntityName;
use ebadge_bus::tap::Tap;

use super::{MetricsArg, ProfileArg};
use crate::output::{self, Body, Format, Lines, Status};

/// Arguments of `tap`.
#[derive(Args)]
pub struct TapArgs {
    /// Whose stream (certificate CN).
    #[arg(long = "as", value_name = "NAME")]
    pub name: String,
    /// Binding pattern over routing keys `type[.heh_id]`, e.g. `report.#` or `*.heh-42`.
    #[arg(default_value = "#")]
    pub pattern: String,
    /// Tap only what comes from SENDER (its exchange SENDER-to-NAME), or through a group
    /// exchange SENDER-to-GROUP; repeatable. Needed for an HEH, which has no incoming exchange
    /// (its senders' exchanges are bound straight to its inbox); without it, a tap sees
    /// everything NAME receives.
    #[arg(long = "from", value_name = "SENDER")]
    pub from: Vec<String>,
    /// One line per message: {"from":..,"routing_key":..,"message":{..}} ("invalid" instead of
    /// "message" for bodies that are not valid eBADGE messages).
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

/// Runs `tap`.
pub async fn run(args: TapArgs) -> Result<Status> {
    ebadge_bus::tap::check_pattern(&args.pattern)?;
    let profile = args.profile.load()?;
    let me = EntityName::new(&args.name)?;
    let mut tap = if args.from.is_empty() {
        Tap::open(&profile, &me, &args.pattern).await?
    } else {
        Tap::open_from(&profile, &me, &args.from, &args.pattern).await?
    };
    eprintln!(
        "tap: {} bound to {} with {:?}",
        tap.queue(),
        tap.exchanges().join(", "),
        args.pattern
    );
    let metrics = args.metrics.serve().await?;
    let tally = metrics
        .as_ref()
        .map(|(m, _)| m.tally(&format!("tap-{}", args.name)));
    let format = Format::json_if(args.json);
    let mut out = Lines::live();
    let mut seen = 0;
    while args.count.is_none_or(|n| seen < n) {
        let Some(t) = tap.next().await else {
            break;
        };
        if let (Some(tally), Ok(message)) = (&tally, &t.message) {
            tally.received(message);
        }
        let body = match &t.message {
            Ok(m) => Body::Message(m.to_json()),
            Err(e) => Body::Invalid {
                reason: e.to_string(),
                raw: &t.body,
            },
        };
        out.line(output::message_line(
            format,
            &t.from,
            t.to.as_deref(),
            &t.routing_key,
            &body,
        ))?;
        seen += 1;
    }
    tap.close().await;
    Ok(Status::Ok)
}
