//! The one exponential backoff of the client: reconnects, a consumer that cannot consume, a
//! publishing channel that gets only nacks, a refused message or quarantine copy, a patient
//! first connect. Each wait doubles from a minimum up to a maximum; callers that many clients
//! share (reconnects of a fleet) take it with ±50 % jitter, so they do not come back in step.

use std::time::Duration;

/// Waits that double from `min` up to `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
    attempts: u32,
}

impl Backoff {
    /// A backoff whose first wait is `min` (at least 1 ms) and whose waits never pass `max`.
    pub(crate) const fn new(min: Duration, max: Duration) -> Self {
        let min = if min.is_zero() {
            Duration::from_millis(1)
        } else {
            min
        };
        Self {
            min,
            max,
            next: min,
            attempts: 0,
        }
    }

    /// The next wait, exactly; the one after it doubles (up to the maximum).
    pub(crate) fn next_wait(&mut self) -> Duration {
        let wait = self.next.min(self.max);
        self.next = (self.next * 2).min(self.max);
        self.attempts += 1;
        wait
    }

    /// The next wait with ±50 % jitter.
    pub(crate) fn next_jittered(&mut self) -> Duration {
        self.next_wait().mul_f64(0.5 + fastrand::f64())
    }

    /// How many waits were taken since the start or the last reset.
    pub(crate) fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Back to the first wait: what was retried succeeded.
    pub(crate) fn reset(&mut self) {
        self.next = self.min;
        self.attempts = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_maximum_and_reset_to_the_minimum() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let waits: Vec<u128> = (0..6).map(|_| b.next_wait().as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(b.attempts(), 6);
        b.reset();
        assert_eq!(b.attempts(), 0);
        assert_eq!(b.next_wait(), Duration::from_millis(100));
    }

    #[test]
    fn a_zero_minimum_still_backs_off() {
        let mut b = Backoff::new(Duration::ZERO, Duration::from_secs(1));
        assert!(b.next_wait() > Duration::ZERO);
        assert!(b.next_wait() > Duration::from_millis(1));
    }

    #[test]
    fn jitter_stays_within_half_and_one_and_a_half_of_the_wait() {
        let mut b = Backoff::new(Duration::from_secs(2), Duration::from_secs(2));
        for _ in 0..100 {
            let w = b.next_jittered();
            assert!(
                w >= Duration::from_secs(1) && w <= Duration::from_secs(3),
                "{w:?}"
            );
        }
    }
}
