//! The only unsafe code: the few libc calls std does not wrap. Blocking
//! SIGTERM, SIGINT and SIGUSR1 and waiting for them in one thread (so that
//! ambassador exits cleanly even as PID 1, where a signal with no handler is
//! dropped), SO_LINGER 0 (so a close sends a reset), aborting a TCP
//! connection in place (so a thread blocked on it wakes up without the fd
//! being closed under it), and shutting a listener so that its accept
//! thread wakes. Both glibc and musl provide these symbols.
//!
//! The constants below are Linux's (the same on every Linux architecture
//! that ambassador builds for); other systems number them differently.
#![allow(unsafe_code)]

#[cfg(target_endian = "big")]
compile_error!("src/sys.rs's Timespec assumes a little-endian target");

#[cfg(not(target_os = "linux"))]
compile_error!(
    "src/sys.rs uses Linux's socket and signal constants and the AF_UNSPEC abort: \
     ambassador builds for Linux only"
);

use std::io;
use std::mem::size_of;
use std::os::fd::AsRawFd;
use std::os::raw::{c_int, c_void};
use std::time::Duration;

const SIG_BLOCK: c_int = 0;
const SIGINT: c_int = 2;
const SIGUSR1: c_int = 10;
const SIGTERM: c_int = 15;
const SHUT_RD: c_int = 0;
const EAGAIN: i32 = 11;
const SOL_SOCKET: c_int = 1;
const SO_LINGER: c_int = 13;
const AF_UNSPEC: u16 = 0;

/// `sigset_t`: 1024 bits on Linux with both glibc and musl.
#[repr(C)]
pub struct SigSet([u64; 16]);

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

/// `struct timespec` with a 64-bit tv_sec: glibc and musl on 64-bit targets,
/// and musl's time64 ABI on 32-bit ones, where a 32-bit tv_nsec is followed
/// by padding; on little-endian targets an i64 holds both.
#[repr(C)]
struct Timespec {
    tv_sec: i64,
    tv_nsec: i64,
}

extern "C" {
    // 32-bit musl keeps the old 32-bit time symbol under the plain name.
    #[cfg_attr(
        all(target_env = "musl", target_pointer_width = "32"),
        link_name = "__sigtimedwait_time64"
    )]
    fn sigtimedwait(set: *const SigSet, info: *mut c_void, timeout: *const Timespec) -> c_int;
    fn shutdown(fd: c_int, how: c_int) -> c_int;
    fn sigemptyset(set: *mut SigSet) -> c_int;
    fn sigaddset(set: *mut SigSet, signum: c_int) -> c_int;
    fn pthread_sigmask(how: c_int, set: *const SigSet, old: *mut SigSet) -> c_int;
    fn sigwait(set: *const SigSet, sig: *mut c_int) -> c_int;
    fn setsockopt(fd: c_int, level: c_int, name: c_int, value: *const c_void, len: u32) -> c_int;
    fn connect(fd: c_int, addr: *const SockAddr, len: u32) -> c_int;
    fn listen(fd: c_int, backlog: c_int) -> c_int;
}

/// A signal ambassador acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM or SIGINT, by name: stop.
    Exit(&'static str),
    /// SIGUSR1: log the counters.
    Counters,
}

/// Blocks SIGTERM, SIGINT and SIGUSR1 in the calling thread and so in every
/// thread it creates afterwards. Call it before any thread exists, then
/// `wait_for`.
pub fn block_signals() -> io::Result<SigSet> {
    let mut set = SigSet([0; 16]);
    // SAFETY: `set` is a valid, writable sigset_t-sized buffer and the
    // signal numbers are valid. These two set errno and return -1 on error.
    check(unsafe { sigemptyset(&mut set) })?;
    for signal in [SIGTERM, SIGINT, SIGUSR1] {
        // SAFETY: as above.
        check(unsafe { sigaddset(&mut set, signal) })?;
    }
    // SAFETY: `set` was filled above; a null old-set pointer is allowed.
    // pthread_sigmask returns the error number instead of setting errno.
    let rc = unsafe { pthread_sigmask(SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(set)
}

/// Waits until one of the blocked signals arrives.
pub fn wait_for(set: &SigSet) -> io::Result<Signal> {
    let mut sig: c_int = 0;
    // SAFETY: `set` was filled by sigemptyset/sigaddset; `sig` is writable.
    let rc = unsafe { sigwait(set, &mut sig) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(signal(sig))
}

/// Waits at most `timeout` for one of the blocked signals; None if none came.
pub fn wait_for_within(set: &SigSet, timeout: Duration) -> io::Result<Option<Signal>> {
    let timeout = Timespec {
        tv_sec: timeout.as_secs() as i64,
        tv_nsec: timeout.subsec_nanos() as i64,
    };
    // SAFETY: `set` was filled by sigemptyset/sigaddset; a null siginfo
    // pointer is allowed; `timeout` is a live timespec of the ABI's layout.
    let sig = unsafe { sigtimedwait(set, std::ptr::null_mut(), &timeout) };
    if sig >= 0 {
        return Ok(Some(signal(sig)));
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(EAGAIN) => Ok(None),
        _ if err.kind() == io::ErrorKind::Interrupted => Ok(None),
        _ => Err(err),
    }
}

fn signal(sig: c_int) -> Signal {
    match sig {
        SIGUSR1 => Signal::Counters,
        SIGINT => Signal::Exit("SIGINT"),
        _ => Signal::Exit("SIGTERM"),
    }
}

/// Makes the next close of this socket send a reset instead of a FIN.
pub fn set_linger_zero(socket: &impl AsRawFd) -> io::Result<()> {
    let linger = Linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: the fd is open for the lifetime of the borrow; the option value
    // points at a live `struct linger` of the length passed.
    let rc = unsafe {
        setsockopt(
            socket.as_raw_fd(),
            SOL_SOCKET,
            SO_LINGER,
            (&linger as *const Linger).cast(),
            size_of::<Linger>() as u32,
        )
    };
    check(rc)
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
    let rc = unsafe { connect(socket.as_raw_fd(), &addr, size_of::<SockAddr>() as u32) };
    check(rc)
}

/// Sets the accept backlog of a listening socket; Linux caps it at
/// net.core.somaxconn.
pub fn set_backlog(listener: &impl AsRawFd, backlog: c_int) -> io::Result<()> {
    // SAFETY: the fd is a bound, listening socket open for the borrow; calling
    // listen again only changes its backlog.
    check(unsafe { listen(listener.as_raw_fd(), backlog) })
}

/// Stops a listening socket in place: the kernel refuses new clients at
/// once and resets those queued but not accepted, and a thread blocked in
/// accept() on it wakes with an error. The fd stays open until dropped.
pub fn stop_listening(listener: &impl AsRawFd) -> io::Result<()> {
    // SAFETY: the fd is open for the lifetime of the borrow.
    check(unsafe { shutdown(listener.as_raw_fd(), SHUT_RD) })
}

fn check(rc: c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
