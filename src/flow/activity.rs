//! When a flow last moved a byte (TCP, unix) or a datagram (UDP), for
//! --idle-timeout and --udp-timeout, and how often a thread blocked on a
//! flow's socket wakes to look at it. One clock for both transports: a
//! relaxed atomic of milliseconds since the flow started, moved forward by
//! whichever thread moved data.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// The shortest and longest wake-up period of a blocked thread.
const SHORTEST_TICK: Duration = Duration::from_millis(10);
const LONGEST_TICK: Duration = Duration::from_secs(1);

/// A flow's start and the moment it last moved data.
#[derive(Debug)]
pub struct Activity {
    started: Instant,
    /// Milliseconds since `started` at the last data moved either way.
    last_ms: AtomicU64,
}

impl Activity {
    /// A flow starting now, active now.
    pub fn new() -> Activity {
        Activity {
            started: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    /// How long the flow has existed.
    pub fn age(&self) -> Duration {
        self.started.elapsed()
    }

    /// Marks the flow active now.
    pub fn touch(&self) {
        self.last_ms.fetch_max(self.elapsed_ms(), Relaxed);
    }

    /// True once nothing moved for `timeout`.
    pub fn quiet_for(&self, timeout: Duration) -> bool {
        let quiet = self.elapsed_ms().saturating_sub(self.last_ms.load(Relaxed));
        quiet >= timeout.as_millis() as u64
    }

    fn elapsed_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }
}

/// How often a thread blocked on a flow with this timeout wakes to check
/// it: a quarter of the timeout, from 10 ms to 1 s, so a flow ends at most
/// a quarter of its timeout (and never more than a second) late.
pub fn tick(timeout: Duration) -> Duration {
    (timeout / 4).clamp(SHORTEST_TICK, LONGEST_TICK)
}

/// A read or write that timed out: the tick, not a failure.
pub fn is_tick(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_flow_is_quiet_only_for_no_time() {
        let activity = Activity::new();
        assert!(activity.quiet_for(Duration::ZERO));
        assert!(!activity.quiet_for(Duration::from_secs(3600)));
    }

    #[test]
    fn touching_moves_the_last_moment_forward_only() {
        let activity = Activity::new();
        activity.last_ms.store(5_000, Relaxed);
        activity.touch();
        assert_eq!(activity.last_ms.load(Relaxed), 5_000);
        assert!(!activity.quiet_for(Duration::from_secs(1)));
    }

    #[test]
    fn ticks_are_a_quarter_within_bounds() {
        assert_eq!(tick(Duration::from_millis(1)), SHORTEST_TICK);
        assert_eq!(tick(Duration::from_secs(2)), Duration::from_millis(500));
        assert_eq!(tick(Duration::from_secs(3600)), LONGEST_TICK);
    }

    #[test]
    fn timeouts_are_ticks_and_other_errors_are_not() {
        assert!(is_tick(&io::ErrorKind::WouldBlock.into()));
        assert!(is_tick(&io::ErrorKind::TimedOut.into()));
        assert!(!is_tick(&io::ErrorKind::ConnectionReset.into()));
    }
}
