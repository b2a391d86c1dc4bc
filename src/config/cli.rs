//! The command line: getopts options and the usage text. Values stay as the
//! user typed them; mod.rs validates them.

use std::ffi::OsString;

use getopts::Options;

use crate::error::Error;

/// The command line as typed, options recognised but not yet validated.
#[derive(Debug, Default)]
pub struct Args {
    pub help: bool,
    pub version: bool,
    /// How many times -v was given.
    pub verbose: usize,
    pub quiet: bool,
    pub env: bool,
    pub check: bool,
    pub healthcheck: bool,
    pub connect_timeout: Option<String>,
    pub idle_timeout: Option<String>,
    pub max_conns: Option<String>,
    pub udp_timeout: Option<String>,
    /// Every --allow value, in order.
    pub allow: Vec<String>,
    pub drain: Option<String>,
    pub unix_mode: Option<String>,
    pub send_proxy: Option<String>,
    pub balance: Option<String>,
    /// Every --accept-proxy value, in order.
    pub accept_proxy: Vec<String>,
    pub metrics: Option<String>,
    /// RULE arguments in order.
    pub rules: Vec<String>,
}

fn options() -> Options {
    let mut opts = Options::new();
    opts.optflag("h", "help", "print this help and exit")
        .optflag("V", "version", "print the version and exit")
        .optflagmulti("v", "verbose", "more logging: -v debug, -vv trace")
        .optflag("q", "quiet", "log errors only")
        .optflag(
            "",
            "env",
            "read environment rules even when RULE arguments are given",
        )
        .optflag(
            "",
            "check",
            "print the rules that would run, with their sources, and the options that change \
             how they forward; exit",
        )
        .optopt(
            "",
            "connect-timeout",
            "give up connecting to one target address after SECS (default 10)",
            "SECS",
        )
        .optopt(
            "",
            "idle-timeout",
            "close a connection that moved no byte either way for SECS (default never)",
            "SECS",
        )
        .optopt(
            "",
            "max-conns",
            "at most N connections and UDP sessions at once, all rules together (default 4096)",
            "N",
        )
        .optopt(
            "",
            "udp-timeout",
            "end a UDP session that carried no datagram either way for SECS (default 60)",
            "SECS",
        )
        .optmulti(
            "",
            "allow",
            "serve only IP clients in these address ranges (repeatable; default everyone); \
             a unix listener serves whoever its file's permissions admit",
            "CIDR[,CIDR...]",
        )
        .optopt(
            "",
            "drain",
            "on SIGTERM/SIGINT stop accepting, let open connections run up to SECS, then reset them (default 0)",
            "SECS",
        )
        .optopt(
            "",
            "unix-mode",
            "permissions of the unix socket files ambassador creates, in octal (default: as the umask leaves them)",
            "MODE",
        )
        .optopt(
            "",
            "send-proxy",
            "begin every connection to a target with a PROXY protocol header carrying the client's \
             address (v1 text, v2 binary)",
            "v1|v2",
        )
        .optmulti(
            "",
            "accept-proxy",
            "peers in these ranges must begin with a PROXY header (v1 or v2, within 5 s); its source \
             then stands for the client (--allow, logs, counters, --send-proxy); repeatable",
            "CIDR[,CIDR...]",
        )
        .optopt(
            "",
            "balance",
            "which target a new connection or UDP session tries first: the first that is up, in \
             the rule's order (default, failover), or round-robin: one further along each time",
            "first|round-robin",
        )
        .optopt(
            "",
            "metrics",
            "serve Prometheus metrics over HTTP at /metrics on this address (keep it off public networks)",
            "[HOST:]PORT",
        )
        .optflag(
            "",
            "healthcheck",
            "probe each rule's listen port and one of its targets; exit 0 if all pass",
        );
    opts
}

/// Parses the arguments after the program name.
pub fn parse(args: &[OsString]) -> Result<Args, Error> {
    let m = options()
        .parse(args)
        .map_err(|e| Error::Usage(e.to_string()))?;
    let parsed = Args {
        help: m.opt_present("help"),
        version: m.opt_present("version"),
        verbose: m.opt_count("verbose"),
        quiet: m.opt_present("quiet"),
        env: m.opt_present("env"),
        check: m.opt_present("check"),
        healthcheck: m.opt_present("healthcheck"),
        connect_timeout: m.opt_str("connect-timeout"),
        idle_timeout: m.opt_str("idle-timeout"),
        max_conns: m.opt_str("max-conns"),
        udp_timeout: m.opt_str("udp-timeout"),
        allow: m.opt_strs("allow"),
        drain: m.opt_str("drain"),
        unix_mode: m.opt_str("unix-mode"),
        send_proxy: m.opt_str("send-proxy"),
        accept_proxy: m.opt_strs("accept-proxy"),
        metrics: m.opt_str("metrics"),
        balance: m.opt_str("balance"),
        rules: m.free,
    };
    if parsed.quiet && parsed.verbose > 0 {
        return Err(Error::Usage(
            "--quiet and --verbose contradict each other".into(),
        ));
    }
    if parsed.check && parsed.healthcheck {
        return Err(Error::Usage(
            "--check and --healthcheck cannot be given together".into(),
        ));
    }
    Ok(parsed)
}

/// The text of --help.
pub fn usage() -> String {
    let brief = "\
Usage: ambassador [OPTIONS] [RULE ...]

Forwards TCP and unix-socket connections and UDP datagrams: the ambassador pattern for containers.

RULE := LISTEN:TARGET[,TARGET ...][/tcp|/udp]
LISTEN := [LISTEN_HOST:]LISTEN_PORT | unix:PATH    TARGET := HOST:PORT | unix:PATH
HOST is a name (resolved at each connection or UDP session), an IPv4 address or [IPv6];
a name ending in .local is asked on the local link by multicast DNS (avahi, Bonjour),
never the resolver, and its answer kept for its TTL (at most 120 s).
PATH is /absolute/path or @name (Linux's abstract namespace: no file, no permissions,
any process in the same network namespace may connect); at most 107 bytes, no ':' or ','.

  6379:192.168.1.52:6379            listen on 0.0.0.0:6379, forward to 192.168.1.52:6379
  127.0.0.1:8080:web:80             listen on loopback only
  [::]:6379:[2001:db8::5]:6379      IPv6 on both sides
  6379:vm1.local:6379               the host vm1 on the local link, by its mDNS name
  6379:redis-a:6379,redis-b:6379    failover: targets are tried in order, those found down last
  5353:dns:53/udp                   UDP: a session per client address, replies from the address it wrote to
  127.0.0.1:2375:unix:/var/run/docker.sock    a unix socket served on a TCP port
  unix:/run/shared/redis.sock:redis:6379      a unix socket (in a shared volume) forwarded to TCP

With no RULE, rules come from variables <NAME>_PORT_<P>_TCP=tcp://<HOST>:<PORT>
and <NAME>_PORT_<P>_UDP=udp://<HOST>:<PORT> (as Docker links write them), each
listening on 0.0.0.0:P.

Sockets handed over: with LISTEN_PID and LISTEN_FDS (systemd's socket activation)
a rule takes the socket bound where it listens. With -proto as the first argument,
ambassador runs as dockerd's userland proxy (dockerd --userland-proxy-path).

Signals: SIGTERM and SIGINT stop (after --drain, if given; a second one stops at
once); SIGUSR1 logs each rule's counters (open, served, denied, no target, bytes)
at info level, so -q silences them.

Exit codes: 0 after SIGTERM or SIGINT, 1 runtime failure, 2 usage or configuration error.";
    options().usage(brief)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_strs(args: &[&str]) -> Result<Args, Error> {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        parse(&args)
    }

    #[test]
    fn rules_and_options_in_any_order() {
        let a = parse_strs(&["6379:r:6379", "-vv", "--env", "1:a:1", "--max-conns", "5"]).unwrap();
        assert_eq!(a.rules, ["6379:r:6379", "1:a:1"]);
        assert_eq!(a.verbose, 2);
        assert!(a.env);
        assert_eq!(a.max_conns.as_deref(), Some("5"));
    }

    #[test]
    fn unknown_option_is_a_usage_error() {
        let err = parse_strs(&["--nope"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("nope"), "{err}");
    }

    #[test]
    fn missing_option_value_is_a_usage_error() {
        let err = parse_strs(&["--idle-timeout"]).unwrap_err();
        assert!(err.to_string().contains("idle-timeout"), "{err}");
    }

    #[test]
    fn allow_is_repeatable_and_kept_in_order() {
        let a = parse_strs(&["--allow", "10.0.0.0/8", "--allow", "::1,127.0.0.1"]).unwrap();
        assert_eq!(a.allow, ["10.0.0.0/8", "::1,127.0.0.1"]);
    }

    #[test]
    fn repeated_option_is_a_usage_error() {
        assert!(parse_strs(&["--max-conns", "1", "--max-conns", "2"]).is_err());
    }

    #[test]
    fn quiet_and_verbose_contradict() {
        assert!(parse_strs(&["-q", "-v"]).is_err());
    }

    #[test]
    fn check_and_healthcheck_exclude_each_other() {
        assert!(parse_strs(&["--check", "--healthcheck"]).is_err());
    }

    #[test]
    fn double_dash_ends_options() {
        let a = parse_strs(&["--", "1:a:1"]).unwrap();
        assert_eq!(a.rules, ["1:a:1"]);
    }

    #[test]
    fn usage_lists_every_option() {
        let text = usage();
        for opt in [
            "--help",
            "--version",
            "--verbose",
            "--quiet",
            "--env",
            "--check",
            "--connect-timeout",
            "--idle-timeout",
            "--max-conns",
            "--udp-timeout",
            "--allow",
            "--drain",
            "--unix-mode",
            "--send-proxy",
            "--accept-proxy",
            "--metrics",
            "--healthcheck",
        ] {
            assert!(text.contains(opt), "{opt}");
        }
    }
}
