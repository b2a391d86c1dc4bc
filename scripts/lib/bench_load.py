"""The loads the benchmark runs through each forwarder and what it reads
while they run: bulk (iperf3), request/response and new connections
(redis-benchmark), UDP datagrams (examples/udp_bench), DNS queries
(dnsperf against dnsmasq), idle memory with
connections and sessions held open, and CPU time per unit of work.
`run_round` runs them all once through one forwarder and records each
figure with `rec(group, key, value)`.
"""

import json
import os
import socket
import subprocess
import sys
import time

from amb import ROOT
from bench_peers import Forwarder

UDP_BENCH = os.path.join(ROOT, "target", "release", "examples", "udp_bench")


def meminfo_kb():
    fields = {}
    with open("/proc/meminfo") as f:
        for line in f:
            k, v = line.split(":", 1)
            fields[k] = int(v.split()[0])
    return fields["Slab"] + fields["KernelStack"] + fields["PageTables"]


def iperf(port, streams, reverse, seconds):
    args = ["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", str(seconds), "-P", str(streams), "-J"]
    if reverse:
        args.append("-R")
    # iperf3's server serves one test at a time and now and then drops the
    # next control connection after a torn-down one: try again, at most 3 times.
    for attempt in range(3):
        out = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 30)
        data = json.loads(out.stdout)
        if "error" not in data:
            received = data["end"]["sum_received"]
            return received["bits_per_second"] / 1e9, received["bytes"]
        print(f"bench:   iperf3: {data['error']} (try {attempt + 1} of 3)", file=sys.stderr, flush=True)
        time.sleep(1)
    raise RuntimeError(data["error"])


def redis_bench(port, clients, pipeline, keepalive, requests):
    args = ["redis-benchmark", "-p", str(port), "-t", "ping_mbulk", "-c", str(clients), "-n", str(requests),
            "-P", str(pipeline), "-k", "1" if keepalive else "0", "--csv"]
    out = subprocess.run(args, capture_output=True, text=True, timeout=120)
    rows = [line.replace('"', "").split(",") for line in out.stdout.splitlines()]
    for row in rows:
        if row and row[0] == "PING_MBULK":
            return {"rps": float(row[1]), "p50": float(row[4]), "p99": float(row[6])}
    raise RuntimeError(f"redis-benchmark printed no PING_MBULK row: {out.stdout} {out.stderr}")


def udp_load(port, seconds):
    out = subprocess.run([UDP_BENCH, "load", f"127.0.0.1:{port}", "50", str(seconds), "64"],
                         capture_output=True, text=True, timeout=seconds + 30)
    if out.returncode != 0:
        raise RuntimeError(f"udp_bench: {out.stderr}")
    return json.loads(out.stdout)


def dnsperf(port, queries, seconds):
    """dnsperf through the port: 50 clients, 50 queries outstanding, for `seconds`."""
    args = ["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", queries, "-c", "50", "-q", "50",
            "-l", str(seconds), "-t", "2"]
    out = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 30)
    got = {}
    for line in out.stdout.splitlines():
        line, words = line.strip(), line.split()
        if line.startswith("Queries completed:"):
            got["completed"] = int(words[2])
        elif line.startswith("Queries lost:"):
            got["lost"] = int(words[2])
        elif line.startswith("Queries per second:"):
            got["qps"] = float(words[3])
        elif line.startswith("Average Latency (s):"):
            got["avg_ms"] = float(words[3]) * 1000
    if len(got) != 4:
        raise RuntimeError(f"dnsperf printed no summary: {out.stdout} {out.stderr}")
    return got


def udp_ready(port, timeout=10.0):
    """Until a datagram to the port comes back (the forwarder is up)."""
    deadline = time.time() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("127.0.0.1", port))
        s.settimeout(0.2)
        while time.time() < deadline:
            try:
                s.send(b"ready?")
                if s.recv(64) == b"ready?":
                    return
            except OSError:
                time.sleep(0.05)
    raise RuntimeError(f"nothing answers UDP on 127.0.0.1:{port}")


def udp_idle_memory(fwd, port, sessions):
    """Memory the forwarder costs per idle UDP session, after one datagram each."""
    before_pss, before_kern = fwd.pss_kb(), meminfo_kb()
    socks = []
    try:
        for _ in range(sessions):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            socks.append(s)
            s.connect(("127.0.0.1", port))
            s.settimeout(1)
            # socat UDP-LISTEN,fork has no socket on the port for a moment
            # after each fork: a datagram then meets "port unreachable".
            for _ in range(10):
                try:
                    s.send(b"hello")
                    if s.recv(64) == b"hello":
                        break
                except (ConnectionRefusedError, socket.timeout):
                    time.sleep(0.05)
            else:
                raise RuntimeError("no echo after 10 tries")
        time.sleep(0.3)
        return {"pss_kb": fwd.pss_kb() - before_pss, "kernel_kb": meminfo_kb() - before_kern}
    finally:
        for s in socks:
            s.close()


def idle_memory(fwd, port, steps):
    """Memory the forwarder costs as idle connections open, one request
    each: at each count in steps, its PSS (total and beyond the start) and
    the kernel memory beyond the start."""
    before_pss, before_kern = fwd.pss_kb(), meminfo_kb()
    socks, out = [], {}
    try:
        # One at a time, each answered before the next: a burst of connects
        # would overflow socat's backlog of 5 and measure SYN retries instead.
        for step in steps:
            while len(socks) < step:
                s = socket.create_connection(("127.0.0.1", port), timeout=10)
                socks.append(s)
                s.sendall(b"PING\r\n")
                if s.recv(16) != b"+PONG\r\n":
                    raise RuntimeError("no PONG")
            time.sleep(0.3)
            pss = fwd.pss_kb()
            out[step] = {"pss_total_kb": pss, "pss_kb": pss - before_pss, "kernel_kb": meminfo_kb() - before_kern}
        out["threads"] = fwd.threads()
        out["processes"] = len(fwd.pids())
    finally:
        for s in socks:
            s.close()
    time.sleep(0.3)
    return out


class Round:
    """One forwarder's round: its figures recorded, its CPU counted, its steps timed."""

    def __init__(self, fwd, rec):
        self.fwd, self.rec, self.clock = fwd, rec, time.time()

    def lap(self, what):
        now = time.time()
        print(f"bench:   {self.fwd.name} {what}: {now - self.clock:.1f} s", file=sys.stderr, flush=True)
        self.clock = now

    def cpu(self, key, units, since):
        if self.fwd.name != "direct":
            self.rec("cpu", key, (self.fwd.cpu_s() - since) * 1e6 / units)


def bulk(r, port, seconds):
    c0, moved = r.fwd.cpu_s(), 0
    for label, streams, reverse in (("1 conn up", 1, False), ("1 conn down", 1, True),
                                    ("8 conns up", 8, False), ("8 conns down", 8, True)):
        gbps, nbytes = iperf(port, streams, reverse, seconds)
        r.rec("bulk", f"{label} gbps", gbps)
        moved += nbytes
    # us per byte * 1e9 bytes / 1e3 = ms per GB
    r.cpu("ms per GB", moved / 1e6, c0)
    r.lap("bulk")


def requests(r, port, count):
    for label, pipeline in (("c50", 1), ("c50 P16", 16)):
        c0 = r.fwd.cpu_s()
        got = redis_bench(port, 50, pipeline, True, count * pipeline)
        r.cpu(f"us per request {label}", count * pipeline, c0)
        r.rec("redis", f"{label} rps", got["rps"])
        r.rec("redis", f"{label} p50 ms", got["p50"])
        r.rec("redis", f"{label} p99 ms", got["p99"])
        r.lap(f"redis {label}")


def new_connections(r, port, count):
    # socat with its default backlog of 5 drops most SYNs (1 s retries):
    # fewer requests keep the run bounded; the rate is what is compared.
    conns = count // (10 if r.fwd.name == "socat" else 1)
    c0 = r.fwd.cpu_s()
    got = redis_bench(port, 50, 1, False, conns)
    r.cpu("us per new conn", conns, c0)
    r.rec("connect", "new conns/s", got["rps"])
    r.lap("new connections")


def idle(r, port, steps):
    m = idle_memory(r.fwd, port, steps)
    for step in steps:
        r.rec("idle", f"kernel kb @{step}", m[step]["kernel_kb"])
        r.rec("idle", f"pss kb @{step}", m[step]["pss_kb"])
        r.rec("idle", f"pss total kb @{step}", m[step]["pss_total_kb"])
    r.rec("idle", "threads", m["threads"])
    r.rec("idle", "processes", m["processes"])
    r.lap("idle")


def udp(r, seconds, sessions):
    port = r.fwd.udp_port
    time.sleep(4)
    udp_ready(port)
    c0 = r.fwd.cpu_s()
    u = udp_load(port, seconds)
    r.cpu("us per UDP datagram", max(1, u["sent"] * (1 - u["loss"])), c0)
    r.rec("udp", "c50 dps", u["rps"])
    r.rec("udp", "c50 p50 ms", u["p50_ms"])
    r.rec("udp", "c50 p99 ms", u["p99_ms"])
    r.rec("udp", "c50 loss %", 100 * u["loss"])
    r.lap("udp")
    time.sleep(2.5)
    m = udp_idle_memory(r.fwd, port, sessions)
    r.rec("udp", "idle kernel kb", m["kernel_kb"])
    r.rec("udp", "idle pss kb", m["pss_kb"])


def dns(r, queries, seconds):
    port = r.fwd.dns_port
    # A few queries first: the sessions (and socat's children) are open
    # before the measured run, as in a resolver that has been running.
    dnsperf(port, queries, 1)
    c0 = r.fwd.cpu_s()
    d = dnsperf(port, queries, seconds)
    r.cpu("us per DNS query", max(1, d["completed"]), c0)
    r.rec("dns", "c50 qps", d["qps"])
    r.rec("dns", "c50 avg ms", d["avg_ms"])
    r.rec("dns", "c50 lost %", 100 * d["lost"] / max(1, d["lost"] + d["completed"]))
    r.lap("dns")


def run_round(name, start, targets, udp_target, args, workdir, rec):
    """Every load once through forwarder `name`, its figures to rec."""
    redis_port, iperf_port = targets
    fwd = Forwarder(name, start, targets, udp_target, workdir)
    r = Round(fwd, rec)
    try:
        if name != "direct":
            rec("footprint", "rss_start_kb", fwd.rss_kb())
        bulk(r, fwd.port[iperf_port], args.seconds)
        requests(r, fwd.port[redis_port], args.requests)
        new_connections(r, fwd.port[redis_port], args.new_conns)
        # The same pause for every forwarder before each of the next tests:
        # what the one before left (exiting processes, parked threads) settles.
        time.sleep(2.5)
        idle(r, fwd.port[redis_port], args.idle_steps)
        if fwd.udp_port:
            dns(r, args.dns_queries, args.seconds)
            udp(r, args.seconds, args.idle)
    finally:
        fwd.stop()
