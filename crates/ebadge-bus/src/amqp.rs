//! The raw AMQP side: an amqprs [`Connection`] opened as an entity, with TLS and the entity's
//! client certificate, SASL EXTERNAL (the broker takes the username from the certificate's CN)
//! and heartbeats. [`crate::Client`] connects through it; a program that wants plain AMQP (its
//! own channels, no reliability layer: D3.2.3 6.4 asks the library to stay transparent) opens
//! one with [`connect`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use ebadge_bus::{Profile, amqp};
//! let profile = Profile::load(&Profile::locate(None))?;
//! let connection = amqp::connect(&profile, "vpp").await?;
//! let channel = connection.open_channel(None).await?;
//! # Ok(()) }
//! ```

use crate::profile::Profile;
use amqprs::connection::{Connection, OpenConnectionArguments};
use amqprs::security::SecurityCredentials;
use amqprs::tls::TlsAdaptor;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Heartbeat interval asked of the broker, in seconds, unless the profile says otherwise
/// (`heartbeat_seconds`): a dead link is noticed within two.
pub const HEARTBEAT_SECONDS: u16 = 10;

/// Longest wait for a connection (TCP, TLS, AMQP handshake): on a link that swallows packets
/// without an error, an attempt would otherwise wait forever.
pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// Why a connection could not be opened, with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// A certificate, key or CA file is missing or unreadable.
    #[error("cannot read {what} {path}: {reason}. {hint}")]
    File {
        /// Which file it is.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
        /// What to do.
        hint: &'static str,
    },
    /// The profile's URL is unusable.
    #[error("bad broker address: {0}")]
    Address(String),
    /// The broker could not be reached or refused us.
    #[error("connecting to {url} as {name} failed: {reason}. {hint}")]
    Broker {
        /// The broker's URL.
        url: String,
        /// The entity.
        name: String,
        /// The reason amqprs gave.
        reason: String,
        /// What to do.
        hint: &'static str,
    },
}

/// Builds the TLS client configuration with the one crypto provider we compile in (ring).
pub fn tls_config(
    ca: &Path,
    cert: &Path,
    key: &Path,
) -> Result<rustls::ClientConfig, ConnectError> {
    const ISSUE: &str = "Issue the entity's certificate with `ebadge pki issue NAME` (local PKI) or ask the bus operator for it";
    let file_error = |what, path: &Path, reason: String, hint| ConnectError::File {
        what,
        path: path.into(),
        reason,
        hint,
    };
    let mut roots = rustls::RootCertStore::empty();
    let ca_certs: Vec<_> = CertificateDer::pem_file_iter(ca)
        .and_then(|i| i.collect::<Result<_, _>>())
        .map_err(|e| file_error("CA certificate", ca, e.to_string(), "The profile's `ca` must name the PEM file of the CA that signed the broker's certificate"))?;
    for c in ca_certs {
        roots
            .add(c)
            .map_err(|e| file_error("CA certificate", ca, e.to_string(), ""))?;
    }
    let chain: Vec<_> = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect::<Result<_, _>>())
        .map_err(|e| file_error("client certificate", cert, e.to_string(), ISSUE))?;
    let key_der = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| file_error("client key", key, e.to_string(), ISSUE))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| file_error("TLS settings", ca, e.to_string(), ""))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key_der)
        .map_err(|e| file_error("client certificate", cert, e.to_string(), ISSUE))
}

/// Opens a connection as entity `name` with the profile's CA and the entity's certificate.
pub async fn connect(profile: &Profile, name: &str) -> Result<Connection, ConnectError> {
    let (cert, key) = profile.certificate(name);
    connect_with(profile, name, &cert, &key).await
}

/// [`connect`], tried again while the broker does not answer (a busy node, a fleet booting at
/// once): backoff doubling from `backoff.0` to `backoff.1` with ±50 % jitter, for up to
/// `patience`. Errors a retry cannot mend (certificate, refused login) return at once.
pub async fn connect_patiently(
    profile: &Profile,
    name: &str,
    patience: std::time::Duration,
    backoff: (std::time::Duration, std::time::Duration),
) -> Result<Connection, ConnectError> {
    let deadline = tokio::time::Instant::now() + patience;
    let mut delays = crate::backoff::Backoff::new(backoff.0, backoff.1);
    loop {
        let wait = delays.next_jittered();
        match connect(profile, name).await {
            Err(e @ ConnectError::Broker { .. })
                if tokio::time::Instant::now() + wait < deadline =>
            {
                tracing::debug!(error = %e, retry_in = ?wait, "connect failed; trying again");
                tokio::time::sleep(wait).await;
            }
            outcome => return outcome,
        }
    }
}

/// Opens a connection with explicit certificate and key files (tests use foreign ones).
pub async fn connect_with(
    profile: &Profile,
    name: &str,
    cert: &Path,
    key: &Path,
) -> Result<Connection, ConnectError> {
    open(profile, name, cert, key, name).await
}

/// [`connect`] with `label` as the connection's name on the broker (what the management UI and
/// `rabbitmqctl list_connections client_properties` show beside the user): a client's
/// publishing connections say which they are.
pub(crate) async fn connect_labelled(
    profile: &Profile,
    name: &str,
    label: &str,
) -> Result<Connection, ConnectError> {
    let (cert, key) = profile.certificate(name);
    open(profile, name, &cert, &key, label).await
}

async fn open(
    profile: &Profile,
    name: &str,
    cert: &Path,
    key: &Path,
    label: &str,
) -> Result<Connection, ConnectError> {
    let (host, port) = profile.host_and_port().map_err(ConnectError::Address)?;
    let config = tls_config(&profile.ca, cert, key)?;
    let adaptor = TlsAdaptor::new(
        tokio_rustls::TlsConnector::from(Arc::new(config)),
        host.clone(),
    );
    let mut args = OpenConnectionArguments::new(&host, port, "", "");
    args.credentials(SecurityCredentials::new_external())
        .heartbeat(profile.heartbeat_seconds.unwrap_or(HEARTBEAT_SECONDS))
        .connection_name(label)
        .tls_adaptor(adaptor);
    let opened = tokio::time::timeout(CONNECT_TIMEOUT, Connection::open(&args))
        .await
        .unwrap_or_else(|_| {
            Err(amqprs::error::Error::NetworkError(format!(
                "no answer within {} s",
                CONNECT_TIMEOUT.as_secs()
            )))
        });
    opened.map_err(|e| {
        let reason = e.to_string();
        let hint = if reason.contains("peer shutdown") {
            "The broker closed the connection during login: no user has this certificate's CN (not provisioned, or revoked), or the broker refused the certificate; `ebadge audit` and the broker log tell which"
        } else if reason.contains("invalid peer certificate") {
            "We do not trust the certificate the broker presented: it must be signed by the CA of the profile's ca_file and name the host of amqps_url. Behind haproxy one node may present a wrong one: test each node (`openssl s_client -connect NODE:5671 -CAfile ca.pem`)"
        } else if reason.contains("handshake eof") {
            "The broker closed the connection during the TLS handshake: the node cannot complete TLS (see its log), or it is starting or stopping; try again"
        } else if reason.contains("CertificateRevoked") {
            "This certificate was revoked (the entity was revoked, or a newer certificate was issued for it): use the newest certificate, or ask the operator for a new one (`ebadge pki issue NAME`)"
        } else if reason.contains("refused") && !reason.contains("ACCESS_REFUSED") {
            "Is the broker running? `ebadge broker status` tells; `ebadge broker up` starts the local one"
        } else if reason.contains("alert") || reason.contains("ertificate") || reason.contains("ACCESS_REFUSED") {
            "The broker refused our certificate: it must be signed by the broker's CA and its CN must be a provisioned entity (`ebadge provision`)"
        } else {
            "Check the profile's amqps_url and that the broker is up (`ebadge broker status`)"
        };
        ConnectError::Broker {
            url: profile.amqps_url.clone(),
            name: name.into(),
            reason,
            hint,
        }
    })
}
