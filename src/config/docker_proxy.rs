//! The command line dockerd gives its userland proxy, the process that
//! serves a published port (`docker run -p`): ambassador takes that place
//! when dockerd is started with `--userland-proxy-path` pointing at it.
//! The arguments follow Go's flag package (one dash or two, the value as
//! the next argument or after `=`; a boolean flag alone is true):
//!
//!     -proto tcp|udp|sctp -host-ip IP -host-port P -container-ip IP -container-port P [-use-listen-fd]
//!
//! and make one rule, HOST_IP:HOST_PORT to CONTAINER_IP:CONTAINER_PORT.
//! Pure: the caller reports on descriptor 3 (serve/) and takes the socket
//! from descriptor 4 when asked to.

use std::net::{IpAddr, SocketAddr};

use super::rule::{Listen, Proto, Rule, Source, Target};

/// What dockerd asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerProxy {
    pub rule: Rule,
    /// -use-listen-fd: the listening (or bound UDP) socket is descriptor 4.
    pub use_listen_fd: bool,
}

/// True when a command line is dockerd's for its userland proxy.
pub fn is_docker_proxy(first: Option<&str>) -> bool {
    let flag = first.and_then(flag);
    flag.is_some_and(|f| f == "proto" || f.starts_with("proto="))
}

/// A Go flag without its dash or two; None for an argument that is no flag.
fn flag(arg: &str) -> Option<&str> {
    arg.strip_prefix("--").or_else(|| arg.strip_prefix('-'))
}

/// Parses dockerd's arguments (all of them, the program name excluded).
pub fn parse(args: &[String]) -> Result<DockerProxy, String> {
    let mut flags = Flags::default();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let Some(flag) = flag(arg) else {
            return Err(format!("{arg:?}: expected a flag (-proto, -host-ip, -host-port, -container-ip, -container-port, -use-listen-fd)"));
        };
        let (name, inline) = match flag.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (flag, None),
        };
        if name == "use-listen-fd" {
            flags.use_listen_fd = match inline {
                None | Some("true" | "1" | "t" | "T" | "TRUE" | "True") => true,
                Some("false" | "0" | "f" | "F" | "FALSE" | "False") => false,
                Some(other) => {
                    return Err(format!("-use-listen-fd={other}: expected true or false"))
                }
            };
            continue;
        }
        let slot = match name {
            "proto" => &mut flags.proto,
            "host-ip" => &mut flags.host_ip,
            "host-port" => &mut flags.host_port,
            "container-ip" => &mut flags.container_ip,
            "container-port" => &mut flags.container_port,
            _ => return Err(format!("flag provided but not defined: -{name}")),
        };
        let value = match inline {
            Some(value) => value,
            None => rest
                .next()
                .ok_or_else(|| format!("flag needs an argument: -{name}"))?,
        };
        *slot = Some(value.to_string());
    }
    flags.build()
}

/// The flags as given, each at most once (a later one wins, as in Go).
#[derive(Default)]
struct Flags {
    proto: Option<String>,
    host_ip: Option<String>,
    host_port: Option<String>,
    container_ip: Option<String>,
    container_port: Option<String>,
    use_listen_fd: bool,
}

impl Flags {
    fn build(self) -> Result<DockerProxy, String> {
        let proto = match self.proto.as_deref().unwrap_or("tcp") {
            "tcp" => Proto::Tcp,
            "udp" => Proto::Udp,
            "sctp" => return Err("-proto sctp: ambassador forwards TCP and UDP only".into()),
            other => return Err(format!("-proto {other:?}: expected tcp, udp or sctp")),
        };
        let host = address("host", self.host_ip, self.host_port)?;
        let container = address("container", self.container_ip, self.container_port)?;
        let target = Target::Net {
            host: container.ip().to_string(),
            port: container.port(),
        };
        let rule = Rule::new(Listen::new(proto, host), vec![target], Source::Argument(1));
        Ok(DockerProxy {
            rule,
            use_listen_fd: self.use_listen_fd,
        })
    }
}

/// `-WHAT-ip` and `-WHAT-port` as an address; both must be given.
fn address(what: &str, ip: Option<String>, port: Option<String>) -> Result<SocketAddr, String> {
    let ip = ip.ok_or_else(|| format!("-{what}-ip is missing"))?;
    let parsed: IpAddr = ip
        .parse()
        .map_err(|_| format!("-{what}-ip {ip:?}: expected an IP address"))?;
    let port = port.ok_or_else(|| format!("-{what}-port is missing"))?;
    let number = port
        .parse::<u16>()
        .ok()
        .filter(|&p| p != 0)
        .ok_or_else(|| format!("-{what}-port {port:?}: expected a port number"))?;
    Ok(SocketAddr::new(parsed, number))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strs(args: &[&str]) -> Vec<String> {
        args.iter().map(|a| a.to_string()).collect()
    }

    fn parsed(args: &[&str]) -> Result<DockerProxy, String> {
        parse(&strs(args))
    }

    const TCP: [&str; 10] = [
        "-proto",
        "tcp",
        "-host-ip",
        "0.0.0.0",
        "-host-port",
        "8080",
        "-container-ip",
        "172.17.0.2",
        "-container-port",
        "80",
    ];

    #[test]
    fn dockerd_s_command_line_is_one_rule() {
        let p = parsed(&TCP).unwrap();
        assert_eq!(p.rule.to_string(), "0.0.0.0:8080:172.17.0.2:80");
        assert!(!p.use_listen_fd);
    }

    #[test]
    fn go_flag_forms_read_the_same() {
        let p = parsed(&[
            "--proto=udp",
            "-host-ip=::1",
            "-host-port",
            "53",
            "--container-ip",
            "fd00::2",
            "-container-port=5353",
            "-use-listen-fd",
        ])
        .unwrap();
        assert_eq!(p.rule.to_string(), "[::1]:53:[fd00::2]:5353/udp");
        assert!(p.use_listen_fd);
        let mut off = TCP.to_vec();
        off.push("-use-listen-fd=false");
        assert!(!parsed(&off).unwrap().use_listen_fd);
    }

    #[test]
    fn bad_command_lines_say_what_is_wrong() {
        let mut sctp = TCP;
        sctp[1] = "sctp";
        assert_eq!(
            parsed(&sctp).unwrap_err(),
            "-proto sctp: ambassador forwards TCP and UDP only"
        );
        assert_eq!(
            parsed(&["-proto", "tcp", "-bogus", "1"]).unwrap_err(),
            "flag provided but not defined: -bogus"
        );
        assert_eq!(
            parsed(&["-host-port"]).unwrap_err(),
            "flag needs an argument: -host-port"
        );
        assert_eq!(parsed(&TCP[..8]).unwrap_err(), "-container-port is missing");
        let mut zero = TCP;
        zero[5] = "0";
        assert_eq!(
            parsed(&zero).unwrap_err(),
            "-host-port \"0\": expected a port number"
        );
        let mut port = TCP;
        port[5] = "99999";
        assert_eq!(
            parsed(&port).unwrap_err(),
            "-host-port \"99999\": expected a port number"
        );
        let mut ip = TCP;
        ip[7] = "container";
        assert_eq!(
            parsed(&ip).unwrap_err(),
            "-container-ip \"container\": expected an IP address"
        );
        assert!(parsed(&["tcp"])
            .unwrap_err()
            .starts_with("\"tcp\": expected a flag"));
    }

    #[test]
    fn only_a_first_proto_flag_means_dockerd() {
        assert!(is_docker_proxy(Some("-proto")));
        assert!(is_docker_proxy(Some("--proto=tcp")));
        assert!(!is_docker_proxy(Some("6379:redis:6379")));
        assert!(!is_docker_proxy(Some("--check")));
        assert!(!is_docker_proxy(None));
    }
}
