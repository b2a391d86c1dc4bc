//! Names on the local link: a target host ending in `.local` is resolved
//! by ambassador itself with one-shot multicast DNS (ask.rs, which writes
//! and reads its packets with message.rs), never by the system resolver:
//! a static binary has no nss-mdns, and a `.local` question sent to a
//! unicast DNS server only leaks the name. Answers are kept for their TTL
//! in one cache for the process (cache.rs). Every other name is not this
//! module's.

mod ask;
mod cache;
pub mod message;

use std::io;
use std::net::SocketAddr;

use crate::config::rule::{Rule, Target};
use cache::Cache;

static CACHE: Cache = Cache::new();

/// Whether `host` is a name on the local link: it ends in `.local` (any
/// case, a trailing dot allowed) after at least one label of its own.
pub fn is_local(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    let cut = host.len().wrapping_sub(".local".len());
    host.len() > ".local".len()
        && host.is_char_boundary(cut)
        && host[cut..].eq_ignore_ascii_case(".local")
}

/// The `.local` names among a rule's targets, each once (in any case,
/// with or without the trailing dot), as first written; for --check,
/// which resolves nothing.
pub fn local_names(rule: &Rule) -> Vec<&str> {
    let mut names: Vec<&str> = Vec::new();
    for target in &rule.targets {
        if let Target::Net { host, .. } = target {
            if is_local(host) && !names.iter().any(|n| key(n) == key(host)) {
                names.push(host);
            }
        }
    }
    names
}

/// The addresses of `host` (a `.local` name), port 0: kept ones while
/// their TTL lasts, else what the link answers now.
pub fn lookup(host: &str) -> io::Result<Vec<SocketAddr>> {
    CACHE.lookup(&key(host), ask::ask)
}

/// Drops what is kept of `host`: a connect to its address failed, and the
/// host may have moved (DHCP), so the next lookup asks the link again.
pub fn forget(host: &str) {
    CACHE.forget(&key(host));
}

/// The name as the cache and the wire compare it.
fn key(host: &str) -> String {
    host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_ending_in_local_in_any_case_are_on_the_link() {
        for name in ["vm1.local", "VM1.LOCAL", "nas.Local.", "a.b.local"] {
            assert!(is_local(name), "{name}");
        }
        for name in [
            "local",
            ".local",
            "local.",
            "vm1.localhost",
            "vm1.local.lan",
            "vm1local",
        ] {
            assert!(!is_local(name), "{name}");
        }
    }

    #[test]
    fn the_key_ignores_case_and_the_trailing_dot() {
        assert_eq!(key("Far.LOCAL."), "far.local");
    }
}
