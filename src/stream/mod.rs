//! Stream rules, TCP and unix: the endpoint types (endpoint.rs), listening
//! on a unix path (unix.rs), the threads that accept on a rule's listener
//! (accept.rs), a client's pipeline from admission to relay (relay.rs),
//! reaching the targets (connect.rs), the PROXY protocol (proxy.rs: the
//! bytes; header.rs: on the wire), and the two copiers (copier.rs) with the
//! state they share (conn.rs).

pub mod accept;
mod client;
mod conn;
pub mod connect;
mod copier;
pub mod endpoint;
mod header;
pub mod proxy;
mod relay;
pub mod unix;

use std::sync::Arc;
use std::time::Duration;

use crate::config::allow::AllowList;
use crate::config::rule::Rule;
use crate::config::SendProxy;
use crate::flow::counters::Counters;
use crate::flow::limit::Limit;
use crate::flow::targets::Targets;

/// The timeouts every connection shares.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// --connect-timeout, for each address of a target.
    pub connect: Duration,
    /// --idle-timeout
    pub idle: Option<Duration>,
}

/// How one stream rule forwards: what every connection of it shares.
pub struct Forwarding {
    /// The rule, its counters, its targets and their health.
    pub targets: Arc<Targets>,
    pub timeouts: Timeouts,
    pub allow: Arc<AllowList>,
    /// Peers that must begin with a PROXY header (--accept-proxy).
    pub accept_proxy: Arc<AllowList>,
    /// --send-proxy
    pub send_proxy: Option<SendProxy>,
    pub limit: Arc<Limit>,
    /// The listener was handed over: a client accepted as listening stops
    /// came from a queue the next process would serve, so it is served.
    pub handed: bool,
}

impl Forwarding {
    /// The rule forwarded.
    pub fn rule(&self) -> &Rule {
        self.targets.rule()
    }

    /// The rule's counters.
    pub fn counters(&self) -> &Arc<Counters> {
        self.targets.counters()
    }
}
