//! A small PKI for the bus: one CA, the broker's server certificate, and one client certificate
//! per entity with CN = entity name (the broker takes the username from the CN).
//!
//! Layout of a PKI directory: `ca.pem`, `ca.key`, `server.pem`, `server.key`,
//! `clients/<NAME>.pem` + `clients/<NAME>.key`, and the revocation state: `revoked.json`,
//! `crl.pem` and `crl/<issuer hash>.r0` (the directory the broker reads, see [`crate::crl`]).
//! Keys are ECDSA P-256 and written with mode 0600 (certificates 0644), whether the file is new
//! or replaced. Re-issuing a client certificate revokes the one it replaces.
//!
//! Whatever changes the revocation state or a client certificate (init, issue, revoke) holds an
//! exclusive lock on `pki.lock` in the directory while it reads and rewrites `revoked.json`:
//! two processes issuing and revoking at once (`ebadge pki issue` while `ebadge revoke` runs, or
//! provisioning's `issue_missing`) never drop each other's serials from the CRL.

use crate::crl::{self, Revoked, RevokedList};
use ebadge_bus::EntityName;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SerialNumber,
};
use std::path::{Path, PathBuf};
use time::{Duration, OffsetDateTime};

/// Validity of the CA.
pub const CA_DAYS: i64 = 3650;
/// Default validity of server and client certificates.
pub const DEFAULT_DAYS: i64 = 365;

/// A PKI failure, with the file concerned.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The CA is missing.
    #[error("no CA in {0}: run `ebadge pki init` first (or `ebadge broker up`, which does it)")]
    NoCa(PathBuf),
    /// Certificate generation or parsing failed.
    #[error("{path}: {reason}")]
    Cert {
        /// The file or entity.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The entity name breaks the rule.
    #[error(transparent)]
    Name(#[from] ebadge_bus::conventions::NameError),
}

/// One certificate as `pki list` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CertInfo {
    /// File name without extension (`ca`, `server`, or the entity).
    pub name: String,
    /// The subject's common name.
    pub common_name: String,
    /// Expiry, RFC 3339.
    pub not_after: String,
    /// Days until expiry (negative once expired).
    pub days_left: i64,
    /// Expiry, seconds since the Unix epoch.
    pub not_after_unix: i64,
}

/// A PKI directory.
#[derive(Debug, Clone)]
pub struct Pki {
    dir: PathBuf,
}

impl Pki {
    /// The PKI in `dir` (nothing is read until used).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// The CA certificate file.
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
    /// The CA key file.
    pub fn ca_key(&self) -> PathBuf {
        self.dir.join("ca.key")
    }
    /// The client certificate directory.
    pub fn clients(&self) -> PathBuf {
        self.dir.join("clients")
    }
    /// The server certificate and key files.
    pub fn server(&self) -> (PathBuf, PathBuf) {
        (self.dir.join("server.pem"), self.dir.join("server.key"))
    }
    /// Certificate and key files of an entity.
    pub fn client(&self, name: &str) -> (PathBuf, PathBuf) {
        (
            self.clients().join(format!("{name}.pem")),
            self.clients().join(format!("{name}.key")),
        )
    }

    /// The CRL, PEM.
    pub fn crl_file(&self) -> PathBuf {
        self.dir.join("crl.pem")
    }
    /// The directory the broker reads CRLs from (`ssl_crl_hash_dir`): `crl/<issuer hash>.r0`.
    pub fn crl_dir(&self) -> PathBuf {
        self.dir.join("crl")
    }
    fn revoked_file(&self) -> PathBuf {
        self.dir.join("revoked.json")
    }

    /// Whether the CA exists.
    pub fn has_ca(&self) -> bool {
        self.ca_cert().exists() && self.ca_key().exists()
    }

    /// Creates the CA and a server certificate for `server_names` (DNS names or IP addresses),
    /// unless the CA exists already. Returns true when it created them.
    pub fn init(&self, server_names: &[String]) -> Result<bool, PkiError> {
        if self.has_ca() {
            return Ok(false);
        }
        let _lock = self.lock()?;
        if self.has_ca() {
            return Ok(false);
        }
        let key = KeyPair::generate().map_err(|e| self.cert_error(&self.ca_key(), e))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = dn("eBADGE bus CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        set_validity(&mut params, CA_DAYS);
        let cert = params
            .self_signed(&key)
            .map_err(|e| self.cert_error(&self.ca_cert(), e))?;
        write_private(&self.ca_key(), &key.serialize_pem())?;
        write(&self.ca_cert(), &cert.pem())?;
        self.issue_server(server_names, DEFAULT_DAYS)?;
        self.write_crl(&RevokedList::default())?;
        Ok(true)
    }

    /// The certificates revoked so far, and the CRL number.
    pub fn revoked(&self) -> Result<RevokedList, PkiError> {
        let path = self.revoked_file();
        if !path.exists() {
            return Ok(RevokedList::default());
        }
        serde_json::from_str(&read(&path)?).map_err(|e| PkiError::Cert {
            path,
            reason: e.to_string(),
        })
    }

    /// Writes the CRL of a PKI that has none yet (one made before revocation existed).
    pub fn ensure_crl(&self) -> Result<(), PkiError> {
        if self.has_ca() && !self.crl_file().exists() {
            let _lock = self.lock()?;
            if !self.crl_file().exists() {
                self.write_crl(&self.revoked()?)?;
            }
        }
        Ok(())
    }

    /// Retires the client certificate of `name`: its serial goes on the CRL, its files are
    /// removed. The broker refuses the old key from its next handshake on, even if the name is
    /// provisioned again (a new certificate must then be issued). `None` if `name` has none.
    pub fn revoke(&self, name: &str) -> Result<Option<Revoked>, PkiError> {
        let _lock = self.lock()?;
        let (pem, key) = self.client(name);
        if !pem.exists() {
            return Ok(None);
        }
        let record = self.retire(name, &pem, "revoked")?;
        for file in [&pem, &key] {
            std::fs::remove_file(file).map_err(|source| PkiError::Io {
                path: file.clone(),
                source,
            })?;
        }
        Ok(Some(record))
    }

    /// Takes the PKI's lock (`pki.lock`), waiting for another process or thread that holds it;
    /// released when the returned file is dropped. What reads and rewrites `revoked.json`, or
    /// replaces a client certificate, runs under it.
    fn lock(&self) -> Result<std::fs::File, PkiError> {
        let path = self.dir.join("pki.lock");
        let io = |source| PkiError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(&self.dir).map_err(io)?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io)?;
        file.lock().map_err(io)?;
        Ok(file)
    }

    /// Puts the certificate in `pem` on the CRL. The caller holds [`Pki::lock`].
    fn retire(&self, name: &str, pem: &Path, reason: &str) -> Result<Revoked, PkiError> {
        let serial = serial_of(pem)?;
        let mut list = self.revoked()?;
        let record = Revoked {
            name: name.to_owned(),
            serial,
            revoked_at: OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            reason: reason.to_owned(),
        };
        list.revoked.push(record.clone());
        self.write_crl(&list)?;
        Ok(record)
    }

    /// Signs and writes the CRL for `list` (with the next CRL number), then the list itself.
    fn write_crl(&self, list: &RevokedList) -> Result<(), PkiError> {
        let mut list = list.clone();
        list.crl_number += 1;
        let pem = crl::sign(&list, &self.issuer()?, CA_DAYS)
            .map_err(|e| self.cert_error(&self.crl_file(), e))?;
        let hash = with_cert(&self.ca_cert(), |ca| crl::name_hash(ca.subject()))?;
        let hashed = self.crl_dir().join(format!("{hash}.r0"));
        write(&hashed, &pem)?;
        write(&self.crl_file(), &pem)?;
        let text = serde_json::to_string_pretty(&list).expect("the list serializes");
        write(&self.revoked_file(), &text)
    }

    /// Issues (or re-issues, for rotation) the broker's server certificate for `server_names`
    /// (DNS names or IP addresses), valid for `days`. Returns the certificate and key files.
    pub fn issue_server(
        &self,
        server_names: &[String],
        days: i64,
    ) -> Result<(PathBuf, PathBuf), PkiError> {
        let (pem, key_file) = self.server();
        self.sign_with(
            &self.issuer()?,
            "eBADGE broker",
            server_names,
            ExtendedKeyUsagePurpose::ServerAuth,
            days,
            &pem,
            &key_file,
        )?;
        Ok((pem, key_file))
    }

    /// Issues (or re-issues) the client certificate of entity `name`, valid for `days`. A
    /// certificate it replaces is revoked (superseded): only the newest key logs in.
    pub fn issue(&self, name: &str, days: i64) -> Result<(PathBuf, PathBuf), PkiError> {
        let name = EntityName::new(name)?;
        let _lock = self.lock()?;
        let (pem, key) = self.client(name.as_str());
        if pem.exists() {
            self.retire(name.as_str(), &pem, "superseded")?;
        }
        self.sign_with(
            &self.issuer()?,
            name.as_str(),
            &[],
            ExtendedKeyUsagePurpose::ClientAuth,
            days,
            &pem,
            &key,
        )?;
        Ok((pem, key))
    }

    /// Issues the certificates of `names` that do not exist yet; returns how many it issued.
    pub fn issue_missing<'a>(
        &self,
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<usize, PkiError> {
        let issuer = self.issuer()?;
        let _lock = self.lock()?;
        let mut issued = 0;
        for name in names {
            let (pem, key) = self.client(name);
            if !pem.exists() {
                EntityName::new(name)?;
                self.sign_with(
                    &issuer,
                    name,
                    &[],
                    ExtendedKeyUsagePurpose::ClientAuth,
                    DEFAULT_DAYS,
                    &pem,
                    &key,
                )?;
                issued += 1;
            }
        }
        Ok(issued)
    }

    /// Every certificate of the PKI with its expiry, CA and server first.
    pub fn list(&self) -> Result<Vec<CertInfo>, PkiError> {
        if !self.has_ca() {
            return Err(PkiError::NoCa(self.dir.clone()));
        }
        let mut files = vec![self.ca_cert(), self.server().0];
        let mut clients: Vec<PathBuf> = match std::fs::read_dir(self.clients()) {
            Ok(entries) => entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "pem"))
                .collect(),
            Err(_) => Vec::new(),
        };
        clients.sort();
        files.extend(clients);
        files.iter().map(|f| cert_info(f)).collect()
    }

    fn issuer(&self) -> Result<Issuer<'static, KeyPair>, PkiError> {
        if !self.has_ca() {
            return Err(PkiError::NoCa(self.dir.clone()));
        }
        let key_pem = read(&self.ca_key())?;
        let key = KeyPair::from_pem(&key_pem).map_err(|e| self.cert_error(&self.ca_key(), e))?;
        let ca_pem = read(&self.ca_cert())?;
        Issuer::from_ca_cert_pem(&ca_pem, key).map_err(|e| self.cert_error(&self.ca_cert(), e))
    }

    #[allow(clippy::too_many_arguments)]
    fn sign_with(
        &self,
        issuer: &Issuer<'_, KeyPair>,
        common_name: &str,
        alt_names: &[String],
        usage: ExtendedKeyUsagePurpose,
        days: i64,
        pem: &Path,
        key_file: &Path,
    ) -> Result<(), PkiError> {
        let key = KeyPair::generate().map_err(|e| self.cert_error(key_file, e))?;
        let mut params =
            CertificateParams::new(alt_names.to_vec()).map_err(|e| self.cert_error(pem, e))?;
        params.distinguished_name = dn(common_name);
        // Random, positive, 16 bytes: serials must be unique per CA for the CRL to name one.
        let mut serial = uuid::Uuid::new_v4().into_bytes().to_vec();
        serial[0] &= 0x7f;
        params.serial_number = Some(SerialNumber::from(serial));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![usage];
        set_validity(&mut params, days);
        let cert = params
            .signed_by(&key, issuer)
            .map_err(|e| self.cert_error(pem, e))?;
        // write_private creates the directory; the certificate goes next to its key.
        write_private(key_file, &key.serialize_pem())?;
        write(pem, &cert.pem())
    }

    fn cert_error(&self, path: &Path, e: rcgen::Error) -> PkiError {
        PkiError::Cert {
            path: path.into(),
            reason: e.to_string(),
        }
    }
}

fn dn(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

fn set_validity(params: &mut CertificateParams, days: i64) {
    let now = OffsetDateTime::now_utc();
    // An hour of slack for clocks that run behind (HEHs often do).
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(days);
}

/// Parses the PEM certificate in `path` and hands it to `f`.
fn with_cert<T>(
    path: &Path,
    f: impl FnOnce(&x509_parser::certificate::X509Certificate<'_>) -> T,
) -> Result<T, PkiError> {
    let text = read(path)?;
    let bad = |reason: String| PkiError::Cert {
        path: path.into(),
        reason,
    };
    let (_, pem) =
        x509_parser::pem::parse_x509_pem(text.as_bytes()).map_err(|e| bad(e.to_string()))?;
    let cert = pem.parse_x509().map_err(|e| bad(e.to_string()))?;
    Ok(f(&cert))
}

/// The serial number of the certificate in `path`, lowercase hex.
fn serial_of(path: &Path) -> Result<String, PkiError> {
    with_cert(path, |cert| crl::hex(cert.raw_serial()))
}

fn cert_info(path: &Path) -> Result<CertInfo, PkiError> {
    with_cert(path, |cert| cert_info_of(path, cert))
}

fn cert_info_of(path: &Path, cert: &x509_parser::certificate::X509Certificate<'_>) -> CertInfo {
    let common_name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or("")
        .to_owned();
    let not_after = cert.validity().not_after.to_datetime();
    let days_left = (not_after - OffsetDateTime::now_utc()).whole_days();
    CertInfo {
        name: path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
        common_name,
        not_after: not_after
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        days_left,
        not_after_unix: not_after.unix_timestamp(),
    }
}

fn read(path: &Path) -> Result<String, PkiError> {
    std::fs::read_to_string(path).map_err(|source| PkiError::Io {
        path: path.into(),
        source,
    })
}

fn write(path: &Path, text: &str) -> Result<(), PkiError> {
    write_atomically(path, text, 0o644)
}

fn write_private(path: &Path, text: &str) -> Result<(), PkiError> {
    write_atomically(path, text, 0o600)
}

/// Writes a sibling file and renames it over `path`: a broker or client reading a certificate
/// while it is re-issued (rotation) sees the old file or the new one, never half of one. The file
/// gets exactly `mode`: a sibling left by an interrupted write is replaced, not reused with its
/// own mode, and the umask does not change it.
fn write_atomically(path: &Path, text: &str, mode: u32) -> Result<(), PkiError> {
    use crate::files::{create_with_mode, set_mode};
    use std::io::Write;
    let io = |source| PkiError::Io {
        path: path.into(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    match std::fs::remove_file(&partial) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
        _ => {}
    }
    create_with_mode(
        std::fs::OpenOptions::new().write(true).create_new(true),
        mode,
    )
    .open(&partial)
    .and_then(|mut f| {
        set_mode(&f, mode)?;
        f.write_all(text.as_bytes())
    })
    .and_then(|()| std::fs::rename(&partial, path))
    .map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn keys_are_owner_only_when_replaced_too() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::new(dir.path());
        pki.init(&["localhost".into()]).unwrap();
        let (pem, key) = pki.issue("heh-a", 1).unwrap();
        assert_eq!((mode(&key), mode(&pem)), (0o600, 0o644));
        // A write interrupted before its rename left a readable sibling, and the key was made
        // readable by hand: re-issuing makes it owner-only again.
        let mut partial = key.clone().into_os_string();
        partial.push(".partial");
        std::fs::write(&partial, "left over").unwrap();
        for file in [Path::new(&partial), &key] {
            std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        pki.issue("heh-a", 1).unwrap();
        assert_eq!(mode(&key), 0o600);
        let (_, server_key) = pki.server();
        std::fs::set_permissions(&server_key, std::fs::Permissions::from_mode(0o666)).unwrap();
        pki.issue_server(&["localhost".into()], 1).unwrap();
        assert_eq!(mode(&server_key), 0o600);
    }

    #[test]
    fn concurrent_issues_and_revokes_keep_every_retired_serial_on_the_crl() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::new(dir.path());
        pki.init(&["localhost".into()]).unwrap();
        let names: Vec<String> = (0..24).map(|i| format!("heh-{i}")).collect();
        let mut serials = std::collections::BTreeSet::new();
        for name in &names {
            let (pem, _) = pki.issue(name, 1).unwrap();
            serials.insert(serial_of(&pem).unwrap());
        }
        let before = pki.revoked().unwrap().crl_number;
        // Half are re-issued (their old certificate superseded), half revoked, all at once, each
        // Pki a separate handle as separate processes would have.
        std::thread::scope(|scope| {
            for (i, name) in names.iter().enumerate() {
                let pki = Pki::new(dir.path());
                scope.spawn(move || {
                    if i % 2 == 0 {
                        pki.issue(name, 1).map(|_| ())
                    } else {
                        pki.revoke(name).map(|_| ())
                    }
                    .unwrap()
                });
            }
        });
        let list = pki.revoked().unwrap();
        let listed: std::collections::BTreeSet<String> =
            list.revoked.iter().map(|r| r.serial.clone()).collect();
        assert_eq!(
            serials.difference(&listed).count(),
            0,
            "every retired serial is in revoked.json"
        );
        assert_eq!(list.crl_number, before + names.len() as u64, "one CRL each");
        let text = std::fs::read(pki.crl_file()).unwrap();
        let (_, pem) = x509_parser::pem::parse_x509_pem(&text).unwrap();
        let (_, crl) = x509_parser::parse_x509_crl(&pem.contents).unwrap();
        let on_crl: std::collections::BTreeSet<String> = crl
            .iter_revoked_certificates()
            .map(|r| crl::hex(r.raw_serial()))
            .collect();
        let missing: Vec<&String> = serials.difference(&on_crl).collect();
        assert!(missing.is_empty(), "not on the CRL: {missing:?}");
    }
}
