//! Retiring certificates: the PKI keeps the serials it revoked (`revoked.json`) and a CRL signed
//! by the CA (`crl.pem`), also in the layout RabbitMQ's TLS stack reads at every handshake
//! (`crl/<issuer hash>.r0`: Erlang's `ssl_crl_hash_dir`, the OpenSSL `c_rehash` naming). The
//! broker checks each client certificate against it (`ssl_options.crl_check = peer`), so a
//! revoked key stays out even if its name is provisioned again.

use rcgen::{
    CertificateRevocationListParams, Issuer, KeyIdMethod, KeyPair, RevocationReason,
    RevokedCertParams, SerialNumber,
};
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

/// One revoked certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revoked {
    /// The entity it was issued to.
    pub name: String,
    /// Its serial number, lowercase hex.
    pub serial: String,
    /// When it was revoked, RFC 3339.
    pub revoked_at: String,
    /// `revoked` (the entity was revoked) or `superseded` (a new certificate replaced it).
    pub reason: String,
}

/// The revoked list as stored in `revoked.json`, with the CRL number of the last CRL.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RevokedList {
    /// Increases with every CRL written.
    pub crl_number: u64,
    /// Every certificate revoked so far.
    pub revoked: Vec<Revoked>,
}

/// Signs a CRL listing `list` (with `list.crl_number`) as `issuer`, current for `valid_days`;
/// PEM text.
pub fn sign(
    list: &RevokedList,
    issuer: &Issuer<'_, KeyPair>,
    valid_days: i64,
) -> Result<String, rcgen::Error> {
    let now = OffsetDateTime::now_utc();
    let revoked_certs = list
        .revoked
        .iter()
        .map(|r| RevokedCertParams {
            serial_number: SerialNumber::from_slice(&hex_bytes(&r.serial)),
            revocation_time: OffsetDateTime::parse(
                &r.revoked_at,
                &time::format_description::well_known::Rfc3339,
            )
            .unwrap_or(now),
            reason_code: Some(if r.reason == "superseded" {
                RevocationReason::Superseded
            } else {
                RevocationReason::CessationOfOperation
            }),
            invalidity_date: None,
        })
        .collect();
    let params = CertificateRevocationListParams {
        // An hour of slack for clocks that run behind, as for certificates.
        this_update: now - Duration::hours(1),
        // The broker refuses every client once the CRL is stale: the caller gives the CA's life.
        next_update: now + Duration::days(valid_days),
        crl_number: SerialNumber::from(list.crl_number),
        issuing_distribution_point: None,
        revoked_certs,
        key_identifier_method: KeyIdMethod::Sha256,
    };
    params.signed_by(issuer)?.pem()
}

/// OpenSSL's `X509_NAME_hash` (Erlang's `public_key:short_name_hash`) of a DER-encoded name:
/// the first four bytes, little-endian, of the SHA-1 of its canonical form (each attribute
/// value as a UTF8String, lowercase, whitespace trimmed and collapsed; the RDN sets
/// concatenated without the outer SEQUENCE). The CRL file of an issuer is `<hash>.r0`.
pub fn name_hash(name: &x509_parser::x509::X509Name<'_>) -> String {
    let mut canonical = Vec::new();
    for rdn in name.iter() {
        let mut set = Vec::new();
        for attribute in rdn.iter() {
            let oid = attribute.attr_type().as_bytes();
            let value = attribute.as_str().map_or_else(
                |_| attribute.attr_value().data.to_vec(),
                |text| canonical_text(text).into_bytes(),
            );
            let mut sequence = der(0x06, oid);
            sequence.extend(der(0x0c, &value));
            set.extend(der(0x30, &sequence));
        }
        canonical.extend(der(0x31, &set));
    }
    let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &canonical);
    let bytes = digest.as_ref();
    format!(
        "{:08x}",
        u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
    )
}

fn canonical_text(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_lowercase()
}

fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_bytes(text: &str) -> Vec<u8> {
    (0..text.len() / 2)
        .filter_map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_hash_is_openssls() {
        let dir = tempfile::tempdir().unwrap();
        let pki = crate::pki::Pki::new(dir.path());
        pki.init(&["localhost".into()]).unwrap();
        let pem = std::fs::read(pki.ca_cert()).unwrap();
        let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
        let cert = pem.parse_x509().unwrap();
        let ours = name_hash(cert.subject());
        // Debian's openssl, when present, is the reference.
        if let Ok(out) = std::process::Command::new("openssl")
            .args(["x509", "-noout", "-subject_hash", "-in"])
            .arg(pki.ca_cert())
            .output()
        {
            assert_eq!(ours, String::from_utf8_lossy(&out.stdout).trim());
        }
        assert_eq!(ours.len(), 8);
    }

    #[test]
    fn canonical_text_is_lowercase_and_collapsed() {
        assert_eq!(canonical_text("  eBADGE   bus CA "), "ebadge bus ca");
        assert_eq!(hex_bytes(&hex(&[0, 1, 255])), [0, 1, 255]);
    }
}
