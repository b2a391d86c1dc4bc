//! The running process: bind every rule's listen address first (so a port
//! in use stops the start with exit 1 before anything serves), then start
//! each rule's threads (stream/accept.rs for stream rules, one receive
//! thread per UDP rule). `Running` is what main keeps: the counters, and
//! the means to stop listening for a drain (drain.rs).

mod drain;
mod exposition;
mod metrics;
mod process;

pub use drain::until_signalled;

use std::net::UdpSocket;
use std::sync::Arc;
use std::thread;

use crate::config::allow::AllowList;
use crate::config::rule::{Listen, Rule};
use crate::config::Config;
use crate::error::Error;
use crate::flow::counters::Counters;
use crate::flow::limit::Limit;
use crate::flow::pool::{PARK_TIME, STACK_SIZE};
use crate::flow::Stop;
use crate::stream::accept::Acceptor;
use crate::stream::endpoint::Listener;
use crate::stream::unix::{self, SocketFile};
use crate::stream::{Forwarding, Timeouts};
use crate::udp::{self, Receiver, UdpRule};

/// The served rules, while they run.
pub struct Running {
    /// Every rule's counters, in the configuration's order (shared with
    /// the metrics thread).
    counters: metrics::RuleCounters,
    listeners: Vec<Arc<Listener>>,
    udp: Vec<Arc<Receiver>>,
    limit: Arc<Limit>,
    stop: Stop,
    /// Whether trusted peers send PROXY headers (their bad ones are counted).
    accept_proxy: bool,
    /// Unix socket files made here, removed when `Running` drops (at exit,
    /// after the drain).
    _socket_files: Vec<SocketFile>,
}

impl Running {
    /// Logs one line of counters per rule.
    pub fn log_counters(&self) {
        for (rule, counters) in self.counters.iter() {
            let udp = matches!(rule.listen, Listen::Udp(_));
            let headers = self.accept_proxy && !udp;
            log::info!("rule {rule}: {}", counters.summary(udp, headers));
        }
    }

    /// Stream connections open now, all rules together (those still
    /// connecting to a target included); UDP sessions are not counted.
    pub fn open_streams(&self) -> usize {
        let sessions: usize = self.udp.iter().map(|u| u.sessions()).sum();
        self.limit.taken().saturating_sub(sessions)
    }

    /// Closes every listener at once: new clients are refused, every
    /// accept and receive thread ends.
    pub fn stop_listening(&self) {
        self.stop.set();
        let streams = self.listeners.iter().map(|l| l.stop());
        let udp = self
            .udp
            .iter()
            .map(|u| crate::sys::stop_listening(u.socket()));
        for result in streams.chain(udp) {
            if let Err(e) = result {
                log::warn!("cannot stop listening: {e}");
            }
        }
    }
}

/// A bound listen address, before its threads start.
enum Bound {
    Stream(Listener),
    Udp(UdpSocket),
}

fn bind(rule: &Rule, config: &Config, files: &mut Vec<SocketFile>) -> Result<Bound, Error> {
    match &rule.listen {
        Listen::Tcp(addr) => Listener::bind_tcp(*addr, PARK_TIME).map(Bound::Stream),
        Listen::Udp(addr) => udp::bind(rule, *addr).map(Bound::Udp),
        Listen::Unix(path) => {
            let (listener, file) = unix::bind(path, config.unix_mode, PARK_TIME)?;
            files.extend(file);
            Ok(Bound::Stream(listener))
        }
    }
}

/// Binds all listen addresses, then starts their threads and, with
/// --metrics, the metrics thread. Returns once every rule is being served;
/// the threads run until listening stops.
pub fn start(config: &Config) -> Result<Running, Error> {
    let mut bound = Vec::with_capacity(config.rules.len());
    // Removed again if a later rule cannot be bound.
    let mut files = Vec::new();
    for rule in &config.rules {
        bound.push(bind(rule, config, &mut files)?);
    }
    log_options(config);
    let counters: metrics::RuleCounters = Arc::new(
        config
            .rules
            .iter()
            .map(|r| (r.clone(), Arc::new(Counters::new(r.targets.len()))))
            .collect(),
    );
    let mut running = Running {
        counters: Arc::clone(&counters),
        listeners: Vec::new(),
        udp: Vec::new(),
        limit: Limit::new(config.max_conns),
        stop: Stop::default(),
        accept_proxy: !config.accept_proxy.is_empty(),
        _socket_files: files,
    };
    let shared = Shared {
        allow: Arc::new(config.allow.clone()),
        accept_proxy: Arc::new(config.accept_proxy.clone()),
    };
    for ((rule, counters), socket) in counters.iter().zip(bound) {
        running.serve(rule.clone(), Arc::clone(counters), socket, config, &shared)?;
        log::info!(
            "listening on {}{}, forwarding to {} ({})",
            rule.listen,
            rule.listen.proto().suffix(),
            targets(rule),
            rule.source
        );
    }
    if let Some(addr) = config.metrics {
        metrics::start(addr, counters)?;
    }
    Ok(running)
}

/// What every rule's clients are checked against.
struct Shared {
    allow: Arc<AllowList>,
    accept_proxy: Arc<AllowList>,
}

impl Running {
    /// Starts a rule's threads on its bound socket. "listening on" is logged
    /// after this: tests and users may read it as "served".
    fn serve(
        &mut self,
        rule: Rule,
        counters: Arc<Counters>,
        socket: Bound,
        config: &Config,
        shared: &Shared,
    ) -> Result<(), Error> {
        match socket {
            Bound::Stream(listener) => {
                let listener = Arc::new(listener);
                let fwd = Forwarding {
                    rule,
                    counters,
                    timeouts: Timeouts {
                        connect: config.connect_timeout,
                        idle: config.idle_timeout,
                    },
                    allow: Arc::clone(&shared.allow),
                    accept_proxy: Arc::clone(&shared.accept_proxy),
                    send_proxy: config.send_proxy,
                    limit: Arc::clone(&self.limit),
                };
                Acceptor::start(fwd, Arc::clone(&listener), self.stop.clone())
                    .map_err(Error::Thread)?;
                self.listeners.push(listener);
            }
            Bound::Udp(socket) => {
                let (allow, limit) = (Arc::clone(&shared.allow), Arc::clone(&self.limit));
                let timeout = config.udp_timeout;
                let udp = Arc::new(UdpRule {
                    rule,
                    counters,
                    socket,
                    timeout,
                });
                let udp = Arc::new(Receiver::new(udp, allow, limit));
                let stop = self.stop.clone();
                let receiving = Arc::clone(&udp);
                thread::Builder::new()
                    .stack_size(STACK_SIZE)
                    .spawn(move || receiving.run(stop))
                    .map_err(Error::Thread)?;
                self.udp.push(udp);
            }
        }
        Ok(())
    }
}

/// Says at start what the options will do to every client.
fn log_options(config: &Config) {
    if !config.allow.is_empty() {
        log::info!("serving only clients in {}", config.allow);
    }
    if !config.accept_proxy.is_empty() {
        let ranges = &config.accept_proxy;
        log::info!("clients from {ranges} must begin with a PROXY header");
    }
    let udp = config
        .rules
        .iter()
        .any(|r| matches!(r.listen, Listen::Udp(_)));
    if config.send_proxy.is_some() && udp {
        log::info!(
            "--send-proxy: UDP rules do not use the PROXY protocol; their datagrams go as they are"
        );
    }
}

fn targets(rule: &Rule) -> String {
    let list: Vec<String> = rule.targets.iter().map(|t| t.to_string()).collect();
    list.join(", then ")
}
