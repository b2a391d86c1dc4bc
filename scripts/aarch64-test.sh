#!/usr/bin/env bash
# Builds the static aarch64 binary (linked by rust-lld, see .cargo/config.toml)
# and runs it under qemu-user: --check, then 4 MiB forwarded both ways through
# it on loopback to an echo server, compared byte for byte.
# Usage: scripts/aarch64-test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v qemu-aarch64-static >/dev/null || { echo "aarch64-test: apt-get install qemu-user-static" >&2; exit 1; }
rustup target list --installed | grep -qx aarch64-unknown-linux-musl || rustup target add aarch64-unknown-linux-musl
cargo build --release --target aarch64-unknown-linux-musl -q
bin=target/aarch64-unknown-linux-musl/release/ambassador
file "$bin"
file "$bin" | grep -q 'ARM aarch64.*statically linked' || { echo "FAIL: not a static aarch64 binary"; exit 1; }
echo "aarch64 binary: $(stat -c %s "$bin") bytes"

out=$(qemu-aarch64-static "$bin" --check 6379:redis:6379,[::1]:7000)
[ "$out" = "$(printf '0.0.0.0:6379:redis:6379,[::1]:7000\targument 1')" ] || { echo "FAIL: --check printed: $out"; exit 1; }
echo "ok: --check under qemu"

timeout 60 python3 - "$bin" <<'PY'
import hashlib, os, socket, subprocess, sys, threading, time

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

echo = socket.socket()
echo.bind(("127.0.0.1", 0))
echo.listen(8)
def serve():
    conn, _ = echo.accept()
    while True:
        data = conn.recv(65536)
        if not data:
            break
        conn.sendall(data)
    conn.shutdown(socket.SHUT_WR)
threading.Thread(target=serve, daemon=True).start()

port = free_port()
amb = subprocess.Popen(["qemu-aarch64-static", sys.argv[1], f"127.0.0.1:{port}:127.0.0.1:{echo.getsockname()[1]}"],
                       env={}, stderr=subprocess.PIPE)
try:
    for _ in range(100):
        try:
            c = socket.create_connection(("127.0.0.1", port), timeout=10)
            break
        except OSError:
            time.sleep(0.1)
    else:
        sys.exit("FAIL: the aarch64 ambassador never listened")
    c.settimeout(20)
    payload = os.urandom(4 << 20)
    threading.Thread(target=lambda: (c.sendall(payload), c.shutdown(socket.SHUT_WR)), daemon=True).start()
    got = bytearray()
    while True:
        chunk = c.recv(1 << 16)
        if not chunk:
            break
        got += chunk
    if hashlib.sha256(got).digest() != hashlib.sha256(payload).digest():
        sys.exit(f"FAIL: {len(got)} bytes came back, not the {len(payload)} sent")
    print(f"ok: {len(payload)} bytes forwarded both ways through the aarch64 binary under qemu")
finally:
    amb.terminate()
    amb.wait(timeout=10)
PY
