#!/usr/bin/env python3
"""Soak: drives churn through one running ambassador for N minutes and checks
that every payload arrives intact and that nothing leaks.

Rules of the ambassador under test (all on loopback):
  echo   -> a server that echoes, speaks first, or resets, as the client asks
  refuse -> a port where nothing listens
  flap   -> an echo server that goes away and comes back every few seconds
  failover -> a first target up 10 s and down 10 s (flapping every 20 s),
            then the echo: the targets' health and the prober at work
  udp-echo, udp-flap -> the same for UDP (/udp rules)
with --idle-timeout, --udp-timeout and a --max-conns below the number of
client workers (TCP connections and UDP sessions share it).

Client workers pick, at random: short and long echoes (client half-closes,
hash compared), server-speaks-first with the client answering after the
server's half-close, server resets (the client must see a reset, never a clean
end), client resets (the server must see a reset), refused connections,
connections to the flapping target, and idle connections (cut by the idle
timeout). UDP workers open short sessions (a few datagrams in lockstep) and
long ones (pauses past --udp-timeout, so sessions expire under load), and
talk to the flapping UDP target: every reply must be the very datagram sent
(a wrong or another client's datagram is a failure); a datagram with no
reply after retries is counted (the cap drops datagrams of new sessions).
Every 2 s a sampler reads the ambassador's threads, descriptors,
RSS and sockets in CLOSE-WAIT.

Exits 0 only if every check passed and threads and descriptors ended where
they started and RSS within a small margin. The last line is a summary.

--netem runs all of it inside a network namespace of its own whose loopback
is a bad network (tc netem): 1% loss, 50 ms +- 10 ms delay, 1% reordering,
0.5% duplication on every packet's way, and the link down for 2 s every
20 s; every hop (client to ambassador, ambassador to target) crosses it.
TCP bytes must still arrive intact and resets still be resets (a reset the
network lost shows as a timeout, counted apart); UDP may lose datagrams,
whose rate is shown beside what netem and the flaps explain, but a reply
that is not a datagram sent on that socket is a failure.
Usage: scripts/soak.py --minutes N [--bin PATH] [--workers N] [--netem]
"""

import argparse
import collections
import errno
import hashlib
import os
import random
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import amb  # noqa: E402
IDLE_TIMEOUT = 1.5
UDP_TIMEOUT = 1.0
MAX_CONNS = 40
RSS_MARGIN_KB = 1024
IO_TIMEOUT = 30
NETEM = "delay 50ms 10ms loss 1% duplicate 0.5% reorder 1% limit 100000"
FLAP_EVERY, FLAP_DOWN = 20, 2
# Inside the netem namespace: errors a bad network causes, counted apart.
IN_NETEM = os.environ.get("AMB_SOAK_IN_NETEM") == "1"
if IN_NETEM:
    # The cap drops datagrams of new sessions by design; under --netem the
    # datagrams lost must be the network's alone.
    MAX_CONNS = 10_000

stats = collections.Counter()
failures = []
lock = threading.Lock()


def count(what, n=1):
    with lock:
        stats[what] += n


def network_error(e):
    """Under --netem, what a lossy, flapping link does to a socket: an
    unreachable network while the link is down, a reset or a FIN lost and
    never repeated (the wait times out)."""
    if not IN_NETEM:
        return False
    # EPERM: a packet the impairment's filter dropped on its way out. A reset:
    # the ambassador gave up on a target it could not reach (the link was
    # down); what is checked is that no byte came corrupted, never a clean end.
    lost = (errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ETIMEDOUT, errno.EPERM)
    unreachable = isinstance(e, OSError) and e.errno in lost
    return unreachable or isinstance(e, (socket.timeout, ConnectionResetError, BrokenPipeError))


def fail(what):
    with lock:
        failures.append(what)
        stats["failures"] += 1


def payload(n, seed):
    out = bytearray()
    block = hashlib.sha256(seed.to_bytes(8, "little")).digest()
    while len(out) < n:
        out += block
        block = hashlib.sha256(block).digest()
    return bytes(out[:n])


def recv_all(s):
    chunks = []
    while True:
        c = s.recv(65536)
        if not c:
            return b"".join(chunks)
        chunks.append(c)


def recv_exact(s, n):
    buf = bytearray()
    while len(buf) < n:
        c = s.recv(n - len(buf))
        if not c:
            raise EOFError("short read")
        buf += c
    return bytes(buf)


def reset_close(s):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def listener(port=0):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(1024)
    return s


# --- servers ---------------------------------------------------------------

def serve_conn(c):
    """First byte and a header say what the client wants."""
    c.settimeout(IO_TIMEOUT)
    mode = None
    try:
        mode = recv_exact(c, 1)
        if mode == b"E":  # echo until end of stream, then half-close
            amb.echo(c)
            c.close()
        elif mode == b"S":  # speak first, half-close, then check what comes back
            n, seed = struct.unpack("<IQ", recv_exact(c, 12))
            c.sendall(payload(n, seed))
            c.shutdown(socket.SHUT_WR)
            got = recv_all(c)
            if got != payload(n, seed + 1):
                fail(f"server-first: server got {len(got)} bytes, not the {n} expected")
            c.close()
        elif mode == b"R":  # send a little, then reset
            c.sendall(b"x" * 1000)
            time.sleep(0.05)
            reset_close(c)
        elif mode == b"C":  # the client will reset: this side must see a reset
            try:
                while c.recv(65536):
                    pass
                fail("client reset arrived as a clean end of stream")
            except ConnectionResetError:
                count("client reset seen as reset")
            c.close()
        else:
            fail(f"unknown mode {mode!r}")
            c.close()
    except (OSError, EOFError) as e:
        # A reset from the client in an echo is part of the churn.
        if mode != b"C":
            count(f"server error {type(e).__name__}")
        c.close()


def accept_loop(ls, stop):
    while not stop.is_set():
        try:
            c, _ = ls.accept()
        except OSError:
            return
        threading.Thread(target=serve_conn, args=(c,), daemon=True).start()


def flapping_server(port, stop, up=3.0, down=1.5, what="flap down"):
    """Up `up` seconds, down `down` seconds, again and again."""
    while not stop.is_set():
        try:
            ls = listener(port)
        except OSError:
            time.sleep(0.1)
            continue
        threading.Thread(target=accept_loop, args=(ls, stop), daemon=True).start()
        stop.wait(up)
        ls.close()
        count(what)
        stop.wait(down)


def udp_echo_server(port, stop):
    """Sends every datagram back to its sender until stopped; the socket."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", port))

    def serve():
        while not stop.is_set():
            try:
                data, addr = s.recvfrom(65536)
            except OSError:
                return  # closed by the flapper, or stopping
            try:
                s.sendto(data, addr)
            except OSError:
                count("udp echo not sent")  # dropped on its way out (--netem)
    threading.Thread(target=serve, daemon=True).start()
    return s


def udp_flapping_server(port, stop):
    """A UDP echo up 3 s, down 1.5 s (its port closed: ICMP port unreachable)."""
    while not stop.is_set():
        try:
            s = udp_echo_server(port, stop)
        except OSError:
            time.sleep(0.1)
            continue
        stop.wait(3)
        s.close()
        count("udp flap down")
        stop.wait(1.5)


# --- clients ---------------------------------------------------------------

def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT)
    s.settimeout(IO_TIMEOUT)
    return s


def echo(port, size):
    seed = random.getrandbits(48)
    data = payload(size, seed)
    s = connect(port)
    sender = threading.Thread(target=lambda: (s.sendall(b"E" + data), s.shutdown(socket.SHUT_WR)))
    sender.start()
    got = recv_all(s)
    sender.join()
    s.close()
    if got != data:
        fail(f"echo of {size} bytes came back as {len(got)} different bytes")
    else:
        count("echo ok")
        count("bytes", 2 * size)


def server_first(port):
    n, seed = random.randint(1, 300_000), random.getrandbits(48)
    s = connect(port)
    s.sendall(b"S" + struct.pack("<IQ", n, seed))
    got = recv_all(s)
    if got != payload(n, seed):
        fail(f"server-first: client got {len(got)} bytes, not {n}")
    time.sleep(random.random() * 0.6)  # longer than socat's 0.5 s cut-off
    s.sendall(payload(n, seed + 1))
    s.shutdown(socket.SHUT_WR)
    recv_all(s)
    s.close()
    count("server-first ok")


def is_reset(e):
    """A reset, however the socket API reports it: from connect() when it
    lands during the handshake's last step, as ENOTCONN from shutdown()."""
    return isinstance(e, (ConnectionResetError, BrokenPipeError)) or (
        isinstance(e, OSError) and e.errno == errno.ENOTCONN)


def expect_reset(port, what, send=b""):
    try:
        s = connect(port)
    except OSError as e:
        if not is_reset(e):
            raise
        count(f"{what} reset ok")
        return
    try:
        if send:
            s.sendall(send)
        while s.recv(65536):
            pass
        fail(f"{what}: clean end of stream instead of a reset")
    except OSError as e:
        if not is_reset(e):
            raise
        count(f"{what} reset ok")
    finally:
        s.close()


def server_reset(port):
    expect_reset(port, "server reset", b"R")


def client_reset(port):
    s = connect(port)
    s.sendall(b"C" + os.urandom(random.randint(1, 50_000)))
    time.sleep(0.02)
    reset_close(s)
    count("client reset sent")


def failover(port):
    """Through the failover rule: always served whole, by the first target
    or the echo behind it; a reset only when the first target went away
    with this connection in its accept queue (counted apart)."""
    try:
        echo(port, random.randint(1, 20_000))
        count("failover served")
    except OSError as e:
        if not is_reset(e):
            raise
        count("failover reset as its target closed")


def refused(port):
    expect_reset(port, "refused target")


def flapping(port):
    """Either served intact (target up) or reset (target down): never corrupt."""
    data = os.urandom(random.randint(1, 20_000))
    s = None
    try:
        s = connect(port)
        s.sendall(b"E" + data)
        s.shutdown(socket.SHUT_WR)
        got = recv_all(s)
        if got == data:
            count("flap served")
        elif got == b"":
            fail("flapping target: clean empty end instead of a reset")
        else:
            fail(f"flapping target: {len(got)} wrong bytes")
    except OSError as e:
        if not is_reset(e):
            raise
        count("flap reset ok")
    finally:
        if s:
            s.close()


def idle(port):
    s = connect(port)
    started = time.time()
    try:
        while s.recv(1):
            pass
        fail("idle connection ended cleanly instead of with a reset")
    except ConnectionResetError:
        waited = time.time() - started
        # Generous bound; a connection waiting in the backlog waits longer.
        if waited > IDLE_TIMEOUT * 2 + 20:
            fail(f"idle connection cut only after {waited:.1f}s")
        count("idle cut ok")
    finally:
        s.close()


def udp_exchange(s, tries=4, kind="echo"):
    """One datagram out and its echo back, retried on silence; True if
    answered. Any reply that is not the very datagram sent is a failure."""
    data = struct.pack("<Q", random.getrandbits(64)) + os.urandom(random.randint(0, 8000))
    for _ in range(tries):
        count(f"udp {kind} tries")
        try:
            s.send(data)
        except PermissionError:  # dropped on its way out by --netem's filter: lost
            count("udp retries")
            count(f"udp {kind} lost")
            continue
        try:
            while True:
                got = s.recv(65536)
                if got == data:
                    count("udp datagrams ok")
                    count("bytes", 2 * len(data))
                    return True
                if got[:8] == data[:8]:
                    fail(f"udp: reply of {len(got)} bytes differs from the {len(data)} sent")
                    return False
                # A late reply to an earlier try of an earlier datagram (or a
                # copy the network made of one): skip it.
                count("udp late replies")
        except socket.timeout:
            count("udp retries")
            count(f"udp {kind} lost")
        except ConnectionRefusedError:
            count("udp refused")
            count(f"udp {kind} lost")
            time.sleep(0.1)
    count("udp unanswered")
    return False


def udp_socket(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect(("127.0.0.1", port))
    s.settimeout(0.5)
    return s


def udp_short(port):
    with udp_socket(port) as s:
        for _ in range(random.randint(1, 5)):
            udp_exchange(s)


def udp_long(port):
    """A session that outlives --udp-timeout now and then: it expires and a
    new one takes over, seen by the client only as a reply that still comes."""
    with udp_socket(port) as s:
        end = time.time() + random.uniform(2, 4)
        while time.time() < end:
            udp_exchange(s)
            time.sleep(UDP_TIMEOUT * 1.5 if random.random() < 0.2 else 0.2)


def udp_flapping(port):
    with udp_socket(port) as s:
        if udp_exchange(s, tries=2, kind="flap"):
            count("udp flap served")


def worker(ports, deadline):
    kinds = [
        ("short echo", 30, lambda: echo(ports["echo"], random.randint(1, 4096))),
        ("long echo", 8, lambda: echo(ports["echo"], random.randint(256_000, 2_000_000))),
        ("server first", 10, lambda: server_first(ports["echo"])),
        ("server reset", 8, lambda: server_reset(ports["echo"])),
        ("client reset", 8, lambda: client_reset(ports["echo"])),
        ("refused", 6, lambda: refused(ports["refuse"])),
        ("flapping", 10, lambda: flapping(ports["flap"])),
        ("failover", 10, lambda: failover(ports["failover"])),
        ("idle", 3, lambda: idle(ports["echo"])),
        ("udp short", 14, lambda: udp_short(ports["udp-echo"])),
        ("udp long", 3, lambda: udp_long(ports["udp-echo"])),
        ("udp flapping", 5, lambda: udp_flapping(ports["udp-flap"])),
    ]
    weights = [k[1] for k in kinds]
    while time.time() < deadline:
        name, _, run = random.choices(kinds, weights)[0]
        try:
            run()
            count("connections")
        except Exception as e:  # any surprise is a failure to report
            if network_error(e):
                count(f"netem {type(e).__name__}")
            else:
                fail(f"{name}: {type(e).__name__}: {e}")


# --- sampling ----------------------------------------------------------------

def sample(pid):
    """amb.sample's threads, fds and RSS, and the sockets left in CLOSE-WAIT."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    close_wait = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            next(f)
            for line in f:
                cols = line.split()
                if cols[3] == "08" and cols[9] in inodes:
                    close_wait += 1
    return dict(amb.sample(pid), close_wait=close_wait)


def in_netem_namespace(args):
    """Runs this soak again inside a namespace whose loopback has netem,
    taking the link down for FLAP_DOWN s every FLAP_EVERY s; its exit code."""
    if subprocess.run(["bash", os.path.join(amb.ROOT, "scripts/lib/needs.sh"), "check", "ip", "tc", "nft"]).returncode:
        sys.exit("soak: --netem needs iproute2 and nftables")
    ns = f"amb-soak-{os.getpid()}"
    ip = lambda *a: subprocess.run(["ip", *a], check=True)  # noqa: E731
    ip("netns", "add", ns)
    try:
        ip("-n", ns, "link", "set", "lo", "up")
        impairment = impair(ns)
        inner = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, os.path.abspath(__file__),
                                  "--minutes", str(args.minutes), "--bin", args.bin, "--workers", str(args.workers)],
                                 env=dict(os.environ, AMB_SOAK_IN_NETEM="1"))
        flaps = 0
        deadline = time.time() + args.minutes * 60 + 300
        while inner.poll() is None and time.time() < deadline:
            try:
                inner.wait(timeout=FLAP_EVERY)
                break
            except subprocess.TimeoutExpired:
                pass
            ip("-n", ns, "link", "set", "lo", "down")
            time.sleep(FLAP_DOWN)
            ip("-n", ns, "link", "set", "lo", "up")
            flaps += 1
        if inner.poll() is None:
            inner.kill()
        code = inner.wait()
        print(f"soak: --netem: {impairment} on loopback, {flaps} flaps of {FLAP_DOWN} s", flush=True)
        return code
    finally:
        subprocess.run(["ip", "netns", "del", ns])


def impair(ns):
    """Makes namespace `ns`'s loopback a bad network; says how. tc netem
    where the kernel has it (sch_netem); otherwise the loss alone, with
    nftables (numgen), and no delay, reordering or duplication."""
    netem = subprocess.run(["ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", "lo", "root", "netem",
                            *NETEM.split()], capture_output=True, text=True)
    if netem.returncode == 0:
        return f"tc netem {NETEM}"
    rules = "table inet soak {\n chain out {\n  type filter hook output priority 0;\n" \
            "  numgen random mod 1000 < 10 drop\n }\n}\n"
    subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=rules, text=True, check=True)
    why = netem.stderr.strip().splitlines()[-1] if netem.stderr.strip() else "unavailable"
    return (f"1% loss on every packet (nftables numgen; tc netem: {why}, so no delay, reordering or "
            "duplication on this kernel)")


def udp_loss_report():
    """Under --netem: the datagram tries lost against what netem explains."""
    tries = stats["udp echo tries"]
    if not IN_NETEM or not tries:
        return ""
    lost = stats["udp echo lost"] / tries
    # A round trip crosses loopback 4 times; the link is down FLAP_DOWN of every FLAP_EVERY s.
    netem = 1 - 0.99 ** 4
    with_flaps = 1 - (1 - netem) * (1 - FLAP_DOWN / FLAP_EVERY)
    late = stats["udp late replies"] / max(1, stats["udp datagrams ok"])
    return (f"; UDP tries to the echo lost {lost:.1%} (netem alone {netem:.1%}, with the flaps up to {with_flaps:.1%}), "
            f"late or duplicated replies skipped {late:.1%} (under tc netem about {1 - 0.995 ** 4:.1%} come "
            f"duplicated; none was a datagram not sent)")


def prober_thread(pid):
    """1 if the process has its prober thread (named so), else 0."""
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/comm") as f:
            if f.read().strip() == "prober":
                return 1
    return 0


def health_report(log, port, strict):
    """The failover rule's first target: its changes of health, each said
    once (as often as the flapper took it down, at most, and up as often).
    Not `strict` under --netem, where a lost SYN takes a target down too."""
    target = f"target 127.0.0.1:{port} "
    down = sum(target in line and "; down, probing it again" in line for line in log.splitlines())
    up = sum(target in line and " up again after " in line for line in log.splitlines())
    flaps = stats["failover target down"]
    if strict and (down > flaps + 1 or up > down or (flaps >= 2 and up == 0)):
        fail(f"failover target: {flaps} flaps, but {down} times said down and {up} times up")
    return f"; failover target flapped {flaps} times: said down {down}, up {up}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, required=True)
    ap.add_argument("--bin")
    ap.add_argument("--workers", type=int, default=48)
    ap.add_argument("--netem", action="store_true", help="a lossy, slow, flapping loopback (see above)")
    args = ap.parse_args()
    args.bin = os.path.abspath(args.bin or amb.binary())
    if args.netem and not IN_NETEM:
        sys.exit(in_netem_namespace(args))
    stop = threading.Event()
    echo_ls = listener()
    threading.Thread(target=accept_loop, args=(echo_ls, stop), daemon=True).start()
    probe = listener()
    flap_port = probe.getsockname()[1]
    refuse_port = listener().getsockname()[1]  # closed at once below: refused
    probe.close()
    threading.Thread(target=flapping_server, args=(flap_port, stop), daemon=True).start()
    slow_flap_port = amb.free_port()
    # The failover rule's first target: up 10 s, down 10 s.
    threading.Thread(target=flapping_server, args=(slow_flap_port, stop, 10, 10, "failover target down"),
                     daemon=True).start()
    udp_echo_port = amb.free_port(kind=socket.SOCK_DGRAM)
    udp_echo_server(udp_echo_port, stop)
    udp_flap_port = amb.free_port(kind=socket.SOCK_DGRAM)
    threading.Thread(target=udp_flapping_server, args=(udp_flap_port, stop), daemon=True).start()
    ports = {}
    rules = []
    for name, target in (("echo", echo_ls.getsockname()[1]), ("refuse", refuse_port), ("flap", flap_port)):
        ports[name] = amb.free_port()
        rules.append(f"127.0.0.1:{ports[name]}:127.0.0.1:{target}")
    ports["failover"] = amb.free_port()
    rules.append(f"127.0.0.1:{ports['failover']}:127.0.0.1:{slow_flap_port},127.0.0.1:{echo_ls.getsockname()[1]}")
    for name, target in (("udp-echo", udp_echo_port), ("udp-flap", udp_flap_port)):
        ports[name] = amb.free_port(kind=socket.SOCK_DGRAM)
        rules.append(f"127.0.0.1:{ports[name]}:127.0.0.1:{target}/udp")
    # Its log (warnings and up): the targets' changes of health are counted from it.
    log = tempfile.TemporaryFile("w+")
    fwd = subprocess.Popen([args.bin, "--idle-timeout", str(IDLE_TIMEOUT), "--max-conns", str(MAX_CONNS),
                            "--udp-timeout", str(UDP_TIMEOUT), "--connect-timeout", "2"] + rules,
                           env={}, stderr=log)
    try:
        amb.wait_port(ports["refuse"])
        # Let the copier that served the readiness probe park and exit.
        time.sleep(3)
        start = sample(fwd.pid)
        had_prober = prober_thread(fwd.pid)
        print(f"soak: start: {start}", flush=True)
        deadline = time.time() + args.minutes * 60
        workers = [threading.Thread(target=worker, args=(ports, deadline), daemon=True)
                   for _ in range(args.workers)]
        for w in workers:
            w.start()
        max_cw = 0
        while any(w.is_alive() for w in workers):
            time.sleep(2)
            s = sample(fwd.pid)
            max_cw = max(max_cw, s["close_wait"])
            print(f"soak: t={args.minutes * 60 - (deadline - time.time()):5.0f}s {s} "
                  f"connections={stats['connections']} failures={stats['failures']}", flush=True)
            if time.time() > deadline + 120:
                fail("workers did not finish within 2 minutes of the deadline")
                break
        stop.set()
        # The prober thread comes when a target first goes down (the
        # readiness probe of the refusing rule may already have started it).
        start["threads"] += prober_thread(fwd.pid) - had_prober
        # Quiet: parked copier threads exit after 2 s; give it up to 20 s.
        amb.settle(fwd.pid, start["threads"], start["fds"], timeout=20)
        end = sample(fwd.pid)
        if fwd.poll() is not None:
            log.seek(0)
            fail(f"ambassador died with {fwd.returncode}: {log.read()[-2000:]}")
    finally:
        stop.set()
        fwd.terminate()
        fwd.wait(timeout=10)
    log.seek(0)
    health = health_report(log.read(), slow_flap_port, strict=not args.netem)
    for what in (("threads", 0), ("fds", 0)):
        if end[what[0]] != start[what[0]]:
            fail(f"{what[0]} went from {start[what[0]]} to {end[what[0]]}")
    if end["rss"] > start["rss"] + RSS_MARGIN_KB:
        fail(f"RSS grew from {start['rss']} KB to {end['rss']} KB")
    if end["close_wait"]:
        fail(f"{end['close_wait']} sockets left in CLOSE-WAIT")
    for f in failures[:20]:
        print(f"soak: FAIL {f}")
    detail = ", ".join(f"{k} {v}" for k, v in sorted(stats.items()) if k not in ("connections", "failures", "bytes"))
    print(f"soak: {detail}")
    verdict = "PASS" if not failures else "FAIL"
    print(f"soak: {args.minutes:g} min, {stats['connections']} connections, {stats['bytes'] / 1e6:.0f} MB verified, "
          f"{stats['failures']} failures; threads {start['threads']}->{end['threads']}, fds {start['fds']}->{end['fds']}, "
          f"RSS {start['rss']}->{end['rss']} KB, CLOSE-WAIT max {max_cw} end {end['close_wait']}{udp_loss_report()}"
          f"{health}: "
          f"{verdict}")
    sys.exit(0 if not failures else 1)


if __name__ == "__main__":
    main()
