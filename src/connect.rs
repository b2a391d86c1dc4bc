//! Reaching a rule's targets: each target's name is resolved at the moment
//! of connecting (so a service that moves is followed), every address it
//! resolves to is tried in turn, then the next target of the failover list.
//! The relay uses it for every accepted client, --healthcheck for its probes.
//! What happens to the connection afterwards is the relay's business.

use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::rule::{Rule, Target};

/// Tries every target of the rule in order, warning for each that fails;
/// the first connection made and the address it reached, or None.
pub fn connect(rule: &Rule, timeout: Duration) -> Option<(TcpStream, SocketAddr)> {
    for target in &rule.targets {
        match connect_target(target, timeout) {
            Ok(found) => return Some(found),
            Err(e) => log::warn!("rule {rule}: target {target} failed: {e}"),
        }
    }
    None
}

/// Resolves the target now and tries each of its addresses in turn, each
/// for at most `timeout`; the last address's error if none answers.
pub fn connect_target(target: &Target, timeout: Duration) -> io::Result<(TcpStream, SocketAddr)> {
    let mut last = None;
    for addr in resolve(target)? {
        log::trace!("trying {target} at {addr}");
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(stream) => return Ok((stream, addr)),
            Err(e) => {
                log::debug!("{target} at {addr}: {e}");
                last = Some(e);
            }
        }
    }
    Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address")))
}

/// Every address the target's host resolves to now, in the resolver's order.
pub fn resolve(target: &Target) -> io::Result<impl Iterator<Item = SocketAddr>> {
    (target.host.as_str(), target.port).to_socket_addrs()
}
