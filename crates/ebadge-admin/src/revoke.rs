//! Revocation: an entity loses its rights now. D3.2.3 6.1 notes that changed permissions do not
//! reach connections that are already open, so we also close them; a deleted user comes back
//! with the next provisioning of its name, so its certificate is retired too (the CRL); and a
//! binding it made into one of its pair exchanges would go on relaying after it is gone, so its
//! relay bindings go with it.

use crate::mgmt::{AdminClient, ApiError};
use crate::pki::Pki;
use ebadge_bus::conventions::is_relay_destination;
use rabbitmq_http_client::commons::BindingDestinationType;
use serde::Serialize;

/// What `revoke` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Revoked {
    /// The user existed and was deleted.
    pub user_deleted: bool,
    /// Open connections closed.
    pub connections_closed: usize,
    /// Relay bindings it had made into its pair exchanges, deleted (see
    /// [`is_relay_destination`]): `<source> -> <destination> [<key>]`.
    pub relay_bindings_removed: Vec<String>,
    /// The serial of the certificate put on the CRL (`None` without the CA at hand, or when the
    /// entity had no certificate in it).
    pub certificate_revoked: Option<String>,
}

/// Revoke failed.
#[derive(Debug, thiserror::Error)]
pub enum RevokeError {
    /// The management API refused or failed.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The rights are gone and the certificate retired, but its relay bindings could not be
    /// listed or deleted: run `ebadge revoke` again, or `ebadge provision` (it removes every
    /// relay binding).
    #[error(
        "the rights of {name} are gone{}, but its relay bindings could not be removed: {source}. Run `ebadge revoke {name}` again or `ebadge provision`, which removes every relay binding",
        certificate_revoked.as_ref().map(|s| format!(" and its certificate (serial {s}) is on the CRL")).unwrap_or_default()
    )]
    Relays {
        /// The entity.
        name: String,
        /// The serial put on the CRL, if any.
        certificate_revoked: Option<String>,
        /// Why.
        source: ApiError,
    },
    /// The certificate could not be retired (the rights are gone already).
    #[error("the rights of {name} are gone, but its certificate could not be retired: {source}")]
    Pki {
        /// The entity.
        name: String,
        /// Why.
        source: crate::pki::PkiError,
    },
}

/// Removes the permissions and the user `name`, closes its open connections, deletes the relay
/// bindings it made (into its pair exchanges `<name>-to-…`: it alone could write them), and with
/// the CA at hand (`pki`) puts its certificate on the CRL, so that the old key cannot log in even
/// if the name is provisioned again. Its inbox and exchanges stay (messages waiting there remain
/// for the operator to inspect until their TTL); remove the entity from the registry too.
pub async fn revoke(
    client: &AdminClient,
    pki: Option<&Pki>,
    name: &str,
) -> Result<Revoked, RevokeError> {
    let mut revoked = rights(client, name).await?;
    // The key is retired before anything else can fail: the relay cleanup below lists every
    // binding of the broker, which may time out on a large one.
    if let Some(pki) = pki {
        revoked.certificate_revoked = pki
            .revoke(name)
            .map_err(|source| RevokeError::Pki {
                name: name.to_owned(),
                source,
            })?
            .map(|r| r.serial);
    }
    // After its connections are closed: it can make no new one now.
    revoked.relay_bindings_removed =
        relay_bindings(client, name)
            .await
            .map_err(|source| RevokeError::Relays {
                name: name.to_owned(),
                certificate_revoked: revoked.certificate_revoked.clone(),
                source,
            })?;
    Ok(revoked)
}

async fn rights(client: &AdminClient, name: &str) -> Result<Revoked, ApiError> {
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

/// Deletes every binding into an exchange `<name>-to-…` (see [`is_relay_destination`]), whatever
/// its key and arguments: the relays `name` made. Returns them.
async fn relay_bindings(client: &AdminClient, name: &str) -> Result<Vec<String>, ApiError> {
    let prefix = format!("{name}-to-");
    let mut relays = client
        .list_bindings_in("/")
        .await
        .map_err(|e| ApiError::new("listing the bindings", e))?;
    relays.retain(|b| {
        b.destination_type == BindingDestinationType::Exchange
            && is_relay_destination(&b.destination)
            && b.destination.starts_with(&prefix)
    });
    crate::provision::delete_bindings(client, &relays).await?;
    Ok(relays
        .iter()
        .map(|b| format!("{} -> {} [{}]", b.source, b.destination, b.routing_key))
        .collect())
}
