//! --metrics against real clients: known bytes read back from /metrics,
//! failover on a graph (target_connects_total), 404/405 and HTTP/1.0,
//! `promtool check metrics` on a live scrape, a real Prometheus server
//! scraping every second whose query API returns the bytes sent, and bad
//! clients (1 MiB of headers, nothing at all, 1,000 scrapes in a row) that
//! stop neither the forwarding nor leave a thread or descriptor behind.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn at(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// One HTTP request, raw; the whole response as text.
fn http(port: u16, request: &str) -> String {
    let mut c = connect(at(port));
    c.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn scrape(port: u16) -> String {
    let reply = http(port, "GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n");
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
    reply
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default()
}

/// An ambassador with --metrics on a free port and `rules`.
fn with_metrics(rules: &[&str]) -> (Ambassador, u16) {
    let port = free_port();
    let metrics = format!("127.0.0.1:{port}");
    let args = [&["--metrics", metrics.as_str()][..], rules].concat();
    let amb = Ambassador::serve(&args, &[], rules.len());
    amb.expect_log("serving metrics at");
    (amb, port)
}

#[test]
fn bytes_moved_are_read_back_from_metrics() {
    let fwd = free_port();
    let rule = format!("127.0.0.1:{fwd}:{},{}", refused_addr(), echo_server());
    let (_amb, port) = with_metrics(&[&rule]);
    let got = round_trip(connect(at(fwd)), payload(12345, 1)).unwrap();
    assert_eq!(got.len(), 12345);
    let page = scrape(port);
    let r = format!("rule=\"{rule}\"");
    let targets: Vec<&str> = rule
        .split_once(':')
        .unwrap()
        .1
        .split_once(':')
        .unwrap()
        .1
        .split(',')
        .collect();
    for line in [
        format!("ambassador_bytes_total{{{r},direction=\"up\"}} 12345"),
        format!("ambassador_bytes_total{{{r},direction=\"down\"}} 12345"),
        format!("ambassador_connections_total{{{r},outcome=\"served\"}} 1"),
        format!("ambassador_connections_total{{{r},outcome=\"no_target\"}} 0"),
        format!(
            "ambassador_target_connects_total{{{r},target=\"{}\",result=\"failed\"}} 1",
            targets[0]
        ),
        format!(
            "ambassador_target_connects_total{{{r},target=\"{}\",result=\"ok\"}} 1",
            targets[1]
        ),
        format!(
            "ambassador_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        ),
    ] {
        assert!(page.lines().any(|l| l == line), "{line} not in:\n{page}");
    }
    assert!(page.contains("\nambassador_threads "), "{page}");
    assert!(page.contains("\nprocess_open_fds "), "{page}");
}

#[test]
fn other_paths_methods_and_versions() {
    let (_amb, port) = with_metrics(&[&format!("127.0.0.1:{}:127.0.0.1:1", free_port())]);
    let r = http(port, "GET / HTTP/1.1\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 404 Not Found\r\n"), "{r}");
    let r = http(port, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert!(
        r.starts_with("HTTP/1.1 405 Method Not Allowed\r\n") && r.contains("Allow: GET"),
        "{r}"
    );
    let r = http(port, "GET /metrics HTTP/1.0\r\n\r\n");
    assert!(
        r.starts_with("HTTP/1.1 200 OK\r\n") && r.contains("Connection: close"),
        "{r}"
    );
    assert!(r.contains("Content-Type: text/plain; version=0.0.4"), "{r}");
}

#[test]
fn promtool_passes_a_live_scrape() {
    let promtool = require("promtool", "prometheus");
    let fwd = free_port();
    let (_amb, port) = with_metrics(&[
        &format!("127.0.0.1:{fwd}:{}", echo_server()),
        &format!("127.0.0.1:{}:127.0.0.1:9/udp", free_port()),
    ]);
    round_trip(connect(at(fwd)), b"x".to_vec()).unwrap();
    let page = scrape(port);
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(page.as_bytes())
        .unwrap();
    let out = output_within(child, Duration::from_secs(30), "promtool check metrics");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool: {said}\n{page}");
}

#[test]
fn a_real_prometheus_scrapes_the_bytes_sent() {
    let prometheus = require("prometheus", "prometheus");
    let fwd = free_port();
    let rule = format!("127.0.0.1:{fwd}:{}", echo_server());
    let (_amb, metrics) = with_metrics(&[&rule]);
    let dir = TempDir::new();
    let web = free_port();
    let config = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: ambassador\n    \
         static_configs:\n      - targets: ['127.0.0.1:{metrics}']\n"
    );
    std::fs::write(dir.0.join("prometheus.yml"), config).unwrap();
    let child = Command::new(prometheus)
        .arg(format!("--config.file={}", dir.path("prometheus.yml")))
        .arg(format!("--storage.tsdb.path={}", dir.path("data")))
        .arg(format!("--web.listen-address=127.0.0.1:{web}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus");
    let _prometheus = KillOnDrop(child);
    // A transfer runs while Prometheus scrapes.
    let sender = std::thread::spawn(move || {
        let c = connect(at(fwd));
        round_trip(c, payload(3 << 20, 4)).map(|got| got.len())
    });
    assert_eq!(sender.join().unwrap().unwrap(), 3 << 20);
    let query = "/api/v1/query?query=ambassador_bytes_total%7Bdirection%3D%22up%22%7D";
    let want = format!("\"{}\"]", 3 << 20);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    while Instant::now() < deadline {
        if TcpStream::connect(at(web)).is_ok() {
            last = http(web, &format!("GET {query} HTTP/1.0\r\n\r\n"));
            if last.contains(&want) {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("Prometheus never returned {want} for {query}; last answer:\n{last}");
}

/// A child process killed when dropped.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn bad_clients_stop_neither_metrics_nor_forwarding() {
    let fwd = free_port();
    let (amb, port) = with_metrics(&[&format!("127.0.0.1:{fwd}:{}", echo_server())]);
    // Before any scrape: the metrics thread closes a scraped connection a
    // moment after the client has read its end.
    let (threads, fds) = (amb.threads(), amb.fds());
    // 1 MiB of headers: the connection is closed without an answer.
    let mut big = connect(at(port));
    let _ = big.write_all(b"GET /metrics HTTP/1.1\r\n");
    let _ = big.write_all(&vec![b'x'; 1 << 20]);
    let mut out = Vec::new();
    let _ = big.read_to_end(&mut out);
    assert!(!String::from_utf8_lossy(&out).contains("200 OK"));
    // A client that sends nothing is closed after its 2 s.
    let mut mute = connect(at(port));
    let started = Instant::now();
    let ended = mute.read(&mut [0u8; 16]);
    assert!(matches!(ended, Ok(0) | Err(_)), "{ended:?}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "closed only after {:?}",
        started.elapsed()
    );
    for _ in 0..1000 {
        scrape(port);
    }
    let got = round_trip(connect(at(fwd)), b"still forwarding".to_vec()).unwrap();
    assert_eq!(got, b"still forwarding");
    amb.assert_settles_to(threads, fds);
}

#[test]
fn a_metrics_port_in_use_exits_1_and_check_shows_it() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let out = run(
        &["--metrics", &format!("127.0.0.1:{port}"), "127.0.0.1:1:a:1"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot listen on 127.0.0.1:{port} (--metrics)")),
        "{err}"
    );
    let out = run(&["--check", "--metrics", "9100", "1:a:1"], &[]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "0.0.0.0:1:a:1\targument 1\n--metrics 0.0.0.0:9100\toption\n"
    );
}
