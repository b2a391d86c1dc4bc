//! Sockets bound by someone else and handed over: a supervisor's
//! (systemd's socket activation: LISTEN_PID and LISTEN_FDS, descriptors 3
//! on), or dockerd's descriptor 4 for its userland proxy (-use-listen-fd).
//! Each rule whose listen address and protocol are a handed socket's uses
//! it instead of binding; a handed socket that no rule claims is a
//! configuration error naming its address. A handed socket outlives this
//! process (its owner keeps a copy), so it is never shut down here:
//! stopping only stops accepting, and the clients in its backlog wait for
//! the next process. A unix path handed over is not removed at exit.

use std::io;
use std::os::fd::RawFd;
use std::os::linux::net::SocketAddrExt;

use crate::config::rule::{Listen, Rule};
use crate::error::Error;
use crate::sys::{self, Handed};

/// The sockets handed to this process, not yet claimed by a rule.
#[derive(Debug, Default)]
pub struct Handover(Vec<Handed>);

impl Handover {
    /// Systemd's socket activation: when LISTEN_PID is this process,
    /// LISTEN_FDS sockets from descriptor 3 on. The variables are removed
    /// from the environment once read (children must not take them too).
    pub fn from_env() -> Result<Handover, Error> {
        let pid = std::env::var("LISTEN_PID").ok();
        let fds = std::env::var("LISTEN_FDS").ok();
        for name in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
            std::env::remove_var(name);
        }
        let (Some(pid), Some(fds)) = (pid, fds) else {
            return Ok(Handover::default());
        };
        if pid.trim().parse::<u32>().ok() != Some(std::process::id()) {
            log::debug!("LISTEN_PID={pid} is not this process: its LISTEN_FDS are not ours");
            return Ok(Handover::default());
        }
        let count: RawFd = fds
            .trim()
            .parse()
            .ok()
            .filter(|n| (1..=1024).contains(n))
            .ok_or_else(|| {
                Error::Usage(format!(
                    "LISTEN_FDS={fds:?}: expected a number of descriptors"
                ))
            })?;
        (3..3 + count)
            .map(|fd| take(fd, "LISTEN_FDS"))
            .collect::<Result<_, _>>()
            .map(Handover)
    }

    /// dockerd's -use-listen-fd: descriptor 4.
    pub fn docker_listen_fd() -> Result<Handover, Error> {
        take(4, "-use-listen-fd").map(|handed| Handover(vec![handed]))
    }

    /// The handed socket whose address and protocol are `rule`'s listen
    /// side, taken out; None when there is none.
    pub fn claim(&mut self, rule: &Rule) -> Option<Handed> {
        let at = self
            .0
            .iter()
            .position(|handed| serves(handed, &rule.listen))?;
        Some(self.0.remove(at))
    }

    /// An error naming the first socket no rule claimed.
    pub fn check_all_claimed(&self) -> Result<(), Error> {
        match self.0.first() {
            None => Ok(()),
            Some(handed) => Err(Error::Usage(format!(
                "a socket handed over at {} is claimed by no rule: give a rule that listens there",
                describe(handed)
            ))),
        }
    }
}

fn take(fd: RawFd, what: &str) -> Result<Handed, Error> {
    sys::take_socket(fd).map_err(|e| Error::Usage(format!("{what}: descriptor {fd}: {e}")))
}

/// Whether a handed socket is bound where `listen` says, with its protocol.
fn serves(handed: &Handed, listen: &Listen) -> bool {
    match (handed, listen) {
        (Handed::Tcp(l), Listen::Tcp(addr)) => l.local_addr().ok() == Some(*addr),
        (Handed::Udp(s), Listen::Udp(addr)) => s.local_addr().ok() == Some(*addr),
        (Handed::Unix(l), Listen::Unix(path)) => {
            unix_name(l).ok().as_deref() == Some(path.as_str())
        }
        _ => false,
    }
}

/// A unix listener's name as a rule writes it: /path, or @name.
fn unix_name(listener: &std::os::unix::net::UnixListener) -> io::Result<String> {
    let addr = listener.local_addr()?;
    if let Some(path) = addr.as_pathname() {
        return Ok(path.display().to_string());
    }
    match addr.as_abstract_name() {
        Some(name) => Ok(format!("@{}", String::from_utf8_lossy(name))),
        None => Ok("an unnamed unix socket".to_string()),
    }
}

/// A handed socket's address as a rule would listen there.
fn describe(handed: &Handed) -> String {
    let addr = |a: io::Result<std::net::SocketAddr>| {
        a.map_or("an unknown address".into(), |a| a.to_string())
    };
    match handed {
        Handed::Tcp(l) => addr(l.local_addr()),
        Handed::Udp(s) => format!("{}/udp", addr(s.local_addr())),
        Handed::Unix(l) => format!("unix:{}", unix_name(l).unwrap_or_default()),
    }
}
