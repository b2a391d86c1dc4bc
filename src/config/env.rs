//! Rules from environment variables in the classic ambassador form,
//! `<NAME>_PORT_<P>_TCP=tcp://<HOST>:<PORT>`, as Docker's legacy links and
//! Kubernetes write them, and their UDP twin `<NAME>_PORT_<P>_UDP=udp://...`.
//! Pure: the caller reads the environment and passes the pairs in, so every
//! case is testable without touching the process.

use std::ffi::OsString;
use std::net::{Ipv4Addr, SocketAddr};

use super::address::parse_port;
use super::rule::{Listen, Proto, Rule, Source, Target};
use crate::error::Error;

/// Turns every link-style variable into a rule listening on 0.0.0.0:P, TCP
/// or UDP as the name ends.
///
/// Variables whose name contains `_ENV_` are a linked container's own
/// environment, not links, and are skipped. Where Docker wrote a sibling
/// `<NAME>_NAME=/<parent>/<alias>`, the alias comes first among the targets:
/// Docker keeps it current in /etc/hosts while the variable keeps the address
/// the linked container had when this one started.
pub fn rules_from_env(vars: &[(String, String)]) -> Result<Vec<Rule>, Error> {
    let mut rules = Vec::new();
    for (name, value) in vars {
        let Some((prefix, port_text, proto)) = split_link_name(name) else {
            continue;
        };
        if name.contains("_ENV_") {
            log::debug!("skipping {name}: a linked container's environment, not a link");
            continue;
        }
        let bad = |reason: String| Error::BadVariable {
            name: name.clone(),
            value: value.clone(),
            reason,
        };
        let port = parse_port(port_text, "the port in the name").map_err(bad)?;
        let scheme = scheme(proto);
        let address = value
            .strip_prefix(scheme)
            .and_then(|rest| rest.strip_prefix("://"))
            .ok_or_else(String::new)
            .and_then(Target::parse)
            .map_err(|reason| bad(expected_form(scheme, reason)))?;
        // A link is to a host and port: `tcp://unix:/path` is not one.
        let Target::Net {
            port: target_port, ..
        } = address
        else {
            return Err(bad(expected_form(scheme, String::new())));
        };
        let alias = link_alias(vars, prefix, target_port);
        rules.push(Rule::new(
            Listen::new(proto, SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port)),
            alias.into_iter().chain([address]).collect(),
            Source::Variable(name.clone()),
        ));
    }
    // The environment has no order of its own; make --check and logs stable.
    rules.sort_by_key(|r| r.source.to_string());
    Ok(rules)
}

/// Environment pairs as text. A byte that is not UTF-8 becomes U+FFFD, so
/// a link variable that holds one fails to parse with a message naming it.
pub fn lossy_pairs(vars: impl IntoIterator<Item = (OsString, OsString)>) -> Vec<(String, String)> {
    vars.into_iter()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.to_string_lossy().into_owned(),
            )
        })
        .collect()
}

/// Owned pairs from string literals, for the tests of this crate.
#[cfg(test)]
pub fn pairs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

fn scheme(proto: Proto) -> &'static str {
    match proto {
        Proto::Tcp => "tcp",
        Proto::Udp => "udp",
    }
}

/// "expected tcp://HOST:PORT", with the parser's reason when it had one.
fn expected_form(scheme: &str, reason: String) -> String {
    match reason.is_empty() {
        true => format!("expected {scheme}://HOST:PORT"),
        false => format!("expected {scheme}://HOST:PORT ({reason})"),
    }
}

/// `REDIS_PORT_6379_TCP` -> `("REDIS", "6379", Tcp)`; `_UDP` likewise. Like
/// the classic sed script, the longest prefix wins. None for other shapes.
fn split_link_name(name: &str) -> Option<(&str, &str, Proto)> {
    let (stem, proto) = match name.strip_suffix("_TCP") {
        Some(stem) => (stem, Proto::Tcp),
        None => (name.strip_suffix("_UDP")?, Proto::Udp),
    };
    let at = stem.rfind("_PORT_")?;
    let port = &stem[at + "_PORT_".len()..];
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((&stem[..at], port, proto))
}

/// The alias Docker wrote in `<prefix>_NAME=/<parent>/<alias>`, as a target.
fn link_alias(vars: &[(String, String)], prefix: &str, port: u16) -> Option<Target> {
    let wanted = format!("{prefix}_NAME");
    let (_, value) = vars.iter().find(|(name, _)| *name == wanted)?;
    let alias = value.strip_prefix('/')?.rsplit('/').next()?;
    match Target::parse(&format!("{alias}:{port}")) {
        Ok(target) => Some(target),
        Err(reason) => {
            log::debug!("ignoring {wanted}={value:?}: {reason}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::pairs as vars;

    fn shown(rules: &[Rule]) -> Vec<String> {
        rules.iter().map(|r| format!("{r} {}", r.source)).collect()
    }

    #[test]
    fn hand_written_variable_listens_on_the_port_in_its_name() {
        let rules = rules_from_env(&vars(&[("REDIS_PORT_1234_TCP", "tcp://192.168.1.52:6379")]));
        assert_eq!(
            shown(&rules.unwrap()),
            ["0.0.0.0:1234:192.168.1.52:6379 variable REDIS_PORT_1234_TCP"]
        );
    }

    #[test]
    fn docker_link_puts_the_alias_first() {
        // What `docker run --link redis:redis` writes, from the classic article.
        let env = vars(&[
            ("REDIS_PORT", "tcp://172.17.0.136:6379"),
            ("REDIS_PORT_6379_TCP_ADDR", "172.17.0.136"),
            ("REDIS_NAME", "/redis_ambassador/redis"),
            ("REDIS_PORT_6379_TCP_PORT", "6379"),
            ("REDIS_PORT_6379_TCP_PROTO", "tcp"),
            ("REDIS_PORT_6379_TCP", "tcp://172.17.0.136:6379"),
            ("HOSTNAME", "19d7adf4705e"),
        ]);
        assert_eq!(
            shown(&rules_from_env(&env).unwrap()),
            ["0.0.0.0:6379:redis:6379,172.17.0.136:6379 variable REDIS_PORT_6379_TCP"]
        );
    }

    #[test]
    fn alias_uses_the_port_of_the_value() {
        let env = vars(&[
            ("DB_NAME", "/app/db"),
            ("DB_PORT_15432_TCP", "tcp://10.0.0.2:5432"),
        ]);
        let rules = rules_from_env(&env).unwrap();
        assert_eq!(
            shown(&rules),
            ["0.0.0.0:15432:db:5432,10.0.0.2:5432 variable DB_PORT_15432_TCP"]
        );
    }

    #[test]
    fn odd_link_names_are_ignored() {
        for name in ["noslash", "/", "/a/bad alias", "/a/"] {
            let env = vars(&[("X_NAME", name), ("X_PORT_1_TCP", "tcp://h:1")]);
            assert_eq!(
                shown(&rules_from_env(&env).unwrap()),
                ["0.0.0.0:1:h:1 variable X_PORT_1_TCP"],
                "{name}"
            );
        }
    }

    #[test]
    fn skips_forwarded_env_vars() {
        let env = vars(&[("REDIS_ENV_OTHER_PORT_6379_TCP", "tcp://10.0.0.9:6379")]);
        assert!(rules_from_env(&env).unwrap().is_empty());
    }

    #[test]
    fn skips_forwarded_env_vars_even_when_malformed() {
        let env = vars(&[("WEB_ENV_X_PORT_80_TCP", "garbage")]);
        assert!(rules_from_env(&env).unwrap().is_empty());
    }

    #[test]
    fn ignores_variables_of_other_shapes() {
        let env = vars(&[
            ("PATH", "/bin"),
            ("REDIS_PORT", "tcp://1.2.3.4:6379"),
            ("REDIS_PORT_6379_TCP_ADDR", "1.2.3.4"),
            ("REDIS_PORT_X_TCP", "tcp://1.2.3.4:1"),
            ("REDIS_PORT__TCP", "tcp://1.2.3.4:1"),
        ]);
        assert!(rules_from_env(&env).unwrap().is_empty());
    }

    #[test]
    fn udp_link_variables_are_udp_rules() {
        // What `docker run --link dns:dns` writes for an image that exposes 53/udp.
        let env = vars(&[
            ("DNS_NAME", "/me/dns"),
            ("DNS_PORT_53_UDP", "udp://172.17.0.3:53"),
            ("DNS_PORT_53_UDP_ADDR", "172.17.0.3"),
            ("DNS_PORT_53_UDP_PROTO", "udp"),
            ("STATSD_PORT_8125_UDP", "udp://10.0.0.4:8125"),
        ]);
        assert_eq!(
            shown(&rules_from_env(&env).unwrap()),
            [
                "0.0.0.0:53:dns:53,172.17.0.3:53/udp variable DNS_PORT_53_UDP",
                "0.0.0.0:8125:10.0.0.4:8125/udp variable STATSD_PORT_8125_UDP",
            ]
        );
    }

    #[test]
    fn skips_forwarded_udp_env_vars() {
        let env = vars(&[("A_ENV_B_PORT_53_UDP", "junk")]);
        assert!(rules_from_env(&env).unwrap().is_empty());
    }

    #[test]
    fn malformed_udp_values_name_the_variable() {
        for value in [
            "",
            "tcp://1.2.3.4:53",
            "udp://",
            "udp://x",
            "udp:/1.2.3.4:53",
        ] {
            let msg = error_for("DNS_PORT_53_UDP", value);
            assert!(msg.starts_with("variable DNS_PORT_53_UDP="), "{msg}");
            assert!(msg.contains("expected udp://HOST:PORT"), "{msg}");
        }
    }

    #[test]
    fn ipv6_target_in_brackets() {
        let env = vars(&[("V6_PORT_80_TCP", "tcp://[2001:db8::5]:8080")]);
        assert_eq!(
            shown(&rules_from_env(&env).unwrap()),
            ["0.0.0.0:80:[2001:db8::5]:8080 variable V6_PORT_80_TCP"]
        );
    }

    #[test]
    fn kubernetes_service_variables() {
        let env = vars(&[
            ("REDIS_MASTER_SERVICE_HOST", "10.0.0.11"),
            ("REDIS_MASTER_PORT_6379_TCP", "tcp://10.0.0.11:6379"),
            ("KUBERNETES_PORT_443_TCP", "tcp://10.0.0.1:443"),
        ]);
        assert_eq!(
            shown(&rules_from_env(&env).unwrap()),
            [
                "0.0.0.0:443:10.0.0.1:443 variable KUBERNETES_PORT_443_TCP",
                "0.0.0.0:6379:10.0.0.11:6379 variable REDIS_MASTER_PORT_6379_TCP",
            ]
        );
    }

    #[test]
    fn longest_prefix_wins_like_the_sed_script() {
        let env = vars(&[("A_PORT_1_TCP_PORT_2_TCP", "tcp://h:3")]);
        assert_eq!(
            shown(&rules_from_env(&env).unwrap()),
            ["0.0.0.0:2:h:3 variable A_PORT_1_TCP_PORT_2_TCP"]
        );
    }

    fn error_for(name: &str, value: &str) -> String {
        rules_from_env(&vars(&[(name, value)]))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn malformed_values_name_the_variable() {
        for value in [
            "",
            "x",
            "tcp://",
            "tcp://x",
            "udp://1.2.3.4:1",
            "tcp://1.2.3.4:0",
            "tcp://1.2.3.4:70000",
            "tcp://2001:db8::1:80",
            "tcp://1.2.3.4:80/",
            " tcp://1.2.3.4:80",
        ] {
            let msg = error_for("REDIS_PORT_6379_TCP", value);
            assert!(msg.starts_with("variable REDIS_PORT_6379_TCP="), "{msg}");
            assert!(msg.contains("expected tcp://HOST:PORT"), "{msg}");
        }
    }

    #[test]
    fn port_out_of_range_in_the_name() {
        for name in ["R_PORT_0_TCP", "R_PORT_65536_TCP", "R_PORT_000001_TCP"] {
            let msg = error_for(name, "tcp://h:1");
            assert!(msg.contains("from 1 to 65535"), "{msg}");
        }
    }

    #[test]
    fn rules_are_sorted_by_variable_name() {
        let env = vars(&[("B_PORT_2_TCP", "tcp://b:2"), ("A_PORT_1_TCP", "tcp://a:1")]);
        let rules = rules_from_env(&env).unwrap();
        assert_eq!(rules[0].source, Source::Variable("A_PORT_1_TCP".into()));
    }
}
