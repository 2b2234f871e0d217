//! The agent's configuration: one TOML file.
//!
//! ```toml
//! name = "heh-b827ebea02c1"        # the HEH's entity name (its certificate's CN)
//! controller = "ts"                # who it reports to and takes orders from
//! groups = ["all-hehs"]            # optional: the registry's groups it is a member of
//!
//! [bus]                            # the connection profile (relative paths: from this file)
//! amqps_url = "amqps://bus.example.org:5671"
//! ca = "ca.pem"
//! certs = "certs"                  # certs/<name>.pem and certs/<name>.key
//! heartbeat_seconds = 30
//!
//! [outbox]                         # optional: kept in memory without a path
//! path = "/var/lib/ebadge-heh/outbox.sqlite"   # also keeps what the failsafe must remember
//! cap = 10000                      # messages waiting for the bus, at most (the default)
//!
//! [inbox]                          # optional: the HEH defaults below
//! prefetch = 16
//! dedupe_window = 1000
//!
//! [device]                         # the program the agent runs (JSON lines both ways)
//! command = ["/usr/local/bin/my-device", "--port", "/dev/ttyUSB0"]
//!
//! [failsafe]
//! after_seconds = 60               # the bus gone this long during an activation…
//! behaviour = "limit"              # …ends it ("end") or holds a power limit ("limit")
//! limit_kw = 1.5
//! ```

use crate::failsafe::{Behaviour, FailsafeConfig};
use ebadge_bus::{ClientConfig, EntityName, Profile};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The configuration file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// It cannot be read.
    #[error("cannot read the agent configuration {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// It is not valid.
    #[error("the agent configuration {path} is invalid: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the line.
        message: String,
    },
}

/// The outbox's cap unless `[outbox] cap` says otherwise: messages waiting for the bus, at
/// most; past it the oldest are dropped, counted and logged. Sized for an HEH under the unit's
/// `MemoryMax=64M`, which the device program shares (the client library's default, 100,000, is
/// a VPP's, and takes the agent to 118 MiB): 10,000 reports are 17 minutes at 10 a second, a
/// week at one a minute, and the agent stays under 27 MiB through a 3-hour outage at 10 reports
/// a second and the drain after it (docs/benchmarks.md, "the agent through a 3-hour outage").
pub const HEH_OUTBOX_CAP: usize = 10_000;

/// Deliveries the broker may push to the agent before it acknowledges one, unless `[inbox]
/// prefetch` says otherwise. A device takes its messages one by one; the client library's
/// default, 1,000, is a VPP's.
pub const HEH_PREFETCH: u16 = 16;

/// Message ids remembered to drop duplicates, unless `[inbox] dedupe_window` says otherwise.
/// An HEH hears a few messages a minute: a redelivery after a reconnect comes within the last
/// prefetch, a controller's republished burst within the last few hundred.
pub const HEH_DEDUPE_WINDOW: usize = 1_000;

/// `[outbox]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxSection {
    /// The SQLite file of the durable outbox (in memory without it). The failsafe keeps what it
    /// must remember across restarts in the same file.
    pub path: Option<PathBuf>,
    /// Messages waiting for the bus, at most ([`HEH_OUTBOX_CAP`] if not given).
    pub cap: Option<usize>,
}

/// `[inbox]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboxSection {
    /// Deliveries in flight at most ([`HEH_PREFETCH`] if not given).
    pub prefetch: Option<u16>,
    /// Message ids remembered for duplicates ([`HEH_DEDUPE_WINDOW`] if not given).
    pub dedupe_window: Option<usize>,
}

/// `[device]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceSection {
    /// The program and its arguments.
    pub command: Vec<String>,
}

/// `[failsafe]` (unknown keys are refused by [`Behaviour`], which takes the rest of the table).
#[derive(Debug, Clone, Deserialize)]
pub struct FailsafeSection {
    /// Seconds the bus may be gone during an activation.
    pub after_seconds: u64,
    /// `end` or `limit` (with `limit_kw`).
    #[serde(flatten)]
    pub behaviour: Behaviour,
}

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// The HEH's entity name.
    pub name: EntityName,
    /// Its controlling entity.
    pub controller: EntityName,
    /// The groups it is a member of: their messages are heard, not quarantined as relayed
    /// ([`ClientConfig::groups`]).
    #[serde(default)]
    pub groups: Vec<EntityName>,
    /// How to reach the bus.
    pub bus: Profile,
    /// The outbox: durable, sized.
    pub outbox: Option<OutboxSection>,
    /// The inbox's limits.
    #[serde(default)]
    pub inbox: InboxSection,
    /// The device program.
    pub device: DeviceSection,
    /// The failsafe.
    pub failsafe: FailsafeSection,
}

impl AgentConfig {
    /// Reads the file; relative paths in it are taken relative to its directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        let invalid = |message: String| ConfigError::Invalid {
            path: path.into(),
            message,
        };
        let mut config: AgentConfig = toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        if config.device.command.is_empty() {
            return Err(invalid(
                "[device] command is empty: name the device program".into(),
            ));
        }
        if let Behaviour::Limit { limit_kw } = config.failsafe.behaviour
            && !limit_kw.is_finite()
        {
            return Err(invalid("[failsafe] limit_kw must be a number of kW".into()));
        }
        let base = path.parent().unwrap_or(Path::new("."));
        config.bus.resolve_relative_to(base);
        if let Some(path) = config.outbox.as_mut().and_then(|o| o.path.as_mut()) {
            *path = base.join(&*path);
        }
        let limits = [
            ("[outbox] cap", config.outbox.as_ref().and_then(|o| o.cap)),
            ("[inbox] prefetch", config.inbox.prefetch.map(usize::from)),
            ("[inbox] dedupe_window", config.inbox.dedupe_window),
        ];
        if let Some((key, _)) = limits.iter().find(|(_, value)| *value == Some(0)) {
            return Err(invalid(format!("{key} must be at least 1")));
        }
        Ok(config)
    }

    /// The SQLite file of the durable outbox, where the failsafe's memory is kept too.
    pub fn outbox_path(&self) -> Option<&Path> {
        self.outbox.as_ref()?.path.as_deref()
    }

    /// The client's configuration: the HEH's limits ([`HEH_OUTBOX_CAP`], [`HEH_PREFETCH`],
    /// [`HEH_DEDUPE_WINDOW`]) unless the file says otherwise.
    pub fn client(&self) -> ClientConfig {
        let mut client = ClientConfig::new(self.bus.clone(), self.name.clone());
        client.durable_outbox = self.outbox_path().map(Path::to_path_buf);
        client.groups = self.groups.clone();
        client.outbox_cap = self
            .outbox
            .as_ref()
            .and_then(|o| o.cap)
            .unwrap_or(HEH_OUTBOX_CAP);
        client.prefetch = self.inbox.prefetch.unwrap_or(HEH_PREFETCH);
        client.dedupe_window = self.inbox.dedupe_window.unwrap_or(HEH_DEDUPE_WINDOW);
        // The client hands the agent no more than the broker has in flight.
        client.inbox_capacity = usize::from(client.prefetch);
        client
    }

    /// The failsafe's configuration.
    pub fn failsafe(&self) -> FailsafeConfig {
        FailsafeConfig {
            after: time::Duration::seconds(self.failsafe.after_seconds as i64),
            behaviour: self.failsafe.behaviour,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deployed_example_is_a_valid_configuration() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/heh/heh.toml");
        let config = AgentConfig::load(&path).unwrap();
        assert_eq!(config.name.as_str(), "heh-b827ebea02c1");
        assert_eq!(config.controller.as_str(), "ts");
        assert_eq!(
            config.failsafe.behaviour,
            Behaviour::Limit { limit_kw: 0.0 }
        );
        assert_eq!(config.failsafe().after, time::Duration::seconds(60));
        assert!(
            config.bus.ca.ends_with("deploy/heh/tls/ca.pem"),
            "{:?}",
            config.bus.ca
        );
        assert_eq!(
            config.client().durable_outbox.as_deref(),
            Some(Path::new("/var/lib/ebadge-heh/outbox.sqlite"))
        );
        assert!(config.client().groups.is_empty(), "in no group unless told");
    }

    #[test]
    fn the_client_is_sized_for_an_heh_unless_the_file_says_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("heh.toml");
        let minimal = "name = \"heh-b827ebea02c1\"\ncontroller = \"ts\"\n[bus]\namqps_url = \"amqps://bus:5671\"\nca = \"ca.pem\"\ncerts = \"certs\"\n[device]\ncommand = [\"dev\"]\n[failsafe]\nafter_seconds = 60\nbehaviour = \"end\"\n";
        std::fs::write(&file, minimal).unwrap();
        let client = AgentConfig::load(&file).unwrap().client();
        assert_eq!(
            (
                client.outbox_cap,
                client.prefetch,
                client.dedupe_window,
                client.inbox_capacity
            ),
            (10_000, 16, 1_000, 16),
            "an HEH's, as measured in docs/benchmarks.md; not a VPP's (100,000, 1,000, 100,000)"
        );
        assert_eq!(client.durable_outbox, None, "in memory without a path");

        let sized =
            format!("{minimal}[outbox]\ncap = 500\n[inbox]\nprefetch = 4\ndedupe_window = 50\n");
        std::fs::write(&file, sized).unwrap();
        let client = AgentConfig::load(&file).unwrap().client();
        assert_eq!(
            (client.outbox_cap, client.prefetch, client.dedupe_window),
            (500, 4, 50)
        );
        std::fs::write(&file, format!("{minimal}[inbox]\nprefetch = 0\n")).unwrap();
        let error = AgentConfig::load(&file).unwrap_err().to_string();
        assert!(
            error.contains("[inbox] prefetch must be at least 1"),
            "{error}"
        );
    }

    #[test]
    fn a_bad_name_an_empty_command_or_an_unknown_behaviour_is_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let good = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/heh/heh.toml"),
        )
        .unwrap();
        for (from, to, reason) in [
            ("heh-b827ebea02c1", "heh.b827", "not a valid entity name"),
            (
                r#"["/usr/local/lib/ebadge-heh/device"]"#,
                "[]",
                "command is empty",
            ),
            (
                r#"behaviour = "limit""#,
                r#"behaviour = "panic""#,
                "unknown variant",
            ),
        ] {
            let file = dir.path().join("heh.toml");
            std::fs::write(&file, good.replace(from, to)).unwrap();
            let error = AgentConfig::load(&file).unwrap_err().to_string();
            assert!(error.contains(reason), "{error}");
            assert!(error.contains("heh.toml"), "the file is named: {error}");
        }
    }
}
