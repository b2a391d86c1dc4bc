//! Peers that misbehave and limits: refused and silent targets, failover,
//! --max-conns across rules, --idle-timeout in its three forms, and running
//! out of file descriptors. The ambassador must keep serving through all.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::thread;
use std::time::Duration;

use common::*;

#[test]
fn refused_target_resets_the_client_and_warns_and_serving_goes_on() {
    let refused = refused_addr();
    let good = echo_server();
    let (p1, p2) = (free_port(), free_port());
    let amb = Ambassador::serve(
        &[
            &format!("127.0.0.1:{p1}:{refused}"),
            &format!("127.0.0.1:{p2}:{good}"),
        ],
        &[],
        2,
    );
    for _ in 0..3 {
        let mut client = connect(local(p1));
        assert_eq!(read_end(&mut client), Err(ErrorKind::ConnectionReset));
    }
    let warning =
        format!("rule 127.0.0.1:{p1}:{refused}: target {refused} failed: Connection refused");
    assert!(amb.stderr().contains(&warning), "{}", amb.stderr());
    assert!(
        amb.stderr().contains("no target answered"),
        "{}",
        amb.stderr()
    );
    ping(&mut connect(local(p2)), b'p');
    ping(&mut connect(local(p2)), b'p');
}

#[test]
fn silent_target_gives_up_after_the_connect_timeout() {
    let silent = silent_target();
    let port = free_port();
    let amb = Ambassador::serve(
        &[
            &format!("127.0.0.1:{port}:{}", silent.addr),
            "--connect-timeout",
            "0.3",
        ],
        &[],
        1,
    );
    let mut client = connect(local(port));
    // Bounded by the 10 s socket timeout, not by a timing assertion.
    assert_eq!(read_end(&mut client), Err(ErrorKind::ConnectionReset));
    assert!(amb.stderr().contains("timed out"), "{}", amb.stderr());
}

#[test]
fn failover_uses_the_next_target_when_the_first_refuses() {
    let refused = refused_addr();
    let good = echo_server();
    let port = free_port();
    let amb = Ambassador::serve(&[&format!("127.0.0.1:{port}:{refused},{good}")], &[], 1);
    let got = round_trip(connect(local(port)), payload(100_000, 4)).unwrap();
    assert!(got == payload(100_000, 4));
    assert!(
        amb.stderr().contains(&format!("target {refused} failed")),
        "{}",
        amb.stderr()
    );
}

#[test]
fn failover_after_a_silent_first_target() {
    let silent = silent_target();
    let good = echo_server();
    let port = free_port();
    let _amb = Ambassador::serve(
        &[
            &format!("127.0.0.1:{port}:{},{good}", silent.addr),
            "--connect-timeout",
            "0.2",
        ],
        &[],
        1,
    );
    ping(&mut connect(local(port)), b'p');
}

#[test]
fn target_that_comes_back_is_used_without_a_restart() {
    let port = free_port();
    let target_port = free_port();
    let _amb = Ambassador::serve(
        &[&format!("127.0.0.1:{port}:127.0.0.1:{target_port}")],
        &[],
        1,
    );
    let mut first = connect(local(port));
    assert!(read_end(&mut first).is_err());
    server_on(&format!("127.0.0.1:{target_port}"), echo);
    ping(&mut connect(local(port)), b'p');
}

#[test]
fn max_conns_holds_further_clients_until_one_closes() {
    let target = echo_server();
    let port = free_port();
    let _amb = Ambassador::serve(
        &[&format!("127.0.0.1:{port}:{target}"), "--max-conns", "2"],
        &[],
        1,
    );
    let mut a = connect(local(port));
    let mut b = connect(local(port));
    ping(&mut a, b'p');
    ping(&mut b, b'p');
    // The third completes its handshake in the backlog but is not relayed.
    let mut c = connect(local(port));
    c.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    c.write_all(b"p").unwrap();
    let mut buf = [0u8; 1];
    let err = c.read(&mut buf).unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{err}"
    );
    drop(a);
    c.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    c.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"p");
    ping(&mut b, b'p');
}

#[test]
fn max_conns_is_exact_when_a_burst_meets_several_accepting_threads() {
    // The target counts the connections open on it at once.
    let open = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (o, p) = (std::sync::Arc::clone(&open), std::sync::Arc::clone(&peak));
    let target = server(move |stream| {
        use std::sync::atomic::Ordering::SeqCst;
        p.fetch_max(o.fetch_add(1, SeqCst) + 1, SeqCst);
        // Counted closed before the echo ends, so the next client's open
        // (after this one's slot is freed) never overlaps it.
        let mut s = stream;
        let mut b = [0u8; 1];
        if s.read_exact(&mut b).is_ok() && s.write_all(&b).is_ok() {
            // The behaviour: each connection stays open a while, so clients overlap.
            thread::sleep(Duration::from_millis(100));
        }
        o.fetch_sub(1, SeqCst);
    });
    let port = free_port();
    let _amb = Ambassador::serve(
        &[&format!("127.0.0.1:{port}:{target}"), "--max-conns", "3"],
        &[],
        1,
    );
    // Warm up: served connections leave threads that accept again.
    for _ in 0..3 {
        ping(&mut connect(local(port)), b'p');
    }
    let clients: Vec<_> = (0..12)
        .map(|_| {
            thread::spawn(move || {
                let mut c = connect(local(port));
                ping(&mut c, b'p');
                // Wait for the target's end, so the slot is free before the next.
                let mut rest = Vec::new();
                c.read_to_end(&mut rest).unwrap();
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    let peak = peak.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(peak, 3, "at most 3 open at once, and the cap reached");
}

#[test]
fn max_conns_counts_all_rules_and_an_idle_listener_starves_no_other() {
    let target = echo_server();
    let (p1, p2, p3) = (free_port(), free_port(), free_port());
    let _amb = Ambassador::serve(
        &[
            &format!("127.0.0.1:{p1}:{target}"),
            &format!("127.0.0.1:{p2}:{target}"),
            &format!("127.0.0.1:{p3}:{target}"),
            "--max-conns",
            "1",
        ],
        &[],
        3,
    );
    // Rules 1 and 2 are idle; rule 3 must still get the only slot.
    let mut c = connect(local(p3));
    ping(&mut c, b'p');
    // Now the slot is taken: a client of rule 1 waits.
    let mut d = connect(local(p1));
    d.set_read_timeout(Some(Duration::from_millis(400)))
        .unwrap();
    d.write_all(b"p").unwrap();
    assert!(d.read(&mut [0u8; 1]).is_err(), "over the cap");
    drop(c);
    d.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut b = [0u8; 1];
    d.read_exact(&mut b).unwrap();
}

#[test]
fn idle_connection_is_closed_after_the_idle_timeout() {
    let target = echo_server();
    let port = free_port();
    let amb = Ambassador::serve(
        &[
            &format!("127.0.0.1:{port}:{target}"),
            "--idle-timeout",
            "0.3",
            "-v",
        ],
        &[],
        1,
    );
    let (threads, fds) = (amb.threads(), amb.fds());
    let mut c = connect(local(port));
    ping(&mut c, b'p');
    assert_eq!(read_end(&mut c), Err(ErrorKind::ConnectionReset));
    assert!(
        amb.wait_for_log("idle for 0.300s", Duration::from_secs(5)),
        "{}",
        amb.stderr()
    );
    amb.assert_settles_to(threads, fds);
}

#[test]
fn slow_but_moving_connection_outlives_the_idle_timeout() {
    let target = echo_server();
    let port = free_port();
    let amb = Ambassador::serve(
        &[
            &format!("127.0.0.1:{port}:{target}"),
            "--idle-timeout",
            "0.6",
            "-v",
        ],
        &[],
        1,
    );
    let mut c = connect(local(port));
    // 2.4 s in all, a byte every 0.2 s: four idle timeouts long, never idle.
    for _ in 0..12 {
        ping(&mut c, b'p');
        thread::sleep(Duration::from_millis(200)); // the behaviour: quiet, but not idle
    }
    ping(&mut c, b'p');
    // The connection was never cut: the ambassador logged no idle timeout,
    // and the client's end still reads nothing pending, no EOF or reset.
    assert!(!amb.stderr().contains("idle for"), "{}", amb.stderr());
    c.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut b = [0u8; 1];
    assert!(
        matches!(c.read(&mut b), Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut)
    );
}

#[test]
fn one_way_traffic_keeps_the_other_direction_alive() {
    // The client only sends; the direction back moves nothing. Progress is
    // counted across both directions, so the connection stays open.
    let target = server(|mut s| {
        let n = read_end(&mut s).map_or(0, |got| got.len());
        let _ = s.write_all(n.to_string().as_bytes());
    });
    let port = free_port();
    let _amb = Ambassador::serve(
        &[
            &format!("127.0.0.1:{port}:{target}"),
            "--idle-timeout",
            "0.5",
        ],
        &[],
        1,
    );
    let mut c = connect(local(port));
    for _ in 0..10 {
        c.write_all(&[0u8; 100]).unwrap();
        thread::sleep(Duration::from_millis(200)); // the behaviour: one way only
    }
    c.shutdown(Shutdown::Write).unwrap();
    let mut reply = String::new();
    c.read_to_string(&mut reply).unwrap();
    assert_eq!(reply, "1000");
}

#[test]
fn idle_timeout_fires_when_the_client_stops_reading() {
    // The target floods; the client never reads. The copier blocks in write,
    // and the idle timeout still frees the connection.
    let target = server(|mut s| {
        let chunk = vec![7u8; 65536];
        while s.write_all(&chunk).is_ok() {}
    });
    let port = free_port();
    let amb = Ambassador::serve(
        &[
            &format!("127.0.0.1:{port}:{target}"),
            "--idle-timeout",
            "0.5",
            "-v",
        ],
        &[],
        1,
    );
    let (threads, fds) = (amb.threads(), amb.fds());
    let c = connect(local(port));
    assert!(
        amb.wait_for_log("idle for 0.500s", Duration::from_secs(10)),
        "{}",
        amb.stderr()
    );
    amb.assert_settles_to(threads, fds);
    drop(c);
}

#[test]
fn idle_timeout_fires_on_a_half_closed_connection() {
    let target = server(|mut s| {
        let _ = read_end(&mut s);
        thread::sleep(Duration::from_secs(8)); // never answers in time
    });
    let port = free_port();
    let amb = Ambassador::serve(
        &[
            &format!("127.0.0.1:{port}:{target}"),
            "--idle-timeout",
            "0.4",
            "-v",
        ],
        &[],
        1,
    );
    let mut c = connect(local(port));
    c.write_all(b"request").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_end(&mut c), Err(ErrorKind::ConnectionReset));
    assert!(
        amb.wait_for_log("idle for 0.400s", Duration::from_secs(5)),
        "{}",
        amb.stderr()
    );
}

#[test]
fn running_out_of_descriptors_drops_connections_not_the_ambassador() {
    let target = echo_server();
    let port = free_port();
    // 3 std + 1 listener + a few spare: room for about two connections.
    let mut amb = Ambassador::start_with_nofile(9, &[&format!("127.0.0.1:{port}:{target}")]);
    amb.wait_for_listeners(1);
    let mut held: Vec<TcpStream> = Vec::new();
    for _ in 0..12 {
        let c = connect(local(port));
        c.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        held.push(c);
    }
    let mut served = 0;
    for c in held.iter_mut() {
        let _ = c.write_all(b"p");
        if matches!(c.read(&mut [0u8; 1]), Ok(1)) {
            served += 1;
        }
    }
    assert!((1..12).contains(&served), "served {served} of 12");
    assert!(
        amb.wait_for_log("Too many open files", Duration::from_secs(5)),
        "{}",
        amb.stderr()
    );
    assert!(amb.is_running());
    drop(held);
    // Once descriptors are free again, new clients are served.
    assert!(
        wait_until(Duration::from_secs(10), || {
            let mut c = connect(local(port));
            c.set_read_timeout(Some(Duration::from_millis(500)))
                .unwrap();
            c.write_all(b"p").is_ok() && matches!(c.read(&mut [0u8; 1]), Ok(1))
        }),
        "not serving after descriptors were freed: {}",
        amb.stderr()
    );
}
