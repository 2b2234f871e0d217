//! One module per subcommand, and the profile options they share.

pub mod audit;
pub mod bench;
pub mod broker;
pub mod demo;
pub mod listen;
pub mod msg;
pub mod pki;
pub mod provision;
pub mod revoke;
pub mod send;
pub mod sim;
pub mod tap;

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use ebadge_admin::broker::admin_client;
use ebadge_admin::provision::AdminClient;
use ebadge_bus::profile::{Management, Profile};

/// Starts the local broker in `dir` if needed and adds what `registry` implies, without removing
/// what other registries put there (demo and benchmarks share the broker with the user's own
/// entities); issues missing certificates. Returns the profile, the applied plan and the number of
/// certificates issued.
pub async fn provision_local(
    dir: &Path,
    registry: &ebadge_admin::registry::Registry,
) -> Result<(Profile, ebadge_admin::provision::Plan, usize)> {
    let broker = ebadge_admin::broker::LocalBroker::new(dir);
    broker.up(&Default::default()).await?;
    let profile = Profile::load(&broker.profile_path())?;
    let m = profile
        .management
        .clone()
        .context("the local profile has a management section")?;
    let client = admin_client(&m.url, &m.password);
    let plan = ebadge_admin::provision::plan(&client, &m, registry)
        .await?
        .without_removals();
    // Tens of thousands of items take minutes on a cluster: say how far it got.
    let mut last = std::time::Instant::now();
    plan.apply(&m, |done, total| {
        if last.elapsed().as_secs() >= 5 {
            eprintln!("  provisioning: {done}/{total} broker items");
            last = std::time::Instant::now();
        }
    })
    .await?;
    let issued = broker
        .pki()
        .issue_missing(registry.entities().map(|e| e.as_str()))?;
    Ok((profile, plan, issued))
}

/// Raises this process's soft open-file limit to its hard limit: a fleet holds one socket per HEH.
pub fn raise_open_file_limit() {
    if let Ok((_, hard)) = rlimit::getrlimit(rlimit::Resource::NOFILE) {
        let _ = rlimit::increase_nofile_limit(hard);
    }
}

/// Standard input for `None` or "-", else the file.
pub fn open_input(file: Option<&Path>) -> Result<Box<dyn BufRead>> {
    match file {
        None => Ok(Box::new(BufReader::new(io::stdin()))),
        Some(path) if path.as_os_str() == "-" => Ok(Box::new(BufReader::new(io::stdin()))),
        Some(path) => {
            let file =
                File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
            Ok(Box::new(BufReader::new(file)))
        }
    }
}

/// One `--json` output line of `listen` and `tap`, keys in the documented order:
/// `{"from":..,"routing_key":..,"message":{..}}`; `body` is JSON text already.
pub fn json_line(from: &str, routing_key: &str, key: &str, body: &str) -> String {
    let quote = |s: &str| serde_json::Value::from(s).to_string();
    format!(
        "{{\"from\":{},\"routing_key\":{},{}:{body}}}",
        quote(from),
        quote(routing_key),
        quote(key)
    )
}

/// `--profile FILE` (default: $EBADGE_PROFILE, else .ebadge/profile.toml).
#[derive(Args)]
pub struct ProfileArg {
    /// Connection profile (default: $EBADGE_PROFILE, else .ebadge/profile.toml as written by
    /// `ebadge broker up`).
    #[arg(long, value_name = "FILE")]
    pub profile: Option<PathBuf>,
}

impl ProfileArg {
    /// The connection profile.
    pub fn load(&self) -> Result<Profile> {
        Ok(Profile::load(&Profile::locate(self.profile.as_deref()))?)
    }

    /// The profile, its management section and an administrator client.
    pub fn admin(&self) -> Result<(Profile, Management, AdminClient)> {
        let path = Profile::locate(self.profile.as_deref());
        let profile = Profile::load(&path)?;
        let management = profile.management(&path)?.clone();
        let client = admin_client(&management.url, &management.password);
        Ok((profile, management, client))
    }
}
