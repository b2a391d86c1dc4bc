//! Plain data for what ambassador forwards: a `Rule` listens on one address
//! (TCP or UDP) and forwards to `Target`s tried in order. Parsing one RULE string lives here;
//! `Display` writes a rule back in the same syntax, so `--check` output can be
//! pasted back as arguments. Nothing here touches the network.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The syntax of a RULE, repeated in error messages.
pub const RULE_SYNTAX: &str =
    "expected [LISTEN_HOST:]LISTEN_PORT:HOST:PORT[,HOST:PORT...][/tcp|/udp]";

/// The transport a rule forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
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

/// One forwarding rule: where to listen and whom to forward to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub listen: SocketAddr,
    pub proto: Proto,
    /// Never empty; tried in order for each new connection.
    pub targets: Vec<Target>,
    pub source: Source,
}

/// A place to forward to. `host` is a name, an IPv4 or an IPv6 address
/// (without brackets); names are resolved at each connection, not here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: u16,
}

/// Where a rule came from, so that messages can point at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The n-th RULE argument, counting from 1.
    Argument(usize),
    /// An environment variable, by name.
    Variable(String),
}

impl Rule {
    /// True when both rules would do the same thing, wherever they came from.
    pub fn same_forwarding(&self, other: &Rule) -> bool {
        self.listen == other.listen && self.proto == other.proto && self.targets == other.targets
    }
}

/// Parses `[LISTEN_HOST:]LISTEN_PORT:TARGET[,TARGET...][/tcp|/udp]` into
/// the listen address, the targets and the transport (TCP without a
/// suffix, as Docker's `-p` reads it). The error says what was expected.
pub fn parse_rule(text: &str) -> Result<(SocketAddr, Vec<Target>, Proto), String> {
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
    Ok((listen, targets, proto))
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
        let target = parse_target(part)?;
        if !targets.contains(&target) {
            targets.push(target);
        }
    }
    Ok((SocketAddr::new(ip, port), targets))
}

/// Parses one `HOST:PORT` target, HOST being a name, IPv4 or `[IPv6]`.
pub fn parse_target(text: &str) -> Result<Target, String> {
    match split_fields(text)?.as_slice() {
        [host, port] => target_from_fields(host, port),
        _ => Err(format!(
            "target {text:?}: expected HOST:PORT (write IPv6 addresses in brackets)"
        )),
    }
}

fn target_from_fields(host: &str, port: &str) -> Result<Target, String> {
    let host = parse_target_host(host)?;
    let port = parse_port(port, "target port")?;
    Ok(Target { host, port })
}

/// Splits on ':' outside square brackets; brackets must pair up and wrap a
/// whole field.
fn split_fields(text: &str) -> Result<Vec<&str>, String> {
    let mut fields = Vec::new();
    let mut start = 0;
    let mut in_brackets = false;
    for (i, c) in text.char_indices() {
        match c {
            '[' if in_brackets || i != start => return Err(bracket_error(text)),
            '[' => in_brackets = true,
            ']' if !in_brackets => return Err(bracket_error(text)),
            ']' => in_brackets = false,
            ':' if !in_brackets => {
                fields.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if in_brackets {
        return Err(bracket_error(text));
    }
    fields.push(&text[start..]);
    Ok(fields)
}

fn bracket_error(text: &str) -> String {
    format!("{text:?}: unbalanced brackets, expected [IPv6] followed by :PORT")
}

/// A port number from 1 to 65535, written in at most 5 ASCII digits; the
/// error names `what` and says what was expected.
pub fn parse_port(text: &str, what: &str) -> Result<u16, String> {
    let valid = !text.is_empty() && text.len() <= 5 && text.bytes().all(|b| b.is_ascii_digit());
    match text.parse::<u16>() {
        Ok(port) if valid && port != 0 => Ok(port),
        _ => Err(format!(
            "{what} {text:?}: expected a number from 1 to 65535"
        )),
    }
}

fn parse_bracketed(text: &str) -> Option<Result<Ipv6Addr, String>> {
    let inner = text.strip_prefix('[')?.strip_suffix(']')?;
    Some(
        inner
            .parse::<Ipv6Addr>()
            .map_err(|_| format!("{text:?}: expected an IPv6 address inside the brackets")),
    )
}

fn parse_listen_host(text: &str) -> Result<IpAddr, String> {
    if let Some(v6) = parse_bracketed(text) {
        return v6.map(IpAddr::V6);
    }
    text.parse::<Ipv4Addr>().map(IpAddr::V4).map_err(|_| {
        format!(
            "listen host {text:?}: expected an IPv4 address or [IPv6] (e.g. 127.0.0.1 or [::1])"
        )
    })
}

/// Accepts `[IPv6]`, dotted IPv4, or a DNS name (letters, digits, '-', '_', '.').
fn parse_target_host(text: &str) -> Result<String, String> {
    if let Some(v6) = parse_bracketed(text) {
        return v6.map(|ip| ip.to_string());
    }
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return text
            .parse::<Ipv4Addr>()
            .map(|ip| ip.to_string())
            .map_err(|_| format!("host {text:?}: not a valid IPv4 address"));
    }
    let valid_name = !text.is_empty()
        && text.len() <= 253
        && !text.starts_with(['.', '-'])
        && !text.contains("..")
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if valid_name {
        Ok(text.to_string())
    } else {
        Err(format!(
            "host {text:?}: expected a host name, an IPv4 address or [IPv6]"
        ))
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
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
        write!(f, "{}", self.proto.suffix())
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
        Target {
            host: host.to_string(),
            port,
        }
    }

    fn listen(text: &str) -> SocketAddr {
        text.parse().unwrap()
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
            let (listen, targets, proto) = parse_rule(text).unwrap();
            let rule = Rule {
                listen,
                proto,
                targets,
                source: Source::Argument(1),
            };
            assert_eq!(rule.to_string(), text);
        }
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
        assert_eq!(targets[0].host, "my_redis.default.svc.cluster.local");
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
