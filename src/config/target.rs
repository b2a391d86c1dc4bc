//! A rule's target: a host and port over the network, or a unix socket;
//! parsing one (`HOST:PORT`, `[IPv6]:PORT`, `unix:PATH`) and writing it
//! back in the same syntax. Names are kept as given: they are resolved at
//! each connection, never here.

use std::fmt;

use super::address::{parse_port, parse_target_host, split_fields, UnixPath};

/// A place to forward to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A host and port over the network. `host` is a name, an IPv4 or an
    /// IPv6 address (without brackets); names are resolved at each
    /// connection, not here.
    Net { host: String, port: u16 },
    /// A unix stream socket.
    Unix(UnixPath),
}

impl Target {
    /// Parses one `HOST:PORT` or `unix:PATH` target, HOST being a name,
    /// IPv4 or `[IPv6]`.
    pub fn parse(text: &str) -> Result<Target, String> {
        match split_fields(text)?.as_slice() {
            [host, port] => target_from_fields(host, port),
            _ => Err(format!(
                "target {text:?}: expected HOST:PORT or unix:PATH \
                 (write IPv6 addresses in brackets)"
            )),
        }
    }
}

/// A target from its two fields: `unix` and a path, or a host and a port.
pub fn target_from_fields(host: &str, port: &str) -> Result<Target, String> {
    if host == "unix" {
        return UnixPath::parse(port).map(Target::Unix);
    }
    let host = parse_target_host(host)?;
    let port = parse_port(port, "target port")?;
    Ok(Target::Net { host, port })
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Net { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            Target::Net { host, port } => write!(f, "{host}:{port}"),
            Target::Unix(path) => write!(f, "{path}"),
        }
    }
}
