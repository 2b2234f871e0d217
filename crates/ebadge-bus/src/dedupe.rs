//! Receive-side deduplication by (sender, message_id) over a bounded window: a message the
//! reliability layer republished, or the broker redelivered, reaches the application once.

use std::collections::{HashSet, VecDeque};

/// The last `capacity` message keys seen.
#[derive(Debug)]
pub(crate) struct DedupeWindow {
    seen: HashSet<(String, String)>,
    order: VecDeque<(String, String)>,
    capacity: usize,
}

impl DedupeWindow {
    /// A window remembering `capacity` messages.
    pub(crate) fn new(capacity: usize) -> Self {
        // Grows as messages arrive: a fleet of 5,000 HEH clients must not reserve a full window each.
        Self {
            seen: HashSet::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// Records the message; false if it was seen already (a duplicate).
    pub(crate) fn first_time(&mut self, sender: &str, message_id: &str) -> bool {
        let key = (sender.to_owned(), message_id.to_owned());
        if self.seen.contains(&key) {
            return false;
        }
        if self.order.len() >= self.capacity
            && let Some(old) = self.order.pop_front()
        {
            self.seen.remove(&old);
        }
        self.seen.insert(key.clone());
        self.order.push_back(key);
        true
    }

    /// Forgets a message, so that its next delivery counts as the first: the application gave
    /// it back without handling it.
    pub(crate) fn forget(&mut self, sender: &str, message_id: &str) {
        let key = (sender.to_owned(), message_id.to_owned());
        if self.seen.remove(&key)
            && let Some(at) = self.order.iter().rposition(|k| *k == key)
        {
            // Recent messages are at the back: the scan is short for the usual case.
            self.order.remove(at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_new_once_per_sender_until_the_window_forgets_it() {
        let mut window = DedupeWindow::new(2);
        assert!(window.first_time("heh-1", "a"));
        assert!(!window.first_time("heh-1", "a"));
        assert!(window.first_time("heh-2", "a"));
        assert!(window.first_time("heh-1", "b")); // pushes ("heh-1", "a") out
        assert!(window.first_time("heh-1", "a"));
    }

    #[test]
    fn a_forgotten_key_is_new_again() {
        let mut window = DedupeWindow::new(10);
        assert!(window.first_time("heh-1", "a"));
        window.forget("heh-1", "a");
        assert!(window.first_time("heh-1", "a"));
        assert!(!window.first_time("heh-1", "a"));
    }
}
