//! ambassador: a tiny TCP forwarder for the ambassador pattern.
//!
//! A byte's way: arguments and environment (cli.rs, env.rs) -> rules
//! (rule.rs, config.rs) -> listeners (server.rs, limit.rs, pool.rs) ->
//! targets (connect.rs) -> relays (relay.rs, conn.rs) -> sockets (sys.rs for
//! what std lacks). This file only parses,
//! sets up logging, dispatches (run, --check, --healthcheck) and turns errors
//! into exit codes in one place.
#![deny(unsafe_code)]

mod allow;
mod cli;
mod config;
mod conn;
mod connect;
mod env;
mod error;
mod health;
mod limit;
mod pool;
mod relay;
mod rule;
mod seconds;
mod server;
mod session;
mod stats;
#[cfg(target_os = "linux")]
mod sys;
mod udp;

use std::ffi::OsString;
use std::io::{self, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use log::LevelFilter;

use crate::config::Config;
use crate::error::Error;
use crate::seconds::Secs;
use crate::server::Running;
use crate::sys::{SigSet, Signal};

/// How often a drain looks whether every connection has finished.
const DRAIN_POLL: Duration = Duration::from_millis(20);

fn main() -> ExitCode {
    match run() {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            // Nothing sensible is left to do if stderr itself is gone.
            let _ = writeln!(io::stderr(), "ambassador: {err}");
            ExitCode::from(err.exit_code() as u8)
        }
    }
}

fn run() -> Result<u8, Error> {
    let raw: Vec<OsString> = std::env::args_os().skip(1).collect();
    let args = cli::parse(&raw)?;
    if args.help {
        return Ok(print(&cli::usage()));
    }
    if args.version {
        return Ok(print(&format!(
            "ambassador {}\n",
            env!("CARGO_PKG_VERSION")
        )));
    }
    init_logging(&args);
    let config = load_config(&args)?;
    if args.check {
        let lines: String = config
            .rules
            .iter()
            .map(|r| format!("{r}\t{}\n", r.source))
            .collect();
        return Ok(print(&lines));
    }
    if args.healthcheck {
        let passed = health::run(&config, &mut io::stdout().lock()).unwrap_or(false);
        return Ok(if passed { 0 } else { 1 });
    }
    serve(&config)
}

/// The configuration to act on: this process's arguments and environment,
/// or, for --healthcheck with no RULE in a container, what PID 1 serves
/// (see health.rs).
fn load_config(args: &cli::Args) -> Result<Config, Error> {
    if args.healthcheck && args.rules.is_empty() {
        if let Some(pid1) = health::pid1_ambassador() {
            return config::build(&cli::parse(&pid1.args)?, &pid1.vars);
        }
    }
    config::build(args, &env::lossy_pairs(std::env::vars_os()))
}

/// Serves until SIGTERM or SIGINT, logging the counters on SIGUSR1; then
/// drains if asked, logs the counters and resets what is still open.
fn serve(config: &Config) -> Result<u8, Error> {
    // Before any thread exists, so that every thread inherits the mask and
    // only the main thread ever sees these signals.
    let signals = sys::block_signals().map_err(Error::Signals)?;
    let running = server::start(config)?;
    let name = loop {
        match sys::wait_for(&signals).map_err(Error::Signals)? {
            Signal::Counters => running.log_counters(),
            Signal::Exit(name) => break name,
        }
    };
    if config.drain.is_zero() {
        log::info!("received {name}, exiting");
    } else {
        drain(&running, &signals, name, config.drain).map_err(Error::Signals)?;
    }
    running.log_counters();
    // A FIN would make a cut stream look complete: reset what is left.
    sys::reset_all_on_exit();
    Ok(0)
}

/// Stops listening, then waits until no connection is open, `limit` has
/// passed, or a second SIGTERM/SIGINT comes.
fn drain(running: &Running, signals: &SigSet, name: &str, limit: Duration) -> io::Result<()> {
    running.stop_listening();
    let at_signal = running.open();
    log::info!(
        "received {name}: stopped listening; draining {at_signal} open connection(s) for up to {}",
        Secs(limit)
    );
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if running.open() == 0 || left.is_zero() {
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
    let open = running.open();
    log::info!(
        "drain done: {at_signal} open at {name}, {} finished, {open} reset",
        at_signal.saturating_sub(open)
    );
    Ok(())
}

/// Prints to stdout; a closed stdout (`| head`) is not worth a panic.
fn print(text: &str) -> u8 {
    let mut out = io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
    0
}

fn init_logging(args: &cli::Args) {
    let level = match (args.quiet, args.verbose) {
        (true, _) => LevelFilter::Error,
        (false, 0) => LevelFilter::Info,
        (false, 1) => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    };
    // Fails only if a logger is already set, which nothing else does.
    let _ = simple_logger::SimpleLogger::new().with_level(level).init();
}
