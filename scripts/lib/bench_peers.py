"""The forwarders the benchmark compares, set up on loopback: one
`Forwarder` a peer (direct, ambassador, socat, HAProxy, nginx stream,
rinetd), each from a small config writer in PEERS, with its processes'
PIDs, memory and CPU time read from /proc. Everything started is stopped
by its PID.
"""

import os
import signal
import socket
import time

from amb import Proc, free_port, status_kb

NGINX_STREAM = "/usr/lib/nginx/modules/ngx_stream_module.so"
# Forwarders that carry UDP (the others get no udp rows).
UDP_FORWARDERS = ("direct", "ambassador", "ambassador-ab", "socat", "nginx", "docker-proxy", "ambassador-dp")


def children(pid):
    """PIDs whose parent is pid (socat forks one per connection)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid:
                    out.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return out


def listening(port, timeout=10.0):
    """Until something listens on 127.0.0.1:port, without connecting to it."""
    local = f"0100007F:{port:04X}"
    deadline = time.time() + timeout
    while time.time() < deadline:
        with open("/proc/net/tcp") as f:
            if any(line.split()[1] == local and line.split()[3] == "0A" for line in list(f)[1:]):
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def pids(procs):
    """The processes' PIDs and those of their children (socat forks one per connection)."""
    out = []
    for p in procs:
        out.append(p.pid)
        out.extend(children(p.pid))
    return out


def cpu_s(procs):
    """CPU seconds the processes used so far: live ones, and children reaped."""
    total = 0
    tops = {p.pid for p in procs}
    for pid in pids(procs):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
        if pid in tops:
            total += int(fields[13]) + int(fields[14])
    return total / os.sysconf("SC_CLK_TCK")


def ambassador(binary):
    def start(fwd, targets, udp_target, workdir):
        rules = [f"127.0.0.1:{fwd.port[t]}:127.0.0.1:{t}" for t in targets]
        rules += [f"127.0.0.1:{fwd.udp_port}:127.0.0.1:{udp_target[0]}/udp",
                  f"127.0.0.1:{fwd.dns_port}:127.0.0.1:{udp_target[1]}/udp"]
        return [Proc([binary, "-q", "--max-conns", "100000"] + rules)]
    return start


def socat(backlog_option):
    def start(fwd, targets, udp_target, workdir):
        procs = [Proc(["socat", f"TCP4-LISTEN:{fwd.port[t]},bind=127.0.0.1,fork,reuseaddr{backlog_option}",
                       f"TCP4:127.0.0.1:{t}"]) for t in targets]
        if fwd.udp_port:
            procs += [Proc(["socat", f"UDP4-LISTEN:{listen},bind=127.0.0.1,fork,reuseaddr", f"UDP4:127.0.0.1:{t}"])
                      for listen, t in ((fwd.udp_port, udp_target[0]), (fwd.dns_port, udp_target[1]))]
        return procs
    return start


def nginx(fwd, targets, udp_target, workdir):
    cfg = os.path.join(workdir, "nginx.conf")
    with open(cfg, "w") as f:
        f.write(f"load_module {NGINX_STREAM};\ndaemon off;\nworker_processes 2;\n"
                f"worker_rlimit_nofile 65536;\npid {workdir}/nginx.pid;\n"
                f"error_log {workdir}/nginx-error.log;\nevents {{ worker_connections 20000; }}\nstream {{\n")
        for t in targets:
            f.write(f"  server {{ listen 127.0.0.1:{fwd.port[t]}; proxy_pass 127.0.0.1:{t}; }}\n")
        for listen, t in ((fwd.udp_port, udp_target[0]), (fwd.dns_port, udp_target[1])):
            f.write(f"  server {{ listen 127.0.0.1:{listen} udp; proxy_pass 127.0.0.1:{t}; proxy_timeout 60s; }}\n")
        f.write("}\n")
    return [Proc(["nginx", "-c", cfg, "-p", workdir, "-e", f"{workdir}/nginx-error.log"])]


def rinetd(fwd, targets, udp_target, workdir):
    cfg = os.path.join(workdir, "rinetd.conf")
    with open(cfg, "w") as f:
        for t in targets:
            f.write(f"127.0.0.1 {fwd.port[t]} 127.0.0.1 {t}\n")
    return [Proc(["rinetd", "-f", "-c", cfg])]


def haproxy(fwd, targets, udp_target, workdir):
    cfg = os.path.join(workdir, "haproxy.cfg")
    with open(cfg, "w") as f:
        f.write("global\n  maxconn 9000\n\ndefaults\n  mode tcp\n  timeout connect 10s\n"
                "  timeout client 1h\n  timeout server 1h\n")
        for t in targets:
            f.write(f"\nlisten fwd{t}\n  bind 127.0.0.1:{fwd.port[t]}\n  server s 127.0.0.1:{t}\n")
    return [Proc(["haproxy", "-db", "-f", cfg])]


def as_dockerd_spawns(program, proto, listen, target, host="127.0.0.1"):
    """One userland proxy for host:listen -> host:target, spawned
    as dockerd spawns it: descriptor 3 a pipe it reports on (docker-proxy
    with nothing there closes its own listener), read until it closes."""
    r, w = os.pipe()
    proc = Proc([program, "-proto", proto, "-host-ip", host, "-host-port", str(listen),
                 "-container-ip", host, "-container-port", str(target)],
                pass_fds=(3,), preexec_fn=lambda: os.dup2(w, 3))
    os.close(w)
    with os.fdopen(r) as status:
        got = status.read()
    if not got.startswith("0"):
        raise RuntimeError(f"{program} -proto {proto} -host-ip {host} -host-port {listen}: {got!r}")
    return proc


def userland_proxy(program):
    """A forwarder made of one userland proxy a port, as dockerd runs them."""
    def start(fwd, targets, udp_target, workdir):
        ports = [("tcp", fwd.port[t], t) for t in targets]
        if fwd.udp_port:
            ports += [("udp", fwd.udp_port, udp_target[0]), ("udp", fwd.dns_port, udp_target[1])]
        return [as_dockerd_spawns(program, *p) for p in ports]
    return start


def peers(binary, ab_binary=None):
    """Each forwarder's name and how to start it: f(fwd, targets, udp_target, workdir) -> [Proc],
    udp_target being the UDP echo's port and the DNS server's."""
    table = {
        "ambassador": ambassador(binary),
        "socat": socat(""),
        "socat-b1024": socat(",backlog=1024"),
        "haproxy": haproxy,
        "nginx": nginx,
        "rinetd": rinetd,
    }
    if ab_binary:
        table["ambassador-ab"] = ambassador(ab_binary)
    # dockerd's userland proxy, and ambassador in its place (opt in: --only).
    table["docker-proxy"] = userland_proxy("docker-proxy")
    table["ambassador-dp"] = userland_proxy(binary)
    return table


class Forwarder:
    """One forwarder setup: rules from listen ports to target ports."""

    def __init__(self, name, start, targets, udp_target, workdir):
        """start: how to start this peer (from peers()); None for direct.
        udp_target: the UDP echo's port and the DNS server's."""
        self.name = name
        self.procs = []
        self.port = {}
        self.udp_port = self.dns_port = None
        if name == "direct":
            self.port = {t: t for t in targets}
            self.udp_port, self.dns_port = udp_target
            return
        for t in targets:
            self.port[t] = free_port()
        if name in UDP_FORWARDERS:
            self.udp_port = free_port(kind=socket.SOCK_DGRAM)
            self.dns_port = free_port(kind=socket.SOCK_DGRAM)
        self.procs = start(self, targets, udp_target, workdir)
        # Listening, seen in /proc/net/tcp: a test connection would start
        # threads and buffers before RSS at start is read.
        for t in targets:
            listening(self.port[t])

    def pids(self):
        return pids(self.procs)

    def pss_kb(self):
        return sum(status_kb(pid, "Pss", "smaps_rollup") for pid in self.pids())

    def rss_kb(self):
        return sum(status_kb(p.pid, "VmRSS") for p in self.procs)

    def cpu_s(self):
        return cpu_s(self.procs)

    def threads(self):
        return sum(status_kb(pid, "Threads") for pid in self.pids())

    def stop(self):
        # socat's forked UDP children have no timeout: they outlive their
        # parent unless stopped too, by their PIDs.
        forked = [pid for p in self.procs for pid in children(p.pid)]
        for p in self.procs:
            p.stop()
        for pid in forked:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
