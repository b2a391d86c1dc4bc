//! --healthcheck, for HEALTHCHECK in an image with no shell: for each rule,
//! connect to its listen port on loopback (or on its own address) and to
//! one of its targets, and print one line per rule.

use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};

use crate::config::Config;
use crate::relay::connect_target;
use crate::rule::Rule;

/// Probes every rule, writes a line for each; true if every rule passed.
pub fn run(config: &Config, out: &mut impl Write) -> io::Result<bool> {
    let mut all_passed = true;
    for rule in &config.rules {
        let (passed, line) = probe(rule, config);
        all_passed &= passed;
        writeln!(
            out,
            "{} {rule}: {line}",
            if passed { "ok  " } else { "FAIL" }
        )?;
    }
    Ok(all_passed)
}

/// Where to reach a rule's listener from this host.
pub fn probe_address(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

fn probe(rule: &Rule, config: &Config) -> (bool, String) {
    let at = probe_address(rule.listen);
    let (listening, listen_text) = match TcpStream::connect_timeout(&at, config.connect_timeout) {
        Ok(_) => (true, format!("listening at {at}")),
        Err(e) => (false, format!("not listening at {at}: {e}")),
    };
    let mut failures = Vec::new();
    for target in &rule.targets {
        match connect_target(target, config.connect_timeout) {
            Ok((_, addr)) => {
                return (
                    listening,
                    format!("{listen_text}; target {target} answers at {addr}"),
                );
            }
            Err(e) => failures.push(format!("{target}: {e}")),
        }
    }
    (
        false,
        format!("{listen_text}; no target answers ({})", failures.join("; ")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_are_probed_on_loopback() {
        let p = |s: &str| probe_address(s.parse().unwrap()).to_string();
        assert_eq!(p("0.0.0.0:6379"), "127.0.0.1:6379");
        assert_eq!(p("[::]:6379"), "[::1]:6379");
        assert_eq!(p("10.1.2.3:80"), "10.1.2.3:80");
        assert_eq!(p("[fe80::1]:80"), "[fe80::1]:80");
    }
}
