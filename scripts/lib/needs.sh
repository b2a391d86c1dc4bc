#!/usr/bin/env bash
# The one list of what the tests, benchmarks, demos and cross builds need from
# Debian: each entry is "what to look for:package", where what to look for is a
# program on PATH (or in /usr/sbin) or, for a package with no program, an
# absolute path to a file it ships. PyPI and crates.io tools are installed by
# the scripts that use them (kubernetes-validate in test.sh, cargo-fuzz in
# fuzz.sh); Rust targets and components by test.sh and build-armv7.sh.
#
# Sourced:   needs_install [WHAT ...]   install what is missing (all of the list by default; as root or with sudo)
#            needs_check WHAT ...       exit 1 with "apt-get install ..." if any is missing
# Executed:  scripts/lib/needs.sh install|check|missing [WHAT ...]   (missing prints the packages, one a line)

NEEDS=(
    redis-server:redis-server redis-cli:redis-tools redis-benchmark:redis-tools
    socat:socat unshare:util-linux nsenter:util-linux chrt:util-linux ip:iproute2 tc:iproute2 nft:nftables file:file
    busybox:busybox-static qemu-aarch64-static:qemu-user-static qemu-arm-static:qemu-user-static
    haproxy:haproxy iperf3:iperf3 rinetd:rinetd nginx:nginx-light
    /usr/lib/nginx/modules/ngx_stream_module.so:libnginx-mod-stream
    systemd-socket-activate:systemd mkfifo:coreutils docker-proxy:docker.io
    avahi-daemon:avahi-daemon /usr/lib/python3/dist-packages/zeroconf/__init__.py:python3-zeroconf
    dnsmasq:dnsmasq-base dig:bind9-dnsutils dnsperf:dnsperf prometheus:prometheus promtool:prometheus
    arm-linux-gnueabihf-gcc:gcc-arm-linux-gnueabihf
    /usr/lib/arm-linux-musleabihf/libc.a:musl-dev:armhf
)

# Prints the package an entry needs when what it names is not on this machine.
_needs_missing_one() {
    local what=${1%%:*} pkg=${1#*:}
    case $what in
        /*) [ -e "$what" ] && return 0 ;;
        *) command -v "$what" >/dev/null 2>&1 || PATH=$PATH:/usr/sbin command -v "$what" >/dev/null 2>&1 && return 0 ;;
    esac
    echo "$pkg"
}

# Prints the packages missing for WHAT ... (every entry when none is named), each once.
needs_missing() {
    local entry want found
    for entry in "${NEEDS[@]}"; do
        if [ $# -gt 0 ]; then
            found=false
            for want in "$@"; do [ "${entry%%:*}" = "$want" ] && found=true; done
            $found || continue
        fi
        _needs_missing_one "$entry"
    done | awk '!seen[$0]++'
    for want in "$@"; do
        printf '%s\n' "${NEEDS[@]}" | grep -q "^$want:" || { echo "needs: $want is not in scripts/lib/needs.sh" >&2; return 2; }
    done
}

needs_check() {
    local missing
    missing=$(needs_missing "$@") || return 2
    [ -z "$missing" ] && return 0
    echo "missing $*: apt-get install $(echo $missing)   (scripts/test.sh installs the whole list)" >&2
    return 1
}

needs_install() {
    local missing
    missing=$(needs_missing "$@") || return 2
    [ -z "$missing" ] && return 0
    _as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
    echo "needs: installing $(echo $missing)" >&2
    if grep -q ':armhf$' <<<"$missing" && ! dpkg --print-foreign-architectures | grep -qx armhf; then
        _as_root dpkg --add-architecture armhf
    fi
    # A mirror mid-sync, or a source with no armhf index, fails only that index; the install says what matters.
    _as_root apt-get update -qq >/dev/null 2>&1 || echo "needs: apt-get update reported an error; installing anyway" >&2
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive _as_root apt-get install -y -qq --no-install-recommends $missing >/dev/null
    needs_check "$@"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -uo pipefail
    verb=${1:-}
    shift || true
    case $verb in
        install) needs_install "$@" ;;
        check) needs_check "$@" ;;
        missing) needs_missing "$@" ;;
        *) echo "Usage: scripts/lib/needs.sh install|check|missing [WHAT ...]" >&2; exit 2 ;;
    esac
fi
