//! What a UDP session carried one way, for its debug closing line:
//! datagrams and their bytes.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Datagrams and their bytes, one way.
#[derive(Default)]
pub struct Tally {
    datagrams: AtomicU64,
    bytes: AtomicU64,
}

impl Tally {
    /// Counts `datagrams` more, of `bytes` in all.
    pub fn add(&self, datagrams: u64, bytes: u64) {
        self.datagrams.fetch_add(datagrams, Relaxed);
        self.bytes.fetch_add(bytes, Relaxed);
    }
}

/// "N datagrams (B bytes)"
impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (datagrams, bytes) = (self.datagrams.load(Relaxed), self.bytes.load(Relaxed));
        write!(f, "{datagrams} datagrams ({bytes} bytes)")
    }
}
