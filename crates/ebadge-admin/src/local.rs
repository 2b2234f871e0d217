//! A local bus in one call: the broker brought up under our supervisor, a registry provisioned
//! on it, and a certificate issued for each of the registry's entities. What `ebadge demo`,
//! `ebadge bench`, the simulators and the test kit all need before the first message.

use crate::broker::{BrokerError, LocalBroker, UpOptions};
use crate::mgmt::{ApiError, admin_client};
use crate::pki::PkiError;
use crate::profile::Management;
use crate::provision::{self, Plan};
use crate::registry::Registry;
use ebadge_bus::{Profile, ProfileError};

/// Why a local bus could not be made ready.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// The broker did not come up.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// The profile the broker wrote cannot be read.
    #[error(transparent)]
    Profile(#[from] ProfileError),
    /// Provisioning failed.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// Certificates could not be issued.
    #[error(transparent)]
    Pki(#[from] PkiError),
}

/// What happens to what the broker has beyond the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Others {
    /// Kept: the broker may serve other registries too (the demo, the benchmarks); only what
    /// belongs to this registry's entities and is no longer implied is removed
    /// ([`crate::provision::Plan::keeping_others`]).
    Keep,
    /// Removed: the broker is brought to exactly the registry's state (the tests' reset).
    Remove,
}

/// A local bus ready for the registry's entities.
#[derive(Debug)]
pub struct Provisioned {
    /// The profile every entity connects with.
    pub profile: Profile,
    /// The administrator's account on the management API.
    pub management: Management,
    /// What provisioning did (empty when the broker already had everything).
    pub plan: Plan,
    /// How many certificates were issued (entities that had one keep it).
    pub issued: usize,
}

/// Brings the local broker in `broker`'s directory up (if it is not running yet, with
/// `options`), provisions what `registry` implies (removing the rest or not, as `others` says)
/// and issues the missing certificates. `progress` is called with (done, total)
/// broker items while provisioning runs: tens of thousands of items take minutes on a cluster.
pub async fn provision(
    broker: &LocalBroker,
    options: &UpOptions,
    registry: &Registry,
    others: Others,
    progress: impl FnMut(usize, usize),
) -> Result<Provisioned, LocalError> {
    broker.up(options).await?;
    let profile = Profile::load(&broker.profile_path())?;
    let m = broker.management()?;
    let mut plan = provision::plan(&admin_client(&m), &m, registry).await?;
    if others == Others::Keep {
        plan = plan.keeping_others(registry);
    }
    plan.apply(&m, progress).await?;
    let issued = broker
        .pki()
        .issue_missing(registry.entities().map(|e| e.as_str()))?;
    Ok(Provisioned {
        profile,
        management: m,
        plan,
        issued,
    })
}
