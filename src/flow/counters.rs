//! Counters per rule, for SIGUSR1, the exit log and /metrics: relaxed
//! atomics, bumped when a client is turned away, when a connection or
//! session opens and closes, when a target is tried, and by the copiers as
//! they deliver bytes. Nothing here is on a lock or waits; readers take a
//! `Reading`, a snapshot of them all.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use super::{Direction, PerDirection};

/// What one rule has done since the start.
#[derive(Debug)]
pub struct Counters {
    /// Connections (or UDP sessions) open now.
    open: AtomicU64,
    /// Stream clients admitted and still connecting to a target.
    connecting: AtomicU64,
    /// Connections that reached a target, open or since closed.
    served: AtomicU64,
    /// Clients turned away by --allow.
    denied: AtomicU64,
    /// Clients for which no target answered.
    no_target: AtomicU64,
    /// UDP datagrams dropped because they would open a session over --max-conns.
    over_cap: AtomicU64,
    /// Trusted peers reset for a missing, slow or malformed PROXY header.
    bad_header: AtomicU64,
    /// Bytes delivered, by `Direction`: each on a cache line of its own, as
    /// the two directions are counted by two threads at once.
    bytes: PerDirection<Line>,
    /// Per target of the rule, in its order.
    targets: Box<[TargetCounters]>,
}

/// Connects to one target, by outcome.
#[derive(Debug, Default)]
struct TargetCounters {
    ok: AtomicU64,
    failed: AtomicU64,
}

/// A stream client being connected to a target, counted in `in_flight`.
pub struct Connecting(Arc<Counters>);

impl Connecting {
    /// A target answered: the connection is counted open (before it stops
    /// counting as connecting, so a drain never sees it as neither), and
    /// its rule's counters are handed on.
    pub fn opened(self) -> Arc<Counters> {
        self.0.opened();
        Arc::clone(&self.0)
    }
}

impl Drop for Connecting {
    fn drop(&mut self) {
        self.0.connecting.fetch_sub(1, Relaxed);
    }
}

/// A counter alone on its cache line.
#[derive(Debug, Default)]
#[repr(align(64))]
struct Line(AtomicU64);

/// One reading of a rule's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading {
    pub open: u64,
    pub served: u64,
    pub denied: u64,
    pub no_target: u64,
    pub over_cap: u64,
    pub bad_header: u64,
    /// Bytes up (client to target) and down.
    pub bytes: PerDirection<u64>,
    /// Per target, in the rule's order.
    pub targets: Vec<TargetReading>,
}

/// Connects to one target: how many worked and how many failed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TargetReading {
    pub ok: u64,
    pub failed: u64,
}

impl Counters {
    /// Counters for a rule with `targets` targets.
    pub fn new(targets: usize) -> Counters {
        Counters {
            open: AtomicU64::new(0),
            connecting: AtomicU64::new(0),
            served: AtomicU64::new(0),
            denied: AtomicU64::new(0),
            no_target: AtomicU64::new(0),
            over_cap: AtomicU64::new(0),
            bad_header: AtomicU64::new(0),
            bytes: Default::default(),
            targets: (0..targets).map(|_| Default::default()).collect(),
        }
    }

    /// A connection reached its target: counts it served and open.
    pub fn opened(&self) {
        self.served.fetch_add(1, Relaxed);
        self.open.fetch_add(1, Relaxed);
    }

    /// A stream client admitted: counted connecting until the guard is
    /// dropped (no target answered) or opened (one did).
    pub fn connecting(self: &Arc<Self>) -> Connecting {
        self.connecting.fetch_add(1, Relaxed);
        Connecting(Arc::clone(self))
    }

    /// Stream connections open or still connecting to a target: what a
    /// drain waits for.
    pub fn in_flight(&self) -> u64 {
        self.open.load(Relaxed) + self.connecting.load(Relaxed)
    }

    /// A connection counted by `opened` is closed.
    pub fn closed(&self) {
        self.open.fetch_sub(1, Relaxed);
    }

    pub fn denied(&self) {
        self.denied.fetch_add(1, Relaxed);
    }

    pub fn no_target(&self) {
        self.no_target.fetch_add(1, Relaxed);
    }

    pub fn over_cap(&self) {
        self.over_cap.fetch_add(1, Relaxed);
    }

    pub fn bad_header(&self) {
        self.bad_header.fetch_add(1, Relaxed);
    }

    /// Target `index` of the rule was tried: it answered (`ok`) or not.
    pub fn target_tried(&self, index: usize, ok: bool) {
        if let Some(target) = self.targets.get(index) {
            let outcome = if ok { &target.ok } else { &target.failed };
            outcome.fetch_add(1, Relaxed);
        }
    }

    pub fn delivered(&self, dir: Direction, n: usize) {
        self.bytes[dir].0.fetch_add(n as u64, Relaxed);
    }

    /// Every counter now.
    pub fn read(&self) -> Reading {
        Reading {
            open: self.open.load(Relaxed),
            served: self.served.load(Relaxed),
            denied: self.denied.load(Relaxed),
            no_target: self.no_target.load(Relaxed),
            over_cap: self.over_cap.load(Relaxed),
            bad_header: self.bad_header.load(Relaxed),
            bytes: PerDirection {
                up: self.bytes.up.0.load(Relaxed),
                down: self.bytes.down.0.load(Relaxed),
            },
            targets: self
                .targets
                .iter()
                .map(|t| TargetReading {
                    ok: t.ok.load(Relaxed),
                    failed: t.failed.load(Relaxed),
                })
                .collect(),
        }
    }

    /// The counters as one log line's tail; a UDP rule's also tells the
    /// datagrams dropped over --max-conns, and a rule whose clients may send
    /// PROXY headers the bad ones.
    pub fn summary(&self, udp: bool, headers: bool) -> String {
        let c = self.read();
        let mut tail = String::new();
        if udp {
            tail += &format!(", over cap {}", c.over_cap);
        }
        if headers {
            tail += &format!(", bad header {}", c.bad_header);
        }
        format!(
            "open {}, served {}, denied {}, no target {}, bytes up {}, bytes down {}{tail}",
            c.open, c.served, c.denied, c.no_target, c.bytes.up, c.bytes.down,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_each_event() {
        let counters = Counters::new(2);
        counters.opened();
        counters.opened();
        counters.closed();
        counters.denied();
        counters.no_target();
        counters.no_target();
        counters.delivered(Direction::Up, 10);
        counters.delivered(Direction::Down, 7);
        counters.delivered(Direction::Up, 5);
        counters.over_cap();
        counters.bad_header();
        assert_eq!(
            counters.summary(false, false),
            "open 1, served 2, denied 1, no target 2, bytes up 15, bytes down 7"
        );
        assert_eq!(
            counters.summary(true, false),
            "open 1, served 2, denied 1, no target 2, bytes up 15, bytes down 7, over cap 1"
        );
        assert_eq!(
            counters.summary(false, true),
            "open 1, served 2, denied 1, no target 2, bytes up 15, bytes down 7, bad header 1"
        );
    }

    #[test]
    fn a_connecting_client_is_in_flight_until_it_ends_or_opens() {
        let counters = Arc::new(Counters::new(1));
        let failed = counters.connecting();
        let reached = counters.connecting();
        assert_eq!(counters.in_flight(), 2);
        drop(failed);
        assert_eq!(counters.in_flight(), 1);
        let counters = reached.opened();
        assert_eq!((counters.in_flight(), counters.read().open), (1, 1));
        counters.closed();
        assert_eq!(counters.in_flight(), 0);
    }

    #[test]
    fn targets_are_counted_by_index_and_outcome() {
        let counters = Counters::new(2);
        counters.target_tried(0, false);
        counters.target_tried(1, true);
        counters.target_tried(1, true);
        // An index past the list (cannot happen) is ignored, not a panic.
        counters.target_tried(7, true);
        let reading = |ok, failed| TargetReading { ok, failed };
        assert_eq!(counters.read().targets, [reading(0, 1), reading(2, 0)]);
    }
}
