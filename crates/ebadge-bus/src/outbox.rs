//! The outbox: every message the application sent and the broker has not confirmed yet, in send
//! order. In memory by default; optionally also in an SQLite file, so a process restart loses
//! nothing. Both have a cap: past it the oldest messages are dropped and counted, never silently.
//! A message that leaves without a confirm (dropped by the cap, refused by the broker for good)
//! becomes an [`Undelivered`] record with its reason, kept until the application reads it (and,
//! in the SQLite file, in the table `failed` for an operator). That table is bounded too, so a
//! device's storage never fills with it: at most [`FAILED_KEPT`] rows, none older than
//! [`FAILED_KEPT_FOR`] (7 days), the lowest sequence numbers going first; the row with the
//! highest sequence number always stays, so a reopened outbox never reuses a number.

use prometheus_client::metrics::histogram::Histogram;
use rusqlite::{Connection, params};
use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::time::{Duration, Instant};

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

/// A message that left the outbox without a confirm, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Undelivered {
    /// Its position in send order.
    pub seq: u64,
    /// Its AMQP message_id.
    pub message_id: String,
    /// The exchange it was for.
    pub exchange: String,
    /// Its routing key.
    pub routing_key: String,
    /// Its `msg` type.
    pub msg_type: String,
    /// Why it was given up, with what to do.
    pub reason: String,
}

/// Most [`Undelivered`] records kept in memory until the application reads them; older ones are
/// still counted (and, with a durable outbox, still in the table `failed`).
const UNDELIVERED_KEPT: usize = 10_000;

/// Most rows the table `failed` of a durable outbox keeps: past it the rows of the lowest
/// sequence numbers are deleted as new ones come. Bodies of a few hundred bytes: a few MB.
pub const FAILED_KEPT: u64 = 10_000;

/// How long a row stays in the table `failed`: 7 days, as long as a quarantine keeps what it
/// holds. Older rows are deleted when the outbox opens and, while it runs, at most once every
/// [`FAILED_AGE_CHECK`] as messages are given up.
pub const FAILED_KEPT_FOR: Duration = Duration::from_secs(7 * 24 * 3600);

/// How often a running outbox looks for rows of `failed` older than [`FAILED_KEPT_FOR`].
const FAILED_AGE_CHECK: Duration = Duration::from_secs(3600);

/// The bounds of the table `failed` and what is known of it.
#[derive(Debug)]
struct FailedTable {
    /// Rows in it (counted when the outbox opens and after each deletion by age).
    rows: u64,
    kept: u64,
    kept_for: Duration,
    /// When rows older than `kept_for` were last deleted.
    aged_at: Instant,
}

impl Default for FailedTable {
    fn default() -> Self {
        Self {
            rows: 0,
            kept: FAILED_KEPT,
            kept_for: FAILED_KEPT_FOR,
            aged_at: Instant::now(),
        }
    }
}

/// How hard the durable outbox pushes each send to the disk (SQLite's `synchronous`, WAL mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutboxSync {
    /// Every accepted send is on the disk before `send` returns: it survives a power cut. One
    /// fsync per send and per confirm (measured in docs/benchmarks.md).
    #[default]
    Full,
    /// A send survives a crash of the process, but a power cut may lose the last sends of the
    /// moment before it: fewer writes, for flash that wears (SD cards).
    Normal,
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
    /// By sequence number: confirms of a client publishing over several connections arrive in
    /// no particular order, and each takes its message out of the middle.
    queue: BTreeMap<u64, Waiting>,
    /// Where confirmed messages' send→confirm latencies go, once metrics are on.
    confirm_latency: Option<Histogram>,
    next_seq: u64,
    cap: usize,
    dropped: u64,
    undelivered: VecDeque<Undelivered>,
    store: Option<(Connection, String)>,
    failed: FailedTable,
}

/// A message in the outbox, and when it was accepted (for its age and its send→confirm
/// latency; a message loaded from the file counts from the load).
struct Waiting {
    message: Outgoing,
    accepted_at: Instant,
}

impl Outbox {
    /// An in-memory outbox holding at most `cap` messages.
    pub fn in_memory(cap: usize) -> Self {
        Self {
            queue: BTreeMap::new(),
            confirm_latency: None,
            next_seq: 1,
            cap: cap.max(1),
            dropped: 0,
            undelivered: VecDeque::new(),
            store: None,
            failed: FailedTable::default(),
        }
    }

    /// An outbox kept in the SQLite file `path` (created if missing), holding at most `cap`
    /// messages, written to the disk as `sync` says. Messages left by an earlier process are
    /// loaded, to be sent first.
    pub fn durable(path: &Path, cap: usize, sync: OutboxSync) -> Result<Self, OutboxError> {
        let name = path.display().to_string();
        let err = |source| OutboxError {
            path: name.clone(),
            source,
        };
        let db = Connection::open(path).map_err(err)?;
        let synchronous = match sync {
            OutboxSync::Full => "FULL",
            OutboxSync::Normal => "NORMAL",
        };
        db.execute_batch(&format!(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = {synchronous};
             CREATE TABLE IF NOT EXISTS outbox (
                 seq INTEGER PRIMARY KEY, exchange TEXT NOT NULL, routing_key TEXT NOT NULL,
                 message_id TEXT NOT NULL, msg_type TEXT NOT NULL, body BLOB NOT NULL,
                 headers TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS failed (
                 seq INTEGER PRIMARY KEY, exchange TEXT NOT NULL, routing_key TEXT NOT NULL,
                 message_id TEXT NOT NULL, msg_type TEXT NOT NULL, body BLOB NOT NULL,
                 reason TEXT NOT NULL, failed_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP);"
        ))
        .map_err(err)?;
        let mut queue = BTreeMap::new();
        let loaded_at = Instant::now();
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
                let message: Outgoing = row.map_err(err)?;
                let waiting = Waiting {
                    message,
                    accepted_at: loaded_at,
                };
                queue.insert(waiting.message.seq, waiting);
            }
        }
        // Sequence numbers of given-up messages are not reused: `failed` keeps them.
        let failed_max: i64 = db
            .query_row("SELECT COALESCE(MAX(seq), 0) FROM failed", [], |r| r.get(0))
            .map_err(err)?;
        let next_seq = queue
            .last_key_value()
            .map_or(1, |(seq, _)| seq + 1)
            .max(failed_max as u64 + 1);
        let mut outbox = Self {
            confirm_latency: None,
            queue,
            next_seq,
            cap: cap.max(1),
            dropped: 0,
            undelivered: VecDeque::new(),
            store: Some((db, name)),
            failed: FailedTable::default(),
        };
        if let Err(e) = outbox.prune_failed(true) {
            tracing::warn!(error = %e, "could not prune the outbox's table failed");
        }
        Ok(outbox)
    }

    /// Bounds the table `failed`: with `by_age`, deletes the rows older than the bound and
    /// counts the rest; then deletes the lowest sequence numbers past the bound on rows. The row
    /// of the highest sequence number stays, whatever its age: a reopened outbox takes its next
    /// number from it.
    fn prune_failed(&mut self, by_age: bool) -> Result<(), OutboxError> {
        let Some((db, name)) = &self.store else {
            return Ok(());
        };
        let err = |source| OutboxError {
            path: name.clone(),
            source,
        };
        if by_age {
            db.execute(
                "DELETE FROM failed WHERE failed_at < datetime('now', ?1) AND seq < (SELECT MAX(seq) FROM failed)",
                params![format!("-{} seconds", self.failed.kept_for.as_secs())],
            )
            .map_err(err)?;
            let rows: i64 = db
                .query_row("SELECT COUNT(*) FROM failed", [], |r| r.get(0))
                .map_err(err)?;
            self.failed.rows = rows as u64;
            self.failed.aged_at = Instant::now();
        }
        let kept = self.failed.kept.max(1);
        if self.failed.rows > kept {
            let deleted = db
                .execute(
                    "DELETE FROM failed WHERE seq IN (SELECT seq FROM failed ORDER BY seq LIMIT ?1)",
                    params![(self.failed.rows - kept) as i64],
                )
                .map_err(err)?;
            self.failed.rows -= deleted as u64;
        }
        Ok(())
    }

    /// Appends a message, giving it the next sequence number; drops the oldest if the cap is
    /// reached. Returns the stored message.
    pub fn push(&mut self, mut message: Outgoing) -> Result<Outgoing, OutboxError> {
        message.seq = self.next_seq;
        self.next_seq += 1;
        while self.queue.len() >= self.cap {
            if let Some((_, Waiting { message: old, .. })) = self.queue.pop_first() {
                self.dropped += 1;
                // The first few, then one line per thousand: a device through a long outage at
                // 10 msgs/s would otherwise write a line for each.
                if self.dropped <= 10 || self.dropped.is_multiple_of(1000) {
                    tracing::warn!(seq = old.seq, message_id = %old.message_id, dropped = self.dropped, "outbox full: dropped the oldest message (counted in dropped; logged for the first 10, then every 1,000th)");
                }
                let reason = format!(
                    "dropped unconfirmed: the outbox holds at most {} messages (raise outbox_cap, or bring the broker back sooner)",
                    self.cap
                );
                self.give_up(old, reason)?;
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
        let waiting = Waiting {
            message: message.clone(),
            accepted_at: Instant::now(),
        };
        self.queue.insert(message.seq, waiting);
        Ok(message)
    }

    /// Removes the confirmed message `seq`.
    pub fn confirm(&mut self, seq: u64) -> Result<bool, OutboxError> {
        let Some(waiting) = self.queue.remove(&seq) else {
            return Ok(false);
        };
        if let Some(latency) = &self.confirm_latency {
            latency.observe(waiting.accepted_at.elapsed().as_secs_f64());
        }
        self.delete_stored(seq)?;
        Ok(true)
    }

    /// Removes message `seq` for good, recording why; returns it (`None` if it is not waiting).
    pub fn fail(&mut self, seq: u64, reason: String) -> Result<Option<Undelivered>, OutboxError> {
        let Some(waiting) = self.queue.remove(&seq) else {
            return Ok(None);
        };
        self.give_up(waiting.message, reason).map(Some)
    }

    /// Gives `message` up: its record goes to the application first, whatever the file says
    /// (so `flush` never reports it delivered), then into the table `failed`.
    fn give_up(&mut self, message: Outgoing, reason: String) -> Result<Undelivered, OutboxError> {
        let record = Undelivered {
            seq: message.seq,
            message_id: message.message_id.clone(),
            exchange: message.exchange.clone(),
            routing_key: message.routing_key.clone(),
            msg_type: message.msg_type.clone(),
            reason,
        };
        if self.undelivered.len() >= UNDELIVERED_KEPT {
            self.undelivered.pop_front();
        }
        self.undelivered.push_back(record.clone());
        if let Some((db, name)) = &self.store {
            db.execute(
                "INSERT OR REPLACE INTO failed (seq, exchange, routing_key, message_id, msg_type, body, reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![message.seq as i64, message.exchange, message.routing_key, message.message_id, message.msg_type, message.body, record.reason],
            )
            .map_err(|source| OutboxError { path: name.clone(), source })?;
            self.failed.rows += 1;
            // The bound is housekeeping: a failure to apply it loses nothing.
            if let Err(e) = self.prune_failed(self.failed.aged_at.elapsed() >= FAILED_AGE_CHECK) {
                tracing::warn!(error = %e, "could not prune the outbox's table failed");
            }
        }
        self.delete_stored(message.seq)?;
        Ok(record)
    }

    /// Takes the undelivered records of messages up to `seq` (all with `u64::MAX`): each is
    /// reported once. The records are in the order the messages were given up, which is not
    /// their send order (a message retried for the TTL is given up after later ones).
    pub fn take_undelivered(&mut self, upto: u64) -> Vec<Undelivered> {
        let (taken, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.undelivered)
            .into_iter()
            .partition(|u| u.seq <= upto);
        self.undelivered = kept.into();
        taken
    }

    /// The messages with a sequence number above `after`, in order.
    pub fn after(&self, after: u64) -> impl Iterator<Item = &Outgoing> {
        self.queue
            .range(after.saturating_add(1)..)
            .map(|(_, w)| &w.message)
    }

    /// How many messages wait.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether nothing waits (for the benchmark: the client asks [`Self::len`]).
    #[cfg(any(test, feature = "internals"))]
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// How many messages the cap has dropped since this outbox was opened.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The sequence number of the newest waiting message.
    pub fn newest_seq(&self) -> Option<u64> {
        self.queue.last_key_value().map(|(seq, _)| *seq)
    }

    /// The sequence number the last accepted message got (0 before any).
    pub fn last_assigned(&self) -> u64 {
        self.next_seq - 1
    }

    /// The message `seq`, if it waits.
    pub fn get(&self, seq: u64) -> Option<&Outgoing> {
        self.queue.get(&seq).map(|w| &w.message)
    }

    /// How long the oldest waiting message has waited (since it was accepted, or since the file
    /// was opened for one an earlier process left).
    pub fn oldest_age(&self) -> Option<Duration> {
        self.queue
            .first_key_value()
            .map(|(_, w)| w.accepted_at.elapsed())
    }

    /// From now on, each confirm records its message's send→confirm latency in `latency`.
    pub(crate) fn observe_confirms(&mut self, latency: Histogram) {
        self.confirm_latency = Some(latency);
    }

    /// The sequence number of the oldest waiting message.
    pub fn oldest_seq(&self) -> Option<u64> {
        self.queue.first_key_value().map(|(seq, _)| *seq)
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
    fn ages_follow_the_oldest_waiting_message_through_confirms_failures_and_the_cap() {
        let mut outbox = Outbox::in_memory(3);
        assert_eq!(outbox.oldest_age(), None);
        outbox.push(message(1)).unwrap();
        std::thread::sleep(Duration::from_millis(30));
        for n in 2..=4 {
            // The fourth drops the first: the cap.
            outbox.push(message(n)).unwrap();
        }
        assert!(
            outbox.oldest_age().unwrap() < Duration::from_millis(30),
            "the first is gone"
        );
        let latency = Histogram::new([0.001, 10.0]);
        outbox.observe_confirms(latency.clone());
        outbox.confirm(3).unwrap();
        outbox.fail(2, "refused".into()).unwrap();
        outbox.confirm(4).unwrap();
        assert_eq!(outbox.oldest_age(), None);
        let mut text = String::new();
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register("confirm", "", latency);
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains("confirm_count 2\n"),
            "two confirms timed, the failure not: {text}"
        );
    }

    #[test]
    fn keeps_order_confirms_and_drops_the_oldest_past_the_cap() {
        let mut outbox = Outbox::in_memory(3);
        for n in 0..4 {
            outbox.push(message(n)).unwrap();
        }
        assert_eq!(outbox.dropped(), 1);
        let lost = outbox.take_undelivered(u64::MAX);
        assert_eq!(lost.len(), 1);
        assert!(lost[0].reason.contains("at most 3"), "{}", lost[0].reason);
        let ids: Vec<_> = outbox.after(0).map(|o| o.message_id.clone()).collect();
        assert_eq!(ids, ["id-1", "id-2", "id-3"]);
        assert!(outbox.confirm(3).unwrap());
        assert!(!outbox.confirm(3).unwrap());
        assert_eq!(outbox.after(2).map(|o| o.seq).collect::<Vec<_>>(), [4]);
    }

    #[test]
    fn undelivered_records_given_up_out_of_send_order_go_to_the_right_flush() {
        let mut outbox = Outbox::in_memory(10);
        for n in 1..=3 {
            outbox.push(message(n)).unwrap();
        }
        // 3 is refused for good at once; 1 is given up later, after its retries.
        outbox.fail(3, "refused".into()).unwrap();
        outbox.fail(1, "retried for the TTL".into()).unwrap();
        let upto_2 = outbox.take_undelivered(2);
        assert_eq!(
            upto_2
                .iter()
                .map(|u| (u.seq, u.reason.as_str()))
                .collect::<Vec<_>>(),
            [(1, "retried for the TTL")],
            "a flush up to 2 gets message 1's failure, not 3's"
        );
        let rest = outbox.take_undelivered(u64::MAX);
        assert_eq!(rest.iter().map(|u| u.seq).collect::<Vec<_>>(), [3]);
        assert!(outbox.take_undelivered(u64::MAX).is_empty(), "each once");
    }

    #[test]
    fn confirms_in_any_order_take_out_just_their_messages() {
        let mut outbox = Outbox::in_memory(100);
        for n in 0..10 {
            outbox.push(message(n)).unwrap();
        }
        // Two lanes confirming side by side: odd and even sequence numbers, the evens behind.
        for seq in [1, 3, 2, 5, 7, 4, 9] {
            assert!(outbox.confirm(seq).unwrap(), "{seq}");
        }
        assert_eq!(
            outbox.after(0).map(|o| o.seq).collect::<Vec<_>>(),
            [6, 8, 10]
        );
        assert_eq!(outbox.after(6).map(|o| o.seq).collect::<Vec<_>>(), [8, 10]);
        assert_eq!(
            (outbox.oldest_seq(), outbox.newest_seq()),
            (Some(6), Some(10))
        );
        assert_eq!(outbox.get(8).map(|o| o.message_id.as_str()), Some("id-7"));
        assert!(outbox.get(7).is_none());
        assert_eq!(outbox.len(), 3);
    }

    #[test]
    fn the_sync_option_is_what_sqlite_runs_with() {
        let dir = tempfile::tempdir().unwrap();
        for (sync, pragma) in [(OutboxSync::Full, 2), (OutboxSync::Normal, 1)] {
            let outbox = Outbox::durable(&dir.path().join("o.sqlite"), 10, sync).unwrap();
            let (db, _) = outbox.store.as_ref().unwrap();
            let level: i64 = db
                .query_row("PRAGMA synchronous", [], |r| r.get(0))
                .unwrap();
            assert_eq!(level, pragma, "{sync:?}");
        }
        assert_eq!(
            OutboxSync::default(),
            OutboxSync::Full,
            "power-cut safe by default"
        );
    }

    /// The rows of the table `failed`: (seq, reason).
    fn failed_rows(path: &Path) -> Vec<(i64, String)> {
        let db = Connection::open(path).unwrap();
        let mut stmt = db
            .prepare("SELECT seq, reason FROM failed ORDER BY seq")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    #[test]
    fn the_failed_table_keeps_its_bound_of_rows_and_days_and_never_reuses_a_number() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.sqlite");
        {
            let mut outbox = Outbox::durable(&path, 3, OutboxSync::Normal).unwrap();
            assert_eq!(outbox.failed.kept, FAILED_KEPT, "the default bound");
            outbox.failed.kept = 5;
            // 20 sends into a cap of 3: 17 dropped by the cap, then 2 refused, 1 confirmed.
            for n in 0..20 {
                outbox.push(message(n)).unwrap();
            }
            outbox.fail(19, "refused".into()).unwrap();
            outbox.fail(18, "refused".into()).unwrap();
            outbox.confirm(20).unwrap();
            let rows = failed_rows(&path);
            assert_eq!(
                rows.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(),
                [15, 16, 17, 18, 19],
                "the 5 highest numbers stay: {rows:?}"
            );
        }
        // Rows given up 8 days ago, the newest among them: on reopening the old ones go, but
        // the highest number stays, and the next message does not take it again.
        let db = Connection::open(&path).unwrap();
        db.execute(
            "UPDATE failed SET failed_at = datetime('now', '-8 days') WHERE seq IN (15, 16, 19)",
            [],
        )
        .unwrap();
        drop(db);
        let mut outbox = Outbox::durable(&path, 3, OutboxSync::Normal).unwrap();
        assert_eq!(
            failed_rows(&path)
                .iter()
                .map(|(seq, _)| *seq)
                .collect::<Vec<_>>(),
            [17, 18, 19]
        );
        // 20 was confirmed, so no record holds it; 19 is a failed one's.
        assert_eq!(outbox.push(message(30)).unwrap().seq, 20);
        assert_eq!(outbox.failed.rows, 3);
    }

    #[test]
    fn a_durable_outbox_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.sqlite");
        {
            let mut outbox = Outbox::durable(&path, 10, OutboxSync::Full).unwrap();
            for n in 0..4 {
                outbox.push(message(n)).unwrap();
            }
            outbox.confirm(1).unwrap();
            let failed = outbox.fail(4, "refused".into()).unwrap().unwrap();
            assert_eq!(failed.message_id, "id-3");
            assert_eq!(outbox.take_undelivered(3), []);
            assert_eq!(outbox.take_undelivered(4), [failed]);
        }
        let db = Connection::open(&path).unwrap();
        let reason: String = db
            .query_row("SELECT reason FROM failed WHERE seq = 4", [], |r| r.get(0))
            .unwrap();
        assert_eq!(reason, "refused");
        let mut outbox = Outbox::durable(&path, 10, OutboxSync::Normal).unwrap();
        let left: Vec<_> = outbox.after(0).cloned().collect();
        assert_eq!(left.iter().map(|o| o.seq).collect::<Vec<_>>(), [2, 3]);
        assert_eq!(left[0].headers, [("x-reason".to_string(), "r".to_string())]);
        assert_eq!(outbox.push(message(9)).unwrap().seq, 5);
        assert_eq!(outbox.get(3).map(|o| o.body.clone()), Some(vec![2]));
        assert!(outbox.get(1).is_none());
    }
}
