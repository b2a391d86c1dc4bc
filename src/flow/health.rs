//! One target's health, shared by every connection, UDP session and probe
//! of its rule: up, or down since a moment, with the moment it is to be
//! tried again and the interval that doubles while it stays down (1 s to
//! 30 s). Every change is one atomic operation that exactly one caller
//! wins, so a change is reported once however many clients see it; an up
//! target costs a reader one relaxed load. The clock is milliseconds since
//! the process first looked at it.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::*};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The wait before a target found down is tried again the first time.
pub const FIRST_INTERVAL: Duration = Duration::from_secs(1);
/// The longest wait, which the interval doubles up to.
pub const LONGEST_INTERVAL: Duration = Duration::from_secs(30);

/// Milliseconds on the health clock; never 0, which stands for "up".
pub fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

/// One target's state.
#[derive(Debug, Default)]
pub struct TargetHealth {
    /// When it went down (health clock); 0 while it is up.
    down_since: AtomicU64,
    /// When it is to be tried again; 0 until the one that took it down set it.
    retry_at: AtomicU64,
    /// The current wait between tries, in milliseconds.
    interval: AtomicU64,
    /// Where the next try starts among a name's addresses (round-robin).
    rotation: AtomicUsize,
}

/// What a failed try changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Down {
    /// This try took the target down; it is tried again after the wait.
    Now(Duration),
    /// It was down and stays down: the wait doubled to this.
    Still(Duration),
    /// It was down already; a client's try changes nothing.
    Already,
}

impl TargetHealth {
    pub fn is_up(&self) -> bool {
        self.down_since.load(Relaxed) == 0
    }

    /// How long it has been down, if it is.
    pub fn down_for(&self) -> Option<Duration> {
        match self.down_since.load(Relaxed) {
            0 => None,
            since => Some(Duration::from_millis(now_ms().saturating_sub(since))),
        }
    }

    /// When a down target is to be tried again; None while it is up (or
    /// in the moment before the one that took it down set the time).
    pub fn retry_at(&self) -> Option<u64> {
        if self.is_up() {
            return None;
        }
        Some(self.retry_at.load(Acquire)).filter(|&at| at != 0)
    }

    /// A try failed. The first failure of an up target takes it down; a
    /// failed retry (`retrying`: a probe, or a retry of a down UDP target)
    /// doubles the wait.
    pub fn failed(&self, retrying: bool) -> Down {
        let now = now_ms();
        let first = FIRST_INTERVAL.as_millis() as u64;
        if self
            .down_since
            .compare_exchange(0, now, AcqRel, Relaxed)
            .is_ok()
        {
            self.interval.store(first, Relaxed);
            self.retry_at.store(now + first, Release);
            return Down::Now(FIRST_INTERVAL);
        }
        if !retrying {
            return Down::Already;
        }
        let longest = LONGEST_INTERVAL.as_millis() as u64;
        let wait = (self.interval.load(Relaxed).max(first) * 2).min(longest);
        self.interval.store(wait, Relaxed);
        self.retry_at.store(now + wait, Release);
        Down::Still(Duration::from_millis(wait))
    }

    /// A try succeeded: up again. How long it was down, if this call
    /// brought it up (the one to say so).
    pub fn answered(&self) -> Option<Duration> {
        if self.is_up() {
            return None;
        }
        match self.down_since.swap(0, AcqRel) {
            0 => None,
            since => {
                self.retry_at.store(0, Relaxed);
                Some(Duration::from_millis(now_ms().saturating_sub(since)))
            }
        }
    }

    /// Takes a down target's due retry for the caller: true for one caller
    /// per wait, which tries it; the next may try after another wait.
    pub fn claim_retry(&self) -> bool {
        let Some(at) = self.retry_at() else {
            return false;
        };
        let now = now_ms();
        let wait = self.interval.load(Relaxed);
        at <= now
            && self
                .retry_at
                .compare_exchange(at, now + wait, AcqRel, Relaxed)
                .is_ok()
    }

    /// Where this try starts among the target's addresses: one further
    /// along each time.
    pub fn next_rotation(&self) -> usize {
        self.rotation.fetch_add(1, Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_starts_up_and_the_first_failure_takes_it_down_once() {
        let health = TargetHealth::default();
        assert!(health.is_up() && health.down_for().is_none());
        assert_eq!(health.failed(false), Down::Now(FIRST_INTERVAL));
        assert_eq!(health.failed(false), Down::Already);
        assert!(!health.is_up());
        assert!(health.retry_at().is_some_and(|at| at + 10 > now_ms()));
    }

    #[test]
    fn failed_retries_double_the_wait_up_to_30_s() {
        let health = TargetHealth::default();
        health.failed(true);
        let waits: Vec<u64> = (0..7)
            .map(|_| match health.failed(true) {
                Down::Still(wait) => wait.as_secs(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(waits, [2, 4, 8, 16, 30, 30, 30]);
    }

    #[test]
    fn an_answer_brings_it_up_once_and_a_new_failure_starts_at_1_s() {
        let health = TargetHealth::default();
        assert_eq!(health.answered(), None, "already up");
        health.failed(false);
        health.failed(true);
        assert!(health.answered().is_some());
        assert_eq!(health.answered(), None);
        assert!(health.is_up() && health.retry_at().is_none());
        assert_eq!(health.failed(false), Down::Now(FIRST_INTERVAL));
    }

    #[test]
    fn a_retry_is_claimed_by_one_caller_once_it_is_due() {
        let health = TargetHealth::default();
        assert!(!health.claim_retry(), "up: nothing to retry");
        health.failed(false);
        assert!(!health.claim_retry(), "not due for a second");
        health
            .retry_at
            .store(now_ms().saturating_sub(1).max(1), Relaxed);
        assert!(health.claim_retry());
        assert!(!health.claim_retry(), "the next waits another interval");
    }

    #[test]
    fn rotation_moves_one_further_each_time() {
        let health = TargetHealth::default();
        let seen: Vec<usize> = (0..3).map(|_| health.next_rotation()).collect();
        assert_eq!(seen, [0, 1, 2]);
    }
}
