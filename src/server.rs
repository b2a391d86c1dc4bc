//! Listening: bind every rule's address first (so a port in use stops the
//! start with exit 1 before anything serves), then one accept thread per
//! rule. Each client is checked against --allow before anything else
//! happens for it. Accept errors are logged and backed off, never fatal.
//! `Running` is what main keeps: the counters, and the means to stop
//! listening for a drain.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::allow::AllowList;
use crate::config::Config;
use crate::error::Error;
use crate::limit::Limit;
use crate::pool::STACK_SIZE;
use crate::relay::{self, Served, Timeouts};
use crate::rule::Rule;
use crate::stats::Stats;
use crate::sys;

/// Accept backlog asked of the kernel (capped by net.core.somaxconn): clients
/// beyond --max-conns wait here.
const BACKLOG: i32 = 4096;
const FIRST_PAUSE: Duration = Duration::from_millis(10);
const LONGEST_PAUSE: Duration = Duration::from_secs(1);

/// Set once listening stops for good: accept errors then end the accept loop.
static STOPPING: AtomicBool = AtomicBool::new(false);

/// The served rules, while they run.
pub struct Running {
    rules: Vec<Arc<Served>>,
    listeners: Vec<Arc<TcpListener>>,
    limit: Arc<Limit>,
}

impl Running {
    /// Logs one line of counters per rule.
    pub fn log_counters(&self) {
        for served in &self.rules {
            log::info!("rule {}: {}", served.rule, served.stats.summary());
        }
    }

    /// Connections open now, all rules together (those still connecting
    /// to a target included).
    pub fn open(&self) -> usize {
        self.limit.open()
    }

    /// Closes every listener at once: new clients are refused, and every
    /// accept thread ends.
    pub fn stop_listening(&self) {
        STOPPING.store(true, Ordering::SeqCst);
        for listener in &self.listeners {
            if let Err(e) = sys::stop_listening(listener.as_ref()) {
                log::warn!("cannot stop listening: {e}");
            }
        }
    }
}

/// Binds all listeners, then starts their accept threads. Returns once every
/// rule is being served; the threads run until listening stops.
pub fn start(config: &Config) -> Result<Running, Error> {
    let mut bound = Vec::with_capacity(config.rules.len());
    for rule in &config.rules {
        let listener = TcpListener::bind(rule.listen).map_err(|source| Error::Bind {
            addr: rule.listen,
            source,
        })?;
        if let Err(e) = sys::set_backlog(&listener, BACKLOG) {
            log::debug!("{}: cannot raise the listen backlog: {e}", rule.listen);
        }
        bound.push((rule.clone(), Arc::new(listener)));
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
        rules: Vec::new(),
        listeners: Vec::new(),
        limit: Arc::clone(&limit),
    };
    for (rule, listener) in bound {
        log::info!(
            "listening on {}, forwarding to {} ({})",
            rule.listen,
            targets(&rule),
            rule.source
        );
        let served = Arc::new(Served {
            rule,
            stats: Arc::new(Stats::default()),
            timeouts,
        });
        let accept = Accept {
            served: Arc::clone(&served),
            listener: Arc::clone(&listener),
            limit: Arc::clone(&limit),
            allow: Arc::clone(&allow),
        };
        thread::Builder::new()
            .stack_size(STACK_SIZE)
            .spawn(move || accept.run())
            .map_err(Error::Thread)?;
        running.rules.push(served);
        running.listeners.push(listener);
    }
    Ok(running)
}

fn targets(rule: &Rule) -> String {
    let list: Vec<String> = rule.targets.iter().map(|t| t.to_string()).collect();
    list.join(", then ")
}

/// One rule's accept thread.
struct Accept {
    served: Arc<Served>,
    listener: Arc<TcpListener>,
    limit: Arc<Limit>,
    allow: Arc<AllowList>,
}

impl Accept {
    fn run(self) {
        let rule = &self.served.rule;
        let mut pause = Duration::ZERO;
        loop {
            self.limit.wait_for_room();
            let accepted = self.listener.accept();
            if STOPPING.load(Ordering::SeqCst) {
                // A client that slipped in as listening stopped is refused too.
                if let Ok((client, _)) = accepted {
                    reset(client);
                }
                return;
            }
            let (client, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(e) if transient(&e) => continue,
                Err(e) => {
                    pause = (pause * 2).clamp(FIRST_PAUSE, LONGEST_PAUSE);
                    log::warn!("rule {rule}: accept failed: {e}; retrying in {pause:?}");
                    thread::sleep(pause);
                    continue;
                }
            };
            pause = Duration::ZERO;
            if !self.admit(&client, peer) {
                continue;
            }
            let permit = self.limit.acquire();
            if let Err(e) = relay::start(client, peer, Arc::clone(&self.served), permit) {
                log::warn!("rule {rule}: dropped client {peer}: cannot start a thread: {e}");
                thread::sleep(FIRST_PAUSE);
            }
        }
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

/// Closes a client with a reset, not a FIN.
fn reset(client: TcpStream) {
    let _ = sys::set_linger_zero(&client);
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
