//! Helpers for tests that run the real binary: a child guard that kills on
//! drop and shows stderr when a test fails, free ports, loopback servers
//! (echo, scripted, refusing, silent), payloads, and /proc readings; real
//! peers (redis, dnsmasq) in peers.rs.
//! Every socket made here has timeouts, so a bug fails a test instead of
//! hanging it.
#![allow(dead_code)]

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

mod peers;
mod unix;
#[allow(unused_imports)] // not every test binary starts a real peer
pub use peers::*;
#[allow(unused_imports)] // nor uses unix sockets
pub use unix::*;

pub const BIN: &str = env!("CARGO_BIN_EXE_ambassador");
/// Every read and write in a test gives up after this long.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

static COUNTER: AtomicUsize = AtomicUsize::new(0);

pub fn temp_path(what: &str) -> PathBuf {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("ambassador-test-{}-{n}.{what}", std::process::id()))
}

/// A running ambassador, killed when dropped.
pub struct Ambassador {
    child: Child,
    stderr: PathBuf,
}

impl Ambassador {
    /// Starts `ambassador ARGS` with an empty environment plus `envs`.
    pub fn start(args: &[&str], envs: &[(&str, &str)]) -> Ambassador {
        Self::start_command(Command::new(BIN), args, envs)
    }

    /// Starts it with at most `nofile` descriptors (through the shell's ulimit).
    pub fn start_with_nofile(nofile: u32, args: &[&str]) -> Ambassador {
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            &format!("ulimit -n {nofile} && exec \"$0\" \"$@\""),
            BIN,
        ]);
        Self::start_command(cmd, args, &[])
    }

    /// Starts it in a private mount namespace whose /etc/resolv.conf is
    /// `resolv_conf` (needs root): names resolve through a test's DNS server.
    pub fn start_with_resolver(resolv_conf: &std::path::Path, args: &[&str]) -> Ambassador {
        let mut cmd = Command::new(require("unshare", "util-linux"));
        cmd.args([
            "--mount",
            "sh",
            "-c",
            "mount --bind \"$0\" /etc/resolv.conf && exec \"$@\"",
        ])
        .arg(resolv_conf)
        .arg(BIN);
        Self::start_command(cmd, args, &[])
    }

    /// Starts `WRAPPER... ambassador ARGS` (systemd-socket-activate, say),
    /// without waiting for anything.
    pub fn start_under(wrapper: &[&str], args: &[&str]) -> Ambassador {
        let mut cmd = Command::new(wrapper[0]);
        cmd.args(&wrapper[1..]).arg(BIN);
        Self::start_command(cmd, args, &[])
    }

    /// Starts `WRAPPER... ambassador ARGS` (chrt, say) and waits until it
    /// logged `listeners` "listening on" lines.
    pub fn serve_under(wrapper: &[&str], args: &[&str], listeners: usize) -> Ambassador {
        let mut cmd = Command::new(wrapper[0]);
        cmd.args(&wrapper[1..]).arg(BIN);
        let mut amb = Self::start_command(cmd, args, &[]);
        amb.wait_for_listeners(listeners);
        amb
    }

    /// The scheduling policy of each of its threads (field 41 of
    /// /proc/PID/task/TID/stat: 0 SCHED_OTHER, 3 SCHED_BATCH, 5 SCHED_IDLE).
    pub fn thread_policies(&self) -> Vec<u32> {
        let tasks = fs::read_dir(format!("/proc/{}/task", self.pid())).expect("its tasks");
        tasks
            .filter_map(|task| fs::read_to_string(task.ok()?.path().join("stat")).ok())
            .map(|stat| {
                // After the command name (which may hold spaces) comes field 3, the state.
                let after = stat.rsplit_once(')').expect("a stat line").1;
                after
                    .split_whitespace()
                    .nth(38)
                    .expect("a policy")
                    .parse()
                    .unwrap()
            })
            .collect()
    }

    fn start_command(mut cmd: Command, args: &[&str], envs: &[(&str, &str)]) -> Ambassador {
        let stderr = temp_path("stderr");
        let file = File::create(&stderr).expect("create stderr file");
        let child = cmd
            .args(args)
            .env_clear()
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("spawn ambassador");
        Ambassador { child, stderr }
    }

    /// Starts it and waits until it logged `listeners` "listening on" lines.
    pub fn serve(args: &[&str], envs: &[(&str, &str)], listeners: usize) -> Ambassador {
        let mut amb = Self::start(args, envs);
        amb.wait_for_listeners(listeners);
        amb
    }

    pub fn wait_for_listeners(&mut self, listeners: usize) {
        let stderr = &self.stderr;
        let mut exited = None;
        let ok = wait_until(Duration::from_secs(10), || {
            if let Ok(Some(status)) = self.child.try_wait() {
                exited = Some(status);
                return true;
            }
            let text = fs::read_to_string(stderr).unwrap_or_default();
            text.matches("listening on").count() >= listeners
        });
        assert!(
            exited.is_none(),
            "ambassador exited {exited:?}: {}",
            self.stderr()
        );
        assert!(ok, "ambassador never listened: {}", self.stderr());
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Fails the test, showing stderr, unless stderr comes to contain
    /// `text` within IO_TIMEOUT.
    pub fn expect_log(&self, text: &str) {
        assert!(
            self.wait_for_log(text, IO_TIMEOUT),
            "no {text:?} in:\n{}",
            self.stderr()
        );
    }

    /// Waits until stderr contains `text`; false after `within`.
    pub fn wait_for_log(&self, text: &str, within: Duration) -> bool {
        wait_until(within, || self.stderr().contains(text))
    }

    /// Fails the test, showing stderr, unless a SIGUSR1 line comes to
    /// contain `want` within IO_TIMEOUT. Signals every 200 ms: a copier
    /// counts what it wrote just after the write, so the peer that read it
    /// may ask a moment too early.
    pub fn expect_counters(&self, want: &str) {
        self.expect_counter_line(want, |line| line.contains(want));
    }

    /// As `expect_counters`, for a line that `fits` (described by `what`
    /// when it fails): a SIGUSR1 line logged since the last signal.
    pub fn expect_counter_line(&self, what: &str, fits: impl Fn(&str) -> bool) {
        let shown = wait_until(IO_TIMEOUT, || {
            let before = self.stderr().len();
            self.signal("USR1");
            wait_until(Duration::from_millis(200), || {
                let log = self.stderr();
                log.get(before..).is_some_and(|new| new.lines().any(&fits))
            })
        });
        assert!(shown, "no counter line with {what} in:\n{}", self.stderr());
    }

    /// Sends a signal by name (TERM, INT, ...) to this child, by its PID.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    /// Waits for the process to exit; None if it is still running after `within`.
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let mut status = None;
        wait_until(within, || {
            status = self.child.try_wait().expect("try_wait");
            status.is_some()
        });
        status
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// Number of threads, from /proc/PID/task.
    pub fn threads(&self) -> usize {
        count_dir(&format!("/proc/{}/task", self.pid()))
    }

    /// Number of open descriptors, from /proc/PID/fd.
    pub fn fds(&self) -> usize {
        count_dir(&format!("/proc/{}/fd", self.pid()))
    }

    /// Waits until threads and descriptors are back to the given figures.
    pub fn assert_settles_to(&self, threads: usize, fds: usize) {
        let settled = wait_until(Duration::from_secs(10), || {
            self.threads() == threads && self.fds() == fds
        });
        assert!(
            settled,
            "threads {} (want {threads}), fds {} (want {fds}); stderr:\n{}",
            self.threads(),
            self.fds(),
            self.stderr()
        );
    }
}

impl Drop for Ambassador {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!("--- ambassador stderr ---\n{}", self.stderr());
        }
        let _ = fs::remove_file(&self.stderr);
    }
}

fn count_dir(path: &str) -> usize {
    fs::read_dir(path).map(|d| d.count()).unwrap_or(0)
}

/// Runs ambassador to completion (it must exit within 20 s), reading its
/// output as it comes so that a long message cannot block it on a full pipe.
pub fn run(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let child = Command::new(BIN)
        .args(args)
        .env_clear()
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ambassador");
    output_within(
        child,
        Duration::from_secs(20),
        &format!("ambassador {args:.200?}"),
    )
}

/// Collects a child's output as it comes; kills it (by its PID) and fails
/// the test if it has not exited within `within`.
pub fn output_within(child: Child, within: Duration, what: &str) -> Output {
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || tx.send(child.wait_with_output()));
    match rx.recv_timeout(within) {
        Ok(out) => out.expect("collect output"),
        Err(_) => {
            let _ = Command::new("kill").arg(pid.to_string()).status();
            panic!("{what} did not exit within {within:?}");
        }
    }
}

/// Polls `cond` every 10 ms until it holds or `within` passes.
pub fn wait_until(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// 127.0.0.1:port.
pub fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Connects with timeouts set on the stream.
pub fn connect(addr: impl std::net::ToSocketAddrs + std::fmt::Debug) -> TcpStream {
    let stream = TcpStream::connect(&addr).unwrap_or_else(|e| panic!("connect {addr:?}: {e}"));
    timeouts(&stream);
    stream
}

pub fn timeouts(stream: &TcpStream) {
    stream
        .set_read_timeout(Some(IO_TIMEOUT))
        .expect("read timeout");
    stream
        .set_write_timeout(Some(IO_TIMEOUT))
        .expect("write timeout");
}

/// Serves each connection on its own thread with `handle`; returns the address.
pub fn server<F>(handle: F) -> SocketAddr
where
    F: Fn(TcpStream) + Send + Sync + Clone + 'static,
{
    server_on("127.0.0.1:0", handle)
}

pub fn server_on<F>(addr: &str, handle: F) -> SocketAddr
where
    F: Fn(TcpStream) + Send + Sync + Clone + 'static,
{
    let listener = TcpListener::bind(addr).expect("bind test server");
    let local = listener.local_addr().expect("local addr");
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            timeouts(&stream);
            let handle = handle.clone();
            thread::spawn(move || handle(stream));
        }
    });
    local
}

/// Echoes every byte back; half-closes after the client's end of stream.
pub fn echo_server() -> SocketAddr {
    server(echo)
}

pub fn echo(mut stream: TcpStream) {
    let mut reader = stream.try_clone().expect("clone");
    if io::copy(&mut reader, &mut stream).is_ok() {
        let _ = stream.shutdown(Shutdown::Write);
    }
}

/// An address where nothing listens: connections are refused.
pub fn refused_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

/// A loopback port held for the life of the value: a socket bound there
/// (not listening, so a connect is refused) keeps any other socket from
/// taking the port, as `refused_addr`'s, only free a moment, may be taken
/// by a test running beside. `listen` makes a listener on the same port.
pub struct HeldPort {
    pub addr: SocketAddr,
    _held: socket2::Socket,
}

impl HeldPort {
    pub fn new() -> HeldPort {
        let held = HeldPort::socket();
        held.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .expect("bind a port to hold");
        let addr = held.local_addr().unwrap().as_socket().unwrap();
        HeldPort { addr, _held: held }
    }

    /// A listener on the held port (SO_REUSEPORT lets it share the port
    /// with the socket that holds it; dropped, the port refuses again).
    pub fn listen(&self) -> TcpListener {
        let socket = HeldPort::socket();
        socket.bind(&self.addr.into()).expect("bind the held port");
        socket.listen(128).expect("listen on the held port");
        socket.into()
    }

    fn socket() -> socket2::Socket {
        use socket2::{Domain, Socket, Type};
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
        socket.set_reuse_address(true).unwrap();
        socket.set_reuse_port(true).unwrap();
        socket
    }
}

/// A listener whose accept queue is full and never drained, so a new
/// connection's SYN is dropped and connect() times out, as with a host that
/// does not answer. Keep the returned value alive.
pub struct Silent {
    pub addr: SocketAddr,
    _listener: TcpListener,
    _queued: Vec<TcpStream>,
}

pub fn silent_target() -> Silent {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    socket2::SockRef::from(&listener)
        .listen(0)
        .expect("shrink the backlog");
    let addr = listener.local_addr().expect("addr");
    let mut queued = Vec::new();
    for _ in 0..8 {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
            Ok(s) => queued.push(s),
            Err(_) => break,
        }
    }
    assert!(
        TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_err(),
        "could not fill the accept queue"
    );
    Silent {
        addr,
        _listener: listener,
        _queued: queued,
    }
}

/// Deterministic pseudo-random bytes (xorshift64*).
pub fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Reads until end of stream; the error if the stream ended otherwise.
pub fn read_all(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    stream.read_to_end(&mut out)?;
    Ok(out)
}

/// Sends one byte through an echo and expects it back (TCP or unix): the
/// connection is relayed both ways.
pub fn ping<S: Read + Write>(stream: &mut S, byte: u8) {
    stream.write_all(&[byte]).unwrap();
    let mut back = [0u8; 1];
    stream.read_exact(&mut back).unwrap();
    assert_eq!(back, [byte]);
}

/// How a stream ended: everything read up to a clean end, or the kind of
/// error that ended it (a reset, say).
pub fn read_end(stream: &mut TcpStream) -> Result<Vec<u8>, io::ErrorKind> {
    read_all(stream).map_err(|e| e.kind())
}

/// Writes `data` on one thread while reading everything back on this one.
pub fn round_trip(mut stream: TcpStream, data: Vec<u8>) -> io::Result<Vec<u8>> {
    let mut writer = stream.try_clone()?;
    let sender = thread::spawn(move || -> io::Result<()> {
        writer.write_all(&data)?;
        writer.shutdown(Shutdown::Write)
    });
    let got = read_all(&mut stream);
    sender.join().expect("sender thread")?;
    got
}

/// Sets SO_LINGER 0 so that dropping the stream sends a reset.
pub fn reset_on_drop(stream: &TcpStream) {
    socket2::SockRef::from(stream)
        .set_linger(Some(Duration::ZERO))
        .expect("setsockopt SO_LINGER");
}

/// Finds a program on PATH or fails the test with how to install it.
pub fn require(program: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("{program} not found: apt-get install {package} (bash .ci/run installs it)")
        })
}

/// Connects to `to` from the source address `from` (port chosen by the
/// kernel), with timeouts: a client that seems to come from another host.
pub fn connect_from(from: &str, to: SocketAddr) -> io::Result<TcpStream> {
    use socket2::{Domain, Socket, Type};
    let from: std::net::IpAddr = from.parse().expect("source address");
    let socket = Socket::new(Domain::for_address(to), Type::STREAM, None)?;
    socket.bind(&SocketAddr::new(from, 0).into())?;
    socket.connect_timeout(&to.into(), IO_TIMEOUT)?;
    let stream: TcpStream = socket.into();
    timeouts(&stream);
    Ok(stream)
}

/// How a connection from `from` to `to` that sends `data` ends: the bytes
/// read up to a clean end, or the kind of error that ended it wherever it
/// surfaced: at connect (a reset right after the handshake is reported by
/// the non-blocking connect), at the write, or at the read.
pub fn end_from(from: &str, to: SocketAddr, data: &[u8]) -> Result<usize, io::ErrorKind> {
    let mut c = connect_from(from, to).map_err(|e| e.kind())?;
    c.write_all(data).map_err(|e| e.kind())?;
    read_end(&mut c).map(|got| got.len())
}

/// A server that counts the connections it accepts and echoes on each.
pub struct CountingServer {
    pub addr: SocketAddr,
    pub accepted: std::sync::Arc<AtomicUsize>,
}

pub fn counting_echo_server() -> CountingServer {
    let accepted = std::sync::Arc::new(AtomicUsize::new(0));
    let count = std::sync::Arc::clone(&accepted);
    let addr = server(move |stream| {
        count.fetch_add(1, Ordering::SeqCst);
        echo(stream)
    });
    CountingServer { addr, accepted }
}

/// A UDP server on a thread that sends every datagram back to its sender,
/// prefixed with `tag` (empty: an echo); its address.
/// A UDP and a TCP echo server, and a rule to each from a free loopback
/// port: the two rules (UDP first), the UDP port and the TCP port.
pub fn udp_and_tcp_echo_rules() -> ([String; 2], u16, u16) {
    let (udp_port, tcp_port) = (free_udp_port(), free_port());
    let rules = [
        format!("127.0.0.1:{udp_port}:{}/udp", udp_server(b"")),
        format!("127.0.0.1:{tcp_port}:{}", echo_server()),
    ];
    (rules, udp_port, tcp_port)
}

pub fn udp_server(tag: &'static [u8]) -> SocketAddr {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind udp");
    // Bursts in the tests wait here rather than being dropped by the peer.
    let _ = socket2::SockRef::from(&socket).set_recv_buffer_size(4 << 20);
    let addr = socket.local_addr().expect("addr");
    thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        while let Ok((n, from)) = socket.recv_from(&mut buf) {
            let mut reply = tag.to_vec();
            reply.extend_from_slice(&buf[..n]);
            let _ = socket.send_to(&reply, from);
        }
    });
    addr
}

/// A UDP client socket connected to `to`, with timeouts.
pub fn udp_client(to: impl std::net::ToSocketAddrs) -> std::net::UdpSocket {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind udp client");
    socket.connect(to).expect("connect udp client");
    socket.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    socket
}

/// Sends `data` and returns the reply (up to 64 KiB).
pub fn udp_round_trip(socket: &std::net::UdpSocket, data: &[u8]) -> io::Result<Vec<u8>> {
    socket.send(data)?;
    let mut buf = vec![0u8; 65536];
    let n = socket.recv(&mut buf)?;
    buf.truncate(n);
    Ok(buf)
}
