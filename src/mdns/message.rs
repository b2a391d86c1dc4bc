//! Multicast DNS messages, pure: the one-shot query ambassador sends (an A
//! and an AAAA question for one name, RFC 6762 section 5.1) and the
//! addresses a response gives for that name. The byte layout is RFC 1035
//! section 4 (header, questions, records, name compression). Reading is
//! bounded: nothing is allocated from a count or length in the packet,
//! a name is at most 255 bytes, and a compression pointer must point
//! before the label it replaces, so no pointer can loop. Any packet that
//! is not a clean answer to our question is None. No socket here.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// At most this many addresses are taken from one answer.
pub const MAX_ADDRESSES: usize = 16;
/// The longest name on the wire (RFC 1035 3.1), length bytes included.
const MAX_NAME: usize = 255;
/// Compression pointers followed in one name, at most.
const MAX_JUMPS: usize = 16;
const HEADER: usize = 12;
const TYPE_A: u16 = 1;
const TYPE_AAAA: u16 = 28;
const CLASS_IN: u16 = 1;
/// mDNS's cache-flush bit shares the class field (RFC 6762 10.2).
const CLASS_MASK: u16 = 0x7fff;
const FLAG_RESPONSE: u16 = 0x8000;
/// The opcode and the response code: both must be 0 in an answer.
const OPCODE_RCODE: u16 = 0x780f;

/// The addresses a response gives for the name asked, and how long they
/// may be kept (the least TTL among them, in seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub addrs: Vec<IpAddr>,
    pub ttl: u32,
}

/// The query for `name` (any case, a trailing dot allowed) with `id`: one
/// A and one AAAA question, class IN, asking for no unicast bit (a query
/// from a port other than 5353 is answered by unicast anyway, 6.7); or
/// what keeps the name off the wire.
pub fn query(id: u16, name: &str) -> Result<Vec<u8>, &'static str> {
    let name = name.strip_suffix('.').unwrap_or(name);
    let mut packet = Vec::with_capacity(HEADER + name.len() + 12);
    for field in [id, 0, 2, 0, 0, 0] {
        packet.extend_from_slice(&field.to_be_bytes());
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err("a label is empty or over 63 bytes");
        }
        packet.push(label.len() as u8);
        packet.extend(label.bytes().map(|b| b.to_ascii_lowercase()));
    }
    packet.push(0);
    if packet.len() - HEADER > MAX_NAME {
        return Err("over 255 bytes on the wire");
    }
    // The second question names the first's name by a pointer to it.
    let pointer = 0xc000 | HEADER as u16;
    for field in [TYPE_A, CLASS_IN, pointer, TYPE_AAAA, CLASS_IN] {
        packet.extend_from_slice(&field.to_be_bytes());
    }
    Ok(packet)
}

/// The A and AAAA records for `name` (lowercase, no trailing dot) in a
/// response to the query with `id` (or with 0, which a multicast-style
/// response carries), from every section; None for anything else: a
/// query, an error, another name, a malformed packet, or records whose
/// TTL is 0 (a goodbye).
pub fn answer(packet: &[u8], id: u16, name: &str) -> Option<Answer> {
    let field = |at: usize| Some(u16::from_be_bytes([*packet.get(at)?, *packet.get(at + 1)?]));
    let flags = field(2)?;
    let from = field(0)?;
    if (from != id && from != 0) || flags & FLAG_RESPONSE == 0 || flags & OPCODE_RCODE != 0 {
        return None;
    }
    let questions = field(4)?;
    let records = [field(6)?, field(8)?, field(10)?];
    let mut at = HEADER;
    let mut scratch = [0u8; MAX_NAME];
    for _ in 0..questions {
        at = read_name(packet, at, &mut scratch)?.0 + 4;
    }
    let mut found = Answer {
        addrs: Vec::new(),
        ttl: u32::MAX,
    };
    for _ in 0..records.iter().map(|&n| usize::from(n)).sum::<usize>() {
        let (next, len) = read_name(packet, at, &mut scratch)?;
        let kind = field(next)?;
        let class = field(next + 2)? & CLASS_MASK;
        let ttl = u32::from(field(next + 4)?) << 16 | u32::from(field(next + 6)?);
        let data_len = usize::from(field(next + 8)?);
        let data = packet.get(next + 10..next + 10 + data_len)?;
        at = next + 10 + data_len;
        if class != CLASS_IN || ttl == 0 || &scratch[..len] != name.as_bytes() {
            continue;
        }
        let addr = match (kind, data.len()) {
            (TYPE_A, 4) => IpAddr::V4(Ipv4Addr::new(data[0], data[1], data[2], data[3])),
            (TYPE_AAAA, 16) => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(data).ok()?)),
            _ => continue,
        };
        if !found.addrs.contains(&addr) && found.addrs.len() < MAX_ADDRESSES {
            found.addrs.push(addr);
            found.ttl = found.ttl.min(ttl);
        }
    }
    (!found.addrs.is_empty()).then_some(found)
}

/// Reads the name at `at` into `out` as lowercase text with dots and no
/// trailing dot: the position after it in the packet and the text's
/// length. None when it runs off the packet, is too long, uses a label
/// type other than plain or pointer, or a pointer that does not point
/// strictly before the label it stands for.
fn read_name(packet: &[u8], mut at: usize, out: &mut [u8; MAX_NAME]) -> Option<(usize, usize)> {
    let mut len = 0;
    let mut after = None;
    let mut jumps = 0;
    loop {
        let head = *packet.get(at)?;
        match head {
            0 => return Some((after.unwrap_or(at + 1), len)),
            1..=63 => {
                let label = packet.get(at + 1..at + 1 + usize::from(head))?;
                let dot = usize::from(len > 0);
                if len + dot + label.len() > MAX_NAME {
                    return None;
                }
                if dot == 1 {
                    out[len] = b'.';
                }
                for (slot, b) in out[len + dot..].iter_mut().zip(label) {
                    *slot = b.to_ascii_lowercase();
                }
                len += dot + label.len();
                at += 1 + label.len();
            }
            0xc0..=0xff => {
                let target = usize::from(u16::from_be_bytes([head, *packet.get(at + 1)?]) & 0x3fff);
                jumps += 1;
                if target >= at || jumps > MAX_JUMPS {
                    return None;
                }
                after.get_or_insert(at + 2);
                at = target;
            }
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A response with `id` holding the given records: (name, type, TTL,
    /// data), names written out in full.
    fn response(id: u16, records: &[(&str, u16, u32, &[u8])]) -> Vec<u8> {
        let mut p = Vec::new();
        for field in [id, 0x8400, 0, records.len() as u16, 0, 0] {
            p.extend_from_slice(&field.to_be_bytes());
        }
        for (name, kind, ttl, data) in records {
            for label in name.split('.') {
                p.push(label.len() as u8);
                p.extend_from_slice(label.as_bytes());
            }
            p.push(0);
            p.extend_from_slice(&kind.to_be_bytes());
            p.extend_from_slice(&(0x8000 | CLASS_IN).to_be_bytes());
            p.extend_from_slice(&ttl.to_be_bytes());
            p.extend_from_slice(&(data.len() as u16).to_be_bytes());
            p.extend_from_slice(data);
        }
        p
    }

    const V6: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

    #[test]
    fn a_query_asks_a_and_aaaa_for_the_name_in_lowercase() {
        let q = query(0x1234, "Far.Local.").unwrap();
        assert_eq!(&q[..12], &[0x12, 0x34, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&q[12..23], b"\x03far\x05local\x00");
        assert_eq!(&q[23..], &[0, 1, 0, 1, 0xc0, 12, 0, 28, 0, 1]);
    }

    #[test]
    fn a_query_refuses_names_dns_cannot_carry() {
        assert!(query(1, "a..local").is_err());
        assert!(query(1, &format!("{}.local", "x".repeat(64))).is_err());
        let long = vec!["abcdefghi"; 26].join(".") + ".local";
        assert!(query(1, &long).is_err(), "{} bytes", long.len());
    }

    #[test]
    fn our_own_query_read_back_is_not_an_answer() {
        let q = query(7, "far.local").unwrap();
        assert_eq!(answer(&q, 7, "far.local"), None);
    }

    #[test]
    fn a_and_aaaa_records_give_both_addresses_and_the_least_ttl() {
        let p = response(
            9,
            &[
                ("FAR.local", 1, 120, &[10, 0, 0, 2]),
                ("far.local", 28, 10, &V6),
            ],
        );
        let got = answer(&p, 9, "far.local").unwrap();
        assert_eq!(
            got.addrs,
            [
                "10.0.0.2".parse::<IpAddr>().unwrap(),
                "fd00::2".parse().unwrap()
            ]
        );
        assert_eq!(got.ttl, 10);
    }

    #[test]
    fn another_id_another_name_a_goodbye_or_an_error_is_no_answer() {
        let a = [10, 0, 0, 2];
        assert_eq!(
            answer(&response(9, &[("far.local", 1, 120, &a)]), 8, "far.local"),
            None
        );
        assert!(answer(&response(0, &[("far.local", 1, 120, &a)]), 8, "far.local").is_some());
        assert_eq!(
            answer(&response(9, &[("near.local", 1, 120, &a)]), 9, "far.local"),
            None
        );
        assert_eq!(
            answer(&response(9, &[("far.local", 1, 0, &a)]), 9, "far.local"),
            None
        );
        let mut refused = response(9, &[("far.local", 1, 120, &a)]);
        refused[3] |= 5;
        assert_eq!(answer(&refused, 9, "far.local"), None);
    }

    #[test]
    fn records_of_other_types_or_odd_lengths_are_skipped() {
        let p = response(
            9,
            &[
                ("far.local", 16, 120, b"\x04text"),
                ("far.local", 1, 120, &[10, 0, 0]),
                ("far.local", 1, 120, &[10, 0, 0, 3]),
            ],
        );
        assert_eq!(
            answer(&p, 9, "far.local").unwrap().addrs,
            ["10.0.0.3".parse::<IpAddr>().unwrap()]
        );
    }

    #[test]
    fn a_compressed_name_is_followed_backwards() {
        let mut p = response(9, &[("far.local", 1, 120, &[10, 0, 0, 2])]);
        // A second A record whose name is a pointer to the first's.
        p[7] = 2;
        p.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 0, 0, 4]);
        let got = answer(&p, 9, "far.local").unwrap();
        assert_eq!(got.addrs.len(), 2);
        assert_eq!(got.ttl, 60);
    }

    #[test]
    fn a_pointer_to_itself_or_forwards_is_refused() {
        let mut p = response(9, &[]);
        p[7] = 1;
        p.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 0, 0, 4]);
        assert_eq!(answer(&p, 9, "far.local"), None);
        p[12..14].copy_from_slice(&[0xc0, 20]);
        assert_eq!(answer(&p, 9, "far.local"), None);
    }

    #[test]
    fn truncated_packets_are_no_answer() {
        let p = response(9, &[("far.local", 1, 120, &[10, 0, 0, 2])]);
        for len in 0..p.len() {
            assert_eq!(answer(&p[..len], 9, "far.local"), None, "cut at {len}");
        }
    }

    #[test]
    fn a_name_over_255_bytes_is_refused() {
        let label = "x".repeat(63);
        let name = [label.as_str(); 5].join(".");
        let p = response(9, &[(&name, 1, 120, &[10, 0, 0, 2])]);
        assert_eq!(answer(&p, 9, &name), None);
    }

    #[test]
    fn at_most_sixteen_addresses_are_taken() {
        let data: Vec<[u8; 4]> = (0..40).map(|i| [10, 0, 0, i]).collect();
        let records: Vec<_> = data.iter().map(|d| ("far.local", 1, 120, &d[..])).collect();
        let got = answer(&response(9, &records), 9, "far.local").unwrap();
        assert_eq!(got.addrs.len(), MAX_ADDRESSES);
    }
}
