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

/// The receive thread takes every datagram that waits in one system call
/// (recvmmsg): in a burst from several clients, interleaved, each datagram
/// keeps its own bytes, sender and arrival address.
#[test]
fn an_interleaved_burst_from_several_clients_keeps_each_datagram_its_own() {
    let echo = udp_server(b"");
    let (_amb, port) = udp_forwarder("0.0.0.0", &echo.to_string(), &[]);
    // Each client connected to its own loopback address: a reply from any
    // other address, or another client's reply, would not reach it.
    let clients: Vec<UdpSocket> = (2..8)
        .map(|i| udp_client((format!("127.0.0.{i}").as_str(), port)))
        .collect();
    for c in &clients {
        assert_eq!(udp_round_trip(c, b"warm").unwrap(), b"warm");
    }
    let sent = |client: usize, n: usize| {
        payload(
            if n == 7 { 60_000 } else { 10 + n },
            (client * 100 + n) as u64,
        )
    };
    for n in 0..30 {
        for (i, c) in clients.iter().enumerate() {
            c.send(&sent(i, n)).unwrap();
        }
    }
    let mut buf = vec![0u8; 65_536];
    for (i, c) in clients.iter().enumerate() {
        for n in 0..30 {
            let got = c.recv(&mut buf).expect("a reply");
            assert!(
                buf[..got] == sent(i, n)[..],
                "client {i}, datagram {n}: not its own"
            );
        }
    }
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

/// A DNS server on 127.53.X.Y:53 (an address of its own on loopback) that
/// answers A queries with 127.0.0.1 (AAAA with no address), each after
/// `delay`; a resolv.conf that names it. Kept alive by the returned socket.
fn slow_dns(delay: Duration) -> (std::net::UdpSocket, TempDir) {
    let n = std::process::id();
    let ip = format!("127.53.{}.{}", (n >> 8) % 250 + 1, n % 250 + 1);
    let socket =
        std::net::UdpSocket::bind((ip.as_str(), 53)).expect("bind a DNS port (needs root)");
    let serving = socket.try_clone().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((n, from)) = serving.recv_from(&mut buf) {
            let query = buf[..n].to_vec();
            let answering = serving.try_clone().unwrap();
            std::thread::spawn(move || {
                std::thread::sleep(delay); // the behaviour: a slow resolver
                if let Some(reply) = dns_answer(&query) {
                    let _ = answering.send_to(&reply, from);
                }
            });
        }
    });
    let dir = TempDir::new();
    let conf = format!("nameserver {ip}\noptions timeout:15 attempts:1\n");
    std::fs::write(dir.path("resolv.conf"), conf).unwrap();
    (socket, dir)
}

/// The answer to one DNS question: 127.0.0.1 for type A, nothing for others.
fn dns_answer(query: &[u8]) -> Option<Vec<u8>> {
    let mut at = 12;
    while *query.get(at)? != 0 {
        at += 1 + query[at] as usize;
    }
    let question_end = at + 5;
    let qtype = u16::from_be_bytes([*query.get(at + 1)?, *query.get(at + 2)?]);
    let answers: u16 = if qtype == 1 { 1 } else { 0 };
    let mut reply = query[..2].to_vec();
    reply.extend_from_slice(&[0x81, 0x80, 0, 1]);
    reply.extend_from_slice(&answers.to_be_bytes());
    reply.extend_from_slice(&[0, 0, 0, 0]);
    reply.extend_from_slice(query.get(12..question_end)?);
    if answers == 1 {
        reply.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 127, 0, 0, 1]);
    }
    Some(reply)
}

#[test]
fn a_slow_resolver_stalls_no_other_client() {
    let (_dns, dir) = slow_dns(Duration::from_secs(3));
    let echo = udp_server(b"");
    let port = free_udp_port();
    let rule = format!("127.0.0.1:{port}:slow.ambassador.test:{}/udp", echo.port());
    let amb = Ambassador::start_with_resolver(
        std::path::Path::new(&dir.path("resolv.conf")),
        &["-v", &rule],
    );
    amb.expect_log("listening on");
    // A's session: its first reply comes once the name resolved (3 s).
    let a = udp_client(local(port));
    assert_eq!(udp_round_trip(&a, b"a0").unwrap(), b"a0");
    // B and C open sessions, each resolving for 3 s on its own thread;
    // C sends three datagrams at once, which wait for it in order.
    let b = udp_client(local(port));
    b.send(b"b0").unwrap();
    let c = udp_client(local(port));
    for d in [b"c0", b"c1", b"c2"] {
        c.send(d).unwrap();
    }
    // Meanwhile A's round trips keep their pace: each within 500 ms.
    a.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut took = Vec::new();
    for i in 1..=20u8 {
        let sent = [b'a', i];
        let started = std::time::Instant::now();
        assert_eq!(
            udp_round_trip(&a, &sent).unwrap(),
            sent,
            "round trip {i} during B's resolve"
        );
        took.push(started.elapsed());
    }
    took.sort();
    // For the record (cargo test -- --nocapture); the bound is the 500 ms above.
    eprintln!(
        "A's round trips while B resolved: median {:?}, max {:?}",
        took[10], took[19]
    );
    b.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(
        b.recv(&mut buf).map_err(|e| e.kind()),
        Err(std::io::ErrorKind::WouldBlock),
        "B's name resolved already: the test proves nothing"
    );
    b.set_nonblocking(false).unwrap();
    b.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let n = b.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"b0");
    for want in [b"c0", b"c1", b"c2"] {
        let n = c.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], want);
    }
}

#[test]
fn a_client_outside_allow_is_dropped_and_counted() {
    let echo = udp_server(b"");
    let (amb, port) = udp_forwarder("127.0.0.1", &echo.to_string(), &["--allow", "127.0.0.2"]);
    let outside = udp_client(local(port));
    outside
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    assert!(udp_round_trip(&outside, b"let me in").is_err());
    let inside = std::net::UdpSocket::bind("127.0.0.2:0").unwrap();
    inside.connect(local(port)).unwrap();
    inside.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    assert_eq!(udp_round_trip(&inside, b"hello").unwrap(), b"hello");
    amb.expect_counters("open 1, served 1, denied 1, no target 0");
}

#[test]
fn a_session_whose_every_target_refuses_ends_as_no_target() {
    let refused = || format!("127.0.0.1:{}", free_udp_port());
    let targets = format!("{},{}", refused(), refused());
    let (amb, port) = udp_forwarder("127.0.0.1", &targets, &[]);
    let (threads, fds) = (amb.threads(), amb.fds());
    let client = udp_client(local(port));
    client
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    // Each datagram draws a port unreachable, which moves the session on;
    // later ones may open another session, which ends the same way.
    for _ in 0..5 {
        let _ = udp_round_trip(&client, b"anyone?");
    }
    amb.expect_log("no target answered; ending the session of");
    amb.expect_counter_line("no target counted", |line| {
        line.contains(", no target ") && !line.contains(", no target 0,")
    });
    assert!(
        amb.stderr().contains("refused (port unreachable"),
        "{}",
        amb.stderr()
    );
    amb.assert_settles_to(threads, fds);
}

#[test]
fn a_drain_ends_udp_sessions_at_once_while_tcp_drains() {
    let (rules, udp_port, tcp_port) = udp_and_tcp_echo_rules();
    let mut amb = Ambassador::serve(&["--drain", "10", &rules[0], &rules[1]], &[], 2);
    let client = udp_client(local(udp_port));
    assert_eq!(udp_round_trip(&client, b"u").unwrap(), b"u");
    let mut tcp = connect(local(tcp_port));
    ping(&mut tcp, b't');
    amb.signal("TERM");
    // One TCP connection is drained; the UDP session does not count.
    amb.expect_log("draining 1 open connection(s)");
    client
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    assert!(
        udp_round_trip(&client, b"u2").is_err(),
        "the UDP rule still answered in the drain"
    );
    ping(&mut tcp, b'2');
    drop(tcp);
    assert_eq!(amb.wait_exit(IO_TIMEOUT).and_then(|s| s.code()), Some(0));
    amb.expect_log("1 open at SIGTERM, 1 finished, 0 reset");
}

#[test]
fn a_thousand_datagrams_back_to_back_come_back_in_order() {
    let echo = udp_server(b"");
    let (amb, port) = udp_forwarder("127.0.0.1", &echo.to_string(), &[]);
    let client = udp_client(local(port));
    let _ = socket2::SockRef::from(&client).set_recv_buffer_size(4 << 20);
    assert_eq!(udp_round_trip(&client, b"warm").unwrap(), b"warm");
    // Replies are read as they come, and the client's buffer is large: what
    // is measured is the ambassador's two hops.
    let reading = client.try_clone().unwrap();
    let reader = std::thread::spawn(move || {
        let mut got = Vec::with_capacity(1000);
        let mut buf = [0u8; 16];
        while got.len() < 1000 {
            match reading.recv(&mut buf) {
                Ok(4) => got.push(u32::from_be_bytes(buf[..4].try_into().unwrap())),
                Ok(n) => panic!("a reply of {n} bytes"),
                Err(_) => break,
            }
        }
        got
    });
    for i in 0..1000u32 {
        client.send(&i.to_be_bytes()).unwrap();
    }
    let got = reader.join().unwrap();
    let drops: Vec<String> = std::fs::read_to_string("/proc/net/udp")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter(|l| l.split_whitespace().last().is_some_and(|d| d != "0"))
        .map(|l| {
            l.split_whitespace()
                .take(3)
                .chain(l.split_whitespace().last())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let ports = format!(
        "client {}, ambassador {port}, echo {echo}",
        client.local_addr().unwrap()
    );
    assert_eq!(
        got.len(),
        1000,
        "{} of 1,000 came back ({ports}); sockets that dropped: {drops:?}",
        got.len()
    );
    drop(amb);
    assert!(got.iter().copied().eq(0..1000), "out of order: {got:?}");
}

#[test]
fn tcp_connections_and_udp_sessions_share_one_cap() {
    let (rules, udp_port, tcp_port) = udp_and_tcp_echo_rules();
    let amb = Ambassador::serve(&["--max-conns", "2", &rules[0], &rules[1]], &[], 2);
    let mut tcp = connect(local(tcp_port));
    ping(&mut tcp, b't');
    let first = udp_client(local(udp_port));
    assert_eq!(udp_round_trip(&first, b"1").unwrap(), b"1");
    // TCP 1 + UDP 1 = the cap: a second session is refused.
    let second = udp_client(local(udp_port));
    second
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    assert!(udp_round_trip(&second, b"2").is_err());
    amb.expect_counters("over cap 1");
    drop(tcp);
    // Until the TCP connection is closed, a datagram that would open a
    // session is dropped: the 300 ms read timeout set above retries it.
    let freed = wait_until(IO_TIMEOUT, || {
        udp_round_trip(&second, b"3").is_ok_and(|r| r == b"3")
    });
    assert!(
        freed,
        "the TCP connection's slot never went to the UDP client"
    );
}

#[test]
fn a_session_kept_alive_by_replies_alone_is_not_expired() {
    // On a client's datagram the target replies every 200 ms for 3 s.
    let target = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let target_addr = target.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        if let Ok((_, from)) = target.recv_from(&mut buf) {
            for i in 0..15u8 {
                let _ = target.send_to(&[i], from);
                // The behaviour: replies alone, spaced, keep the session alive.
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    });
    let (amb, port) = udp_forwarder(
        "127.0.0.1",
        &target_addr.to_string(),
        &["--udp-timeout", "1", "-v"],
    );
    let client = udp_client(local(port));
    client.send(b"start").unwrap();
    let mut buf = [0u8; 4];
    for i in 0..15u8 {
        let n = client
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("reply {i}: {e}"));
        assert_eq!(&buf[..n], [i], "reply {i}");
    }
    // When the replies stop, the session expires after its second.
    amb.expect_log("UDP session closed after");
    amb.expect_log("15 datagrams (15 bytes) down, idle for 1.000s");
}
