//! The PROXY protocol against real peers: HAProxy's send-proxy and
//! send-proxy-v2 in front of --accept-proxy (logs and --allow see HAProxy's
//! client), --send-proxy v1 and v2 in front of nginx stream with
//! proxy_protocol (nginx answers with the real client), two ambassadors in a
//! chain; and a trusted peer that misbehaves: nothing, too slowly, too long,
//! malformed, 10,000 random headers, a header with 1 MiB right after it; an
//! untrusted client's header is only data.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::thread;
use std::time::Duration;

use common::*;

fn at(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// The client's bytes through `amb_port` and back from an echo target.
fn echo_through(from: &str, to: SocketAddr, data: &[u8]) -> (Vec<u8>, SocketAddr) {
    let c = connect_from(from, to).expect("connect");
    let me = c.local_addr().unwrap();
    (round_trip(c, data.to_vec()).expect("round trip"), me)
}

/// An ambassador accepting PROXY headers from 127.0.0.1, in front of an echo.
fn accepting(extra: &[&str]) -> (Ambassador, u16) {
    let port = free_port();
    let rule = format!("127.0.0.1:{port}:{}", echo_server());
    let args = [
        &["-v", "--accept-proxy", "127.0.0.1/32"][..],
        extra,
        &[rule.as_str()],
    ]
    .concat();
    (Ambassador::serve(&args, &[], 1), port)
}

fn behind_haproxy(option: &str) {
    let (amb, port) = accepting(&[]);
    let (_haproxy, front) = haproxy(at(port), option);
    let (got, me) = echo_through("127.0.0.2", at(front), b"the bytes, unchanged");
    assert_eq!(got, b"the bytes, unchanged");
    let seen = format!("{me} via 127.0.0.1:");
    amb.expect_log(&seen);
}

#[test]
fn haproxy_send_proxy_v1_reveals_its_client() {
    behind_haproxy("send-proxy");
}

#[test]
fn haproxy_send_proxy_v2_reveals_its_client() {
    behind_haproxy("send-proxy-v2");
}

#[test]
fn allow_judges_the_client_behind_haproxy_not_haproxy() {
    let (amb, port) = accepting(&["--allow", "127.0.0.3"]);
    let (_haproxy, front) = haproxy(at(port), "send-proxy-v2");
    // HAProxy (127.0.0.1) is trusted but not allowed: its clients are judged.
    let mut denied = connect_from("127.0.0.2", at(front)).unwrap();
    denied.write_all(b"x").unwrap();
    let _ = denied.shutdown(Shutdown::Write);
    assert_eq!(read_end(&mut denied).map(|v| v.len()), Ok(0));
    let (got, _) = echo_through("127.0.0.3", at(front), b"allowed");
    assert_eq!(got, b"allowed");
    assert!(amb.wait_for_log("127.0.0.2:", IO_TIMEOUT));
    assert!(
        amb.stderr().contains("is not allowed; reset"),
        "{}",
        amb.stderr()
    );
}

/// What nginx (proxy_protocol) answers through `args`' ambassador, for a
/// client bound to 127.0.0.2, and that client's address.
fn nginx_answer(front: u16) -> (String, SocketAddr) {
    let mut c = connect_from("127.0.0.2", at(front)).unwrap();
    let me = c.local_addr().unwrap();
    let answer = read_all(&mut c).expect("nginx's answer");
    (String::from_utf8_lossy(&answer).into_owned(), me)
}

#[test]
fn nginx_sees_the_real_client_through_send_proxy_v1_and_v2() {
    let (_nginx, nginx) = nginx_proxy_reporter();
    for version in ["v1", "v2"] {
        let port = free_port();
        let rule = format!("127.0.0.1:{port}:127.0.0.1:{nginx}");
        let _amb = Ambassador::serve(&["--send-proxy", version, &rule], &[], 1);
        let (answer, me) = nginx_answer(port);
        assert_eq!(answer, me.to_string(), "--send-proxy {version}");
    }
}

#[test]
fn the_client_survives_two_ambassadors_in_a_chain() {
    let (_nginx, nginx) = nginx_proxy_reporter();
    let far = free_port();
    let far_rule = format!("127.0.0.1:{far}:127.0.0.1:{nginx}");
    let far_args = [
        "-v",
        "--accept-proxy",
        "127.0.0.1/32",
        "--send-proxy",
        "v1",
        &far_rule,
    ];
    let far_amb = Ambassador::serve(&far_args, &[], 1);
    let near = free_port();
    let near_rule = format!("127.0.0.1:{near}:127.0.0.1:{far}");
    let _near_amb = Ambassador::serve(&["--send-proxy", "v2", &near_rule], &[], 1);
    let (answer, me) = nginx_answer(near);
    assert_eq!(answer, me.to_string());
    assert!(far_amb.wait_for_log(&format!("{me} via 127.0.0.1:"), IO_TIMEOUT));
}

#[test]
fn send_proxy_goes_to_whichever_target_answers_and_counts_no_byte() {
    let (_nginx, nginx) = nginx_proxy_reporter();
    let port = free_port();
    let rule = format!("127.0.0.1:{port}:{},127.0.0.1:{nginx}", refused_addr());
    let amb = Ambassador::serve(&["--send-proxy", "v2", &rule], &[], 1);
    let (answer, me) = nginx_answer(port);
    assert_eq!(answer, me.to_string());
    amb.expect_counters(&format!("bytes up 0, bytes down {}", answer.len()));
}

#[test]
fn a_unix_client_is_sent_as_unknown_or_local() {
    let dir = TempDir::new();
    let front = dir.path("front.sock");
    for (version, header) in [
        ("v1", b"PROXY UNKNOWN\r\n".to_vec()),
        (
            "v2",
            [&b"\r\n\r\n\0\r\nQUIT\n"[..], &[0x20, 0, 0, 0]].concat(),
        ),
    ] {
        let _ = std::fs::remove_file(&front);
        let rule = format!("unix:{front}:{}", echo_server());
        let _amb = Ambassador::serve(&["--send-proxy", version, &rule], &[], 1);
        let c = unix_connect(&front);
        let got = round_trip_any(c, b"data".to_vec(), |s| s.try_clone().unwrap()).unwrap();
        assert_eq!(got, [header.as_slice(), b"data"].concat(), "{version}");
    }
}

/// A trusted client sends `bytes` (then waits): how its connection ended,
/// and what the log says.
fn trusted_sends(amb_port: u16, bytes: &[u8]) -> Result<Vec<u8>, ErrorKind> {
    let mut c = connect_from("127.0.0.1", at(amb_port)).unwrap();
    // A reset that comes before the write is out is reported by the write.
    if let Err(e) = c.write_all(bytes) {
        return Err(e.kind());
    }
    read_end(&mut c)
}

#[test]
fn bad_headers_from_a_trusted_peer_reset_it_and_are_counted() {
    let target = counting_echo_server();
    let port = free_port();
    let rule = format!("127.0.0.1:{port}:{}", target.addr);
    let amb = Ambassador::serve(&["--accept-proxy", "127.0.0.1", &rule], &[], 1);
    let mut v2_huge = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    v2_huge.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
    let cases: [(&[u8], &str); 4] = [
        (b"GET / HTTP/1.1\r\n\r\n", "no PROXY header"),
        (&v2_huge, "a header of 65551 bytes is too long"),
        (
            &[b"PROXY UNKNOWN ".as_slice(), &[b'x'; 120]].concat(),
            "no CRLF within 107 bytes",
        ),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n", "port \"99999\""),
    ];
    for (bytes, why) in cases {
        assert_eq!(
            trusted_sends(port, bytes),
            Err(ErrorKind::ConnectionReset),
            "{why}"
        );
        assert!(amb.wait_for_log(why, IO_TIMEOUT), "{why}: {}", amb.stderr());
    }
    assert_eq!(target.accepted.load(std::sync::atomic::Ordering::SeqCst), 0);
    amb.signal("USR1");
    amb.expect_log("bad header 4");
}

#[test]
fn a_silent_or_slow_trusted_peer_is_reset_at_the_deadline_and_holds_no_slot() {
    let port = free_port();
    let rule = format!("127.0.0.1:{port}:{}", echo_server());
    let amb = Ambassador::serve(
        &["--max-conns", "1", "--accept-proxy", "127.0.0.1", &rule],
        &[],
        1,
    );
    let silent = thread::spawn(move || trusted_sends(port, b""));
    let slow = thread::spawn(move || {
        let mut c = connect_from("127.0.0.1", at(port)).unwrap();
        // One byte every 400 ms: the 33-byte header would take 13 s.
        for b in b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n" {
            if let Err(e) = c.write_all(&[*b]) {
                return Err(e.kind());
            }
            thread::sleep(Duration::from_millis(400));
        }
        read_end(&mut c)
    });
    // Meanwhile an untrusted client is served: the two hold no slot.
    let (got, _) = echo_through("127.0.0.2", at(port), b"not held up");
    assert_eq!(got, b"not held up");
    assert_eq!(silent.join().unwrap(), Err(ErrorKind::ConnectionReset));
    let slow = slow.join().unwrap();
    assert!(
        matches!(
            slow,
            Err(ErrorKind::ConnectionReset | ErrorKind::BrokenPipe)
        ),
        "{slow:?}"
    );
    let log = amb.stderr();
    assert_eq!(
        log.matches("no whole PROXY header within 5 s").count(),
        2,
        "{log}"
    );
    assert!(log.contains("within 5 s (0 bytes came)"), "{log}");
}

#[test]
fn a_header_with_a_mebibyte_right_after_it_delivers_every_byte() {
    let (_amb, port) = accepting(&[]);
    let data = payload(1 << 20, 5);
    for header in [
        b"PROXY TCP4 203.0.113.7 10.0.0.2 5100 6379\r\n".to_vec(),
        [
            &b"\r\n\r\n\0\r\nQUIT\n"[..],
            &[
                0x21, 0x11, 0, 12, 203, 0, 113, 7, 10, 0, 0, 2, 19, 236, 24, 235,
            ],
        ]
        .concat(),
    ] {
        let c = connect_from("127.0.0.1", at(port)).unwrap();
        let got = round_trip(c, [header.as_slice(), &data].concat()).unwrap();
        assert!(got == data, "{} bytes back, want {}", got.len(), data.len());
    }
}

#[test]
fn a_v2_local_header_keeps_the_connection_s_own_addresses() {
    let (amb, port) = accepting(&[]);
    let local = [&b"\r\n\r\n\0\r\nQUIT\n"[..], &[0x20, 0, 0, 0], b"health"].concat();
    let c = connect_from("127.0.0.1", at(port)).unwrap();
    let me = c.local_addr().unwrap();
    assert_eq!(round_trip(c, local).unwrap(), b"health");
    amb.expect_log(&format!("{me} -> "));
    assert!(!amb.stderr().contains(" via "), "{}", amb.stderr());
}

#[test]
fn an_untrusted_client_s_header_is_data_and_claims_nothing() {
    // Only 127.0.0.3 is trusted; 127.0.0.1 and 127.0.0.2 are direct clients.
    let port = free_port();
    let rule = format!("127.0.0.1:{port}:{}", echo_server());
    let amb = Ambassador::serve(
        &["--accept-proxy", "127.0.0.3", "--allow", "127.0.0.1", &rule],
        &[],
        1,
    );
    let forged = b"PROXY TCP4 127.0.0.1 127.0.0.1 1 2\r\nhello".to_vec();
    let (got, _) = echo_through("127.0.0.1", at(port), &forged);
    assert_eq!(got, forged, "the header reached the target as data");
    // 127.0.0.2 claims to be 127.0.0.1: not believed, so not allowed.
    assert_eq!(
        end_from("127.0.0.2", at(port), &forged),
        Err(ErrorKind::ConnectionReset)
    );
    amb.signal("USR1");
    amb.expect_log("served 1, denied 1");
}

#[test]
fn ten_thousand_random_headers_break_nothing() {
    let port = free_port();
    let rule = format!("127.0.0.1:{port}:{}", echo_server());
    let amb = Ambassador::serve(&["--accept-proxy", "127.0.0.1", &rule], &[], 1);
    let (threads, fds) = (amb.threads(), amb.fds());
    let valid = b"PROXY TCP4 203.0.113.7 10.0.0.2 5100 6379\r\n";
    let v2 = [
        &b"\r\n\r\n\0\r\nQUIT\n"[..],
        &[0x21, 0x11, 0, 12, 1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2],
    ]
    .concat();
    let noise = payload(10_000 * 8, 11);
    for i in 0..10_000usize {
        let r = &noise[i * 8..i * 8 + 8];
        let mut bytes = if i % 2 == 0 {
            valid.to_vec()
        } else {
            v2.clone()
        };
        // Flip, cut or grow at a random place.
        let spot = r[0] as usize % bytes.len();
        match r[1] % 4 {
            0 => bytes[spot] ^= r[2] | 1,
            1 => bytes.truncate(spot),
            2 => bytes
                .splice(spot..spot, r[3..].iter().copied())
                .for_each(drop),
            _ => bytes = r.to_vec(),
        }
        let Ok(mut c) = connect_from("127.0.0.1", at(port)) else {
            continue;
        };
        let _ = c.write_all(&bytes);
        let _ = c.shutdown(Shutdown::Write);
        let mut sink = Vec::new();
        let _ = c.read_to_end(&mut sink);
    }
    let (got, _) = echo_through(
        "127.0.0.1",
        at(port),
        &[valid.as_slice(), b"still serving"].concat(),
    );
    assert_eq!(got, b"still serving");
    amb.assert_settles_to(threads, fds);
}

#[test]
fn check_and_startup_say_what_the_options_do() {
    let out = run(
        &[
            "--check",
            "--send-proxy",
            "v2",
            "--accept-proxy",
            "10.0.0.0/8",
            "1:a:1",
            "53:d:53/udp",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "0.0.0.0:1:a:1\targument 1\n0.0.0.0:53:d:53/udp\targument 2\n\
         --send-proxy v2\toption\n--accept-proxy 10.0.0.0/8\toption\n"
    );
    let port = free_port();
    let udp = format!("127.0.0.1:{port}:127.0.0.1:9/udp");
    let amb = Ambassador::serve(&["--send-proxy", "v1", &udp], &[], 1);
    amb.expect_log("UDP rules do not use the PROXY protocol");
    let out = run(&["--send-proxy", "v3", "1:a:1"], &[]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_peer_still_sending_its_header_does_not_hold_up_a_drain() {
    let (mut amb, port) = accepting(&["--drain", "10"]);
    let before = amb.fds();
    let mut waiting = connect_from("127.0.0.1", at(port)).unwrap();
    waiting.write_all(b"PROXY TCP4").unwrap();
    // Accepted (one descriptor more), and so reading its header.
    assert!(
        wait_until(IO_TIMEOUT, || amb.fds() > before),
        "never accepted"
    );
    amb.signal("TERM");
    // Nothing is open (the header is not in): the drain ends at once, well
    // before the header's 5 s deadline.
    let status = amb.wait_exit(Duration::from_secs(4));
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", amb.stderr());
    assert!(
        amb.stderr().contains("draining 0 open connection(s)"),
        "{}",
        amb.stderr()
    );
}
