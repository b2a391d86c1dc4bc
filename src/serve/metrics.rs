//! --metrics: `GET /metrics` over HTTP/1.0 or 1.1 on one thread, blocking
//! like the rest. A request must arrive whole (the request line and
//! headers) within 2 s and 8 KiB, or the connection is closed; any other
//! path is 404, any other method 405; every answer closes the connection.
//! The page is rendered at scrape time from the same counters SIGUSR1
//! logs (exposition.rs), so serving it costs the data path nothing.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use super::exposition::{self, RuleReading};
use super::process;
use super::running::RuleStates;
use crate::error::Error;
use crate::flow::pool::STACK_SIZE;

/// How long a client has to send its whole request.
const REQUEST_DEADLINE: Duration = Duration::from_secs(2);
/// The longest request (line and headers) read.
const REQUEST_MAX: usize = 8 * 1024;
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Binds `addr` (exit 1 if it cannot) and serves /metrics on a thread of
/// its own until the process ends.
pub fn start(addr: SocketAddr, counters: RuleStates) -> Result<(), Error> {
    let listener = TcpListener::bind(addr).map_err(|source| Error::Bind {
        listen: format!("{addr} (--metrics)"),
        source,
    })?;
    thread::Builder::new()
        .stack_size(STACK_SIZE)
        .spawn(move || {
            for conn in listener.incoming() {
                match conn {
                    Ok(conn) => answer(conn, &counters),
                    Err(e) => log::debug!("metrics: accept failed: {e}"),
                }
            }
        })
        .map_err(Error::Thread)?;
    // Once the thread runs: tests and users may read it as "served".
    log::info!("serving metrics at http://{addr}/metrics");
    Ok(())
}

/// Reads one request and answers it; a failure concerns this client only.
fn answer(mut conn: TcpStream, counters: &RuleStates) {
    let reply = match read_request(&mut conn) {
        Ok(head) => respond(&head, counters),
        Err(e) => {
            log::debug!("metrics: request dropped: {e}");
            return;
        }
    };
    let _ = conn.set_write_timeout(Some(REQUEST_DEADLINE));
    if conn.write_all(&reply).is_ok() {
        let _ = conn.shutdown(Shutdown::Write);
    }
}

/// The request line and headers, up to the blank line; an error after the
/// deadline, past REQUEST_MAX, or if the client goes away first.
fn read_request(conn: &mut TcpStream) -> io::Result<Vec<u8>> {
    let until = Instant::now() + REQUEST_DEADLINE;
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    loop {
        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            head.truncate(end);
            return Ok(head);
        }
        if head.len() > REQUEST_MAX {
            return Err(io::Error::other("request over 8 KiB"));
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "request not whole within 2 s",
            ));
        }
        conn.set_read_timeout(Some(left))?;
        match conn.read(&mut buf)? {
            0 => return Err(io::Error::other("closed before the request was whole")),
            n => head.extend_from_slice(&buf[..n]),
        }
    }
}

/// The whole HTTP response to a request head.
fn respond(head: &[u8], counters: &RuleStates) -> Vec<u8> {
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split(' ');
    let (method, target, version) = (parts.next(), parts.next(), parts.next());
    let (status, body) = match (method, target, version) {
        (Some(_), Some(_), Some(v)) if !v.starts_with("HTTP/1.") => {
            ("400 Bad Request", String::new())
        }
        (Some("GET"), Some(t), Some(_)) if t.split('?').next() == Some("/metrics") => {
            ("200 OK", page(counters))
        }
        (Some("GET"), Some(_), Some(_)) => ("404 Not Found", "try /metrics\n".to_string()),
        (Some(_), Some(_), Some(_)) => ("405 Method Not Allowed", "GET only\n".to_string()),
        _ => ("400 Bad Request", String::new()),
    };
    let allow = if status.starts_with("405") {
        "Allow: GET\r\n"
    } else {
        ""
    };
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {CONTENT_TYPE}\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

/// The /metrics page now.
fn page(states: &RuleStates) -> String {
    let rules: Vec<RuleReading> = states
        .iter()
        .map(|targets| RuleReading {
            rule: targets.rule().to_string(),
            targets: targets
                .states()
                .map(|(t, down)| (t.to_string(), down.is_none()))
                .collect(),
            reading: targets.counters().read(),
        })
        .collect();
    exposition::render(&rules, &process::read(), env!("CARGO_PKG_VERSION"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::rule::Rule;
    use crate::config::rule::Source;
    use crate::config::Balance;
    use crate::flow::counters::Counters;
    use crate::flow::targets::Targets;
    use std::sync::Arc;

    fn counters() -> RuleStates {
        let rule = Rule::parse("127.0.0.1:1:a:1", Source::Argument(1)).unwrap();
        let counters = Arc::new(Counters::new(1));
        Arc::new(vec![Targets::new(rule, counters, Balance::First, None)])
    }

    fn status(reply: &[u8]) -> String {
        let text = String::from_utf8_lossy(reply);
        text.lines().next().unwrap_or_default().to_string()
    }

    #[test]
    fn get_metrics_is_the_page_and_anything_else_is_not() {
        let c = counters();
        let ok = respond(b"GET /metrics HTTP/1.1\r\nHost: x", &c);
        assert_eq!(status(&ok), "HTTP/1.1 200 OK");
        let text = String::from_utf8_lossy(&ok);
        assert!(
            text.contains("Content-Type: text/plain; version=0.0.4"),
            "{text}"
        );
        assert!(
            text.contains("ambassador_connections_open{rule=\"127.0.0.1:1:a:1\"} 0"),
            "{text}"
        );
        assert_eq!(
            status(&respond(b"GET /metrics?x=1 HTTP/1.0", &c)),
            "HTTP/1.1 200 OK"
        );
        assert_eq!(
            status(&respond(b"GET / HTTP/1.1", &c)),
            "HTTP/1.1 404 Not Found"
        );
        let post = respond(b"POST /metrics HTTP/1.1", &c);
        assert_eq!(status(&post), "HTTP/1.1 405 Method Not Allowed");
        assert!(String::from_utf8_lossy(&post).contains("Allow: GET\r\n"));
        assert_eq!(
            status(&respond(b"GET /metrics SPDY/3", &c)),
            "HTTP/1.1 400 Bad Request"
        );
        assert_eq!(
            status(&respond(b"\xff\xfe", &c)),
            "HTTP/1.1 400 Bad Request"
        );
    }
}
