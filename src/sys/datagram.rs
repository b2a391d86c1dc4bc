//! UDP datagrams with the address they were sent to (IP_PKTINFO,
//! IPV6_PKTINFO), so that a reply on a wildcard listener leaves from the
//! address its client wrote to. std has no API for ancillary data.

use std::io;
use std::mem::size_of;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::raw::{c_int, c_void};

use super::check;
use super::socket::setsockopt;

const SOL_IP: c_int = 0;
const IP_PKTINFO: c_int = 8;
const SOL_IPV6: c_int = 41;
const IPV6_RECVPKTINFO: c_int = 49;
const IPV6_PKTINFO: c_int = 50;
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;

extern "C" {
    fn recvmsg(fd: c_int, msg: *mut MsgHdr, flags: c_int) -> isize;
    fn sendmsg(fd: c_int, msg: *const MsgHdr, flags: c_int) -> isize;
}

#[repr(C)]
struct IoVec {
    base: *mut c_void,
    len: usize,
}

/// `struct msghdr`. glibc and the kernel use size_t for msg_iovlen and
/// msg_controllen; musl uses an int and padding there, which a zeroed
/// usize matches on little-endian targets.
#[repr(C)]
struct MsgHdr {
    name: *mut c_void,
    namelen: u32,
    iov: *mut IoVec,
    iovlen: usize,
    control: *mut c_void,
    controllen: usize,
    flags: c_int,
}

/// `struct cmsghdr`: cmsg_len is a size_t (musl: socklen_t and padding).
#[repr(C)]
struct CmsgHdr {
    len: usize,
    level: c_int,
    kind: c_int,
}

/// Room for a sockaddr_in6 (28 bytes) and more, aligned for any sockaddr.
type SockAddrBuf = [u64; 16];

/// Room for one pktinfo control message, aligned as cmsghdr wants.
type ControlBuf = [usize; 8];

const fn cmsg_align(len: usize) -> usize {
    (len + size_of::<usize>() - 1) & !(size_of::<usize>() - 1)
}

/// Where a UDP datagram arrived: the local address its client wrote to, and
/// the interface (needed to answer from an IPv6 link-local address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    pub local: IpAddr,
    pub ifindex: u32,
}

/// Asks the kernel to tell, with each datagram this socket receives, the
/// address it was sent to (for `recv_with_arrival`).
pub fn want_arrival(socket: &UdpSocket, ipv6: bool) -> io::Result<()> {
    let on: c_int = 1;
    let (level, name) = match ipv6 {
        true => (SOL_IPV6, IPV6_RECVPKTINFO),
        false => (SOL_IP, IP_PKTINFO),
    };
    // SAFETY: the fd is open for the borrow; the value is a c_int of that size.
    let rc = unsafe {
        setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&on as *const c_int).cast(),
            size_of::<c_int>() as u32,
        )
    };
    check(rc)
}

/// Receives one datagram into `buf`: its length, its sender, and where it
/// arrived (if `want_arrival` was asked for this socket).
pub fn recv_with_arrival(
    socket: &UdpSocket,
    buf: &mut [u8],
) -> io::Result<(usize, SocketAddr, Option<Arrival>)> {
    let mut name: SockAddrBuf = [0; 16];
    let mut control: ControlBuf = [0; 8];
    let mut iov = IoVec {
        base: buf.as_mut_ptr().cast(),
        len: buf.len(),
    };
    let mut msg = MsgHdr {
        name: name.as_mut_ptr().cast(),
        namelen: size_of::<SockAddrBuf>() as u32,
        iov: &mut iov,
        iovlen: 1,
        control: control.as_mut_ptr().cast(),
        controllen: size_of::<ControlBuf>(),
        flags: 0,
    };
    // SAFETY: every pointer in `msg` points at a live buffer of the length
    // given with it, for the duration of the call.
    let n = unsafe { recvmsg(socket.as_raw_fd(), &mut msg, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let from = decode_addr(&name)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "sender of an unknown family"))?;
    let control_len = msg.controllen.min(size_of::<ControlBuf>());
    Ok((n as usize, from, decode_arrival(&control, control_len)))
}

/// Sends one datagram to `to`, from the address in `from` when given (a
/// socket bound to a wildcard address would otherwise pick its own).
pub fn send_from(
    socket: &UdpSocket,
    buf: &[u8],
    to: SocketAddr,
    from: Option<Arrival>,
) -> io::Result<usize> {
    let Some(from) = from else {
        return socket.send_to(buf, to);
    };
    let mut name: SockAddrBuf = [0; 16];
    let namelen = encode_addr(to, &mut name);
    let mut control: ControlBuf = [0; 8];
    let controllen = encode_arrival(from, &mut control);
    let mut iov = IoVec {
        base: buf.as_ptr() as *mut c_void,
        len: buf.len(),
    };
    let msg = MsgHdr {
        name: name.as_mut_ptr().cast(),
        namelen,
        iov: &mut iov,
        iovlen: 1,
        control: control.as_mut_ptr().cast(),
        controllen,
        flags: 0,
    };
    // SAFETY: as in recv_with_arrival; sendmsg only reads the buffers.
    let n = unsafe { sendmsg(socket.as_raw_fd(), &msg, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

fn bytes_of<T>(buf: &T) -> &[u8] {
    // SAFETY: a plain integer array viewed as its bytes, for its own size.
    unsafe { std::slice::from_raw_parts((buf as *const T).cast(), size_of::<T>()) }
}

fn bytes_of_mut<T>(buf: &mut T) -> &mut [u8] {
    // SAFETY: as in bytes_of; any byte pattern is a valid integer array.
    unsafe { std::slice::from_raw_parts_mut((buf as *mut T).cast(), size_of::<T>()) }
}

/// A sockaddr_in or sockaddr_in6 (family in host order, port and address in
/// network order) as a SocketAddr.
fn decode_addr(name: &SockAddrBuf) -> Option<SocketAddr> {
    let b = bytes_of(name);
    let family = u16::from_ne_bytes([b[0], b[1]]);
    let port = u16::from_be_bytes([b[2], b[3]]);
    match family {
        AF_INET => Some(SocketAddr::from((
            <[u8; 4]>::try_from(&b[4..8]).ok()?,
            port,
        ))),
        AF_INET6 => {
            let ip = Ipv6Addr::from(<[u8; 16]>::try_from(&b[8..24]).ok()?);
            let scope = u32::from_ne_bytes(b[24..28].try_into().ok()?);
            Some(SocketAddr::V6(SocketAddrV6::new(ip, port, 0, scope)))
        }
        _ => None,
    }
}

fn encode_addr(addr: SocketAddr, name: &mut SockAddrBuf) -> u32 {
    let b = bytes_of_mut(name);
    b[2..4].copy_from_slice(&addr.port().to_be_bytes());
    match addr {
        SocketAddr::V4(v4) => {
            b[0..2].copy_from_slice(&AF_INET.to_ne_bytes());
            b[4..8].copy_from_slice(&v4.ip().octets());
            16
        }
        SocketAddr::V6(v6) => {
            b[0..2].copy_from_slice(&AF_INET6.to_ne_bytes());
            b[8..24].copy_from_slice(&v6.ip().octets());
            b[24..28].copy_from_slice(&v6.scope_id().to_ne_bytes());
            28
        }
    }
}

/// The IP_PKTINFO or IPV6_PKTINFO message among the first `len` bytes of
/// received control data.
fn decode_arrival(control: &ControlBuf, len: usize) -> Option<Arrival> {
    let b = &bytes_of(control)[..len];
    let header = size_of::<CmsgHdr>();
    let mut at = 0;
    while at + header <= len {
        let cmsg_len = usize::from_ne_bytes(b[at..at + size_of::<usize>()].try_into().ok()?);
        let level = c_int::from_ne_bytes(b[at + size_of::<usize>()..][..4].try_into().ok()?);
        let kind = c_int::from_ne_bytes(b[at + size_of::<usize>() + 4..][..4].try_into().ok()?);
        if cmsg_len < header || at + cmsg_len > len {
            return None;
        }
        let data = &b[at + cmsg_align(header)..at + cmsg_len];
        match (level, kind) {
            // struct in_pktinfo { int ifindex; in_addr spec_dst; in_addr addr; }
            (SOL_IP, IP_PKTINFO) if data.len() >= 12 => {
                let ifindex = u32::from_ne_bytes(data[0..4].try_into().ok()?);
                let local = IpAddr::from(<[u8; 4]>::try_from(&data[8..12]).ok()?);
                return Some(Arrival { local, ifindex });
            }
            // struct in6_pktinfo { in6_addr addr; unsigned ifindex; }
            (SOL_IPV6, IPV6_PKTINFO) if data.len() >= 20 => {
                let local = IpAddr::from(<[u8; 16]>::try_from(&data[0..16]).ok()?);
                let ifindex = u32::from_ne_bytes(data[16..20].try_into().ok()?);
                return Some(Arrival { local, ifindex });
            }
            _ => at += cmsg_align(cmsg_len),
        }
    }
    None
}

/// One control message that sets a reply's source address; its length.
fn encode_arrival(from: Arrival, control: &mut ControlBuf) -> usize {
    let b = bytes_of_mut(control);
    let header = cmsg_align(size_of::<CmsgHdr>());
    let (level, kind, data_len) = match from.local {
        IpAddr::V4(ip) => {
            // ifindex 0: the route decides; spec_dst is the source to use.
            b[header + 4..header + 8].copy_from_slice(&ip.octets());
            (SOL_IP, IP_PKTINFO, 12)
        }
        IpAddr::V6(ip) => {
            b[header..header + 16].copy_from_slice(&ip.octets());
            // Only a link-local source needs its interface named.
            let ifindex = if (ip.segments()[0] & 0xffc0) == 0xfe80 {
                from.ifindex
            } else {
                0
            };
            b[header + 16..header + 20].copy_from_slice(&ifindex.to_ne_bytes());
            (SOL_IPV6, IPV6_PKTINFO, 20)
        }
    };
    let len = header + data_len;
    b[..size_of::<usize>()].copy_from_slice(&len.to_ne_bytes());
    b[size_of::<usize>()..size_of::<usize>() + 4].copy_from_slice(&level.to_ne_bytes());
    b[size_of::<usize>() + 4..size_of::<usize>() + 8].copy_from_slice(&kind.to_ne_bytes());
    cmsg_align(len)
}
