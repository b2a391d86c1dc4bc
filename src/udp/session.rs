//! One UDP session: a client address, a socket connected to the rule's
//! current target, and the session's own thread. That thread first reaches
//! a target (reach.rs: resolving its name, which may be slow, so never on
//! the rule's receive thread), then carries the target's datagrams back to
//! the client from the address the client wrote to. The session ends after
//! --udp-timeout with no datagram either way, or when no target of the list
//! is left; ECONNREFUSED (the target's port is closed) moves it on to the
//! next target. The receive side (mod.rs) forwards the client's datagrams
//! with `forward`: straight to the socket once a target is reached, into a
//! small queue (`MAX_WAITING`, in order) while one is being reached.

use std::collections::VecDeque;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use super::UdpRule;
use crate::config::seconds::Secs;
use crate::flow::activity::{is_tick, tick, Activity};
use crate::flow::limit::Permit;
use crate::flow::Direction;
use crate::sys::{self, Arrival, MAX_DATAGRAM};

/// Datagrams kept for a session while its target is being reached; more
/// are dropped (and the closing line says how many).
pub const MAX_WAITING: usize = 32;

/// A client's session with the rule's targets.
pub struct Session {
    pub client: SocketAddr,
    /// Where the client's datagrams arrived, on a wildcard listener.
    arrival: Option<Arrival>,
    /// Made by the session's thread once the first target resolves.
    pub(super) socket: OnceLock<UdpSocket>,
    /// The index of the current target in the rule's list, and its address.
    pub(super) target: Mutex<(usize, Option<SocketAddr>)>,
    /// Datagrams that came while no target was reached, and those dropped.
    pub(super) waiting: Mutex<Waiting>,
    /// True while datagrams may go straight to the socket; set and cleared
    /// under `waiting`'s lock, so none overtakes one that waits.
    pub(super) ready: AtomicBool,
    /// No target is left: the session's thread ends it.
    pub(super) dead: AtomicBool,
    /// Counted open in the rule (a target was reached).
    counted: AtomicBool,
    /// The last datagram either way; the receive side touches it under the
    /// session table's lock (see mod.rs).
    activity: Activity,
    /// [datagrams up, bytes up], counted by whoever sends.
    pub(super) up: [AtomicU64; 2],
    /// [datagrams down, bytes down], stored by the reply thread at the end.
    down: [AtomicU64; 2],
    _permit: Permit,
}

/// The queue of a session that is reaching a target.
#[derive(Default)]
pub struct Waiting {
    pub(super) queue: VecDeque<Vec<u8>>,
    pub(super) dropped: u64,
}

impl Waiting {
    /// Keeps a datagram for later, or counts it dropped if MAX_WAITING wait.
    pub(super) fn keep(&mut self, datagram: &[u8]) {
        match self.queue.len() < MAX_WAITING {
            true => self.queue.push_back(datagram.to_vec()),
            false => self.dropped += 1,
        }
    }
}

impl Session {
    /// A session for a new client, reaching no target yet (`start` does).
    pub fn new(client: SocketAddr, arrival: Option<Arrival>, permit: Permit) -> Session {
        Session {
            client,
            arrival,
            socket: OnceLock::new(),
            target: Mutex::new((0, None)),
            waiting: Mutex::new(Waiting::default()),
            ready: AtomicBool::new(false),
            dead: AtomicBool::new(false),
            counted: AtomicBool::new(false),
            activity: Activity::new(),
            up: Default::default(),
            down: Default::default(),
            _permit: permit,
        }
    }

    /// The session's thread: reaches a target, then relays replies until
    /// the session ends; then it leaves the table and says why.
    pub fn start(self: Arc<Session>, rule: Arc<UdpRule>) {
        let why = if !self.fail_over(&rule, 0) {
            rule.stats.no_target();
            log::warn!(
                "rule {}: no target answered; dropping the datagrams of {}",
                rule.rule,
                self.client
            );
            "no target answered".to_string()
        } else {
            self.counted.store(true, Ordering::Release);
            rule.stats.opened();
            log::debug!(
                "{} -> {}: UDP session open (rule {})",
                self.client,
                self.target_text(),
                rule.rule
            );
            match self.socket().set_read_timeout(Some(tick(rule.timeout))) {
                Ok(()) => self.replies(&rule),
                Err(e) => format!("cannot set a timeout: {e}"),
            }
        };
        rule.forget(&self);
        self.log_close(&why);
    }

    fn log_close(&self, why: &str) {
        if !log::log_enabled!(log::Level::Debug) {
            return;
        }
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let dropped = self.lock_waiting().dropped;
        let dropped = match dropped {
            0 => String::new(),
            n => format!(", {n} dropped while reaching a target"),
        };
        log::debug!(
            "{} -> {}: UDP session closed after {}, {} datagrams ({} bytes) up, {} datagrams ({} bytes) down{dropped}, {why}",
            self.client,
            self.target_text(),
            Secs(self.activity.age()),
            load(&self.up[0]),
            load(&self.up[1]),
            load(&self.down[0]),
            load(&self.down[1]),
        );
    }

    /// Whether the session was counted open (so its end is counted closed).
    pub fn counted(&self) -> bool {
        self.counted.load(Ordering::Acquire)
    }

    /// The socket; only called once a target was reached.
    pub(super) fn socket(&self) -> &UdpSocket {
        // `ready` (or a reached target) comes after the socket is set.
        self.socket
            .get()
            .expect("a session's socket is set before it is used")
    }

    fn target_text(&self) -> String {
        match self.lock_target().1 {
            Some(addr) => addr.to_string(),
            None => "no target".to_string(),
        }
    }

    pub(super) fn lock_target(&self) -> MutexGuard<'_, (usize, Option<SocketAddr>)> {
        // A plain pair: usable even if a holder panicked.
        self.target.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn lock_waiting(&self) -> MutexGuard<'_, Waiting> {
        // A queue of byte vectors: usable even if a holder panicked.
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks the session active now.
    pub fn touch(&self) {
        self.activity.touch();
    }

    /// True once nothing moved either way for `timeout`.
    pub fn expired(&self, timeout: Duration) -> bool {
        self.activity.quiet_for(timeout)
    }

    /// Sends a client's datagram to the target, or queues it while a target
    /// is being reached; a refusal starts a failover on a pooled thread
    /// (reach.rs), with this datagram first in the queue.
    pub fn forward(self: &Arc<Self>, rule: &Arc<UdpRule>, datagram: &[u8]) {
        if !self.ready.load(Ordering::Acquire) && self.wait(datagram) {
            return;
        }
        match self.socket().send(datagram) {
            Ok(n) => self.count_up(rule, n),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                self.refused(rule, Some(datagram))
            }
            Err(e) => log::debug!(
                "{} -> {}: datagram not sent: {e}",
                self.client,
                self.target_text()
            ),
        }
    }

    pub(super) fn count_up(&self, rule: &UdpRule, n: usize) {
        self.up[0].fetch_add(1, Ordering::Relaxed);
        self.up[1].fetch_add(n as u64, Ordering::Relaxed);
        rule.stats.delivered(Direction::Up, n);
    }

    /// Queues the datagram if the session is not ready; false if it became
    /// ready meanwhile (the caller sends it then).
    fn wait(&self, datagram: &[u8]) -> bool {
        let mut waiting = self.lock_waiting();
        if self.ready.load(Ordering::Acquire) {
            return false;
        }
        waiting.keep(datagram);
        true
    }

    /// Relays replies; returns why the session ended. What went down is
    /// counted here and stored at the end: no cache line shared per datagram.
    fn replies(self: &Arc<Self>, rule: &Arc<UdpRule>) -> String {
        let mut down = [0u64; 2];
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let why = loop {
            if self.dead.load(Ordering::Acquire) {
                break "no target answered".to_string();
            }
            match self.socket().recv(&mut buf) {
                Ok(n) => {
                    // No lock: only this thread decides that the session expired.
                    self.touch();
                    match sys::send_from(&rule.socket, &buf[..n], self.client, self.arrival) {
                        Ok(_) => {
                            down[0] += 1;
                            down[1] += n as u64;
                            rule.stats.delivered(Direction::Down, n);
                        }
                        Err(e) => log::debug!("{}: reply not sent: {e}", self.client),
                    }
                }
                Err(e) if is_tick(&e) => {
                    if rule.expire(self) {
                        break format!("idle for {}", Secs(rule.timeout));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => self.refused(rule, None),
                Err(e) => break format!("target read: {e}"),
            }
        };
        self.down[0].store(down[0], Ordering::Relaxed);
        self.down[1].store(down[1], Ordering::Relaxed);
        why
    }
}
