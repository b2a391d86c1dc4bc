//! Signals: SIGTERM, SIGINT and SIGUSR1 are blocked in every thread and
//! taken by the main thread alone, with sigwait or, while draining, with
//! sigtimedwait.

use std::io;
use std::os::raw::{c_int, c_void};
use std::time::Duration;

use super::check;

const SIG_BLOCK: c_int = 0;
const SIGINT: c_int = 2;
const SIGUSR1: c_int = 10;
const SIGTERM: c_int = 15;
const EAGAIN: i32 = 11;

/// `sigset_t`: 1024 bits on Linux with both glibc and musl.
#[repr(C)]
pub struct SigSet([u64; 16]);

/// `struct timespec` with a 64-bit tv_sec: glibc and musl on 64-bit targets,
/// and musl's time64 ABI on 32-bit ones, where a 32-bit tv_nsec is followed
/// by padding; on little-endian targets an i64 holds both.
#[repr(C)]
struct Timespec {
    tv_sec: i64,
    tv_nsec: i64,
}

extern "C" {
    fn sigemptyset(set: *mut SigSet) -> c_int;
    fn sigaddset(set: *mut SigSet, signum: c_int) -> c_int;
    fn pthread_sigmask(how: c_int, set: *const SigSet, old: *mut SigSet) -> c_int;
    fn sigwait(set: *const SigSet, sig: *mut c_int) -> c_int;
    // 32-bit musl keeps the old 32-bit time symbol under the plain name.
    #[cfg_attr(
        all(target_env = "musl", target_pointer_width = "32"),
        link_name = "__sigtimedwait_time64"
    )]
    fn sigtimedwait(set: *const SigSet, info: *mut c_void, timeout: *const Timespec) -> c_int;
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
