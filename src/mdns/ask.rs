//! Asking the link once (RFC 6762 5.1, a one-shot query): the query goes
//! from an ephemeral port to 224.0.0.251:5353 out of every interface that
//! is up and can multicast and has IPv4, and to [ff02::fb]:5353 out of
//! every one with IPv6; a responder answers by unicast to that port. The
//! first answer for the name wins. No answer within 1 s: asked again, then
//! after another 1 s once more, then 2 s; then the name has no answer.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::message::{self, Answer};
use crate::sys::{self, Link};

const PORT: u16 = 5353;
const GROUP_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 251);
const GROUP_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0xfb);
/// How long each query waits for its answer before the next is sent.
const WAITS_MS: [u64; 3] = [1000, 1000, 2000];
/// After an answer with one family only, how long the other may take: a
/// responder answers the IPv4 query and the IPv6 one apart, each with the
/// records it has on that protocol (avahi: its own A on IPv4 only).
const GRACE: Duration = Duration::from_millis(50);
/// A packet bigger than this is no answer of ours (9000: jumbo frames).
const MAX_PACKET: usize = 9000;

/// The addresses the link answered for `name` (lowercase, no trailing
/// dot), port 0, IPv4 first, an IPv6 link-local one with the scope it came
/// in on, and their TTL; "no mDNS answer for NAME" after the last wait.
pub fn ask(name: &str) -> io::Result<(Vec<SocketAddr>, Duration)> {
    let began = Instant::now();
    let id = fresh_id();
    let query = message::query(id, name)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{name}: {e}")))?;
    let links = sys::multicast_links()?;
    let v4 = open(links.iter().any(|l| l.v4), "0.0.0.0:0", |s| {
        s.set_multicast_ttl_v4(255)
    });
    let v6 = open(links.iter().any(|l| l.v6), "[::]:0", |s| {
        sys::set_multicast_hops_v6(s, 255)
    });
    let sockets: Vec<&UdpSocket> = v4.iter().chain(v6.iter()).collect();
    if sockets.is_empty() {
        // Nothing could carry the question: say so now, not after 4 s.
        let e = format!("no mDNS answer for {name}: no interface here can multicast");
        return Err(io::Error::new(io::ErrorKind::NotFound, e));
    }
    let mut buf = vec![0u8; MAX_PACKET];
    let mut heard = Heard::default();
    for wait in WAITS_MS {
        send(&links, v4.as_ref(), v6.as_ref(), &query);
        let mut deadline = Instant::now() + Duration::from_millis(wait);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let Some((len, from)) = receive(&sockets, left, &mut buf)? else {
                continue;
            };
            let Some(answer) = message::answer(&buf[..len], id, name) else {
                continue;
            };
            log::debug!(
                "{name}: {from} answered {:?} after {:?}",
                answer.addrs,
                began.elapsed()
            );
            heard.add(answer, from);
            if heard.has_both() || sockets.len() == 1 {
                break;
            }
            deadline = deadline.min(Instant::now() + GRACE);
        }
        if let (false, Some(ttl)) = (heard.addrs.is_empty(), heard.ttl) {
            return Ok((heard.addrs, Duration::from_secs(ttl.into())));
        }
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        format!("no mDNS answer for {name}"),
    ))
}

/// The answers heard for one question so far: their addresses, each once,
/// and the least TTL.
#[derive(Default)]
struct Heard {
    addrs: Vec<SocketAddr>,
    ttl: Option<u32>,
}

impl Heard {
    /// Adds an answer's addresses, each once, IPv4 before IPv6 (a
    /// container often has no IPv6 route).
    fn add(&mut self, answer: Answer, from: SocketAddr) {
        for addr in answer.addrs.iter().filter_map(|&ip| with_scope(ip, from)) {
            if !self.addrs.contains(&addr) {
                let v6 = self.addrs.iter().position(|a| a.is_ipv6());
                let at = v6.filter(|_| addr.is_ipv4()).unwrap_or(self.addrs.len());
                self.addrs.insert(at, addr);
            }
        }
        self.ttl = Some(self.ttl.map_or(answer.ttl, |t| t.min(answer.ttl)));
    }

    fn has_both(&self) -> bool {
        self.addrs.iter().any(|a| a.is_ipv4()) && self.addrs.iter().any(|a| a.is_ipv6())
    }
}

/// The next datagram from port 5353 on one of `sockets` within `left`:
/// its length (in `buf`) and sender; None when the time ran out first.
fn receive(
    sockets: &[&UdpSocket],
    left: Duration,
    buf: &mut [u8],
) -> io::Result<Option<(usize, SocketAddr)>> {
    let Some(ready) = sys::first_readable(sockets, left)? else {
        return Ok(None);
    };
    Ok(match sockets[ready].recv_from(buf) {
        Ok((len, from)) if from.port() == PORT => Some((len, from)),
        _ => None,
    })
}

/// A socket of one family when some interface has it, with its multicast
/// limit set; None when no interface has the family, or the socket cannot
/// be made (IPv6 disabled, say): the other family may still ask.
fn open(
    wanted: bool,
    local: &str,
    limit: impl Fn(&UdpSocket) -> io::Result<()>,
) -> Option<UdpSocket> {
    if !wanted {
        return None;
    }
    let socket = UdpSocket::bind(local).ok()?;
    limit(&socket).ok().map(|()| socket)
}

/// The query out of every interface; an interface that refuses (gone, or
/// its IPv6 address not yet ready) is skipped.
fn send(links: &[Link], v4: Option<&UdpSocket>, v6: Option<&UdpSocket>, query: &[u8]) {
    for link in links {
        let by_v4 = v4.filter(|_| link.v4).map(|s| {
            sys::multicast_out_of(s, link.index)
                .and_then(|()| s.send_to(query, SocketAddrV4::new(GROUP_V4, PORT)))
        });
        let by_v6 = v6
            .filter(|_| link.v6)
            .map(|s| s.send_to(query, SocketAddrV6::new(GROUP_V6, PORT, 0, link.index)));
        for e in [by_v4, by_v6].into_iter().flatten().filter_map(Result::err) {
            log::debug!("mDNS query out of interface {}: {e}", link.index);
        }
    }
}

/// An answered address, port 0; an IPv6 link-local one takes the scope of
/// the interface its answer came in on, and is dropped when the answer
/// came over IPv4 (no scope to reach it by).
fn with_scope(ip: IpAddr, from: SocketAddr) -> Option<SocketAddr> {
    match (ip, from) {
        (IpAddr::V6(v6), from) if v6.segments()[0] & 0xffc0 == 0xfe80 => match from {
            SocketAddr::V6(f) => Some(SocketAddr::V6(SocketAddrV6::new(v6, 0, 0, f.scope_id()))),
            SocketAddr::V4(_) => None,
        },
        _ => Some(SocketAddr::new(ip, 0)),
    }
}

/// A query ID no other asker on the link is likely to pick at the same
/// moment: the clock's nanoseconds, the process and a counter mixed.
fn fresh_id() -> u16 {
    static COUNT: AtomicU16 = AtomicU16::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let count = u32::from(COUNT.fetch_add(1, Ordering::Relaxed));
    let mixed = nanos ^ std::process::id().rotate_left(16) ^ count.wrapping_mul(0x9e37);
    ((mixed ^ (mixed >> 16)) as u16) | 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(addrs: &[&str]) -> Answer {
        let addrs = addrs.iter().map(|a| a.parse().unwrap()).collect();
        Answer { addrs, ttl: 10 }
    }

    #[test]
    fn a_link_local_address_takes_the_scope_it_came_in_on_or_is_dropped() {
        let over_v6: SocketAddr = "[fe80::9%3]:5353".parse().unwrap();
        let over_v4: SocketAddr = "192.0.2.1:5353".parse().unwrap();
        let link_local: IpAddr = "fe80::1".parse().unwrap();
        let scoped = with_scope(link_local, over_v6).unwrap();
        assert_eq!(scoped.to_string(), "[fe80::1%3]:0");
        assert_eq!(with_scope(link_local, over_v4), None);
        let global = with_scope("2001:db8::1".parse().unwrap(), over_v6).unwrap();
        assert_eq!(global.to_string(), "[2001:db8::1]:0");
    }

    #[test]
    fn answers_heard_are_merged_ipv4_first_each_once_with_the_least_ttl() {
        let from: SocketAddr = "192.0.2.1:5353".parse().unwrap();
        let mut heard = Heard::default();
        heard.add(answer(&["2001:db8::1", "192.0.2.1"]), from);
        assert!(heard.has_both());
        let mut later = answer(&["192.0.2.1", "192.0.2.7", "fe80::1"]);
        later.ttl = 4;
        heard.add(later, from);
        let addrs: Vec<String> = heard.addrs.iter().map(|a| a.to_string()).collect();
        assert_eq!(addrs, ["192.0.2.1:0", "192.0.2.7:0", "[2001:db8::1]:0"]);
        assert_eq!(heard.ttl, Some(4));
    }

    #[test]
    fn query_ids_change_from_one_question_to_the_next() {
        let mut ids: Vec<u16> = (0..8).map(|_| fresh_id()).collect();
        ids.sort_unstable();
        ids.dedup();
        // 16 bits mixed from the clock and a counter: a repeat is rare.
        assert!(ids.len() >= 7, "{ids:?}");
    }
}
