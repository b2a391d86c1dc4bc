//! One UDP session: a client address, the way to the rule's current target
//! (upstream.rs) and the session's own thread, which reaches a target (its
//! name may be slow to resolve: never on the receive thread), then carries
//! the target's datagrams back from the address the client wrote to. It
//! ends after --udp-timeout with no datagram either way, or when no target
//! is left; ECONNREFUSED moves it on to the next target, on a pooled
//! thread. The receive thread forwards the client's datagrams with
//! `forward`, through the gate (gate.rs) while a target is being reached.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::gate::Gate;
use super::rule::UdpRule;
use super::tally::Tally;
use super::upstream::Upstream;
use crate::config::seconds::Secs;
use crate::flow::activity::{is_tick, tick, Activity};
use crate::flow::limit::Permit;
use crate::flow::pool::Pool;
use crate::flow::Direction;
use crate::sys::{self, Arrival, MAX_DATAGRAM};

/// A client's session with the rule's targets.
pub struct Session {
    client: SocketAddr,
    /// Where the client's datagrams arrived, on a wildcard listener.
    arrival: Option<Arrival>,
    upstream: Upstream,
    /// Closed while a target is being reached.
    gate: Gate,
    /// No target is left: the session's thread ends it.
    dead: AtomicBool,
    /// Counted open in the rule (a target was reached).
    counted: AtomicBool,
    /// The last datagram either way (touched under the table's lock).
    activity: Activity,
    /// What the client sent, counted by whoever sends it.
    up: Tally,
    /// What the target sent back, stored by the session's thread at its end.
    down: Tally,
    _permit: Permit,
}

impl Session {
    /// A session for a new client, reaching no target yet (`serve` does).
    /// Its walk over the targets starts at `start` (--balance).
    pub fn new(
        client: SocketAddr,
        arrival: Option<Arrival>,
        start: usize,
        permit: Permit,
    ) -> Session {
        Session {
            client,
            arrival,
            upstream: Upstream::new(start),
            gate: Gate::default(),
            dead: AtomicBool::new(false),
            counted: AtomicBool::new(false),
            activity: Activity::new(),
            up: Tally::default(),
            down: Tally::default(),
            _permit: permit,
        }
    }

    /// The client's address.
    pub fn client(&self) -> SocketAddr {
        self.client
    }

    /// The session's thread: reaches a target, then relays replies until
    /// the session ends, asking `expire` whether it has once it is quiet
    /// (the table decides, under its lock); returns why it ended.
    pub fn serve(self: &Arc<Self>, udp: &Arc<UdpRule>, expire: impl Fn() -> bool) -> String {
        if !self.fail_over(udp) {
            self.no_target(udp, "dropping the datagrams");
            return "no target answered".to_string();
        }
        self.counted.store(true, Ordering::Release);
        udp.counters().opened();
        log::debug!(
            "{} -> {}: UDP session open (rule {})",
            self.client,
            self.upstream.text(),
            udp.rule()
        );
        let socket = self.upstream.socket();
        match socket.set_read_timeout(Some(tick(udp.timeout))) {
            Ok(()) => self.replies(udp, expire),
            Err(e) => format!("cannot set a timeout: {e}"),
        }
    }

    /// The debug closing line: how long, how much each way, why.
    pub fn log_close(&self, why: &str) {
        if !log::log_enabled!(log::Level::Debug) {
            return;
        }
        let dropped = match self.gate.dropped() {
            0 => String::new(),
            n => format!(", {n} dropped while reaching a target"),
        };
        log::debug!(
            "{} -> {}: UDP session closed after {}, {} up, {} down{dropped}, {why}",
            self.client,
            self.upstream.text(),
            Secs(self.activity.age()),
            self.up,
            self.down,
        );
    }

    /// Whether the session was counted open (so its end is counted closed).
    pub fn counted(&self) -> bool {
        self.counted.load(Ordering::Acquire)
    }

    /// Marks the session active now.
    pub fn touch(&self) {
        self.activity.touch();
    }

    /// True once nothing moved either way for `timeout`.
    pub fn expired(&self, timeout: Duration) -> bool {
        self.activity.quiet_for(timeout)
    }

    /// Sends a client's datagram to the target, or keeps it while a target
    /// is being reached; a refusal starts a failover on a pooled thread,
    /// with this datagram first in the queue.
    pub fn forward(self: &Arc<Self>, udp: &Arc<UdpRule>, datagram: &[u8]) {
        if self.gate.hold(datagram) {
            return;
        }
        match self.upstream.socket().send(datagram) {
            Ok(n) => self.count_up(udp, n),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                self.refused(udp, Some(datagram))
            }
            Err(e) => log::debug!(
                "{} -> {}: datagram not sent: {e}",
                self.client,
                self.upstream.text()
            ),
        }
    }

    fn count_up(&self, udp: &UdpRule, n: usize) {
        self.up.add(1, n as u64);
        udp.counters().delivered(Direction::Up, n);
    }

    /// Reaches the next target of the session's walk, then sends what
    /// waits; on to the next if that target refuses meanwhile. False when
    /// no target is left (the caller counts it).
    fn fail_over(&self, udp: &UdpRule) -> bool {
        loop {
            if self.upstream.reach(udp).is_none() {
                return false;
            }
            if self
                .gate
                .open_after(|datagram| self.send_waiting(udp, datagram))
            {
                return true;
            }
            self.upstream.refused(udp);
        }
    }

    /// Sends a datagram that waited; false if the target refused it.
    fn send_waiting(&self, udp: &UdpRule, datagram: &[u8]) -> bool {
        match self.upstream.socket().send(datagram) {
            Ok(n) => self.count_up(udp, n),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => return false,
            Err(e) => log::debug!("{}: datagram not sent: {e}", self.client),
        }
        true
    }

    /// No target of the list answered: counted, and said with what follows.
    fn no_target(&self, udp: &UdpRule, what: &str) {
        udp.counters().no_target();
        let (rule, client) = (udp.rule(), self.client);
        log::warn!("rule {rule}: no target answered; {what} of {client}");
    }

    /// The target refused (`datagram`, if any, was not sent): it waits, and
    /// a pooled thread reaches the next target. Only the caller that closes
    /// the gate starts that; others' datagrams just wait.
    fn refused(self: &Arc<Self>, udp: &Arc<UdpRule>, datagram: Option<&[u8]>) {
        if !self.gate.close(datagram) {
            return;
        }
        self.upstream.refused(udp);
        let (session, moving) = (Arc::clone(self), Arc::clone(udp));
        let job = move || {
            if !session.fail_over(&moving) {
                session.no_target(&moving, "ending the session");
                session.dead.store(true, Ordering::Release);
            }
        };
        if let Err(e) = Pool::global().run(job) {
            log::warn!(
                "rule {}: {}: cannot start a thread to fail over: {e}",
                udp.rule(),
                self.client
            );
            self.dead.store(true, Ordering::Release);
        }
    }

    /// Relays replies until the session ends; returns why. What went down
    /// is counted here, stored at the end: no cache line shared per datagram.
    fn replies(self: &Arc<Self>, udp: &Arc<UdpRule>, expire: impl Fn() -> bool) -> String {
        let (mut datagrams, mut bytes) = (0u64, 0u64);
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let socket = self.upstream.socket();
        let mut answered = false;
        let why = loop {
            if self.dead.load(Ordering::Acquire) {
                break "no target answered".to_string();
            }
            match socket.recv(&mut buf) {
                Ok(n) => {
                    // No lock: only this thread decides that the session expired.
                    self.touch();
                    if !answered {
                        self.upstream.answered(udp);
                        answered = true;
                    }
                    match sys::send_from(&udp.socket, &buf[..n], self.client, self.arrival) {
                        Ok(_) => {
                            datagrams += 1;
                            bytes += n as u64;
                            udp.counters().delivered(Direction::Down, n);
                        }
                        Err(e) => log::debug!("{}: reply not sent: {e}", self.client),
                    }
                }
                Err(e) if is_tick(&e) => {
                    if expire() {
                        break format!("idle for {}", Secs(udp.timeout));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => self.refused(udp, None),
                Err(e) => break format!("target read: {e}"),
            }
        };
        self.down.add(datagrams, bytes);
        why
    }
}
