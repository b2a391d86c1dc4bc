#!/usr/bin/env bash
# End to end on the real Docker engine: builds the images, then checks the
# scratch image's size, HEALTHCHECK, `docker stop` time with connections
# open, legacy --link variables, the classic busybox usage, following a
# recreated service by name on a user-defined network, and the compose
# example. Everything it starts is named with this run's prefix and removed
# on exit. On a machine without a Docker engine it says so and skips.
# Usage: scripts/docker-e2e.sh
set -uo pipefail
cd "$(dirname "$0")/.."

if ! docker info >/dev/null 2>&1; then
    echo "docker-e2e: no Docker engine here; skipped"
    exit 0
fi

P=ambe2e$$
source scripts/lib/common.sh
# Compose v1 (docker-compose, Debian's package) or v2 (the `docker compose` plugin), whichever is here.
if command -v docker-compose >/dev/null; then compose=(docker-compose)
elif docker compose version >/dev/null 2>&1; then compose=(docker compose)
else compose=()
fi

cleanup() {
    local ids
    ids=$(docker ps -aq --filter "name=^$P-")
    [ -n "$ids" ] && docker rm -f $ids >/dev/null
    [ ${#compose[@]} -gt 0 ] && "${compose[@]}" -f examples/docker-compose.yml -p "$P" down -v >/dev/null 2>&1
    [ ${#compose[@]} -gt 0 ] && "${compose[@]}" -f examples/docker-compose-proxy.yml -p "${P}px" down -v >/dev/null 2>&1
    [ ${#compose[@]} -gt 0 ] && "${compose[@]}" -f examples/docker-compose-replicas.yml -p "${P}rr" down -v >/dev/null 2>&1
    docker network rm "$P-net" >/dev/null 2>&1
    # The connections this script held open, by PID.
    for pid in "${holders[@]:-}"; do [ -n "$pid" ] && kill "$pid" 2>/dev/null; done
    return 0
}
holders=()
trap cleanup EXIT

bash scripts/build-images.sh 2>&1 | grep -v -e DEPRECATED -e 'legacy builder' -e buildx -e 'docs.docker.com' -e '^ *$' \
    || { bad "build images"; echo "docker-e2e: $passed passed, $failed failed"; exit 1; }
REDIS=$(bash scripts/local-image.sh redis) || { bad "redis image"; exit 1; }
DNS=$(bash scripts/local-image.sh dnsmasq) || { bad "dnsmasq image"; exit 1; }

ip_of() { docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}' "$1" | awk '{print $1}'; }
# Runs redis-cli PING in a throwaway container; extra docker-run args first.
ping_via() { docker run --rm "$@" "$REDIS" redis-cli -h redis ping 2>&1 | tr -d '\r'; }
# Runs CMD... up to 20 times, 0.25 s apart, until its output (stderr too, CRs
# dropped) matches the extended regex WANT; the last output is left in $got.
until_matches() { # WANT CMD...
    local want=$1 i
    shift
    for i in $(seq 1 20); do
        got=$("$@" 2>&1 | tr -d '\r')
        [[ $got =~ $want ]] && return 0
        sleep 0.25
    done
    return 1
}
wait_health() { # container wanted-status seconds
    local i
    for ((i = 0; i < $3 * 5; i++)); do
        [ "$(docker inspect -f '{{.State.Health.Status}}' "$1")" = "$2" ] && return 0
        sleep 0.2
    done
    echo "  $1 health: $(docker inspect -f '{{.State.Health.Status}} {{json .State.Health.Log}}' "$1" | tail -c 600)"
    return 1
}

# --- the scratch image's size
size=$(docker image inspect -f '{{.Size}}' ambassador:scratch)
echo "     ambassador:scratch is $size bytes; ambassador:busybox is $(docker image inspect -f '{{.Size}}' ambassador:busybox) bytes"
check "scratch image under 1 MB ($size bytes)" test "$size" -lt 1000000

docker run -d --name "$P-redis" "$REDIS" >/dev/null

# --- legacy --link variables, read through --check
linkvars=$(docker run --rm --link "$P-redis:redis" ambassador:scratch --check 2>&1)
if grep -q 'variable REDIS_PORT_6379_TCP' <<<"$linkvars"; then
    echo "     this engine ($(docker version -f '{{.Server.Version}}')) injects legacy link variables: $linkvars"
    check "link alias first, then the variable's address" grep -Eq '^0\.0\.0\.0:6379:redis:6379,[0-9.]+:6379' <<<"$linkvars"
else
    echo "     this engine ($(docker version -f '{{.Server.Version}}')) injects no legacy link variables (Docker 29+ default): $linkvars"
    ok "no link variables detected and said so"
fi

# --- the classic usage, with the busybox image: --link redis:redis -p 6379:6379
docker run -d --link "$P-redis:redis" --name "$P-redis_ambassador" -p 127.0.0.1::6379 ambassador:busybox >/dev/null
check "classic busybox usage: redis-cli PING through --link gets PONG" \
    test "$(ping_via --link "$P-redis_ambassador:redis")" = PONG
hostport=$(docker port "$P-redis_ambassador" 6379/tcp | head -1)
check "published port (-p) forwards: PING on $hostport" test "$(redis-cli -h 127.0.0.1 -p "${hostport##*:}" ping)" = PONG
check "busybox image has a shell" docker exec "$P-redis_ambassador" sh -c 'ambassador --version'
# Docker's default seccomp profile lets it set SCHED_BATCH: field 41 of each thread's stat.
amb_pid=$(docker inspect -f '{{.State.Pid}}' "$P-redis_ambassador")
policies=$(cat /proc/"$amb_pid"/task/*/stat 2>/dev/null | awk '{print $41}' | sort -u | tr '\n' ' ')
check "threads run under SCHED_BATCH in a container (policies: $policies)" test "$policies" = "3 "

# --- HEALTHCHECK: healthy with env rules, with argument rules (read from PID 1), unhealthy when the target is gone
docker run -d --name "$P-health-env" --health-interval 1s --link "$P-redis:redis" ambassador:scratch >/dev/null
docker run -d --name "$P-health-args" --health-interval 1s --link "$P-redis:db" ambassador:scratch 7000:db:6379 >/dev/null
docker run -d --name "$P-health-bad" --health-interval 1s --health-retries 1 ambassador:scratch --connect-timeout 0.5 7000:127.0.0.1:1 >/dev/null
check "HEALTHCHECK turns healthy (rules from link variables)" wait_health "$P-health-env" healthy 30
check "HEALTHCHECK turns healthy (rules as arguments, read from PID 1)" wait_health "$P-health-args" healthy 30
check "HEALTHCHECK turns unhealthy when no target answers" wait_health "$P-health-bad" unhealthy 30
docker logs "$P-health-args" 2>&1 | grep -q 'listening on 0.0.0.0:7000' || bad "argument rule replaced the link variables"

# --- the Docker daemon's socket on a loopback TCP port, through the scratch image: it runs as
# 65534, so it is given the socket's group (docs/unix-and-proxy.md, "Unix sockets")
sock_gid=$(stat -c %g /var/run/docker.sock)
docker run -d --name "$P-docker-api" -v /var/run/docker.sock:/var/run/docker.sock --group-add "$sock_gid" \
    -p 127.0.0.1::2375 ambassador:scratch 2375:unix:/var/run/docker.sock >/dev/null
api=$(docker port "$P-docker-api" 2375/tcp | head -1)
api_version() { docker -H "tcp://127.0.0.1:${api##*:}" version -f '{{.Server.Version}}'; }
until_matches '^[0-9]+\.' api_version
check "docker -H tcp://$api version through unix:/var/run/docker.sock answers as the socket does ($got)" \
    test "$got" = "$(docker version -f '{{.Server.Version}}')"
check "docker -H tcp://$api ps lists this run's containers" \
    grep -q "$P-docker-api" <<<"$(docker -H "tcp://127.0.0.1:${api##*:}" ps --format '{{.Names}}')"

# --- docker stop with connections open: under 2 s, exit code 0
amb_ip=$(ip_of "$P-health-env")
for i in 1 2 3; do
    # Each holder keeps a connection through the ambassador open until killed.
    bash -c "exec 3<>/dev/tcp/$amb_ip/6379; sleep 60" &
    holders+=($!)
done
sleep 0.5
start=$(date +%s%N)
docker stop "$P-health-env" >/dev/null
ms=$((($(date +%s%N) - start) / 1000000))
echo "     docker stop with 3 connections open took $ms ms"
check "docker stop under 2 s ($ms ms)" test "$ms" -lt 2000
check "exit code 0 after docker stop" test "$(docker inspect -f '{{.State.ExitCode}}' "$P-health-env")" = 0

# --- UDP: a dnsmasq container exposing 53/udp, linked; the engine writes
# DNS_PORT_53_UDP; dig on the published UDP port through the scratch image.
docker run -d --name "$P-dns" "$DNS" >/dev/null
udpvars=$(docker run --rm --link "$P-dns:dns" ambassador:scratch --check 2>&1)
if grep -q 'variable DNS_PORT_53_UDP' <<<"$udpvars"; then
    echo "     the engine writes UDP link variables: $udpvars"
    check "UDP link variable: alias first, then the address, /udp" grep -Eq '^0\.0\.0\.0:53:dns:53,[0-9.]+:53/udp' <<<"$udpvars"
    docker run -d --name "$P-dns-amb" --link "$P-dns:dns" -p 127.0.0.1::53/udp ambassador:scratch >/dev/null
else
    echo "     this engine writes no link variables; the rule is given as an argument: $udpvars"
    ok "no UDP link variables detected and said so"
    docker run -d --name "$P-dns-amb" --link "$P-dns:dns" -p 127.0.0.1::53/udp ambassador:scratch 53:dns:53/udp >/dev/null
fi
dns_port=$(docker port "$P-dns-amb" 53/udp | head -1)
dns_answer() { dig @127.0.0.1 -p "${dns_port##*:}" +short +time=1 +tries=2 web.ambassador.test A; }
until_matches '^192\.0\.2\.10$' dns_answer
check "dig through the scratch image's UDP rule gets dnsmasq's answer ($got)" test "$got" = 192.0.2.10
docker kill -s USR1 "$P-dns-amb" >/dev/null
udp_counters() { docker logs "$P-dns-amb" 2>&1 | grep -E 'rule 0\.0\.0\.0:53:.*/udp: open [0-9]+, served [1-9]' | tail -1; }
until_matches . udp_counters
echo "     docker kill -s USR1: $got"
check "docker kill -s USR1 logs the UDP rule's counters" test -n "$got"

# --- docker stop with --drain 3 and a transfer in flight: it completes, exit code 0.
# A client on the published port GETs an 8 MB value and reads it slowly
# (about 2 s); docker stop is sent after the first MB.
docker run -d --name "$P-drain" --link "$P-redis:redis" -p 127.0.0.1::6379 ambassador:scratch --drain 3 >/dev/null
drain_port=$(docker port "$P-drain" 6379/tcp | head -1)
drain_out=$(timeout 60 python3 - "${drain_port##*:}" "$P-drain" <<'PY'
import hashlib, os, socket, subprocess, sys, time
port, name = int(sys.argv[1]), sys.argv[2]
value = os.urandom(8 << 20)
for _ in range(50):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$%d\r\n" % len(value) + value + b"\r\n")
        if s.recv(5) == b"+OK\r\n":
            break
    except OSError:
        pass
    time.sleep(0.2)
else:
    sys.exit("could not SET through the ambassador")
s.sendall(b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n")
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
want = b"$%d\r\n" % len(value) + value + b"\r\n"
got, stop = bytearray(), None
while len(got) < len(want):
    chunk = s.recv(65536)
    if not chunk:
        break
    got += chunk
    if stop is None and len(got) > (1 << 20):
        t0 = time.time()
        stop = subprocess.Popen(["docker", "stop", name], stdout=subprocess.DEVNULL)
    time.sleep(0.015)
s.close()
if stop is None:
    sys.exit("the reply came before docker stop could be sent")
stop.wait(timeout=30)
print("intact" if hashlib.sha256(got).digest() == hashlib.sha256(want).digest() else f"cut at {len(got)} of {len(want)}",
      f"{(time.time() - t0) * 1000:.0f}")
PY
)
echo "     drain: transfer $drain_out ms from docker stop to exit"
check "docker stop --drain 3: the 8 MB transfer in flight arrived intact" test "${drain_out%% *}" = intact
check "docker stop --drain 3: exit code 0" test "$(docker inspect -f '{{.State.ExitCode}}' "$P-drain")" = 0
check "docker stop --drain 3: the drain log says it finished" \
    bash -c "docker logs '$P-drain' 2>&1 | grep -q '1 open at SIGTERM, 1 finished, 0 reset'"

# --- a user-defined network: the rule names the service; redis is removed and
# recreated with a new address; the same ambassador follows it.
docker network create "$P-net" >/dev/null
docker run -d --name "$P-r1" --network "$P-net" --network-alias redis "$REDIS" >/dev/null
docker run -d --name "$P-amb" --network "$P-net" --network-alias redis-ambassador ambassador:scratch 6379:redis:6379 >/dev/null
sleep 0.5
net_ping() { docker run --rm --network "$P-net" "$REDIS" redis-cli -h redis-ambassador ping 2>&1 | tr -d '\r'; }
check "PING through the ambassador by service name" test "$(net_ping)" = PONG
old_ip=$(ip_of "$P-r1")
started=$(docker inspect -f '{{.State.StartedAt}}' "$P-amb")
docker rm -f "$P-r1" >/dev/null
# Take the freed address so the new redis gets another one.
docker run -d --name "$P-filler" --network "$P-net" busybox sleep 600 >/dev/null
docker run -d --name "$P-r2" --network "$P-net" --network-alias redis "$REDIS" >/dev/null
new_ip=$(ip_of "$P-r2")
echo "     redis moved from $old_ip to $new_ip"
check "recreated redis has a new address" test "$old_ip" != "$new_ip"
until_matches '^PONG$' net_ping
check "same ambassador, not restarted, follows redis to its new address" test "$got" = PONG
check "ambassador was not restarted" test "$(docker inspect -f '{{.State.StartedAt}}' "$P-amb")" = "$started"

# --- the compose example
if [ ${#compose[@]} -gt 0 ]; then
    export REDIS_IMAGE=$REDIS AMBASSADOR_IMAGE=ambassador:scratch
    if "${compose[@]}" -f examples/docker-compose.yml -p "$P" up -d >/dev/null 2>&1; then
        compose_ping() { docker run --rm --network "${P}_default" "$REDIS" redis-cli -h redis-ambassador ping; }
        until_matches '^PONG$' compose_ping
        check "${compose[*]} example: PING through the ambassador service" test "$got" = PONG
        compose_metrics() { docker run --rm --network "${P}_default" busybox wget -qO- http://redis-ambassador:9100/metrics; }
        until_matches 'ambassador_connections_total\{rule="0\.0\.0\.0:6379:redis:6379",outcome="served"\} [1-9]' compose_metrics
        check "${compose[*]} example: /metrics on the compose network counts the PINGs" test $? = 0
    else
        bad "${compose[*]} up"
    fi
    # The PROXY protocol example: far believes headers from near only.
    if "${compose[@]}" -f examples/docker-compose-proxy.yml -p "${P}px" up -d >/dev/null 2>&1; then
        chain_ping() { docker run --rm --network "${P}px_chain" --ip 10.5.0.30 "$REDIS" redis-cli -h near ping; }
        until_matches '^PONG$' chain_ping
        check "${compose[*]} PROXY example: PING through near and far" test "$got" = PONG
        far=$("${compose[@]}" -f examples/docker-compose-proxy.yml -p "${P}px" ps -q far)
        check "${compose[*]} PROXY example: far logs the client behind near" \
            grep -Eq '10\.5\.0\.30:[0-9]+ via 10\.5\.0\.10:[0-9]+ -> ' <<<"$(docker logs "$far" 2>&1)"
        # A client that is not near sends a header claiming to be 10.5.0.99: it is data, not believed.
        printf 'PROXY TCP4 10.5.0.99 10.5.0.20 1 6379\r\nPING\r\n' |
            docker run --rm -i --network "${P}px_chain" --ip 10.5.0.31 "$REDIS" redis-cli -h far >/dev/null 2>&1
        far_log=$(docker logs "$far" 2>&1)
        check "${compose[*]} PROXY example: a header from anyone but near is data, not believed" \
            test -n "$(grep -E '10\.5\.0\.31:[0-9]+ -> ' <<<"$far_log")" -a -z "$(grep '10\.5\.0\.99' <<<"$far_log")"
    else
        bad "${compose[*]} up (PROXY example)"
    fi
    # Three replicas behind one name, shared by --balance round-robin.
    replicas=(-f examples/docker-compose-replicas.yml -p "${P}rr")
    if "${compose[@]}" "${replicas[@]}" up -d --scale redis=3 >/dev/null 2>&1; then
        rr_port=$("${compose[@]}" "${replicas[@]}" port redis-ambassador 6379 | cut -d: -f2)
        rr_ping() { redis-cli -p "$rr_port" ping; }
        until_matches '^PONG$' rr_ping
        # Each replica's run_id, 30 connections: 10 each when shared evenly.
        spread=$(for _ in $(seq 30); do redis-cli -p "$rr_port" INFO server | grep -o 'run_id:[0-9a-f]*'; done | sort | uniq -c | awk '{print $1}' | sort -n | tr '\n' ' ')
        check "${compose[*]} --scale redis=3 behind one name: 30 connections spread over 3 replicas ($spread)" \
            awk '{ exit !(NF == 3 && $1 >= 8) }' <<<"$spread"
    else
        bad "${compose[*]} up --scale (replicas example)"
    fi
else
    bad "neither docker-compose nor docker compose is installed (apt-get install docker-compose)"
fi

echo "docker-e2e: $passed passed, $failed failed"
[ "$failed" = 0 ]
