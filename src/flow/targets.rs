//! The one walk over a rule's failover list, for TCP connections, UDP
//! sessions and --healthcheck alike: each target in order, the first that
//! answers wins, each that fails is reported. How a target is tried
//! (a stream connect, a UDP socket's connect, a probe) is the caller's.
//! Names are resolved at the moment of trying, so a service that moves is
//! followed.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};

use crate::config::rule::Target;

/// Tries `targets` from index `first` on with `attempt`: the first success
/// and its index, or None. `failed` is told of each target that failed,
/// with its index.
pub fn first_answer<T>(
    targets: &[Target],
    first: usize,
    mut attempt: impl FnMut(&Target) -> io::Result<T>,
    mut failed: impl FnMut(usize, &Target, io::Error),
) -> Option<(usize, T)> {
    for (index, target) in targets.iter().enumerate().skip(first) {
        match attempt(target) {
            Ok(found) => return Some((index, found)),
            Err(e) => failed(index, target, e),
        }
    }
    None
}

/// Every address a network target resolves to now, in the resolver's
/// order; an error for a unix socket, which has no network address.
pub fn resolve(target: &Target) -> io::Result<impl Iterator<Item = SocketAddr>> {
    match target {
        Target::Net { host, port } => (host.as_str(), *port).to_socket_addrs(),
        Target::Unix(path) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{path} has no network address"),
        )),
    }
}

/// The first address a network target resolves to now.
pub fn resolve_first(target: &Target) -> io::Result<SocketAddr> {
    let addr = resolve(target)?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"))?;
    log::trace!("{target} at {addr}");
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets(ports: &[u16]) -> Vec<Target> {
        let net = |port| Target::Net {
            host: "127.0.0.1".into(),
            port,
        };
        ports.iter().copied().map(net).collect()
    }

    fn port(target: &Target) -> u16 {
        match target {
            Target::Net { port, .. } => *port,
            Target::Unix(_) => unreachable!("no unix targets here"),
        }
    }

    #[test]
    fn the_first_that_answers_wins_and_each_failure_is_told() {
        let list = targets(&[1, 2, 3, 4]);
        let mut failed = Vec::new();
        let found = first_answer(
            &list,
            0,
            |t| match port(t) {
                3 | 4 => Ok(port(t) * 10),
                _ => Err(io::ErrorKind::ConnectionRefused.into()),
            },
            |index, t, _| failed.push((index, port(t))),
        );
        assert_eq!(found, Some((2, 30)));
        assert_eq!(failed, [(0, 1), (1, 2)]);
    }

    #[test]
    fn the_walk_starts_where_asked_and_may_find_nothing() {
        let list = targets(&[1, 2]);
        let mut tried = Vec::new();
        let found: Option<(usize, ())> = first_answer(
            &list,
            1,
            |t| {
                tried.push(port(t));
                Err(io::ErrorKind::ConnectionRefused.into())
            },
            |_, _, _| {},
        );
        assert_eq!(found, None);
        assert_eq!(tried, [2]);
    }

    #[test]
    fn addresses_resolve_without_a_resolver() {
        let addr = resolve_first(&targets(&[6379])[0]).unwrap();
        assert_eq!(addr, "127.0.0.1:6379".parse().unwrap());
    }
}
