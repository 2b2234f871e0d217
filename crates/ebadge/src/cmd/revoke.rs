//! `ebadge revoke NAME`: take an entity's rights away now, open connections included.

use anyhow::Result;
use clap::Args;

use super::ProfileArg;
use crate::output::{self, Status};

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
pub async fn run(args: RevokeArgs) -> Result<Status> {
    let (profile, client) = args.profile.admin()?;
    let pki = profile
        .ca_key
        .as_ref()
        .and_then(|key| key.parent())
        .map(ebadge_admin::pki::Pki::new);
    let revoked = ebadge_admin::revoke::revoke(&client, pki.as_ref(), &args.name).await?;
    if args.json {
        output::json(&revoked)?;
    } else {
        output::line(format_args!(
            "revoked {}: user {}, {} connections closed. Remove it from the registry too, or the next provision restores it.",
            args.name,
            if revoked.user_deleted {
                "deleted"
            } else {
                "was already gone"
            },
            revoked.connections_closed
        ));
        for relay in &revoked.relay_bindings_removed {
            output::line(format_args!(
                "relay binding {relay} removed: it made it, and it relayed to another entity"
            ));
        }
        output::line(match &revoked.certificate_revoked {
            Some(serial) => {
                format!("certificate {serial} is on the CRL: the old key is refused from now on")
            }
            None if pki.is_some() => format!("no certificate of {} in the local PKI", args.name),
            None => "the certificate is still valid: this profile has no CA key. Revoke it at your CA and install its CRL on every node (docs/operator-guide.md)".to_owned(),
        });
    }
    Ok(Status::Ok)
}
