//! One connection, from accept to close: connect to the first target that
//! answers (connect.rs), then two copiers on `io::copy`, one per direction.
//! End of stream in one direction becomes a half-close of the other socket;
//! an error on either side aborts both (conn.rs), which sends each peer a
//! reset and wakes the other copier.
//!
//! Why two phases: a direction's first 256 KiB go through io::copy's 8 KiB
//! stack buffer, the rest through a 64 KiB buffer kept per thread. A buffer
//! per connection costs idle connections ~10 KB each and new ones a malloc;
//! one per thread from the start zero-fills 64 KiB (measured, README).

use std::cell::RefCell;
use std::io::{self, BufRead, BufReader, Read, Write};
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

/// Bytes each direction copies through io::copy's 8 KiB stack buffer before
/// it switches to the thread's big buffer. std zero-fills a BufReader's whole
/// buffer on first use when it reads through a wrapper like `Inbound`, which
/// makes it resident: idle and chatty connections stay below this.
const SMALL_PHASE: u64 = 256 * 1024;

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

/// Starts relaying an accepted client on a pooled thread. On error (no
/// thread could be made) the client is closed and its slot freed.
pub fn start(
    client: TcpStream,
    peer: SocketAddr,
    served: Arc<Served>,
    permit: Permit,
) -> io::Result<()> {
    Pool::global().run(move || open(client, peer, &served, permit))
}

fn open(client: TcpStream, peer: SocketAddr, served: &Served, permit: Permit) {
    let (rule, timeouts) = (&served.rule, &served.timeouts);
    let Some((target, target_addr)) = connect(rule, timeouts.connect) else {
        served.stats.failed();
        log::warn!("rule {rule}: no target answered; closing client {peer}");
        // A reset, not a FIN: the client must not mistake this for an empty reply.
        let _ = sys::set_linger_zero(&client);
        return;
    };
    log::debug!("{peer} -> {target_addr}: open (rule {rule})");
    for socket in [&client, &target] {
        let _ = socket.set_nodelay(true);
        if let Some(idle) = timeouts.idle {
            let _ = socket.set_read_timeout(Some(tick(idle)));
            let _ = socket.set_write_timeout(Some(tick(idle)));
        }
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
    let mut inbound = Inbound {
        conn: Some(Arc::clone(conn)),
        dir,
    };
    let mut outbound = Outbound {
        conn,
        dir,
        total: 0,
    };
    let result = match io::copy(&mut (&mut inbound).take(SMALL_PHASE), &mut outbound) {
        Ok(n) if n == SMALL_PHASE => copy_big(inbound, &mut outbound).map(|m| n + m),
        done => done,
    };
    conn.finished(dir, outbound.total);
    match result {
        Ok(_) if conn.is_torn_down() => {}
        Ok(_) => {
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

thread_local! {
    /// This thread's big copy buffer, made the first time one of its
    /// connections needs it and kept across the connections it serves (musl
    /// maps and unmaps a block that size on every allocation). `io::copy`
    /// reads straight into a `BufReader`'s buffer.
    static BIG: RefCell<Option<BufReader<Inbound>>> = const { RefCell::new(None) };
}

/// The rest of a direction that moved `SMALL_PHASE` bytes, through this
/// thread's big buffer. The connection is lent to the buffer for the copy
/// and taken back after it, with any bytes read but not written.
fn copy_big(inbound: Inbound, outbound: &mut Outbound) -> io::Result<u64> {
    BIG.with(|big| {
        // copy never runs inside copy on one thread, so this borrow is the only one.
        let mut big = big.borrow_mut();
        let reader = match big.as_mut() {
            Some(reader) => {
                *reader.get_mut() = inbound;
                reader
            }
            None => big.insert(BufReader::with_capacity(COPY_BUFFER, inbound)),
        };
        let result = io::copy(reader, outbound);
        let unsent = reader.buffer().len();
        reader.consume(unsent);
        reader.get_mut().conn = None;
        result
    })
}

/// Reads one direction's source socket, waking on idle ticks to check the
/// deadline. Empty (reads end of stream) while parked in a thread's buffer
/// between connections.
struct Inbound {
    conn: Option<Arc<Conn>>,
    dir: Direction,
}

impl Read for Inbound {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(conn) = &self.conn else {
            return Ok(0);
        };
        let source = self.dir.source();
        loop {
            match conn.socket(source).read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_tick(&e) => conn.check_idle()?,
                Err(e) => {
                    conn.aborted(|| format!("{} read: {e}", source.name()));
                    return Err(e);
                }
            }
        }
    }
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
