//! UDP rules: one receive thread per rule reads every datagram that comes
//! to the listen address and hands it to its client's session, opening one
//! for a new client address: --allow first, then a slot under --max-conns
//! (none free: the datagram is dropped and counted), then the session's own
//! thread (session.rs), which reaches a target (reach.rs: names resolve
//! there, so a slow resolver never stalls this thread or other clients).
//! The session table is shared with the session threads, which take their
//! session out of it when it expires; a client's datagram is noted and sent
//! under the same lock, so a session never expires under a datagram on its
//! way. Replies take no lock: only a session's own thread expires it.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use self::session::Session;
use crate::config::allow::AllowList;
use crate::config::rule::Rule;
use crate::error::Error;
use crate::flow::backoff::Backoff;
use crate::flow::limit::Limit;
use crate::flow::pool::Pool;
use crate::flow::stats::Stats;
use crate::flow::Stop;
use crate::sys::{self, Arrival};

mod reach;
mod session;

/// The receive buffer asked for the listening socket, which every client
/// of the rule shares: a burst of a thousand small datagrams waits here
/// instead of being dropped (the kernel's default, 208 KiB, holds about 160).
const LISTEN_BUFFER: i32 = 4 << 20;

/// A UDP rule being served.
pub struct UdpRule {
    pub rule: Rule,
    pub stats: Arc<Stats>,
    /// The listening socket; replies leave through it too.
    pub socket: UdpSocket,
    /// --udp-timeout
    pub timeout: Duration,
    allow: Arc<AllowList>,
    limit: Arc<Limit>,
    sessions: Mutex<HashMap<SocketAddr, Arc<Session>>>,
}

/// Binds a UDP rule's listen address `addr`, asking for each datagram's arrival
/// address when it is a wildcard.
pub fn bind(rule: &Rule, addr: SocketAddr) -> Result<UdpSocket, Error> {
    let bind_error = |source| Error::Bind {
        listen: format!("{}/udp", rule.listen),
        source,
    };
    let socket = UdpSocket::bind(addr).map_err(bind_error)?;
    if let Err(e) = sys::set_receive_buffer(&socket, LISTEN_BUFFER) {
        log::debug!("{addr}/udp: cannot raise the receive buffer: {e}");
    }
    if addr.ip().is_unspecified() {
        sys::want_arrival(&socket, addr.is_ipv6()).map_err(bind_error)?;
    }
    Ok(socket)
}

impl UdpRule {
    /// A rule bound to `socket`, counting in `stats`, sessions ending after
    /// `timeout` with no datagram either way.
    pub fn new(
        rule: Rule,
        stats: Arc<Stats>,
        socket: UdpSocket,
        timeout: Duration,
        allow: Arc<AllowList>,
        limit: Arc<Limit>,
    ) -> UdpRule {
        UdpRule {
            rule,
            stats,
            socket,
            timeout,
            allow,
            limit,
            sessions: Mutex::new(HashMap::new()),
        }
    }

    fn table(&self) -> MutexGuard<'_, HashMap<SocketAddr, Arc<Session>>> {
        // Nothing panics under this lock; the map stays usable if it did.
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The receive thread, until listening stops: each wake-up takes every
    /// datagram that waits (up to sys::BATCH) in one system call.
    pub fn run(self: Arc<Self>, stop: Stop) {
        let mut batch = sys::Batch::default();
        let mut backoff = Backoff::default();
        loop {
            let received = batch.receive(&self.socket);
            if stop.is_set() {
                return;
            }
            let count = match received {
                Ok(count) => count,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    backoff.after(format_args!("rule {}: receive failed: {e}", self.rule));
                    continue;
                }
            };
            backoff.reset();
            for (datagram, client, arrival) in (0..count).filter_map(|i| batch.get(i)) {
                if !self.allow.permits(client.ip()) {
                    self.stats.denied();
                    log::debug!(
                        "rule {}: {client} is not allowed; datagram dropped",
                        self.rule
                    );
                    continue;
                }
                self.forward(client, arrival, datagram);
            }
        }
    }

    /// Forwards a client's datagram in its session, opening one if it has
    /// none. An open session is marked active and sent to under the table's
    /// lock, so its reply thread cannot expire it in between; nothing under
    /// it blocks (a session reaching a target queues the datagram, and a
    /// refusal hands the failover to a pooled thread).
    fn forward(self: &Arc<Self>, client: SocketAddr, arrival: Option<Arrival>, datagram: &[u8]) {
        if let Some(session) = self.table().get(&client) {
            session.touch();
            session.forward(self, datagram);
            return;
        }
        if let Some(session) = self.open(client, arrival) {
            session.forward(self, datagram);
        }
    }

    /// Opens a session for a new client: a slot, then the session's own
    /// thread, which reaches a target (resolving names there, not here).
    fn open(
        self: &Arc<Self>,
        client: SocketAddr,
        arrival: Option<Arrival>,
    ) -> Option<Arc<Session>> {
        let Some(permit) = self.limit.try_acquire() else {
            self.stats.over_cap();
            log::debug!(
                "rule {}: {client}: --max-conns reached; datagram dropped",
                self.rule
            );
            return None;
        };
        let session = Arc::new(Session::new(client, arrival, permit));
        session.touch();
        self.table().insert(client, Arc::clone(&session));
        let (starting, rule) = (Arc::clone(&session), Arc::clone(self));
        if let Err(e) = Pool::global().run(move || starting.start(rule)) {
            log::warn!(
                "rule {}: dropping {client}: cannot start a thread: {e}",
                self.rule
            );
            self.forget(&session);
            return None;
        }
        Some(session)
    }

    /// Takes the session out of the table if it expired; true if it did.
    pub fn expire(&self, session: &Arc<Session>) -> bool {
        let mut table = self.table();
        if !session.expired(self.timeout) {
            return false;
        }
        self.remove(&mut table, session);
        true
    }

    /// Takes the session out of the table (if it is still there).
    pub fn forget(&self, session: &Arc<Session>) {
        self.remove(&mut self.table(), session);
    }

    fn remove(&self, table: &mut HashMap<SocketAddr, Arc<Session>>, session: &Arc<Session>) {
        if table
            .get(&session.client)
            .is_some_and(|s| Arc::ptr_eq(s, session))
        {
            table.remove(&session.client);
            if session.counted() {
                self.stats.closed();
            }
        }
    }

    /// Sessions open now.
    pub fn sessions(&self) -> usize {
        self.table().len()
    }
}
