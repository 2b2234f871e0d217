//! `ebadge audit`: check a live broker against the conventions.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use super::ProfileArg;

/// Arguments of `audit`.
#[derive(Args)]
pub struct AuditArgs {
    /// One JSON object per violation: {"kind":..,"detail":..}.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub profile: ProfileArg,
}

/// Runs `audit`: exit 0 when the broker conforms, 1 on any violation.
pub async fn run(args: AuditArgs) -> Result<ExitCode> {
    let (profile, client) = args.profile.admin()?;
    let management = profile.management;
    let violations = ebadge_admin::audit::audit(&client, &management).await?;
    for v in &violations {
        if args.json {
            println!("{}", serde_json::to_string(v)?);
        } else {
            println!("VIOLATION {}: {}", v.kind, v.detail);
        }
    }
    if violations.is_empty() {
        eprintln!("audit: the broker follows the conventions");
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("audit: {} violations", violations.len());
        Ok(ExitCode::from(1))
    }
}
