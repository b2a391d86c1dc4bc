//! What every session of a UDP rule shares with its receive thread: the
//! rule with its counters and targets, the listening socket (the client's
//! datagrams arrive there and the replies leave through it) and
//! --udp-timeout; and binding that socket.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use crate::config::rule::Rule;
use crate::error::Error;
use crate::flow::counters::Counters;
use crate::flow::targets::Targets;
use crate::sys;

/// The receive buffer asked for the listening socket, which every client
/// of the rule shares: a burst of a thousand small datagrams waits here
/// instead of being dropped (the kernel's default, 208 KiB, holds about 160).
const LISTEN_BUFFER: i32 = 4 << 20;

/// A UDP rule being served.
pub struct UdpRule {
    /// The rule, its counters, its targets and their health.
    pub targets: Arc<Targets>,
    /// The listening socket; replies leave through it too.
    pub socket: UdpSocket,
    /// --udp-timeout
    pub timeout: Duration,
}

impl UdpRule {
    /// The rule forwarded.
    pub fn rule(&self) -> &Rule {
        self.targets.rule()
    }

    /// The rule's counters.
    pub fn counters(&self) -> &Counters {
        self.targets.counters()
    }
}

/// Binds a UDP rule's listen address `addr`, asking for each datagram's arrival
/// address when it is a wildcard.
pub fn bind(rule: &Rule, addr: SocketAddr) -> Result<UdpSocket, Error> {
    let bind_error = |source| Error::Bind {
        listen: format!("{}/udp", rule.listen),
        source,
    };
    let socket = UdpSocket::bind(addr).map_err(bind_error)?;
    adopt(rule, socket)
}

/// Readies a UDP rule's bound socket (bound here, or handed over): a big
/// receive buffer, and each datagram's arrival address on a wildcard.
pub fn adopt(rule: &Rule, socket: UdpSocket) -> Result<UdpSocket, Error> {
    let bind_error = |source| Error::Bind {
        listen: format!("{}/udp", rule.listen),
        source,
    };
    let addr = socket.local_addr().map_err(bind_error)?;
    if let Err(e) = sys::set_receive_buffer(&socket, LISTEN_BUFFER) {
        log::debug!("{addr}/udp: cannot raise the receive buffer: {e}");
    }
    if addr.ip().is_unspecified() {
        sys::want_arrival(&socket, addr.is_ipv6()).map_err(bind_error)?;
    }
    Ok(socket)
}
