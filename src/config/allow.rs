//! Address ranges: --allow (the clients a rule serves; none given, everyone)
//! and --accept-proxy (the peers that must send a PROXY header; none given,
//! no one). Parsing a range and matching an address are pure; a client is
//! matched once, before anything else happens for it.

use std::fmt;
use std::net::IpAddr;

/// One range: an address and how many leading bits must match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

/// The ranges given with one option, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList(Vec<Cidr>);

impl AllowList {
    /// Parses every value of `option` (`--allow`), each a comma-separated
    /// list of ranges; the error names the option and the value.
    pub fn parse(option: &str, values: &[String]) -> Result<AllowList, String> {
        let mut ranges = Vec::new();
        for value in values {
            for part in value.split(',') {
                let range = Cidr::parse(part).map_err(|reason| match value == part {
                    true => format!("{option} {value:?}: {reason}"),
                    false => format!("{option} {value:?}: range {part:?}: {reason}"),
                })?;
                ranges.push(range);
            }
        }
        Ok(AllowList(ranges))
    }

    /// True if the client may be served: no ranges given, or one matches.
    pub fn permits(&self, client: IpAddr) -> bool {
        self.0.is_empty() || self.0.iter().any(|range| range.contains(client))
    }

    /// True if one of the ranges holds `ip`; false for an empty list.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|range| range.contains(ip))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Cidr {
    /// `ADDRESS` or `ADDRESS/BITS`, IPv4 or IPv6 (no brackets). Host bits
    /// set below the prefix are an error: `10.0.0.1/8` is likely a typo.
    /// The error says what was expected; the caller names the option.
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let expected = || {
            "expected an address or a range such as 10.0.0.0/8, 127.0.0.1 or fd00::/8".to_string()
        };
        let (addr, bits) = match text.split_once('/') {
            Some((addr, bits)) => (addr, Some(bits)),
            None => (text, None),
        };
        let net: IpAddr = addr.parse().map_err(|_| expected())?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match bits {
            None => max,
            Some(bits)
                if !bits.is_empty()
                    && bits.len() <= 3
                    && bits.bytes().all(|b| b.is_ascii_digit()) =>
            {
                match bits.parse::<u8>() {
                    Ok(n) if n <= max => n,
                    _ => return Err(format!("the prefix length must be from 0 to {max}")),
                }
            }
            Some(_) => return Err(expected()),
        };
        let cidr = Cidr { net, prefix };
        if masked(bits_of(net), prefix) != bits_of(net) {
            return Err(format!(
                "address bits set beyond the /{prefix} prefix (did you mean {}/{prefix}?)",
                from_bits(masked(bits_of(net), prefix), net.is_ipv4())
            ));
        }
        Ok(cidr)
    }

    /// True if `ip` is in the range. An IPv4 client seen on an IPv6 socket
    /// as `::ffff:a.b.c.d` matches IPv4 ranges.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        if ip.is_ipv4() != self.net.is_ipv4() {
            return false;
        }
        masked(bits_of(ip), self.prefix) == bits_of(self.net)
    }
}

/// An address as 128 bits, IPv4 in the top 32 so that prefixes line up.
fn bits_of(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => (u32::from(v4) as u128) << 96,
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn from_bits(bits: u128, v4: bool) -> IpAddr {
    if v4 {
        IpAddr::V4(((bits >> 96) as u32).into())
    } else {
        IpAddr::V6(bits.into())
    }
}

fn masked(bits: u128, prefix: u8) -> u128 {
    match prefix {
        0 => 0,
        p => bits & (u128::MAX << (128 - p as u32)),
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

impl fmt::Display for AllowList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ranges: Vec<String> = self.0.iter().map(|c| c.to_string()).collect();
        write!(f, "{}", ranges.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allow(values: &[&str]) -> AllowList {
        let values: Vec<String> = values.iter().map(|s| s.to_string()).collect();
        AllowList::parse("--allow", &values).unwrap()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn empty_list_permits_everyone() {
        assert!(allow(&[]).permits(ip("203.0.113.9")));
    }

    #[test]
    fn ipv4_ranges_and_bare_addresses() {
        let list = allow(&["10.0.0.0/8,192.0.2.7", "127.0.0.2/32"]);
        assert!(list.permits(ip("10.255.1.2")));
        assert!(list.permits(ip("192.0.2.7")));
        assert!(list.permits(ip("127.0.0.2")));
        assert!(!list.permits(ip("192.0.2.8")));
        assert!(!list.permits(ip("127.0.0.1")));
        assert!(!list.permits(ip("11.0.0.1")));
    }

    #[test]
    fn ipv6_ranges() {
        let list = allow(&["fd00::/8", "::1"]);
        assert!(list.permits(ip("fd12:3456::1")));
        assert!(list.permits(ip("::1")));
        assert!(!list.permits(ip("fe80::1")));
        assert!(!list.permits(ip("10.0.0.1")));
    }

    #[test]
    fn ipv4_mapped_clients_match_ipv4_ranges() {
        let list = allow(&["127.0.0.0/8"]);
        assert!(list.permits(ip("::ffff:127.0.0.5")));
        assert!(!list.permits(ip("::ffff:10.0.0.1")));
    }

    #[test]
    fn zero_prefix_matches_its_whole_family() {
        let list = allow(&["0.0.0.0/0"]);
        assert!(list.permits(ip("8.8.8.8")));
        assert!(!list.permits(ip("2001:db8::1")));
        assert!(allow(&["::/0"]).permits(ip("2001:db8::1")));
    }

    #[test]
    fn malformed_ranges_name_themselves() {
        const EXPECTED: &str =
            "expected an address or a range such as 10.0.0.0/8, 127.0.0.1 or fd00::/8";
        for (text, reason) in [
            ("", EXPECTED),
            ("x", EXPECTED),
            ("10.0.0.0/", EXPECTED),
            ("10.0.0.0/33", "the prefix length must be from 0 to 32"),
            ("::/129", "the prefix length must be from 0 to 128"),
            ("10.0.0.0/8/8", EXPECTED),
            ("10.0.0.0/-1", EXPECTED),
            ("10.0.0.0/+8", EXPECTED),
            ("10.0.0.0/ 8", EXPECTED),
            ("[::1]", EXPECTED),
            (
                "10.0.0.1/8",
                "address bits set beyond the /8 prefix (did you mean 10.0.0.0/8?)",
            ),
            (
                "fd00::1/8",
                "address bits set beyond the /8 prefix (did you mean fd00::/8?)",
            ),
            ("256.0.0.0/8", EXPECTED),
            ("10.0.0.0/0008", EXPECTED),
            ("localhost", EXPECTED),
            ("10.0.0.0/８", EXPECTED),
        ] {
            let err = AllowList::parse("--allow", &[text.to_string()]).unwrap_err();
            assert_eq!(err, format!("--allow {text:?}: {reason}"));
        }
    }

    #[test]
    fn a_bad_entry_in_a_list_names_the_value_and_the_entry() {
        let err = AllowList::parse("--allow", &["10.0.0.0/8,".to_string()]).unwrap_err();
        assert_eq!(
            err,
            "--allow \"10.0.0.0/8,\": range \"\": expected an address or a range \
             such as 10.0.0.0/8, 127.0.0.1 or fd00::/8"
        );
    }

    #[test]
    fn an_empty_list_permits_everyone_and_contains_no_one() {
        let list = allow(&[]);
        assert!(list.permits(ip("10.0.0.1")));
        assert!(!list.contains(ip("10.0.0.1")));
        let list = allow(&["10.0.0.0/8"]);
        assert!(list.contains(ip("10.0.0.1")) && list.permits(ip("10.0.0.1")));
        assert!(!list.contains(ip("11.0.0.1")));
    }

    #[test]
    fn errors_name_the_option_given() {
        let err = AllowList::parse("--accept-proxy", &["x".to_string()]).unwrap_err();
        assert!(err.starts_with("--accept-proxy \"x\": expected"), "{err}");
    }

    #[test]
    fn display_lists_the_ranges() {
        assert_eq!(
            allow(&["10.0.0.0/8", "::1"]).to_string(),
            "10.0.0.0/8,::1/128"
        );
    }
}
