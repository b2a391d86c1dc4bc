//! Real peers for the tests, each a guard that kills its process (by the
//! child's own handle) when dropped: redis-server with redis-cli, dnsmasq
//! with dig, HAProxy in TCP mode and nginx stream (both speaking the PROXY
//! protocol). Each waits until its server answers before it returns.

use std::io::Write;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::Duration;

use super::{free_port, output_within, require, temp_path, wait_until};

/// A server process, killed when dropped, with a file of its own removed.
pub struct Peer {
    child: Child,
    file: Option<PathBuf>,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(file) = &self.file {
            let _ = std::fs::remove_file(file).or_else(|_| std::fs::remove_dir_all(file));
        }
    }
}

/// A free UDP port on 127.0.0.1, a moment ago.
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("bind")
        .port()
}

/// redis-server on 127.0.0.1, no persistence; its port once it answers.
pub fn redis_server() -> (Peer, u16) {
    let port = free_port();
    let redis = redis_with(
        &["--port", &port.to_string(), "--bind", "127.0.0.1"],
        || TcpStream::connect(("127.0.0.1", port)).is_ok(),
    );
    (redis, port)
}

/// redis-server listening only on the unix socket `path` (no TCP port),
/// once it answers there.
pub fn redis_server_unix(path: &str) -> Peer {
    let listen = [
        "--port",
        "0",
        "--unixsocket",
        path,
        "--unixsocketperm",
        "700",
    ];
    redis_with(&listen, || {
        std::os::unix::net::UnixStream::connect(path).is_ok()
    })
}

/// redis-server with `listen` arguments and no persistence, once `answers`.
fn redis_with(listen: &[&str], answers: impl FnMut() -> bool) -> Peer {
    let bin = require("redis-server", "redis-server");
    let child = Command::new(bin)
        .args(listen)
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start redis-server");
    let redis = Peer { child, file: None };
    assert!(
        wait_until(Duration::from_secs(10), answers),
        "redis-server {listen:?} did not start"
    );
    redis
}

/// redis-cli against 127.0.0.1:`port` with `args`, `stdin` fed to it; its
/// output, trimmed. It must finish within 30 s.
pub fn redis_cli(port: u16, args: &[&str], stdin: Option<&[u8]>) -> String {
    redis_cli_to(&["-h", "127.0.0.1", "-p", &port.to_string()], args, stdin)
}

/// redis-cli against the unix socket `path` (`redis-cli -s`), likewise.
pub fn redis_cli_unix(path: &str, args: &[&str], stdin: Option<&[u8]>) -> String {
    redis_cli_to(&["-s", path], args, stdin)
}

fn redis_cli_to(to: &[&str], args: &[&str], stdin: Option<&[u8]>) -> String {
    let bin = require("redis-cli", "redis-tools");
    let mut child = Command::new(bin)
        .args(to)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run redis-cli");
    let mut input = child.stdin.take().expect("piped stdin");
    let data = stdin.map(|d| d.to_vec());
    thread::spawn(move || {
        if let Some(d) = data {
            let _ = input.write_all(&d);
        }
    });
    let what = format!("redis-cli {args:?}");
    let out = output_within(child, Duration::from_secs(30), &what);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// dnsmasq on 127.0.0.1 answering web.ambassador.test (192.0.2.10) from a
/// hosts file of its own; its UDP port once it answers. dnsmasq listens on
/// TCP at the same port too, so the port is one free for both; a dnsmasq
/// that could not start (the port taken meanwhile) is started again.
pub fn dnsmasq() -> (Peer, u16) {
    for _ in 0..3 {
        // One file per server: tests run in parallel in one process.
        let hosts = temp_path("hosts");
        std::fs::write(&hosts, "192.0.2.10 web.ambassador.test\n").expect("hosts file");
        let port = free_udp_and_tcp_port();
        let child = spawn_dnsmasq("127.0.0.1", port, &hosts, &[]);
        let mut dns = Peer {
            child,
            file: Some(hosts),
        };
        let mut exited = false;
        let answers = wait_until(Duration::from_secs(15), || {
            exited = dns.child.try_wait().ok().flatten().is_some();
            exited || dig(port, "web.ambassador.test") == "192.0.2.10"
        });
        if answers && !exited {
            return (dns, port);
        }
        assert!(exited, "dnsmasq on port {port} did not answer within 15 s");
    }
    panic!("dnsmasq exited at start three times (its port taken each time?)");
}

/// dnsmasq in the foreground on `ip`:`port`, answering from the hosts
/// file `hosts` alone (no resolv.conf, no /etc/hosts), with `extra`.
fn spawn_dnsmasq(ip: &str, port: u16, hosts: &std::path::Path, extra: &[&str]) -> Child {
    Command::new(require("dnsmasq", "dnsmasq-base"))
        .args(["--keep-in-foreground", "--no-resolv", "--no-hosts"])
        .args(["--bind-interfaces", &format!("--listen-address={ip}")])
        .args(["--conf-file=/dev/null", &format!("--port={port}")])
        // No pid file: two at once would race for /var/run/dnsmasq.pid and
        // one exit ("File exists"), and one killed would leave it behind.
        .arg("--pid-file=")
        .arg(format!("--addn-hosts={}", hosts.display()))
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start dnsmasq")
}

/// A port on 127.0.0.1 free for both UDP and TCP a moment ago.
fn free_udp_and_tcp_port() -> u16 {
    loop {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        let port = udp.local_addr().expect("addr").port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// dig's short answer for `name` (type A) from 127.0.0.1:`port`: 5 tries of
/// 1 s each, within 30 s in all.
pub fn dig(port: u16, name: &str) -> String {
    let bin = require("dig", "bind9-dnsutils");
    let child = Command::new(bin)
        .args(["@127.0.0.1", "-p", &port.to_string()])
        .args(["+short", "+time=1", "+tries=5", name, "A"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run dig");
    let out = output_within(child, Duration::from_secs(30), "dig");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Starts `command` (quiet), which owns `file` (removed with the guard),
/// and waits until something listens on 127.0.0.1:`port`.
fn listening(mut command: Command, file: PathBuf, port: u16) -> Peer {
    let what = format!("{:?}", command.get_program());
    let child = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start {what}: {e}"));
    let peer = Peer {
        child,
        file: Some(file),
    };
    let listens = || TcpStream::connect(("127.0.0.1", port)).is_ok();
    assert!(
        wait_until(Duration::from_secs(10), listens),
        "{what} did not start"
    );
    peer
}

/// HAProxy in TCP mode on 127.0.0.1, forwarding to `to` with `server_options`
/// (`send-proxy`, `send-proxy-v2` or nothing); its port once it listens.
pub fn haproxy(to: std::net::SocketAddr, server_options: &str) -> (Peer, u16) {
    let mut command = Command::new(require("haproxy", "haproxy"));
    let port = free_port();
    let config = temp_path("haproxy.cfg");
    let text = format!(
        "global\n  maxconn 1000\ndefaults\n  mode tcp\n  timeout connect 5s\n  \
         timeout client 30s\n  timeout server 30s\nlisten front\n  bind 127.0.0.1:{port}\n  \
         server back {to} {server_options}\n"
    );
    std::fs::write(&config, text).expect("haproxy config");
    command.args(["-db", "-f"]).arg(&config);
    (listening(command, config, port), port)
}

/// nginx stream on 127.0.0.1 that expects a PROXY header on each
/// connection and answers with the client address it carried,
/// `$proxy_protocol_addr:$proxy_protocol_port`; its port once it listens.
/// One process (no master), so that killing the guard's child ends it all.
pub fn nginx_proxy_reporter() -> (Peer, u16) {
    let mut command = Command::new(require("nginx", "nginx-light"));
    let module = "/usr/lib/nginx/modules/ngx_stream_module.so";
    assert!(
        std::path::Path::new(module).exists(),
        "{module} not found: apt-get install libnginx-mod-stream (bash .ci/run installs it)"
    );
    let port = free_port();
    let dir = temp_path("nginx");
    std::fs::create_dir_all(&dir).expect("nginx folder");
    let d = dir.display();
    let text = format!(
        "load_module {module};\ndaemon off;\nmaster_process off;\npid {d}/nginx.pid;\n\
         error_log {d}/error.log;\nevents {{ worker_connections 256; }}\nstream {{\n  server {{\n    \
         listen 127.0.0.1:{port} proxy_protocol;\n    \
         return \"$proxy_protocol_addr:$proxy_protocol_port\";\n  }}\n}}\n"
    );
    let config = dir.join("nginx.conf");
    std::fs::write(&config, text).expect("nginx config");
    command.arg("-c").arg(&config).arg("-p").arg(&dir);
    command.arg("-e").arg(dir.join("error.log"));
    (listening(command, dir, port), port)
}

/// dnsmasq on port 53 of an address of its own on loopback (127.54.X.Y),
/// answering from `hosts` (a hosts file's text, re-read on `reload`), and a
/// resolv.conf naming it for `Ambassador::start_with_resolver` (needs root).
pub struct Resolver {
    pub dns: Peer,
    pub hosts: PathBuf,
    pub resolv_conf: PathBuf,
    pub ip: String,
}

pub fn dnsmasq_resolver(hosts_text: &str) -> Resolver {
    // One address per test: tests run in parallel, each with its own server.
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = std::process::id() % 200 + 1;
    let ip = format!(
        "127.54.{n}.{}",
        NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1
    );
    let hosts = temp_path("hosts");
    std::fs::write(&hosts, hosts_text).expect("hosts file");
    // Names under .test it does not know are NXDOMAIN, and not remembered.
    let child = spawn_dnsmasq(&ip, 53, &hosts, &["--no-negcache", "--local=/test/"]);
    let dns = Peer { child, file: None };
    assert_answering(&ip, hosts_text);
    let resolv_conf = temp_path("resolv.conf");
    let conf = format!("nameserver {ip}\noptions timeout:2 attempts:3\n");
    std::fs::write(&resolv_conf, conf).expect("resolv.conf");
    Resolver {
        dns,
        hosts,
        resolv_conf,
        ip,
    }
}

impl Resolver {
    /// Answers from `hosts_text` from now on (dnsmasq re-reads it on SIGHUP).
    pub fn reload(&self, hosts_text: &str) {
        std::fs::write(&self.hosts, hosts_text).expect("hosts file");
        let pid = self.dns.child.id().to_string();
        let status = Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .expect("kill");
        assert!(status.success(), "SIGHUP to dnsmasq {pid}");
        // dnsmasq re-reads the file when it gets to the signal: until it
        // gives the new text's first answer, it may still give the old.
        assert_answering(&self.ip, hosts_text);
    }
}

/// Waits (15 s at most) until dnsmasq on `ip`:53 answers the first name of
/// `hosts_text` with (among others) its address.
fn assert_answering(ip: &str, hosts_text: &str) {
    let mut fields = hosts_text.split_whitespace();
    let (address, name) = (
        fields.next().unwrap_or(""),
        fields.next().unwrap_or("none.test"),
    );
    let answers = wait_until(Duration::from_secs(15), || {
        let out = Command::new(require("dig", "bind9-dnsutils"))
            .args([&format!("@{ip}"), "+short", "+time=1", "+tries=1", name])
            .output();
        out.is_ok_and(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l == address)
        })
    });
    assert!(
        answers,
        "dnsmasq on {ip}:53 did not answer {address} for {name}"
    );
}

impl Drop for Resolver {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.hosts);
        let _ = std::fs::remove_file(&self.resolv_conf);
    }
}

/// nginx with the nginx.conf in `dir` (one process, no master), once
/// 127.0.0.1:`port` is listening: read from /proc/net/tcp, so that no test
/// connection shows in its logs.
pub fn nginx_peer(dir: &std::path::Path, port: u16) -> Peer {
    let module = "/usr/lib/nginx/modules/ngx_stream_module.so";
    assert!(
        std::path::Path::new(module).exists(),
        "{module} not found: apt-get install libnginx-mod-stream (bash .ci/run installs it)"
    );
    let child = Command::new(require("nginx", "nginx-light"))
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .arg("-p")
        .arg(dir)
        .arg("-e")
        .arg(dir.join("error.log"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nginx");
    let peer = Peer {
        child,
        file: Some(dir.to_path_buf()),
    };
    let listens = || bound_on(port, "tcp");
    assert!(
        wait_until(Duration::from_secs(10), listens),
        "nginx did not start"
    );
    peer
}

/// Whether a socket is listening on TCP port 127.0.0.1:`port` (`table`
/// "tcp"), or bound to that UDP port ("udp"), read from /proc/net without
/// connecting to it (which a server would log, or take as its first client).
pub fn bound_on(port: u16, table: &str) -> bool {
    let local = format!("0100007F:{port:04X}");
    let state = if table == "tcp" { "0A" } else { "07" };
    let lines = std::fs::read_to_string(format!("/proc/net/{table}")).unwrap_or_default();
    lines.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() > 3 && f[1] == local && f[3] == state
    })
}
