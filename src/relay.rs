//! One connection, from accept to close: connect to the first target that
//! answers (every address of every target, in order), then two copier
//! threads on `io::copy`, one per direction. End of stream in one direction
//! becomes a half-close of the other socket; an error on either side aborts
//! both sockets, which sends each peer a reset and wakes the other copier.
//! The `Conn` is dropped when both copiers are done: that closes both sockets,
//! frees the connection's slot and logs the closing line.

use std::cell::RefCell;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::limit::Permit;
use crate::pool::Pool;
use crate::rule::{Rule, Target};
use crate::sys;

/// Bytes moved per read and write once a direction has moved `SMALL_PHASE`
/// bytes. io::copy's own 8 KiB stack buffer halves bulk throughput on
/// loopback (see the benchmark in the README).
const COPY_BUFFER: usize = 64 * 1024;

/// Bytes each direction copies through io::copy's 8 KiB stack buffer before
/// it switches to the thread's big buffer. std zero-fills a BufReader's whole
/// buffer on first use, which makes it resident: idle and chatty connections
/// stay below this and never touch it.
const SMALL_PHASE: u64 = 256 * 1024;

/// Settings every connection shares.
#[derive(Debug)]
pub struct Context {
    pub connect_timeout: Duration,
    pub idle_timeout: Option<Duration>,
}

/// Starts relaying an accepted client on a pooled thread. On error (no
/// thread could be made) the client is closed and its slot freed.
pub fn start(
    client: TcpStream,
    peer: SocketAddr,
    rule: Arc<Rule>,
    ctx: Arc<Context>,
    permit: Permit,
) -> io::Result<()> {
    Pool::global().run(move || open(client, peer, rule, &ctx, permit))
}

fn open(client: TcpStream, peer: SocketAddr, rule: Arc<Rule>, ctx: &Context, permit: Permit) {
    let Some((target, target_addr)) = connect(&rule, ctx.connect_timeout) else {
        log::warn!("rule {rule}: no target answered; closing client {peer}");
        // A reset, not a FIN: the client must not mistake this for an empty reply.
        let _ = sys::set_linger_zero(&client);
        return;
    };
    log::debug!("{peer} -> {target_addr}: open (rule {rule})");
    for socket in [&client, &target] {
        let _ = socket.set_nodelay(true);
        if let Some(idle) = ctx.idle_timeout {
            let _ = socket.set_read_timeout(Some(tick(idle)));
            let _ = socket.set_write_timeout(Some(tick(idle)));
        }
    }
    let conn = Arc::new(Conn {
        sockets: [client, target],
        peer,
        target_addr,
        started: Instant::now(),
        idle_ms: ctx.idle_timeout.map(|d| d.as_millis() as u64),
        last_active_ms: AtomicU64::new(0),
        bytes: [AtomicU64::new(0), AtomicU64::new(0)],
        torn_down: AtomicBool::new(false),
        why: Mutex::new([None, None]),
        _permit: permit,
    });
    let down = Arc::clone(&conn);
    if let Err(e) = Pool::global().run(move || copy(down, Direction::Down)) {
        log::warn!("rule {rule}: dropping client {peer}: cannot start a thread: {e}");
        conn.end(|| format!("no thread: {e}"), true);
        conn.teardown();
        return;
    }
    copy(conn, Direction::Up);
}

/// How often a copier blocked with an idle timeout wakes to look at the
/// other direction's progress: a quarter of the timeout, within bounds.
fn tick(idle: Duration) -> Duration {
    (idle / 4).clamp(Duration::from_millis(10), Duration::from_secs(5))
}

/// Tries every target in order; warns for each that fails.
fn connect(rule: &Rule, timeout: Duration) -> Option<(TcpStream, SocketAddr)> {
    for target in &rule.targets {
        match connect_target(target, timeout) {
            Ok(found) => return Some(found),
            Err(e) => log::warn!("rule {rule}: target {target} failed: {e}"),
        }
    }
    None
}

/// Resolves the target now and tries each of its addresses in turn.
pub fn connect_target(target: &Target, timeout: Duration) -> io::Result<(TcpStream, SocketAddr)> {
    let mut last = None;
    for addr in (target.host.as_str(), target.port).to_socket_addrs()? {
        log::trace!("trying {target} at {addr}");
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(stream) => return Ok((stream, addr)),
            Err(e) => {
                log::debug!("{target} at {addr}: {e}");
                last = Some(e);
            }
        }
    }
    Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address")))
}

#[derive(Clone, Copy, Debug)]
enum Direction {
    /// client -> target
    Up = 0,
    /// target -> client
    Down = 1,
}

impl Direction {
    fn from(self) -> usize {
        self as usize
    }
    fn to(self) -> usize {
        1 - self as usize
    }
}

const SIDE_NAMES: [&str; 2] = ["client", "target"];

/// The state both copiers of one connection share.
struct Conn {
    /// [client, target]
    sockets: [TcpStream; 2],
    peer: SocketAddr,
    target_addr: SocketAddr,
    started: Instant,
    idle_ms: Option<u64>,
    /// Milliseconds since `started` at the last byte moved either way.
    last_active_ms: AtomicU64,
    /// Bytes delivered [up, down].
    bytes: [AtomicU64; 2],
    torn_down: AtomicBool,
    /// Why the connection ended: [first end of stream, first abort cause].
    why: Mutex<[Option<String>; 2]>,
    _permit: Permit,
}

impl Conn {
    /// Records an end of stream (`abort` false) or what aborted the
    /// connection (`abort` true); the first of each kind is kept. Only the
    /// debug closing line shows them, so they are not even formatted unless
    /// it is on.
    fn end(&self, why: impl FnOnce() -> String, abort: bool) {
        if log::log_enabled!(log::Level::Debug) {
            let mut slots = self.why.lock().unwrap_or_else(|e| e.into_inner());
            slots[abort as usize].get_or_insert_with(why);
        }
    }

    fn touch(&self) {
        if self.idle_ms.is_some() {
            let now = self.started.elapsed().as_millis() as u64;
            self.last_active_ms.fetch_max(now, Ordering::Relaxed);
        }
    }

    /// Called when a blocking read or write timed out: an error once the
    /// connection moved nothing for the idle timeout, or was torn down.
    fn check_idle(&self) -> io::Result<()> {
        let idle = match self.idle_ms {
            Some(ms) if !self.torn_down.load(Ordering::Acquire) => ms,
            _ => return Err(io::Error::other("torn down")),
        };
        let now = self.started.elapsed().as_millis() as u64;
        if now.saturating_sub(self.last_active_ms.load(Ordering::Relaxed)) < idle {
            return Ok(());
        }
        self.end(|| format!("idle for {:.3}s", idle as f64 / 1000.0), true);
        Err(io::Error::new(io::ErrorKind::TimedOut, "idle timeout"))
    }

    /// Aborts both sockets once: each peer gets a reset (so a cut stream
    /// never looks like a clean end) and any copier blocked on them wakes.
    fn teardown(&self) {
        if self.torn_down.swap(true, Ordering::AcqRel) {
            return;
        }
        for socket in &self.sockets {
            let _ = sys::set_linger_zero(socket);
            let _ = socket.shutdown(Shutdown::Read);
            let _ = sys::abort(socket);
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if !log::log_enabled!(log::Level::Debug) {
            return;
        }
        let why = match self.why.get_mut().unwrap_or_else(|e| e.into_inner()) {
            [None, None] => "closed".to_string(),
            [Some(closed), None] => closed.clone(),
            [None, Some(abort)] => format!("aborted: {abort}"),
            [Some(closed), Some(abort)] => format!("aborted: {abort} (after {closed})"),
        };
        log::debug!(
            "{} -> {}: closed after {:.3}s, {} bytes up, {} bytes down, {}",
            self.peer,
            self.target_addr,
            self.started.elapsed().as_secs_f64(),
            self.bytes[0].load(Ordering::Relaxed),
            self.bytes[1].load(Ordering::Relaxed),
            why,
        );
    }
}

thread_local! {
    /// This thread's big copy buffer, made the first time one of its
    /// connections needs it and kept across the connections it serves (musl
    /// maps and unmaps a block that size on every allocation). `io::copy`
    /// reads straight into a `BufReader`'s buffer.
    static BIG: RefCell<Option<BufReader<Source>>> = const { RefCell::new(None) };
}

/// Copies one direction until end of stream or error.
fn copy(conn: Arc<Conn>, dir: Direction) {
    let mut sink = Sink { conn: &conn, dir };
    let mut source = Source {
        conn: Some(Arc::clone(&conn)),
        dir,
    };
    let result = match io::copy(&mut (&mut source).take(SMALL_PHASE), &mut sink) {
        Ok(n) if n == SMALL_PHASE => copy_big(source, &mut sink).map(|m| n + m),
        done => done,
    };
    match result {
        Ok(_) if conn.torn_down.load(Ordering::Acquire) => {}
        Ok(_) => {
            conn.end(|| format!("{} closed", SIDE_NAMES[dir.from()]), false);
            if let Err(e) = conn.sockets[dir.to()].shutdown(Shutdown::Write) {
                conn.end(|| format!("{} half-close: {e}", SIDE_NAMES[dir.to()]), true);
                conn.teardown();
            }
        }
        Err(_) => conn.teardown(),
    }
}

/// The rest of a direction that moved `SMALL_PHASE` bytes, through this
/// thread's big buffer.
fn copy_big(source: Source, sink: &mut Sink) -> io::Result<u64> {
    BIG.with(|big| {
        // copy never runs inside copy on one thread, so this borrow is the only one.
        let mut big = big.borrow_mut();
        let reader = match big.as_mut() {
            Some(reader) => {
                *reader.get_mut() = source;
                reader
            }
            None => big.insert(BufReader::with_capacity(COPY_BUFFER, source)),
        };
        let result = io::copy(reader, sink);
        // After an error, bytes read but not written go with the connection.
        let unsent = reader.buffer().len();
        reader.consume(unsent);
        reader.get_mut().conn = None;
        result
    })
}

/// Reads the source side of a direction, waking on idle ticks. Empty
/// between connections.
struct Source {
    conn: Option<Arc<Conn>>,
    dir: Direction,
}

/// Writes the destination side of a direction and counts what it delivered.
struct Sink<'a> {
    conn: &'a Conn,
    dir: Direction,
}

fn is_tick(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

impl Read for Source {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(conn) = &self.conn else {
            return Ok(0);
        };
        let side = self.dir.from();
        loop {
            match (&conn.sockets[side]).read(buf) {
                Ok(n) => {
                    conn.touch();
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_tick(&e) => conn.check_idle()?,
                Err(e) => {
                    conn.end(|| format!("{} read: {e}", SIDE_NAMES[side]), true);
                    return Err(e);
                }
            }
        }
    }
}

impl Write for Sink<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let side = self.dir.to();
        loop {
            match (&self.conn.sockets[side]).write(buf) {
                Ok(n) => {
                    self.conn.touch();
                    self.conn.bytes[self.dir as usize].fetch_add(n as u64, Ordering::Relaxed);
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_tick(&e) => self.conn.check_idle()?,
                Err(e) => {
                    self.conn
                        .end(|| format!("{} write: {e}", SIDE_NAMES[side]), true);
                    return Err(e);
                }
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
