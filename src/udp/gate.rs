//! The gate in front of a session's socket: open once a target is reached,
//! so the client's datagrams go straight to the socket; closed while a
//! target is being reached (at the start, and after a refusal), when they
//! wait in a small queue, in order (`MAX_WAITING`; more are dropped and
//! counted). Opening and closing happen under the queue's lock, so no
//! datagram overtakes one that waits.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

/// Datagrams kept for a session while its target is being reached; more
/// are dropped (and the closing line says how many).
pub const MAX_WAITING: usize = 32;

/// A session's gate: closed at first.
#[derive(Default)]
pub struct Gate {
    waiting: Mutex<Waiting>,
    /// Set and cleared under `waiting`'s lock.
    open: AtomicBool,
}

/// The datagrams that wait, and how many could not.
#[derive(Default)]
struct Waiting {
    queue: VecDeque<Vec<u8>>,
    dropped: u64,
}

impl Waiting {
    /// Keeps a datagram for later, or counts it dropped if MAX_WAITING wait.
    fn keep(&mut self, datagram: &[u8]) {
        match self.queue.len() < MAX_WAITING {
            true => self.queue.push_back(datagram.to_vec()),
            false => self.dropped += 1,
        }
    }
}

impl Gate {
    fn lock(&self) -> MutexGuard<'_, Waiting> {
        // A queue of byte vectors: usable even if a holder panicked.
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps the datagram if the gate is closed (true); false if it is
    /// open, and the caller sends it.
    pub fn hold(&self, datagram: &[u8]) -> bool {
        if self.open.load(Ordering::Acquire) {
            return false;
        }
        let mut waiting = self.lock();
        if self.open.load(Ordering::Acquire) {
            return false;
        }
        waiting.keep(datagram);
        true
    }

    /// Hands what waits to `send`, in order, then opens the gate. `send`
    /// returns false when the target refused: that datagram and the rest
    /// keep waiting, the gate stays closed, and so does this: false.
    pub fn open_after(&self, mut send: impl FnMut(&[u8]) -> bool) -> bool {
        let mut waiting = self.lock();
        while let Some(datagram) = waiting.queue.pop_front() {
            if !send(&datagram) {
                waiting.queue.push_front(datagram);
                return false;
            }
        }
        self.open.store(true, Ordering::Release);
        true
    }

    /// Closes the gate, keeping `datagram` (one the target refused) first
    /// of those that come next; true if this call closed it, so that one
    /// caller only goes on to reach another target.
    pub fn close(&self, datagram: Option<&[u8]>) -> bool {
        let mut waiting = self.lock();
        if let Some(datagram) = datagram {
            waiting.keep(datagram);
        }
        self.open.swap(false, Ordering::AcqRel)
    }

    /// Datagrams dropped because MAX_WAITING already waited.
    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_gate_keeps_datagrams_in_order_and_drops_past_the_limit() {
        let gate = Gate::default();
        for i in 0..MAX_WAITING + 3 {
            assert!(gate.hold(&[i as u8]));
        }
        assert_eq!(gate.dropped(), 3);
        let mut sent = Vec::new();
        assert!(gate.open_after(|d| {
            sent.push(d[0]);
            true
        }));
        assert_eq!(sent, (0..MAX_WAITING as u8).collect::<Vec<_>>());
        assert!(!gate.hold(b"x"), "an open gate lets the caller send");
    }

    #[test]
    fn a_refusal_keeps_the_rest_and_the_gate_closed() {
        let gate = Gate::default();
        gate.hold(b"a");
        gate.hold(b"b");
        assert!(!gate.open_after(|d| d != b"b"));
        assert!(gate.hold(b"c"), "still closed");
        let mut sent = Vec::new();
        assert!(gate.open_after(|d| {
            sent.push(d.to_vec());
            true
        }));
        assert_eq!(sent, [b"b".to_vec(), b"c".to_vec()]);
    }

    #[test]
    fn only_the_first_close_of_an_open_gate_says_so() {
        let gate = Gate::default();
        assert!(gate.open_after(|_| true));
        assert!(gate.close(Some(b"refused")));
        assert!(!gate.close(None));
        let mut sent = Vec::new();
        gate.open_after(|d| {
            sent.push(d.to_vec());
            true
        });
        assert_eq!(sent, [b"refused".to_vec()]);
    }
}
