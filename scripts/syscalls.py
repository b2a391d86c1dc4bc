#!/usr/bin/env python3
"""System calls per unit of work, counted, not timed: the binary runs under
`strace -f -c` in front of a loopback TCP and UDP echo while N sequential
connections (connect, 100 bytes each way, close) and N datagrams (64 bytes
each way, one session) pass, and again with none; the difference over N is
what one connection and one datagram cost in system calls, by name.
Counts, unlike timings, hold on a shared, noisy machine, so two builds are
compared with it (--ab PATH) where a change must cost nothing.

Usage: scripts/syscalls.py [--count N] [--bin PATH] [--ab PATH] [-- EXTRA ARGS]
"""
import argparse
import collections
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import amb  # noqa: E402


def echo_servers():
    """A TCP and a UDP echo on loopback, on daemon threads; their ports."""
    tcp = socket.create_server(("127.0.0.1", 0), backlog=128)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))

    def serve_tcp():
        while True:
            conn, _ = tcp.accept()
            with conn:
                conn.settimeout(5)
                try:
                    while data := conn.recv(65536):
                        conn.sendall(data)
                except OSError:
                    pass

    def serve_udp():
        while True:
            data, peer = udp.recvfrom(65536)
            udp.sendto(data, peer)

    for run in (serve_tcp, serve_udp):
        threading.Thread(target=run, daemon=True).start()
    return tcp.getsockname()[1], udp.getsockname()[1]


def load(tcp_port, udp_port, count):
    for _ in range(count):
        with socket.create_connection(("127.0.0.1", tcp_port), timeout=5) as c:
            c.sendall(b"x" * 100)
            got = b""
            while len(got) < 100:
                got += c.recv(100 - len(got))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.settimeout(5)
        for _ in range(count):
            u.sendto(b"y" * 64, ("127.0.0.1", udp_port))
            assert len(u.recv(100)) == 64


def counted(binary, extra, targets, count):
    """{syscall: calls} for one run of `count` connections and datagrams."""
    tcp_target, udp_target = targets
    listen_tcp, listen_udp = amb.free_port(), amb.free_port(kind=socket.SOCK_DGRAM)
    rules = [f"127.0.0.1:{listen_tcp}:127.0.0.1:{tcp_target}", f"127.0.0.1:{listen_udp}:127.0.0.1:{udp_target}/udp"]
    with tempfile.NamedTemporaryFile("r", suffix=".strace") as out:
        proc = subprocess.Popen(["strace", "-f", "-c", "-q", "-o", out.name, binary, "-q", *extra, *rules])
        try:
            amb.wait_port(listen_tcp)
            time.sleep(0.2)  # the probe connection above has ended on its threads
            load(listen_tcp, listen_udp, count)
            time.sleep(0.5)  # the last connection's threads go back to the pool
        finally:
            # SIGTERM goes to ambassador itself: strace, signalled, would only detach.
            with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as children:
                for pid in children.read().split():
                    os.kill(int(pid), signal.SIGTERM)
            proc.wait(timeout=20)
        calls = collections.Counter()
        for line in out.read().splitlines():
            fields = line.split()
            if len(fields) >= 5 and fields[0][0].isdigit() and fields[-1] != "total":
                calls[fields[-1]] += int(fields[3])
        return calls


def per_unit(binary, extra, targets, count):
    more, base = counted(binary, extra, targets, count), counted(binary, extra, targets, 0)
    return {name: (more[name] - base[name]) / count for name in more | base}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--bin", default=None, help="the binary (default: the static release build)")
    parser.add_argument("--ab", default=None, help="a second binary, counted the same way beside it")
    parser.add_argument("extra", nargs="*", help="more ambassador arguments for both")
    args = parser.parse_args()
    targets = echo_servers()
    builds = {"this": args.bin or amb.binary()}
    if args.ab:
        builds["other"] = args.ab
    results = {name: per_unit(path, args.extra, targets, args.count) for name, path in builds.items()}
    names = sorted({n for r in results.values() for n in r if abs(r[n]) >= 0.01})
    print(f"system calls per (connection + datagram), {args.count} of each, strace -f -c")
    print("syscall".ljust(16) + "".join(name.rjust(10) for name in results))
    for n in names:
        print(n.ljust(16) + "".join(f"{r.get(n, 0):10.2f}" for r in results.values()))
    print("total".ljust(16) + "".join(f"{sum(r.values()):10.2f}" for r in results.values()))


if __name__ == "__main__":
    main()
