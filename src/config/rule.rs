//! Plain data for what ambassador forwards: a `Rule` listens at one `Listen`
//! (an address and port, TCP or UDP) and forwards to `Target`s tried in
//! order. Parsing one RULE string and telling whether two listen sides
//! clash live here; `Display` writes a rule back in the same syntax, so
//! `--check` output can be pasted back as arguments. Nothing here touches
//! the network.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

pub use super::address::parse_port;
use super::address::{parse_listen_host, parse_target_host, split_fields};

/// The syntax of a RULE, repeated in error messages.
pub const RULE_SYNTAX: &str =
    "expected [LISTEN_HOST:]LISTEN_PORT:HOST:PORT[,HOST:PORT...][/tcp|/udp]";

/// The transport a rule forwards, as its text (or a variable's name) says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
}

/// Where a rule listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listen {
    /// A TCP port on one address, or on every address (0.0.0.0, [::]).
    Tcp(SocketAddr),
    /// A UDP port, likewise.
    Udp(SocketAddr),
}

/// A place to forward to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A host and port over the network. `host` is a name, an IPv4 or an
    /// IPv6 address (without brackets); names are resolved at each
    /// connection, not here.
    Net { host: String, port: u16 },
}

/// One forwarding rule: where to listen and whom to forward to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub listen: Listen,
    /// Never empty, no target twice; tried in order for each new connection.
    pub targets: Vec<Target>,
    pub source: Source,
}

/// Where a rule came from, so that messages can point at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The n-th RULE argument, counting from 1.
    Argument(usize),
    /// An environment variable, by name.
    Variable(String),
}

impl Proto {
    /// How a rule's text ends for this transport: nothing for TCP.
    pub fn suffix(self) -> &'static str {
        match self {
            Proto::Tcp => "",
            Proto::Udp => "/udp",
        }
    }
}

impl Listen {
    /// Listening at `addr` with `proto`.
    pub fn new(proto: Proto, addr: SocketAddr) -> Listen {
        match proto {
            Proto::Tcp => Listen::Tcp(addr),
            Proto::Udp => Listen::Udp(addr),
        }
    }

    pub fn proto(&self) -> Proto {
        match self {
            Listen::Tcp(_) => Proto::Tcp,
            Listen::Udp(_) => Proto::Udp,
        }
    }

    /// The address and port listened on.
    pub fn addr(&self) -> SocketAddr {
        match *self {
            Listen::Tcp(addr) | Listen::Udp(addr) => addr,
        }
    }

    /// Why two rules could not both listen here, if they could not: the
    /// same transport and port on the same address, or on addresses the
    /// kernel would not let both be bound (a wildcard covering the other;
    /// [::] covers IPv4 too, as Linux binds it dual-stack). A TCP and a UDP
    /// rule may share a port.
    pub fn clash(&self, other: &Listen) -> Option<&'static str> {
        let (a, b) = (self.addr(), other.addr());
        if self.proto() != other.proto() || a.port() != b.port() {
            return None;
        }
        let (x, y) = (a.ip(), b.ip());
        if x == y {
            return Some("listen on the same address with different targets");
        }
        let covers = |w: IpAddr, o: IpAddr| w.is_unspecified() && (w.is_ipv6() || o.is_ipv4());
        (covers(x, y) || covers(y, x)).then_some("listen on overlapping addresses")
    }
}

impl Rule {
    /// A rule from its parts; a target repeated in the list is kept once.
    pub fn new(listen: Listen, targets: Vec<Target>, source: Source) -> Rule {
        let mut kept: Vec<Target> = Vec::with_capacity(targets.len());
        for target in targets {
            if !kept.contains(&target) {
                kept.push(target);
            }
        }
        Rule {
            listen,
            targets: kept,
            source,
        }
    }

    /// Parses `[LISTEN_HOST:]LISTEN_PORT:TARGET[,TARGET...][/tcp|/udp]`
    /// (TCP without a suffix, as Docker's `-p` reads it). The error says
    /// what was expected.
    pub fn parse(text: &str, source: Source) -> Result<Rule, String> {
        let (text, proto) = match text.rsplit_once('/') {
            None => (text, Proto::Tcp),
            Some((rule, "tcp")) => (rule, Proto::Tcp),
            Some((rule, "udp")) => (rule, Proto::Udp),
            Some((_, other)) => {
                return Err(format!(
                    "protocol {other:?}: expected /tcp or /udp at the end of the rule"
                ))
            }
        };
        let (listen, targets) = parse_addresses(text)?;
        Ok(Rule::new(Listen::new(proto, listen), targets, source))
    }

    /// True when both rules would do the same thing, wherever they came from.
    pub fn same_forwarding(&self, other: &Rule) -> bool {
        self.listen == other.listen && self.targets == other.targets
    }
}

fn parse_addresses(text: &str) -> Result<(SocketAddr, Vec<Target>), String> {
    let mut parts = text.split(',');
    // split always yields at least one part, even for "".
    let first = parts.next().unwrap_or_default();
    let fields = split_fields(first)?;
    let (listen_host, listen_port, target) = match fields.as_slice() {
        [port, host, tport] => (None, *port, (*host, *tport)),
        [lhost, port, host, tport] => (Some(*lhost), *port, (*host, *tport)),
        _ if fields.len() > 4 => {
            return Err(format!(
                "{RULE_SYNTAX} (write IPv6 addresses in brackets, e.g. [::1])"
            ))
        }
        _ => return Err(RULE_SYNTAX.to_string()),
    };
    let ip = match listen_host {
        None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        Some(host) => parse_listen_host(host)?,
    };
    let port = parse_port(listen_port, "listen port")?;
    let mut targets = vec![target_from_fields(target.0, target.1)?];
    for part in parts {
        targets.push(Target::parse(part)?);
    }
    Ok((SocketAddr::new(ip, port), targets))
}

impl Target {
    /// Parses one `HOST:PORT` target, HOST being a name, IPv4 or `[IPv6]`.
    pub fn parse(text: &str) -> Result<Target, String> {
        match split_fields(text)?.as_slice() {
            [host, port] => target_from_fields(host, port),
            _ => Err(format!(
                "target {text:?}: expected HOST:PORT (write IPv6 addresses in brackets)"
            )),
        }
    }
}

fn target_from_fields(host: &str, port: &str) -> Result<Target, String> {
    let host = parse_target_host(host)?;
    let port = parse_port(port, "target port")?;
    Ok(Target::Net { host, port })
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Net { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            Target::Net { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

impl fmt::Display for Listen {
    /// The address and port; the transport's suffix ends the whole rule.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.addr())
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.listen)?;
        for (i, target) in self.targets.iter().enumerate() {
            let sep = if i == 0 { ':' } else { ',' };
            write!(f, "{sep}{target}")?;
        }
        write!(f, "{}", self.listen.proto().suffix())
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Argument(n) => write!(f, "argument {n}"),
            Source::Variable(name) => write!(f, "variable {name}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(host: &str, port: u16) -> Target {
        Target::Net {
            host: host.to_string(),
            port,
        }
    }

    fn listen(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    /// A rule's parts, for assertions on each.
    fn parse_rule(text: &str) -> Result<(SocketAddr, Vec<Target>, Proto), String> {
        let rule = Rule::parse(text, Source::Argument(1))?;
        Ok((rule.listen.addr(), rule.targets, rule.listen.proto()))
    }

    #[test]
    fn port_and_target_listens_on_all_ipv4() {
        let (addr, targets, _) = parse_rule("6379:192.168.1.52:6379").unwrap();
        assert_eq!(addr, listen("0.0.0.0:6379"));
        assert_eq!(targets, vec![target("192.168.1.52", 6379)]);
    }

    #[test]
    fn listen_host_and_name_target() {
        let (addr, targets, _) = parse_rule("127.0.0.1:8080:web:80").unwrap();
        assert_eq!(addr, listen("127.0.0.1:8080"));
        assert_eq!(targets, vec![target("web", 80)]);
    }

    #[test]
    fn ipv6_on_both_sides() {
        let (addr, targets, _) = parse_rule("[::]:6379:[2001:db8::5]:6379").unwrap();
        assert_eq!(addr, listen("[::]:6379"));
        assert_eq!(targets, vec![target("2001:db8::5", 6379)]);
    }

    #[test]
    fn failover_list_keeps_order() {
        let (_, targets, _) = parse_rule("6379:redis-a:6379,redis-b:6379,[::1]:7000").unwrap();
        assert_eq!(
            targets,
            vec![
                target("redis-a", 6379),
                target("redis-b", 6379),
                target("::1", 7000)
            ]
        );
    }

    #[test]
    fn repeated_failover_target_is_kept_once() {
        let (_, targets, _) = parse_rule("1:a:1,b:2,a:1").unwrap();
        assert_eq!(targets, vec![target("a", 1), target("b", 2)]);
    }

    #[test]
    fn display_round_trips() {
        for text in [
            "0.0.0.0:6379:192.168.1.52:6379",
            "127.0.0.1:8080:web:80",
            "[::]:6379:[2001:db8::5]:6379",
            "0.0.0.0:6379:redis-a:6379,redis-b:6379",
            "0.0.0.0:5353:dns:53/udp",
            "[::]:5353:[2001:db8::5]:53,dns:53/udp",
        ] {
            let rule = Rule::parse(text, Source::Argument(1)).unwrap();
            assert_eq!(rule.to_string(), text);
        }
    }

    #[test]
    fn clashing_listen_sides() {
        let tcp = |text: &str| Listen::Tcp(listen(text));
        let same = Some("listen on the same address with different targets");
        let overlap = Some("listen on overlapping addresses");
        assert_eq!(tcp("0.0.0.0:1").clash(&tcp("0.0.0.0:1")), same);
        assert_eq!(tcp("0.0.0.0:1").clash(&tcp("127.0.0.1:1")), overlap);
        assert_eq!(tcp("[::1]:1").clash(&tcp("[::]:1")), overlap);
        assert_eq!(tcp("[::]:1").clash(&tcp("127.0.0.1:1")), overlap);
        // 0.0.0.0 does not cover IPv6 addresses.
        assert_eq!(tcp("0.0.0.0:1").clash(&tcp("[::1]:1")), None);
        assert_eq!(tcp("127.0.0.1:1").clash(&tcp("127.0.0.2:1")), None);
        assert_eq!(tcp("0.0.0.0:1").clash(&tcp("0.0.0.0:2")), None);
        assert_eq!(
            tcp("0.0.0.0:1").clash(&Listen::Udp(listen("0.0.0.0:1"))),
            None
        );
    }

    #[test]
    fn udp_and_tcp_suffixes_apply_to_the_whole_rule() {
        let (addr, targets, proto) = parse_rule("127.0.0.1:5353:dns-a:53,dns-b:53/udp").unwrap();
        assert_eq!(addr, listen("127.0.0.1:5353"));
        assert_eq!(targets, vec![target("dns-a", 53), target("dns-b", 53)]);
        assert_eq!(proto, Proto::Udp);
        let (_, _, proto) = parse_rule("[::]:6379:[::1]:6379/tcp").unwrap();
        assert_eq!(proto, Proto::Tcp);
        let (_, _, proto) = parse_rule("6379:redis:6379").unwrap();
        assert_eq!(proto, Proto::Tcp);
    }

    #[test]
    fn rejects_bad_suffixes() {
        for text in [
            "1:a:1/UDP",
            "1:a:1/",
            "1:a:1/sctp",
            "1:a:1/udp/udp",
            "1:a:1/ udp",
            "1:a/udp:1",
            "/udp",
            "1:a:1,/udp",
        ] {
            assert!(parse_rule(text).is_err(), "{text}");
        }
    }

    #[test]
    fn rejects_wrong_field_counts() {
        for text in ["", "6379", "6379:redis", "1:2:3:4:5", "a:b:c:d:e:f"] {
            let err = parse_rule(text).unwrap_err();
            assert!(err.contains("expected [LISTEN_HOST:]"), "{text}: {err}");
        }
    }

    #[test]
    fn unbracketed_ipv6_asks_for_brackets() {
        let err = parse_rule("6379:2001:db8::5:6379").unwrap_err();
        assert!(err.contains("brackets"), "{err}");
    }

    #[test]
    fn rejects_bad_ports() {
        for text in [
            "0:redis:6379",
            "65536:redis:6379",
            "x:redis:6379",
            "6379:redis:0",
            "6379:redis:",
            "6379:redis:+1",
            "6379:redis:99999999999",
        ] {
            let err = parse_rule(text).unwrap_err();
            assert!(
                err.contains("expected a number from 1 to 65535"),
                "{text}: {err}"
            );
        }
    }

    #[test]
    fn rejects_bad_listen_hosts() {
        for text in ["localhost:1:a:1", "1.2.3:1:a:1", "[zz]:1:a:1", ":1:a:1"] {
            assert!(parse_rule(text).is_err(), "{text}");
        }
    }

    #[test]
    fn rejects_bad_target_hosts() {
        for text in [
            "1::1",
            "1:300.1.1.1:1",
            "1:bad host:1",
            "1:-x:1",
            "1:a..b:1",
            "1:[::1:1",
            "1:::1]:1",
            "1:[1.2.3.4]:1",
            "1:x[::1]:1",
        ] {
            assert!(parse_rule(text).is_err(), "{text}");
        }
    }

    #[test]
    fn rejects_empty_failover_entries() {
        for text in ["1:a:1,", "1:a:1,,b:2", "1:a:1,b", "1:a:1,b:2:3"] {
            assert!(parse_rule(text).is_err(), "{text}");
        }
    }

    #[test]
    fn names_may_have_underscores_and_dots() {
        let (_, targets, _) = parse_rule("1:my_redis.default.svc.cluster.local:6379").unwrap();
        assert_eq!(
            targets[0],
            target("my_redis.default.svc.cluster.local", 6379)
        );
    }

    #[test]
    fn non_ascii_input_is_an_error_not_a_panic() {
        for text in ["1:é:1", "é:a:1", "1:a:é", "[é]:1:a:1", "1:a:1,é"] {
            assert!(parse_rule(text).is_err(), "{text}");
        }
    }

    #[test]
    fn source_names_where_a_rule_came_from() {
        assert_eq!(Source::Argument(2).to_string(), "argument 2");
        assert_eq!(
            Source::Variable("REDIS_PORT_6379_TCP".into()).to_string(),
            "variable REDIS_PORT_6379_TCP"
        );
    }
}
