//! What main keeps while the rules are served: every rule's counters, the
//! listeners and UDP receivers (to stop them for a drain), the stop flag,
//! and the unix socket files made at start (removed when it drops, at exit,
//! after the drain).

use std::sync::Arc;

use crate::config::rule::{Listen, Rule};
use crate::flow::counters::Counters;
use crate::flow::Stop;
use crate::stream::endpoint::Listener;
use crate::stream::unix::SocketFile;
use crate::udp::Receiver;

/// Every rule and its counters, in the configuration's order (shared with
/// the metrics thread).
pub type RuleCounters = Arc<Vec<(Rule, Arc<Counters>)>>;

/// The served rules, while they run.
pub struct Running {
    counters: RuleCounters,
    listeners: Vec<Arc<Listener>>,
    receivers: Vec<Arc<Receiver>>,
    stop: Stop,
    /// Whether trusted peers send PROXY headers (their bad ones are counted).
    accept_proxy: bool,
    /// Unix socket files made at start, removed when `Running` drops.
    _socket_files: Vec<SocketFile>,
}

impl Running {
    /// Rules about to be served, with their counters, the flag that stops
    /// them and the socket files made for them; no listener yet.
    pub fn new(
        counters: RuleCounters,
        stop: Stop,
        accept_proxy: bool,
        files: Vec<SocketFile>,
    ) -> Running {
        Running {
            counters,
            listeners: Vec::new(),
            receivers: Vec::new(),
            stop,
            accept_proxy,
            _socket_files: files,
        }
    }

    /// A stream rule's listener, now accepting.
    pub fn add_listener(&mut self, listener: Arc<Listener>) {
        self.listeners.push(listener);
    }

    /// A UDP rule's receiver, now receiving.
    pub fn add_receiver(&mut self, receiver: Arc<Receiver>) {
        self.receivers.push(receiver);
    }

    /// Logs one line of counters per rule.
    pub fn log_counters(&self) {
        for (rule, counters) in self.counters.iter() {
            let udp = matches!(rule.listen, Listen::Udp(_));
            let headers = self.accept_proxy && !udp;
            log::info!("rule {rule}: {}", counters.summary(udp, headers));
        }
    }

    /// Stream connections open now, all rules together, those still
    /// connecting to a target included; UDP sessions are not counted.
    pub fn open_streams(&self) -> u64 {
        let streams = self
            .counters
            .iter()
            .filter(|(rule, _)| !matches!(rule.listen, Listen::Udp(_)));
        streams.map(|(_, counters)| counters.in_flight()).sum()
    }

    /// Closes every listener at once: new clients are refused, every
    /// accept and receive thread ends.
    pub fn stop_listening(&self) {
        self.stop.set();
        let streams = self.listeners.iter().map(|l| l.stop());
        let udp = self.receivers.iter().map(|r| r.stop());
        for result in streams.chain(udp) {
            if let Err(e) = result {
                log::warn!("cannot stop listening: {e}");
            }
        }
    }
}
