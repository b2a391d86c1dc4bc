//! Bytes through the real binary: intact both ways, half-close each way with
//! no cut-off, resets passed on, no thread or descriptor left behind, real
//! redis, IPv6, names and environment rules.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use common::*;

fn rule(port: u16, target: SocketAddr) -> String {
    format!("127.0.0.1:{port}:{target}")
}

/// An ambassador on a free loopback port forwarding to `target`.
fn forwarder(target: SocketAddr, extra: &[&str]) -> (Ambassador, SocketAddr) {
    let port = free_port();
    let r = rule(port, target);
    let mut args = vec![r.as_str()];
    args.extend_from_slice(extra);
    let amb = Ambassador::serve(&args, &[], 1);
    (amb, SocketAddr::from(([127, 0, 0, 1], port)))
}

#[test]
fn large_random_payloads_arrive_intact_both_ways() {
    let (_amb, addr) = forwarder(echo_server(), &[]);
    let data = payload(16 << 20, 7);
    let got = round_trip(connect(addr), data.clone()).expect("round trip");
    assert_eq!(got.len(), data.len());
    assert!(got == data, "payload corrupted");
}

#[test]
fn many_concurrent_connections_each_get_their_own_bytes() {
    let (_amb, addr) = forwarder(echo_server(), &[]);
    let workers: Vec<_> = (0..16)
        .map(|i| {
            thread::spawn(move || {
                let data = payload(512 * 1024 + i * 977, i as u64 + 1);
                let got = round_trip(connect(addr), data.clone()).expect("round trip");
                assert!(got == data, "connection {i} corrupted");
            })
        })
        .collect();
    for w in workers {
        w.join().expect("worker");
    }
}

#[test]
fn client_half_close_still_gets_the_whole_reply_after_a_pause() {
    // The server answers only after the client's end of stream, and only after
    // 1.5 s: longer than socat's 0.5 s default cut-off after a half-close.
    let target = server(|mut s| {
        let got = read_all(&mut s).expect("server read");
        thread::sleep(Duration::from_millis(1500));
        let reply = payload(got.len() * 2, got.len() as u64);
        s.write_all(&reply).expect("server write");
        s.shutdown(Shutdown::Write).expect("server shutdown");
    });
    let (_amb, addr) = forwarder(target, &[]);
    let mut client = connect(addr);
    client.write_all(&payload(100_000, 1)).unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    let reply = read_all(&mut client).expect("client read");
    assert!(
        reply == payload(200_000, 100_000),
        "reply cut or corrupted: {} bytes",
        reply.len()
    );
}

#[test]
fn server_half_close_still_receives_the_whole_request() {
    // The server speaks first and half-closes; the client answers afterwards.
    let (tx, rx) = mpsc::channel();
    let target = server(move |mut s| {
        s.write_all(b"hello, then EOF").unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        tx.send(read_all(&mut s).map_err(|e| e.kind())).unwrap();
    });
    let (_amb, addr) = forwarder(target, &[]);
    let mut client = connect(addr);
    assert_eq!(read_all(&mut client).unwrap(), b"hello, then EOF");
    // The behaviour: a pause longer than socat's 0.5 s cut-off.
    thread::sleep(Duration::from_millis(700));
    client.write_all(&payload(300_000, 3)).unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    let got = rx
        .recv_timeout(IO_TIMEOUT)
        .expect("server result")
        .expect("server read");
    assert!(got == payload(300_000, 3));
}

/// Opens a forwarded connection, lets `act` end it, and returns how the
/// other side's read ended, then checks nothing is left in the ambassador.
fn reset_case(client_resets: bool) -> ErrorKind {
    let (tx, rx) = mpsc::channel();
    let target = server(move |mut s| {
        s.write_all(b"ready").unwrap();
        if client_resets {
            let mut buf = [0u8; 64];
            let ended = loop {
                match s.read(&mut buf) {
                    Ok(0) => break ErrorKind::UnexpectedEof,
                    Ok(_) => continue,
                    Err(e) => break e.kind(),
                }
            };
            tx.send(ended).unwrap();
        } else {
            let mut buf = [0u8; 5];
            s.read_exact(&mut buf).unwrap();
            reset_on_drop(&s);
        }
    });
    let (amb, addr) = forwarder(target, &[]);
    let (threads, fds) = (amb.threads(), amb.fds());
    let mut client = connect(addr);
    let mut buf = [0u8; 5];
    client.read_exact(&mut buf).unwrap();
    let ended = if client_resets {
        client.write_all(b"some bytes").unwrap();
        reset_on_drop(&client);
        drop(client);
        rx.recv_timeout(IO_TIMEOUT).expect("server saw the end")
    } else {
        client.write_all(b"go on").unwrap();
        let mut rest = Vec::new();
        match client.read_to_end(&mut rest) {
            Ok(_) => ErrorKind::UnexpectedEof,
            Err(e) => e.kind(),
        }
    };
    amb.assert_settles_to(threads, fds);
    ended
}

#[test]
fn client_reset_reaches_the_target_as_a_reset() {
    assert_eq!(reset_case(true), ErrorKind::ConnectionReset);
}

#[test]
fn target_reset_reaches_the_client_as_a_reset() {
    assert_eq!(reset_case(false), ErrorKind::ConnectionReset);
}

#[test]
fn closed_connections_leave_no_thread_or_descriptor() {
    let (amb, addr) = forwarder(echo_server(), &[]);
    let (threads, fds) = (amb.threads(), amb.fds());
    let clients: Vec<TcpStream> = (0..20).map(|_| connect(addr)).collect();
    for mut c in clients.iter() {
        c.write_all(b"x").unwrap();
        let mut b = [0u8; 1];
        c.read_exact(&mut b).unwrap();
    }
    assert_eq!(
        amb.threads(),
        threads + 40,
        "two copier threads per connection"
    );
    for (i, c) in clients.iter().enumerate() {
        if i % 2 == 0 {
            c.shutdown(Shutdown::Both).unwrap();
        } else {
            reset_on_drop(c);
        }
    }
    drop(clients);
    amb.assert_settles_to(threads, fds);
}

#[test]
fn names_are_resolved_and_every_address_tried() {
    // "localhost" may resolve to ::1 first, where nothing listens.
    let target = echo_server();
    let port = free_port();
    let r = format!("127.0.0.1:{port}:localhost:{}", target.port());
    let _amb = Ambassador::serve(&[&r], &[], 1);
    let got = round_trip(connect(("127.0.0.1", port)), b"by name".to_vec()).unwrap();
    assert_eq!(got, b"by name");
}

#[test]
fn ipv6_on_both_sides() {
    // Not a skip: a host without ::1 fails here, saying so, rather than pass.
    if let Err(e) = std::net::TcpListener::bind("[::1]:0") {
        panic!("this host has no IPv6 loopback (::1: {e}); enable it with sysctl net.ipv6.conf.lo.disable_ipv6=0");
    }
    let target = server_on("[::1]:0", echo);
    let port = free_port();
    let r = format!("[::1]:{port}:[::1]:{}", target.port());
    let _amb = Ambassador::serve(&[&r], &[], 1);
    let got = round_trip(connect(("::1", port)), payload(70_000, 6)).unwrap();
    assert!(got == payload(70_000, 6));
}

#[test]
fn environment_rule_forwards_like_the_classic_image() {
    let target = echo_server();
    let port = free_port();
    let name = format!("REDIS_PORT_{port}_TCP");
    let value = format!("tcp://{target}");
    let _amb = Ambassador::serve(&[], &[(&name, &value)], 1);
    let got = round_trip(connect(("127.0.0.1", port)), b"PING".to_vec()).unwrap();
    assert_eq!(got, b"PING");
}

#[test]
fn docker_link_alias_is_tried_before_the_address_in_the_variable() {
    // The variable's address is stale (nothing listens there); the alias
    // "localhost" reaches the service at the port the value names.
    let target = echo_server();
    let port = free_port();
    let name = format!("DB_PORT_{port}_TCP");
    let value = format!("tcp://127.0.0.3:{}", target.port());
    let amb = Ambassador::serve(&["-v"], &[(&name, &value), ("DB_NAME", "/me/localhost")], 1);
    let got = round_trip(connect(("127.0.0.1", port)), b"via alias".to_vec()).unwrap();
    assert_eq!(got, b"via alias");
    assert!(
        !amb.stderr().contains("failed"),
        "alias not used first:\n{}",
        amb.stderr()
    );
}

#[test]
fn docker_link_falls_back_to_the_address_when_the_alias_fails() {
    let target = server_on("127.0.0.2:0", echo);
    let port = free_port();
    let name = format!("DB_PORT_{port}_TCP");
    let value = format!("tcp://{target}");
    let amb = Ambassador::serve(&[], &[(&name, &value), ("DB_NAME", "/me/localhost")], 1);
    let got = round_trip(connect(("127.0.0.1", port)), b"via address".to_vec()).unwrap();
    assert_eq!(got, b"via address");
    let alias_failed = format!("target localhost:{} failed", target.port());
    assert!(amb.stderr().contains(&alias_failed), "{}", amb.stderr());
}

#[test]
fn redis_cli_ping_through_the_ambassador_gets_pong() {
    let (_redis, redis_port) = redis_server();
    let (_amb, addr) = forwarder(SocketAddr::from(([127, 0, 0, 1], redis_port)), &[]);
    assert_eq!(redis_cli(addr.port(), &["PING"], None), "PONG");
}

#[test]
fn redis_large_value_and_pipeline_through_two_ambassadors_in_a_row() {
    // client -> ambassador -> ambassador -> redis, as in the two-host demo.
    let (_redis, redis_port) = redis_server();
    let (_far, far) = forwarder(SocketAddr::from(([127, 0, 0, 1], redis_port)), &[]);
    let (_near, near) = forwarder(far, &[]);
    let value: String = payload(2 << 20, 9)
        .iter()
        .map(|b| (b'a' + b % 26) as char)
        .collect();
    assert_eq!(
        redis_cli(near.port(), &["-x", "SET", "big"], Some(value.as_bytes())),
        "OK"
    );
    assert_eq!(
        redis_cli(near.port(), &["STRLEN", "big"], None),
        value.len().to_string()
    );
    let got = redis_cli(near.port(), &["GET", "big"], None);
    assert!(
        got == value,
        "GET returned {} bytes, want {}",
        got.len(),
        value.len()
    );
    let pipeline: String = (0..2000)
        .map(|i| format!("INCR counter{}\n", i % 7))
        .collect();
    let out = redis_cli(near.port(), &[], Some(pipeline.as_bytes()));
    assert_eq!(out.lines().count(), 2000);
    assert_eq!(redis_cli(near.port(), &["GET", "counter0"], None), "286");
}

#[test]
fn a_connection_quiet_for_longer_than_the_accept_timeout_stays_open() {
    // Accepted sockets inherit the listener's 2 s accept timeout; the
    // ambassador must clear it, not take it for an idle tick.
    let (amb, addr) = forwarder(echo_server(), &["-v"]);
    let mut c = connect(addr);
    let mut b = [0u8; 1];
    c.write_all(b"a").unwrap();
    c.read_exact(&mut b).unwrap();
    thread::sleep(Duration::from_millis(2700)); // the behaviour: quiet past the 2 s
    c.write_all(b"b").unwrap();
    c.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"b");
    assert!(!amb.stderr().contains("aborted"), "{}", amb.stderr());
}

/// TCP_NODELAY of every established TCP socket of process `pid`, read from
/// a duplicate of each descriptor (pidfd_getfd, Linux 5.6+; needs root or
/// ptrace rights): the socket's local and remote ports and the option.
fn nodelay_of(pid: u32) -> Vec<(u16, u16, bool)> {
    let script = r#"
import ctypes, os, socket, struct, sys
pid = int(sys.argv[1])
libc = ctypes.CDLL(None, use_errno=True)
pidfd = os.pidfd_open(pid)
for name in os.listdir(f"/proc/{pid}/fd"):
    if not os.readlink(f"/proc/{pid}/fd/{name}").startswith("socket:"):
        continue
    fd = libc.syscall(438, pidfd, int(name), 0)  # pidfd_getfd
    if fd < 0:
        continue
    s = socket.socket(fileno=fd)
    try:
        if s.type == socket.SOCK_STREAM and s.family in (socket.AF_INET, socket.AF_INET6):
            peer = s.getpeername()
            on = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            print(s.getsockname()[1], peer[1], on)
    except OSError:
        pass
    finally:
        s.detach()
        os.close(fd)
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script, &pid.to_string()])
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f[0].parse().unwrap(), f[1].parse().unwrap(), f[2] != "0")
        })
        .collect()
}

#[test]
fn both_sockets_of_a_connection_have_tcp_nodelay() {
    let target = echo_server();
    let (amb, addr) = forwarder(target, &[]);
    let mut c = connect(addr);
    c.write_all(b"x").unwrap();
    let mut b = [0u8; 1];
    c.read_exact(&mut b).unwrap();
    let client_port = c.local_addr().unwrap().port();
    let sockets = nodelay_of(amb.pid());
    let client_side = sockets.iter().find(|(_, peer, _)| *peer == client_port);
    let target_side = sockets.iter().find(|(_, peer, _)| *peer == target.port());
    assert_eq!(
        client_side.map(|s| s.2),
        Some(true),
        "client side: {sockets:?}"
    );
    assert_eq!(
        target_side.map(|s| s.2),
        Some(true),
        "target side: {sockets:?}"
    );
}

#[test]
fn a_target_reset_while_the_client_streams_is_never_taken_for_a_clean_end() {
    // The kernel reports a reset's error once: the copier writing to the
    // target may take it, and the one reading from it then sees a plain
    // end of stream, which must not be passed on as one (a half-close
    // before the reset). The closing lines say how each connection ended.
    let target = server(|s| {
        let mut buf = [0u8; 1024];
        let _ = (&s).read(&mut buf);
        reset_on_drop(&s);
    });
    let (amb, addr) = forwarder(target, &["-v"]);
    let chunk = vec![7u8; 64 * 1024];
    for _ in 0..200 {
        let client = connect(addr);
        let mut writer = client.try_clone().unwrap();
        let chunk = chunk.clone();
        let streaming = thread::spawn(move || while writer.write_all(&chunk).is_ok() {});
        let _ = (&client).read_to_end(&mut Vec::new());
        drop(client);
        streaming.join().unwrap();
    }
    let all_closed = || amb.stderr().matches(": closed after").count() == 200;
    assert!(wait_until(IO_TIMEOUT, all_closed), "{}", amb.stderr());
    let log = amb.stderr();
    let closed: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(": closed after"))
        .collect();
    let taken = closed
        .iter()
        .filter(|l| l.ends_with("aborted: target reset"))
        .count();
    eprintln!(
        "{} connections, {taken} whose reset the writing copier took first",
        closed.len()
    );
    for line in &closed {
        assert!(
            !line.contains("(after target closed)"),
            "a reset taken for an end: {line}"
        );
        assert!(line.contains("aborted: target"), "{line}");
    }
}
