//! The state the two copiers of one connection share: both sockets, the
//! bytes delivered each way, the time of the last byte (for --idle-timeout),
//! why the connection ended, its rule's counters and its slot under
//! --max-conns. Dropping the last reference closes both sockets, frees the
//! slot, counts the connection closed and logs the closing line. Moving
//! bytes is relay.rs's business, not this file's.

use std::io;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::limit::Permit;
use crate::seconds::Secs;
use crate::stats::Stats;
use crate::sys;

/// One end of a relayed connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Client = 0,
    Target = 1,
}

impl Side {
    pub fn name(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Target => "target",
        }
    }
}

/// Which way bytes flow.
#[derive(Clone, Copy, Debug)]
pub enum Direction {
    /// client -> target
    Up = 0,
    /// target -> client
    Down = 1,
}

impl Direction {
    /// The side this direction reads from.
    pub fn source(self) -> Side {
        match self {
            Direction::Up => Side::Client,
            Direction::Down => Side::Target,
        }
    }

    /// The side this direction writes to.
    pub fn sink(self) -> Side {
        match self {
            Direction::Up => Side::Target,
            Direction::Down => Side::Client,
        }
    }
}

/// Why a connection ended, as the debug closing line tells it.
#[derive(Default)]
struct Ending {
    /// The first end of stream seen.
    closed: Option<String>,
    /// The first cause of an abort.
    aborted: Option<String>,
}

/// An open, relayed connection.
pub struct Conn {
    sockets: [TcpStream; 2],
    peer: SocketAddr,
    target_addr: SocketAddr,
    started: Instant,
    idle_ms: Option<u64>,
    /// Milliseconds since `started` at the last byte moved either way.
    last_active_ms: AtomicU64,
    /// Bytes delivered, by `Direction`: each copier stores its total when done.
    bytes: [AtomicU64; 2],
    torn_down: AtomicBool,
    ending: Mutex<Ending>,
    stats: Arc<Stats>,
    _permit: Permit,
}

/// Who and where a connection joins: the client, the target address it
/// reached, and the rule's counters.
pub struct Ends {
    pub client: TcpStream,
    pub peer: SocketAddr,
    pub target: TcpStream,
    pub target_addr: SocketAddr,
    pub stats: Arc<Stats>,
}

impl Conn {
    /// A connection that reached its target, counted open in its rule.
    pub fn new(ends: Ends, idle: Option<Duration>, permit: Permit) -> Conn {
        ends.stats.opened();
        Conn {
            sockets: [ends.client, ends.target],
            peer: ends.peer,
            target_addr: ends.target_addr,
            started: Instant::now(),
            idle_ms: idle.map(|d| d.as_millis() as u64),
            last_active_ms: AtomicU64::new(0),
            bytes: [AtomicU64::new(0), AtomicU64::new(0)],
            torn_down: AtomicBool::new(false),
            ending: Mutex::new(Ending::default()),
            stats: ends.stats,
            _permit: permit,
        }
    }

    pub fn socket(&self, side: Side) -> &TcpStream {
        &self.sockets[side as usize]
    }

    pub fn is_torn_down(&self) -> bool {
        self.torn_down.load(Ordering::Acquire)
    }

    /// Records an end of stream; only the first is kept. Only the debug
    /// closing line shows it, so it is not even formatted unless that is on.
    pub fn closed(&self, why: impl FnOnce() -> String) {
        if log::log_enabled!(log::Level::Debug) {
            self.ending_lock().closed.get_or_insert_with(why);
        }
    }

    /// Records what aborted the connection; only the first cause is kept.
    pub fn aborted(&self, why: impl FnOnce() -> String) {
        if log::log_enabled!(log::Level::Debug) {
            self.ending_lock().aborted.get_or_insert_with(why);
        }
    }

    fn ending_lock(&self) -> std::sync::MutexGuard<'_, Ending> {
        // Only string slots live under this lock: usable even if poisoned.
        self.ending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts `n` bytes delivered in `dir` in the rule's counters, and the
    /// moment for --idle-timeout.
    pub fn delivered(&self, dir: Direction, n: usize) {
        self.stats.delivered(dir, n);
        if self.idle_ms.is_some() {
            let now = self.started.elapsed().as_millis() as u64;
            self.last_active_ms.fetch_max(now, Ordering::Relaxed);
        }
    }

    /// Records a direction's total for the closing line, once it is done.
    pub fn finished(&self, dir: Direction, total: u64) {
        self.bytes[dir as usize].store(total, Ordering::Relaxed);
    }

    /// Called when a blocking read or write timed out: an error once the
    /// connection moved nothing for the idle timeout, or was torn down.
    pub fn check_idle(&self) -> io::Result<()> {
        if self.is_torn_down() {
            return Err(io::Error::other("torn down"));
        }
        // Without an idle timeout a tick is spurious (a socket option that
        // could not be cleared): carry on.
        let Some(idle) = self.idle_ms else {
            return Ok(());
        };
        let now = self.started.elapsed().as_millis() as u64;
        if now.saturating_sub(self.last_active_ms.load(Ordering::Relaxed)) < idle {
            return Ok(());
        }
        self.aborted(|| format!("idle for {}", Secs(Duration::from_millis(idle))));
        Err(io::Error::new(io::ErrorKind::TimedOut, "idle timeout"))
    }

    /// Aborts both sockets once: each peer gets a reset (so a cut stream
    /// never looks like a clean end) and any copier blocked on them wakes.
    pub fn teardown(&self) {
        if self.torn_down.swap(true, Ordering::AcqRel) {
            return;
        }
        for socket in &self.sockets {
            let _ = sys::set_linger_zero(socket);
            let _ = socket.shutdown(Shutdown::Read);
            let _ = sys::abort(socket);
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.stats.closed();
        if !log::log_enabled!(log::Level::Debug) {
            return;
        }
        let ending = self.ending.get_mut().unwrap_or_else(|e| e.into_inner());
        let why = match (&ending.closed, &ending.aborted) {
            (None, None) => "closed".to_string(),
            (Some(closed), None) => closed.clone(),
            (None, Some(abort)) => format!("aborted: {abort}"),
            (Some(closed), Some(abort)) => format!("aborted: {abort} (after {closed})"),
        };
        log::debug!(
            "{} -> {}: closed after {}, {} bytes up, {} bytes down, {}",
            self.peer,
            self.target_addr,
            Secs(self.started.elapsed()),
            self.bytes[0].load(Ordering::Relaxed),
            self.bytes[1].load(Ordering::Relaxed),
            why,
        );
    }
}
