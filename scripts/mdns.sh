#!/usr/bin/env bash
# `.local` names across two hosts, in the two-host demo's setup (network
# namespaces: every mDNS packet stays inside them):
#   big-server:    avahi-daemon (its own name far.local with IPv4 and IPv6;
#                  static six.local, IPv6 only, and moving.local), a second
#                  responder (python-zeroconf: zc.local), redis-server, a UDP
#                  DNS server, and a counter of the mDNS queries on the link
#   client-server: ambassador, whose only unicast resolver is dnsmasq with
#                  query logging (resolv.conf bound in a private mount namespace)
#   side-host:     on a second link of client-server's: python-zeroconf
#                  (side.local) and redis-server
# 1. far.local and six.local from avahi: PONG, and 10 MiB SET/GET intact;
#    zc.local from python-zeroconf: PONG; side.local, answered on the
#    client's second link only: PONG; junk.local, whose responder sends
#    malformed and unrelated packets before its answer: PONG;
# 2. moving.local republished at another address, the old one gone: the
#    client that finds the old address fails, the next one gets PONG;
# 3. a name nobody answers: the client is closed after the three tries
#    (1 + 1 + 2 s) with "no mDNS answer for NAME";
# 4. a UDP rule and --healthcheck resolve .local the same way;
# 5. the unicast resolver was asked for plain.test and for nothing .local;
# 6. 1,000 clients in 10 s to far.local: the queries on the link, counted
#    from big-server, are a handful;
# 7. with --cross, the aarch64 and armv7 static binaries (cross-test.sh
#    builds them) under qemu-user: far.local, PONG (their ifaddrs, ip_mreqn
#    and pollfd layouts);
# 8. with --docker, examples/docker-compose-local-name.yml (the scratch
#    image) in a container whose one network is a veth to big-server:
#    vm1.local, PONG.
# Needs root, iproute2, avahi-daemon, python3-zeroconf, redis, dnsmasq, dig
# (and Docker for --docker).
# Usage: scripts/mdns.sh [--bin PATH] [--cross] [--docker]
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/common.sh
bash scripts/lib/needs.sh check avahi-daemon redis-server redis-cli dnsmasq dig ip unshare nsenter \
    /usr/lib/python3/dist-packages/zeroconf/__init__.py || exit 1
bin=
cross=false
docker=false
while [ $# -gt 0 ]; do
    case $1 in
        --bin) bin=$(readlink -f "${2:?--bin takes a path}"); shift ;;
        --cross) cross=true ;;
        --docker) docker=true ;;
        *) echo "Usage: scripts/mdns.sh [--bin PATH] [--cross] [--docker]" >&2; exit 2 ;;
    esac
    shift
done
[ -n "$bin" ] || bin=$(musl_binary) || exit 1
source scripts/lib/two-hosts.sh
source scripts/lib/avahi.sh
work=/tmp/amb-mdns-$$
container=ambmdns$$
compose=()
lone=amb-lone-$$
SIDE_NS=amb-side-$$
trap 'hosts_down; avahi_clean; $docker && "${compose[@]}" down >/dev/null 2>&1; rm -rf "$work"; ip netns del "$lone" 2>/dev/null; ip netns del "$SIDE_NS" 2>/dev/null' EXIT
mkdir -p "$work"
hosts_up || exit 1

BIG_IP6=2001:db8::1
CLIENT_IP6=2001:db8::2
# Addresses of big-server's that avahi does not publish as its own (they
# are on its loopback), for the static records; the client reaches the
# IPv4 ones by ARP on the link, the IPv6 one by a route.
SIX_IP=2001:db8::6
MOVED_FROM=192.0.2.101
MOVED_TO=192.0.2.102
for host in big client; do
    ns=$(ns_of $host)
    ifc=$([ $host = big ] && echo "$BIG_IF" || echo "$CLIENT_IF")
    ip=$([ $host = big ] && echo "$BIG_IP6" || echo "$CLIENT_IP6")
    on $host sysctl -qw "net.ipv6.conf.$ifc.accept_dad=0"
    ip -n "$ns" link set "$ifc" down && ip -n "$ns" link set "$ifc" up
    ip -n "$ns" addr add "$ip/64" dev "$ifc" nodad
done
# side-host: a second link of client-server's (203.0.113.0/24, only here).
ip netns add "$SIDE_NS" && ip -n "$SIDE_NS" link set lo up
ip link add "vs$$" type veth peer name "vz$$" || exit 1
ip link set "vs$$" netns "$CLIENT_NS" && ip link set "vz$$" netns "$SIDE_NS" || exit 1
ip -n "$CLIENT_NS" addr add 203.0.113.2/24 dev "vs$$" && ip -n "$CLIENT_NS" link set "vs$$" up
ip -n "$SIDE_NS" addr add 203.0.113.1/24 dev "vz$$" && ip -n "$SIDE_NS" link set "vz$$" up
ip -n "$BIG_NS" addr add "$SIX_IP/128" dev lo
ip -n "$BIG_NS" addr add "$MOVED_FROM/32" dev lo
ip -n "$CLIENT_NS" route add "$SIX_IP/128" via "$BIG_IP6"

start big redis-server --port 6379 --bind '* -::*' --protected-mode no --save '' --appendonly no >/dev/null
wait_port big 127.0.0.1 6379 || exit 1
start big dnsmasq --keep-in-foreground --pid-file= --conf-file=/dev/null --no-resolv --no-hosts --bind-interfaces \
    --listen-address="$BIG_IP" --port=5300 --address=/udp.test/192.0.2.99
# With --docker: examples/docker-compose-local-name.yml, its network made
# none here (the example's is the host's, whose interfaces this test must
# not send multicast on); a veth joins the container to big-server
# (198.18.0.0/24, only here), where vm1.local is 198.18.1.1.
links=$BIG_IF
if $docker; then
    bash scripts/build-images.sh >/dev/null 2>&1 || { echo "mdns: scripts/build-images.sh failed" >&2; exit 1; }
    printf 'version: "3.7"\nservices:\n  redis-ambassador:\n    network_mode: none\n' >"$work/no-network.yml"
    if command -v docker-compose >/dev/null; then compose=(docker-compose); else compose=(docker compose); fi
    compose+=(-p "$container" -f examples/docker-compose-local-name.yml -f "$work/no-network.yml")
    "${compose[@]}" up -d >/dev/null 2>&1 || { echo "mdns: docker-compose up failed" >&2; exit 1; }
    pid=$(docker inspect -f '{{.State.Pid}}' "$("${compose[@]}" ps -q redis-ambassador)")
    ip link add "vdb$$" type veth peer name "vdc$$" || exit 1
    ip link set "vdb$$" netns "$BIG_NS" && ip link set "vdc$$" netns "$pid" || exit 1
    ip -n "$BIG_NS" addr add 198.18.0.1/24 dev "vdb$$" && ip -n "$BIG_NS" link set "vdb$$" up
    ip -n "$BIG_NS" addr add 198.18.1.1/32 dev lo
    nsenter -t "$pid" -n ip addr add 198.18.0.2/24 dev "vdc$$" && nsenter -t "$pid" -n ip link set "vdc$$" up
    nsenter -t "$pid" -n ip route add 198.18.1.1/32 via 198.18.0.1
    links="$BIG_IF,vdb$$"
fi
avahi_start big far "$links" "$SIX_IP=six.local" "$MOVED_FROM=moving.local" \
    $($docker && echo 198.18.1.1=vm1.local) || exit 1
start big /usr/bin/python3 scripts/lib/zeroconf_host.py zc "$BIG_IP" 6379 600 >"$work/zeroconf.log" 2>&1
start "$SIDE_NS" /usr/bin/python3 scripts/lib/zeroconf_host.py side 203.0.113.1 6379 600 >"$work/side.log" 2>&1
start "$SIDE_NS" redis-server --port 6379 --bind '*' --protected-mode no --save '' --appendonly no >/dev/null
start big python3 scripts/lib/mdns_peer.py junk "$BIG_IF" junk.local "$BIG_IP" 600 >"$work/junk.log"
for i in $(seq 1 100); do
    grep -q registered "$work/zeroconf.log" && grep -q registered "$work/side.log" &&
        grep -q listening "$work/junk.log" && break
    sleep 0.1
done
check "python-zeroconf registered zc.local and side.local" grep -q registered "$work/zeroconf.log" "$work/side.log"
check "the misbehaving responder listens for junk.local" grep -q listening "$work/junk.log"

# The client's only unicast resolver: dnsmasq on its loopback, logging each
# query, which knows plain.test (and says so for AAAA too: NODATA, where an
# --address rule would answer REFUSED and musl's lookup fail).
echo "$BIG_IP plain.test" >"$work/hosts"
start client dnsmasq --keep-in-foreground --pid-file= --conf-file=/dev/null --no-resolv --no-hosts --bind-interfaces \
    --listen-address=127.0.0.1 --log-queries --log-facility="$work/dnsmasq.log" \
    --addn-hosts="$work/hosts" --local=/test/
echo "nameserver 127.0.0.1" >"$work/resolv.conf"
# resolving on|start client CMD...: CMD on client-server with dnsmasq as its /etc/resolv.conf.
resolving() {
    "$1" "$2" unshare --mount --propagation private sh -c \
        'mount --bind "$0" /etc/resolv.conf && exec "$@"' "$work/resolv.conf" "${@:3}"
}
log=$work/client.log
resolving start client env -i "$bin" -v --connect-timeout 1 7001:far.local:6379 7002:six.local:6379 \
    7003:zc.local:6379 7004:none.local:6379 7005:moving.local:6379 7006:plain.test:6379 7007:$BIG_IP:6379 \
    7008:side.local:6379 7009:junk.local:6379 \
    5300:far.local:5300/udp 2>"$log"
wait_port client 127.0.0.1 7006 || exit 1

ping_on() { on client timeout 15 redis-cli -h 127.0.0.1 -p "$1" ping 2>&1 | tr -d '\r'; }
# answered NAME: the addresses the answers for NAME gave, as the ambassador logged them.
answered() { grep "$1: .* answered" "$log" | sed 's/.* answered \(\[.*\]\) after.*/\1/' | tr '\n' ' '; }
# has WORD... : the standard input holds each WORD.
has() { local text w; text=$(cat); for w in "$@"; do grep -qF -- "$w" <<<"$text" || return 1; done; }

# --- 1. avahi and python-zeroconf answer; bytes flow
check "far.local (avahi): PONG" test "$(ping_on 7001)" = PONG
check "far.local: the answer had its IPv4 and its IPv6 address ($(answered far.local))" \
    has "$BIG_IP" "$BIG_IP6" <<<"$(answered far.local)"
value=$(head -c $((10 * 1024 * 1024 * 3 / 4)) /dev/urandom | base64 -w0)
printf '%s' "$value" >"$work/value"
on client redis-cli -h 127.0.0.1 -p 7001 -x set big <"$work/value" >/dev/null
got=$(on client redis-cli -h 127.0.0.1 -p 7001 --raw get big | head -c ${#value} | sha256sum | cut -d' ' -f1)
check "far.local: 10 MiB SET then GET came back intact" test "$got" = "$(sha256sum <"$work/value" | cut -d' ' -f1)"
check "six.local (AAAA only): PONG" test "$(ping_on 7002)" = PONG
check "six.local: reached at $SIX_IP" grep -q "\[$SIX_IP\]:6379: open" "$log"
check "zc.local (python-zeroconf): PONG" test "$(ping_on 7003)" = PONG
check "side.local, answered on the client's second link only: PONG" test "$(ping_on 7008)" = PONG
check "side.local: reached at 203.0.113.1" grep -q "203.0.113.1:6379: open" "$log"
check "junk.local, after malformed and unrelated packets: PONG" test "$(ping_on 7009)" = PONG
check "junk.local: every answer taken was the real one ($(answered junk.local))" \
    test "$(answered junk.local | tr ' ' '\n' | sort -u | grep .)" = "[$BIG_IP]"
grep -o '[a-z0-9.]*: [^ ]* answered .*' "$log" | sed 's/^/     /'

# --- 2. the host moves (within the 10 s avahi's answer is kept for)
check "moving.local at $MOVED_FROM: PONG" test "$(ping_on 7005)" = PONG
moved=$(date +%s%N)
ip -n "$BIG_NS" addr add "$MOVED_TO/32" dev lo
ip -n "$BIG_NS" addr del "$MOVED_FROM/32" dev lo
avahi_hosts "$SIX_IP=six.local" "$MOVED_TO=moving.local" $($docker && echo 198.18.1.1=vm1.local) || exit 1
echo "     moving.local republished at $MOVED_TO in $((($(date +%s%N) - moved) / 1000000)) ms"
check "moved: the client that finds the kept, old address fails" test "$(ping_on 7005)" != PONG
check "moved: the next client gets PONG from the new address" test "$(ping_on 7005)" = PONG
check "moved: reached at $MOVED_TO" grep -q "$MOVED_TO:6379: open" "$log"

# --- 3. nobody answers
began=$(date +%s%N)
reply=$(ping_on 7004)
waited=$((($(date +%s%N) - began) / 1000000))
check "none.local: the client is closed ($reply) after the three tries (${waited} ms, 4 s expected)" \
    test "$reply" != PONG -a "$waited" -ge 3900 -a "$waited" -lt 9000
check "none.local: the warning says 'no mDNS answer for none.local'" \
    grep -q "target none.local:6379 failed: no mDNS answer for none.local; down" "$log"
# A host with no interface that can multicast (loopback alone) says so at once.
ip netns add "$lone" && ip -n "$lone" link set lo up
began=$(date +%s%N)
out=$(ip netns exec "$lone" "$bin" --healthcheck 7000:far.local:6379)
waited=$((($(date +%s%N) - began) / 1000000))
check "no interface can multicast: far.local fails at once (${waited} ms), saying so" \
    test "$waited" -lt 900 -a -n "$(grep 'no mDNS answer for far.local: no interface here can multicast' <<<"$out")"

# --- 4. UDP and --healthcheck
reply=$(on client dig @127.0.0.1 -p 5300 +short +time=5 +tries=1 udp.test A)
check "UDP rule to far.local:5300: dig gets 192.0.2.99 ($reply)" test "$reply" = 192.0.2.99
out=$(resolving on client env -i "$bin" --healthcheck 7001:far.local:6379 5300:far.local:5300/udp)
rc=$?
check "--healthcheck with far.local passes (exit $rc): $(tr '\n' ' ' <<<"$out")" \
    has "far.local:6379 answers at $BIG_IP:6379" "far.local:5300 resolves to $BIG_IP:5300" <<<"$out"
test "$rc" = 0 || bad "--healthcheck with far.local exited $rc"
out=$(resolving on client env -i "$bin" --healthcheck 7004:none.local:6379)
rc=$?
check "--healthcheck with none.local fails (exit $rc), saying why: $out" \
    test "$rc" = 1 -a -n "$(grep "no mDNS answer for none.local" <<<"$out")"

# --- 5. the unicast resolver
check "plain.test went to the unicast resolver: PONG" test "$(ping_on 7006)" = PONG
check "the resolver's log has plain.test" grep -q "query\[A\] plain.test" "$work/dnsmasq.log"
check "the resolver's log has no .local name" test -z "$(grep -i 'query.*\.local' "$work/dnsmasq.log")"

# Figures, not asserted: a client's connect, PING and PONG through far.local
# (its answer kept) and through the address itself; how long answers took.
on client python3 - <<'EOF'
import socket, statistics, time
def median_us(port, n=300):
    times = []
    for _ in range(n):
        began = time.perf_counter()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"PING\r\n")
            assert s.recv(16) == b"+PONG\r\n"
        times.append((time.perf_counter() - began) * 1e6)
    return statistics.median(times)
local, address = median_us(7001), median_us(7007)
print(f"     connect+PING+PONG, median of 300: far.local {local:.0f} us, its address {address:.0f} us")
EOF
echo "     mDNS answers after: $(grep -o 'answered .* after [0-9.]*[µm]s' "$log" | sed 's/.* after //' | tr '\n' ' ')"

# --- 6. 1,000 clients, a handful of queries
start client env -i "$bin" 7101:far.local:6379 2>/dev/null
wait_port client 127.0.0.1 7101 || exit 1
start big python3 scripts/lib/mdns_peer.py count "$BIG_IF" far.local 12 >"$work/count"
for i in $(seq 1 50); do grep -q listening "$work/count" && break; sleep 0.1; done
served=$(on client python3 - <<'EOF'
import socket, time
served, start = 0, time.monotonic()
for i in range(1000):
    time.sleep(max(0, start + i * 0.01 - time.monotonic()))
    with socket.create_connection(("127.0.0.1", 7101), timeout=10) as s:
        s.sendall(b"PING\r\n")
        served += s.recv(16) == b"+PONG\r\n"
print(served)
EOF
)
wait "$started"
count=$(tail -1 "$work/count")
read -r _ packets _ asks <<<"$count"
echo "     1,000 clients in 10 s: $served served; on the link: $packets query packets, $asks asks"
check "1,000 clients to far.local in 10 s: all served" test "$served" = 1000
check "1,000 clients: the link was asked a handful of times ($asks asks, $packets packets)" \
    test "$asks" -ge 1 -a "$asks" -le 4

# --- 7. the other architectures
if $cross; then
    port=7200
    for arch in aarch64:aarch64-unknown-linux-musl:qemu-aarch64-static armv7:armv7-unknown-linux-musleabihf:qemu-arm-static; do
        IFS=: read -r name target qemu <<<"$arch"
        port=$((port + 1))
        other=target/$target/release/ambassador
        [ -x "$other" ] || { bad "$name: no $other (scripts/cross-test.sh --arch $name builds it)"; continue; }
        start client "$qemu" "$other" "$port:far.local:6379" 2>/dev/null
        wait_port client 127.0.0.1 "$port" || { bad "$name: not listening"; continue; }
        check "$name under qemu-user: far.local, PONG" test "$(ping_on "$port")" = PONG
    done
fi

# --- 8. the image, as the compose example runs it
if $docker; then
    reply=$(nsenter -t "$pid" -n timeout 15 redis-cli -h 127.0.0.1 -p 6379 ping 2>&1 | tr -d '\r')
    check "docker-compose-local-name.yml (ambassador:scratch) on the link: vm1.local, PONG ($reply)" test "$reply" = PONG
fi

[ "$failed" = 0 ] || { echo "     the client-side ambassador's log, last lines:"; tail -25 "$log" | sed 's/^/     /'; }
echo "mdns: $passed passed, $failed failed"
[ "$failed" = 0 ]
