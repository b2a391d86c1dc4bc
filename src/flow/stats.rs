//! Counters per rule, for SIGUSR1 and the exit log: relaxed atomics, bumped
//! when a client is turned away, when a connection or session opens and
//! closes, and by the copiers as they deliver bytes. Nothing here is on a
//! lock or waits.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::Direction;

/// What one rule has done since the start.
#[derive(Debug, Default)]
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
}

/// A counter alone on its cache line.
#[derive(Debug, Default)]
#[repr(align(64))]
struct Line(AtomicU64);

impl Stats {
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

    pub fn delivered(&self, dir: Direction, n: usize) {
        self.bytes[dir as usize].0.fetch_add(n as u64, Relaxed);
    }

    /// The counters as one log line's tail; a UDP rule's also tells the
    /// datagrams dropped over --max-conns, and a rule whose clients may send
    /// PROXY headers the bad ones.
    pub fn summary(&self, udp: bool, headers: bool) -> String {
        let mut over_cap = match udp {
            true => format!(", over cap {}", self.over_cap.load(Relaxed)),
            false => String::new(),
        };
        if headers {
            over_cap += &format!(", bad header {}", self.bad_header.load(Relaxed));
        }
        format!(
            "open {}, served {}, denied {}, no target {}, bytes up {}, bytes down {}{over_cap}",
            self.open.load(Relaxed),
            self.served.load(Relaxed),
            self.denied.load(Relaxed),
            self.no_target.load(Relaxed),
            self.bytes[0].0.load(Relaxed),
            self.bytes[1].0.load(Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_each_event() {
        let stats = Stats::default();
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
}
