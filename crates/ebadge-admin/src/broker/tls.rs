//! Whether a node's AMQPS listener completes TLS with the certificate of the PKI. A node can
//! answer its management API and accept TCP connections on its AMQPS port, yet fail every
//! handshake (an unreadable or mismatched certificate or key, a broken TLS stack): `up` waits
//! for a handshake, and `reload_tls` checks that each node presents the newest certificate.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// How long one probe may take (a busy node answers within a second).
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The certificate (DER) the node listening on `host:port` presents, verified against the
/// CA in `ca` for the name `localhost`; or why the handshake failed. TLS 1.3 only: there the node
/// proves its certificate before it asks for the client's, so the probe needs none (the node
/// then refuses the probe, which has already seen what it came for).
pub(super) async fn presented_certificate(
    host: &str,
    port: u16,
    ca: &Path,
) -> Result<Vec<u8>, String> {
    use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).map_err(|e| format!("{}: {e}", ca.display()))? {
        let cert = cert.map_err(|e| format!("{}: {e}", ca.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("{}: {e}", ca.display()))?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let handshake = async {
        let tcp = tokio::net::TcpStream::connect((host, port)).await?;
        let name = ServerName::try_from("localhost").expect("a valid DNS name");
        tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
    };
    let tls = tokio::time::timeout(PROBE_TIMEOUT, handshake)
        .await
        .map_err(|_| format!("no TLS answer within {} s", PROBE_TIMEOUT.as_secs()))?
        .map_err(|e| e.to_string())?;
    let presented = tls.get_ref().1.peer_certificates().and_then(|c| c.first());
    presented
        .map(|c| c.to_vec())
        .ok_or_else(|| "the node presented no certificate".into())
}

/// The DER of the first certificate in the PEM file `pem`.
pub(super) fn certificate_in(pem: &Path) -> Result<Vec<u8>, String> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    CertificateDer::from_pem_file(pem)
        .map(|c| c.to_vec())
        .map_err(|e| format!("{}: {e}", pem.display()))
}
