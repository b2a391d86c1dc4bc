//! One UDP session: a client address, a socket connected to the rule's
//! current target, and a reply thread that carries the target's datagrams
//! back to the client from the address the client wrote to. The session ends
//! after --udp-timeout with no datagram either way, or when no target of the
//! list is left; ECONNREFUSED (the target's port is closed) moves it on to
//! the next target. The receive side (udp.rs) forwards the client's
//! datagrams with `forward`.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::UdpRule;
use crate::config::seconds::Secs;
use crate::flow::activity::{is_tick, tick, Activity};
use crate::flow::limit::Permit;
use crate::flow::targets::{first_answer, resolve_first};
use crate::flow::Direction;
use crate::sys::{self, Arrival};

/// A buffer that never truncates a datagram: the largest UDP payload is
/// 65,535 less the 8-byte UDP header (65,527; over IPv4 also less the
/// 20-byte IP header, 65,507), so 64 KiB holds any with room to spare.
pub const MAX_DATAGRAM: usize = 65_536;

/// A client's session with the rule's targets.
pub struct Session {
    pub client: SocketAddr,
    /// Where the client's datagrams arrived, on a wildcard listener.
    arrival: Option<Arrival>,
    socket: UdpSocket,
    /// The index of the current target in the rule's list, and its address.
    target: Mutex<(usize, SocketAddr)>,
    /// The last datagram either way; the receive side touches it under the
    /// session table's lock (see mod.rs).
    activity: Activity,
    /// [datagrams up, bytes up], counted by the receive side as it sends.
    up: [AtomicU64; 2],
    /// [datagrams down, bytes down], stored by the reply thread at the end.
    down: [AtomicU64; 2],
    _permit: Permit,
}

impl Session {
    /// Connects a new session to the first target of `rule` that resolves;
    /// None (with a warning for each target) if none does.
    pub fn open(
        rule: &UdpRule,
        client: SocketAddr,
        arrival: Option<Arrival>,
        permit: Permit,
    ) -> Option<Session> {
        let (index, (socket, addr)) = first_target(rule, 0, |addr| {
            let local: SocketAddr = match addr {
                SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
                SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
            };
            let socket = UdpSocket::bind(local)?;
            socket.connect(addr)?;
            Ok((socket, addr))
        })?;
        Some(Session {
            client,
            arrival,
            socket,
            target: Mutex::new((index, addr)),
            activity: Activity::new(),
            up: Default::default(),
            down: Default::default(),
            _permit: permit,
        })
    }

    pub fn target_addr(&self) -> SocketAddr {
        self.lock_target().1
    }

    fn lock_target(&self) -> std::sync::MutexGuard<'_, (usize, SocketAddr)> {
        // A plain pair: usable even if a holder panicked.
        self.target.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks the session active now.
    pub fn touch(&self) {
        self.activity.touch();
    }

    /// True once nothing moved either way for `timeout`.
    pub fn expired(&self, timeout: Duration) -> bool {
        self.activity.quiet_for(timeout)
    }

    /// Sends a client's datagram to the target; a refusal reported by the
    /// previous one moves the session to the next target and sends it there.
    pub fn forward(&self, rule: &UdpRule, datagram: &[u8]) {
        let mut sent = self.socket.send(datagram);
        if matches!(&sent, Err(e) if e.kind() == io::ErrorKind::ConnectionRefused) {
            if !self.fail_over(rule) {
                return;
            }
            sent = self.socket.send(datagram);
        }
        match sent {
            Ok(n) => {
                self.up[0].fetch_add(1, Relaxed);
                self.up[1].fetch_add(n as u64, Relaxed);
                rule.stats.delivered(Direction::Up, n);
            }
            Err(e) => log::debug!(
                "{} -> {}: datagram not sent: {e}",
                self.client,
                self.target_addr()
            ),
        }
    }

    /// Moves to the next target that resolves, with a warning for the one
    /// that refused; false when the list is exhausted.
    fn fail_over(&self, rule: &UdpRule) -> bool {
        let mut target = self.lock_target();
        let refused = &rule.rule.targets[target.0];
        rule.stats.target_tried(target.0, false);
        log::warn!(
            "rule {}: target {refused} refused (port unreachable at {}); trying the next target",
            rule.rule,
            target.1
        );
        let next = first_target(rule, target.0 + 1, |addr| {
            self.socket.connect(addr).map(|()| addr)
        });
        match next {
            Some(found) => {
                *target = found;
                true
            }
            None => false,
        }
    }

    /// The reply thread: carries the target's datagrams to the client until
    /// the session expires or no target is left; then leaves the table.
    pub fn reply_loop(self: Arc<Session>, rule: Arc<UdpRule>) {
        let why = match self.socket.set_read_timeout(Some(tick(rule.timeout))) {
            Ok(()) => self.replies(&rule),
            Err(e) => format!("cannot set a timeout: {e}"),
        };
        rule.forget(&self);
        let load = |counter: &AtomicU64| counter.load(Relaxed);
        log::debug!(
            "{} -> {}: UDP session closed after {}, {} datagrams ({} bytes) up, {} datagrams ({} bytes) down, {why}",
            self.client,
            self.target_addr(),
            Secs(self.activity.age()),
            load(&self.up[0]),
            load(&self.up[1]),
            load(&self.down[0]),
            load(&self.down[1]),
        );
    }

    /// Relays replies; returns why the session ended. What went down is
    /// counted here and stored at the end: no cache line shared per datagram.
    fn replies(self: &Arc<Self>, rule: &UdpRule) -> String {
        let mut down = [0u64; 2];
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let why = loop {
            match self.socket.recv(&mut buf) {
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
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    if !self.fail_over(rule) {
                        rule.stats.no_target();
                        log::warn!(
                            "rule {}: no target answered; ending the session of {}",
                            rule.rule,
                            self.client
                        );
                        break "no target answered".to_string();
                    }
                }
                Err(e) => break format!("target read: {e}"),
            }
        };
        self.down[0].store(down[0], Relaxed);
        self.down[1].store(down[1], Relaxed);
        why
    }
}

/// Walks the rule's targets from `first` on: the first whose first address
/// `connect` accepts, with its index; a warning for each that fails; each
/// try counted.
fn first_target<T>(
    rule: &UdpRule,
    first: usize,
    mut connect: impl FnMut(SocketAddr) -> io::Result<T>,
) -> Option<(usize, T)> {
    let found = first_answer(
        &rule.rule.targets,
        first,
        |target| resolve_first(target).and_then(&mut connect),
        |index, target, e| {
            rule.stats.target_tried(index, false);
            log::warn!("rule {}: target {target} failed: {e}", rule.rule);
        },
    );
    if let Some((index, _)) = &found {
        rule.stats.target_tried(*index, true);
    }
    found
}
