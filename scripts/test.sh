#!/usr/bin/env bash
# Every test, from a fresh machine: installs what the tests need (Debian
# packages, Rust targets) when it is missing, then runs lint, unit and
# integration tests, the static binaries, demos, fuzzing, faults, soak and
# Docker end to end. --quick runs only the fast part a developer runs often:
# fmt, clippy and cargo test.
# Usage: scripts/test.sh [--quick]          (as root, or with sudo available)
set -euo pipefail
cd "$(dirname "$0")/.."
quick=false
case ${1:-} in
    --quick) quick=true ;;
    "") ;;
    *) echo "Usage: scripts/test.sh [--quick]" >&2; exit 2 ;;
esac

say() { printf '\n== %s\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# program:package pairs the tests run for real.
needed=(redis-server:redis-server redis-cli:redis-tools socat:socat unshare:util-linux
        ip:iproute2 busybox:busybox-static qemu-aarch64-static:qemu-user-static
        haproxy:haproxy iperf3:iperf3 redis-benchmark:redis-tools file:file)
missing=()
for pair in "${needed[@]}"; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
fi
for target in x86_64-unknown-linux-musl aarch64-unknown-linux-musl; do
    rustup target list --installed | grep -qx "$target" || rustup target add "$target"
done
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt

say "cargo fmt --check && cargo clippy"
cargo fmt --check
cargo clippy --all-targets -- -D warnings

say "cargo test"
cargo test

$quick && exit 0

say "static release binary"
cargo build --release --target x86_64-unknown-linux-musl
bin=target/x86_64-unknown-linux-musl/release/ambassador
size=$(stat -c %s "$bin")
file "$bin"
file "$bin" | grep -q 'static' || { echo "FAIL: $bin is not static"; exit 1; }
[ "$size" -lt 1000000 ] || { echo "FAIL: $bin is $size bytes, over 1 MB"; exit 1; }
echo "ok: $bin is static, $size bytes"

say "benchmark smoke test (scripts/bench --quick)"
scripts/bench --quick --json bench-out/quick.json

say "aarch64: static binary under qemu-user"
bash scripts/cross-test.sh --arch aarch64

say "two-host demo (network namespaces)"
bash scripts/two-host-demo.sh

if docker info >/dev/null 2>&1; then
    say "two-host demo (--docker)"
    bash scripts/two-host-demo.sh --docker
fi

say "fuzzing, quick form (scripts/fuzz.sh for 10 million runs each)"
bash scripts/fuzz.sh --runs 300000

say "faults across two hosts"
bash scripts/faults.sh

say "soak, 1 minute"
python3 scripts/soak.py --minutes 1

say "Docker end to end"
bash scripts/docker-e2e.sh
