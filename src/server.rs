//! Listening: bind every rule's address first (so a port in use stops the
//! start with exit 1 before anything serves), then one accept thread per
//! rule. Accept errors are logged and backed off, never fatal.

use std::io;
use std::net::TcpListener;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::config::Config;
use crate::error::Error;
use crate::limit::Limit;
use crate::pool::STACK_SIZE;
use crate::relay::{self, Timeouts};
use crate::rule::Rule;
use crate::sys;

/// Accept backlog asked of the kernel (capped by net.core.somaxconn): clients
/// beyond --max-conns wait here.
const BACKLOG: i32 = 4096;
const FIRST_PAUSE: Duration = Duration::from_millis(10);
const LONGEST_PAUSE: Duration = Duration::from_secs(1);

/// Binds all listeners, then starts their accept threads. Returns once every
/// rule is being served; the threads run until the process exits.
pub fn start(config: &Config) -> Result<(), Error> {
    let mut bound = Vec::with_capacity(config.rules.len());
    for rule in &config.rules {
        let listener = TcpListener::bind(rule.listen).map_err(|source| Error::Bind {
            addr: rule.listen,
            source,
        })?;
        if let Err(e) = sys::set_backlog(&listener, BACKLOG) {
            log::debug!("{}: cannot raise the listen backlog: {e}", rule.listen);
        }
        bound.push((Arc::new(rule.clone()), listener));
    }
    let limit = Limit::new(config.max_conns);
    let timeouts = Arc::new(Timeouts {
        connect: config.connect_timeout,
        idle: config.idle_timeout,
    });
    for (rule, listener) in bound {
        log::info!(
            "listening on {}, forwarding to {} ({})",
            rule.listen,
            targets(&rule),
            rule.source
        );
        let (limit, timeouts) = (Arc::clone(&limit), Arc::clone(&timeouts));
        thread::Builder::new()
            .stack_size(STACK_SIZE)
            .spawn(move || accept_loop(&rule, &listener, &limit, &timeouts))
            .map_err(Error::Thread)?;
    }
    Ok(())
}

fn targets(rule: &Rule) -> String {
    let list: Vec<String> = rule.targets.iter().map(|t| t.to_string()).collect();
    list.join(", then ")
}

fn accept_loop(
    rule: &Arc<Rule>,
    listener: &TcpListener,
    limit: &Arc<Limit>,
    timeouts: &Arc<Timeouts>,
) {
    let mut pause = Duration::ZERO;
    loop {
        limit.wait_for_room();
        let (client, peer) = match listener.accept() {
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
        let permit = limit.acquire();
        if let Err(e) = relay::start(client, peer, Arc::clone(rule), Arc::clone(timeouts), permit) {
            log::warn!("rule {rule}: dropped client {peer}: cannot start a thread: {e}");
            thread::sleep(FIRST_PAUSE);
        }
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
