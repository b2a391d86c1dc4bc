//! Names to addresses, at the moment of trying, so a service that moves is
//! followed (a `.local` name by multicast DNS, mdns/, whose answers are
//! kept for their TTL; every other by the system resolver); with
//! round-robin, from one address further along each time, over a fixed
//! order (resolvers shuffle their answers). And the plain walk over a
//! rule's targets that --healthcheck, a process of its own with no shared
//! health, uses.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};

use crate::config::rule::Target;
use crate::mdns;

/// Where a try starts among the addresses a name resolves to: None, the
/// resolver's first (failover); Some(n), n further along the addresses in
/// a fixed order (round-robin; resolvers may shuffle their answers).
pub type Rotation = Option<usize>;

/// Tries `targets` from index `first` on with `attempt`: the first success
/// and its index, or None. `failed` is told of each target that failed,
/// with its index. No health, no counters: --healthcheck's walk.
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
/// order or from the `rotation`-th on; an error for a unix socket, which
/// has no network address.
pub fn resolve(target: &Target, rotation: Rotation) -> io::Result<Vec<SocketAddr>> {
    match target {
        Target::Net { host, port } => {
            let mut addrs: Vec<SocketAddr> = if mdns::is_local(host) {
                let mut addrs = mdns::lookup(host)?;
                addrs.iter_mut().for_each(|a| a.set_port(*port));
                addrs
            } else {
                (host.as_str(), *port).to_socket_addrs()?.collect()
            };
            if let (Some(n), false) = (rotation, addrs.is_empty()) {
                in_order(&mut addrs);
                let len = addrs.len();
                addrs.rotate_left(n % len);
            }
            Ok(addrs)
        }
        Target::Unix(path) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{path} has no network address"),
        )),
    }
}

/// The first address a network target resolves to now, in the resolver's
/// order or from the `rotation`-th on.
pub fn resolve_first(target: &Target, rotation: Rotation) -> io::Result<SocketAddr> {
    let addr = resolve(target, rotation)?
        .into_iter()
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"))?;
    log::trace!("{target} at {addr}");
    Ok(addr)
}

/// Tells the mDNS cache that a connect to `target`'s kept address failed,
/// when its name is on the local link: the host may have moved.
pub fn unreachable(target: &Target) {
    if let Target::Net { host, .. } = target {
        if mdns::is_local(host) {
            mdns::forget(host);
        }
    }
}

/// Sorts a name's few addresses (insertion sort: a handful of lines where
/// the standard sort would bring kilobytes of code into the binary).
fn in_order(addrs: &mut [SocketAddr]) {
    for i in 1..addrs.len() {
        let mut j = i;
        while j > 0 && addrs[j - 1] > addrs[j] {
            addrs.swap(j - 1, j);
            j -= 1;
        }
    }
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
    fn a_rotation_starts_further_along_a_fixed_order() {
        let mut addrs: Vec<SocketAddr> = ["10.0.0.3:1", "10.0.0.1:1", "10.0.0.2:1"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        in_order(&mut addrs);
        let ports: Vec<String> = addrs.iter().map(|a| a.ip().to_string()).collect();
        assert_eq!(ports, ["10.0.0.1", "10.0.0.2", "10.0.0.3"]);
        let first = |n| resolve(&targets(&[7])[0], Some(n)).unwrap()[0];
        assert_eq!(first(0), first(1), "one address: every rotation is it");
    }

    #[test]
    fn addresses_resolve_without_a_resolver() {
        let addr = resolve_first(&targets(&[6379])[0], None).unwrap();
        assert_eq!(addr, "127.0.0.1:6379".parse().unwrap());
    }
}
