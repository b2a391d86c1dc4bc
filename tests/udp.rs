//! UDP rules against real sockets and a real DNS server (dnsmasq, dig):
//! datagram sizes and boundaries, many clients at once, replies from the
//! address the client wrote to, session expiry, failover on a refusal,
//! --max-conns, a TCP and a UDP rule on one port, and two ambassadors in a
//! row as in the two-host demo.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::thread;
use std::time::Duration;

use common::*;

/// An ambassador with one UDP rule from `listen` to `targets`; its port.
fn udp_forwarder(listen: &str, targets: &str, extra: &[&str]) -> (Ambassador, u16) {
    let port = free_udp_port();
    let rule = format!("{listen}:{port}:{targets}/udp");
    let mut args = vec![rule.as_str()];
    args.extend_from_slice(extra);
    (Ambassador::serve(&args, &[], 1), port)
}

#[test]
fn datagrams_of_every_size_come_back_whole() {
    let echo = udp_server(b"");
    let (_amb, port) = udp_forwarder("127.0.0.1", &echo.to_string(), &[]);
    let client = udp_client(local(port));
    for size in [0, 1, 1472, 8192, 65_507] {
        let data = payload(size, size as u64);
        let got = udp_round_trip(&client, &data).unwrap();
        assert!(got == data, "{size} bytes sent, {} came back", got.len());
    }
}

#[test]
fn fifty_clients_at_once_each_get_only_their_own_replies() {
    let echo = udp_server(b"");
    let (_amb, port) = udp_forwarder("127.0.0.1", &echo.to_string(), &[]);
    let clients: Vec<_> = (0..50u64)
        .map(|i| {
            thread::spawn(move || {
                let client = udp_client(local(port));
                for round in 0..20u64 {
                    let data = payload(100 + (i as usize), i * 1000 + round);
                    let got = udp_round_trip(&client, &data).expect("a reply");
                    assert!(got == data, "client {i} round {round}: not its own reply");
                }
            })
        })
        .collect();
    for c in clients {
        c.join().expect("client thread");
    }
}

#[test]
fn a_wildcard_listener_answers_from_the_address_the_client_wrote_to() {
    let echo = udp_server(b"");
    let (_amb, port) = udp_forwarder("0.0.0.0", &echo.to_string(), &[]);
    // A socket connected to 127.0.0.2 accepts datagrams from 127.0.0.2 only.
    let client = udp_client(("127.0.0.2", port));
    assert_eq!(
        udp_round_trip(&client, b"who answers?").unwrap(),
        b"who answers?"
    );
}

#[test]
fn an_ipv6_wildcard_listener_answers_ipv4_and_ipv6_clients() {
    let echo = udp_server(b"");
    let (_amb, port) = udp_forwarder("[::]", &echo.to_string(), &[]);
    let v4 = udp_client(("127.0.0.2", port));
    assert_eq!(udp_round_trip(&v4, b"v4").unwrap(), b"v4");
    let v6 = UdpSocket::bind("[::1]:0").expect("this host needs an IPv6 loopback (::1)");
    v6.connect(("::1", port)).unwrap();
    v6.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    assert_eq!(udp_round_trip(&v6, b"v6").unwrap(), b"v6");
}

#[test]
fn an_expired_session_gives_back_its_thread_and_socket() {
    let echo = udp_server(b"");
    let (amb, port) = udp_forwarder(
        "127.0.0.1",
        &echo.to_string(),
        &["--udp-timeout", "0.3", "-v"],
    );
    let (threads, fds) = (amb.threads(), amb.fds());
    let clients: Vec<UdpSocket> = (0..5).map(|_| udp_client(local(port))).collect();
    for c in &clients {
        assert_eq!(udp_round_trip(c, b"x").unwrap(), b"x");
    }
    assert!(amb.fds() >= fds + 5, "a socket per session");
    assert!(
        amb.wait_for_log("idle for 0.300s", Duration::from_secs(5)),
        "{}",
        amb.stderr()
    );
    amb.assert_settles_to(threads, fds);
    // A client that comes back gets a new session.
    assert_eq!(udp_round_trip(&clients[0], b"again").unwrap(), b"again");
}

#[test]
fn a_refused_target_fails_over_to_the_next() {
    let refused = free_udp_port();
    let good = udp_server(b"second:");
    let targets = format!("127.0.0.1:{refused},{good}");
    let (amb, port) = udp_forwarder("127.0.0.1", &targets, &[]);
    let client = udp_client(local(port));
    client
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    // The first datagram meets a closed port; the client retries, as DNS
    // clients do, and the session has moved on by then.
    let mut reply = None;
    for _ in 0..20 {
        if let Ok(got) = udp_round_trip(&client, b"ping") {
            reply = Some(got);
            break;
        }
    }
    assert_eq!(
        reply.as_deref(),
        Some(&b"second:ping"[..]),
        "{}",
        amb.stderr()
    );
    let warning = format!("target 127.0.0.1:{refused} refused");
    assert!(amb.stderr().contains(&warning), "{}", amb.stderr());
}

#[test]
fn max_conns_caps_sessions_and_counts_the_dropped_datagrams() {
    let echo = udp_server(b"");
    let (amb, port) = udp_forwarder("127.0.0.1", &echo.to_string(), &["--max-conns", "2"]);
    let first = udp_client(local(port));
    let second = udp_client(local(port));
    assert_eq!(udp_round_trip(&first, b"1").unwrap(), b"1");
    assert_eq!(udp_round_trip(&second, b"2").unwrap(), b"2");
    let third = udp_client(local(port));
    third
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    assert!(
        udp_round_trip(&third, b"3").is_err(),
        "a third session was opened"
    );
    // The two sessions are still served.
    assert_eq!(udp_round_trip(&first, b"1").unwrap(), b"1");
    amb.signal("USR1");
    assert!(
        amb.wait_for_log("over cap 1", Duration::from_secs(5)),
        "{}",
        amb.stderr()
    );
}

#[test]
fn a_tcp_and_a_udp_rule_share_a_port() {
    let tcp_echo = echo_server();
    let udp_echo = udp_server(b"udp:");
    let port = free_port();
    let _amb = Ambassador::serve(
        &[
            &format!("127.0.0.1:{port}:{tcp_echo}"),
            &format!("127.0.0.1:{port}:{udp_echo}/udp"),
        ],
        &[],
        2,
    );
    assert_eq!(
        round_trip(connect(local(port)), b"tcp".to_vec()).unwrap(),
        b"tcp"
    );
    assert_eq!(
        udp_round_trip(&udp_client(local(port)), b"x").unwrap(),
        b"udp:x"
    );
}

#[test]
fn a_udp_link_variable_is_served() {
    let echo = udp_server(b"");
    let port = free_udp_port();
    let name = format!("DNS_PORT_{port}_UDP");
    let value = format!("udp://{echo}");
    let _amb = Ambassador::serve(&[], &[(&name, &value)], 1);
    assert_eq!(
        udp_round_trip(&udp_client(local(port)), b"linked").unwrap(),
        b"linked"
    );
}

#[test]
fn healthcheck_of_a_udp_rule() {
    let echo = udp_server(b"");
    let (_amb, port) = udp_forwarder("127.0.0.1", &echo.to_string(), &[]);
    let held = format!("127.0.0.1:{port}:{echo}/udp");
    let out = run(&["--healthcheck", &held], &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("is held") && text.contains("resolves to"),
        "{text}"
    );
    let free = format!("127.0.0.1:{}:{echo}/udp", free_udp_port());
    let out = run(&["--healthcheck", &free], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing holds"));
}

#[test]
fn dig_through_the_ambassador_gets_dnsmasq_s_answer() {
    let (_dns, dns_port) = dnsmasq();
    let (_amb, port) = udp_forwarder("127.0.0.1", &format!("127.0.0.1:{dns_port}"), &[]);
    assert_eq!(dig(port, "web.ambassador.test"), "192.0.2.10");
}

#[test]
fn dig_through_two_ambassadors_in_a_row() {
    let (_dns, dns_port) = dnsmasq();
    let (_far, far) = udp_forwarder("0.0.0.0", &format!("127.0.0.1:{dns_port}"), &[]);
    let far_addr = SocketAddr::from(([127, 0, 0, 1], far));
    let (_near, near) = udp_forwarder("127.0.0.1", &far_addr.to_string(), &[]);
    assert_eq!(dig(near, "web.ambassador.test"), "192.0.2.10");
}
