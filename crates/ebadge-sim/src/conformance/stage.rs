//! What every kit run sets up before it starts the client: the entities on the broker, the
//! kit's link, the client's files, where its output goes, and where the broker's log stood.

use super::client::ClientFiles;
use super::{KitError, Target};
use crate::proxy::Proxy;
use ebadge_admin::local::{Others, provision};
use ebadge_admin::mgmt::admin_client;
use ebadge_admin::pki::Pki;
use ebadge_admin::registry::Registry;
use ebadge_bus::{EntityName, Profile};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// A prepared run.
pub(super) struct Stage {
    /// The broker's profile (the kit's own connections go straight to the broker).
    pub profile: Profile,
    /// The client's link, which the kit cuts.
    pub proxy: Proxy,
    /// The client's files and environment.
    pub files: ClientFiles,
    /// The client's output.
    pub log: PathBuf,
    /// The length of the broker's log before the run: the run's refusals come after it.
    pub log_offset: u64,
}

impl Stage {
    /// Provisions `registry` on `target` (a local broker started if need be), starts the link
    /// and writes the client's files into `work_dir`.
    pub(super) async fn prepare(
        target: &Target,
        registry: &Registry,
        work_dir: &Path,
        name: &EntityName,
        controller: Option<&EntityName>,
        hehs: &[EntityName],
    ) -> Result<Stage, KitError> {
        let profile = match target {
            Target::Local(broker) => {
                provision(
                    broker,
                    &Default::default(),
                    registry,
                    Others::Keep,
                    |_, _| {},
                )
                .await
                .map_err(|e| KitError::Broker(e.to_string()))?
                .profile
            }
            Target::Given(operator) => provision_given(operator, registry).await?,
        };
        let proxy = Proxy::start(broker_addr(&profile).await?)
            .await
            .map_err(|e| KitError::Bus(format!("starting the kit's link: {e}")))?;
        std::fs::create_dir_all(work_dir)
            .map_err(|e| KitError::Files(format!("{}: {e}", work_dir.display())))?;
        let files = ClientFiles::write(work_dir, &profile, proxy.addr, name, controller, hehs)?;
        Ok(Stage {
            profile,
            proxy,
            files,
            log: work_dir.join("client.log"),
            log_offset: target
                .local()
                .and_then(|broker| std::fs::metadata(broker.console_log()).ok())
                .map_or(0, |m| m.len()),
        })
    }
}

/// The broker's AMQPS address, for the kit's link to point at.
async fn broker_addr(profile: &Profile) -> Result<SocketAddr, KitError> {
    let (host, port) = profile.host_and_port().map_err(KitError::Bus)?;
    tokio::net::lookup_host((host.as_str(), port))
        .await
        .ok()
        .and_then(|mut addrs| addrs.find(SocketAddr::is_ipv4))
        .ok_or_else(|| KitError::Bus(format!("cannot resolve {host}:{port}")))
}

/// Adds `registry` to a given broker (nothing else changes there) and, when the profile holds
/// the CA's key, issues the missing certificates; else they must be there already.
async fn provision_given(
    operator: &ebadge_admin::profile::OperatorProfile,
    registry: &Registry,
) -> Result<Profile, KitError> {
    let m = &operator.management;
    let failed = |e: ebadge_admin::mgmt::ApiError| KitError::Broker(e.to_string());
    let plan = ebadge_admin::provision::plan(&admin_client(m), m, registry)
        .await
        .map_err(failed)?
        .keeping_others(registry);
    plan.apply(m, |_, _| {}).await.map_err(failed)?;
    let profile = operator.client.clone();
    if let Some(ca_key) = operator.ca_key.as_ref().filter(|k| k.exists()) {
        Pki::new(ca_key.parent().unwrap_or(Path::new(".")))
            .issue_missing(registry.entities().map(EntityName::as_str))
            .map_err(|e| KitError::Files(e.to_string()))?;
    }
    for name in registry.entities() {
        let (cert, key) = profile.certificate(name.as_str());
        if !cert.exists() || !key.exists() {
            return Err(KitError::Files(format!(
                "{} or {} is missing: the bus operator issues {name}'s certificate (`ebadge pki issue {name}`) into the profile's certs directory",
                cert.display(),
                key.display()
            )));
        }
    }
    Ok(profile)
}
