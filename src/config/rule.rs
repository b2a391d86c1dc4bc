//! Plain data for what ambassador forwards: a `Rule` listens at one
//! `Listen` (an address and port, TCP or UDP, or a unix socket) and
//! forwards to `Target`s tried in order (hosts and ports, or unix sockets:
//! target.rs). Parsing one RULE string and telling whether two listen sides
//! clash live here; `Display` writes a rule back in the same syntax, so
//! `--check` output can be pasted back as arguments. Nothing here touches
//! the network.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

pub use super::address::UnixPath;
use super::address::{parse_listen_host, parse_port, split_fields};
use super::target::target_from_fields;
pub use super::target::Target;

/// The syntax of a RULE, repeated in error messages.
pub const RULE_SYNTAX: &str = "expected LISTEN:TARGET[,TARGET...][/tcp|/udp], \
     LISTEN being [HOST:]PORT or unix:PATH, TARGET HOST:PORT or unix:PATH";

/// The most targets one rule may list (their state is kept in 64 bits).
pub const MAX_TARGETS: usize = 64;

/// The transport a rule forwards, as its text (or a variable's name) says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
}

/// Where a rule listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// A TCP port on one address, or on every address (0.0.0.0, [::]).
    Tcp(SocketAddr),
    /// A UDP port, likewise.
    Udp(SocketAddr),
    /// A unix stream socket.
    Unix(UnixPath),
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

    /// UDP for a UDP rule; TCP for the stream rules, unix ones included.
    pub fn proto(&self) -> Proto {
        match self {
            Listen::Udp(_) => Proto::Udp,
            Listen::Tcp(_) | Listen::Unix(_) => Proto::Tcp,
        }
    }

    /// Why two rules could not both listen here, if they could not: the
    /// same transport and port on the same address, or on addresses the
    /// kernel would not let both be bound (a wildcard covering the other;
    /// [::] covers IPv4 too, as Linux binds it dual-stack); the same unix
    /// path. A TCP and a UDP rule may share a port.
    pub fn clash(&self, other: &Listen) -> Option<&'static str> {
        const SAME: &str = "listen on the same address with different targets";
        let (a, b) = match (self, other) {
            (Listen::Unix(a), Listen::Unix(b)) => return (a == b).then_some(SAME),
            (Listen::Tcp(a), Listen::Tcp(b)) | (Listen::Udp(a), Listen::Udp(b)) => (a, b),
            _ => return None,
        };
        if a.port() != b.port() {
            return None;
        }
        let (x, y) = (a.ip(), b.ip());
        if x == y {
            return Some(SAME);
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

    /// Parses `LISTEN:TARGET[,TARGET...][/tcp|/udp]` (TCP without a
    /// suffix, as Docker's `-p` reads it; the suffix is never part of a
    /// unix path). The error says what was expected.
    pub fn parse(text: &str, source: Source) -> Result<Rule, String> {
        let (text, proto) = split_suffix(text)?;
        let mut parts = text.split(',');
        // split always yields at least one part, even for "".
        let fields = split_fields(parts.next().unwrap_or_default())?;
        if fields.len() > 4 {
            return Err(format!(
                "{RULE_SYNTAX} (write IPv6 addresses in brackets, e.g. [::1])"
            ));
        }
        if fields.len() < 3 {
            return Err(RULE_SYNTAX.to_string());
        }
        // A target is always two fields (HOST:PORT or unix:PATH); the listen side is the rest.
        let (listen, target) = fields.split_at(fields.len() - 2);
        let listen = parse_listen(listen, proto)?;
        let mut targets = vec![target_from_fields(target[0], target[1])?];
        for part in parts {
            targets.push(Target::parse(part)?);
        }
        if targets.len() > MAX_TARGETS {
            return Err(format!(
                "{} targets: at most {MAX_TARGETS} in one rule",
                targets.len()
            ));
        }
        let unix_target = targets.iter().any(|t| matches!(t, Target::Unix(_)));
        if proto == Proto::Udp && (unix_target || matches!(listen, Listen::Unix(_))) {
            return Err(
                "a /udp rule with a unix side: unix datagram sockets are not \
                 forwarded (drop /udp for a stream rule)"
                    .to_string(),
            );
        }
        Ok(Rule::new(listen, targets, source))
    }

    /// True when both rules would do the same thing, wherever they came from.
    pub fn same_forwarding(&self, other: &Rule) -> bool {
        self.listen == other.listen && self.targets == other.targets
    }
}

/// The rule without its `/tcp` or `/udp` suffix, and the transport. A '/'
/// before anything else ends a unix path, not a rule.
fn split_suffix(text: &str) -> Result<(&str, Proto), String> {
    if let Some(rule) = text.strip_suffix("/tcp") {
        return Ok((rule, Proto::Tcp));
    }
    if let Some(rule) = text.strip_suffix("/udp") {
        return Ok((rule, Proto::Udp));
    }
    match text.rsplit_once('/') {
        Some((_, other)) if !text.contains("unix:") => Err(format!(
            "protocol {other:?}: expected /tcp or /udp at the end of the rule"
        )),
        _ => Ok((text, Proto::Tcp)),
    }
}

/// `PORT`, `HOST:PORT` or `unix:PATH`.
fn parse_listen(fields: &[&str], proto: Proto) -> Result<Listen, String> {
    let (host, port) = match fields {
        ["unix", path] => return UnixPath::parse(path).map(Listen::Unix),
        [port] => (None, *port),
        [host, port] => (Some(*host), *port),
        _ => return Err(RULE_SYNTAX.to_string()),
    };
    let ip = match host {
        None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        Some(host) => parse_listen_host(host)?,
    };
    let port = parse_port(port, "listen port")?;
    Ok(Listen::new(proto, SocketAddr::new(ip, port)))
}

impl fmt::Display for Listen {
    /// The address and port, or `unix:PATH`; the transport's suffix ends
    /// the whole rule.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Listen::Tcp(addr) | Listen::Udp(addr) => write!(f, "{addr}"),
            Listen::Unix(path) => write!(f, "{path}"),
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.listen)?;
        for (i, target) in self.targets.iter().enumerate() {
            let sep = if i == 0 { ':' } else { ',' };
            write!(f, "{sep}{target}")?;
        }
        // A last path ending in /tcp or /udp keeps it only before an explicit
        // suffix: `1:unix:/run/x/tcp/tcp` is the path /run/x/tcp.
        let last = self.targets.last().map(Target::to_string);
        let ambiguous = last.is_some_and(|l| l.ends_with("/tcp") || l.ends_with("/udp"));
        match self.listen.proto() {
            Proto::Tcp if ambiguous => f.write_str("/tcp"),
            proto => f.write_str(proto.suffix()),
        }
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
        let proto = rule.listen.proto();
        match rule.listen {
            Listen::Tcp(addr) | Listen::Udp(addr) => Ok((addr, rule.targets, proto)),
            Listen::Unix(_) => Err("a unix listen side".into()),
        }
    }

    #[test]
    fn at_most_64_targets() {
        let list = |n: u16| {
            (1..=n)
                .map(|p| format!("h:{p}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        let ok = Rule::parse(&format!("1:{}", list(64)), Source::Argument(1)).unwrap();
        assert_eq!(ok.targets.len(), 64);
        let too_many = Rule::parse(&format!("1:{}", list(65)), Source::Argument(1));
        assert_eq!(too_many.unwrap_err(), "65 targets: at most 64 in one rule");
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
            assert!(err.starts_with("expected LISTEN:TARGET"), "{text}: {err}");
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

    fn unix(path: &str) -> Target {
        Target::Unix(UnixPath::parse(path).unwrap())
    }

    #[test]
    fn unix_sockets_on_either_side() {
        let rule = Rule::parse(
            "unix:/run/shared/redis.sock:redis:6379",
            Source::Argument(1),
        );
        let rule = rule.unwrap();
        assert_eq!(
            rule.listen,
            Listen::Unix(UnixPath::parse("/run/shared/redis.sock").unwrap())
        );
        assert_eq!(rule.targets, [target("redis", 6379)]);
        let rule = Rule::parse(
            "127.0.0.1:2375:unix:/var/run/docker.sock",
            Source::Argument(1),
        );
        let rule = rule.unwrap();
        assert_eq!(rule.listen, Listen::Tcp(listen("127.0.0.1:2375")));
        assert_eq!(rule.targets, [unix("/var/run/docker.sock")]);
        let rule = Rule::parse("unix:@front:unix:/a,[::1]:7,unix:@b", Source::Argument(1)).unwrap();
        assert_eq!(rule.targets, [unix("/a"), target("::1", 7), unix("@b")]);
    }

    #[test]
    fn unix_rules_round_trip() {
        for text in [
            "unix:/run/shared/redis.sock:redis:6379",
            "127.0.0.1:2375:unix:/var/run/docker.sock",
            "unix:/a:unix:/b",
            "unix:@app:[::1]:6379",
            "0.0.0.0:1:unix:/a,b:2,unix:@c",
            "unix:/tmp/a[1].sock:h:1",
            "0.0.0.0:1:unix:/run/x/tcp.sock",
        ] {
            let rule = Rule::parse(text, Source::Argument(1)).unwrap();
            assert_eq!(rule.to_string(), text);
        }
    }

    #[test]
    fn a_trailing_protocol_is_never_part_of_a_path() {
        let rule = Rule::parse("1:unix:/run/x/tcp", Source::Argument(1)).unwrap();
        assert_eq!(rule.targets, [unix("/run/x")]);
        // Such a path is written with the suffix after it, and printed so.
        for (text, path) in [
            ("1:unix:/run/x/tcp/tcp", "/run/x/tcp"),
            ("1:unix:/a/udp/tcp", "/a/udp"),
        ] {
            let rule = Rule::parse(text, Source::Argument(1)).unwrap();
            assert_eq!(rule.targets, [unix(path)]);
            assert_eq!(rule.to_string(), format!("0.0.0.0:{text}"));
            assert_eq!(
                Rule::parse(&rule.to_string(), Source::Argument(1)).unwrap(),
                rule
            );
        }
    }

    #[test]
    fn bad_unix_paths_say_what_is_expected() {
        let long = format!("/{}", "a".repeat(107));
        for (text, needle) in [
            ("unix:run/a.sock:h:1", "expected an absolute path"),
            ("1:unix:relative", "expected an absolute path"),
            ("1:unix:", "expected an absolute path"),
            ("1:unix:@", "expected an absolute path"),
            (&format!("1:unix:{long}"), "108 bytes, expected at most 107"),
            ("unix:/a.sock:h:1/udp", "a /udp rule with a unix side"),
            ("5353:unix:/dns.sock/udp", "a /udp rule with a unix side"),
            ("1:h:1,unix:/b/udp", "a /udp rule with a unix side"),
        ] {
            let err = Rule::parse(text, Source::Argument(1)).unwrap_err();
            assert!(err.contains(needle), "{text}: {err}");
        }
        assert!(UnixPath::parse(&long[..107]).is_ok());
    }

    #[test]
    fn unix_listen_sides_clash_on_the_same_path_only() {
        let path = |p: &str| Listen::Unix(UnixPath::parse(p).unwrap());
        let same = Some("listen on the same address with different targets");
        assert_eq!(path("/a").clash(&path("/a")), same);
        assert_eq!(path("/a").clash(&path("/b")), None);
        assert_eq!(path("@a").clash(&path("/a")), None);
        assert_eq!(path("/a").clash(&Listen::Tcp(listen("0.0.0.0:1"))), None);
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
