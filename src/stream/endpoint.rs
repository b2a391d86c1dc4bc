//! The endpoint types of stream rules: a `Listener` to accept on, a
//! `Stream` to read and write, and a `Peer` that names who is at the other
//! end. Each is an enum over the socket families a rule may use (TCP and
//! unix), not a generic parameter: one predictable branch per system call.
//! Socket options and the ways a connection ends (half-close, reset,
//! abort) are said here once for every family. AF_UNIX has no reset:
//! where a TCP peer gets one, a unix peer sees both directions shut at
//! once (EOF on read, EPIPE on write), never a half-close.

use std::fmt;
use std::io::{self, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::Arc;
use std::time::Duration;

use crate::error::Error;
use crate::sys;

/// Accept backlog asked of the kernel (capped by net.core.somaxconn):
/// clients beyond --max-conns wait here.
pub const BACKLOG: i32 = 4096;

/// A connected stream socket. It has no `Read` of its own on purpose: the
/// copier reads each variant's socket type directly (copier.rs says why).
#[derive(Debug)]
pub enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

/// Who is at the other end of a `Stream`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    /// A TCP peer's address and port.
    Tcp(SocketAddr),
    /// A unix client, by the process that connected (SO_PEERCRED); None
    /// if the kernel would not tell.
    UnixClient(Option<(i32, u32)>),
    /// A unix socket reached, by its path as the rule gives it.
    UnixPath(Arc<str>),
}

/// A listening stream socket.
#[derive(Debug)]
pub enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl Stream {
    /// Small writes leave at once (TCP_NODELAY; a unix socket has no delay).
    pub fn set_nodelay(&self) {
        if let Stream::Tcp(s) = self {
            let _ = s.set_nodelay(true);
        }
    }

    /// Blocking reads and writes give up after `timeout` (None: never).
    pub fn set_timeouts(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s
                .set_read_timeout(timeout)
                .and(s.set_write_timeout(timeout)),
            Stream::Unix(s) => s
                .set_read_timeout(timeout)
                .and(s.set_write_timeout(timeout)),
        }
    }

    /// Clears the read timeout an accepted stream inherits from its
    /// listener, where no idle timeout replaces it.
    pub fn clear_inherited_timeout(&self) {
        let _ = match self {
            Stream::Tcp(s) => s.set_read_timeout(None),
            Stream::Unix(s) => s.set_read_timeout(None),
        };
    }

    /// The local address a TCP client connected to; None for unix.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match self {
            Stream::Tcp(s) => s.local_addr().ok(),
            Stream::Unix(_) => None,
        }
    }

    /// Passes an end of stream on: the peer reads EOF, and may still write.
    pub fn half_close(&self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.shutdown(Shutdown::Write),
            Stream::Unix(s) => s.shutdown(Shutdown::Write),
        }
    }

    /// Whether a read's end of stream was a reset the other copier's write
    /// took the error of (sys::was_reset); a unix peer has no reset.
    pub fn was_reset(&self) -> bool {
        match self {
            Stream::Tcp(s) => sys::was_reset(s),
            Stream::Unix(_) => false,
        }
    }

    /// Makes dropping this stream reset a TCP peer instead of closing it
    /// with a FIN, so a cut stream never looks complete; shuts a unix
    /// stream both ways now.
    pub fn reset_on_drop(&self) {
        match self {
            Stream::Tcp(s) => {
                let _ = sys::set_linger_zero(s);
            }
            Stream::Unix(s) => {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }

    /// Resets a TCP peer now (a unix peer: both directions shut) and wakes
    /// every thread blocked on this stream, without closing the descriptor
    /// under them.
    pub fn abort(&self) {
        match self {
            Stream::Tcp(s) => {
                let _ = sys::set_linger_zero(s);
                let _ = s.shutdown(Shutdown::Read);
                let _ = sys::abort(s);
            }
            Stream::Unix(s) => {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }
}

impl Write for &Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => (&*s).write(buf),
            Stream::Unix(s) => (&*s).write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Peer {
    /// The address --allow is checked against; None for a unix peer, which
    /// has none (the socket file's permissions decide who connects).
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Peer::Tcp(addr) => Some(addr.ip()),
            Peer::UnixClient(_) | Peer::UnixPath(_) => None,
        }
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Tcp(addr) => write!(f, "{addr}"),
            Peer::UnixClient(Some((pid, uid))) => write!(f, "pid {pid} uid {uid}"),
            Peer::UnixClient(None) => write!(f, "a unix client"),
            Peer::UnixPath(path) => write!(f, "unix:{path}"),
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
        Listener::Tcp(listener)
            .prepare(accept_timeout)
            .map_err(bind_error)
    }

    /// The backlog and the accept timeout, for a freshly bound listener.
    pub fn prepare(self, accept_timeout: Duration) -> io::Result<Listener> {
        if let Err(e) = sys::set_backlog(&self, BACKLOG) {
            log::debug!("cannot raise the listen backlog: {e}");
        }
        // Without it, threads beyond the first would wait in accept for ever.
        sys::set_accept_timeout(&self, accept_timeout)?;
        Ok(self)
    }

    /// The listener of a socket handed over, bound and listening already:
    /// only the accept timeout is set (its backlog is its owner's choice).
    pub fn adopt(self, accept_timeout: Duration) -> io::Result<Listener> {
        sys::set_accept_timeout(&self, accept_timeout)?;
        Ok(self)
    }

    /// The next client. It inherits the listener's accept timeout as its
    /// read timeout: the relay sets its own before reading.
    pub fn accept(&self) -> io::Result<(Stream, Peer)> {
        match self {
            Listener::Tcp(l) => l
                .accept()
                .map(|(s, addr)| (Stream::Tcp(s), Peer::Tcp(addr))),
            Listener::Unix(l) => l.accept().map(|(s, _)| {
                let cred = sys::peer_cred(&s).ok();
                (Stream::Unix(s), Peer::UnixClient(cred))
            }),
        }
    }

    /// Stops listening in place: new clients are refused and every thread
    /// blocked in accept wakes.
    pub fn stop(&self) -> io::Result<()> {
        sys::stop_listening(self)
    }
}

impl AsRawFd for Listener {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            Listener::Tcp(l) => l.as_raw_fd(),
            Listener::Unix(l) => l.as_raw_fd(),
        }
    }
}
