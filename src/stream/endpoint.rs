//! The endpoint types of stream rules: a `Listener` to accept on, a
//! `Stream` to read and write, and a `Peer` that names who is at the other
//! end. Each is an enum over the socket families a rule may use (TCP only
//! until unix sockets come), not a generic parameter: one copy loop in the
//! binary, one predictable branch per system call. Socket options and the
//! ways a connection ends (half-close, reset, abort) are said here once for
//! every family.

use std::fmt;
use std::io::{self, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use crate::error::Error;
use crate::sys;

/// Accept backlog asked of the kernel (capped by net.core.somaxconn):
/// clients beyond --max-conns wait here.
const BACKLOG: i32 = 4096;

/// A connected stream socket. It has no `Read` of its own on purpose: the
/// copier reads each variant's socket type directly (copier.rs says why).
#[derive(Debug)]
pub enum Stream {
    Tcp(TcpStream),
}

/// Who is at the other end of a `Stream`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    Tcp(SocketAddr),
}

/// A listening stream socket.
#[derive(Debug)]
pub enum Listener {
    Tcp(TcpListener),
}

impl Stream {
    /// Small writes leave at once (TCP_NODELAY).
    pub fn set_nodelay(&self) {
        let Stream::Tcp(s) = self;
        let _ = s.set_nodelay(true);
    }

    /// Blocking reads and writes give up after `timeout` (None: never).
    pub fn set_timeouts(&self, timeout: Option<Duration>) -> io::Result<()> {
        let Stream::Tcp(s) = self;
        s.set_read_timeout(timeout)?;
        s.set_write_timeout(timeout)
    }

    /// Clears the read timeout an accepted stream inherits from its
    /// listener, where no idle timeout replaces it.
    pub fn clear_inherited_timeout(&self) {
        let Stream::Tcp(s) = self;
        let _ = s.set_read_timeout(None);
    }

    /// Passes an end of stream on: the peer reads EOF, and may still write.
    pub fn half_close(&self) -> io::Result<()> {
        let Stream::Tcp(s) = self;
        s.shutdown(Shutdown::Write)
    }

    /// Makes dropping this stream reset the peer instead of closing it with
    /// a FIN, so a cut stream never looks complete.
    pub fn reset_on_drop(&self) {
        let Stream::Tcp(s) = self;
        let _ = sys::set_linger_zero(s);
    }

    /// Resets the peer now and wakes every thread blocked on this stream,
    /// without closing the descriptor under them.
    pub fn abort(&self) {
        let Stream::Tcp(s) = self;
        let _ = sys::set_linger_zero(s);
        let _ = s.shutdown(Shutdown::Read);
        let _ = sys::abort(s);
    }
}

impl Write for &Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => (&*s).write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Peer {
    /// The address --allow is checked against; None for a peer that has
    /// no IP address.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Peer::Tcp(addr) => Some(addr.ip()),
        }
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Tcp(addr) => write!(f, "{addr}"),
        }
    }
}

impl Listener {
    /// Binds a TCP listener with a deep backlog, whose accept gives up
    /// after `accept_timeout` so that extra accepting threads can leave.
    pub fn bind_tcp(addr: SocketAddr, accept_timeout: Duration) -> Result<Listener, Error> {
        let bind_error = |source| Error::Bind {
            listen: addr.to_string(),
            source,
        };
        let listener = TcpListener::bind(addr).map_err(bind_error)?;
        if let Err(e) = sys::set_backlog(&listener, BACKLOG) {
            log::debug!("{addr}: cannot raise the listen backlog: {e}");
        }
        // Without it, threads beyond the first would wait in accept for ever.
        sys::set_accept_timeout(&listener, accept_timeout).map_err(bind_error)?;
        Ok(Listener::Tcp(listener))
    }

    /// The next client. It inherits the listener's accept timeout as its
    /// read timeout: the relay sets its own before reading.
    pub fn accept(&self) -> io::Result<(Stream, Peer)> {
        let Listener::Tcp(l) = self;
        l.accept()
            .map(|(s, addr)| (Stream::Tcp(s), Peer::Tcp(addr)))
    }

    /// Stops listening in place: new clients are refused and every thread
    /// blocked in accept wakes.
    pub fn stop(&self) -> io::Result<()> {
        let Listener::Tcp(l) = self;
        sys::stop_listening(l)
    }
}
