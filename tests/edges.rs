//! Bad input at the edges: malformed rules and variables of every shape the
//! real binary may meet (never a panic, always exit 2 and a message), listen
//! ports already taken, targets that accept and never speak, clients that
//! connect and never send, and an idle horde holding every slot.

mod common;

use std::ffi::OsStr;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::ffi::OsStrExt;
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use common::*;

fn assert_config_error(out: std::process::Output, what: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{what}: {err}");
    assert!(err.starts_with("ambassador: "), "{what}: {err}");
    assert!(!err.contains("panicked"), "{what}: {err}");
}

#[test]
fn malformed_rules_exit_2_without_a_panic() {
    let long = "1".repeat(100_000);
    let cases = [
        "",
        ":",
        "::",
        ":::",
        "[",
        "]",
        "[]:1:a:1",
        "1:[]:1",
        "1:a:1,",
        ",",
        "1:a:-1",
        "1:a:1:2:3",
        "٣:a:1",
        "１:a:1",
        "1:a:1\n",
        " 1:a:1",
        "1:a :1",
        "1:a:1 ",
        "1:[::1]x:1",
        "[::1]1:a:1",
        "1:a.:1.",
        "65535:a:65536",
        "1:[fe80::1%eth0]:1",
        "1:a:1/UDP",
        "1:a:1/",
        "1:a:1/udp/udp",
        "1:a:1/sctp",
        "/udp",
        "1:a:1,/udp",
        &long,
    ];
    for rule in cases {
        let out = run(&["--check", rule], &[]);
        assert_config_error(out, &format!("{:.40}", rule));
    }
}

#[test]
fn malformed_variables_exit_2_without_a_panic() {
    let cases = [
        ("A_PORT_1_TCP", ""),
        ("A_PORT_1_TCP", "tcp://"),
        ("A_PORT_1_TCP", "tcp://:1"),
        ("A_PORT_1_TCP", "tcp://a:"),
        ("A_PORT_1_TCP", "tcp://[::1:1"),
        ("A_PORT_1_TCP", "TCP://a:1"),
        ("A_PORT_1_TCP", "tcp://a:1:2"),
        ("A_PORT_99999_TCP", "tcp://a:1"),
        ("A_PORT_1_TCP", "tcp://a:1,b:2"),
        ("D_PORT_53_UDP", ""),
        ("D_PORT_53_UDP", "tcp://a:53"),
        ("D_PORT_53_UDP", "udp://"),
        ("D_PORT_53_UDP", "udp://a:53/udp"),
        ("D_PORT_0_UDP", "udp://a:53"),
    ];
    for (name, value) in cases {
        let out = run(&["--check"], &[(name, value)]);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_config_error(out, &format!("{name}={value}"));
        assert!(err.contains(&format!("variable {name}=")), "{err}");
    }
}

#[test]
fn non_utf8_arguments_and_values_are_errors_not_panics() {
    let check = |rule: &OsStr, vars: &[(&str, &OsStr)], what: &str| {
        let child = Command::new(BIN)
            .args([OsStr::new("--check"), rule])
            .env_clear()
            .envs(vars.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ambassador");
        output_within(child, Duration::from_secs(20), what)
    };
    let out = check(OsStr::from_bytes(b"1:\xff\xfe:1"), &[], "a non-UTF-8 rule");
    assert_config_error(out, "non-UTF-8 argument");
    let value = OsStr::from_bytes(b"tcp://\xff:1");
    let out = check(
        OsStr::new("--env"),
        &[("A_PORT_1_TCP", value)],
        "a non-UTF-8 variable",
    );
    assert_config_error(out, "non-UTF-8 value");
}

#[test]
fn second_listen_port_taken_exits_1_naming_it() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let out = run(
        &[
            &format!("127.0.0.1:{}:127.0.0.1:1", free_port()),
            &format!("{addr}:127.0.0.1:1"),
        ],
        &[],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
}

#[test]
fn udp_listen_port_taken_exits_1_naming_it() {
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let out = run(&[&format!("{addr}:127.0.0.1:1/udp")], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("cannot listen on {addr}/udp")),
        "{err}"
    );
}

#[test]
fn garbage_and_floods_of_datagrams_leave_the_udp_rule_serving() {
    let echo = udp_server(b"");
    let port = free_port();
    let amb = Ambassador::serve(
        &[
            &format!("127.0.0.1:{port}:{echo}/udp"),
            "--max-conns",
            "8",
            "--udp-timeout",
            "0.5",
        ],
        &[],
        1,
    );
    // 200 client addresses at once, each with a burst of random-sized
    // garbage: 8 take every slot, the rest are dropped; once the flood's
    // sessions expire, a new client is served.
    let flooders: Vec<std::net::UdpSocket> = (0..200).map(|_| udp_client(local(port))).collect();
    for (i, f) in flooders.iter().enumerate() {
        for j in 0..20 {
            let _ = f.send(&payload((i * 37 + j * 101) % 3000, (i * 20 + j) as u64));
        }
    }
    let client = udp_client(local(port));
    let served = wait_until(Duration::from_secs(10), || {
        client
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        udp_round_trip(&client, b"still here?").is_ok_and(|r| r == b"still here?")
    });
    assert!(served, "{}", amb.stderr());
}

#[test]
fn target_that_accepts_and_never_speaks_holds_only_its_own_connection() {
    let mute = server(|mut s| {
        let _ = read_all(&mut s); // reads everything, answers nothing
    });
    let good = echo_server();
    let (p1, p2) = (free_port(), free_port());
    let amb = Ambassador::serve(
        &[
            &format!("127.0.0.1:{p1}:{mute}"),
            &format!("127.0.0.1:{p2}:{good}"),
            "--idle-timeout",
            "1",
            "-v",
        ],
        &[],
        2,
    );
    let mut waiting = connect(local(p1));
    waiting.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    // Meanwhile other clients are served.
    for _ in 0..5 {
        let got = round_trip(connect(local(p2)), b"ping".to_vec()).unwrap();
        assert_eq!(got, b"ping");
    }
    // And the mute one is cut by the idle timeout, with a reset.
    let mut buf = [0u8; 16];
    assert_eq!(
        waiting.read(&mut buf).unwrap_err().kind(),
        ErrorKind::ConnectionReset
    );
    assert!(
        amb.wait_for_log("idle for 1.000s", Duration::from_secs(5)),
        "{}",
        amb.stderr()
    );
}

#[test]
fn an_idle_horde_at_max_conns_is_cut_and_the_next_client_served() {
    // Slowloris: clients that connect and never send take every slot.
    let target = echo_server();
    let port = free_port();
    let amb = Ambassador::serve(
        &[
            &format!("127.0.0.1:{port}:{target}"),
            "--max-conns",
            "20",
            "--idle-timeout",
            "1",
        ],
        &[],
        1,
    );
    let (threads, fds) = (amb.threads(), amb.fds());
    let horde: Vec<TcpStream> = (0..20).map(|_| connect(local(port))).collect();
    assert!(
        wait_until(Duration::from_secs(5), || amb.threads() >= threads + 40),
        "horde not relayed"
    );
    // The next client waits in the backlog, then is served once the horde is cut.
    let got = round_trip(connect(local(port)), b"after the horde".to_vec()).unwrap();
    assert_eq!(got, b"after the horde");
    for mut idle in horde {
        let mut buf = [0u8; 1];
        assert_eq!(
            idle.read(&mut buf).unwrap_err().kind(),
            ErrorKind::ConnectionReset
        );
    }
    amb.assert_settles_to(threads, fds);
}

#[test]
fn a_client_that_never_sends_does_not_block_others() {
    let target = echo_server();
    let port = free_port();
    let amb = Ambassador::serve(&[&format!("127.0.0.1:{port}:{target}")], &[], 1);
    let silent: Vec<TcpStream> = (0..50).map(|_| connect(local(port))).collect();
    // Every silent client is in, each holding its thread.
    amb.expect_counters("open 50,");
    let workers: Vec<_> = (0..8)
        .map(|i| {
            thread::spawn(move || {
                let data = payload(10_000, i);
                assert!(round_trip(connect(local(port)), data.clone()).unwrap() == data);
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    drop(silent);
}
