#!/usr/bin/env bash
# Fuzzes everything that reads untrusted input: the RULE parser (rule), the
# environment parser (env), the whole command line through getopts and
# config building (cli), the PROXY protocol header a trusted peer sends
# (proxy), dockerd's command line for its userland proxy (docker_proxy),
# and the multicast DNS answers anyone on the link may send (mdns).
# cargo-fuzz wants nightly; RUSTC_BOOTSTRAP=1 lets the stable toolchain
# serve. Seeds live in fuzz/seeds; the working corpus in fuzz/corpus (not
# committed). A crash leaves its input in fuzz/artifacts.
# Usage: scripts/fuzz.sh [--runs N] [TARGET ...]      (default: 10000000 runs each, all targets)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=10000000
[ "${1:-}" = "--runs" ] && { runs=${2:?--runs takes a number}; shift 2; }
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(rule env cli proxy docker_proxy mdns)
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked -q
export RUSTC_BOOTSTRAP=1
for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$t"
    start=$(date +%s)
    # No sanitizer: the parsers have no unsafe code, and it runs several times faster.
    log=$(mktemp)
    # A v2 PROXY header may run to 1,040 bytes; an mDNS answer is a few
    # hundred (4 KiB leaves room for long record lists); the text parsers
    # see shorter input.
    max_len=512
    [ "$t" = proxy ] && max_len=2048
    [ "$t" = mdns ] && max_len=4096
    if ! cargo fuzz run -s none -O "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- -runs="$runs" -max_len="$max_len" >"$log" 2>&1; then
        grep -E 'ERROR|panicked|SUMMARY|Test unit written|error' "$log" | head -20
        rm -f "$log"
        echo "fuzz: $t failed (the input is in fuzz/artifacts/$t)"
        exit 1
    fi
    grep -E '^Done' "$log"
    rm -f "$log"
    echo "fuzz: $t: $runs runs, no crash ($(($(date +%s) - start)) s)"
done
