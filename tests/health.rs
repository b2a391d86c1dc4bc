//! Targets and their health: a target found dead is remembered, so it
//! costs one client a wait, not every client; the one prober brings it
//! back (its wait doubling meanwhile) and sleeps when nothing is down;
//! --balance round-robin spreads clients over targets and over a name's
//! addresses; UDP targets are retried by the next session after their
//! wait. Real peers throughout: echo servers that come and go, dnsmasq as
//! the resolver, dig, nginx speaking the PROXY protocol.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::*;

/// An echo server on a fixed port that can be stopped (its port then
/// refuses) and started again; it counts the connections it accepted.
struct Switch {
    /// Held for the whole test, so no test beside takes it while it refuses.
    port: HeldPort,
    running: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
}

impl Switch {
    fn new() -> Switch {
        Switch {
            port: HeldPort::new(),
            running: Arc::new(AtomicBool::new(false)),
            accepted: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn addr(&self) -> SocketAddr {
        self.port.addr
    }

    /// Listens (again); echo threads of earlier connections go on.
    fn up(&self) {
        let listener = self.port.listen();
        listener.set_nonblocking(true).unwrap();
        self.running.store(true, SeqCst);
        let (running, accepted) = (Arc::clone(&self.running), Arc::clone(&self.accepted));
        thread::spawn(move || {
            // Polls so that `down` can close the port. Before it closes, it
            // takes every connection already queued, as a server that stops
            // listening would: only a connection made in the moment between
            // the last accept and the close is reset.
            loop {
                let stopping = !running.load(SeqCst);
                match listener.accept() {
                    Ok((stream, _)) => {
                        accepted.fetch_add(1, SeqCst);
                        stream.set_nonblocking(false).unwrap();
                        timeouts(&stream);
                        thread::spawn(move || echo(stream));
                    }
                    Err(_) if stopping => return,
                    Err(_) => thread::sleep(Duration::from_millis(2)),
                }
            }
        });
    }

    /// Stops listening: new connections are refused.
    fn down(&self) {
        self.running.store(false, SeqCst);
        let refused = wait_until(IO_TIMEOUT, || TcpStream::connect(self.addr()).is_err());
        assert!(refused, "the switch still listens");
    }
}

fn echoes(port: u16, seed: u64) {
    let data = payload(1000, seed);
    assert!(round_trip(connect(local(port)), data.clone()).unwrap() == data);
}

/// Fails, showing the log, unless `text` stands in it exactly once: a
/// change said once however many clients saw it, a target tried by one.
fn said_once(amb: &Ambassador, text: &str) {
    let log = amb.stderr();
    assert_eq!(log.matches(text).count(), 1, "{text:?} in:\n{log}");
}

#[test]
fn a_silent_target_costs_the_first_client_a_wait_and_no_other() {
    let silent = silent_target();
    let live = counting_echo_server();
    let port = free_port();
    let rule = format!("127.0.0.1:{port}:{},{}", silent.addr, live.addr);
    let amb = Ambassador::serve(&["-v", "--connect-timeout", "1", &rule], &[], 1);
    for seed in 0..11 {
        echoes(port, seed);
    }
    assert_eq!(live.accepted.load(SeqCst), 11);
    // The first client's try took it down (said once, at warn); no other
    // client tried it (probes say "failed a probe").
    said_once(&amb, &format!("target {} failed: ", silent.addr));
    said_once(&amb, "; down, probing it again in 1.000s");
    amb.expect_counters(&format!("down: {} for ", silent.addr));
}

#[test]
fn each_change_is_logged_once_however_many_clients_see_it() {
    // Held, so that no test beside takes the port (and the prober's tries).
    let refusing = HeldPort::new();
    let refused = refusing.addr;
    let live = counting_echo_server();
    let port = free_port();
    let rule = format!("127.0.0.1:{port}:{refused},{}", live.addr);
    let amb = Ambassador::serve(&[&rule], &[], 1);
    let clients: Vec<_> = (0..50)
        .map(|i| thread::spawn(move || echoes(port, i)))
        .collect();
    for c in clients {
        c.join().expect("a client");
    }
    assert_eq!(live.accepted.load(SeqCst), 50);
    said_once(
        &amb,
        &format!("target {refused} failed: Connection refused"),
    );
}

/// The prober's thread, by name: its state (R, S, ...) and its voluntary
/// context switches so far.
fn prober(amb: &Ambassador) -> Option<(String, u64)> {
    let tasks = std::fs::read_dir(format!("/proc/{}/task", amb.pid())).ok()?;
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() != "prober" {
            continue;
        }
        let status = std::fs::read_to_string(task.path().join("status")).ok()?;
        let field = |name: &str| {
            let line = status.lines().find(|l| l.starts_with(name))?;
            line.split_whitespace().nth(1).map(str::to_string)
        };
        return Some((
            field("State:")?,
            field("voluntary_ctxt_switches:")?.parse().ok()?,
        ));
    }
    None
}

#[test]
fn a_target_back_up_takes_clients_again_and_the_probes_back_off_meanwhile() {
    let first = Switch::new();
    let live = counting_echo_server();
    let (port, metrics) = (free_port(), free_port());
    let rule = format!("127.0.0.1:{port}:{},{}", first.addr(), live.addr);
    let metrics_at = format!("127.0.0.1:{metrics}");
    let args = [
        "-v",
        "--connect-timeout",
        "1",
        "--metrics",
        &metrics_at,
        &rule,
    ];
    let amb = Ambassador::serve(&args, &[], 1);
    assert!(prober(&amb).is_none(), "no prober while every target is up");
    echoes(port, 1);
    // The probes fail and their wait doubles: 1 s (the first), 2 s, 4 s.
    amb.expect_log("still down, probing it again in 2.000s");
    amb.expect_log("still down, probing it again in 4.000s");
    let log = amb.stderr();
    let (two, four) = (log.find("again in 2.000s"), log.find("again in 4.000s"));
    assert!(two < four, "the waits come in order: {log}");
    let target_up = |up: u8| {
        format!(
            "ambassador_target_up{{rule=\"{rule}\",target=\"{}\"}} {up}",
            first.addr()
        )
    };
    assert!(
        scrape(metrics).contains(&target_up(0)),
        "{}",
        scrape(metrics)
    );
    first.up();
    // Within its wait (4 s) the prober finds it back.
    amb.expect_log(&format!("target {} up again after ", first.addr()));
    assert!(scrape(metrics).contains(&target_up(1)));
    // The probe that found it is counted by the switch's accept thread,
    // which may come to it after the line is logged.
    let probed = wait_until(IO_TIMEOUT, || first.accepted.load(SeqCst) >= 1);
    assert!(probed, "the probe that found the target back was accepted");
    let before = first.accepted.load(SeqCst);
    echoes(port, 2);
    assert_eq!(
        first.accepted.load(SeqCst),
        before + 1,
        "the first target serves again"
    );
    assert_eq!(live.accepted.load(SeqCst), 1);
    // Nothing is down: the prober sleeps, with no deadline to wake it.
    let (state, switches) = prober(&amb).expect("a prober thread since the target went down");
    assert_eq!(state, "S", "the prober sleeps");
    thread::sleep(Duration::from_millis(2500)); // the behaviour: a quiet spell
    assert_eq!(prober(&amb).map(|p| p.1), Some(switches), "the prober woke");
}

fn scrape(port: u16) -> String {
    let mut c = connect(local(port));
    c.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut page = String::new();
    let _ = c.read_to_string(&mut page);
    page
}

#[test]
fn two_hundred_clients_while_the_first_target_dies() {
    let first = Switch::new();
    first.up();
    let live = counting_echo_server();
    let port = free_port();
    let rule = format!("127.0.0.1:{port}:{},{}", first.addr(), live.addr);
    let amb = Ambassador::serve(&["--connect-timeout", "2", &rule], &[], 1);
    let (threads, fds) = (amb.threads(), amb.fds());
    let client = move |i: u64| {
        thread::spawn(move || {
            let started = Instant::now();
            let data = payload(20_000, i);
            let got = round_trip(connect(local(port)), data.clone()).expect("round trip");
            assert!(got == data, "client {i}: bytes differ");
            started.elapsed()
        })
    };
    let mut clients: Vec<_> = (1..=100).map(client).collect();
    first.down();
    clients.extend((101..=200).map(client));
    let waits: Vec<Duration> = clients
        .into_iter()
        .map(|c| c.join().expect("a client"))
        .collect();
    let longest = waits.iter().max().unwrap();
    eprintln!("longest client of 200: {longest:?} (connect timeout 2 s)");
    assert!(first.accepted.load(SeqCst) + live.accepted.load(SeqCst) >= 201);
    said_once(&amb, "; down, probing it again");
    // The prober thread is new; everything else goes back to where it was.
    amb.assert_settles_to(threads + 1, fds);
}

#[test]
fn round_robin_spreads_connections_over_the_targets() {
    let servers: Vec<CountingServer> = (0..3).map(|_| counting_echo_server()).collect();
    let port = free_port();
    let list: Vec<String> = servers.iter().map(|s| s.addr.to_string()).collect();
    let rule = format!("127.0.0.1:{port}:{}", list.join(","));
    let _amb = Ambassador::serve(&["--balance", "round-robin", &rule], &[], 1);
    for i in 0..300 {
        echoes(port, i);
    }
    let counts: Vec<usize> = servers.iter().map(|s| s.accepted.load(SeqCst)).collect();
    assert!(counts.iter().all(|c| (90..=110).contains(c)), "{counts:?}");
}

/// Echo servers on `ips`, all on one port (free on each); the port and
/// each server's count of connections.
fn echo_on_each(ips: &[&str]) -> (u16, Vec<Arc<AtomicUsize>>) {
    'port: loop {
        let port = free_port();
        let mut listeners = Vec::new();
        for ip in ips {
            match TcpListener::bind((*ip, port)) {
                Ok(l) => listeners.push(l),
                Err(_) => continue 'port,
            }
        }
        let counts = listeners
            .into_iter()
            .map(|listener| {
                let accepted = Arc::new(AtomicUsize::new(0));
                let counting = Arc::clone(&accepted);
                thread::spawn(move || {
                    for stream in listener.incoming().flatten() {
                        counting.fetch_add(1, SeqCst);
                        timeouts(&stream);
                        thread::spawn(move || echo(stream));
                    }
                });
                accepted
            })
            .collect();
        return (port, counts);
    }
}

#[test]
fn round_robin_spreads_connections_over_a_name_s_addresses() {
    let (target_port, counts) = echo_on_each(&["127.0.0.2", "127.0.0.3", "127.0.0.4"]);
    let dns = dnsmasq_resolver("127.0.0.2 many.test\n127.0.0.3 many.test\n127.0.0.4 many.test\n");
    let port = free_port();
    let rule = format!("127.0.0.1:{port}:many.test:{target_port}");
    let mut amb =
        Ambassador::start_with_resolver(&dns.resolv_conf, &["--balance", "round-robin", &rule]);
    amb.wait_for_listeners(1);
    for i in 0..300 {
        echoes(port, i);
    }
    let counts: Vec<usize> = counts.iter().map(|c| c.load(SeqCst)).collect();
    assert!(counts.iter().all(|c| (90..=110).contains(c)), "{counts:?}");
}

#[test]
fn a_name_that_stops_resolving_is_skipped_by_the_next_clients() {
    let named = counting_echo_server();
    let live = counting_echo_server();
    let dns = dnsmasq_resolver("127.0.0.1 going.test\n");
    let port = free_port();
    let target = format!("going.test:{}", named.addr.port());
    let rule = format!("127.0.0.1:{port}:{target},{}", live.addr);
    let mut amb = Ambassador::start_with_resolver(&dns.resolv_conf, &["-v", &rule]);
    amb.wait_for_listeners(1);
    echoes(port, 1);
    assert_eq!(named.accepted.load(SeqCst), 1);
    dns.reload("127.0.0.9 other.test\n");
    for seed in 2..7 {
        echoes(port, seed);
    }
    assert_eq!(live.accepted.load(SeqCst), 5);
    said_once(&amb, &format!("target {target} failed: "));
    said_once(&amb, "; down, probing it again");
}

#[test]
fn a_unix_target_whose_path_goes_away_is_skipped_and_probed_back() {
    let dir = TempDir::new();
    let path = dir.path("back.sock");
    unix_echo_server(&path);
    let live = counting_echo_server();
    let port = free_port();
    let rule = format!("127.0.0.1:{port}:unix:{path},{}", live.addr);
    let amb = Ambassador::serve(&["-v", &rule], &[], 1);
    echoes(port, 1);
    assert_eq!(live.accepted.load(SeqCst), 0);
    std::fs::remove_file(&path).unwrap();
    for seed in 2..6 {
        echoes(port, seed);
    }
    assert_eq!(live.accepted.load(SeqCst), 4);
    said_once(&amb, &format!("target unix:{path} failed: "));
    unix_echo_server(&path);
    amb.expect_log(&format!("target unix:{path} up again after "));
    echoes(port, 6);
    assert_eq!(
        live.accepted.load(SeqCst),
        4,
        "the unix target serves again"
    );
}

#[test]
fn a_refusing_udp_target_is_skipped_by_the_next_sessions_and_retried_after_its_wait() {
    let closed = free_udp_port();
    let (_dns, dns_port) = dnsmasq();
    let port = free_udp_port();
    let rule = format!("127.0.0.1:{port}:127.0.0.1:{closed},127.0.0.1:{dns_port}/udp");
    let amb = Ambassador::serve(&["-v", &rule], &[], 1);
    // Each dig is a session of its own (a new source port). The first
    // session's first query draws the port unreachable and is lost (dig
    // says so, then asks again after 1 s); the next sessions skip the
    // target, but for one whose retry came due meanwhile (its wait is 1 s
    // too): only that one may lose its first query.
    assert!(dig(port, "web.ambassador.test").ends_with("\n192.0.2.10"));
    let mut lost = 0;
    for _ in 0..3 {
        let answer = dig(port, "web.ambassador.test");
        assert!(answer.ends_with("192.0.2.10"), "{answer}");
        lost += usize::from(answer != "192.0.2.10");
    }
    let retries = amb.stderr().matches("still down, trying it again").count();
    assert!(
        lost <= retries && retries <= 1,
        "lost {lost}, retried {retries}: {}",
        amb.stderr()
    );
    let refused = format!("refused (port unreachable at 127.0.0.1:{closed})");
    said_once(&amb, &format!("{refused}; down, trying it again in 1.000s"));
    // After its wait, the next new session tries it again, and fails over.
    let retried = format!("{refused}; still down, trying it again in 2.000s");
    let seen = wait_until(IO_TIMEOUT, || {
        assert!(dig(port, "web.ambassador.test").ends_with("192.0.2.10"));
        amb.stderr().contains(&retried)
    });
    assert!(seen, "no retry: {}", amb.stderr());
}

/// nginx stream on `port` expecting a PROXY header on each connection,
/// answering with the address it carried; its error and access logs.
fn nginx_with_proxy_protocol(port: u16) -> (Peer, std::path::PathBuf) {
    let dir = temp_path("nginx");
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.display();
    let module = "/usr/lib/nginx/modules/ngx_stream_module.so";
    let text = format!(
        "load_module {module};\ndaemon off;\nmaster_process off;\npid {d}/nginx.pid;\n\
         error_log {d}/error.log info;\nevents {{ worker_connections 64; }}\nstream {{\n  \
         log_format probe \"$remote_addr $status\";\n  server {{\n    \
         listen 127.0.0.1:{port} proxy_protocol;\n    access_log {d}/access.log probe;\n    \
         return \"$proxy_protocol_addr\";\n  }}\n}}\n"
    );
    std::fs::write(dir.join("nginx.conf"), text).unwrap();
    let nginx = nginx_peer(&dir, port);
    (nginx, dir)
}

#[test]
fn probes_begin_with_the_health_check_header_a_proxy_speaking_target_accepts() {
    let nginx_port = free_port();
    let live = counting_echo_server();
    let port = free_port();
    let rule = format!("127.0.0.1:{port}:127.0.0.1:{nginx_port},{}", live.addr);
    let amb = Ambassador::serve(&["-v", "--send-proxy", "v2", &rule], &[], 1);
    let mut c = connect(local(port));
    c.write_all(b"ping").unwrap();
    drop(c);
    amb.expect_log("; down, probing it again in 1.000s");
    let (_nginx, dir) = nginx_with_proxy_protocol(nginx_port);
    amb.expect_log(&format!("target 127.0.0.1:{nginx_port} up again after "));
    let mut c = connect(local(port));
    let got = read_end(&mut c).expect("nginx's answer");
    assert_eq!(
        got, b"127.0.0.1",
        "nginx read the client's address from the header"
    );
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    let errors = read("error.log");
    let errors: Vec<&str> = errors.lines().filter(|l| l.contains("[error]")).collect();
    assert!(errors.is_empty(), "nginx logged errors: {errors:#?}");
    assert!(
        read("access.log").lines().count() >= 2,
        "the probe and the client"
    );
}
