//! One module per subcommand, and the profile options they share.

pub mod audit;
pub mod bench;
pub mod bench_child;
pub mod broker;
pub mod conformance;
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
use ebadge_admin::mgmt::{AdminClient, admin_client};
use ebadge_admin::profile::OperatorProfile;
use ebadge_bus::Profile;

/// Prints provisioning progress to stderr every 5 s: tens of thousands of items take minutes on
/// a cluster.
pub fn provisioning_progress() -> impl FnMut(usize, usize) {
    let mut last = std::time::Instant::now();
    move |done, total| {
        if last.elapsed().as_secs() >= 5 {
            eprintln!("  provisioning: {done}/{total} broker items");
            last = std::time::Instant::now();
        }
    }
}

/// Raises this process's soft open-file limit to its hard limit: a fleet holds one socket per HEH.
/// (Unix: Windows has no such limit on sockets.)
pub fn raise_open_file_limit() {
    #[cfg(unix)]
    if let Ok((_, hard)) = rlimit::getrlimit(rlimit::Resource::NOFILE) {
        let _ = rlimit::increase_nofile_limit(hard);
    }
}

/// The names given with `--group`, checked.
pub fn group_names(groups: &[String]) -> Result<Vec<ebadge_bus::EntityName>> {
    groups
        .iter()
        .map(|g| ebadge_bus::EntityName::new(g).with_context(|| format!("--group {g}")))
        .collect()
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

/// What `listen` and `tap` share: whose messages they read, how they print them, when they stop,
/// the profile and the metrics. Each command words `--as` (and `tap` its longer `--json`) for
/// itself.
#[derive(Args)]
pub struct ReadArgs {
    /// Whose messages (certificate CN).
    #[arg(long = "as", value_name = "NAME")]
    pub name: String,
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

impl ReadArgs {
    /// The entity, checked.
    pub fn entity(&self) -> Result<ebadge_bus::EntityName> {
        Ok(ebadge_bus::EntityName::new(&self.name)?)
    }

    /// Where the messages are printed, as `--json` and `--count` ask.
    pub fn printer(&self) -> crate::output::Messages {
        crate::output::Messages::new(crate::output::Format::json_if(self.json), self.count)
    }
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

    /// The operator's profile and an administrator client.
    pub fn admin(&self) -> Result<(OperatorProfile, AdminClient)> {
        let profile = OperatorProfile::load(&Profile::locate(self.profile.as_deref()))?;
        let client = admin_client(&profile.management);
        Ok((profile, client))
    }
}

/// `--metrics ADDR`: serve Prometheus metrics of this command's clients.
#[derive(Args, Clone)]
pub struct MetricsArg {
    /// Serve Prometheus metrics (OpenMetrics text) at http://ADDR/metrics while running, e.g.
    /// 127.0.0.1:9464 (port 0: a free port, printed on standard error).
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<std::net::SocketAddr>,
}

impl MetricsArg {
    /// With `--metrics`: the metrics to watch clients with and the running endpoint (announced
    /// on standard error); without: nothing, and no client counts anything for metrics.
    pub async fn serve(
        &self,
    ) -> Result<
        Option<(
            ebadge_bus::metrics::Metrics,
            ebadge_bus::metrics::MetricsServer,
        )>,
    > {
        let Some(address) = self.metrics else {
            return Ok(None);
        };
        let metrics = ebadge_bus::metrics::Metrics::new();
        let server = metrics.serve(address).await.with_context(|| {
            format!("cannot serve metrics on {address}: choose another address with --metrics")
        })?;
        eprintln!("metrics: http://{}/metrics", server.address());
        Ok(Some((metrics, server)))
    }
}
