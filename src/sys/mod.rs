//! The only unsafe code: the few libc calls std does not wrap. Blocking
//! SIGTERM, SIGINT and SIGUSR1 and waiting for them in one thread (so that
//! ambassador exits cleanly even as PID 1, where a signal with no handler is
//! dropped), SO_LINGER 0 (so a close sends a reset), aborting a TCP
//! connection in place (so a thread blocked on it wakes up without the fd
//! being closed under it), a timeout on accept (so that threads accepting
//! beyond the first go back to the pool when quiet), shutting a listener so
//! that its accepting threads wake, UDP datagrams with the address they
//! were sent to (IP_PKTINFO / IPV6_PKTINFO), so that a reply leaves from
//! that address, several datagrams per receive (recvmmsg), the threads'
//! scheduling policy (SCHED_BATCH); for unix sockets, a connect within a
//! timeout, the peer's credentials (SO_PEERCRED) and the umask around a
//! bind; descriptors handed over by a parent (a status pipe, bound
//! sockets); for multicast DNS, the interfaces that can multicast, the
//! one to send out of, and waiting on two sockets at once (poll). Both
//! glibc and musl provide these symbols.
//!
//! The constants here are Linux's (the same on every Linux architecture
//! that ambassador builds for); other systems number them differently.
#![allow(unsafe_code)]

// Which targets these were checked on, and the one message any other
// target gets, are build.rs's.

mod batch;
mod datagram;
mod inherit;
mod multicast;
mod sched;
mod signals;
mod socket;
mod unix;
mod wire;

pub use batch::{Batch, MAX_DATAGRAM};
pub use datagram::{send_from, set_receive_buffer, want_arrival};
pub use inherit::{status_pipe, take_socket, Handed};
pub use multicast::{
    first_readable, multicast_links, multicast_out_of, set_multicast_hops_v6, Link,
};
pub use sched::{prefer_batch, Policy};
pub use signals::{block_signals, wait_for, wait_for_within, SigSet, Signal};
pub use socket::{
    abort, reset_all_on_exit, set_accept_timeout, set_backlog, set_linger_zero, stop_listening,
    was_reset,
};
pub use unix::{connect_unix, peer_cred, with_umask};
pub use wire::Arrival;

use std::io;
use std::os::raw::c_int;

/// A libc return code that sets errno on failure, as an io::Result.
fn check(rc: c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
