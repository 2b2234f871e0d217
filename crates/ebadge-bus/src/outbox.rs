//! The outbox: every message the application sent and the broker has not confirmed yet, in send
//! order. In memory by default; optionally also in an SQLite file, so a process restart loses
//! nothing. Both have a cap: past it the oldest messages are dropped and counted, never silently.

use rusqlite::{Connection, params};
use std::collections::VecDeque;
use std::path::Path;

/// One message waiting for its publisher confirm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// Position in send order (increasing, survives restarts with a durable outbox).
    pub seq: u64,
    /// The exchange it goes to.
    pub exchange: String,
    /// Its routing key.
    pub routing_key: String,
    /// AMQP message_id (a UUID).
    pub message_id: String,
    /// AMQP type (the `msg` name).
    pub msg_type: String,
    /// The JSON body.
    pub body: Vec<u8>,
    /// Extra string headers (the quarantine reason, for instance).
    pub headers: Vec<(String, String)>,
}

/// A durable outbox that cannot be opened or written.
#[derive(Debug, thiserror::Error)]
#[error("outbox {path}: {source}")]
pub struct OutboxError {
    /// The file.
    pub path: String,
    /// What SQLite said.
    pub source: rusqlite::Error,
}

/// Messages waiting for confirmation, oldest first.
pub struct Outbox {
    queue: VecDeque<Outgoing>,
    next_seq: u64,
    cap: usize,
    dropped: u64,
    store: Option<(Connection, String)>,
}

impl Outbox {
    /// An in-memory outbox holding at most `cap` messages.
    pub fn in_memory(cap: usize) -> Self {
        Self {
            queue: VecDeque::new(),
            next_seq: 1,
            cap: cap.max(1),
            dropped: 0,
            store: None,
        }
    }

    /// An outbox kept in the SQLite file `path` (created if missing), holding at most `cap`
    /// messages. Messages left by an earlier process are loaded, to be sent first.
    pub fn durable(path: &Path, cap: usize) -> Result<Self, OutboxError> {
        let name = path.display().to_string();
        let err = |source| OutboxError {
            path: name.clone(),
            source,
        };
        let db = Connection::open(path).map_err(err)?;
        // WAL + NORMAL: a committed send survives a process crash; an OS crash may lose the last
        // few, a trade HEH hardware (SD cards) needs.
        db.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
             CREATE TABLE IF NOT EXISTS outbox (
                 seq INTEGER PRIMARY KEY, exchange TEXT NOT NULL, routing_key TEXT NOT NULL,
                 message_id TEXT NOT NULL, msg_type TEXT NOT NULL, body BLOB NOT NULL,
                 headers TEXT NOT NULL);",
        )
        .map_err(err)?;
        let mut queue = VecDeque::new();
        {
            let mut stmt = db
                .prepare("SELECT seq, exchange, routing_key, message_id, msg_type, body, headers FROM outbox ORDER BY seq")
                .map_err(err)?;
            let rows = stmt
                .query_map([], |r| {
                    let headers: String = r.get(6)?;
                    Ok(Outgoing {
                        seq: r.get::<_, i64>(0)? as u64,
                        exchange: r.get(1)?,
                        routing_key: r.get(2)?,
                        message_id: r.get(3)?,
                        msg_type: r.get(4)?,
                        body: r.get(5)?,
                        headers: serde_json::from_str(&headers).unwrap_or_default(),
                    })
                })
                .map_err(err)?;
            for row in rows {
                queue.push_back(row.map_err(err)?);
            }
        }
        let next_seq = queue.back().map_or(1, |o| o.seq + 1);
        Ok(Self {
            queue,
            next_seq,
            cap: cap.max(1),
            dropped: 0,
            store: Some((db, name)),
        })
    }

    /// Appends a message, giving it the next sequence number; drops the oldest if the cap is
    /// reached. Returns the stored message.
    pub fn push(&mut self, mut message: Outgoing) -> Result<Outgoing, OutboxError> {
        message.seq = self.next_seq;
        self.next_seq += 1;
        while self.queue.len() >= self.cap {
            if let Some(old) = self.queue.pop_front() {
                self.dropped += 1;
                tracing::warn!(seq = old.seq, message_id = %old.message_id, "outbox full: dropped the oldest message");
                self.delete_stored(old.seq)?;
            }
        }
        if let Some((db, name)) = &self.store {
            let headers = serde_json::to_string(&message.headers).unwrap_or_else(|_| "[]".into());
            db.execute(
                "INSERT INTO outbox (seq, exchange, routing_key, message_id, msg_type, body, headers) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![message.seq as i64, message.exchange, message.routing_key, message.message_id, message.msg_type, message.body, headers],
            )
            .map_err(|source| OutboxError { path: name.clone(), source })?;
        }
        self.queue.push_back(message.clone());
        Ok(message)
    }

    /// Removes the confirmed message `seq`.
    pub fn confirm(&mut self, seq: u64) -> Result<bool, OutboxError> {
        // Confirms arrive almost always for the oldest message.
        let position = if self.queue.front().is_some_and(|o| o.seq == seq) {
            Some(0)
        } else {
            self.queue.iter().position(|o| o.seq == seq)
        };
        let Some(position) = position else {
            return Ok(false);
        };
        self.queue.remove(position);
        self.delete_stored(seq)?;
        Ok(true)
    }

    /// The messages with a sequence number above `after`, in order.
    pub fn after(&self, after: u64) -> impl Iterator<Item = &Outgoing> {
        // Sequence numbers increase along the queue: skip the prefix cheaply.
        let start = self.queue.partition_point(|o| o.seq <= after);
        self.queue.range(start..)
    }

    /// How many messages wait.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// How many messages the cap has dropped since this outbox was opened.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The sequence number of the newest waiting message.
    pub fn newest_seq(&self) -> Option<u64> {
        self.queue.back().map(|o| o.seq)
    }

    /// The sequence number of the oldest waiting message.
    pub fn oldest_seq(&self) -> Option<u64> {
        self.queue.front().map(|o| o.seq)
    }

    fn delete_stored(&self, seq: u64) -> Result<(), OutboxError> {
        if let Some((db, name)) = &self.store {
            db.execute("DELETE FROM outbox WHERE seq = ?1", params![seq as i64])
                .map_err(|source| OutboxError {
                    path: name.clone(),
                    source,
                })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(n: u8) -> Outgoing {
        Outgoing {
            seq: 0,
            exchange: "a-to-b".into(),
            routing_key: "report".into(),
            message_id: format!("id-{n}"),
            msg_type: "report".into(),
            body: vec![n],
            headers: vec![("x-reason".into(), "r".into())],
        }
    }

    #[test]
    fn keeps_order_confirms_and_drops_the_oldest_past_the_cap() {
        let mut outbox = Outbox::in_memory(3);
        for n in 0..4 {
            outbox.push(message(n)).unwrap();
        }
        assert_eq!(outbox.dropped(), 1);
        let ids: Vec<_> = outbox.after(0).map(|o| o.message_id.clone()).collect();
        assert_eq!(ids, ["id-1", "id-2", "id-3"]);
        assert!(outbox.confirm(3).unwrap());
        assert!(!outbox.confirm(3).unwrap());
        assert_eq!(outbox.after(2).map(|o| o.seq).collect::<Vec<_>>(), [4]);
    }

    #[test]
    fn a_durable_outbox_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.sqlite");
        {
            let mut outbox = Outbox::durable(&path, 10).unwrap();
            for n in 0..3 {
                outbox.push(message(n)).unwrap();
            }
            outbox.confirm(1).unwrap();
        }
        let mut outbox = Outbox::durable(&path, 10).unwrap();
        let left: Vec<_> = outbox.after(0).cloned().collect();
        assert_eq!(left.iter().map(|o| o.seq).collect::<Vec<_>>(), [2, 3]);
        assert_eq!(left[0].headers, [("x-reason".to_string(), "r".to_string())]);
        assert_eq!(outbox.push(message(9)).unwrap().seq, 4);
    }
}
