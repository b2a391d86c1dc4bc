//! Running it in production: --drain on SIGTERM/SIGINT, --allow, the
//! per-rule counters on SIGUSR1 and at exit, and the threads' scheduling
//! policy. Real binary, real sockets;
//! clients that seem to come from another host bind 127.0.0.2.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::Ordering;
use std::thread;
use std::time::Duration;

use common::*;

/// A server that sends `total` bytes of payload(seed 11) over about a
/// second, in 64 KiB pieces, then closes.
fn slow_sender(total: usize) -> SocketAddr {
    server(move |mut s| {
        let data = payload(total, 11);
        let pieces = total.div_ceil(65536);
        for chunk in data.chunks(65536) {
            if s.write_all(chunk).is_err() {
                return;
            }
            thread::sleep(Duration::from_millis(1000 / pieces as u64));
        }
    })
}

/// A client from `from` is reset: at once (the reset may beat the end of
/// the handshake on loopback) or at its first read.
fn assert_reset_from(from: &str, to: SocketAddr) {
    assert_eq!(end_from(from, to, b""), Err(ErrorKind::ConnectionReset));
}

#[test]
fn drain_lets_a_transfer_in_flight_finish_refuses_new_clients_and_exits_0() {
    let total = 8 << 20;
    let target = slow_sender(total);
    let port = free_port();
    let mut amb = Ambassador::serve(
        &[&format!("127.0.0.1:{port}:{target}"), "--drain", "10"],
        &[],
        1,
    );
    let mut client = connect(local(port));
    let mut first = [0u8; 1];
    client.read_exact(&mut first).unwrap();
    amb.signal("TERM");
    assert!(
        amb.wait_for_log("stopped listening", Duration::from_secs(5)),
        "{}",
        amb.stderr()
    );
    let refused = TcpStream::connect(local(port)).map(|_| ()).unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::ConnectionRefused);
    let mut got = first.to_vec();
    got.extend(read_end(&mut client).expect("the whole transfer, then EOF"));
    assert!(
        got == payload(total, 11),
        "{} bytes, want {total}",
        got.len()
    );
    // A client that has its whole reply closes, as redis-cli or curl would.
    drop(client);
    let status = amb
        .wait_exit(Duration::from_secs(10))
        .expect("exit after the drain");
    assert_eq!(status.code(), Some(0), "{}", amb.stderr());
    amb.expect_log("1 open at SIGTERM, 1 finished, 0 reset");
}

/// An ambassador with `--drain SECS` in front of an echo server, and one
/// client connection through it that has had an answer and stays open.
fn draining_with_one_open(secs: &str) -> (Ambassador, TcpStream) {
    let target = echo_server();
    let port = free_port();
    let amb = Ambassador::serve(
        &[&format!("127.0.0.1:{port}:{target}"), "--drain", secs],
        &[],
        1,
    );
    let mut client = connect(local(port));
    client.write_all(b"x").unwrap();
    let mut b = [0u8; 1];
    client.read_exact(&mut b).unwrap();
    (amb, client)
}

#[test]
fn drain_resets_what_is_still_open_at_the_limit() {
    let (mut amb, mut client) = draining_with_one_open("0.5");
    amb.signal("INT");
    assert_eq!(read_end(&mut client), Err(ErrorKind::ConnectionReset));
    let status = amb.wait_exit(Duration::from_secs(10)).expect("exit");
    assert_eq!(status.code(), Some(0));
    amb.expect_log("1 open at SIGINT, 0 finished, 1 reset");
}

#[test]
fn a_second_signal_ends_the_drain_at_once() {
    let (mut amb, mut client) = draining_with_one_open("60");
    amb.signal("TERM");
    assert!(amb.wait_for_log("stopped listening", Duration::from_secs(5)));
    amb.signal("TERM");
    // Far below the 60 s drain: the second signal ended it.
    let status = amb
        .wait_exit(Duration::from_secs(10))
        .expect("exit at once");
    assert_eq!(status.code(), Some(0));
    assert!(
        amb.stderr().contains("received SIGTERM again"),
        "{}",
        amb.stderr()
    );
    assert_eq!(read_end(&mut client), Err(ErrorKind::ConnectionReset));
}

#[test]
fn drain_with_nothing_open_exits_at_once() {
    let target = echo_server();
    let port = free_port();
    let mut amb = Ambassador::serve(
        &[&format!("127.0.0.1:{port}:{target}"), "--drain", "60"],
        &[],
        1,
    );
    amb.signal("TERM");
    let status = amb
        .wait_exit(Duration::from_secs(10))
        .expect("exit at once");
    assert_eq!(status.code(), Some(0));
    amb.expect_log("0 open at SIGTERM, 0 finished, 0 reset");
}

/// An ambassador listening on `listen_host` with `--allow ranges`, in
/// front of a server that counts its connections; and the port.
fn allowing(listen_host: &str, ranges: &str) -> (Ambassador, CountingServer, u16) {
    let target = counting_echo_server();
    let port = free_port();
    let rule = format!("{listen_host}:{port}:{}", target.addr);
    let amb = Ambassador::serve(&[&rule, "--allow", ranges], &[], 1);
    (amb, target, port)
}

#[test]
fn allow_serves_one_source_address_and_resets_another_without_touching_the_target() {
    let (_amb, target, port) = allowing("127.0.0.1", "127.0.0.2");
    assert_reset_from("127.0.0.1", local(port));
    let allowed = connect_from("127.0.0.2", local(port)).unwrap();
    assert_eq!(round_trip(allowed, b"hello".to_vec()).unwrap(), b"hello");
    assert_eq!(target.accepted.load(Ordering::SeqCst), 1);
}

#[test]
fn ipv4_clients_on_a_dual_stack_listener_match_ipv4_ranges() {
    let (_amb, target, port) = allowing("[::]", "10.0.0.0/8,127.0.0.2/32");
    let allowed = connect_from("127.0.0.2", local(port)).unwrap();
    assert_eq!(round_trip(allowed, b"mapped".to_vec()).unwrap(), b"mapped");
    assert_reset_from("127.0.0.1", local(port));
    assert_eq!(target.accepted.load(Ordering::SeqCst), 1);
}

#[test]
fn malformed_allow_ranges_exit_2_naming_the_range() {
    for range in ["10.0.0.0/33", "x", "10.0.0.1/8", "", "1.2.3.4,", "[::1]"] {
        let out = run(&["--check", "--allow", range, "1:a:1"], &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{range}: {err}");
        assert!(
            err.contains(&format!("--allow {range:?}")),
            "{range}: {err}"
        );
    }
}

#[test]
fn counters_on_sigusr1_and_at_exit_show_exactly_the_mix() {
    let target = echo_server();
    let refused = refused_addr();
    let (p1, p2) = (free_port(), free_port());
    let served_rule = format!("127.0.0.1:{p1}:{target}");
    let failed_rule = format!("127.0.0.1:{p2}:{refused}");
    let mut amb = Ambassador::serve(
        &[&served_rule, &failed_rule, "--allow", "127.0.0.2"],
        &[],
        2,
    );
    for i in 0..3 {
        let c = connect_from("127.0.0.2", local(p1)).unwrap();
        assert_eq!(round_trip(c, payload(1000, i)).unwrap(), payload(1000, i));
    }
    for _ in 0..2 {
        assert_reset_from("127.0.0.1", local(p1));
    }
    assert_reset_from("127.0.0.2", local(p2));
    let want_served = format!(
        "rule {served_rule}: open 0, served 3, denied 2, no target 0, bytes up 3000, bytes down 3000"
    );
    let want_failed = format!(
        "rule {failed_rule}: open 0, served 0, denied 0, no target 1, bytes up 0, bytes down 0"
    );
    // The last connection's close may trail its client's EOF by a moment;
    // the failed rule's line is final (counted before the client's reset).
    amb.expect_counters(&want_served);
    amb.expect_log(&want_failed);
    let before_exit = amb.stderr().matches(&want_served).count();
    amb.signal("TERM");
    assert_eq!(
        amb.wait_exit(Duration::from_secs(10)).unwrap().code(),
        Some(0)
    );
    assert_eq!(
        amb.stderr().matches(&want_served).count(),
        before_exit + 1,
        "the same line at exit: {}",
        amb.stderr()
    );
}

/// Every thread runs under SCHED_BATCH (a woken copier does not preempt the
/// program that sent it the bytes): the first, the accepting threads, both
/// copiers of a connection and the UDP threads. A policy given by whoever
/// starts it (here chrt --idle, which needs no privilege) is kept.
#[test]
fn threads_run_under_sched_batch_unless_started_under_another_policy() {
    const SCHED_BATCH: u32 = 3;
    const SCHED_IDLE: u32 = 5;
    let chrt = require("chrt", "util-linux");
    let (rules, udp_port, port) = udp_and_tcp_echo_rules();
    let args: Vec<&str> = rules.iter().map(String::as_str).collect();
    for (wrapper, want) in [(&[][..], SCHED_BATCH), (&["--idle", "0"][..], SCHED_IDLE)] {
        let amb = match wrapper {
            [] => Ambassador::serve(&args, &[], 2),
            _ => {
                let mut under = vec![chrt.to_str().unwrap()];
                under.extend_from_slice(wrapper);
                Ambassador::serve_under(&under, &args, 2)
            }
        };
        let mut client = connect(local(port));
        ping(&mut client, b'p');
        let udp_client = udp_client(local(udp_port));
        assert_eq!(udp_round_trip(&udp_client, b"u").unwrap(), b"u");
        let policies = amb.thread_policies();
        // main, signals or metrics aside: at least the acceptor, a copier and the UDP threads.
        assert!(policies.len() >= 4, "{policies:?}");
        assert!(
            policies.iter().all(|&p| p == want),
            "under {wrapper:?}: policies {policies:?}, want {want} for all"
        );
    }
}
