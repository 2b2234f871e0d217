//! `ebadge revoke NAME`: take an entity's rights away now, open connections included.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use super::ProfileArg;

/// Arguments of `revoke`.
#[derive(Args)]
pub struct RevokeArgs {
    /// The entity to revoke.
    pub name: String,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub profile: ProfileArg,
}

/// Runs `revoke`.
pub async fn run(args: RevokeArgs) -> Result<ExitCode> {
    let (_, _, client) = args.profile.admin()?;
    let revoked = ebadge_admin::revoke::revoke(&client, &args.name).await?;
    if args.json {
        println!("{}", serde_json::to_string(&revoked)?);
    } else {
        println!(
            "revoked {}: user {}, {} connections closed. Remove it from the registry too, or the next provision restores it.",
            args.name,
            if revoked.user_deleted {
                "deleted"
            } else {
                "was already gone"
            },
            revoked.connections_closed
        );
    }
    Ok(ExitCode::SUCCESS)
}
