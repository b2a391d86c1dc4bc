//! What multicast DNS needs of the link that std does not wrap: the
//! interfaces that are up and can multicast, with the address families
//! each has (getifaddrs), sending IPv4 multicast out of one of them
//! (IP_MULTICAST_IF), the IPv6 hop limit (IPV6_MULTICAST_HOPS), and
//! waiting for the first of a few sockets to have a datagram (poll).

use std::io;
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::os::raw::{c_char, c_int, c_short, c_uint, c_ulong, c_void};
use std::time::Duration;

use super::socket::set_option;
use super::wire::{AF_INET, AF_INET6, SOL_IP, SOL_IPV6};

const IP_MULTICAST_IF: c_int = 32;
const IPV6_MULTICAST_HOPS: c_int = 18;
const IFF_UP: c_uint = 0x1;
const IFF_LOOPBACK: c_uint = 0x8;
const IFF_MULTICAST: c_uint = 0x1000;
const POLLIN: c_short = 1;

/// `struct ifaddrs`, the same in glibc and musl.
#[repr(C)]
struct IfAddrs {
    next: *mut IfAddrs,
    name: *const c_char,
    flags: c_uint,
    addr: *const u16,
    netmask: *const c_void,
    broadcast: *const c_void,
    data: *const c_void,
}

/// `struct ip_mreqn`: the interface picked by index alone.
#[repr(C)]
struct MreqN {
    multiaddr: [u8; 4],
    address: [u8; 4],
    ifindex: c_int,
}

#[repr(C)]
struct PollFd {
    fd: c_int,
    events: c_short,
    revents: c_short,
}

extern "C" {
    fn getifaddrs(list: *mut *mut IfAddrs) -> c_int;
    fn freeifaddrs(list: *mut IfAddrs);
    fn if_nametoindex(name: *const c_char) -> c_uint;
    fn poll(fds: *mut PollFd, count: c_ulong, timeout_ms: c_int) -> c_int;
}

/// An interface that is up, can multicast and is not loopback: its index
/// and whether it has an IPv4 and an IPv6 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub v4: bool,
    pub v6: bool,
}

/// The interfaces multicast DNS can ask on, each once.
pub fn multicast_links() -> io::Result<Vec<Link>> {
    let mut list = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a linked list it allocated.
    super::check(unsafe { getifaddrs(&mut list) })?;
    let mut links: Vec<Link> = Vec::new();
    let mut at = list;
    while !at.is_null() {
        // SAFETY: `at` is a node of the list getifaddrs made, not yet freed.
        let node = unsafe { &*at };
        at = node.next;
        if node.flags & (IFF_UP | IFF_MULTICAST | IFF_LOOPBACK) != IFF_UP | IFF_MULTICAST
            || node.addr.is_null()
        {
            continue;
        }
        // SAFETY: a non-null ifa_addr points at a sockaddr, which starts
        // with its family; ifa_name is a NUL-terminated string.
        let (family, index) = unsafe { (*node.addr, if_nametoindex(node.name)) };
        if index == 0 || !(family == AF_INET || family == AF_INET6) {
            continue;
        }
        let link = match links.iter_mut().find(|l| l.index == index) {
            Some(link) => link,
            None => {
                links.push(Link {
                    index,
                    v4: false,
                    v6: false,
                });
                links.last_mut().expect("just pushed")
            }
        };
        link.v4 |= family == AF_INET;
        link.v6 |= family == AF_INET6;
    }
    // SAFETY: the list getifaddrs made, freed once; no node is used after.
    unsafe { freeifaddrs(list) };
    Ok(links)
}

/// Sends the socket's IPv4 multicast out of the interface `index`.
pub fn multicast_out_of(socket: &UdpSocket, index: u32) -> io::Result<()> {
    let mreqn = MreqN {
        multiaddr: [0; 4],
        address: [0; 4],
        ifindex: index as c_int,
    };
    set_option(socket, SOL_IP, IP_MULTICAST_IF, &mreqn)
}

/// The hop limit of the socket's IPv6 multicast (mDNS asks for 255).
pub fn set_multicast_hops_v6(socket: &UdpSocket, hops: c_int) -> io::Result<()> {
    set_option(socket, SOL_IPV6, IPV6_MULTICAST_HOPS, &hops)
}

/// Waits at most `timeout` for one of `sockets` to have a datagram: its
/// position, or None when the time ran out.
pub fn first_readable(sockets: &[&UdpSocket], timeout: Duration) -> io::Result<Option<usize>> {
    let mut fds: Vec<PollFd> = sockets
        .iter()
        .map(|s| PollFd {
            fd: s.as_raw_fd(),
            events: POLLIN,
            revents: 0,
        })
        .collect();
    let ms = timeout.as_millis().clamp(1, i32::MAX as u128) as c_int;
    // SAFETY: `fds` is a live array of that many pollfd, which poll fills.
    let ready = unsafe { poll(fds.as_mut_ptr(), fds.len() as c_ulong, ms) };
    match ready {
        n if n < 0 => {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                Ok(None)
            } else {
                Err(e)
            }
        }
        0 => Ok(None),
        _ => Ok(fds.iter().position(|f| f.revents != 0)),
    }
}
