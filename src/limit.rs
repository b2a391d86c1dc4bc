//! The connection cap shared by all rules: a counter under a mutex, a condvar
//! to wait for room, and a `Permit` that gives its slot back when dropped.
//!
//! Accepting threads wait for room *without* taking a slot, then accept,
//! then take one (waiting again if another thread took the last). Taking
//! the slot before a blocking accept would let an idle listener sit on it
//! while clients of another rule wait.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// At most `max` connections open at once.
#[derive(Debug)]
pub struct Limit {
    max: usize,
    open: Mutex<usize>,
    freed: Condvar,
}

/// One open connection's slot; dropping it frees the slot.
#[derive(Debug)]
pub struct Permit {
    limit: Arc<Limit>,
}

impl Limit {
    /// A cap of `max` connections (at least 1).
    pub fn new(max: usize) -> Arc<Limit> {
        Arc::new(Limit {
            max: max.max(1),
            open: Mutex::new(0),
            freed: Condvar::new(),
        })
    }

    fn count(&self) -> MutexGuard<'_, usize> {
        // Nothing panics while holding this lock; if it ever did, the count
        // itself is still a plain integer and remains usable.
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Blocks until fewer than `max` connections are open; returns the count, locked.
    fn room(&self) -> MutexGuard<'_, usize> {
        let mut open = self.count();
        while *open >= self.max {
            open = self.freed.wait(open).unwrap_or_else(|e| e.into_inner());
        }
        open
    }

    /// Blocks until fewer than `max` connections are open.
    pub fn wait_for_room(&self) {
        drop(self.room());
    }

    /// Takes a slot, waiting for one if all are in use.
    pub fn acquire(self: &Arc<Self>) -> Permit {
        *self.room() += 1;
        Permit {
            limit: Arc::clone(self),
        }
    }

    /// Takes a slot if one is free now, without waiting.
    pub fn try_acquire(self: &Arc<Self>) -> Option<Permit> {
        let mut open = self.count();
        if *open >= self.max {
            return None;
        }
        *open += 1;
        Some(Permit {
            limit: Arc::clone(self),
        })
    }

    /// How many slots are taken now.
    pub fn open(&self) -> usize {
        *self.count()
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut open = self.limit.count();
        let was_full = *open >= self.limit.max;
        *open -= 1;
        drop(open);
        // Only threads that found the cap reached wait on `freed`, so a slot
        // freed below the cap wakes nobody.
        if was_full {
            // Every accept thread may be waiting for room; wake them all.
            self.limit.freed.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;
    use std::time::Duration;

    #[test]
    fn permits_count_up_and_down() {
        let limit = Limit::new(2);
        let a = limit.acquire();
        let b = limit.acquire();
        assert_eq!(limit.open(), 2);
        drop(a);
        assert_eq!(limit.open(), 1);
        drop(b);
        assert_eq!(limit.open(), 0);
    }

    #[test]
    fn acquire_waits_for_a_freed_slot() {
        let limit = Limit::new(1);
        let held = limit.acquire();
        let l2 = Arc::clone(&limit);
        let waiter = thread::spawn(move || {
            let _p = l2.acquire();
            l2.open()
        });
        thread::sleep(Duration::from_millis(50));
        assert!(!waiter.is_finished(), "acquire did not wait");
        drop(held);
        assert_eq!(waiter.join().unwrap(), 1);
    }

    #[test]
    fn try_acquire_gives_up_at_the_cap() {
        let limit = Limit::new(1);
        let held = limit.try_acquire().expect("a free slot");
        assert!(limit.try_acquire().is_none());
        drop(held);
        assert!(limit.try_acquire().is_some());
    }

    #[test]
    fn waiting_for_room_takes_no_slot() {
        let limit = Limit::new(1);
        limit.wait_for_room();
        limit.wait_for_room();
        assert_eq!(limit.open(), 0);
    }
}
