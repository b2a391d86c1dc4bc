#!/usr/bin/env python3
"""What an idle connection costs the ambassador's process, checked
against what docs/performance.md claims: each copier thread keeps at most one stack
page resident (the page that also holds its TLS; a frame of 8 KiB or more
anywhere on the copy path would make it three), and the process's share per
idle connection stays under 24 KB (measured: about 19 KB).

Runs the static release binary in front of a loopback echo server, opens N
connections (one request each), then reads each thread's stack pointer from
/proc/PID/task/TID/syscall, the stack mapping around it from
/proc/PID/maps, and which of its pages are resident from /proc/PID/pagemap.

With --unix the clients come through a unix socket (unix:PATH:HOST:PORT):
each stream type's own read must keep filling only the pages it receives.

Usage: scripts/idle-memory.py [--conns N] [--unix]    (AMBASSADOR=PATH checks another build)
"""

import argparse
import os
import shutil
import socket
import struct
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from amb import Proc, binary, echo_server, free_port, status_kb, wait_port  # noqa: E402

PAGE = os.sysconf("SC_PAGE_SIZE")
# A pooled thread's stack mapping: its 64 KiB stack (src/flow/pool.rs) and a page
# of TLS above it. Mappings made earlier sit above it and may merge into its
# VMA: only this much above the guard page below it is the thread's.
STACK_MAPPING = 64 * 1024 + PAGE
MAX_STACK_PAGES = 1
MAX_PROCESS_KB = 24.0


def mappings(pid):
    out = []
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
            out.append((lo, hi))
    return out


def resident_pages(pid, lo, hi):
    n = 0
    with open(f"/proc/{pid}/pagemap", "rb") as f:
        f.seek(lo // PAGE * 8)
        data = f.read((hi - lo) // PAGE * 8)
    for (entry,) in struct.iter_unpack("<Q", data):
        n += entry >> 63
    return n


def stack_pages(pid):
    """Resident pages of each blocked thread's stack mapping (main thread excluded)."""
    maps = mappings(pid)
    pages = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        if int(tid) == pid:
            continue
        try:
            with open(f"/proc/{pid}/task/{tid}/syscall") as f:
                fields = f.read().split()
        except OSError:
            continue
        if len(fields) < 8:  # running, not blocked in a system call
            continue
        sp = int(fields[-2], 16)
        for lo, hi in maps:
            if lo <= sp < hi:
                pages.append(resident_pages(pid, lo, min(hi, lo + STACK_MAPPING)))
                break
    return pages


def connect(front):
    if front.startswith("unix:"):
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(10)
        s.connect(front[5:])
        return s
    return socket.create_connection(("127.0.0.1", int(front.rsplit(":", 1)[1])), timeout=10)


def wait_unix(path, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            connect(f"unix:{path}").close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {path}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--conns", type=int, default=200)
    ap.add_argument("--unix", action="store_true", help="clients through a unix socket")
    args = ap.parse_args()
    target = echo_server()
    port = free_port()
    work = tempfile.mkdtemp(prefix="ambassador-idle-")
    front = f"unix:{work}/front.sock" if args.unix else f"127.0.0.1:{port}"
    amb = Proc([os.environ.get("AMBASSADOR") or binary(), "-q", f"{front}:127.0.0.1:{target}"])
    socks = []
    failed = []
    try:
        wait_port(port) if not args.unix else wait_unix(front[5:])
        time.sleep(0.3)
        before = status_kb(amb.pid, "Pss", "smaps_rollup")
        for _ in range(args.conns):
            s = connect(front)
            socks.append(s)
            s.sendall(b"ping")
            if s.recv(16) != b"ping":
                raise RuntimeError("no echo")
        time.sleep(0.5)
        per_conn = (status_kb(amb.pid, "Pss", "smaps_rollup") - before) / args.conns
        pages = stack_pages(amb.pid)
        worst = max(pages) if pages else None
        print(f"idle-memory: {args.conns} idle connections{' through a unix socket' if args.unix else ''}: process {per_conn:.1f} KB each; "
              f"{len(pages)} threads, resident stack pages per thread: max {worst}, "
              f"{sum(pages) / max(1, len(pages)):.2f} on average")
        if len(pages) < 2 * args.conns:
            failed.append(f"found {len(pages)} blocked threads' stacks, expected at least {2 * args.conns}")
        if worst is None or worst > MAX_STACK_PAGES:
            failed.append(f"a thread keeps {worst} stack pages resident (at most {MAX_STACK_PAGES} expected)")
        if per_conn > MAX_PROCESS_KB:
            failed.append(f"{per_conn:.1f} KB of process memory per idle connection (under {MAX_PROCESS_KB} expected)")
    finally:
        for s in socks:
            s.close()
        time.sleep(0.3)  # the ends pass through before the stop resets what is left
        amb.stop()
        shutil.rmtree(work, ignore_errors=True)
    for f in failed:
        print(f"idle-memory: FAIL: {f}", file=sys.stderr)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
