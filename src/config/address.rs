//! The fields of a rule's addresses, each parsed alone: `:`-separated
//! fields with `[IPv6]` kept whole, port numbers, listen hosts (an IP
//! address), target hosts (a name or an IP address) and unix socket paths.
//! Each error names the field and says what was expected; rule.rs puts
//! fields together.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A unix stream socket's path: `/absolute/path`, or `@name` in Linux's
/// abstract namespace (no file; any process in the network namespace may
/// connect). Checked when made: see `UnixPath::parse`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnixPath(String);

/// The longest unix socket path: sun_path holds 108 bytes, the last a NUL
/// (an abstract name has its NUL first, written `@`, and none at the end).
pub const MAX_UNIX_PATH: usize = 107;

/// Splits on ':' outside square brackets; brackets must pair up and wrap a
/// whole field, except in a field that starts with '/' or '@' (a unix
/// path), where they are plain characters.
pub fn split_fields(text: &str) -> Result<Vec<&str>, String> {
    let mut fields = Vec::new();
    let mut start = 0;
    let mut in_brackets = false;
    let mut path = false;
    for (i, c) in text.char_indices() {
        if i == start {
            path = matches!(c, '/' | '@');
        }
        match c {
            ':' if !in_brackets => {
                fields.push(&text[start..i]);
                start = i + 1;
            }
            _ if path => {}
            '[' if in_brackets || i != start => return Err(bracket_error(text)),
            '[' => in_brackets = true,
            ']' if !in_brackets => return Err(bracket_error(text)),
            ']' => in_brackets = false,
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

pub fn parse_listen_host(text: &str) -> Result<IpAddr, String> {
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
pub fn parse_target_host(text: &str) -> Result<String, String> {
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

/// A unix socket path: absolute, or `@name` in Linux's abstract namespace;
/// at most MAX_UNIX_PATH bytes, with no NUL (and, from a rule, no ':' or
/// ','). The error names the path and says what was expected.
fn check_unix_path(text: &str) -> Result<(), String> {
    if !text.starts_with(['/', '@']) || text == "@" {
        return Err(format!(
            "unix path {text:?}: expected an absolute path (unix:/run/app.sock) \
             or an abstract name (unix:@app)"
        ));
    }
    if text.len() > MAX_UNIX_PATH {
        return Err(format!(
            "unix path {text:?}: {} bytes, expected at most {MAX_UNIX_PATH}",
            text.len()
        ));
    }
    if text.contains(['\0', ':', ',']) {
        return Err(format!(
            "unix path {text:?}: expected no NUL, ':' or ',' in a path"
        ));
    }
    Ok(())
}

impl UnixPath {
    pub fn parse(text: &str) -> Result<UnixPath, String> {
        check_unix_path(text).map(|()| UnixPath(text.to_string()))
    }

    /// The path as written: `/path` or `@name`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name after `@` for an abstract socket; None for a path.
    pub fn abstract_name(&self) -> Option<&str> {
        self.0.strip_prefix('@')
    }
}

impl fmt::Display for UnixPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unix:{}", self.0)
    }
}
