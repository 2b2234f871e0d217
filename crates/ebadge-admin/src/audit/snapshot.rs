//! What the audit reads from a live broker. All of its I/O is here, in [`fetch`], so that the
//! rules ([`super::check`]) are a pure function of the result and can be tested on fixtures.

use super::handles::QUEUE_COLUMNS;
use crate::mgmt::{AdminClient, ApiError, RawApi};
use crate::profile::Management;
use crate::state::{State, live_state};
use serde_json::Value;

/// Everything the audit's rules read about one broker. The management API's answers are kept
/// as JSON, as they came: the rules read a few fields each, and a fixture is then a JSON
/// literal. The audit needs no registry (it derives group membership from the live bindings),
/// so there is no desired state here.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// The administrator account (the operator profile's management user): the one user that
    /// may have a password and the administrator tag, whose permissions are not an entity's.
    pub admin: String,
    /// The items of vhost `/` from the broker's definitions: users with their tags, permissions,
    /// exchanges, bindings and policies.
    pub live: State,
    /// `GET /api/overview`: the listeners with their TLS options, and the RabbitMQ version (the
    /// quorum queues' delivery limit differs between 3.x and 4).
    pub overview: Value,
    /// `GET /api/nodes`: the cluster's members, the logins each offers and its file handles.
    pub nodes: Value,
    /// `GET /api/` + [`QUEUE_COLUMNS`]: every queue with its arguments, leader and members, which
    /// the definitions do not carry.
    pub queues: Value,
}

/// Reads a [`Snapshot`] of the broker that `client` and `management` administer.
pub async fn fetch(client: &AdminClient, management: &Management) -> Result<Snapshot, ApiError> {
    let http = RawApi::new(management);
    Ok(Snapshot {
        admin: management.user.clone(),
        live: live_state(client).await?,
        overview: http.get("overview").await?,
        nodes: http.get("nodes").await?,
        queues: http.get(QUEUE_COLUMNS).await?,
    })
}
