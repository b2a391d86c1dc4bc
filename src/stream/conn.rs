//! The state the two copiers of one connection share: both streams, the
//! bytes delivered each way, its clock of activity (for --idle-timeout),
//! why the connection ended, its rule's counters and its slot under
//! --max-conns. Dropping the last reference closes both streams, frees the
//! slot, counts the connection closed and logs the closing line. Moving
//! bytes is copier.rs's business, not this file's.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::client::Client;
use super::endpoint::{Peer, Stream};
use crate::config::seconds::Secs;
use crate::flow::activity::Activity;
use crate::flow::counters::{Connecting, Counters};
use crate::flow::limit::Permit;
use crate::flow::{Direction, PerDirection};

/// One end of a relayed connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Client,
    Target,
}

impl Side {
    pub fn name(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Target => "target",
        }
    }

    /// The side a direction reads from.
    pub fn source(dir: Direction) -> Side {
        match dir {
            Direction::Up => Side::Client,
            Direction::Down => Side::Target,
        }
    }

    /// The side a direction writes to.
    pub fn sink(dir: Direction) -> Side {
        match dir {
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

/// What a connection joins: the client's stream and who the client is,
/// the target's stream and whom it reached.
pub struct Ends {
    pub client_stream: Stream,
    pub client: Client,
    pub target_stream: Stream,
    pub target: Peer,
}

/// An open, relayed connection.
pub struct Conn {
    client_stream: Stream,
    target_stream: Stream,
    client: Client,
    target: Peer,
    activity: Activity,
    /// --idle-timeout; without it, bytes moved are not timed.
    idle: Option<Duration>,
    /// Bytes delivered, by `Direction`: each copier stores its total when done.
    bytes: PerDirection<AtomicU64>,
    /// Set by a copier whose source ended cleanly, before it half-closes.
    ended: PerDirection<AtomicBool>,
    torn_down: AtomicBool,
    ending: Mutex<Ending>,
    counters: Arc<Counters>,
    _permit: Permit,
}

impl Conn {
    /// A connection that reached its target, counted open in its rule.
    pub fn new(ends: Ends, idle: Option<Duration>, connecting: Connecting, permit: Permit) -> Conn {
        let counters = connecting.opened();
        Conn {
            client_stream: ends.client_stream,
            target_stream: ends.target_stream,
            client: ends.client,
            target: ends.target,
            activity: Activity::new(),
            idle,
            bytes: PerDirection::default(),
            ended: PerDirection::default(),
            torn_down: AtomicBool::new(false),
            ending: Mutex::new(Ending::default()),
            counters,
            _permit: permit,
        }
    }

    /// Who the client is.
    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn stream(&self, side: Side) -> &Stream {
        match side {
            Side::Client => &self.client_stream,
            Side::Target => &self.target_stream,
        }
    }

    pub fn is_torn_down(&self) -> bool {
        self.torn_down.load(Ordering::Acquire)
    }

    /// Records an end of stream for the closing line; only the first is
    /// kept. Only the debug closing line shows it, so it is not even
    /// formatted unless that is on.
    pub fn note_end(&self, why: impl FnOnce() -> String) {
        if log::log_enabled!(log::Level::Debug) {
            self.ending_lock().closed.get_or_insert_with(why);
        }
    }

    /// Records what aborted the connection; only the first cause is kept.
    /// It does not abort anything: `teardown` does.
    pub fn note_abort(&self, why: impl FnOnce() -> String) {
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
        self.counters.delivered(dir, n);
        if self.idle.is_some() {
            self.activity.touch();
        }
    }

    /// Records a direction's total for the closing line, once it is done.
    pub fn finished(&self, dir: Direction, total: u64) {
        self.bytes[dir].store(total, Ordering::Relaxed);
    }

    /// Direction `dir`'s source ended cleanly: its sink is about to be
    /// half-closed.
    pub fn mark_ended(&self, dir: Direction) {
        self.ended[dir].store(true, Ordering::Release);
    }

    /// Whether direction `dir` ended cleanly (so its sink saw our FIN).
    pub fn ended(&self, dir: Direction) -> bool {
        self.ended[dir].load(Ordering::Acquire)
    }

    /// Called when a blocking read or write timed out: an error once the
    /// connection moved nothing for the idle timeout, or was torn down.
    pub fn check_idle(&self) -> io::Result<()> {
        if self.is_torn_down() {
            return Err(io::Error::other("torn down"));
        }
        // Without an idle timeout a tick is spurious (a socket option that
        // could not be cleared): carry on.
        match self.idle {
            Some(idle) if self.activity.quiet_for(idle) => {
                self.note_abort(|| format!("idle for {}", Secs(idle)));
                Err(io::Error::new(io::ErrorKind::TimedOut, "idle timeout"))
            }
            _ => Ok(()),
        }
    }

    /// Aborts both streams once: each peer gets a reset (so a cut stream
    /// never looks like a clean end) and any copier blocked on them wakes.
    pub fn teardown(&self) {
        if self.torn_down.swap(true, Ordering::AcqRel) {
            return;
        }
        for stream in [&self.client_stream, &self.target_stream] {
            stream.abort();
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.counters.closed();
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
            self.client,
            self.target,
            Secs(self.activity.age()),
            self.bytes.up.load(Ordering::Relaxed),
            self.bytes.down.load(Ordering::Relaxed),
            why,
        );
    }
}
