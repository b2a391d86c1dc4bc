//! Counters per rule, for SIGUSR1, the exit log and /metrics: relaxed
//! atomics, bumped when a client is turned away, when a connection or
//! session opens and closes, when a target is tried, and by the copiers as
//! they deliver bytes. Nothing here is on a lock or waits; readers take a
//! `Counts` snapshot.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::Direction;

/// What one rule has done since the start.
#[derive(Debug)]
pub struct Stats {
    /// Connections (or UDP sessions) open now.
    open: AtomicU64,
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
    bytes: [Line; 2],
    /// Per target of the rule, in its order: [connects that worked, failed].
    targets: Box<[[AtomicU64; 2]]>,
}

/// A counter alone on its cache line.
#[derive(Debug, Default)]
#[repr(align(64))]
struct Line(AtomicU64);

/// One reading of a rule's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counts {
    pub open: u64,
    pub served: u64,
    pub denied: u64,
    pub no_target: u64,
    pub over_cap: u64,
    pub bad_header: u64,
    /// Bytes up (client to target) and down.
    pub bytes: [u64; 2],
    /// Per target: [ok, failed].
    pub targets: Vec<[u64; 2]>,
}

impl Stats {
    /// Counters for a rule with `targets` targets.
    pub fn new(targets: usize) -> Stats {
        Stats {
            open: AtomicU64::new(0),
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
        if let Some(counts) = self.targets.get(index) {
            counts[usize::from(!ok)].fetch_add(1, Relaxed);
        }
    }

    pub fn delivered(&self, dir: Direction, n: usize) {
        self.bytes[dir as usize].0.fetch_add(n as u64, Relaxed);
    }

    /// Every counter now.
    pub fn counts(&self) -> Counts {
        Counts {
            open: self.open.load(Relaxed),
            served: self.served.load(Relaxed),
            denied: self.denied.load(Relaxed),
            no_target: self.no_target.load(Relaxed),
            over_cap: self.over_cap.load(Relaxed),
            bad_header: self.bad_header.load(Relaxed),
            bytes: [self.bytes[0].0.load(Relaxed), self.bytes[1].0.load(Relaxed)],
            targets: self
                .targets
                .iter()
                .map(|[ok, failed]| [ok.load(Relaxed), failed.load(Relaxed)])
                .collect(),
        }
    }

    /// The counters as one log line's tail; a UDP rule's also tells the
    /// datagrams dropped over --max-conns, and a rule whose clients may send
    /// PROXY headers the bad ones.
    pub fn summary(&self, udp: bool, headers: bool) -> String {
        let c = self.counts();
        let mut tail = String::new();
        if udp {
            tail += &format!(", over cap {}", c.over_cap);
        }
        if headers {
            tail += &format!(", bad header {}", c.bad_header);
        }
        format!(
            "open {}, served {}, denied {}, no target {}, bytes up {}, bytes down {}{tail}",
            c.open, c.served, c.denied, c.no_target, c.bytes[0], c.bytes[1],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_each_event() {
        let stats = Stats::new(2);
        stats.opened();
        stats.opened();
        stats.closed();
        stats.denied();
        stats.no_target();
        stats.no_target();
        stats.delivered(Direction::Up, 10);
        stats.delivered(Direction::Down, 7);
        stats.delivered(Direction::Up, 5);
        stats.over_cap();
        stats.bad_header();
        assert_eq!(
            stats.summary(false, false),
            "open 1, served 2, denied 1, no target 2, bytes up 15, bytes down 7"
        );
        assert_eq!(
            stats.summary(true, false),
            "open 1, served 2, denied 1, no target 2, bytes up 15, bytes down 7, over cap 1"
        );
        assert_eq!(
            stats.summary(false, true),
            "open 1, served 2, denied 1, no target 2, bytes up 15, bytes down 7, bad header 1"
        );
    }

    #[test]
    fn targets_are_counted_by_index_and_outcome() {
        let stats = Stats::new(2);
        stats.target_tried(0, false);
        stats.target_tried(1, true);
        stats.target_tried(1, true);
        // An index past the list (cannot happen) is ignored, not a panic.
        stats.target_tried(7, true);
        assert_eq!(stats.counts().targets, [[0, 1], [2, 0]]);
    }
}
