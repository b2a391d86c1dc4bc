#!/usr/bin/env bash
# Builds the static binary for another architecture and runs it under
# qemu-user on this machine: --check, 4 MiB forwarded both ways through it
# on loopback (compared by hash), a redis PING through it, UDP round trips
# on wildcard listeners (recvmsg/sendmsg with pktinfo, whose layouts differ
# on 32-bit), and a drain on SIGTERM (the timed signal wait, whose symbol
# differs on 32-bit musl), and every thread under SCHED_BATCH (set through
# pthread_setschedparam).
# Usage: scripts/cross-test.sh --arch aarch64|armv7
set -euo pipefail
cd "$(dirname "$0")/.."
arch=
[ "${1:-}" = "--arch" ] && arch=${2:-}
case $arch in
    aarch64) target=aarch64-unknown-linux-musl qemu=qemu-aarch64-static want='ARM aarch64.*statically linked'
             rustup target list --installed | grep -qx "$target" || rustup target add "$target"
             cargo build --release --target "$target" -q ;;
    armv7)   target=armv7-unknown-linux-musleabihf qemu=qemu-arm-static want='32-bit LSB.*ARM.*statically linked'
             bash scripts/build-armv7.sh >/dev/null ;;
    *) echo "Usage: scripts/cross-test.sh --arch aarch64|armv7" >&2; exit 2 ;;
esac
bash scripts/lib/needs.sh check "$qemu" file redis-server redis-cli || exit 1
bin=target/$target/release/ambassador
file "$bin"
file "$bin" | grep -Eq "$want" || { echo "FAIL: not a static $arch binary"; exit 1; }
echo "$arch binary: $(stat -c %s "$bin") bytes"

out=$("$qemu" "$bin" --check 6379:redis:6379,[::1]:7000 5353:dns:53/udp)
want_check=$(printf '0.0.0.0:6379:redis:6379,[::1]:7000\targument 1\n0.0.0.0:5353:dns:53/udp\targument 2')
[ "$out" = "$want_check" ] || { echo "FAIL: --check printed: $out"; exit 1; }
echo "ok: --check under qemu"

timeout 120 python3 - "$qemu" "$bin" <<'PY'
import hashlib, os, re, socket, subprocess, sys, threading, time
sys.path.insert(0, "scripts/lib")
import amb

qemu, binary = sys.argv[1], sys.argv[2]
echo_port = amb.echo_server()

redis_port, port, redis_fwd = amb.free_port(), amb.free_port(), amb.free_port()
redis = amb.Proc(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
fwd = amb.Proc([qemu, binary, f"127.0.0.1:{port}:127.0.0.1:{echo_port}",
                f"127.0.0.1:{redis_fwd}:127.0.0.1:{redis_port}"], env={})
try:
    amb.wait_port(port, timeout=30)
    c = socket.create_connection(("127.0.0.1", port), timeout=20)
    payload = os.urandom(4 << 20)
    threading.Thread(target=lambda: (c.sendall(payload), c.shutdown(socket.SHUT_WR)), daemon=True).start()
    got = bytearray()
    while chunk := c.recv(1 << 16):
        got += chunk
    if hashlib.sha256(got).digest() != hashlib.sha256(payload).digest():
        sys.exit(f"FAIL: {len(got)} bytes came back, not the {len(payload)} sent")
    print(f"ok: {len(payload)} bytes forwarded both ways under qemu, hashes equal")
    amb.wait_port(redis_port)
    out = subprocess.run(["redis-cli", "-p", str(redis_fwd), "PING"], capture_output=True, text=True, timeout=30)
    if out.stdout.strip() != "PONG":
        sys.exit(f"FAIL: redis PING through the binary under qemu answered {out.stdout!r} {out.stderr!r}")
    print("ok: redis-cli PING through the binary under qemu: PONG")
    # qemu-user passes the scheduling call through: the guest's threads are
    # qemu's threads, each with its policy in field 41 of its stat; qemu
    # starts one thread of its own (its RCU thread) before the guest runs.
    policies = []
    for task in os.listdir(f"/proc/{fwd.pid}/task"):
        with open(f"/proc/{fwd.pid}/task/{task}/stat") as f:
            policies.append(int(f.read().rsplit(")", 1)[1].split()[38]))
    if policies.count(3) < 3 or len(policies) - policies.count(3) > 1:
        sys.exit(f"FAIL: thread policies under qemu {sorted(policies)}: want SCHED_BATCH (3) for every guest thread")
    print(f"ok: the guest's {policies.count(3)} threads under SCHED_BATCH under qemu")
finally:
    fwd.stop()
    redis.stop()

# UDP through recvmsg/sendmsg with hand-declared msghdr, cmsghdr and
# pktinfo layouts: wildcard listeners (0.0.0.0 and [::]) must answer from
# the address each client wrote to. A connected client takes replies from
# that address only, so a wrong reply source fails here.
echo_udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
echo_udp.bind(("127.0.0.1", 0))
def echo_datagrams():
    while True:
        data, sender = echo_udp.recvfrom(65535)
        echo_udp.sendto(data, sender)
threading.Thread(target=echo_datagrams, daemon=True).start()
udp4, udp6 = amb.free_port(kind=socket.SOCK_DGRAM), amb.free_port("::1", kind=socket.SOCK_DGRAM)
target = echo_udp.getsockname()[1]
fwd = amb.Proc([qemu, binary, f"0.0.0.0:{udp4}:127.0.0.1:{target}/udp", f"[::]:{udp6}:127.0.0.1:{target}/udp"],
               env={})
try:
    rounds = 0
    for family, dest in ((socket.AF_INET, ("127.0.0.2", udp4)), (socket.AF_INET6, ("::1", udp6)),
                         (socket.AF_INET, ("127.0.0.2", udp6))):
        c = socket.socket(family, socket.SOCK_DGRAM)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        c.connect(dest)
        c.settimeout(2)
        for size in (0, 1472, 65507):
            payload = os.urandom(size)
            for attempt in range(15):  # the first datagram waits for qemu to start the rule
                c.send(payload)
                try:
                    got = c.recv(65535)
                    break
                except socket.timeout:
                    continue
                except ConnectionRefusedError:  # not listening yet: port unreachable
                    time.sleep(0.2)
            else:
                sys.exit(f"FAIL: no {size}-byte reply through {dest} under qemu")
            if got != payload:
                sys.exit(f"FAIL: a {size}-byte datagram through {dest} came back as {len(got)} other bytes")
            rounds += 1
        c.close()
    print(f"ok: {rounds} UDP round trips under qemu (0, 1,472 and 65,507 bytes; 0.0.0.0 and [::] rules, "
          "clients on 127.0.0.2 and ::1): replies came from the address written to")
finally:
    fwd.stop()

drain_port = amb.free_port()
fwd = amb.Proc([qemu, binary, "--drain", "20", f"127.0.0.1:{drain_port}:127.0.0.1:{echo_port}"], env={},
               stderr=subprocess.PIPE)
try:
    amb.wait_port(drain_port, timeout=30)
    c = socket.create_connection(("127.0.0.1", drain_port), timeout=20)
    c.sendall(b"x")
    assert c.recv(1) == b"x"
    fwd.p.send_signal(15)
    threading.Timer(0.5, c.close).start()
    code = fwd.p.wait(timeout=15)
    log = fwd.p.stderr.read().decode()
    # The readiness probe's connection may still count as open under qemu.
    if code != 0 or not re.search(r"([12]) open at SIGTERM, \1 finished, 0 reset", log):
        sys.exit(f"FAIL: drain under qemu: exit {code}: {log}")
    print("ok: --drain under qemu: the open connection finished, exit 0")
finally:
    fwd.stop()
PY
