//! TCP sockets: SO_LINGER 0 (a close sends a reset), aborting a connection
//! in place, telling a reset from an end of stream; any listener (TCP or unix): the listen backlog, a timeout on
//! accept, and stopping it in place.

use std::io;
use std::mem::{size_of, ManuallyDrop};
use std::net::TcpStream;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::raw::{c_int, c_void};
use std::time::Duration;

use super::check;

pub(super) const SOL_SOCKET: c_int = 1;
const SO_LINGER: c_int = 13;
const AF_UNSPEC: u16 = 0;
const SHUT_RD: c_int = 0;
const IPPROTO_TCP: c_int = 6;
const TCP_INFO: c_int = 11;
/// A TCP socket's state once it is closed or was reset (Linux's
/// include/net/tcp_states.h); after a peer's FIN it is CLOSE_WAIT (8).
const TCP_CLOSE: u8 = 7;

#[repr(C)]
struct Linger {
    l_onoff: c_int,
    l_linger: c_int,
}

#[repr(C)]
struct SockAddr {
    sa_family: u16,
    sa_data: [u8; 14],
}

extern "C" {
    fn setsockopt(fd: c_int, level: c_int, name: c_int, value: *const c_void, len: u32) -> c_int;
    pub(super) fn connect(fd: c_int, addr: *const c_void, len: u32) -> c_int;
    fn getsockopt(fd: c_int, level: c_int, name: c_int, value: *mut c_void, len: *mut u32)
        -> c_int;
    fn listen(fd: c_int, backlog: c_int) -> c_int;
    fn shutdown(fd: c_int, how: c_int) -> c_int;
}

/// Sets a socket option to `value`, a plain C struct or integer that the
/// kernel reads as the option's type.
pub(super) fn set_option<T>(
    socket: &impl AsRawFd,
    level: c_int,
    name: c_int,
    value: &T,
) -> io::Result<()> {
    // SAFETY: the fd is open for the lifetime of the borrow; the value points
    // at a live T of the length passed, which the kernel only reads.
    let rc = unsafe {
        setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            size_of::<T>() as u32,
        )
    };
    check(rc)
}

/// Reads a socket option into `value`, a plain C struct or integer that
/// the kernel fills as the option's type (or the first bytes of it); how
/// many bytes it wrote.
pub(super) fn get_option<T>(
    fd: c_int,
    level: c_int,
    name: c_int,
    value: &mut T,
) -> io::Result<u32> {
    let mut len = size_of::<T>() as u32;
    // SAFETY: `value` is a live, writable T of the length passed, which the
    // kernel fills and whose length it writes back; a bad fd or a
    // non-socket is an error, not undefined behaviour.
    let rc = unsafe { getsockopt(fd, level, name, (value as *mut T).cast(), &mut len) };
    check(rc).map(|()| len)
}

/// Makes the next close of this socket send a reset instead of a FIN.
pub fn set_linger_zero(socket: &impl AsRawFd) -> io::Result<()> {
    let linger = Linger {
        l_onoff: 1,
        l_linger: 0,
    };
    set_option(socket, SOL_SOCKET, SO_LINGER, &linger)
}

/// Sets SO_LINGER 0 on every socket this process has open, so that exiting
/// resets relayed connections instead of closing them with a FIN that would
/// make a cut stream look complete. Not a socket: setsockopt fails, ignored.
pub fn reset_all_on_exit() {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    for fd in dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<c_int>().ok())
    {
        if fd > 2 {
            let _ = set_linger_zero(&RawSocket(fd));
        }
    }
}

/// A descriptor number read from /proc/self/fd, borrowed only while open.
struct RawSocket(c_int);

impl AsRawFd for RawSocket {
    fn as_raw_fd(&self) -> c_int {
        self.0
    }
}

/// Aborts a TCP connection without closing its fd: Linux sends a reset,
/// drops what was queued, and wakes every thread blocked reading or writing
/// it with an error (connect(2) with AF_UNSPEC "dissolves the association").
pub fn abort(socket: &impl AsRawFd) -> io::Result<()> {
    let addr = SockAddr {
        sa_family: AF_UNSPEC,
        sa_data: [0; 14],
    };
    // SAFETY: the fd is open for the lifetime of the borrow; `addr` is a
    // valid sockaddr of the length passed.
    let rc = unsafe {
        connect(
            socket.as_raw_fd(),
            (&addr as *const SockAddr).cast(),
            size_of::<SockAddr>() as u32,
        )
    };
    check(rc)
}

/// Whether a TCP connection whose read just returned end of stream was
/// reset instead: the kernel reports a reset's error once, to whichever of
/// a connection's two threads asks first, so the copier that writes may
/// take it and the one that reads then sees a plain end of stream. The
/// socket's state tells them apart: closed after a reset, CLOSE_WAIT after
/// a FIN.
pub fn was_reset(socket: &TcpStream) -> bool {
    // struct tcp_info begins with tcpi_state; the kernel fills no more
    // than the length given.
    let mut state = 0u8;
    let read = get_option(socket.as_raw_fd(), IPPROTO_TCP, TCP_INFO, &mut state);
    read.is_ok_and(|len| len == 1) && state == TCP_CLOSE
}

/// Sets the accept backlog of a listening socket; Linux caps it at
/// net.core.somaxconn.
pub fn set_backlog(listener: &impl AsRawFd, backlog: c_int) -> io::Result<()> {
    // SAFETY: the fd is a bound, listening socket open for the borrow; calling
    // listen again only changes its backlog.
    check(unsafe { listen(listener.as_raw_fd(), backlog) })
}

/// Makes a blocking accept on this listener give up after `timeout` with
/// WouldBlock (SO_RCVTIMEO, set by std's own setter so that its layout is
/// right on every target). Accepted sockets inherit it.
pub fn set_accept_timeout(listener: &impl AsRawFd, timeout: Duration) -> io::Result<()> {
    // SAFETY: the fd is open for the lifetime of the borrow, and ManuallyDrop
    // never closes it: the stream only lends std's setsockopt wrapper.
    let stream = ManuallyDrop::new(unsafe { TcpStream::from_raw_fd(listener.as_raw_fd()) });
    stream.set_read_timeout(Some(timeout))
}

/// Stops a listening socket in place: the kernel refuses new clients at
/// once and resets those queued but not accepted, and a thread blocked in
/// accept() on it wakes with an error. The fd stays open until dropped.
pub fn stop_listening(listener: &impl AsRawFd) -> io::Result<()> {
    // SAFETY: the fd is open for the lifetime of the borrow.
    check(unsafe { shutdown(listener.as_raw_fd(), SHUT_RD) })
}
