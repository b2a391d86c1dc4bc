//! The command line as a user meets it: every exit code and its message,
//! --help, --version, --check, --healthcheck, SIGTERM and SIGINT.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::process::Output;
use std::time::Duration;

use common::*;

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs and expects `code`, with stderr starting "ambassador: " and containing `needle`.
fn fails_with(args: &[&str], envs: &[(&str, &str)], code: i32, needle: &str) {
    let out = run(args, envs);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
    assert!(err.starts_with("ambassador: "), "{args:?}: {err}");
    assert!(err.contains(needle), "{args:?}: want {needle:?} in {err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn help_prints_usage_and_exits_0() {
    for flag in ["-h", "--help"] {
        let out = run(&[flag], &[]);
        assert_eq!(out.status.code(), Some(0));
        assert!(stdout(&out).starts_with("Usage: ambassador [OPTIONS] [RULE ...]"));
        assert!(stdout(&out).contains("--idle-timeout SECS"));
    }
}

#[test]
fn version_exits_0() {
    for flag in ["-V", "--version"] {
        let out = run(&[flag], &[]);
        assert_eq!(out.status.code(), Some(0));
        assert_eq!(
            stdout(&out),
            format!("ambassador {}\n", env!("CARGO_PKG_VERSION"))
        );
    }
}

#[test]
fn no_rules_is_a_configuration_error_that_says_how() {
    fails_with(
        &[],
        &[("PATH", "/bin")],
        2,
        "no rules: give a RULE argument such as 6379:redis:6379",
    );
}

#[test]
fn unknown_option_exits_2() {
    fails_with(&["--frobnicate"], &[], 2, "frobnicate");
}

#[test]
fn bad_option_values_exit_2_naming_the_option() {
    fails_with(
        &["1:a:1", "--connect-timeout", "soon"],
        &[],
        2,
        "--connect-timeout \"soon\"",
    );
    fails_with(
        &["1:a:1", "--idle-timeout", "-3"],
        &[],
        2,
        "--idle-timeout \"-3\"",
    );
    fails_with(&["1:a:1", "--max-conns", "0"], &[], 2, "--max-conns \"0\"");
    fails_with(&["1:a:1", "--max-conns"], &[], 2, "max-conns");
}

#[test]
fn bad_rule_exits_2_naming_the_argument_and_the_syntax() {
    fails_with(
        &["6379:redis:6379", "6380:redis"],
        &[],
        2,
        "argument 2 \"6380:redis\": expected LISTEN:TARGET[,TARGET...][/tcp|/udp], LISTEN being [HOST:]PORT or unix:PATH",
    );
    fails_with(
        &["99999:redis:6379"],
        &[],
        2,
        "listen port \"99999\": expected a number from 1 to 65535",
    );
    fails_with(&["1:2001:db8::1:80"], &[], 2, "brackets");
}

#[test]
fn bad_variable_exits_2_naming_it() {
    fails_with(
        &[],
        &[("REDIS_PORT_6379_TCP", "tcp://x")],
        2,
        "variable REDIS_PORT_6379_TCP=\"tcp://x\": expected tcp://HOST:PORT",
    );
}

#[test]
fn conflicting_rules_exit_2_naming_both_sources() {
    fails_with(
        &["--env", "6379:elsewhere:1"],
        &[("REDIS_PORT_6379_TCP", "tcp://10.1.1.1:6379")],
        2,
        "argument 1 (0.0.0.0:6379:elsewhere:1) and variable REDIS_PORT_6379_TCP (0.0.0.0:6379:10.1.1.1:6379)",
    );
}

#[test]
fn port_in_use_exits_1_naming_the_address_and_the_os_error() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    fails_with(
        &[&format!("{addr}:127.0.0.1:1")],
        &[],
        1,
        &format!("cannot listen on {addr}: Address already in use"),
    );
}

#[test]
fn check_prints_rules_with_their_sources() {
    let out = run(
        &[
            "--check",
            "--env",
            "127.0.0.1:8080:web:80",
            "[::]:6379:[2001:db8::5]:6379",
            "7000:a:1,b:2",
        ],
        &[
            ("REDIS_PORT_6380_TCP", "tcp://172.17.0.2:6379"),
            ("REDIS_NAME", "/me/redis"),
            ("REDIS_ENV_X_PORT_1_TCP", "tcp://1.1.1.1:1"),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "127.0.0.1:8080:web:80\targument 1\n\
         [::]:6379:[2001:db8::5]:6379\targument 2\n\
         0.0.0.0:7000:a:1,b:2\targument 3\n\
         0.0.0.0:6380:redis:6379,172.17.0.2:6379\tvariable REDIS_PORT_6380_TCP\n"
    );
}

#[test]
fn check_output_is_valid_rule_arguments() {
    let out = run(
        &["--check", "[::1]:9:[::2]:9,h:1", "127.0.0.1:9:x_y.z:9"],
        &[],
    );
    let rules: Vec<String> = stdout(&out)
        .lines()
        .map(|l| l.split('\t').next().unwrap().to_string())
        .collect();
    let args: Vec<&str> = std::iter::once("--check")
        .chain(rules.iter().map(|s| s.as_str()))
        .collect();
    assert_eq!(stdout(&run(&args, &[])), stdout(&out));
}

#[test]
fn check_prints_balance_and_a_bad_one_exits_2() {
    let out = run(&["--check", "--balance", "round-robin", "1:a:1,b:2"], &[]);
    assert_eq!(
        stdout(&out),
        "0.0.0.0:1:a:1,b:2\targument 1\n--balance round-robin\toption\n"
    );
    fails_with(
        &["--balance", "random", "1:a:1"],
        &[],
        2,
        "--balance \"random\"",
    );
}

#[test]
fn check_names_the_targets_asked_by_mdns() {
    let out = run(
        &[
            "--check",
            "1:far.local:1,b:2,FAR.Local.:3",
            "2:vm1.local:53/udp",
            "3:local:1",
        ],
        &[("NAS_PORT_445_TCP", "tcp://nas.local:445")],
    );
    assert_eq!(
        stdout(&out),
        "0.0.0.0:1:far.local:1,b:2,FAR.Local.:3\targument 1; far.local by mDNS\n\
         0.0.0.0:2:vm1.local:53/udp\targument 2; vm1.local by mDNS\n\
         0.0.0.0:3:local:1\targument 3\n"
    );
    let out = run(&["--check"], &[("NAS_PORT_445_TCP", "tcp://nas.local:445")]);
    assert_eq!(
        stdout(&out),
        "0.0.0.0:445:nas.local:445\tvariable NAS_PORT_445_TCP; nas.local by mDNS\n"
    );
}

#[test]
fn check_exits_2_on_a_bad_rule() {
    fails_with(&["--check", "nonsense"], &[], 2, "argument 1");
}

#[test]
fn healthcheck_passes_when_listening_and_a_target_answers() {
    let target = echo_server();
    let port = free_port();
    let rule = format!("127.0.0.1:{port}:{target}");
    let _amb = Ambassador::serve(&[&rule], &[], 1);
    let out = run(&["--healthcheck", &rule], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let line = stdout(&out);
    assert!(line.starts_with("ok   "), "{line}");
    assert!(
        line.contains(&format!("listening at 127.0.0.1:{port}")),
        "{line}"
    );
    assert!(line.contains(&format!("target {target} answers")), "{line}");
}

#[test]
fn healthcheck_fails_when_no_target_answers() {
    let port = free_port();
    let refused = refused_addr();
    let rule = format!("127.0.0.1:{port}:{refused}");
    let _amb = Ambassador::serve(&[&rule], &[], 1);
    let out = run(&["--healthcheck", &rule], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).starts_with("FAIL "), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("no target answers"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn healthcheck_fails_when_nothing_listens() {
    let target = echo_server();
    let rule = format!("{}:{target}", free_port());
    let out = run(&["--healthcheck", &rule], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("not listening at 127.0.0.1:"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn healthcheck_has_a_line_per_rule_and_fails_if_any_fails() {
    let target = echo_server();
    let (p1, p2) = (free_port(), free_port());
    let (r1, r2) = (
        format!("127.0.0.1:{p1}:{target}"),
        format!("127.0.0.1:{p2}:{target}"),
    );
    let _amb = Ambassador::serve(&[&r1], &[], 1);
    let out = run(&["--healthcheck", &r1, &r2], &[]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].starts_with("ok   ") && lines[1].starts_with("FAIL "),
        "{text}"
    );
}

fn exits_0_on(signal: &str) {
    let target = echo_server();
    let port = free_port();
    let mut amb = Ambassador::serve(&[&format!("127.0.0.1:{port}:{target}")], &[], 1);
    // With connections open: they must not hold the exit up, and must end
    // with a reset, not a FIN that would pass for a complete stream.
    let mut open: Vec<_> = (0..5)
        .map(|_| connect(SocketAddr::from(([127, 0, 0, 1], port))))
        .collect();
    // An echo through each proves it is relayed both ways before the signal.
    for client in open.iter_mut() {
        std::io::Write::write_all(client, b"p").unwrap();
        let mut echoed = [0u8; 1];
        std::io::Read::read_exact(client, &mut echoed).unwrap();
    }
    amb.signal(signal);
    let status = amb
        .wait_exit(Duration::from_secs(5))
        .expect("still running 5 s after the signal");
    assert_eq!(status.code(), Some(0));
    for client in open.iter_mut() {
        let err = std::io::Read::read(client, &mut [0u8; 8]).expect_err("a clean end of stream");
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
    }
    assert!(
        amb.stderr()
            .contains(&format!("received SIG{signal}, exiting")),
        "{}",
        amb.stderr()
    );
}

#[test]
fn sigterm_exits_0() {
    exits_0_on("TERM");
}

#[test]
fn sigint_exits_0() {
    exits_0_on("INT");
}

#[test]
fn quiet_logs_nothing_on_a_normal_start() {
    let port = free_port();
    let mut amb = Ambassador::start(&["-q", &format!("127.0.0.1:{port}:127.0.0.1:1")], &[]);
    assert!(wait_until(Duration::from_secs(5), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    }));
    amb.signal("TERM");
    assert_eq!(
        amb.wait_exit(Duration::from_secs(5)).and_then(|s| s.code()),
        Some(0)
    );
    assert_eq!(amb.stderr(), "");
}

#[test]
fn sigterm_exits_0_as_pid_1() {
    // A process with no handler ignores SIGTERM as PID 1: the reason
    // `docker stop` of the classic image waits 10 s. Run as PID 1 of a new
    // PID namespace and signal it from outside.
    let unshare = require("unshare", "util-linux");
    let port = free_port();
    let mut outer = std::process::Command::new(unshare)
        .args([
            "--pid",
            "--fork",
            "--kill-child",
            BIN,
            &format!("127.0.0.1:{port}:127.0.0.1:1"),
        ])
        .env_clear()
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn unshare");
    let children = format!("/proc/{0}/task/{0}/children", outer.id());
    let mut inner = String::new();
    let started = wait_until(Duration::from_secs(5), || {
        inner = std::fs::read_to_string(&children)
            .unwrap_or_default()
            .trim()
            .to_string();
        !inner.is_empty() && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    if !started {
        let _ = outer.kill();
        let out = outer.wait_with_output().unwrap();
        panic!(
            "no ambassador as PID 1 (unshare needs root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let ns_pid = std::fs::read_to_string(format!("/proc/{inner}/status")).unwrap();
    assert!(
        ns_pid
            .lines()
            .any(|l| l.starts_with("NSpid:") && l.ends_with("\t1")),
        "{ns_pid}"
    );
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &inner])
        .status()
        .unwrap();
    assert!(kill.success());
    let exited = wait_until(Duration::from_secs(5), || {
        outer.try_wait().unwrap().is_some()
    });
    if !exited {
        let _ = outer.kill();
    }
    let out = outer.wait_with_output().unwrap();
    assert!(
        exited,
        "PID 1 ignored SIGTERM: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
