//! Arguments and environment to rules, the first stage: the command line
//! (cli.rs), link variables (env.rs), the RULE syntax (rule.rs, with its
//! targets in target.rs and its address fields in address.rs), address
//! ranges (allow.rs) and durations (seconds.rs), gathered here into one
//! validated `Config`: option values checked, argument and environment
//! rules merged, identical duplicates dropped, rules whose listen sides
//! clash (rule.rs says when) rejected. Pure: nothing here touches the
//! network or the process.

mod address;
pub mod allow;
pub mod cli;
pub mod docker_proxy;
pub mod env;
pub mod rule;
pub mod seconds;
mod target;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use self::address::{parse_listen_host, parse_port, split_fields};
use self::allow::AllowList;
use self::cli::Args;
use self::env::rules_from_env;
use self::rule::{Rule, Source};
use crate::error::Error;

/// The connect timeout when --connect-timeout is not given.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a quiet UDP session lives when --udp-timeout is not given.
pub const DEFAULT_UDP_TIMEOUT: Duration = Duration::from_secs(60);
/// The connection cap when --max-conns is not given.
pub const DEFAULT_MAX_CONNS: usize = 4096;

/// Everything the server needs, validated.
#[derive(Debug)]
pub struct Config {
    /// Never empty, no two listening on overlapping addresses.
    pub rules: Vec<Rule>,
    pub connect_timeout: Duration,
    pub idle_timeout: Option<Duration>,
    pub max_conns: usize,
    /// A UDP session that carried no datagram either way for this long ends.
    pub udp_timeout: Duration,
    /// Clients that may be served; empty: everyone.
    pub allow: AllowList,
    /// How long open connections may run after SIGTERM/SIGINT; zero: reset at once.
    pub drain: Duration,
    /// Permissions of the unix socket files made here; None: as the umask leaves them.
    pub unix_mode: Option<u32>,
    /// Begin every connection to a target with a PROXY header of this version.
    pub send_proxy: Option<SendProxy>,
    /// Peers that must begin with a PROXY header; empty: no one.
    pub accept_proxy: AllowList,
    /// Where to serve /metrics; None: nowhere.
    pub metrics: Option<SocketAddr>,
    pub balance: Balance,
}

/// --balance: which up target a new connection or UDP session tries first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Balance {
    /// The first in the rule's order: failover.
    #[default]
    First,
    /// One further along each time, over the targets and a name's addresses.
    RoundRobin,
}

/// The PROXY protocol version --send-proxy writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendProxy {
    V1,
    V2,
}

impl Config {
    /// The options that change what a rule does to a connection, and the
    /// metrics address, as arguments that give them again (for --check):
    /// `--send-proxy v2`, ...
    pub fn forwarding_options(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(version) = self.send_proxy {
            let v = if version == SendProxy::V1 { "v1" } else { "v2" };
            out.push(format!("--send-proxy {v}"));
        }
        if !self.accept_proxy.is_empty() {
            out.push(format!("--accept-proxy {}", self.accept_proxy));
        }
        if !self.allow.is_empty() {
            out.push(format!("--allow {}", self.allow));
        }
        if self.balance == Balance::RoundRobin {
            out.push("--balance round-robin".to_string());
        }
        if let Some(addr) = self.metrics {
            out.push(format!("--metrics {addr}"));
        }
        out
    }
}

/// Validates the options and gathers the rules: the RULE arguments, or the
/// environment when there are none, or both with --env.
pub fn build(args: &Args, vars: &[(String, String)]) -> Result<Config, Error> {
    let connect_timeout = match &args.connect_timeout {
        Some(text) => parse_seconds("--connect-timeout", text)?,
        None => DEFAULT_CONNECT_TIMEOUT,
    };
    let idle_timeout = match &args.idle_timeout {
        Some(text) => Some(parse_seconds("--idle-timeout", text)?),
        None => None,
    };
    let max_conns = match &args.max_conns {
        Some(text) => parse_max_conns(text)?,
        None => DEFAULT_MAX_CONNS,
    };
    let udp_timeout = match &args.udp_timeout {
        Some(text) => parse_seconds("--udp-timeout", text)?,
        None => DEFAULT_UDP_TIMEOUT,
    };
    let allow = AllowList::parse("--allow", &args.allow).map_err(Error::Usage)?;
    let accept_proxy =
        AllowList::parse("--accept-proxy", &args.accept_proxy).map_err(Error::Usage)?;
    let send_proxy = match args.send_proxy.as_deref().map(str::trim) {
        None => None,
        Some("v1") => Some(SendProxy::V1),
        Some("v2") => Some(SendProxy::V2),
        Some(other) => {
            return Err(Error::Usage(format!(
                "--send-proxy {other:?}: expected v1 (text) or v2 (binary)"
            )))
        }
    };
    let balance = match args.balance.as_deref().map(str::trim) {
        None | Some("first") => Balance::First,
        Some("round-robin") => Balance::RoundRobin,
        Some(other) => {
            return Err(Error::Usage(format!(
                "--balance {other:?}: expected first (failover) or round-robin"
            )))
        }
    };
    let drain = match args.drain.as_deref().map(str::trim) {
        None | Some("0") => Duration::ZERO,
        Some(text) => parse_seconds("--drain", text)?,
    };
    let unix_mode = args.unix_mode.as_deref().map(parse_mode).transpose()?;
    let metrics = args.metrics.as_deref().map(parse_metrics).transpose()?;
    let mut rules = Vec::new();
    for (i, text) in args.rules.iter().enumerate() {
        let rule = Rule::parse(text, Source::Argument(i + 1)).map_err(|reason| Error::BadRule {
            index: i + 1,
            text: text.clone(),
            reason,
        })?;
        rules.push(rule);
    }
    if args.rules.is_empty() || args.env {
        rules.extend(rules_from_env(vars)?);
    }
    let rules = merge(rules)?;
    if rules.is_empty() {
        return Err(Error::NoRules);
    }
    Ok(Config {
        rules,
        connect_timeout,
        idle_timeout,
        max_conns,
        udp_timeout,
        allow,
        drain,
        unix_mode,
        send_proxy,
        accept_proxy,
        metrics,
        balance,
    })
}

/// The configuration of one rule with every option at its default (for
/// dockerd's userland proxy, whose command line gives nothing else).
pub fn for_rule(rule: &Rule) -> Result<Config, Error> {
    let args = Args {
        rules: vec![rule.to_string()],
        ..Args::default()
    };
    build(&args, &[])
}

/// Drops identical duplicates; rejects two rules whose listen sides clash
/// unless they are the very same forwarding.
fn merge(rules: Vec<Rule>) -> Result<Vec<Rule>, Error> {
    let mut kept: Vec<Rule> = Vec::with_capacity(rules.len());
    for rule in rules {
        let clash = kept
            .iter()
            .find_map(|k| k.listen.clash(&rule.listen).map(|reason| (k, reason)));
        match clash {
            None => kept.push(rule),
            Some((k, _)) if k.same_forwarding(&rule) => {
                log::debug!("{} repeats {} ({rule}): merged", rule.source, k.source);
            }
            Some((k, reason)) => {
                return Err(Error::Conflict {
                    first: format!("{} ({k})", k.source),
                    second: format!("{} ({rule})", rule.source),
                    reason,
                });
            }
        }
    }
    Ok(kept)
}

fn parse_seconds(option: &str, text: &str) -> Result<Duration, Error> {
    seconds::parse(text.trim())
        .filter(|d| *d >= Duration::from_millis(1) && d.as_secs() <= 365 * 24 * 3600)
        .ok_or_else(|| {
            Error::Usage(format!(
                "{option} {text:?}: expected seconds from 0.001 to 31536000, e.g. 10 or 0.5"
            ))
        })
}

/// `[HOST:]PORT` as a rule's listen side reads it: 0.0.0.0 without a host.
fn parse_metrics(text: &str) -> Result<SocketAddr, Error> {
    let parsed = split_fields(text.trim()).and_then(|fields| match fields.as_slice() {
        [port] => Ok(SocketAddr::new(
            Ipv4Addr::UNSPECIFIED.into(),
            parse_port(port, "port")?,
        )),
        [host, port] => Ok(SocketAddr::new(
            parse_listen_host(host)?,
            parse_port(port, "port")?,
        )),
        _ => Err("too many ':' (write IPv6 addresses in brackets)".to_string()),
    });
    parsed.map_err(|reason| {
        Error::Usage(format!(
            "--metrics {text:?}: expected [HOST:]PORT, e.g. 9100 or 127.0.0.1:9100 ({reason})"
        ))
    })
}

/// Octal permission bits for a socket file: 1 to 4 digits from 0 to 7,
/// at most 777 (a socket has no use for set-id or sticky bits).
fn parse_mode(text: &str) -> Result<u32, Error> {
    let digits = text.trim();
    let valid =
        (1..=4).contains(&digits.len()) && digits.bytes().all(|b| (b'0'..=b'7').contains(&b));
    match u32::from_str_radix(digits, 8) {
        Ok(mode) if valid && mode <= 0o777 => Ok(mode),
        _ => Err(Error::Usage(format!(
            "--unix-mode {text:?}: expected permissions in octal from 0 to 777, e.g. 660 or 0600"
        ))),
    }
}

fn parse_max_conns(text: &str) -> Result<usize, Error> {
    match text.trim().parse::<usize>() {
        Ok(n) if (1..=1_000_000).contains(&n) => Ok(n),
        _ => Err(Error::Usage(format!(
            "--max-conns {text:?}: expected a whole number from 1 to 1000000"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(rules: &[&str]) -> Args {
        Args {
            rules: rules.iter().map(|s| s.to_string()).collect(),
            ..Args::default()
        }
    }

    use super::env::pairs as env;

    fn sources(config: &Config) -> Vec<String> {
        config.rules.iter().map(|r| r.source.to_string()).collect()
    }

    const REDIS: (&str, &str) = ("REDIS_PORT_6379_TCP", "tcp://10.0.0.2:6379");

    #[test]
    fn arguments_replace_the_environment() {
        let c = build(&args(&["1:a:1"]), &env(&[REDIS])).unwrap();
        assert_eq!(sources(&c), ["argument 1"]);
    }

    #[test]
    fn env_flag_reads_both() {
        let mut a = args(&["1:a:1"]);
        a.env = true;
        let c = build(&a, &env(&[REDIS])).unwrap();
        assert_eq!(sources(&c), ["argument 1", "variable REDIS_PORT_6379_TCP"]);
    }

    #[test]
    fn environment_when_no_arguments() {
        let c = build(&args(&[]), &env(&[REDIS])).unwrap();
        assert_eq!(sources(&c), ["variable REDIS_PORT_6379_TCP"]);
    }

    #[test]
    fn malformed_variable_is_ignored_when_arguments_replace_the_environment() {
        let c = build(&args(&["1:a:1"]), &env(&[("X_PORT_1_TCP", "junk")])).unwrap();
        assert_eq!(sources(&c), ["argument 1"]);
    }

    #[test]
    fn no_rules_says_how_to_give_one() {
        let err = build(&args(&[]), &env(&[("PATH", "/bin")])).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("RULE"), "{err}");
        assert!(err.to_string().contains("_PORT_"), "{err}");
    }

    #[test]
    fn identical_duplicates_are_merged() {
        let mut a = args(&["6379:10.0.0.2:6379", "0.0.0.0:6379:10.0.0.2:6379"]);
        a.env = true;
        let c = build(&a, &env(&[REDIS])).unwrap();
        assert_eq!(sources(&c), ["argument 1"]);
    }

    #[test]
    fn conflict_names_both_sources() {
        let mut a = args(&["6379:other:6379"]);
        a.env = true;
        let msg = build(&a, &env(&[REDIS])).unwrap_err().to_string();
        assert!(msg.contains("argument 1"), "{msg}");
        assert!(msg.contains("variable REDIS_PORT_6379_TCP"), "{msg}");
        assert!(msg.contains("different targets"), "{msg}");
    }

    #[test]
    fn a_tcp_and_a_udp_rule_may_share_a_port() {
        let c = build(&args(&["53:dns:53", "53:dns:53/udp"]), &[]).unwrap();
        assert_eq!(c.rules.len(), 2);
    }

    #[test]
    fn udp_rules_conflict_among_themselves() {
        let msg = build(&args(&["53:a:53/udp", "0.0.0.0:53:b:53/udp"]), &[])
            .unwrap_err()
            .to_string();
        assert!(msg.contains("different targets"), "{msg}");
        let msg = build(&args(&["53:a:53/udp", "127.0.0.1:53:a:53/udp"]), &[])
            .unwrap_err()
            .to_string();
        assert!(msg.contains("overlapping"), "{msg}");
    }

    #[test]
    fn overlapping_listen_addresses_conflict() {
        for pair in [
            ["6379:a:1", "127.0.0.1:6379:a:1"],
            ["[::]:6379:a:1", "127.0.0.1:6379:a:1"],
            ["[::]:6379:a:1", "[::1]:6379:a:1"],
        ] {
            let msg = build(&args(&pair), &[]).unwrap_err().to_string();
            assert!(msg.contains("overlapping"), "{pair:?}: {msg}");
        }
    }

    #[test]
    fn distinct_addresses_on_one_port_coexist() {
        let c = build(
            &args(&[
                "127.0.0.1:1:a:1",
                "127.0.0.2:1:a:1",
                "[::1]:1:a:1",
                "0.0.0.0:2:a:1",
                "[::1]:2:a:1",
            ]),
            &[],
        )
        .unwrap();
        assert_eq!(c.rules.len(), 5);
    }

    #[test]
    fn bad_rule_names_the_argument() {
        let err = build(&args(&["1:a:1", "nonsense"]), &[]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(
            err.to_string().starts_with("argument 2 \"nonsense\""),
            "{err}"
        );
    }

    #[test]
    fn defaults() {
        let c = build(&args(&["1:a:1"]), &[]).unwrap();
        assert_eq!(c.connect_timeout, Duration::from_secs(10));
        assert_eq!(c.idle_timeout, None);
        assert_eq!(c.max_conns, 4096);
        assert_eq!(c.udp_timeout, Duration::from_secs(60));
    }

    #[test]
    fn fractional_seconds() {
        let mut a = args(&["1:a:1"]);
        a.connect_timeout = Some("0.5".into());
        a.idle_timeout = Some("2".into());
        let c = build(&a, &[]).unwrap();
        assert_eq!(c.connect_timeout, Duration::from_millis(500));
        assert_eq!(c.idle_timeout, Some(Duration::from_secs(2)));
    }

    #[test]
    fn bad_seconds_name_the_option() {
        for text in ["0", "-1", "abc", "", "nan", "inf", "1e300", "0.0000000001"] {
            let mut a = args(&["1:a:1"]);
            a.idle_timeout = Some(text.into());
            let msg = build(&a, &[]).unwrap_err().to_string();
            assert!(msg.contains("--idle-timeout"), "{text}: {msg}");
        }
    }

    #[test]
    fn drain_and_allow() {
        let c = build(&args(&["1:a:1"]), &[]).unwrap();
        assert_eq!(c.drain, Duration::ZERO);
        assert!(c.allow.is_empty());
        let mut a = args(&["1:a:1"]);
        a.drain = Some("2.5".into());
        a.allow = vec!["127.0.0.2".into(), "10.0.0.0/8,::1".into()];
        let c = build(&a, &[]).unwrap();
        assert_eq!(c.drain, Duration::from_millis(2500));
        assert_eq!(c.allow.to_string(), "127.0.0.2/32,10.0.0.0/8,::1/128");
    }

    #[test]
    fn bad_drain_and_allow_name_the_option() {
        for text in ["-1", "x", "", "inf"] {
            let mut a = args(&["1:a:1"]);
            a.drain = Some(text.into());
            let msg = build(&a, &[]).unwrap_err().to_string();
            assert!(msg.contains("--drain"), "{text}: {msg}");
        }
        let mut a = args(&["1:a:1"]);
        a.allow = vec!["10.0.0.0/33".into()];
        let err = build(&a, &[]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert_eq!(
            err.to_string(),
            "--allow \"10.0.0.0/33\": the prefix length must be from 0 to 32\n\
             Try 'ambassador --help' for more information."
        );
    }

    #[test]
    fn unix_mode_is_octal() {
        let c = build(&args(&["1:a:1"]), &[]).unwrap();
        assert_eq!(c.unix_mode, None);
        for (text, mode) in [("660", 0o660), ("0600", 0o600), ("7", 0o7), ("0777", 0o777)] {
            let mut a = args(&["1:a:1"]);
            a.unix_mode = Some(text.into());
            assert_eq!(build(&a, &[]).unwrap().unix_mode, Some(mode), "{text}");
        }
        for text in ["", "8", "1000", "4755", "0o660", "rw", "-1", "66 0"] {
            let mut a = args(&["1:a:1"]);
            a.unix_mode = Some(text.into());
            let msg = build(&a, &[]).unwrap_err().to_string();
            assert!(
                msg.starts_with(&format!(
                    "--unix-mode {text:?}: expected permissions in octal"
                )),
                "{text}: {msg}"
            );
        }
    }

    #[test]
    fn two_rules_on_one_unix_path_conflict_and_duplicates_merge() {
        let msg = build(
            &args(&["unix:/run/a.sock:a:1", "unix:/run/a.sock:b:1"]),
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(msg.contains("different targets"), "{msg}");
        let c = build(
            &args(&["unix:/run/a.sock:a:1", "unix:/run/a.sock:a:1"]),
            &[],
        )
        .unwrap();
        assert_eq!(c.rules.len(), 1);
        let c = build(
            &args(&["unix:/run/a.sock:a:1", "unix:/run/b.sock:a:1"]),
            &[],
        )
        .unwrap();
        assert_eq!(c.rules.len(), 2);
    }

    #[test]
    fn proxy_protocol_options() {
        let c = build(&args(&["1:a:1"]), &[]).unwrap();
        assert_eq!((c.send_proxy, c.accept_proxy.is_empty()), (None, true));
        assert!(c.forwarding_options().is_empty());
        let mut a = args(&["1:a:1"]);
        a.send_proxy = Some("v2".into());
        a.accept_proxy = vec!["10.0.0.2".into(), "fd00::/8".into()];
        let c = build(&a, &[]).unwrap();
        assert_eq!(c.send_proxy, Some(SendProxy::V2));
        assert_eq!(
            c.forwarding_options(),
            ["--send-proxy v2", "--accept-proxy 10.0.0.2/32,fd00::/8"]
        );
        a.send_proxy = Some("v3".into());
        let msg = build(&a, &[]).unwrap_err().to_string();
        assert!(
            msg.starts_with("--send-proxy \"v3\": expected v1 (text) or v2 (binary)"),
            "{msg}"
        );
        a.send_proxy = None;
        a.accept_proxy = vec!["10.0.0.0/33".into()];
        let msg = build(&a, &[]).unwrap_err().to_string();
        assert!(
            msg.starts_with(
                "--accept-proxy \"10.0.0.0/33\": the prefix length must be from 0 to 32"
            ),
            "{msg}"
        );
    }

    #[test]
    fn balance_is_first_unless_round_robin_is_asked() {
        let c = build(&args(&["1:a:1"]), &[]).unwrap();
        assert_eq!(c.balance, Balance::First);
        assert!(c.forwarding_options().is_empty());
        let mut a = args(&["1:a:1"]);
        a.balance = Some("round-robin".into());
        let c = build(&a, &[]).unwrap();
        assert_eq!(c.balance, Balance::RoundRobin);
        assert_eq!(c.forwarding_options(), ["--balance round-robin"]);
        a.balance = Some("first".into());
        assert_eq!(build(&a, &[]).unwrap().balance, Balance::First);
        a.balance = Some("random".into());
        let msg = build(&a, &[]).unwrap_err().to_string();
        assert!(msg.starts_with("--balance \"random\": expected first (failover) or round-robin"));
    }

    #[test]
    fn metrics_listen_like_a_rule() {
        let at = |text: &str| {
            let mut a = args(&["1:a:1"]);
            a.metrics = Some(text.into());
            build(&a, &[]).map(|c| c.metrics.unwrap().to_string())
        };
        assert_eq!(at("9100").unwrap(), "0.0.0.0:9100");
        assert_eq!(at("127.0.0.1:9100").unwrap(), "127.0.0.1:9100");
        assert_eq!(at("[::1]:9100").unwrap(), "[::1]:9100");
        for bad in [
            "",
            "0",
            "localhost:9100",
            "::1:9100",
            "9100:9101:1",
            "[::1]",
        ] {
            let msg = at(bad).unwrap_err().to_string();
            assert!(
                msg.starts_with(&format!("--metrics {bad:?}: expected [HOST:]PORT")),
                "{bad}: {msg}"
            );
        }
    }

    #[test]
    fn bad_max_conns() {
        for text in ["0", "-1", "x", "1.5", "99999999999999999999999"] {
            let mut a = args(&["1:a:1"]);
            a.max_conns = Some(text.into());
            let msg = build(&a, &[]).unwrap_err().to_string();
            assert!(msg.contains("--max-conns"), "{text}: {msg}");
        }
    }
}
