//! A session's way to its target: the socket, connected to the target
//! reached (made, of that target's family, for the first one), which
//! target of the rule's list that is, and the session's walk over the list
//! (flow/targets.rs: up targets first, in --balance order, each tried at
//! most once per session, failovers included), its names resolved now (on
//! the session's thread, never the receive thread).

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::{Mutex, MutexGuard, OnceLock};

use super::rule::UdpRule;
use crate::flow::resolve::{self, resolve_first};
use crate::sys;

/// The receive buffer asked for a session's socket (the target's replies
/// to one client), capped by the kernel at net.core.rmem_max.
const SESSION_BUFFER: i32 = 1 << 20;

/// A session's socket and the target it is connected to.
pub struct Upstream {
    /// Made once the first target resolves.
    socket: OnceLock<UdpSocket>,
    /// The index of the current target in the rule's list, and its address.
    target: Mutex<(usize, Option<SocketAddr>)>,
    /// Where the session's walk starts, and the targets it tried (by bit);
    /// only the one thread reaching a target at a time holds it.
    walk: Mutex<(usize, u64)>,
}

impl Upstream {
    /// The way to a target for a session whose walk starts at `start`.
    pub fn new(start: usize) -> Upstream {
        Upstream {
            socket: OnceLock::new(),
            target: Mutex::new((0, None)),
            walk: Mutex::new((start, 0)),
        }
    }

    /// Connects to the next target of the session's walk that resolves:
    /// its index, or None when none is left.
    pub fn reach(&self, udp: &UdpRule) -> Option<usize> {
        let mut walk = self.walk.lock().unwrap_or_else(|e| e.into_inner());
        let (start, tried) = &mut *walk;
        let found = udp.targets.walk(*start, tried, |target, rotation| {
            resolve_first(target, rotation).and_then(|addr| self.connect(addr))
        });
        let (index, addr) = found?;
        *self.lock_target() = (index, Some(addr));
        Some(index)
    }

    /// The target reached refused (ICMP port unreachable): counted
    /// failed, and down if it was up; a `.local` name's kept address is
    /// dropped.
    pub fn refused(&self, udp: &UdpRule) {
        let (index, addr) = self.target();
        let at = addr.map_or_else(String::new, |a| format!(" at {a}"));
        resolve::unreachable(&udp.targets.rule().targets[index]);
        udp.targets
            .failed(index, format_args!("refused (port unreachable{at})"));
    }

    /// The target reached replied, which is what shows a UDP target up
    /// again.
    pub fn answered(&self, udp: &UdpRule) {
        udp.targets.answered(self.target().0);
    }

    /// Points the socket at `addr`, making it (of `addr`'s family) for the
    /// first target.
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
            log::debug!("{addr}: cannot raise a session's receive buffer: {e}");
        }
        socket.connect(addr)?;
        // Only the session's one reaching thread sets it.
        let _ = self.socket.set(socket);
        Ok(addr)
    }

    /// The socket; only called once a target was reached.
    pub fn socket(&self) -> &UdpSocket {
        // A target is reached (and the gate opened) only after the socket is set.
        self.socket
            .get()
            .expect("a session's socket is set before it is used")
    }

    /// The index of the target reached last, and its address.
    pub fn target(&self) -> (usize, Option<SocketAddr>) {
        *self.lock_target()
    }

    /// The address reached, for log lines.
    pub fn text(&self) -> String {
        match self.lock_target().1 {
            Some(addr) => addr.to_string(),
            None => "no target".to_string(),
        }
    }

    fn lock_target(&self) -> MutexGuard<'_, (usize, Option<SocketAddr>)> {
        // A plain pair: usable even if a holder panicked.
        self.target.lock().unwrap_or_else(|e| e.into_inner())
    }
}
