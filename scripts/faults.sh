#!/usr/bin/env bash
# Faults across two hosts, in the two-host demo's setup (network namespaces):
#   client-server: redis-cli -> ambassador (client side, descriptor limit 64)
#   big-server:    ambassador (server side) -> redis-server
# 1. the link is cut mid-transfer for 3 s and restored: the transfer completes intact;
# 2. the server-side ambassador is restarted: the client side serves again, not restarted;
# 3. redis-server is restarted: both ambassadors serve again, not restarted;
# 4. the client-side ambassador's descriptors are exhausted: it survives and serves again.
# After each case, the ambassadors' threads and descriptors return to where they were.
# Needs root, iproute2, redis-server, redis-tools, python3.
# Usage: scripts/faults.sh [--bin PATH]
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/common.sh
if [ "${1:-}" = "--bin" ]; then bin=$(readlink -f "${2:?--bin takes a path}"); else bin=$(musl_binary) || exit 1; fi
source scripts/lib/two-hosts.sh
trap hosts_down EXIT
hosts_up || exit 1

ping_once() { on client timeout 5 redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | tr -d '\r'; }
# pong_within SECONDS: a PING gets PONG within that time.
pong_within() {
    local i
    for i in $(seq 1 $(($1 * 4))); do
        [ "$(ping_once)" = PONG ] && return 0
        sleep 0.25
    done
    return 1
}
alive() { kill -0 "$1" 2>/dev/null; }

start_redis() {
    start big redis-server --port 16379 --bind 127.0.0.1 --save '' --appendonly no >/dev/null
    redis=$started
    wait_port big 127.0.0.1 16379
}
start_server_side() {
    start big env -i REDIS_PORT_6379_TCP=tcp://127.0.0.1:16379 "$bin" -q
    server=$started
    wait_port big "$BIG_IP" 6379
}

start_redis
start_server_side
log=/tmp/faults-client-$$.log
start client bash -c "ulimit -n 64 && exec env -i REDIS_PORT_6379_TCP=tcp://$BIG_IP:6379 \"$bin\" --connect-timeout 1 \
    --env 7000:no-such-host.invalid:6379,$BIG_IP:6379 2>$log"
client=$started
wait_port client 127.0.0.1 6379
check "PONG through both ambassadors" pong_within 5

# --- 0. a name that does not resolve (no route to any resolver in this namespace: nothing leaves it)
reply=$(on client timeout 20 redis-cli -h 127.0.0.1 -p 7000 ping 2>&1 | tr -d '\r')
check "unresolvable first target: failover to the next, PONG" test "$reply" = PONG
check "unresolvable target: a warning names it" grep -q 'target no-such-host.invalid:6379 failed' "$log"
sleep 2.5
client_base=($(proc_threads "$client") $(proc_fds "$client"))
server_base=($(proc_threads "$server") $(proc_fds "$server"))
echo "     client side: $client_base threads, ${client_base[1]} fds; server side: $server_base threads, ${server_base[1]} fds"

# --- 1. cut the link mid-transfer, restore it
chunk=$(head -c 3000 /dev/urandom | base64 -w0)
want=$( (for i in $(seq 1 60); do printf '%s' "$chunk"; done) | sha256sum | cut -d' ' -f1)
on client redis-cli -h 127.0.0.1 -p 6379 del cut >/dev/null
# 60 APPENDs over about 6 s on one connection, through both ambassadors.
(for i in $(seq 1 60); do echo "APPEND cut $chunk"; sleep 0.1; done) |
    on client timeout 60 redis-cli -h 127.0.0.1 -p 6379 >/tmp/faults-$$.out 2>&1 &
writer=$!
sleep 1.5
ip -n "$BIG_NS" link set "$BIG_IF" down
echo "     link down for 3 s"
sleep 3
ip -n "$BIG_NS" link set "$BIG_IF" up
wait "$writer"
got=$(on client redis-cli -h 127.0.0.1 -p 6379 --raw get cut | tr -d '\n' | sha256sum | cut -d' ' -f1)
check "link cut mid-transfer: all 60 appends arrived, in order, after the link came back" test "$got" = "$want"
check "link cut: 60 replies came back" test "$(grep -c . /tmp/faults-$$.out)" = 60
rm -f /tmp/faults-$$.out
check "link cut: nothing leaked on the client side" settled "$client" "${client_base[@]}"
check "link cut: nothing leaked on the server side" settled "$server" "${server_base[@]}"

# --- 2. restart the server-side ambassador
kill -TERM "$server"
wait "$server" 2>/dev/null
check "server-side ambassador exited 0 on SIGTERM" test $? = 0
check "while it is down, PING fails" test "$(ping_once)" != PONG
start_server_side
check "server side restarted: PONG again through the same client-side ambassador" pong_within 10
check "client-side ambassador was not restarted" alive "$client"
check "restart: nothing leaked on the client side" settled "$client" "${client_base[@]}"

# --- 3. restart redis
kill -TERM "$redis"
wait "$redis" 2>/dev/null
check "while redis is down, PING fails" test "$(ping_once)" != PONG
start_redis
check "redis restarted: PONG again through both ambassadors" pong_within 10
check "neither ambassador was restarted" alive "$client"
alive "$server" || bad "server-side ambassador died"
sleep 2.5
server_base=($(proc_threads "$server") $(proc_fds "$server"))
check "redis restart: nothing leaked on the client side" settled "$client" "${client_base[@]}"

# --- 4. exhaust the client-side ambassador's descriptors (limit 64)
on client python3 -c '
import socket, time
held = []
for _ in range(80):
    try:
        held.append(socket.create_connection(("127.0.0.1", 6379), timeout=2))
    except OSError:
        pass
time.sleep(4)
' &
hog=$!
sleep 2
check "descriptors exhausted: the client-side ambassador is still running" alive "$client"
# EMFILE is error 24; musl and glibc word it differently.
check "descriptors exhausted: it said so (EMFILE, os error 24)" grep -q 'os error 24' "$log"
wait "$hog"
check "descriptors freed: PONG again" pong_within 10
check "descriptor exhaustion: nothing leaked on the client side" settled "$client" "${client_base[@]}"
check "descriptor exhaustion: nothing leaked on the server side" settled "$server" "${server_base[@]}"

rm -f "$log"
echo "faults: $passed passed, $failed failed"
[ "$failed" = 0 ]
