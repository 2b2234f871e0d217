//! One module per subcommand, and the profile options they share.

pub mod audit;
pub mod broker;
pub mod msg;
pub mod pki;
pub mod provision;
pub mod revoke;

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use ebadge_admin::broker::admin_client;
use ebadge_admin::provision::AdminClient;
use ebadge_bus::profile::{Management, Profile};

/// `--profile FILE` (default: $EBADGE_PROFILE, else .ebadge/profile.toml).
#[derive(Args)]
pub struct OperatorProfile {
    /// Connection profile (default: $EBADGE_PROFILE, else .ebadge/profile.toml as written by
    /// `ebadge broker up`).
    #[arg(long, global = true)]
    pub profile: Option<PathBuf>,
}

impl OperatorProfile {
    /// The profile, its management section and an administrator client.
    pub fn admin(&self) -> Result<(Profile, Management, AdminClient)> {
        let path = Profile::locate(self.profile.as_deref());
        let profile = Profile::load(&path)?;
        let management = profile.management(&path)?.clone();
        let client = admin_client(&management.url, &management.password);
        Ok((profile, management, client))
    }
}
