//! What main keeps while the rules are served: every rule's targets and
//! counters, the listeners and UDP receivers (to stop them for a drain),
//! the stop flag, and the unix socket files made at start (removed when it
//! drops, at exit, after the drain).

use std::sync::Arc;
use std::time::Duration;

use crate::config::rule::Listen;
use crate::flow::targets::Targets;
use crate::flow::Stop;
use crate::stream::endpoint::Listener;
use crate::stream::unix::SocketFile;
use crate::udp::Receiver;

/// How long an accept on a handed-over listener waits before it looks at
/// the stop flag: such a listener is never shut down to wake its threads
/// (its owner's copy would stop listening too).
pub const HANDED_TICK: Duration = Duration::from_millis(250);

/// Every rule's targets, with the rule's counters and the targets' health,
/// in the configuration's order (shared with the metrics thread).
pub type RuleStates = Arc<Vec<Arc<Targets>>>;

/// The served rules, while they run.
pub struct Running {
    states: RuleStates,
    /// Each with whether it was handed over (then never shut down here).
    listeners: Vec<(Arc<Listener>, bool)>,
    receivers: Vec<(Arc<Receiver>, bool)>,
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
        states: RuleStates,
        stop: Stop,
        accept_proxy: bool,
        files: Vec<SocketFile>,
    ) -> Running {
        Running {
            states,
            listeners: Vec::new(),
            receivers: Vec::new(),
            stop,
            accept_proxy,
            _socket_files: files,
        }
    }

    /// A stream rule's listener, now accepting; `handed` if it was handed over.
    pub fn add_listener(&mut self, listener: Arc<Listener>, handed: bool) {
        self.listeners.push((listener, handed));
    }

    /// A UDP rule's receiver, now receiving; `handed` if its socket was handed over.
    pub fn add_receiver(&mut self, receiver: Arc<Receiver>, handed: bool) {
        self.receivers.push((receiver, handed));
    }

    /// The least a drain lasts: with a listener handed over, longer than
    /// its accepting threads take to see the stop flag (they serve what
    /// they accept meanwhile, and the drain waits for it); else nothing.
    pub fn settle_time(&self) -> Duration {
        match self.listeners.iter().any(|(_, handed)| *handed) {
            true => HANDED_TICK * 2 + Duration::from_millis(100),
            false => Duration::ZERO,
        }
    }

    /// Logs one line of counters per rule.
    pub fn log_counters(&self) {
        for targets in self.states.iter() {
            let (rule, counters) = (targets.rule(), targets.counters());
            let udp = matches!(rule.listen, Listen::Udp(_));
            let headers = self.accept_proxy && !udp;
            let down = targets.down_summary();
            log::info!("rule {rule}: {}{down}", counters.summary(udp, headers));
        }
    }

    /// Stream connections open now, all rules together, those still
    /// connecting to a target included; UDP sessions are not counted.
    pub fn open_streams(&self) -> u64 {
        let streams = self
            .states
            .iter()
            .filter(|t| !matches!(t.rule().listen, Listen::Udp(_)));
        streams.map(|t| t.counters().in_flight()).sum()
    }

    /// Closes every listener at once: new clients are refused, every
    /// accept and receive thread ends. A socket handed over is left
    /// listening for its owner: its clients wait for the next process.
    pub fn stop_listening(&self) {
        self.stop.set();
        let streams = self
            .listeners
            .iter()
            .filter(|(_, handed)| !handed)
            .map(|(l, _)| l.stop());
        let udp = self
            .receivers
            .iter()
            .filter(|(_, handed)| !handed)
            .map(|(r, _)| r.stop());
        for result in streams.chain(udp) {
            if let Err(e) = result {
                log::warn!("cannot stop listening: {e}");
            }
        }
    }
}
