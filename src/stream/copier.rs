//! The two copiers of a connection, one per direction, each on `io::copy`.
//! End of stream in one direction becomes a half-close of the other
//! stream; an error on either side aborts both (conn.rs), which sends each
//! peer a reset and wakes the other copier.
//!
//! Why two phases: a direction's first 256 KiB go through an 8 KiB buffer,
//! the rest through a 64 KiB one: idle and chatty connections never pay for
//! the big buffer, a long transfer pays one allocation for it. Both are on
//! the heap and read the stream itself (no wrapper), so std reads into
//! uninitialised memory and an idle copier keeps resident only the pages
//! that received bytes, plus one stack page (measured: scripts/idle-memory.py).

use std::io::{self, BufReader, Read, Write};
use std::sync::Arc;

use super::conn::{Conn, Side};
use super::endpoint::Stream;
use crate::flow::activity::is_tick;
use crate::flow::Direction;

/// Bytes moved per read and write once a direction has moved `SMALL_PHASE`
/// bytes: io::copy's own 8 KiB buffer halves bulk throughput on loopback.
const COPY_BUFFER: usize = 64 * 1024;

/// Bytes each direction copies through its `SMALL_BUFFER` before it
/// allocates its big buffer.
const SMALL_PHASE: u64 = 256 * 1024;
/// The smallest buffer io::copy uses as it is (below 8 KiB it copies
/// through a stack buffer of its own).
const SMALL_BUFFER: usize = 8 * 1024;

/// Copies one direction, `prefix` first, until end of stream or error,
/// then passes the end on: a half-close after end of stream, a teardown
/// after an error.
pub fn copy(conn: &Arc<Conn>, dir: Direction, prefix: &[u8]) {
    let mut outbound = Outbound {
        conn,
        dir,
        total: 0,
    };
    let result = outbound
        .write_all(prefix)
        .and_then(|()| pump(conn, dir, &mut outbound));
    conn.finished(dir, outbound.total);
    let source = Side::source(dir);
    match result {
        Ok(()) if conn.is_torn_down() => {}
        // A reset whose error the other copier's write took (its socket is
        // closed, yet this side sent no FIN): passed on as a reset.
        Ok(()) if !conn.ended(dir.other()) && conn.stream(source).was_reset() => {
            conn.note_abort(|| format!("{} reset", source.name()));
            conn.teardown();
        }
        Ok(()) => {
            conn.note_end(|| format!("{} closed", source.name()));
            conn.mark_ended(dir);
            let sink = Side::sink(dir);
            if let Err(e) = conn.stream(sink).half_close() {
                conn.note_abort(|| format!("{} half-close: {e}", sink.name()));
                conn.teardown();
            }
        }
        Err(_) => conn.teardown(),
    }
}

/// Moves one direction's bytes until its source ends (Ok) or fails. The
/// stream's variant is matched once here, not per read: io::copy then reads
/// the socket type itself, whose `read_buf` reads into uninitialised memory
/// (a `Read` of our own can only have the default, which zero-fills the
/// whole buffer first: a page more per direction, measured). Both phases
/// touch only the pages that receive bytes. A read timeout (the idle tick)
/// comes back from `io::copy` as an error with nothing read and not
/// written; the deadline is checked and the copy resumes.
fn pump(conn: &Conn, dir: Direction, outbound: &mut Outbound) -> io::Result<()> {
    match conn.stream(Side::source(dir)) {
        Stream::Tcp(source) => pump_from(source, conn, dir, outbound),
        Stream::Unix(source) => pump_from(source, conn, dir, outbound),
    }
}

fn pump_from<S>(source: &S, conn: &Conn, dir: Direction, outbound: &mut Outbound) -> io::Result<()>
where
    for<'a> &'a S: Read,
{
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
    conn.note_abort(|| format!("{} read: {e}", Side::source(dir).name()));
    Err(e)
}

/// Writes one direction's bytes to its sink stream and counts them.
struct Outbound<'a> {
    conn: &'a Conn,
    dir: Direction,
    /// Bytes delivered so far; only this copier touches it.
    total: u64,
}

impl Write for Outbound<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let sink = Side::sink(self.dir);
        loop {
            match self.conn.stream(sink).write(buf) {
                Ok(n) => {
                    self.total += n as u64;
                    self.conn.delivered(self.dir, n);
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_tick(&e) => self.conn.check_idle()?,
                Err(e) => {
                    self.conn
                        .note_abort(|| format!("{} write: {e}", sink.name()));
                    return Err(e);
                }
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
