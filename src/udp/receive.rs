//! A UDP rule's receive thread and its session table: every datagram that
//! comes to the listen address goes to its client's session, opening one
//! for a new client address: --allow first, then a slot under --max-conns
//! (none free: the datagram is dropped and counted), then the session's
//! own thread (session.rs), which reaches a target (names resolve there,
//! so a slow resolver never stalls this thread or other clients). The
//! table is shared with the session threads, which take their session out
//! of it when it expires; a client's datagram is noted and sent under the
//! same lock, so a session never expires under a datagram on its way.
//! Replies take no lock: only a session's own thread expires it.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use super::rule::UdpRule;
use super::session::Session;
use crate::config::allow::AllowList;
use crate::flow::backoff::Backoff;
use crate::flow::limit::Limit;
use crate::flow::pool::Pool;
use crate::flow::Stop;
use crate::sys::{self, Arrival};

/// A UDP rule's receiving side: the rule, who may send, the cap and the
/// open sessions by client address.
pub struct Receiver {
    udp: Arc<UdpRule>,
    allow: Arc<AllowList>,
    limit: Arc<Limit>,
    sessions: Mutex<HashMap<SocketAddr, Arc<Session>>>,
}

impl Receiver {
    /// The receiving side of `udp`, admitting clients by `allow` and `limit`.
    pub fn new(udp: Arc<UdpRule>, allow: Arc<AllowList>, limit: Arc<Limit>) -> Receiver {
        Receiver {
            udp,
            allow,
            limit,
            sessions: Mutex::new(HashMap::new()),
        }
    }

    /// Stops listening in place: the receive thread wakes and ends (it
    /// sees the stop flag set first); sessions go on to their end.
    pub fn stop(&self) -> io::Result<()> {
        sys::stop_listening(&self.udp.socket)
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
        let rule = self.udp.rule();
        loop {
            let received = batch.receive(&self.udp.socket);
            if stop.is_set() {
                return;
            }
            let count = match received {
                Ok(count) => count,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    backoff.after(format_args!("rule {rule}: receive failed: {e}"));
                    continue;
                }
            };
            backoff.reset();
            for (datagram, client, arrival) in (0..count).filter_map(|i| batch.get(i)) {
                if !self.allow.permits(client.ip()) {
                    self.udp.counters().denied();
                    log::debug!("rule {rule}: {client} is not allowed; datagram dropped");
                    continue;
                }
                self.forward(client, arrival, datagram);
            }
        }
    }

    /// Forwards a client's datagram in its session, opening one if it has
    /// none. An open session is marked active and sent to under the table's
    /// lock, so its thread cannot expire it in between; nothing under it
    /// blocks (a session reaching a target queues the datagram, and a
    /// refusal hands the failover to a pooled thread).
    fn forward(self: &Arc<Self>, client: SocketAddr, arrival: Option<Arrival>, datagram: &[u8]) {
        if let Some(session) = self.table().get(&client) {
            session.touch();
            session.forward(&self.udp, datagram);
            return;
        }
        if let Some(session) = self.open(client, arrival) {
            session.forward(&self.udp, datagram);
        }
    }

    /// Opens a session for a new client: a slot, then the session's own
    /// thread, which reaches a target (resolving names there, not here).
    fn open(
        self: &Arc<Self>,
        client: SocketAddr,
        arrival: Option<Arrival>,
    ) -> Option<Arc<Session>> {
        let rule = self.udp.rule();
        let Some(permit) = self.limit.try_acquire() else {
            self.udp.counters().over_cap();
            log::debug!("rule {rule}: {client}: --max-conns reached; datagram dropped");
            return None;
        };
        let start = self.udp.targets.start();
        let session = Arc::new(Session::new(client, arrival, start, permit));
        session.touch();
        self.table().insert(client, Arc::clone(&session));
        let (starting, receiver) = (Arc::clone(&session), Arc::clone(self));
        if let Err(e) = Pool::global().run(move || receiver.session_thread(starting)) {
            log::warn!("rule {rule}: dropping {client}: cannot start a thread: {e}");
            self.forget(&session);
            return None;
        }
        Some(session)
    }

    /// A session's own thread, from its first datagram to its end, when it
    /// leaves the table and says why.
    fn session_thread(&self, session: Arc<Session>) {
        let why = session.serve(&self.udp, || self.expire(&session));
        self.forget(&session);
        session.log_close(&why);
    }

    /// Takes the session out of the table if it expired; true if it did.
    fn expire(&self, session: &Arc<Session>) -> bool {
        let mut table = self.table();
        if !session.expired(self.udp.timeout) {
            return false;
        }
        self.remove(&mut table, session);
        true
    }

    /// Takes the session out of the table (if it is still there).
    fn forget(&self, session: &Arc<Session>) {
        self.remove(&mut self.table(), session);
    }

    fn remove(&self, table: &mut HashMap<SocketAddr, Arc<Session>>, session: &Arc<Session>) {
        let client = session.client();
        if table.get(&client).is_some_and(|s| Arc::ptr_eq(s, session)) {
            table.remove(&client);
            if session.counted() {
                self.udp.counters().closed();
            }
        }
    }
}
