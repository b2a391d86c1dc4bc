//! One connection, from accept to close: connect to the first target that
//! answers (connect.rs), then two copiers on `io::copy`, one per direction.
//! End of stream in one direction becomes a half-close of the other socket;
//! an error on either side aborts both (conn.rs), which sends each peer a
//! reset and wakes the other copier.
//!
//! Why two phases: a direction's first 256 KiB go through an 8 KiB buffer,
//! the rest through a 64 KiB one: idle and chatty connections never pay for
//! the big buffer, a long transfer pays one allocation for it. Both are on
//! the heap and read the socket itself (no wrapper), so std reads into
//! uninitialised memory and an idle copier keeps resident only the pages
//! that received bytes, plus one stack page (measured, README).

use std::io::{self, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use crate::conn::{Conn, Direction, Ends};
use crate::connect::connect;
use crate::limit::Permit;
use crate::pool::Pool;
use crate::rule::Rule;
use crate::stats::Stats;
use crate::sys;

/// Bytes moved per read and write once a direction has moved `SMALL_PHASE`
/// bytes: io::copy's own 8 KiB buffer halves bulk throughput on loopback.
const COPY_BUFFER: usize = 64 * 1024;

/// Bytes each direction copies through its `SMALL_BUFFER` before it
/// allocates its big buffer.
const SMALL_PHASE: u64 = 256 * 1024;
/// The smallest buffer io::copy uses as it is (below 8 KiB it copies
/// through a stack buffer of its own).
const SMALL_BUFFER: usize = 8 * 1024;

/// The timeouts every connection shares.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    pub idle: Option<Duration>,
}

/// What every connection of one rule shares.
pub struct Served {
    pub rule: Rule,
    pub stats: Arc<Stats>,
    pub timeouts: Timeouts,
}

/// Serves an accepted client on this thread: connects to the first target
/// that answers, starts the target-to-client copier on a pooled thread and
/// copies client-to-target here. Returns once that direction is done.
pub fn serve(client: TcpStream, peer: SocketAddr, served: &Served, permit: Permit) {
    let (rule, timeouts) = (&served.rule, &served.timeouts);
    let Some((target, target_addr)) = connect(rule, timeouts.connect) else {
        served.stats.failed();
        log::warn!("rule {rule}: no target answered; closing client {peer}");
        // A reset, not a FIN: the client must not mistake this for an empty reply.
        let _ = sys::set_linger_zero(&client);
        return;
    };
    log::debug!("{peer} -> {target_addr}: open (rule {rule})");
    let every = timeouts.idle.map(tick);
    for socket in [&client, &target] {
        let _ = socket.set_nodelay(true);
        if every.is_some() {
            let _ = socket.set_read_timeout(every);
            let _ = socket.set_write_timeout(every);
        }
    }
    if every.is_none() {
        // The client inherited the listener's accept timeout: clear it.
        let _ = client.set_read_timeout(None);
    }
    let ends = Ends {
        client,
        peer,
        target,
        target_addr,
        stats: Arc::clone(&served.stats),
    };
    let conn = Arc::new(Conn::new(ends, timeouts.idle, permit));
    let down = Arc::clone(&conn);
    if let Err(e) = Pool::global().run(move || copy(&down, Direction::Down)) {
        log::warn!("rule {rule}: dropping client {peer}: cannot start a thread: {e}");
        conn.aborted(|| format!("no thread: {e}"));
        conn.teardown();
        return;
    }
    copy(&conn, Direction::Up);
}

/// How often a copier blocked with an idle timeout wakes to look at the
/// other direction's progress: a quarter of the timeout, within bounds.
fn tick(idle: Duration) -> Duration {
    (idle / 4).clamp(Duration::from_millis(10), Duration::from_secs(5))
}

/// Copies one direction until end of stream or error, then passes the end
/// on: a half-close after end of stream, a teardown after an error.
fn copy(conn: &Arc<Conn>, dir: Direction) {
    let mut outbound = Outbound {
        conn,
        dir,
        total: 0,
    };
    let result = pump(conn, dir, &mut outbound);
    conn.finished(dir, outbound.total);
    match result {
        Ok(()) if conn.is_torn_down() => {}
        Ok(()) => {
            conn.closed(|| format!("{} closed", dir.source().name()));
            let sink = dir.sink();
            if let Err(e) = conn.socket(sink).shutdown(Shutdown::Write) {
                conn.aborted(|| format!("{} half-close: {e}", sink.name()));
                conn.teardown();
            }
        }
        Err(_) => conn.teardown(),
    }
}

/// Moves one direction's bytes until its source ends (Ok) or fails. Both
/// phases read the socket itself, so std reads into uninitialised memory
/// and only pages that receive bytes are touched. A read timeout (the idle
/// tick) comes back from `io::copy` as an error with nothing read and not
/// written; the deadline is checked and the copy resumes.
fn pump(conn: &Conn, dir: Direction, outbound: &mut Outbound) -> io::Result<()> {
    let source = conn.socket(dir.source());
    while outbound.total < SMALL_PHASE {
        let left = SMALL_PHASE - outbound.total;
        match buffered(SMALL_BUFFER, source.take(left), outbound) {
            Ok(n) if n < left => return Ok(()),
            Ok(_) => {}
            Err(e) => resume(conn, dir, e)?,
        }
    }
    loop {
        match buffered(COPY_BUFFER, source, outbound) {
            Ok(_) => return Ok(()),
            Err(e) => resume(conn, dir, e)?,
        }
    }
}

/// One io::copy through a buffer of `capacity` bytes on the heap. A fresh
/// reader per call lets the compiler see its capacity, so io::copy's
/// stack-buffer path (an 8 KiB frame, every page of it touched) is not
/// even compiled in. Nothing is left in the buffer after an error: io::copy
/// writes all it reads before it reads again, and a failed write ends the
/// copy.
fn buffered(capacity: usize, source: impl Read, outbound: &mut Outbound) -> io::Result<u64> {
    io::copy(&mut BufReader::with_capacity(capacity, source), outbound)
}

/// After a read error: Ok to carry on (an idle tick within the deadline),
/// or the error that ends the direction. Write errors arrive here already
/// counted by `Outbound`, ticks included.
fn resume(conn: &Conn, dir: Direction, e: io::Error) -> io::Result<()> {
    if is_tick(&e) {
        return conn.check_idle();
    }
    conn.aborted(|| format!("{} read: {e}", dir.source().name()));
    Err(e)
}

/// A read or write that timed out: the idle tick, not a failure.
pub fn is_tick(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Writes one direction's bytes to its sink socket and counts them.
struct Outbound<'a> {
    conn: &'a Conn,
    dir: Direction,
    /// Bytes delivered so far; only this copier touches it.
    total: u64,
}

impl Write for Outbound<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let sink = self.dir.sink();
        loop {
            match self.conn.socket(sink).write(buf) {
                Ok(n) => {
                    self.total += n as u64;
                    self.conn.delivered(self.dir, n);
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_tick(&e) => self.conn.check_idle()?,
                Err(e) => {
                    self.conn.aborted(|| format!("{} write: {e}", sink.name()));
                    return Err(e);
                }
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
