//! Listening: bind every rule's address first (so a port in use stops the
//! start with exit 1 before anything serves), then pooled threads accept on
//! each TCP rule (the one that accepts a client serves it: no hand-off) and
//! one thread receives on each UDP rule (udp.rs). Each client is checked
//! against --allow before anything else happens for it. Accept errors are
//! logged and backed off, never fatal. `Running` is what main keeps: the
//! counters, and the means to stop listening for a drain.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::allow::AllowList;
use crate::config::Config;
use crate::error::Error;
use crate::limit::Limit;
use crate::pool::{self, Pool, PARK_TIME, STACK_SIZE};
use crate::relay::{self, Served, Timeouts};
use crate::rule::{Proto, Rule};
use crate::stats::Stats;
use crate::sys;
use crate::udp::{self, UdpRule};

/// Accept backlog asked of the kernel (capped by net.core.somaxconn): clients
/// beyond --max-conns wait here.
const BACKLOG: i32 = 4096;
const FIRST_PAUSE: Duration = Duration::from_millis(10);
const LONGEST_PAUSE: Duration = Duration::from_secs(1);

/// How long an accept or receive loop waits after an error that concerns
/// its socket (out of descriptors, say): 10 ms, doubling to 1 s, back to
/// nothing after a success.
#[derive(Default)]
pub struct Backoff(Duration);

impl Backoff {
    /// Logs the error with the wait, then waits.
    pub fn after(&mut self, what: impl std::fmt::Display) {
        self.0 = (self.0 * 2).clamp(FIRST_PAUSE, LONGEST_PAUSE);
        log::warn!("{what}; retrying in {:?}", self.0);
        thread::sleep(self.0);
    }

    pub fn reset(&mut self) {
        self.0 = Duration::ZERO;
    }
}

/// Set once listening stops for good: accept errors then end the accept loop.
static STOPPING: AtomicBool = AtomicBool::new(false);

/// The served rules, while they run.
pub struct Running {
    /// Every rule's counters, in the configuration's order.
    counters: Vec<(Rule, Arc<Stats>)>,
    listeners: Vec<Arc<TcpListener>>,
    udp: Vec<Arc<UdpRule>>,
    limit: Arc<Limit>,
}

/// Whether listening has stopped for good.
pub fn stopping() -> bool {
    STOPPING.load(Ordering::SeqCst)
}

impl Running {
    /// Logs one line of counters per rule.
    pub fn log_counters(&self) {
        for (rule, stats) in &self.counters {
            log::info!("rule {rule}: {}", stats.summary(rule.proto == Proto::Udp));
        }
    }

    /// TCP connections open now, all rules together (those still
    /// connecting to a target included); UDP sessions are not waited for.
    pub fn open(&self) -> usize {
        let sessions: usize = self.udp.iter().map(|u| u.sessions()).sum();
        self.limit.open().saturating_sub(sessions)
    }

    /// Closes every listener at once: new TCP clients are refused, every
    /// accept and receive thread ends.
    pub fn stop_listening(&self) {
        STOPPING.store(true, Ordering::SeqCst);
        let tcp = self
            .listeners
            .iter()
            .map(|l| sys::stop_listening(l.as_ref()));
        let udp = self.udp.iter().map(|u| sys::stop_listening(&u.socket));
        for result in tcp.chain(udp) {
            if let Err(e) = result {
                log::warn!("cannot stop listening: {e}");
            }
        }
    }
}

/// A bound listen address, before its thread starts.
enum Bound {
    Tcp(TcpListener),
    Udp(UdpSocket),
}

fn bind(rule: &Rule) -> Result<Bound, Error> {
    if rule.proto == Proto::Udp {
        return udp::bind(rule).map(Bound::Udp);
    }
    let listener = TcpListener::bind(rule.listen).map_err(|source| Error::Bind {
        addr: rule.listen,
        proto: Proto::Tcp,
        source,
    })?;
    if let Err(e) = sys::set_backlog(&listener, BACKLOG) {
        log::debug!("{}: cannot raise the listen backlog: {e}", rule.listen);
    }
    // Without it, threads beyond the first would wait in accept for ever.
    sys::set_accept_timeout(&listener, PARK_TIME).map_err(|source| Error::Bind {
        addr: rule.listen,
        proto: Proto::Tcp,
        source,
    })?;
    Ok(Bound::Tcp(listener))
}

/// Binds all listen addresses, then starts their threads. Returns once
/// every rule is being served; the threads run until listening stops.
pub fn start(config: &Config) -> Result<Running, Error> {
    let mut bound = Vec::with_capacity(config.rules.len());
    for rule in &config.rules {
        bound.push((rule.clone(), bind(rule)?));
    }
    let limit = Limit::new(config.max_conns);
    let timeouts = Timeouts {
        connect: config.connect_timeout,
        idle: config.idle_timeout,
    };
    if !config.allow.is_empty() {
        log::info!("serving only clients in {}", config.allow);
    }
    let allow = Arc::new(config.allow.clone());
    let mut running = Running {
        counters: Vec::new(),
        listeners: Vec::new(),
        udp: Vec::new(),
        limit: Arc::clone(&limit),
    };
    for (rule, socket) in bound {
        log::info!(
            "listening on {}{}, forwarding to {} ({})",
            rule.listen,
            rule.proto.suffix(),
            targets(&rule),
            rule.source
        );
        match socket {
            Bound::Tcp(listener) => {
                let listener = Arc::new(listener);
                let served = Arc::new(Served {
                    rule: rule.clone(),
                    stats: Arc::new(Stats::default()),
                    timeouts,
                });
                running.counters.push((rule, Arc::clone(&served.stats)));
                let accept = Arc::new(Accept {
                    served,
                    listener: Arc::clone(&listener),
                    limit: Arc::clone(&limit),
                    allow: Arc::clone(&allow),
                    accepting: AtomicUsize::new(0),
                });
                accept.add_thread().map_err(Error::Thread)?;
                running.listeners.push(listener);
            }
            Bound::Udp(socket) => {
                let udp = UdpRule::new(
                    rule.clone(),
                    socket,
                    config.udp_timeout,
                    Arc::clone(&allow),
                    Arc::clone(&limit),
                );
                let udp = Arc::new(udp);
                running.counters.push((rule, Arc::clone(&udp.stats)));
                let receiving = Arc::clone(&udp);
                thread::Builder::new()
                    .stack_size(STACK_SIZE)
                    .spawn(move || receiving.run(stopping))
                    .map_err(Error::Thread)?;
                running.udp.push(udp);
            }
        }
    }
    Ok(running)
}

fn targets(rule: &Rule) -> String {
    let list: Vec<String> = rule.targets.iter().map(|t| t.to_string()).collect();
    list.join(", then ")
}

/// How many threads of one rule may wait in accept at once. Each accepted
/// client takes the thread that accepted it; the kernel wakes one waiter
/// per client, and a thread whose client is served comes back to accept
/// while fewer than this many wait, with no hand-off. When quiet for
/// `PARK_TIME`, all but one exit, as parked copiers do.
const MAX_ACCEPTING: usize = 2;

/// One TCP rule's listener and the threads accepting on it. A thread that
/// accepts a client serves it itself (relay::serve); if it was the last one
/// accepting, a pooled thread takes its place first.
struct Accept {
    served: Arc<Served>,
    listener: Arc<TcpListener>,
    limit: Arc<Limit>,
    allow: Arc<AllowList>,
    /// Threads accepting, or about to, on this listener.
    accepting: AtomicUsize,
}

impl Accept {
    /// One more thread accepting on this rule's listener, from the pool.
    fn add_thread(self: &Arc<Self>) -> io::Result<()> {
        self.accepting.fetch_add(1, Ordering::SeqCst);
        let accept = Arc::clone(self);
        Pool::global().run(move || accept.run()).inspect_err(|_| {
            self.accepting.fetch_sub(1, Ordering::SeqCst);
        })
    }

    /// Accepts and serves clients until listening stops, or until a client
    /// is served while enough other threads accept.
    fn run(self: Arc<Self>) {
        let rule = &self.served.rule;
        let mut backoff = Backoff::default();
        loop {
            let Some((client, peer)) = self.next(&mut backoff) else {
                return;
            };
            if self.accepting.fetch_sub(1, Ordering::SeqCst) == 1 {
                if let Err(e) = self.add_thread() {
                    log::warn!(
                        "rule {rule}: cannot start a thread to accept with: {e}; \
                         accepting again once {peer} is served"
                    );
                }
            }
            let permit = self.limit.acquire();
            relay::serve(client, peer, &self.served, permit);
            if stopping() || !self.rejoin() {
                return;
            }
        }
    }

    /// Counts this thread accepting again if fewer than MAX_ACCEPTING do.
    fn rejoin(&self) -> bool {
        self.accepting
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < MAX_ACCEPTING).then_some(n + 1)
            })
            .is_ok()
    }

    /// The next client --allow admits, once there is room under
    /// --max-conns. None once listening has stopped, or when no client came
    /// for `PARK_TIME` and another thread is accepting: this thread then no
    /// longer counts as accepting.
    fn next(&self, backoff: &mut Backoff) -> Option<(TcpStream, SocketAddr)> {
        let rule = &self.served.rule;
        loop {
            self.limit.wait_for_room();
            let accepted = self.listener.accept();
            if stopping() {
                // A client that slipped in as listening stopped is refused too.
                if let Ok((client, _)) = accepted {
                    let _ = sys::set_linger_zero(&client);
                }
                self.accepting.fetch_sub(1, Ordering::SeqCst);
                return None;
            }
            match accepted {
                Ok((client, peer)) => {
                    backoff.reset();
                    if self.admit(&client, peer) {
                        return Some((client, peer));
                    }
                }
                Err(e) if relay::is_tick(&e) => {
                    if self.leave() {
                        // Quiet: this thread is not needed, now or as a copier.
                        pool::retire();
                        return None;
                    }
                }
                Err(e) if transient(&e) => {}
                Err(e) => backoff.after(format_args!("rule {rule}: accept failed: {e}")),
            }
        }
    }

    /// Stops counting this thread as accepting, unless it is the last.
    fn leave(&self) -> bool {
        self.accepting
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n > 1).then_some(n - 1)
            })
            .is_ok()
    }

    /// --allow: a client outside every range is reset at once and counted.
    fn admit(&self, client: &TcpStream, peer: SocketAddr) -> bool {
        if self.allow.permits(peer.ip()) {
            return true;
        }
        self.served.stats.denied();
        log::debug!("rule {}: {peer} is not allowed; reset", self.served.rule);
        let _ = sys::set_linger_zero(client);
        false
    }
}

/// Errors that concern one aborted handshake, not the listener.
fn transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::Interrupted
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}
