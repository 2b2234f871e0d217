//! `ebadge tap --as NAME [--from SENDER]... [PATTERN]`: a live copy of NAME's incoming stream
//! through a non-durable private queue, leaving the inbox untouched.

use anyhow::Result;
use clap::Args;
use ebadge_bus::tap::Tap;

use super::ReadArgs;
use crate::output::{Body, Status};

/// Arguments of `tap`.
#[derive(Args)]
#[command(mut_arg("name", |arg| arg.help("Whose stream (certificate CN)")))]
#[command(mut_arg("json", |arg| arg.help(
    "One line per message: {\"from\":..,\"routing_key\":..,\"message\":{..}} (\"invalid\" instead of \
     \"message\" for bodies that are not valid eBADGE messages; \"to\" last for a group's \
     message or a relayed one)"
)))]
pub struct TapArgs {
    #[command(flatten)]
    pub read: ReadArgs,
    /// Binding pattern over routing keys `type[.heh_id]`, e.g. `report.#` or `*.heh-42`.
    #[arg(default_value = "#")]
    pub pattern: String,
    /// Tap only what comes from SENDER (its exchange SENDER-to-NAME), or through a group
    /// exchange SENDER-to-GROUP; repeatable. Needed for an HEH, which has no incoming exchange
    /// (its senders' exchanges are bound straight to its inbox); without it, a tap sees
    /// everything NAME receives.
    #[arg(long = "from", value_name = "SENDER")]
    pub from: Vec<String>,
}

/// Runs `tap`.
pub async fn run(args: TapArgs) -> Result<Status> {
    ebadge_bus::tap::check_pattern(&args.pattern)?;
    let profile = args.read.profile.load()?;
    let me = args.read.entity()?;
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
    let metrics = args.read.metrics.serve().await?;
    let tally = metrics
        .as_ref()
        .map(|(m, _)| m.tally(&format!("tap-{}", args.read.name)));
    let mut out = args.read.printer();
    while out.wants_more() {
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
        out.print(&t.from, t.to.as_deref(), &t.routing_key, &body)?;
    }
    tap.close().await;
    Ok(Status::Ok)
}
