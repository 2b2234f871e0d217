//! Where the failsafe's memory ([`Remembered`]) is kept across restarts of the agent: a table of
//! the agent's own, `heh_failsafe`, in the outbox's SQLite file.
//!
//! Why that file and not one of its own: it is already the agent's one piece of state (one
//! file in the state directory to keep, back up or remove together: an outbox without the
//! activations it reported, or the other way round, is a state no agent ever had), it is
//! already on a disk that survives the restart, and SQLite lets two connections of one process
//! share it (WAL; each write here is a transaction of one row). The outbox never touches a
//! table it does not know.

use crate::failsafe::Remembered;
use rusqlite::{Connection, OptionalExtension};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The store cannot be opened, read or written.
#[derive(Debug, thiserror::Error)]
#[error("the failsafe's store {path}: {reason}")]
pub struct StoreError {
    /// The file.
    pub path: PathBuf,
    /// What went wrong.
    pub reason: String,
}

/// The failsafe's memory in an SQLite file.
#[derive(Debug)]
pub struct Store {
    db: Connection,
    path: PathBuf,
}

impl Store {
    /// Opens (or creates) the table in the SQLite file `path`, normally the outbox's.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let error = |e: rusqlite::Error| StoreError {
            path: path.into(),
            reason: e.to_string(),
        };
        let db = Connection::open(path).map_err(error)?;
        // FULL: an accepted activation is on the disk before its acceptance goes to the outbox,
        // so a power cut cannot leave the controller believing in an activation we forgot.
        // The outbox's connection writes the same file: wait for it rather than fail.
        db.busy_timeout(Duration::from_secs(5)).map_err(error)?;
        db.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
             CREATE TABLE IF NOT EXISTS heh_failsafe (
                 id INTEGER PRIMARY KEY CHECK (id = 1), remembered TEXT NOT NULL,
                 saved_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP);",
        )
        .map_err(error)?;
        Ok(Self {
            db,
            path: path.into(),
        })
    }

    /// What an earlier agent remembered (nothing, the first time).
    pub fn load(&self) -> Result<Remembered, StoreError> {
        let text: Option<String> = self
            .db
            .query_row(
                "SELECT remembered FROM heh_failsafe WHERE id = 1",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.error(e.to_string()))?;
        match text {
            None => Ok(Remembered::default()),
            Some(text) => Remembered::from_json(&text).map_err(|e| self.error(e.to_string())),
        }
    }

    /// Keeps `remembered` in place of what was there.
    pub fn save(&self, remembered: &Remembered) -> Result<(), StoreError> {
        self.db
            .execute(
                "INSERT OR REPLACE INTO heh_failsafe (id, remembered, saved_at) VALUES (1, ?1, CURRENT_TIMESTAMP)",
                [remembered.to_json()],
            )
            .map(drop)
            .map_err(|e| self.error(e.to_string()))
    }

    fn error(&self, reason: String) -> StoreError {
        StoreError {
            path: self.path.clone(),
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failsafe::{Behaviour, Failsafe, FailsafeConfig};
    use ebadge_bus::model::{Activate, Message, Time};

    /// A client with its durable outbox in `path`, its broker away (it connects in the
    /// background, to a port nobody listens on).
    async fn client_with_outbox(path: &std::path::Path) -> ebadge_bus::Client {
        let profile = ebadge_bus::Profile {
            amqps_url: "amqps://localhost:9".into(),
            ca: "ca.pem".into(),
            certs: "certs".into(),
            heartbeat_seconds: None,
            max_message_bytes: None,
        };
        let name = ebadge_bus::EntityName::new("heh-store").unwrap();
        let mut config = ebadge_bus::ClientConfig::new(profile, name);
        config.durable_outbox = Some(path.into());
        config.first_connection = ebadge_bus::FirstConnection::Background;
        ebadge_bus::Client::connect(config).await.unwrap()
    }

    #[tokio::test]
    async fn what_is_saved_beside_a_live_outbox_is_what_the_next_agent_loads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.sqlite");
        let client = client_with_outbox(&path).await;
        let store = Store::open(&path).unwrap();
        assert_eq!(
            store.load().unwrap(),
            Remembered::default(),
            "the first time"
        );

        let config = FailsafeConfig {
            after: time::Duration::seconds(60),
            behaviour: Behaviour::End,
        };
        let mut failsafe = Failsafe::new(config);
        let now = Time::now();
        let order = Activate::new(now, now.checked_add(time::Duration::hours(1)).unwrap(), 1.0);
        failsafe.to_device(&Message::Activate(order.clone()));
        failsafe.from_device(&Message::AcceptActivation(order.accept()));
        store.save(&failsafe.remembered()).unwrap();
        // The outbox goes on writing the same file.
        let ts = ebadge_bus::EntityName::new("ts").unwrap();
        client
            .send(
                &ts,
                &Message::decode(r#"{"msg":"get_capabilities"}"#).unwrap(),
            )
            .unwrap();
        store.save(&failsafe.remembered()).unwrap();
        let closed = client.close(std::time::Duration::ZERO).await;
        assert_eq!((closed.unconfirmed, closed.discarded), (1, false));
        drop(store);

        let loaded = Store::open(&path).unwrap().load().unwrap();
        assert_eq!(loaded.running(), [order.id.as_str()]);
        let client = client_with_outbox(&path).await;
        assert_eq!(
            client.counters().buffered,
            1,
            "the outbox's rows are its own"
        );
        client.close(std::time::Duration::ZERO).await;
    }
}
