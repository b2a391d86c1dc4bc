//! --healthcheck, for HEALTHCHECK in an image with no shell: for each rule,
//! connect to its listen port on loopback (or on its own address, or its
//! unix path) and to one of its targets, and print one line per rule. UDP
//! has no handshake: for a UDP rule, the port must be held by a UDP socket
//! (binding it here fails) and a target name must resolve.
//!
//! Docker runs a HEALTHCHECK command with the container's environment but
//! not with its CMD arguments, so with no RULE arguments of its own the
//! probe reads the rules of the ambassador that runs as PID 1.

use std::ffi::OsString;
use std::fs;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::os::unix::ffi::OsStringExt;
use std::path::Path;

use crate::config::rule::{Listen, Rule};
use crate::config::{env, Config};
use crate::flow::resolve::{first_answer, resolve_first};
use crate::stream::connect::connect_target;
use crate::sys;

/// Probes every rule, writes a line for each; true if every rule passed.
pub fn run(config: &Config, out: &mut impl Write) -> io::Result<bool> {
    let mut all_passed = true;
    for rule in &config.rules {
        let (passed, line) = probe(rule, config);
        all_passed &= passed;
        writeln!(
            out,
            "{} {rule}: {line}",
            if passed { "ok  " } else { "FAIL" }
        )?;
    }
    Ok(all_passed)
}

/// Where to reach a rule's listener from this host.
pub fn probe_address(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

fn probe(rule: &Rule, config: &Config) -> (bool, String) {
    let (listening, listen_text) = match &rule.listen {
        Listen::Tcp(addr) => {
            let at = probe_address(*addr);
            match TcpStream::connect_timeout(&at, config.connect_timeout) {
                Ok(_) => (true, format!("listening at {at}")),
                Err(e) => (false, format!("not listening at {at}: {e}")),
            }
        }
        Listen::Unix(path) => match sys::connect_unix(path.as_str(), config.connect_timeout) {
            Ok(_) => (true, format!("listening at {path}")),
            Err(e) => (false, format!("not listening at {path}: {e}")),
        },
        Listen::Udp(addr) => match UdpSocket::bind(addr) {
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => (true, format!("{addr} is held")),
            Err(e) => (false, format!("cannot check {addr}: {e}")),
            Ok(_) => (false, format!("nothing holds {addr}")),
        },
    };
    let mut failures = Vec::new();
    let found = first_answer(
        &rule.targets,
        0,
        |target| match rule.listen {
            // UDP has no handshake: a target passes when its name resolves.
            Listen::Udp(_) => resolve_first(target, None).map(|addr| format!("resolves to {addr}")),
            Listen::Tcp(_) | Listen::Unix(_) => {
                connect_target(target, config.connect_timeout, None)
                    .map(|(_, reached)| format!("answers at {reached}"))
            }
        },
        |_, target, e| failures.push(format!("{target}: {e}")),
    );
    match found {
        Some((index, how)) => (
            listening,
            format!("{listen_text}; target {} {how}", rule.targets[index]),
        ),
        None => {
            let none = match rule.listen {
                Listen::Udp(_) => "no target resolves",
                Listen::Tcp(_) | Listen::Unix(_) => "no target answers",
            };
            (
                false,
                format!("{listen_text}; {none} ({})", failures.join("; ")),
            )
        }
    }
}

/// How a process was started: its arguments after the program name, and
/// its environment.
pub struct Invocation {
    pub args: Vec<OsString>,
    pub vars: Vec<(String, String)>,
}

/// How PID 1 was started, if PID 1 is an ambassador other than this process.
pub fn pid1_ambassador() -> Option<Invocation> {
    if std::process::id() == 1 {
        return None;
    }
    ambassador_at(Path::new("/proc/1"))
}

/// How the process whose /proc directory is `dir` was started, if its
/// program is named ambassador.
fn ambassador_at(dir: &Path) -> Option<Invocation> {
    let cmdline = fs::read(dir.join("cmdline")).ok()?;
    let args = split_nul(&cmdline);
    let program = args.first()?.to_string_lossy().into_owned();
    if program.rsplit('/').next() != Some("ambassador") {
        return None;
    }
    let environ = fs::read(dir.join("environ")).ok()?;
    let vars = split_nul(&environ).into_iter().filter_map(|kv| {
        let kv = kv.into_vec();
        let at = kv.iter().position(|b| *b == b'=')?;
        Some((
            OsString::from_vec(kv[..at].to_vec()),
            OsString::from_vec(kv[at + 1..].to_vec()),
        ))
    });
    Some(Invocation {
        args: args[1..].to_vec(),
        vars: env::lossy_pairs(vars),
    })
}

/// Splits a /proc NUL-terminated list. Empty entries are kept: an empty
/// argument of PID 1 is an argument it was given.
fn split_nul(bytes: &[u8]) -> Vec<OsString> {
    if bytes.is_empty() {
        return Vec::new();
    }
    bytes
        .strip_suffix(&[0])
        .unwrap_or(bytes)
        .split(|b| *b == 0)
        .map(|part| OsString::from_vec(part.to_vec()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_lists_split_on_nul() {
        let parts = split_nul(b"/ambassador\x006379:redis:6379\x00-v\x00");
        assert_eq!(parts, ["/ambassador", "6379:redis:6379", "-v"]);
        let parts = split_nul(b"/ambassador\x00\x001:a:1\x00");
        assert_eq!(parts, ["/ambassador", "", "1:a:1"]);
        assert!(split_nul(b"").is_empty());
    }

    /// Runs `sleep 30 0` (GNU sleep adds them up) under the program name
    /// `argv0` with one variable;
    /// the child is killed when the returned guard drops.
    struct Sleeper(std::process::Child);

    impl Sleeper {
        fn start(argv0: &str) -> Sleeper {
            use std::os::unix::process::CommandExt;
            let child = std::process::Command::new("sleep")
                .arg0(argv0)
                .args(["30", "0"])
                .env_clear()
                .env("R_PORT_1_TCP", "tcp://h:1")
                .spawn()
                .expect("spawn sleep");
            Sleeper(child)
        }

        fn proc_dir(&self) -> std::path::PathBuf {
            Path::new("/proc").join(self.0.id().to_string())
        }
    }

    impl Drop for Sleeper {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    #[test]
    fn reads_the_rules_of_a_process_named_ambassador() {
        let child = Sleeper::start("/usr/local/bin/ambassador");
        let found = ambassador_at(&child.proc_dir()).expect("an ambassador");
        assert_eq!(found.args, ["30", "0"]);
        assert_eq!(
            found.vars,
            [("R_PORT_1_TCP".to_string(), "tcp://h:1".to_string())]
        );
    }

    #[test]
    fn a_process_of_another_name_is_not_an_ambassador() {
        let child = Sleeper::start("/bin/sleep");
        assert!(child.proc_dir().join("cmdline").exists());
        assert!(ambassador_at(&child.proc_dir()).is_none());
        assert!(ambassador_at(Path::new("/proc/no-such-process")).is_none());
    }

    #[test]
    fn wildcards_are_probed_on_loopback() {
        let p = |s: &str| probe_address(s.parse().unwrap()).to_string();
        assert_eq!(p("0.0.0.0:6379"), "127.0.0.1:6379");
        assert_eq!(p("[::]:6379"), "[::1]:6379");
        assert_eq!(p("10.1.2.3:80"), "10.1.2.3:80");
        assert_eq!(p("[fe80::1]:80"), "[fe80::1]:80");
    }
}
