//! One connection, from accept to close: connect to the first target that
//! answers (connect.rs), then two copiers on `io::copy`, one per direction.
//! End of stream in one direction becomes a half-close of the other socket;
//! an error on either side aborts both (conn.rs), which sends each peer a
//! reset and wakes the other copier.
//!
//! Each direction reads through a `BufReader` straight over its socket:
//! `io::copy` then reads into that buffer, and std's `TcpStream` reads into
//! uninitialised memory, so only the pages that ever received bytes become
//! resident (an idle or chatty connection touches one page, a bulk transfer
//! all of them). A read timeout (the idle tick) leaves the buffer empty, so
//! the copier checks the idle deadline and calls `io::copy` again.

use std::io::{self, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use crate::conn::{Conn, Direction};
use crate::connect::connect;
use crate::limit::Permit;
use crate::pool::Pool;
use crate::rule::Rule;
use crate::sys;

/// Bytes a direction reads at once: io::copy's own 8 KiB buffer halves bulk
/// throughput on loopback (see the benchmark in the README).
const COPY_BUFFER: usize = 64 * 1024;

/// The timeouts every connection shares.
#[derive(Debug)]
pub struct Timeouts {
    pub connect: Duration,
    pub idle: Option<Duration>,
}

/// Starts relaying an accepted client on a pooled thread. On error (no
/// thread could be made) the client is closed and its slot freed.
pub fn start(
    client: TcpStream,
    peer: SocketAddr,
    rule: Arc<Rule>,
    timeouts: Arc<Timeouts>,
    permit: Permit,
) -> io::Result<()> {
    Pool::global().run(move || open(client, peer, &rule, &timeouts, permit))
}

fn open(client: TcpStream, peer: SocketAddr, rule: &Rule, timeouts: &Timeouts, permit: Permit) {
    let Some((target, target_addr)) = connect(rule, timeouts.connect) else {
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
    let conn = Arc::new(Conn::new(
        client,
        target,
        peer,
        target_addr,
        timeouts.idle,
        permit,
    ));
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
fn copy(conn: &Conn, dir: Direction) {
    let source = dir.source();
    let mut reader = BufReader::with_capacity(COPY_BUFFER, conn.socket(source));
    let mut writer = Outbound { conn, dir };
    let result = loop {
        match io::copy(&mut reader, &mut writer) {
            Err(e) if is_tick(&e) => match conn.check_idle() {
                Ok(()) => continue,
                Err(e) => break Err(e),
            },
            Err(e) => {
                // A failed write already recorded its own cause, which stays first.
                conn.aborted(|| format!("{} read: {e}", source.name()));
                break Err(e);
            }
            Ok(n) => break Ok(n),
        }
    };
    match result {
        Ok(_) if conn.is_torn_down() => {}
        Ok(_) => {
            conn.closed(|| format!("{} closed", source.name()));
            let sink = dir.sink();
            if let Err(e) = conn.socket(sink).shutdown(Shutdown::Write) {
                conn.aborted(|| format!("{} half-close: {e}", sink.name()));
                conn.teardown();
            }
        }
        Err(_) => conn.teardown(),
    }
}

/// A read or write that timed out: the idle tick, not a failure.
fn is_tick(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Writes one direction's bytes to its sink socket, counting them. A write
/// that times out is retried here, never handed back to `io::copy`, which
/// could not tell how much of its buffer was written.
struct Outbound<'a> {
    conn: &'a Conn,
    dir: Direction,
}

impl Write for Outbound<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let sink = self.dir.sink();
        loop {
            match self.conn.socket(sink).write(buf) {
                Ok(n) => {
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
