//! Reaching a stream rule's targets: the rule's walk (flow/targets.rs)
//! with a stream connect for each target, every address a name resolves
//! to tried in turn (from the rotation the walk gives), each within
//! --connect-timeout; a unix target by its path, within the same timeout.
//! The relay uses it for every admitted client, the prober for its probes
//! (with --send-proxy, a probe sends the health-check header a load
//! balancer would), --healthcheck for its own.

use std::io;
use std::net::TcpStream;
use std::time::Duration;

use super::endpoint::{Peer, Stream};
use super::header;
use crate::config::rule::Target;
use crate::config::SendProxy;
use crate::flow::resolve::{self, resolve, Rotation};
use crate::flow::targets::{Probe, Targets};
use crate::sys;

/// Walks the rule's targets for a new client: the first stream made and
/// whom it reached, or None when no target answered.
pub fn connect(targets: &Targets, timeout: Duration) -> Option<(Stream, Peer)> {
    let walked = targets.walk(targets.start(), &mut 0, |target, rotation| {
        connect_target(target, timeout, rotation)
    });
    walked.map(|(_, reached)| reached)
}

/// Resolves the target now and tries each of its addresses in turn (from
/// the `rotation`-th on, with round-robin), each for at most `timeout`; the last address's
/// error if none answers. A unix target is its path, tried within
/// `timeout` too (a full listen queue waits).
pub fn connect_target(
    target: &Target,
    timeout: Duration,
    rotation: Rotation,
) -> io::Result<(Stream, Peer)> {
    if let Target::Unix(path) = target {
        log::trace!("trying {target}");
        let stream = sys::connect_unix(path.as_str(), timeout)?;
        return Ok((Stream::Unix(stream), Peer::UnixPath(path.as_str().into())));
    }
    let mut last = None;
    for addr in resolve(target, rotation)? {
        log::trace!("trying {target} at {addr}");
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(stream) => return Ok((Stream::Tcp(stream), Peer::Tcp(addr))),
            Err(e) => {
                log::debug!("{target} at {addr}: {e}");
                last = Some(e);
            }
        }
    }
    resolve::unreachable(target);
    Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address")))
}

/// The prober's try of a down target: a connect within `timeout`, with
/// --send-proxy the header of a health check, then closed.
pub fn probe(timeout: Duration, send_proxy: Option<SendProxy>) -> Probe {
    Box::new(move |target, rotation| {
        let (stream, _) = connect_target(target, timeout, rotation)?;
        match send_proxy {
            Some(version) => header::send_health_check(&stream, version),
            None => Ok(()),
        }
    })
}
