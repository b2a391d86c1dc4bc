//! How a UDP session reaches a target, on its own thread or a pooled one,
//! never on the rule's receive thread and never under the session table's
//! lock (a name may take seconds to resolve): the walk over the rule's
//! targets, the socket made for the first one reached, the datagrams that
//! waited sent in order, and failover when the target's port is closed.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::session::Session;
use super::UdpRule;
use crate::flow::pool::Pool;
use crate::flow::targets::{first_answer, resolve_first};
use crate::sys;

/// The receive buffer asked for a session's socket (the target's replies
/// to one client), capped by the kernel at net.core.rmem_max.
const SESSION_BUFFER: i32 = 1 << 20;

impl Session {
    /// Reaches the first target from index `from` on, then sends what
    /// waits; on to the next if that target refuses meanwhile. False when
    /// no target is left (the caller counts it).
    pub(super) fn fail_over(&self, rule: &UdpRule, mut from: usize) -> bool {
        loop {
            let Some(index) = self.reach(rule, from) else {
                return false;
            };
            if self.flush(rule) {
                return true;
            }
            from = index + 1;
        }
    }

    /// Connects to the first target from `from` on that resolves; its index.
    fn reach(&self, rule: &UdpRule, from: usize) -> Option<usize> {
        let (index, addr) = first_target(rule, from, |addr| self.connect(addr))?;
        *self.lock_target() = (index, Some(addr));
        Some(index)
    }

    /// Points the session's socket at `addr`, making it (of `addr`'s
    /// family) for the first target.
    fn connect(&self, addr: SocketAddr) -> io::Result<SocketAddr> {
        if let Some(socket) = self.socket.get() {
            return socket.connect(addr).map(|()| addr);
        }
        let local: SocketAddr = match addr {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let socket = UdpSocket::bind(local)?;
        if let Err(e) = sys::set_receive_buffer(&socket, SESSION_BUFFER) {
            log::debug!("{}: cannot raise the receive buffer: {e}", self.client);
        }
        socket.connect(addr)?;
        // Only this session's one reaching thread sets it.
        let _ = self.socket.set(socket);
        Ok(addr)
    }

    /// Sends the waiting datagrams in order, then lets new ones go straight
    /// to the socket; false, with the rest kept, if the target refused.
    fn flush(&self, rule: &UdpRule) -> bool {
        let mut waiting = self.lock_waiting();
        while let Some(datagram) = waiting.queue.pop_front() {
            match self.socket().send(&datagram) {
                Ok(n) => self.count_up(rule, n),
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    waiting.queue.push_front(datagram);
                    drop(waiting);
                    self.warn_refused(rule);
                    return false;
                }
                Err(e) => log::debug!("{}: datagram not sent: {e}", self.client),
            }
        }
        self.ready.store(true, Ordering::Release);
        true
    }

    fn warn_refused(&self, rule: &UdpRule) {
        let (index, addr) = *self.lock_target();
        rule.stats.target_tried(index, false);
        let at = addr.map_or_else(String::new, |a| format!(" at {a}"));
        log::warn!(
            "rule {}: target {} refused (port unreachable{at}); trying the next target",
            rule.rule,
            rule.rule.targets[index]
        );
    }

    /// The target refused (`datagram`, if any, was not sent): it waits, and
    /// a pooled thread reaches the next target. Only the caller that takes
    /// the session out of `ready` starts that; others' datagrams just wait.
    pub(super) fn refused(self: &Arc<Self>, rule: &Arc<UdpRule>, datagram: Option<&[u8]>) {
        let mut waiting = self.lock_waiting();
        if let Some(datagram) = datagram {
            waiting.keep(datagram);
        }
        if !self.ready.swap(false, Ordering::AcqRel) {
            return;
        }
        drop(waiting);
        self.warn_refused(rule);
        let next = self.lock_target().0 + 1;
        let (session, moving) = (Arc::clone(self), Arc::clone(rule));
        let job = move || {
            if !session.fail_over(&moving, next) {
                moving.stats.no_target();
                log::warn!(
                    "rule {}: no target answered; ending the session of {}",
                    moving.rule,
                    session.client
                );
                session.dead.store(true, Ordering::Release);
            }
        };
        if let Err(e) = Pool::global().run(job) {
            log::warn!(
                "rule {}: {}: cannot start a thread to fail over: {e}",
                rule.rule,
                self.client
            );
            self.dead.store(true, Ordering::Release);
        }
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
