//! The running process: bind every rule's listen address first (so a port
//! in use stops the start with exit 1 before anything serves), then start
//! each rule's threads (stream/accept.rs for stream rules, one receive
//! thread per UDP rule) and, with --metrics, the metrics thread. What main
//! keeps is a `Running` (running.rs), which drain.rs stops.

mod drain;
mod exposition;
mod handover;
mod metrics;
mod process;
mod running;

pub use drain::until_signalled;
pub use handover::Handover;

use std::net::UdpSocket;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use self::running::{RuleStates, Running, HANDED_TICK};
use crate::config::allow::AllowList;
use crate::config::rule::{Listen, Rule};
use crate::config::{Balance, Config, SendProxy};
use crate::error::Error;
use crate::flow::counters::Counters;
use crate::flow::limit::Limit;
use crate::flow::pool::{PARK_TIME, STACK_SIZE};
use crate::flow::targets::Targets;
use crate::flow::Stop;
use crate::stream::accept::Acceptor;
use crate::stream::connect;
use crate::stream::endpoint::Listener;
use crate::stream::unix::{self, SocketFile};
use crate::stream::{Forwarding, Timeouts};
use crate::sys::Handed;
use crate::udp::{self, Receiver, UdpRule};

/// A bound listen address, before its threads start.
enum Bound {
    Stream(Listener),
    Udp(UdpSocket),
}

/// What every rule is served with: the options, and the cap and the stop
/// flag that all rules share.
struct Serving {
    balance: Balance,
    allow: Arc<AllowList>,
    accept_proxy: Arc<AllowList>,
    send_proxy: Option<SendProxy>,
    timeouts: Timeouts,
    udp_timeout: Duration,
    limit: Arc<Limit>,
    stop: Stop,
}

/// Binds all listen addresses (or takes the sockets handed over for
/// them), then starts their threads and, with --metrics, the metrics
/// thread. Returns once every rule is being served; the threads run until
/// listening stops.
pub fn start(config: &Config, mut handover: Handover) -> Result<Running, Error> {
    let mut bound = Vec::with_capacity(config.rules.len());
    // Removed again if a later rule cannot be bound.
    let mut socket_files = Vec::new();
    for rule in &config.rules {
        bound.push(match handover.claim(rule) {
            Some(handed) => (adopt(rule, handed)?, true),
            None => (bind(rule, config, &mut socket_files)?, false),
        });
    }
    handover.check_all_claimed()?;
    log_options(config);
    let serving = Serving::from(config);
    let states: RuleStates = Arc::new(config.rules.iter().map(|r| serving.targets(r)).collect());
    let accept_proxy = !config.accept_proxy.is_empty();
    let stop = serving.stop.clone();
    let mut running = Running::new(Arc::clone(&states), stop, accept_proxy, socket_files);
    for (targets, (socket, handed)) in states.iter().zip(bound) {
        let targets = Arc::clone(targets);
        match socket {
            Bound::Stream(listener) => {
                running.add_listener(serving.stream(targets, listener, handed)?, handed)
            }
            Bound::Udp(socket) => running.add_receiver(serving.udp(targets, socket)?, handed),
        }
    }
    if let Some(addr) = config.metrics {
        metrics::start(addr, states)?;
    }
    Ok(running)
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

/// Readies a socket handed over for `rule` (it is bound already).
fn adopt(rule: &Rule, handed: Handed) -> Result<Bound, Error> {
    let adopt_error = |source| Error::Bind {
        listen: format!("{} (handed over)", rule.listen),
        source,
    };
    log::info!(
        "{}{}: the socket handed over",
        rule.listen,
        rule.listen.proto().suffix()
    );
    match handed {
        Handed::Tcp(l) => Listener::Tcp(l)
            .adopt(HANDED_TICK)
            .map(Bound::Stream)
            .map_err(adopt_error),
        Handed::Unix(l) => Listener::Unix(l)
            .adopt(HANDED_TICK)
            .map(Bound::Stream)
            .map_err(adopt_error),
        Handed::Udp(socket) => udp::adopt(rule, socket).map(Bound::Udp),
    }
}

impl Serving {
    fn from(config: &Config) -> Serving {
        Serving {
            balance: config.balance,
            allow: Arc::new(config.allow.clone()),
            accept_proxy: Arc::new(config.accept_proxy.clone()),
            send_proxy: config.send_proxy,
            timeouts: Timeouts {
                connect: config.connect_timeout,
                idle: config.idle_timeout,
            },
            udp_timeout: config.udp_timeout,
            limit: Limit::new(config.max_conns),
            stop: Stop::default(),
        }
    }

    /// A rule's targets, all up, with its counters; a stream rule's are
    /// probed when down.
    fn targets(&self, rule: &Rule) -> Arc<Targets> {
        let counters = Arc::new(Counters::new(rule.targets.len()));
        let probe = match rule.listen {
            Listen::Udp(_) => None,
            Listen::Tcp(_) | Listen::Unix(_) => {
                Some(connect::probe(self.timeouts.connect, self.send_proxy))
            }
        };
        Targets::new(rule.clone(), counters, self.balance, probe)
    }

    /// Starts accepting on a stream rule's listener.
    fn stream(
        &self,
        targets: Arc<Targets>,
        listener: Listener,
        handed: bool,
    ) -> Result<Arc<Listener>, Error> {
        let listener = Arc::new(listener);
        let fwd = Forwarding {
            targets,
            timeouts: self.timeouts,
            allow: Arc::clone(&self.allow),
            accept_proxy: Arc::clone(&self.accept_proxy),
            send_proxy: self.send_proxy,
            limit: Arc::clone(&self.limit),
            handed,
        };
        let serving = describe(fwd.rule());
        Acceptor::start(fwd, Arc::clone(&listener), self.stop.clone()).map_err(Error::Thread)?;
        log::info!("{serving}");
        Ok(listener)
    }

    /// Starts a UDP rule's receive thread on its bound socket.
    fn udp(&self, targets: Arc<Targets>, socket: UdpSocket) -> Result<Arc<Receiver>, Error> {
        let serving = describe(targets.rule());
        let udp = Arc::new(UdpRule {
            targets,
            socket,
            timeout: self.udp_timeout,
        });
        let receiver = Arc::new(Receiver::new(
            udp,
            Arc::clone(&self.allow),
            Arc::clone(&self.limit),
        ));
        let (receiving, stop) = (Arc::clone(&receiver), self.stop.clone());
        thread::Builder::new()
            .stack_size(STACK_SIZE)
            .spawn(move || receiving.run(stop))
            .map_err(Error::Thread)?;
        log::info!("{serving}");
        Ok(receiver)
    }
}

/// "listening on L, forwarding to A, then B (SOURCE)": logged once the
/// rule's threads run, since tests and users may read it as "served".
fn describe(rule: &Rule) -> String {
    let list: Vec<String> = rule.targets.iter().map(|t| t.to_string()).collect();
    let (listen, suffix) = (&rule.listen, rule.listen.proto().suffix());
    let targets = list.join(", then ");
    format!(
        "listening on {listen}{suffix}, forwarding to {targets} ({})",
        rule.source
    )
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
