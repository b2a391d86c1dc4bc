//! The scheduling policy of ambassador's threads. Each is woken by a packet
//! that another program sent: under the default policy (SCHED_OTHER) the
//! woken thread may preempt that program at once, mid-way through its own
//! batch of work, and each such preemption is one more switch between
//! processes. Under SCHED_BATCH (same nice level, same share of the CPU) a
//! woken thread waits for the running one to block or use up its slice, so
//! both sides do more per switch; on an idle CPU nothing waits. Measured
//! (docs/performance.md): fewer context switches and less CPU per request,
//! per new connection and per DNS query, with no worse latency.
//!
//! Set through pthread_setschedparam: musl's sched_setscheduler is a stub
//! (ENOSYS), its pthread call is not.

use std::io;
use std::os::raw::c_int;

/// Linux's policies (include/uapi/linux/sched.h).
const SCHED_OTHER: c_int = 0;
const SCHED_BATCH: c_int = 3;

/// `struct sched_param`: the static priority, 0 for the normal policies.
#[repr(C)]
struct SchedParam {
    priority: c_int,
}

extern "C" {
    /// pthread_t is an unsigned long in glibc and a pointer in musl: the
    /// size of a usize on every Linux target.
    fn pthread_self() -> usize;
    fn pthread_getschedparam(thread: usize, policy: *mut c_int, param: *mut SchedParam) -> c_int;
    fn pthread_setschedparam(thread: usize, policy: c_int, param: *const SchedParam) -> c_int;
}

/// What `prefer_batch` found and did.
#[derive(Debug, PartialEq, Eq)]
pub enum Policy {
    /// The calling thread moved from SCHED_OTHER to SCHED_BATCH.
    Batch,
    /// A policy other than SCHED_OTHER was already set (by chrt, say): kept.
    Kept(c_int),
}

/// Moves the calling thread from SCHED_OTHER to SCHED_BATCH; threads it
/// starts afterwards inherit it. Any other policy, chosen by whoever
/// started ambassador, is kept.
pub fn prefer_batch() -> io::Result<Policy> {
    let mut policy: c_int = -1;
    let mut param = SchedParam { priority: 0 };
    // SAFETY: both out-pointers are live for the call; pthread_self names
    // the calling thread, which exists for the call.
    let rc = unsafe { pthread_getschedparam(pthread_self(), &mut policy, &mut param) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    if policy != SCHED_OTHER {
        return Ok(Policy::Kept(policy));
    }
    let batch = SchedParam { priority: 0 };
    // SAFETY: as above; the kernel only reads the parameter.
    let rc = unsafe { pthread_setschedparam(pthread_self(), SCHED_BATCH, &batch) };
    match rc {
        0 => Ok(Policy::Batch),
        rc => Err(io::Error::from_raw_os_error(rc)),
    }
}
