"""Helpers shared by the Python scripts (bench, soak, cross-test): the
release binary (built when stale), free loopback ports, waiting for a
listener, reading a process's threads, descriptors and RSS from /proc, and
waiting until those settle. Import with:

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
    import amb
"""

import os
import socket
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HOST_TARGET = "x86_64-unknown-linux-musl"


def binary(target=HOST_TARGET, build=True):
    """target/TARGET/release/ambassador, built first (cargo: a no-op when fresh)."""
    path = os.path.join(ROOT, "target", target, "release", "ambassador")
    if build:
        subprocess.run(["cargo", "build", "--release", "--target", target, "-q"], cwd=ROOT, check=True)
    return path


def free_port(host="127.0.0.1", kind=socket.SOCK_STREAM):
    """A port on host that was free a moment ago (TCP, or UDP with kind=SOCK_DGRAM)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, kind) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_port(port, host="127.0.0.1", timeout=10.0):
    """Until something accepts TCP connections at host:port; RuntimeError after timeout."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {host}:{port}")


def status_kb(pid, key, path="status"):
    """A 'Key: N kB' field of /proc/PID/status (or another such file); 0 if gone."""
    try:
        with open(f"/proc/{pid}/{path}") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def sample(pid):
    """{'threads', 'fds', 'rss'} of a running process (RSS in KB)."""
    return {
        "threads": status_kb(pid, "Threads"),
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
        "rss": status_kb(pid, "VmRSS"),
    }


def settle(pid, threads=None, fds=None, timeout=20.0, quiet=0.0):
    """Waits until the process shows these threads and fds (or, when not
    given, until both stayed the same for `quiet` seconds); the last sample."""
    deadline = time.time() + timeout
    last, since = sample(pid), time.time()
    while time.time() < deadline:
        time.sleep(0.1)
        now = sample(pid)
        if threads is not None and now["threads"] == threads and now["fds"] == fds:
            return now
        if (now["threads"], now["fds"]) != (last["threads"], last["fds"]):
            since = time.time()
        elif threads is None and time.time() - since >= quiet:
            return now
        last = now
    return last


class Proc:
    """A child process started here, stopped by its PID (TERM, then KILL)."""

    def __init__(self, args, **kw):
        kw.setdefault("stdout", subprocess.DEVNULL)
        kw.setdefault("stderr", subprocess.DEVNULL)
        self.args = args
        self.p = subprocess.Popen(args, **kw)

    @property
    def pid(self):
        return self.p.pid

    def stop(self, sig=15):
        if self.p.poll() is None:
            self.p.send_signal(sig)
            try:
                self.p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(timeout=5)
        return self.p.returncode


def echo(conn):
    """Echoes every byte back until end of stream, then half-closes."""
    while True:
        data = conn.recv(65536)
        if not data:
            break
        conn.sendall(data)
    conn.shutdown(socket.SHUT_WR)


def echo_server(host="127.0.0.1"):
    """A TCP echo server on a thread (a thread per connection); its port."""
    import threading

    ls = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    ls.bind((host, 0))
    ls.listen(64)

    def serve():
        while True:
            conn, _ = ls.accept()
            threading.Thread(target=echo, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    return ls.getsockname()[1]
