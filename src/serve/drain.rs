//! The end of the process: on SIGTERM or SIGINT, stop listening, let open
//! connections finish for up to --drain, log the counters, and leave every
//! socket still open to be reset at exit (a FIN would make a cut stream
//! look complete). SIGUSR1 logs the counters, while serving or draining.

use std::io;
use std::time::{Duration, Instant};

use super::running::Running;
use crate::config::seconds::Secs;
use crate::sys::{self, SigSet, Signal};

/// How often a drain looks whether every connection has finished.
const DRAIN_POLL: Duration = Duration::from_millis(20);

/// Serves until SIGTERM or SIGINT, logging the counters on SIGUSR1; then
/// drains for up to `limit` (zero: not at all), logs the counters and
/// sets every socket to be reset at exit.
pub fn until_signalled(running: &Running, signals: &SigSet, limit: Duration) -> io::Result<()> {
    let name = loop {
        match sys::wait_for(signals)? {
            Signal::Counters => running.log_counters(),
            Signal::Exit(name) => break name,
        }
    };
    if limit.is_zero() {
        log::info!("received {name}, exiting");
    } else {
        drain(running, signals, name, limit)?;
    }
    running.log_counters();
    sys::reset_all_on_exit();
    Ok(())
}

/// Stops listening, then waits until no stream connection is open, `limit`
/// has passed, or a second SIGTERM/SIGINT comes.
fn drain(running: &Running, signals: &SigSet, name: &str, limit: Duration) -> io::Result<()> {
    running.stop_listening();
    let at_signal = running.open_streams();
    log::info!(
        "received {name}: stopped listening; draining {at_signal} open connection(s) for up to {}",
        Secs(limit)
    );
    let started = Instant::now();
    let deadline = started + limit;
    let settle = running.settle_time();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let settled = started.elapsed() >= settle;
        if settled && running.open_streams() == 0 || left.is_zero() {
            break;
        }
        match sys::wait_for_within(signals, left.min(DRAIN_POLL))? {
            Some(Signal::Exit(again)) => {
                log::info!("received {again} again: ending the drain now");
                break;
            }
            Some(Signal::Counters) => running.log_counters(),
            None => {}
        }
    }
    let open = running.open_streams();
    log::info!(
        "drain done: {at_signal} open at {name}, {} finished, {open} reset",
        at_signal.saturating_sub(open)
    );
    Ok(())
}
