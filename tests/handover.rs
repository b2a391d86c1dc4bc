//! Sockets handed over by a parent: ambassador spawned as dockerd spawns
//! its userland proxy (descriptor 3 a pipe for the status, descriptor 4
//! the bound socket with -use-listen-fd), and under socket activation
//! (systemd-socket-activate, and a supervisor of the test's own that holds
//! the socket while ambassador restarts under it).

mod common;

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_ambassador");

/// Puts the status pipe on descriptor 3 (a FIFO the test reads) and, for
/// a port, a socket bound there (listening for TCP) on descriptor 4, then
/// becomes ambassador with the given arguments: what dockerd does.
const SPAWN_AS_DOCKERD: &str = r#"
import os, socket, sys
fifo, proto, port, binary, *args = sys.argv[1:]
def give(fd, number):
    # dup2 onto itself would keep close-on-exec: set it inheritable either way.
    if fd != number:
        os.dup2(fd, number)
    os.set_inheritable(number, True)
give(os.open(fifo, os.O_WRONLY), 3)
if port != "none":
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", int(port)))
    if kind == socket.SOCK_STREAM:
        s.listen(128)
    give(s.fileno(), 4)
os.execv(binary, [binary] + args)
"#;

/// A userland proxy spawned as dockerd spawns it, and what it wrote on
/// descriptor 3 until it closed it.
struct Proxy {
    child: Child,
    status: String,
}

impl Proxy {
    /// Its exit code once it exits within `within`; None if it does not.
    fn exit_code(&mut self, within: Duration) -> Option<i32> {
        let mut code = None;
        wait_until(within, || {
            code = self.child.try_wait().unwrap().map(|s| s.code());
            code.is_some()
        });
        code.flatten()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_as_dockerd(proto: &str, listen_fd: Option<u16>, args: &[&str]) -> Proxy {
    let dir = TempDir::new();
    let fifo = dir.path("status");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    let port = listen_fd.map_or("none".to_string(), |p| p.to_string());
    let child = Command::new(require("python3", "python3"))
        .args(["-c", SPAWN_AS_DOCKERD, &fifo, proto, &port, BIN])
        .args(args)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    // Opening a FIFO's read end waits for its writer; reading ends when
    // every writer closed it (ambassador, once it reported).
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let mut status = String::new();
        let _ = File::open(&fifo).and_then(|mut f| f.read_to_string(&mut status));
        let _ = tx.send(status);
        drop(dir);
    });
    let status = rx.recv_timeout(IO_TIMEOUT).expect("the status pipe closed");
    Proxy { child, status }
}

fn dockerd_args<'a>(
    proto: &'a str,
    port: &'a str,
    target: &'a std::net::SocketAddr,
) -> Vec<String> {
    let ip = target.ip().to_string();
    let target_port = target.port().to_string();
    [
        "-proto",
        proto,
        "-host-ip",
        "127.0.0.1",
        "-host-port",
        port,
        "-container-ip",
        &ip,
        "-container-port",
        &target_port,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// A proxy for 127.0.0.1:`port` (bound by the test, on descriptor 4 with
/// -use-listen-fd) to `target`.
fn with_listen_fd(proto: &str, port: u16, target: &std::net::SocketAddr) -> Proxy {
    let mut args = dockerd_args(proto, &port.to_string(), target);
    args.push("-use-listen-fd".into());
    spawn_as_dockerd(proto, Some(port), &strs(&args))
}

#[test]
fn as_dockerd_s_proxy_it_reports_0_then_forwards_tcp_both_ways() {
    let target = echo_server();
    let port = free_port();
    let args = dockerd_args("tcp", &port.to_string(), &target);
    let mut proxy = spawn_as_dockerd("tcp", None, &strs(&args));
    assert_eq!(proxy.status, "0\n");
    let data = payload(1 << 20, 3);
    assert!(round_trip(connect(local(port)), data.clone()).unwrap() == data);
    // SIGTERM ends it within a second, as dockerd expects.
    let pid = proxy.child.id().to_string();
    let started = Instant::now();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let exited = proxy.exit_code(Duration::from_secs(5)).is_some();
    assert!(
        exited && started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn with_use_listen_fd_it_serves_the_socket_on_descriptor_4_and_never_binds() {
    // An echo, which half-closes after the client's end, and a target that resets.
    let port = free_port();
    let proxy = with_listen_fd("tcp", port, &echo_server());
    assert_eq!(proxy.status, "0\n");
    let mut c = connect(local(port));
    c.write_all(b"half").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_all(&mut c).unwrap(), b"half");
    let resetting = server(|s| {
        let mut b = [0u8; 1];
        let _ = (&s).read(&mut b);
        reset_on_drop(&s);
    });
    let other = free_port();
    let _proxy = with_listen_fd("tcp", other, &resetting);
    let mut c = connect(local(other));
    c.write_all(b"x").unwrap();
    assert_eq!(read_end(&mut c), Err(ErrorKind::ConnectionReset));
}

#[test]
fn as_dockerd_s_proxy_it_forwards_udp_on_the_socket_handed_over() {
    let target = udp_server(b"from the container: ");
    let port = free_udp_port();
    let proxy = with_listen_fd("udp", port, &target);
    assert_eq!(proxy.status, "0\n");
    let client = udp_client(("127.0.0.1", port));
    assert_eq!(
        udp_round_trip(&client, b"ping").unwrap(),
        b"from the container: ping"
    );
}

#[test]
fn a_start_that_fails_reports_1_and_one_line_then_exits_1() {
    let target = echo_server();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let cases: [(Vec<String>, &str); 3] = [
        (
            dockerd_args("sctp", "9", &target),
            "1\n-proto sctp: ambassador forwards TCP and UDP only",
        ),
        (
            vec!["-proto".into(), "tcp".into(), "-bogus".into()],
            "1\nflag provided but not defined: -bogus",
        ),
        (
            dockerd_args("tcp", &port, &target),
            "1\ncannot listen on 127.0.0.1:",
        ),
    ];
    for (args, want) in cases {
        let mut proxy = spawn_as_dockerd("tcp", None, &strs(&args));
        assert!(
            proxy.status.starts_with(want),
            "{:?}: {:?}",
            args,
            proxy.status
        );
        assert!(
            !proxy.status[2..].contains('\n'),
            "one line: {:?}",
            proxy.status
        );
        assert_eq!(proxy.exit_code(IO_TIMEOUT), Some(1), "{args:?}");
    }
}

/// `systemd-socket-activate` holding 127.0.0.1:`port` (UDP with
/// `datagram`) and starting ambassador with ARGS on its first client.
fn socket_activated(port: u16, datagram: bool, args: &[&str]) -> Ambassador {
    let tool = require("systemd-socket-activate", "systemd");
    let mut wrapper = vec![tool.to_str().unwrap().to_string()];
    if datagram {
        wrapper.push("--datagram".into());
    }
    wrapper.extend(["-l".into(), format!("127.0.0.1:{port}")]);
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    let amb = Ambassador::start_under(&wrapper, args);
    let table = if datagram { "udp" } else { "tcp" };
    let held = wait_until(IO_TIMEOUT, || bound_on(port, table));
    assert!(
        held,
        "systemd-socket-activate holds no socket: {}",
        amb.stderr()
    );
    amb
}

#[test]
fn under_socket_activation_a_rule_takes_the_socket_it_is_given() {
    let target = echo_server();
    let port = free_port();
    let rule = format!("127.0.0.1:{port}:{target}");
    let amb = socket_activated(port, false, &["-v", &rule]);
    // systemd-socket-activate starts ambassador on the first connection.
    let data = payload(100_000, 9);
    assert!(round_trip(connect(local(port)), data.clone()).unwrap() == data);
    amb.expect_log(&format!("127.0.0.1:{port}: the socket handed over"));
}

#[test]
fn under_socket_activation_a_udp_rule_takes_the_datagram_socket() {
    let target = udp_server(b"echo: ");
    let port = free_udp_port();
    let rule = format!("127.0.0.1:{port}:{target}/udp");
    let _amb = socket_activated(port, true, &[&rule]);
    let client = udp_client(("127.0.0.1", port));
    let got = wait_until(IO_TIMEOUT, || {
        udp_round_trip(&client, b"hi").is_ok_and(|r| r == b"echo: hi")
    });
    assert!(got, "no answer through the activated UDP rule");
}

#[test]
fn a_socket_no_rule_claims_is_a_configuration_error_naming_it() {
    let port = free_port();
    let other = free_port();
    let target = echo_server();
    let rule = format!("127.0.0.1:{other}:{target}");
    let mut amb = socket_activated(port, false, &[&rule]);
    // The first client starts it; it refuses to run with the socket unclaimed.
    let _ = TcpStream::connect(local(port));
    let status = amb.wait_exit(IO_TIMEOUT).expect("it exits");
    assert_eq!(status.code(), Some(2), "{}", amb.stderr());
    amb.expect_log(&format!(
        "a socket handed over at 127.0.0.1:{port} is claimed by no rule"
    ));
}

/// Holds a listening socket on 127.0.0.1:PORT and runs ambassador on it
/// (LISTEN_FDS=1, LISTEN_PID its pid), restarting it ROUNDS times: SIGTERM,
/// wait for it to exit, start the next. Prints a line per restart; the
/// last one runs until stdin closes.
const SUPERVISOR: &str = r#"
import os, signal, socket, sys, time
port, binary, rounds, *args = sys.argv[1:]
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(port)))
s.listen(512)
def start():
    pid = os.fork()
    if pid == 0:
        if s.fileno() != 3:
            os.dup2(s.fileno(), 3)
        os.set_inheritable(3, True)
        env = {"LISTEN_PID": str(os.getpid()), "LISTEN_FDS": "1"}
        os.execve(binary, [binary] + args, env)
    return pid
pid = start()
print("started", flush=True)
for i in range(int(rounds)):
    time.sleep(0.5)
    os.kill(pid, signal.SIGTERM)
    _, status = os.waitpid(pid, 0)
    pid = start()
    print(f"restarted {i + 1}: the last exited {os.waitstatus_to_exitcode(status)}", flush=True)
sys.stdin.read()
os.kill(pid, signal.SIGTERM)
os.waitpid(pid, 0)
"#;

#[test]
fn a_supervisor_restarts_it_five_times_and_no_client_is_refused() {
    use std::io::BufRead;
    let target = echo_server();
    let port = free_port();
    let rule = format!("127.0.0.1:{port}:{target}");
    let mut supervisor = Command::new(require("python3", "python3"))
        .args([
            "-c",
            SUPERVISOR,
            &port.to_string(),
            BIN,
            "5",
            "--drain",
            "5",
            &rule,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the supervisor");
    let mut lines = std::io::BufReader::new(supervisor.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "started");
    let (done_tx, done) = std::sync::mpsc::channel();
    let reader = thread::spawn(move || {
        let restarts: Vec<String> = lines.map_while(Result::ok).take(5).collect();
        let _ = done_tx.send(());
        restarts
    });
    let (mut clients, mut seed) = (0, 0u64);
    let deadline = Instant::now() + Duration::from_secs(60);
    while done.try_recv().is_err() && Instant::now() < deadline {
        seed += 1;
        let data = payload(2000, seed);
        let got = round_trip(connect(local(port)), data.clone());
        assert!(
            got.as_ref().is_ok_and(|g| *g == data),
            "client {seed}: {got:?}"
        );
        clients += 1;
        thread::sleep(Duration::from_millis(5)); // the behaviour: a client every 5 ms
    }
    let restarts = reader.join().unwrap();
    drop(supervisor.stdin.take());
    let _ = supervisor.wait();
    assert_eq!(restarts.len(), 5, "{restarts:?}");
    assert!(
        restarts.iter().all(|r| r.ends_with("exited 0")),
        "{restarts:?}"
    );
    eprintln!("{clients} clients through 5 restarts, every one served");
}
