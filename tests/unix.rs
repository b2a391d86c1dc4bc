//! Unix-domain sockets on either side of a rule, against real sockets and a
//! real redis: redis on a unix socket served on a TCP port and the other way
//! round, unix to unix; 64 MiB both ways at once for each pairing;
//! half-close both ways; what a reset becomes where AF_UNIX has none;
//! stale, live and foreign files at the listen path, --unix-mode, removal
//! at exit; failover past missing and refused paths; healthcheck, logs,
//! --allow, idle timeout and drain; faults (paths removed under a running
//! ambassador, thousands of cycles) leaving no thread or descriptor behind.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use common::*;

const MIB: usize = 1 << 20;

fn local_port(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A value of `len` letters, for redis.
fn letters(len: usize, seed: u64) -> String {
    payload(len, seed)
        .iter()
        .map(|b| (b'a' + b % 26) as char)
        .collect()
}

/// SET a 10 MiB value and GET it back whole, through `cli`.
fn redis_big_value(cli: impl Fn(&[&str], Option<&[u8]>) -> String) {
    let value = letters(10 * MIB, 3);
    assert_eq!(cli(&["-x", "SET", "big"], Some(value.as_bytes())), "OK");
    let got = cli(&["GET", "big"], None);
    assert!(
        got == value,
        "GET gave {} bytes, want {}",
        got.len(),
        value.len()
    );
}

#[test]
fn redis_on_a_unix_socket_is_served_on_a_tcp_port() {
    let dir = TempDir::new();
    let sock = dir.path("redis.sock");
    let _redis = redis_server_unix(&sock);
    let port = free_port();
    let _amb = Ambassador::serve(&[&format!("127.0.0.1:{port}:unix:{sock}")], &[], 1);
    assert_eq!(redis_cli(port, &["PING"], None), "PONG");
    redis_big_value(|args, stdin| redis_cli(port, args, stdin));
}

#[test]
fn redis_on_tcp_is_served_on_a_unix_socket() {
    let dir = TempDir::new();
    let sock = dir.path("front.sock");
    let (_redis, redis_port) = redis_server();
    let _amb = Ambassador::serve(&[&format!("unix:{sock}:127.0.0.1:{redis_port}")], &[], 1);
    assert_eq!(redis_cli_unix(&sock, &["PING"], None), "PONG");
    redis_big_value(|args, stdin| redis_cli_unix(&sock, args, stdin));
}

#[test]
fn redis_unix_to_unix() {
    let dir = TempDir::new();
    let (back, front) = (dir.path("redis.sock"), dir.path("front.sock"));
    let _redis = redis_server_unix(&back);
    let _amb = Ambassador::serve(&[&format!("unix:{front}:unix:{back}")], &[], 1);
    assert_eq!(redis_cli_unix(&front, &["PING"], None), "PONG");
}

/// 64 MiB through `rule`'s echo target both ways at once, from `client`.
fn both_ways(rule: &str, client: impl FnOnce() -> Result<Vec<u8>, std::io::Error>) {
    let amb = Ambassador::serve(&[rule], &[], 1);
    let got = client().expect("round trip");
    assert!(
        got.len() == 64 * MIB && got == payload(64 * MIB, 7),
        "{} bytes came back; stderr: {}",
        got.len(),
        amb.stderr()
    );
}

#[test]
fn tcp_to_unix_carries_64_mib_both_ways_at_once() {
    let dir = TempDir::new();
    let back = dir.path("echo.sock");
    unix_echo_server(&back);
    let port = free_port();
    both_ways(&format!("127.0.0.1:{port}:unix:{back}"), || {
        round_trip(connect(local_port(port)), payload(64 * MIB, 7))
    });
}

#[test]
fn unix_to_tcp_carries_64_mib_both_ways_at_once() {
    let dir = TempDir::new();
    let front = dir.path("front.sock");
    let echo = echo_server();
    both_ways(&format!("unix:{front}:{echo}"), || {
        let c = unix_connect(&front);
        round_trip_any(c, payload(64 * MIB, 7), |s| s.try_clone().unwrap())
    });
}

#[test]
fn unix_to_unix_carries_64_mib_both_ways_at_once() {
    let dir = TempDir::new();
    let (front, back) = (dir.path("front.sock"), dir.path("echo.sock"));
    unix_echo_server(&back);
    both_ways(&format!("unix:{front}:unix:{back}"), || {
        let c = unix_connect(&front);
        round_trip_any(c, payload(64 * MIB, 7), |s| s.try_clone().unwrap())
    });
}

#[test]
fn a_tcp_client_half_closes_and_still_gets_a_unix_target_s_reply() {
    let dir = TempDir::new();
    let back = dir.path("late.sock");
    unix_server(&back, |mut s: UnixStream| {
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        thread::sleep(Duration::from_millis(300)); // the behaviour: a late reply
        s.write_all(format!("got {} bytes", got.len()).as_bytes())
            .unwrap();
    });
    let port = free_port();
    let _amb = Ambassador::serve(&[&format!("127.0.0.1:{port}:unix:{back}")], &[], 1);
    let mut c = connect(local_port(port));
    c.write_all(&payload(MIB, 1)).unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(
        read_all(&mut c).unwrap(),
        format!("got {MIB} bytes").as_bytes()
    );
}

#[test]
fn a_unix_client_still_sends_after_its_tcp_target_half_closed() {
    let dir = TempDir::new();
    let front = dir.path("front.sock");
    let (tx, rx) = mpsc::channel();
    let target = server(move |mut s| {
        s.write_all(b"hello, then EOF").unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        tx.send(read_all(&mut s).map_err(|e| e.kind())).unwrap();
    });
    let _amb = Ambassador::serve(&[&format!("unix:{front}:{target}")], &[], 1);
    let mut c = unix_connect(&front);
    let mut reply = Vec::new();
    c.read_to_end(&mut reply).unwrap();
    assert_eq!(reply, b"hello, then EOF");
    c.write_all(b"still talking").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let got = rx
        .recv_timeout(IO_TIMEOUT)
        .expect("the target read to the end");
    assert_eq!(got.unwrap(), b"still talking");
}

#[test]
fn a_tcp_reset_reaches_a_unix_target_as_both_directions_shut() {
    let dir = TempDir::new();
    let back = dir.path("back.sock");
    let (tx, rx) = mpsc::channel();
    let (arrived, bytes_in) = mpsc::channel();
    unix_server(&back, move |mut s: UnixStream| {
        let mut buf = [0u8; 64];
        let mut read = 0;
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            read += n;
            let _ = arrived.send(read);
        }
        // A half-close would still take this write; both directions shut refuses it.
        let write = s.write_all(b"too late").map_err(|e| e.kind());
        tx.send((read, write)).unwrap();
    });
    let port = free_port();
    let _amb = Ambassador::serve(&[&format!("127.0.0.1:{port}:unix:{back}")], &[], 1);
    let c = connect(local_port(port));
    (&c).write_all(b"some bytes").unwrap();
    // The bytes are through before the reset follows them.
    let through = || {
        bytes_in
            .recv_timeout(IO_TIMEOUT)
            .expect("the bytes reached the target")
    };
    while through() < 10 {}
    reset_on_drop(&c);
    drop(c);
    let (read, write) = rx
        .recv_timeout(IO_TIMEOUT)
        .expect("the unix target saw the end");
    assert_eq!(read, 10);
    assert_eq!(write, Err(ErrorKind::BrokenPipe));
}

#[test]
fn a_unix_target_that_quits_with_bytes_unread_resets_the_tcp_client() {
    let dir = TempDir::new();
    let back = dir.path("quitter.sock");
    unix_server(&back, |s: UnixStream| {
        // Takes the connection, reads nothing, and goes away (the pause
        // lets the client's bytes queue unread: what makes Linux reset).
        thread::sleep(Duration::from_millis(300));
        drop(s);
    });
    let port = free_port();
    let _amb = Ambassador::serve(&[&format!("127.0.0.1:{port}:unix:{back}")], &[], 1);
    let mut c = connect(local_port(port));
    c.write_all(&payload(64 * 1024, 2)).unwrap();
    assert_eq!(read_end(&mut c), Err(ErrorKind::ConnectionReset));
}

#[test]
fn a_stale_socket_file_is_replaced() {
    let dir = TempDir::new();
    let front = dir.path("front.sock");
    drop(UnixListener::bind(&front).unwrap());
    assert!(std::fs::metadata(&front).unwrap().file_type().is_socket());
    let amb = Ambassador::serve(&[&format!("unix:{front}:{}", echo_server())], &[], 1);
    let got = round_trip_any(unix_connect(&front), b"fresh".to_vec(), |s| {
        s.try_clone().unwrap()
    });
    assert_eq!(got.unwrap(), b"fresh");
    assert!(
        amb.stderr().contains("replacing a stale socket"),
        "{}",
        amb.stderr()
    );
}

#[test]
fn a_live_socket_is_in_use_and_a_file_is_never_touched() {
    let dir = TempDir::new();
    let live = dir.path("live.sock");
    let _owner = UnixListener::bind(&live).unwrap();
    let out = run(&[&format!("unix:{live}:127.0.0.1:1")], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot listen on unix:{live}: in use")),
        "{err}"
    );
    let file = dir.path("notes.txt");
    std::fs::write(&file, "keep me").unwrap();
    let out = run(&[&format!("unix:{file}:127.0.0.1:1")], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("exists and is not a socket; left untouched"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
}

#[test]
fn unix_mode_sets_the_socket_s_permissions() {
    let dir = TempDir::new();
    for mode in [0o600, 0o660, 0o666] {
        let front = dir.path(&format!("m{mode:o}.sock"));
        let rule = format!("unix:{front}:127.0.0.1:1");
        let _amb = Ambassador::serve(&["--unix-mode", &format!("{mode:o}"), &rule], &[], 1);
        let perms = std::fs::metadata(&front).unwrap().permissions().mode();
        assert_eq!(perms & 0o777, mode, "{front}: {perms:o}");
    }
    let out = run(&["--unix-mode", "999", "unix:/run/x.sock:h:1"], &[]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn the_socket_file_is_removed_at_exit_only_if_it_is_still_ours() {
    let dir = TempDir::new();
    let front = dir.path("front.sock");
    let mut amb = Ambassador::serve(&[&format!("unix:{front}:127.0.0.1:1")], &[], 1);
    amb.signal("TERM");
    assert_eq!(
        amb.wait_exit(Duration::from_secs(5)).and_then(|s| s.code()),
        Some(0)
    );
    assert!(
        !std::path::Path::new(&front).exists(),
        "{front} left behind"
    );

    let mut amb = Ambassador::serve(&[&format!("unix:{front}:127.0.0.1:1")], &[], 1);
    std::fs::remove_file(&front).unwrap();
    let _someone_else = UnixListener::bind(&front).unwrap();
    amb.signal("TERM");
    assert_eq!(
        amb.wait_exit(Duration::from_secs(5)).and_then(|s| s.code()),
        Some(0)
    );
    assert!(
        std::path::Path::new(&front).exists(),
        "someone else's socket was removed"
    );
}

#[test]
fn missing_and_refused_unix_targets_fail_over_to_the_next() {
    let dir = TempDir::new();
    let (front, missing, stale) = (
        dir.path("f.sock"),
        dir.path("missing.sock"),
        dir.path("stale.sock"),
    );
    drop(UnixListener::bind(&stale).unwrap());
    let echo = echo_server();
    let rule = format!("unix:{front}:unix:{missing},unix:{stale},{echo}");
    let amb = Ambassador::serve(&[&rule], &[], 1);
    let got = round_trip_any(unix_connect(&front), b"third time".to_vec(), |s| {
        s.try_clone().unwrap()
    });
    assert_eq!(got.unwrap(), b"third time");
    let log = amb.stderr();
    assert!(
        log.contains(&format!("target unix:{missing} failed: No such file")),
        "{log}"
    );
    assert!(
        log.contains(&format!("target unix:{stale} failed: Connection refused")),
        "{log}"
    );
}

#[test]
fn healthcheck_probes_a_unix_listener_and_a_unix_target() {
    let dir = TempDir::new();
    let (front, back) = (dir.path("front.sock"), dir.path("back.sock"));
    unix_echo_server(&back);
    let rule = format!("unix:{front}:unix:{back}");
    let _amb = Ambassador::serve(&[&rule], &[], 1);
    let out = run(&["--healthcheck", &rule], &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert_eq!(
        text.trim(),
        format!(
            "ok   {rule}: listening at unix:{front}; target unix:{back} answers at unix:{back}"
        )
    );
    let gone = dir.path("gone.sock");
    let out = run(&["--healthcheck", &format!("unix:{gone}:unix:{back}")], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("not listening at unix:{gone}")));
}

#[test]
fn logs_name_a_unix_client_by_pid_and_uid_and_allow_does_not_concern_it() {
    let dir = TempDir::new();
    let front = dir.path("front.sock");
    let echo = echo_server();
    let rule = format!("unix:{front}:{echo}");
    let amb = Ambassador::serve(&["-v", "--allow", "192.0.2.0/24", &rule], &[], 1);
    let got = round_trip_any(unix_connect(&front), b"me".to_vec(), |s| {
        s.try_clone().unwrap()
    });
    assert_eq!(got.unwrap(), b"me");
    let uid = std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m));
    let who = format!(
        "pid {} uid {} -> {echo}: open",
        std::process::id(),
        uid.unwrap()
    );
    amb.expect_log(&who);
}

#[test]
fn an_idle_unix_connection_is_closed_both_ways() {
    let dir = TempDir::new();
    let front = dir.path("front.sock");
    let rule = format!("unix:{front}:{}", echo_server());
    let _amb = Ambassador::serve(&["--idle-timeout", "0.5", &rule], &[], 1);
    let mut c = unix_connect(&front);
    let mut rest = Vec::new();
    // No reset in AF_UNIX: the end is EOF, and writing afterwards fails.
    assert_eq!(
        c.read_to_end(&mut rest)
            .map_err(|e| e.kind())
            .map(|_| rest.len()),
        Ok(0)
    );
    assert_eq!(
        c.write_all(b"x").map_err(|e| e.kind()),
        Err(ErrorKind::BrokenPipe)
    );
}

#[test]
fn a_drain_finishes_a_unix_connection_and_then_removes_the_socket() {
    let dir = TempDir::new();
    let front = dir.path("front.sock");
    let rule = format!("unix:{front}:{}", echo_server());
    let mut amb = Ambassador::serve(&["--drain", "10", &rule], &[], 1);
    let mut c = unix_connect(&front);
    ping(&mut c, b'a');
    amb.signal("TERM");
    amb.expect_log("stopped listening");
    assert!(
        UnixStream::connect(&front).is_err(),
        "a new client was let in during the drain"
    );
    ping(&mut c, b'b');
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_all_unix(&mut c), Vec::<u8>::new());
    assert_eq!(amb.wait_exit(IO_TIMEOUT).and_then(|s| s.code()), Some(0));
    amb.expect_log("1 open at SIGTERM, 1 finished, 0 reset");
    assert!(!std::path::Path::new(&front).exists());
}

fn read_all_unix(stream: &mut UnixStream) -> Vec<u8> {
    let mut out = Vec::new();
    stream.read_to_end(&mut out).expect("a clean end");
    out
}

#[test]
fn paths_removed_under_a_running_ambassador_break_nothing_else() {
    let dir = TempDir::new();
    let (front, back) = (dir.path("front.sock"), dir.path("back.sock"));
    unix_echo_server(&back);
    let mut amb = Ambassador::serve(&[&format!("unix:{front}:unix:{back}")], &[], 1);
    let mut open = unix_connect(&front);
    ping(&mut open, b'1');
    // The target's socket file goes: the open connection carries on, a new
    // client finds no target and is closed.
    std::fs::remove_file(&back).unwrap();
    ping(&mut open, b'2');
    let mut late = unix_connect(&front);
    assert_eq!(read_all_unix(&mut late), Vec::<u8>::new());
    amb.expect_log("no target answered");
    // The listener's own path goes: the open connection still carries on.
    std::fs::remove_file(&front).unwrap();
    ping(&mut open, b'3');
    assert!(amb.is_running());
    amb.signal("TERM");
    assert_eq!(
        amb.wait_exit(Duration::from_secs(5)).and_then(|s| s.code()),
        Some(0)
    );
}

#[test]
fn thousands_of_unix_connect_close_cycles_leave_no_thread_or_descriptor() {
    let dir = TempDir::new();
    let (front, back) = (dir.path("front.sock"), dir.path("back.sock"));
    unix_echo_server(&back);
    let amb = Ambassador::serve(&[&format!("unix:{front}:unix:{back}")], &[], 1);
    let (threads, fds) = (amb.threads(), amb.fds());
    for i in 0..2000u32 {
        let mut c = unix_connect(&front);
        if i % 3 == 0 {
            // Gone at once, before a byte moves.
            continue;
        }
        c.write_all(&i.to_le_bytes()).unwrap();
        let mut back = [0u8; 4];
        c.read_exact(&mut back).unwrap();
        assert_eq!(back, i.to_le_bytes());
    }
    amb.assert_settles_to(threads, fds);
}

#[test]
fn check_prints_unix_rules_that_run_again_as_arguments() {
    let rules = [
        "unix:/run/shared/redis.sock:redis:6379",
        "127.0.0.1:2375:unix:/var/run/docker.sock",
        "unix:@app:unix:/a,10.0.0.2:1",
    ];
    let out = run(&[&["--check"][..], &rules[..]].concat(), &[]);
    assert_eq!(out.status.code(), Some(0));
    let printed: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('\t').next().unwrap().to_string())
        .collect();
    assert_eq!(printed, rules);
    let out = run(&["--check", "unix:relative.sock:h:1"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("ambassador: argument 1 \"unix:relative.sock:h:1\": unix path"),
        "{err}"
    );
    let out = run(&["--check", "5353:unix:/dns.sock/udp"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("a /udp rule with a unix side"));
}

#[test]
fn max_conns_and_counters_hold_for_a_unix_listener() {
    let dir = TempDir::new();
    let front = dir.path("front.sock");
    let rule = format!("unix:{front}:{}", echo_server());
    let amb = Ambassador::serve(&["--max-conns", "1", &rule], &[], 1);
    let mut first = unix_connect(&front);
    ping(&mut first, b'1');
    let mut b = [0u8; 1];
    // The second waits in the listen queue while the first holds the only slot.
    let mut second = unix_connect(&front);
    second.write_all(b"2").unwrap();
    second
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let waited = second.read(&mut b).map_err(|e| e.kind());
    assert!(
        matches!(waited, Err(ErrorKind::WouldBlock | ErrorKind::TimedOut)),
        "{waited:?}"
    );
    drop(first);
    unix_timeouts(&second);
    second.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"2");
    let line =
        format!("rule {rule}: open 1, served 2, denied 0, no target 0, bytes up 2, bytes down 2");
    amb.expect_counters(&line);
}
