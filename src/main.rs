//! ambassador: a tiny TCP and UDP forwarder for the ambassador pattern.
//!
//! A byte's way, one folder a stage: arguments and environment to rules
//! (config/) -> the running process, its listeners and drain (serve/) ->
//! stream connections (stream/) or UDP sessions (udp/), over what both
//! share (flow/: the cap, the thread pool, counters, the target walk;
//! mdns/: `.local` names asked on the link) -> sockets, with what std
//! lacks in sys/ (the only unsafe code). This file only parses, sets up
//! logging, dispatches (run, --check, --healthcheck, or dockerd's
//! userland proxy) and turns errors into exit codes in one place.
#![deny(unsafe_code)]

mod config;
mod error;
mod flow;
mod health;
mod mdns;
mod serve;
mod stream;
mod sys;
mod udp;

use std::ffi::OsString;
use std::io::{self, Write};
use std::process::ExitCode;

use log::LevelFilter;

use crate::config::{cli, docker_proxy, env, Config};
use crate::error::Error;
use crate::serve::Handover;

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
    if docker_proxy::is_docker_proxy(raw.first().and_then(|a| a.to_str())) {
        return Ok(userland_proxy(&raw));
    }
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
        let rules = config.rules.iter().map(|r| {
            let names = mdns::local_names(r);
            let by_mdns = if names.is_empty() {
                String::new()
            } else {
                format!("; {} by mDNS", names.join(", "))
            };
            format!("{r}\t{}{by_mdns}\n", r.source)
        });
        let options = config
            .forwarding_options()
            .into_iter()
            .map(|o| format!("{o}\toption\n"));
        let lines: String = rules.chain(options).collect();
        return Ok(print(&lines));
    }
    if args.healthcheck {
        let passed = health::run(&config, &mut io::stdout().lock()).unwrap_or(false);
        return Ok(if passed { 0 } else { 1 });
    }
    serve(&config, Handover::from_env()?, &mut || {})
}

/// dockerd's userland proxy (`--userland-proxy-path`): one rule from its
/// command line, warnings only, and the outcome of the start reported on
/// descriptor 3, `0\n` once serving or `1\n` and one line (then exit 1).
fn userland_proxy(raw: &[OsString]) -> u8 {
    let mut status = sys::status_pipe();
    let _ = simple_logger::SimpleLogger::new()
        .with_level(LevelFilter::Warn)
        .init();
    let args: Vec<String> = raw
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let ready = |status: &mut Option<std::fs::File>| {
        if let Some(mut pipe) = status.take() {
            let _ = pipe.write_all(b"0\n");
        }
    };
    let served = docker_proxy::parse(&args)
        .map_err(Error::Usage)
        .and_then(|proxy| {
            let config = config::for_rule(&proxy.rule)?;
            let handover = match proxy.use_listen_fd {
                true => Handover::docker_listen_fd()?,
                false => Handover::default(),
            };
            serve(&config, handover, &mut || ready(&mut status))
        });
    match served {
        Ok(code) => code,
        Err(err) => {
            // One line: dockerd shows it as the reason `docker run` failed.
            let line = err
                .to_string()
                .lines()
                .next()
                .unwrap_or_default()
                .to_string();
            if let Some(mut pipe) = status.take() {
                let _ = pipe.write_all(format!("1\n{line}").as_bytes());
            }
            let _ = writeln!(io::stderr(), "ambassador: {line}");
            1
        }
    }
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

/// Serves until SIGTERM or SIGINT, then drains if asked (serve/drain.rs);
/// `ready` is called once every rule is served.
fn serve(config: &Config, handover: Handover, ready: &mut dyn FnMut()) -> Result<u8, Error> {
    // Before any thread exists, so that every thread inherits the mask and
    // only the main thread ever sees these signals.
    let signals = sys::block_signals().map_err(Error::Signals)?;
    // Also before any thread: every thread inherits the policy.
    match sys::prefer_batch() {
        Ok(sys::Policy::Batch) => log::debug!("threads run under SCHED_BATCH"),
        Ok(sys::Policy::Kept(policy)) => {
            log::debug!("threads keep the scheduling policy given ({policy})")
        }
        Err(e) => log::debug!("threads keep SCHED_OTHER: cannot set SCHED_BATCH: {e}"),
    }
    let running = serve::start(config, handover)?;
    ready();
    serve::until_signalled(&running, &signals, config.drain).map_err(Error::Signals)?;
    Ok(0)
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
