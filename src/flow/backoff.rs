//! The pause an accept or receive loop takes after an error that concerns
//! its socket (out of descriptors, say), so that a persistent error does
//! not spin a core: 10 ms, doubling to 1 s, back to nothing after a success.

use std::thread;
use std::time::Duration;

const FIRST_PAUSE: Duration = Duration::from_millis(10);
const LONGEST_PAUSE: Duration = Duration::from_secs(1);

/// One loop's current pause.
#[derive(Default)]
pub struct Backoff(Duration);

impl Backoff {
    /// Logs the error with the pause, then pauses.
    pub fn after(&mut self, what: impl std::fmt::Display) {
        self.0 = self.next();
        log::warn!("{what}; retrying in {:?}", self.0);
        thread::sleep(self.0);
    }

    fn next(&self) -> Duration {
        (self.0 * 2).clamp(FIRST_PAUSE, LONGEST_PAUSE)
    }

    /// A success: the next error pauses from the shortest again.
    pub fn reset(&mut self) {
        self.0 = Duration::ZERO;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_up_to_a_second_and_reset() {
        let mut backoff = Backoff::default();
        let mut seen = Vec::new();
        for _ in 0..9 {
            backoff.0 = backoff.next();
            seen.push(backoff.0.as_millis());
        }
        assert_eq!(seen, [10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        backoff.reset();
        backoff.after("a test error");
        assert_eq!(backoff.0, FIRST_PAUSE);
    }
}
