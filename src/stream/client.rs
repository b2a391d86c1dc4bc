//! Who a client is: the socket's peer and, when that peer is a trusted
//! proxy, what its PROXY header said (relay.rs reads it, header.rs writes
//! one for the target from it).

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use super::endpoint::Peer;

/// Who a client is: the socket's peer and, when that peer is a trusted
/// proxy, the original client and the address it connected to, from its
/// PROXY header. The original client stands for the client everywhere:
/// --allow, logs, counters, --send-proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub peer: Peer,
    pub proxied: Option<(SocketAddr, SocketAddr)>,
}

impl Client {
    /// A client as its socket shows it.
    pub fn direct(peer: Peer) -> Client {
        Client {
            peer,
            proxied: None,
        }
    }

    /// The address --allow is checked against: the original client's.
    pub fn ip(&self) -> Option<IpAddr> {
        match self.proxied {
            Some((src, _)) => Some(src.ip()),
            None => self.peer.ip(),
        }
    }

    /// The client's address and the address it connected to, for a PROXY
    /// header: from its own header, or its socket's peer and `local`; None
    /// for a unix client.
    pub fn origin(&self, local: Option<SocketAddr>) -> Option<(SocketAddr, SocketAddr)> {
        match (&self.proxied, &self.peer, local) {
            (Some(pair), _, _) => Some(*pair),
            (None, Peer::Tcp(peer), Some(local)) => Some((*peer, local)),
            _ => None,
        }
    }
}

impl fmt::Display for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.proxied {
            Some((src, _)) => write!(f, "{src} via {}", self.peer),
            None => write!(f, "{}", self.peer),
        }
    }
}
