//! The PROXY protocol's header, pure: bytes in, a header (or what is wrong
//! with them) out, and a header's bytes from two addresses. The layout is
//! HAProxy's proxy-protocol.txt: v1 is one text line,
//! `PROXY TCP4|TCP6 SRC DST SRCPORT DSTPORT\r\n` or `PROXY UNKNOWN...\r\n`,
//! at most 107 bytes; v2 is a 12-byte signature, a version and command
//! byte, a family and transport byte, a 16-bit length, then the addresses
//! and TLVs. Reading from a socket and the deadline are header.rs's; this
//! file knows no I/O, so it can be fuzzed alone (std only).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// v2's signature, the first 12 bytes of every v2 header.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The longest v1 line, CRLF included (proto-proxy.txt, section 2.1).
pub const V1_MAX: usize = 107;
/// The longest v2 header accepted: 16 fixed bytes and up to 1,024 of addresses
/// and TLVs (room for load balancers' ALPN, authority, unique ID, SSL, IDs).
pub const V2_MAX: usize = 16 + 1024;

/// A complete header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub version: u8,
    /// The original client and the address it connected to; None for v1
    /// UNKNOWN, v2 LOCAL (a health check) or a family with no IP address:
    /// the connection's own addresses stand then.
    pub addresses: Option<(SocketAddr, SocketAddr)>,
}

/// What a buffer holds so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// A whole header, `len` bytes long; what follows is the client's data.
    Done(Header, usize),
    /// The start of a header: more bytes are needed.
    More,
}

/// Why bytes are not a header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadHeader {
    /// They start with neither v1's "PROXY " nor v2's signature.
    Missing,
    /// Longer than the protocol (v1) or this reader (v2) allows.
    TooLong(usize),
    /// Shaped wrong, as the text says.
    Malformed(String),
}

impl fmt::Display for BadHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BadHeader::Missing => write!(f, "no PROXY header (neither v1 nor v2)"),
            BadHeader::TooLong(len) => write!(f, "a header of {len} bytes is too long"),
            BadHeader::Malformed(why) => write!(f, "malformed header: {why}"),
        }
    }
}

/// Reads a header at the start of `buf`, v1 or v2 by its signature.
pub fn parse(buf: &[u8]) -> Result<Parsed, BadHeader> {
    let (v1, v2) = (b"PROXY ", &V2_SIGNATURE[..]);
    let seen = buf.len().min(12);
    if buf.starts_with(v1) {
        return parse_v1(buf);
    }
    if buf.starts_with(v2) {
        return parse_v2(buf);
    }
    let could_be = v1.starts_with(&buf[..seen.min(v1.len())]) || v2.starts_with(&buf[..seen]);
    match could_be && buf.len() < 12 {
        true => Ok(Parsed::More),
        false => Err(BadHeader::Missing),
    }
}

fn malformed(why: impl Into<String>) -> BadHeader {
    BadHeader::Malformed(why.into())
}

fn parse_v1(buf: &[u8]) -> Result<Parsed, BadHeader> {
    let window = &buf[..buf.len().min(V1_MAX)];
    let Some(end) = window.windows(2).position(|w| w == b"\r\n") else {
        let cr = window.iter().position(|&b| b == b'\r');
        if cr.is_some_and(|at| at + 1 < window.len()) {
            return Err(malformed("v1: a CR not followed by LF"));
        }
        return match buf.len() >= V1_MAX {
            true => Err(malformed("v1: no CRLF within 107 bytes")),
            false => Ok(Parsed::More),
        };
    };
    let line = std::str::from_utf8(&buf[6..end]).map_err(|_| malformed("v1: not ASCII"))?;
    let fields: Vec<&str> = line.split(' ').collect();
    let addresses = match fields.as_slice() {
        ["UNKNOWN", ..] => None,
        [proto @ ("TCP4" | "TCP6"), src, dst, sport, dport] => {
            let v6 = *proto == "TCP6";
            let src = SocketAddr::new(v1_ip(src, v6)?, v1_port(sport)?);
            let dst = SocketAddr::new(v1_ip(dst, v6)?, v1_port(dport)?);
            Some((src, dst))
        }
        [proto, ..] if !matches!(*proto, "TCP4" | "TCP6") => {
            return Err(malformed(format!(
                "v1: protocol {proto:?}, expected TCP4, TCP6 or UNKNOWN"
            )))
        }
        _ => return Err(malformed("v1: expected PROTO SRC DST SRCPORT DSTPORT")),
    };
    Ok(Parsed::Done(
        Header {
            version: 1,
            addresses,
        },
        end + 2,
    ))
}

fn v1_ip(text: &str, v6: bool) -> Result<IpAddr, BadHeader> {
    let ip = match v6 {
        true => text.parse::<Ipv6Addr>().map(IpAddr::V6),
        false => text.parse::<Ipv4Addr>().map(IpAddr::V4),
    };
    ip.map_err(|_| malformed(format!("v1: address {text:?}")))
}

fn v1_port(text: &str) -> Result<u16, BadHeader> {
    let digits = !text.is_empty() && text.len() <= 5 && text.bytes().all(|b| b.is_ascii_digit());
    match text.parse::<u16>() {
        Ok(port) if digits => Ok(port),
        _ => Err(malformed(format!("v1: port {text:?}"))),
    }
}

fn parse_v2(buf: &[u8]) -> Result<Parsed, BadHeader> {
    if buf.len() < 16 {
        return Ok(Parsed::More);
    }
    let (ver_cmd, family) = (buf[12], buf[13]);
    let len = 16 + u16::from_be_bytes([buf[14], buf[15]]) as usize;
    if ver_cmd >> 4 != 2 {
        return Err(malformed(format!(
            "v2: version {}, expected 2",
            ver_cmd >> 4
        )));
    }
    let local = match ver_cmd & 0x0f {
        0 => true,
        1 => false,
        other => {
            return Err(malformed(format!(
                "v2: command {other}, expected LOCAL or PROXY"
            )))
        }
    };
    if len > V2_MAX {
        return Err(BadHeader::TooLong(len));
    }
    if buf.len() < len {
        return Ok(Parsed::More);
    }
    let body = &buf[16..len];
    let addresses = match (local, family) {
        (true, _) => None,
        (false, 0x11) => Some(v2_inet(body, 4)?),
        (false, 0x21) => Some(v2_inet(body, 16)?),
        (false, 0x00 | 0x31 | 0x32) => None,
        (false, other) => return Err(malformed(format!("v2: family and transport {other:#04x}"))),
    };
    Ok(Parsed::Done(
        Header {
            version: 2,
            addresses,
        },
        len,
    ))
}

/// Two addresses of `size` bytes, then two ports, network order; TLVs after
/// them are read past.
fn v2_inet(body: &[u8], size: usize) -> Result<(SocketAddr, SocketAddr), BadHeader> {
    if body.len() < 2 * size + 4 {
        return Err(malformed(format!(
            "v2: {} bytes of addresses, expected {}",
            body.len(),
            2 * size + 4
        )));
    }
    let ip = |at: usize| -> IpAddr {
        let bytes = &body[at..at + size];
        match <[u8; 4]>::try_from(bytes) {
            Ok(v4) => IpAddr::from(v4),
            Err(_) => IpAddr::from(<[u8; 16]>::try_from(bytes).unwrap_or([0; 16])),
        }
    };
    let port = |at: usize| u16::from_be_bytes([body[at], body[at + 1]]);
    let ports = 2 * size;
    Ok((
        SocketAddr::new(ip(0), port(ports)),
        SocketAddr::new(ip(size), port(ports + 2)),
    ))
}

/// Both addresses in one family: IPv4 where both can be (an IPv4 client
/// seen on `[::]` as `::ffff:a.b.c.d` is sent as TCP4), IPv6 otherwise.
fn one_family(src: SocketAddr, dst: SocketAddr) -> (SocketAddr, SocketAddr) {
    let v4 = |a: SocketAddr| match a.ip() {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(|ip| SocketAddr::new(ip.into(), a.port())),
        IpAddr::V4(_) => Some(a),
    };
    let v6 = |a: SocketAddr| match a.ip() {
        IpAddr::V4(ip) => SocketAddr::new(ip.to_ipv6_mapped().into(), a.port()),
        IpAddr::V6(_) => a,
    };
    match (v4(src), v4(dst)) {
        (Some(s), Some(d)) => (s, d),
        _ => (v6(src), v6(dst)),
    }
}

/// A v1 header: the client `src` and the address it connected to `dst`;
/// `PROXY UNKNOWN` without them.
pub fn encode_v1(addresses: Option<(SocketAddr, SocketAddr)>) -> Vec<u8> {
    let Some((src, dst)) = addresses.map(|(s, d)| one_family(s, d)) else {
        return b"PROXY UNKNOWN\r\n".to_vec();
    };
    let proto = if src.is_ipv4() { "TCP4" } else { "TCP6" };
    let (sip, dip, sp, dp) = (src.ip(), dst.ip(), src.port(), dst.port());
    format!("PROXY {proto} {sip} {dip} {sp} {dp}\r\n").into_bytes()
}

/// A v2 header likewise; a LOCAL command without addresses.
pub fn encode_v2(addresses: Option<(SocketAddr, SocketAddr)>) -> Vec<u8> {
    let mut out = V2_SIGNATURE.to_vec();
    let Some((src, dst)) = addresses.map(|(s, d)| one_family(s, d)) else {
        out.extend_from_slice(&[0x20, 0x00, 0, 0]);
        return out;
    };
    // PROXY command; TCP over IPv4 (12 bytes of addresses) or IPv6 (36).
    let (family, len) = if src.is_ipv4() {
        (0x11, 12)
    } else {
        (0x21, 36)
    };
    out.extend_from_slice(&[0x21, family, 0, len]);
    for addr in [src, dst] {
        match addr.ip() {
            IpAddr::V4(ip) => out.extend_from_slice(&ip.octets()),
            IpAddr::V6(ip) => out.extend_from_slice(&ip.octets()),
        }
    }
    out.extend_from_slice(&src.port().to_be_bytes());
    out.extend_from_slice(&dst.port().to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    fn done(buf: &[u8]) -> (Header, usize) {
        match parse(buf) {
            Ok(Parsed::Done(h, n)) => (h, n),
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(buf)),
        }
    }

    fn malformed_because(buf: &[u8]) -> String {
        match parse(buf) {
            Err(BadHeader::Malformed(why)) => why,
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(buf)),
        }
    }

    #[test]
    fn v1_tcp4_and_tcp6_with_data_after() {
        let buf = b"PROXY TCP4 203.0.113.7 10.0.0.2 5100 6379\r\nPING\r\n";
        let (h, n) = done(buf);
        assert_eq!(n, buf.len() - 6);
        assert_eq!(h.version, 1);
        assert_eq!(
            h.addresses,
            Some((addr("203.0.113.7:5100"), addr("10.0.0.2:6379")))
        );
        let (h, _) = done(b"PROXY TCP6 2001:db8::7 2001:db8::1 1 65535\r\n");
        assert_eq!(
            h.addresses,
            Some((addr("[2001:db8::7]:1"), addr("[2001:db8::1]:65535")))
        );
    }

    #[test]
    fn v1_unknown_keeps_the_connection_s_addresses() {
        assert_eq!(done(b"PROXY UNKNOWN\r\n").0.addresses, None);
        assert_eq!(
            done(b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n").0.addresses,
            None
        );
    }

    #[test]
    fn v1_every_field_is_checked() {
        for (buf, why) in [
            (
                &b"PROXY TCP5 1.2.3.4 1.2.3.5 1 2\r\n"[..],
                "protocol \"TCP5\"",
            ),
            (b"PROXY TCP4 1.2.3 1.2.3.5 1 2\r\n", "address \"1.2.3\""),
            (b"PROXY TCP4 ::1 1.2.3.5 1 2\r\n", "address \"::1\""),
            (b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n", "address \"1.2.3.4\""),
            (b"PROXY TCP4 1.2.3.4 1.2.3.5 65536 2\r\n", "port \"65536\""),
            (b"PROXY TCP4 1.2.3.4 1.2.3.5 1 +2\r\n", "port \"+2\""),
            (
                b"PROXY TCP4 1.2.3.4 1.2.3.5 1\r\n",
                "expected PROTO SRC DST",
            ),
            (
                b"PROXY TCP4 1.2.3.4  1.2.3.5 1 2\r\n",
                "expected PROTO SRC DST",
            ),
            (
                b"PROXY TCP4 1.2.3.4 1.2.3.5 1 2\rX",
                "a CR not followed by LF",
            ),
            (b"PROXY TCP4 \xff 1.2.3.5 1 2\r\n", "not ASCII"),
        ] {
            let got = malformed_because(buf);
            assert!(
                got.contains(why),
                "{:?}: {got}",
                String::from_utf8_lossy(buf)
            );
        }
    }

    #[test]
    fn v1_without_crlf_waits_then_fails_at_107_bytes() {
        assert_eq!(parse(b"PROXY TCP4 1.2.3.4"), Ok(Parsed::More));
        let mut long = b"PROXY UNKNOWN ".to_vec();
        long.resize(V1_MAX, b'x');
        assert!(malformed_because(&long).contains("no CRLF within 107 bytes"));
        long.truncate(V1_MAX - 1);
        assert_eq!(parse(&long), Ok(Parsed::More));
    }

    #[test]
    fn partial_signatures_wait_and_anything_else_is_missing() {
        for partial in [
            &b""[..],
            b"P",
            b"PROX",
            b"PROXY",
            b"\r\n\r\n",
            b"\r\n\r\n\0\r\nQUIT",
        ] {
            assert_eq!(parse(partial), Ok(Parsed::More), "{partial:?}");
        }
        for other in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"*1\r\n$4\r\nPING\r\n",
            b"proxy ",
            b"\r\n\r\nX",
        ] {
            assert_eq!(parse(other), Err(BadHeader::Missing), "{other:?}");
        }
    }

    fn v2(ver_cmd: u8, family: u8, body: &[u8]) -> Vec<u8> {
        let mut out = V2_SIGNATURE.to_vec();
        out.extend_from_slice(&[ver_cmd, family]);
        out.extend_from_slice(&(body.len() as u16).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn v2_inet_and_inet6_with_tlvs_read_past() {
        let mut body = vec![203, 0, 113, 7, 10, 0, 0, 2, 0x13, 0xec, 0x18, 0xeb];
        body.extend_from_slice(&[0x04, 0x00, 0x03, b'a', b'b', b'c']); // a NOOP TLV
        let mut buf = v2(0x21, 0x11, &body);
        buf.extend_from_slice(b"data");
        let (h, n) = done(&buf);
        assert_eq!(n, buf.len() - 4);
        assert_eq!(h.version, 2);
        assert_eq!(
            h.addresses,
            Some((addr("203.0.113.7:5100"), addr("10.0.0.2:6379")))
        );
        let six = encode_v2(Some((addr("[2001:db8::7]:1"), addr("[2001:db8::1]:2"))));
        assert_eq!(
            done(&six).0.addresses,
            Some((addr("[2001:db8::7]:1"), addr("[2001:db8::1]:2")))
        );
    }

    #[test]
    fn v2_local_unspec_and_unix_keep_the_connection_s_addresses() {
        assert_eq!(done(&v2(0x20, 0x00, &[])).0.addresses, None);
        assert_eq!(done(&v2(0x20, 0x11, &[0; 12])).0.addresses, None);
        assert_eq!(done(&v2(0x21, 0x00, &[])).0.addresses, None);
        assert_eq!(done(&v2(0x21, 0x31, &[0; 216])).0.addresses, None);
    }

    #[test]
    fn v2_every_field_is_checked() {
        assert!(malformed_because(&v2(0x11, 0x11, &[0; 12])).contains("version 1"));
        assert!(malformed_because(&v2(0x22, 0x11, &[0; 12])).contains("command 2"));
        assert!(malformed_because(&v2(0x21, 0x41, &[0; 12])).contains("family and transport 0x41"));
        assert!(malformed_because(&v2(0x21, 0x11, &[0; 11])).contains("11 bytes of addresses"));
        assert!(malformed_because(&v2(0x21, 0x21, &[0; 35])).contains("35 bytes of addresses"));
    }

    #[test]
    fn v2_waits_for_its_length_and_refuses_more_than_the_cap() {
        let buf = v2(0x21, 0x11, &[0; 12]);
        for cut in 12..buf.len() {
            assert_eq!(parse(&buf[..cut]), Ok(Parsed::More), "{cut}");
        }
        let mut huge = V2_SIGNATURE.to_vec();
        huge.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
        assert_eq!(parse(&huge), Err(BadHeader::TooLong(16 + 65535)));
        assert!(done(&v2(0x21, 0x11, &vec![0; V2_MAX - 16])).1 == V2_MAX);
        assert_eq!(
            parse(&v2(0x21, 0x11, &vec![0; V2_MAX - 15])),
            Err(BadHeader::TooLong(V2_MAX + 1))
        );
    }

    #[test]
    fn encoding_round_trips_in_both_versions() {
        let pairs = [
            (addr("203.0.113.7:5100"), addr("10.0.0.2:6379")),
            (addr("[2001:db8::7]:1"), addr("[::1]:65535")),
        ];
        for pair in pairs {
            for bytes in [encode_v1(Some(pair)), encode_v2(Some(pair))] {
                assert_eq!(done(&bytes), (done(&bytes).0, bytes.len()));
                assert_eq!(done(&bytes).0.addresses, Some(pair));
            }
        }
        assert_eq!(encode_v1(None), b"PROXY UNKNOWN\r\n");
        assert_eq!(done(&encode_v2(None)).0.addresses, None);
    }

    #[test]
    fn an_ipv4_client_on_a_dual_stack_listener_is_sent_as_tcp4() {
        let pair = (
            addr("[::ffff:203.0.113.7]:5100"),
            addr("[::ffff:10.0.0.2]:6379"),
        );
        assert_eq!(
            encode_v1(Some(pair)),
            b"PROXY TCP4 203.0.113.7 10.0.0.2 5100 6379\r\n"
        );
        assert_eq!(encode_v2(Some(pair))[13], 0x11);
        let mixed = (
            addr("[::ffff:203.0.113.7]:5100"),
            addr("[2001:db8::1]:6379"),
        );
        let line = String::from_utf8(encode_v1(Some(mixed))).unwrap();
        assert_eq!(
            line,
            "PROXY TCP6 ::ffff:203.0.113.7 2001:db8::1 5100 6379\r\n"
        );
    }
}
