//! Reaching a stream rule's targets: the failover walk (flow/targets.rs)
//! with a stream connect for each target, every address a name resolves
//! to tried in turn, each within --connect-timeout; a unix target by its
//! path, within the same timeout. The relay uses it for every admitted
//! client, --healthcheck for its probes.

use std::io;
use std::net::TcpStream;
use std::time::Duration;

use super::endpoint::{Peer, Stream};
use crate::config::rule::{Rule, Target};
use crate::flow::counters::Counters;
use crate::flow::targets::{first_answer, resolve};
use crate::sys;

/// Tries every target of the rule in order, warning for each that fails
/// and counting each try in `counters`; the first stream made and whom it
/// reached, or None.
pub fn connect(rule: &Rule, timeout: Duration, counters: &Counters) -> Option<(Stream, Peer)> {
    let found = first_answer(
        &rule.targets,
        0,
        |target| connect_target(target, timeout),
        |index, target, e| {
            counters.target_tried(index, false);
            log::warn!("rule {rule}: target {target} failed: {e}");
        },
    );
    let (index, reached) = found?;
    counters.target_tried(index, true);
    Some(reached)
}

/// Resolves the target now and tries each of its addresses in turn, each
/// for at most `timeout`; the last address's error if none answers. A unix
/// target is its path, tried within `timeout` too (a full listen queue
/// waits).
pub fn connect_target(target: &Target, timeout: Duration) -> io::Result<(Stream, Peer)> {
    if let Target::Unix(path) = target {
        log::trace!("trying {target}");
        let stream = sys::connect_unix(path.as_str(), timeout)?;
        return Ok((Stream::Unix(stream), Peer::UnixPath(path.as_str().into())));
    }
    let mut last = None;
    for addr in resolve(target)? {
        log::trace!("trying {target} at {addr}");
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(stream) => return Ok((Stream::Tcp(stream), Peer::Tcp(addr))),
            Err(e) => {
                log::debug!("{target} at {addr}: {e}");
                last = Some(e);
            }
        }
    }
    Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address")))
}
