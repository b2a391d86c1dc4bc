#!/usr/bin/env bash
# ambassador as the userland proxy of a real dockerd. A second dockerd of
# this run's own (its own data-root, exec-root, pidfile, API socket and
# bridge, --iptables=false so every published port goes through the proxy,
# the vfs storage driver) runs with --userland-proxy-path set to the static
# binary; the machine's own dockerd and its containers are untouched.
# Checks: redis published on loopback answers PING and a 10 MiB SET/GET
# through ambassador; `ps` shows ambassador with dockerd's own arguments in
# place of docker-proxy; `docker stop` ends it; a UDP port of the dnsmasq
# image answers dig; a host port already in use makes `docker run` fail
# with ambassador's message. Everything is removed at the end.
# Usage: scripts/dockerd-proxy.sh        (as root, with a Docker engine)
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/common.sh

if ! docker info >/dev/null 2>&1; then
    echo "dockerd-proxy: no Docker engine here; skipped"
    exit 0
fi
bash scripts/lib/needs.sh check redis-cli dig ip || exit 1

P=ambdp$$
dir=$(mktemp -d /tmp/$P.XXXX)
bridge=${P:0:15}
sock=$dir/docker.sock
d() { docker -H "unix://$sock" "$@"; }

cleanup() {
    if [ -S "$sock" ]; then
        ids=$(d ps -aq 2>/dev/null)
        [ -n "$ids" ] && d rm -f $ids >/dev/null 2>&1
    fi
    if [ -f "$dir/pid" ]; then
        pid=$(cat "$dir/pid")
        kill "$pid" 2>/dev/null
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    ip link del "$bridge" 2>/dev/null
    # vfs layers may hold mounts for a moment after dockerd exits.
    umount -R "$dir" 2>/dev/null
    rm -rf "$dir"
    [ -n "${holder:-}" ] && kill "$holder" 2>/dev/null
    return 0
}
trap cleanup EXIT

bin=$(musl_binary) || { echo "dockerd-proxy: cannot build the static binary"; exit 1; }
REDIS=$(bash scripts/local-image.sh redis) || exit 1
DNS=$(bash scripts/local-image.sh dnsmasq) || exit 1

# A bridge of this run's own, on a subnet of test addresses only its containers use.
ip link add "$bridge" type bridge
ip addr add 10.213.77.1/24 dev "$bridge"
ip link set "$bridge" up
echo '{}' > "$dir/daemon.json"
dockerd --config-file "$dir/daemon.json" --data-root "$dir/data" --exec-root "$dir/exec" \
    --pidfile "$dir/pid" -H "unix://$sock" --bridge "$bridge" --iptables=false --ip-forward=false \
    --storage-driver vfs --userland-proxy-path "$bin" >"$dir/dockerd.log" 2>&1 &
for _ in $(seq 1 150); do d info >/dev/null 2>&1 && break; sleep 0.2; done
d info >/dev/null 2>&1 || { cat "$dir/dockerd.log" | tail -20; bad "a second dockerd starts"; echo "dockerd-proxy: $passed passed, $failed failed"; exit 1; }
ok "a second dockerd runs with --userland-proxy-path $bin"
for image in "$REDIS" "$DNS"; do docker save "$image" | d load >/dev/null; done

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# --- TCP: redis on a loopback port
port=$(free_port)
d run -d --name "$P-redis" -p "127.0.0.1:$port:6379" "$REDIS" >/dev/null
for _ in $(seq 1 50); do [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ] && break; sleep 0.2; done
check "redis-cli PING through the published port" test "$(redis-cli -p "$port" ping 2>&1)" = PONG
head -c $((10 << 20)) /dev/urandom | base64 -w0 > "$dir/value"
redis-cli -p "$port" -x set big < "$dir/value" >/dev/null
# GET prints the value and a newline.
check "a 10 MiB value SET and GET through it comes back whole" \
    cmp -s <(cat "$dir/value"; echo) <(redis-cli -p "$port" --raw get big)
procs=$(ps -eo args | grep -F -- "$bin -proto tcp" | grep -v grep)
echo "     $procs"
check "ps shows ambassador with dockerd's arguments in place of docker-proxy" \
    grep -q -- "-host-ip 127.0.0.1 -host-port $port -container-ip 10.213.77.[0-9]* -container-port 6379" <<<"$procs"
check "no docker-proxy process for this dockerd" test -z "$(ps -eo args | grep -F "docker-proxy" | grep -F -- "-host-port $port")"
d stop -t 5 "$P-redis" >/dev/null
check "docker stop ends it" test -z "$(ps -eo args | grep -F -- "$bin -proto tcp" | grep -F -- "-host-port $port" | grep -v grep)"

# --- UDP: the dnsmasq image
uport=$(python3 -c 'import socket; s=socket.socket(type=socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# The answer given on the command line: under this dockerd's vfs storage the
# image's own hosts file is not read (dnsmasq answers REFUSED).
d run -d --name "$P-dns" -p "127.0.0.1:$uport:53/udp" "$DNS" dnsmasq --keep-in-foreground --no-resolv \
    --no-hosts --address=/web.ambassador.test/192.0.2.10 --pid-file= --user=nobody --group=nogroup >/dev/null
got=""
for _ in $(seq 1 20); do got=$(dig @127.0.0.1 -p "$uport" +short +time=1 +tries=1 web.ambassador.test 2>/dev/null); [ "$got" = 192.0.2.10 ] && break; done
check "dig through a published UDP port gets dnsmasq's answer ($got)" test "$got" = 192.0.2.10

# --- a host port already in use
taken=$(free_port)
python3 -c 'import socket, time, sys; s=socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(); time.sleep(120)' "$taken" &
holder=$!
for _ in $(seq 1 50); do ss -ltn | grep -q "127.0.0.1:$taken " && break; sleep 0.1; done
msg=$(d run -d --name "$P-clash" -p "127.0.0.1:$taken:6379" "$REDIS" 2>&1)
grep -m1 "cannot listen" <<<"$msg" | sed "s/^/     /"
check "a port in use fails docker run with ambassador's message" grep -q "cannot listen on 127.0.0.1:$taken" <<<"$msg"

echo "dockerd-proxy: $passed passed, $failed failed"
[ "$failed" = 0 ]
