//! Revocation: an entity loses its rights now. D3.2.3 6.1 notes that changed permissions do not
//! reach connections that are already open, so we also close them.

use crate::provision::{AdminClient, ApiError};
use serde::Serialize;

/// What `revoke` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Revoked {
    /// The user existed and was deleted.
    pub user_deleted: bool,
    /// Open connections closed.
    pub connections_closed: usize,
}

/// Removes the permissions and the user `name`, then closes its open connections. Its inbox and
/// exchanges stay (messages waiting there remain for the operator to inspect until their TTL);
/// remove the entity from the registry too, or the next `provision` restores it.
pub async fn revoke(client: &AdminClient, name: &str) -> Result<Revoked, ApiError> {
    let mut revoked = Revoked::default();
    client
        .clear_permissions("/", name, true)
        .await
        .map_err(|e| ApiError::new(format!("clearing the permissions of {name}"), e))?;
    revoked.user_deleted = client.get_user(name).await.is_ok();
    client
        .delete_user(name, true)
        .await
        .map_err(|e| ApiError::new(format!("deleting user {name}"), e))?;
    // Twice: a connection that was being opened while the user was deleted shows up late.
    for _ in 0..2 {
        let connections = client
            .list_user_connections(name)
            .await
            .map_err(|e| ApiError::new(format!("listing the connections of {name}"), e))?;
        for c in &connections {
            client
                .close_connection(&c.name, Some("access revoked by the bus operator"), true)
                .await
                .map_err(|e| ApiError::new(format!("closing connection {}", c.name), e))?;
            revoked.connections_closed += 1;
        }
    }
    Ok(revoked)
}
