//! The threads that accept on one stream rule's listener. Pooled threads
//! wait in accept themselves (up to `MAX_ACCEPTING` per rule; the kernel
//! wakes one per client) and the one that accepts a client serves it
//! (relay.rs): no hand-off. If it was the last one accepting, a pooled
//! thread takes its place first. Accept errors are logged and backed off,
//! never fatal.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::endpoint::{Listener, Peer, Stream};
use super::relay;
use super::Forwarding;
use crate::flow::activity::is_tick;
use crate::flow::backoff::Backoff;
use crate::flow::pool::{self, Pool};
use crate::flow::Stop;

/// How many threads of one rule may wait in accept at once. Each accepted
/// client takes the thread that accepted it; a thread whose client is
/// served comes back to accept while fewer than this many wait, with no
/// hand-off. When quiet for the pool's park time, all but one exit, as
/// parked copiers do.
const MAX_ACCEPTING: usize = 2;

/// One stream rule's listener and the threads accepting on it.
pub struct Acceptor {
    fwd: Forwarding,
    listener: Arc<Listener>,
    stop: Stop,
    /// Threads accepting, or about to, on this listener.
    accepting: AtomicUsize,
}

impl Acceptor {
    /// Starts accepting on `listener` with one pooled thread.
    pub fn start(fwd: Forwarding, listener: Arc<Listener>, stop: Stop) -> io::Result<()> {
        let acceptor = Arc::new(Acceptor {
            fwd,
            listener,
            stop,
            accepting: AtomicUsize::new(0),
        });
        acceptor.add_thread()
    }

    /// One more thread accepting on this rule's listener, from the pool.
    fn add_thread(self: &Arc<Self>) -> io::Result<()> {
        self.accepting.fetch_add(1, Ordering::SeqCst);
        let acceptor = Arc::clone(self);
        Pool::global().run(move || acceptor.run()).inspect_err(|_| {
            self.accepting.fetch_sub(1, Ordering::SeqCst);
        })
    }

    /// Accepts and serves clients until listening stops, or until a client
    /// is served while enough other threads accept.
    fn run(self: Arc<Self>) {
        let rule = self.fwd.rule();
        let mut backoff = Backoff::default();
        loop {
            let Some((client, peer)) = self.next(&mut backoff) else {
                return;
            };
            if self.accepting.fetch_sub(1, Ordering::SeqCst) == 1 && !self.stop.is_set() {
                if let Err(e) = self.add_thread() {
                    log::warn!(
                        "rule {rule}: cannot start a thread to accept with: {e}; \
                         accepting again once {peer} is served"
                    );
                }
            }
            relay::serve(client, peer, &self.fwd);
            if self.stop.is_set() || !self.rejoin() {
                return;
            }
        }
    }

    /// Counts this thread accepting again if fewer than MAX_ACCEPTING do.
    fn rejoin(&self) -> bool {
        self.accepting
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < MAX_ACCEPTING).then_some(n + 1)
            })
            .is_ok()
    }

    /// The next client, once there is room under --max-conns. None once
    /// listening has stopped, or when no client came for the pool's park
    /// time and another thread is accepting: this thread then no longer
    /// counts as accepting.
    fn next(&self, backoff: &mut Backoff) -> Option<(Stream, Peer)> {
        let rule = self.fwd.rule();
        loop {
            self.fwd.limit.wait_for_room();
            let accepted = self.listener.accept();
            if self.stop.is_set() {
                match accepted {
                    // From a handed-over queue: served here (a drain waits for it).
                    Ok(client) if self.fwd.handed => return Some(client),
                    // Else one that slipped in as listening stopped is refused too.
                    Ok((client, _)) => client.reset_on_drop(),
                    Err(_) => {}
                }
                self.accepting.fetch_sub(1, Ordering::SeqCst);
                return None;
            }
            match accepted {
                Ok(accepted) => {
                    backoff.reset();
                    return Some(accepted);
                }
                Err(e) if is_tick(&e) => {
                    if self.leave() {
                        // Quiet: this thread is not needed, now or as a copier.
                        pool::retire();
                        return None;
                    }
                }
                Err(e) if transient(&e) => {}
                Err(e) => backoff.after(format_args!("rule {rule}: accept failed: {e}")),
            }
        }
    }

    /// Stops counting this thread as accepting, unless it is the last.
    fn leave(&self) -> bool {
        self.accepting
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n > 1).then_some(n - 1)
            })
            .is_ok()
    }
}

/// Errors that concern one aborted handshake, not the listener.
fn transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::Interrupted
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}
