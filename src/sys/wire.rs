//! The byte layouts of UDP's ancillary data: sockaddr_in and sockaddr_in6,
//! and the IP_PKTINFO / IPV6_PKTINFO control messages that tell where a
//! datagram arrived and set where its reply leaves from. Pure byte work
//! over fixed buffers; datagram.rs makes the system calls.

use std::mem::size_of;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::os::raw::c_int;

pub(super) const SOL_IP: c_int = 0;
pub(super) const IP_PKTINFO: c_int = 8;
pub(super) const SOL_IPV6: c_int = 41;
pub(super) const IPV6_RECVPKTINFO: c_int = 49;
const IPV6_PKTINFO: c_int = 50;
pub(super) const AF_INET: u16 = 2;
pub(super) const AF_INET6: u16 = 10;

/// `struct cmsghdr`: cmsg_len is a size_t (musl: socklen_t and padding).
#[repr(C)]
struct CmsgHdr {
    len: usize,
    level: c_int,
    kind: c_int,
}

/// Room for a sockaddr_in6 (28 bytes) and more, aligned for any sockaddr.
pub(super) type SockAddrBuf = [u64; 16];

/// Room for one pktinfo control message, 8-byte aligned on every target,
/// with room to spare: CMSG_SPACE(in6_pktinfo) is 32 bytes on 32-bit
/// targets and 40 on 64-bit ones.
pub(super) type ControlBuf = [u64; 8];

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

/// The bytes of one of this file's buffers (arrays of u64 only: no
/// padding, and any byte pattern is a valid value).
fn bytes_of<const N: usize>(buf: &[u64; N]) -> &[u8] {
    // SAFETY: a u64 array viewed as its bytes, for its own size.
    unsafe { std::slice::from_raw_parts(buf.as_ptr().cast(), size_of::<[u64; N]>()) }
}

fn bytes_of_mut<const N: usize>(buf: &mut [u64; N]) -> &mut [u8] {
    // SAFETY: as in bytes_of; any byte pattern is a valid u64 array.
    unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr().cast(), size_of::<[u64; N]>()) }
}

/// A sockaddr_in or sockaddr_in6 (family in host order, port and address in
/// network order) as a SocketAddr.
pub(super) fn decode_addr(name: &SockAddrBuf) -> Option<SocketAddr> {
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

pub(super) fn encode_addr(addr: SocketAddr, name: &mut SockAddrBuf) -> u32 {
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
pub(super) fn decode_arrival(control: &ControlBuf, len: usize) -> Option<Arrival> {
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
            // spec_dst is the local address to answer from (for a datagram
            // sent to a broadcast address, the interface's, not the broadcast).
            (SOL_IP, IP_PKTINFO) if data.len() >= 12 => {
                let ifindex = u32::from_ne_bytes(data[0..4].try_into().ok()?);
                let local = IpAddr::from(<[u8; 4]>::try_from(&data[4..8]).ok()?);
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
pub(super) fn encode_arrival(from: Arrival, control: &mut ControlBuf) -> usize {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_addresses_round_trip() {
        for text in ["127.0.0.2:5353", "[::1]:53", "[fe80::1%7]:123", "0.0.0.0:1"] {
            let addr: SocketAddr = text.parse().unwrap();
            let mut buf: SockAddrBuf = [0; 16];
            let len = encode_addr(addr, &mut buf);
            assert_eq!(len, if addr.is_ipv4() { 16 } else { 28 });
            assert_eq!(decode_addr(&buf), Some(addr), "{text}");
        }
    }

    #[test]
    fn an_unknown_family_is_no_address() {
        let mut buf: SockAddrBuf = [0; 16];
        bytes_of_mut(&mut buf)[0] = 1; // AF_UNIX
        assert_eq!(decode_addr(&buf), None);
    }

    #[test]
    fn pktinfo_messages_round_trip() {
        for (local, ifindex, want_ifindex) in [
            ("127.0.0.2", 1, 0),   // IPv4: the route picks the interface
            ("2001:db8::7", 3, 0), // IPv6, global: likewise
            ("fe80::1", 3, 3),     // IPv6 link-local: its interface kept
        ] {
            let from = Arrival {
                local: local.parse().unwrap(),
                ifindex,
            };
            let mut control: ControlBuf = [0; 8];
            let len = encode_arrival(from, &mut control);
            let got = decode_arrival(&control, len).expect("a pktinfo message");
            assert_eq!(got.local, from.local, "{local}");
            if from.local.is_ipv6() {
                assert_eq!(got.ifindex, want_ifindex, "{local}");
            }
        }
    }

    #[test]
    fn truncated_or_foreign_control_data_is_no_arrival() {
        let from = Arrival {
            local: "10.0.0.1".parse().unwrap(),
            ifindex: 0,
        };
        let mut control: ControlBuf = [0; 8];
        let len = encode_arrival(from, &mut control);
        assert_eq!(decode_arrival(&control, len - 5), None);
        assert_eq!(decode_arrival(&control, 0), None);
        // Another message type at that level is skipped.
        bytes_of_mut(&mut control)[size_of::<usize>() + 4] = 99;
        assert_eq!(decode_arrival(&control, len), None);
    }
}
