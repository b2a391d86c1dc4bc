//! The connection cap shared by all rules: an atomic count, taken and given
//! back without a lock while there is room; a mutex and condvar only to
//! wait for room at the cap. A `Permit` gives its slot back when dropped.
//!
//! Accepting threads wait for room *without* taking a slot, then accept,
//! then take one (waiting again if another thread took the last). Taking
//! the slot before a blocking accept would let an idle listener sit on it
//! while clients of another rule wait.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// At most `max` connections open at once.
#[derive(Debug)]
pub struct Limit {
    max: usize,
    open: AtomicUsize,
    /// Held to check the count before waiting on `freed`, and by a
    /// `Permit` freeing a slot at the cap before it notifies: no wake-up
    /// falls between a waiter's check and its wait.
    full: Mutex<()>,
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
            open: AtomicUsize::new(0),
            full: Mutex::new(()),
            freed: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, ()> {
        // The mutex guards no data: usable even if a holder panicked.
        self.full.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Blocks until fewer than `max` connections are open.
    pub fn wait_for_room(&self) {
        if self.open.load(SeqCst) < self.max {
            return;
        }
        let mut guard = self.lock();
        while self.open.load(SeqCst) >= self.max {
            guard = self.freed.wait(guard).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Takes a slot, waiting for one if all are in use.
    pub fn acquire(self: &Arc<Self>) -> Permit {
        loop {
            if let Some(permit) = self.try_acquire() {
                return permit;
            }
            self.wait_for_room();
        }
    }

    /// Takes a slot if one is free now, without waiting.
    pub fn try_acquire(self: &Arc<Self>) -> Option<Permit> {
        self.open
            .fetch_update(SeqCst, SeqCst, |n| (n < self.max).then_some(n + 1))
            .ok()
            .map(|_| Permit {
                limit: Arc::clone(self),
            })
    }

    /// How many slots are taken now: connections and UDP sessions together.
    #[cfg(test)]
    pub fn taken(&self) -> usize {
        self.open.load(SeqCst)
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let limit = &self.limit;
        // Only threads that found the cap reached wait on `freed`, so a slot
        // freed below the cap wakes nobody.
        if limit.open.fetch_sub(1, SeqCst) >= limit.max {
            drop(limit.lock());
            // Every accepting thread may be waiting for room; wake them all.
            limit.freed.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::thread;
    use std::time::Duration;

    #[test]
    fn permits_count_up_and_down() {
        let limit = Limit::new(2);
        let a = limit.acquire();
        let b = limit.acquire();
        assert_eq!(limit.taken(), 2);
        drop(a);
        assert_eq!(limit.taken(), 1);
        drop(b);
        assert_eq!(limit.taken(), 0);
    }

    #[test]
    fn acquire_waits_for_a_freed_slot() {
        let limit = Limit::new(1);
        let held = limit.acquire();
        let (tx, rx) = mpsc::channel();
        let l2 = Arc::clone(&limit);
        let waiter = thread::spawn(move || {
            let permit = l2.acquire();
            let _ = tx.send(l2.taken());
            drop(permit);
        });
        // Whatever the scheduling, the waiter cannot get a slot while one is held.
        assert_eq!(
            rx.recv_timeout(Duration::from_millis(100)),
            Err(mpsc::RecvTimeoutError::Timeout)
        );
        drop(held);
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(1));
        waiter.join().expect("the waiter ended");
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
        assert_eq!(limit.taken(), 0);
    }
}
