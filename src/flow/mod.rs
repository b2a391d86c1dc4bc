//! What every flow shares, TCP or unix connection and UDP session alike,
//! below both transports: the connection cap (limit.rs), the thread pool
//! (pool.rs), the per-rule counters (counters.rs), the clock of the last byte
//! moved and the idle tick (activity.rs), the walk over a rule's targets
//! (targets.rs) with each target's health (health.rs), names resolved at
//! each try (resolve.rs) and the one thread that probes the down ones
//! (prober.rs), the pause after a listener's
//! error (backoff.rs), and the flag that tells every listening thread to
//! stop. Nothing here knows how a byte is read or written.

pub mod activity;
pub mod backoff;
pub mod counters;
pub mod health;
pub mod limit;
pub mod pool;
pub mod prober;
pub mod resolve;
pub mod targets;

use std::ops::Index;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Which way bytes flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// client -> target
    Up,
    /// target -> client
    Down,
}

impl Direction {
    /// The other way.
    pub fn other(self) -> Direction {
        match self {
            Direction::Up => Direction::Down,
            Direction::Down => Direction::Up,
        }
    }
}

/// One value for each direction, read by field or by `Direction`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PerDirection<T> {
    pub up: T,
    pub down: T,
}

impl<T> Index<Direction> for PerDirection<T> {
    type Output = T;

    fn index(&self, dir: Direction) -> &T {
        match dir {
            Direction::Up => &self.up,
            Direction::Down => &self.down,
        }
    }
}

/// Set once listening stops for good; every accept and receive loop holds
/// a clone and ends when it sees it set.
#[derive(Clone, Debug, Default)]
pub struct Stop(Arc<AtomicBool>);

impl Stop {
    pub fn set(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}
