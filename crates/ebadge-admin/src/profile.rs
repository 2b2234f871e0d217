//! The operator's profile: a client [`Profile`] plus what only the operator holds, the management
//! API account and, for a local PKI, the CA's private key. It is the same TOML file with two more
//! entries; a client (`ebadge_bus::Profile::load`) reads the file and ignores them, and an HEH's
//! or VPP's own profile never has them.
//!
//! ```
//! use ebadge_admin::profile::OperatorProfile;
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("profile.toml");
//! std::fs::write(&path, r#"
//!     amqps_url = "amqps://localhost:5671"
//!     ca = "ca.pem"
//!     certs = "clients"
//!     [management]
//!     url = "http://127.0.0.1:15672"
//!     user = "ebadge-admin"
//!     password = "secret"
//! "#)?;
//! let operator = OperatorProfile::load(&path)?;
//! assert_eq!(operator.management.url, "http://127.0.0.1:15672");
//! // The client part alone: what an entity connects with.
//! assert_eq!(operator.client, ebadge_bus::Profile::load(&path)?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use ebadge_bus::{Profile, ProfileError};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The management API account (`[management]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Management {
    /// Base URL, e.g. `http://127.0.0.1:15672`.
    pub url: String,
    /// The administrator account.
    pub user: String,
    /// Its password (the file is written with mode 0600).
    pub password: String,
}

/// A profile for the operator's commands (provision, audit, revoke).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorProfile {
    /// What every entity connects with.
    pub client: Profile,
    /// The management API.
    pub management: Management,
    /// The CA's private key, when this profile belongs to a local PKI that may issue
    /// certificates (relative paths are taken from the file's directory).
    pub ca_key: Option<PathBuf>,
}

/// An operator profile that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum OperatorProfileError {
    /// The file is not a readable profile.
    #[error(transparent)]
    Profile(#[from] ProfileError),
    /// It has no `[management]` section.
    #[error(
        "connection profile {0} has no [management] section (url, user, password): operator commands need one (the local broker's profile, written by `ebadge broker up`, has it)"
    )]
    NoManagement(PathBuf),
}

/// The entries of the file beyond the client's.
#[derive(Serialize, Deserialize)]
struct OperatorPart {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ca_key: Option<PathBuf>,
    #[serde(default)]
    management: Option<Management>,
}

impl OperatorProfile {
    /// Reads an operator profile.
    pub fn load(path: &Path) -> Result<Self, OperatorProfileError> {
        let client = Profile::load(path)?;
        let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Read {
            path: path.into(),
            source,
        })?;
        let part: OperatorPart = toml::from_str(&text).map_err(|e| ProfileError::Invalid {
            path: path.into(),
            message: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Ok(Self {
            client,
            management: part
                .management
                .ok_or_else(|| OperatorProfileError::NoManagement(path.into()))?,
            ca_key: part.ca_key.map(|key| base.join(key)),
        })
    }

    /// Writes the profile, readable by its owner only (it holds the administrator's password).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let part = OperatorPart {
            ca_key: self.ca_key.clone(),
            management: Some(self.management.clone()),
        };
        let text = toml::to_string(&part).map_err(std::io::Error::other)?;
        self.client.save_with(path, &text)
    }
}
