//! Connection profiles: where the broker is and which files prove who we are.
//!
//! `ebadge broker up` writes one for the local broker; operators write one per deployment. The
//! operator's own entries (the management API, the CA key) are read by `ebadge_admin::profile`
//! and ignored here. A profile
//! names one CA and a directory of client certificates, `<NAME>.pem` and `<NAME>.key`, so `--as NAME`
//! needs no other flag.
//!
//! ```
//! use ebadge_bus::Profile;
//! let profile: Profile = toml::from_str(r#"
//!     amqps_url = "amqps://localhost:5671"
//!     ca = "/etc/ebadge/ca.pem"
//!     certs = "/etc/ebadge/clients"
//! "#)?;
//! assert_eq!(profile.host_and_port()?, ("localhost".to_string(), 5671));
//! assert!(profile.certificate("heh-1").0.ends_with("clients/heh-1.pem"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Environment variable naming the profile file when `--profile` is not given.
pub(crate) const PROFILE_ENV: &str = "EBADGE_PROFILE";

/// Where the profile is when neither `--profile` nor `EBADGE_PROFILE` says: the local broker's.
pub(crate) const DEFAULT_PROFILE: &str = ".ebadge/profile.toml";

/// A connection profile (TOML).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// `amqps://HOST:PORT` of the broker (or of haproxy in front of a cluster).
    pub amqps_url: String,
    /// The CA certificate that signed the broker's certificate (PEM).
    pub ca: PathBuf,
    /// Directory of client certificates: `<NAME>.pem` and `<NAME>.key`.
    pub certs: PathBuf,
    /// AMQP heartbeat asked of the broker, in seconds (default
    /// [`HEARTBEAT_SECONDS`](crate::amqp::HEARTBEAT_SECONDS)): a dead link is noticed within
    /// two. A fleet of tens of thousands of HEHs may want 30–60 s (fewer frames for the broker),
    /// with haproxy's `timeout client`/`server` above twice that.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_seconds: Option<u16>,
    /// The broker's `max_message_size`, when it is not the bus's
    /// [`MAX_MESSAGE_BYTES`](crate::conventions::MAX_MESSAGE_BYTES): clients refuse larger
    /// messages in `send`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_message_bytes: Option<usize>,
}

/// A profile that cannot be read or used.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// The file is missing or unreadable.
    #[error(
        "cannot read connection profile {path}: {source}. Start a local broker with `ebadge broker up` \
         (it writes .ebadge/profile.toml), or name another profile file (or set {PROFILE_ENV})"
    )]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a valid profile.
    #[error("connection profile {path} is invalid: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the line.
        message: String,
    },
}

impl Profile {
    /// The profile file to use: `explicit`, else `$EBADGE_PROFILE`, else `.ebadge/profile.toml`.
    pub fn locate(explicit: Option<&Path>) -> PathBuf {
        explicit
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os(PROFILE_ENV).map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_PROFILE))
    }

    /// Reads a profile; relative paths in it are taken relative to the file's directory.
    pub fn load(path: &Path) -> Result<Self, ProfileError> {
        let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Read {
            path: path.into(),
            source,
        })?;
        let mut profile: Profile = toml::from_str(&text).map_err(|e| ProfileError::Invalid {
            path: path.into(),
            message: e.to_string(),
        })?;
        profile.resolve_relative_to(path.parent().unwrap_or(Path::new(".")));
        Ok(profile)
    }

    /// Takes the relative paths in the profile (CA, certificates) relative to `base`, the
    /// directory of the file it was read from.
    pub fn resolve_relative_to(&mut self, base: &Path) {
        self.ca = base.join(&self.ca);
        self.certs = base.join(&self.certs);
    }

    /// Writes the profile, readable by its owner only.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        self.save_with(path, "")
    }

    /// Writes the profile followed by `more` (TOML: further entries and tables, such as an
    /// operator's), readable by its owner only.
    pub fn save_with(&self, path: &Path, more: &str) -> std::io::Result<()> {
        use std::io::Write;
        let text = toml::to_string(self).map_err(std::io::Error::other)?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        // Owner only. Windows has no mode bits: there the file takes its directory's ACL.
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path)?;
        // The mode above applies only to a file `open` creates: a rewritten one is made
        // owner-only too, before the text goes in.
        #[cfg(unix)]
        file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        file.write_all(b"# eBADGE connection profile\n")?;
        file.write_all(text.as_bytes())?;
        file.write_all(more.as_bytes())
    }

    /// Certificate and key files of entity `name`.
    pub fn certificate(&self, name: &str) -> (PathBuf, PathBuf) {
        (
            self.certs.join(format!("{name}.pem")),
            self.certs.join(format!("{name}.key")),
        )
    }

    /// Host and port of the AMQPS URL.
    pub fn host_and_port(&self) -> Result<(String, u16), String> {
        let rest = self.amqps_url.strip_prefix("amqps://").ok_or_else(|| {
            format!(
                "{:?} is not an amqps:// URL (plain AMQP is never used)",
                self.amqps_url
            )
        })?;
        let authority = rest.split('/').next().unwrap_or(rest);
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (
                h,
                p.parse()
                    .map_err(|_| format!("bad port {p:?} in {:?}", self.amqps_url))?,
            ),
            None => (authority, 5671),
        };
        Ok((host.trim_matches(['[', ']']).to_owned(), port))
    }
}
