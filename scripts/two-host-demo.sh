#!/usr/bin/env bash
# The classic two-host ambassador demo on one machine.
#
#   (redis-cli) -> (ambassador) --network--> (ambassador) -> (redis)
#    client-server                              big-server
#
# Default mode: two network namespaces joined by a veth pair stand for the
# two hosts (big-server 192.0.2.1, client-server 192.0.2.2: documentation
# addresses that exist only inside this demo). --docker: the article's own
# `docker run` lines with our images on this machine's Docker engine.
# Prints each step as the article does; exits 0 only on PONG; removes all it
# made, also on failure. The netns demo's last act names big-server vm1.local,
# answered by avahi in its namespace. Needs root, iproute2, redis-server,
# redis-tools and avahi-daemon (and Docker for --docker).
# Usage: scripts/two-host-demo.sh [--docker] [--bin PATH]
set -uo pipefail
cd "$(dirname "$0")/.."

mode=netns
bin=
while [ $# -gt 0 ]; do
    case $1 in
        --docker) mode=docker ;;
        --bin) bin=${2:?--bin takes a path}; shift ;;
        -h | --help) sed -n '2,15p' "$0"; exit 0 ;;
        *) echo "two-host-demo: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done

step() { printf '\n%s $ %s\n' "$1" "$2"; }
die() { echo "two-host-demo: $*" >&2; exit 1; }

netns_demo() {
    bash scripts/lib/needs.sh check redis-server redis-cli ip avahi-daemon || exit 1
    source scripts/lib/common.sh
    if [ -n "$bin" ]; then bin=$(readlink -f "$bin"); else bin=$(musl_binary) || die "cannot build the binary"; fi
    source scripts/lib/two-hosts.sh
    trap hosts_down EXIT
    echo "# Two hosts: network namespaces $BIG_NS ($BIG_IP) and $CLIENT_NS ($CLIENT_IP), joined by a veth pair."
    hosts_up || die "cannot make the two hosts"

    step big-server "redis-server --port 16379 --bind 127.0.0.1          # the redis container"
    start big redis-server --port 16379 --bind 127.0.0.1 --save '' --appendonly no >/dev/null
    wait_port big 127.0.0.1 16379 || die "redis-server did not start"

    step big-server "REDIS_PORT_6379_TCP=tcp://127.0.0.1:16379 ambassador --allow $CLIENT_IP   # docker run -d --link redis:redis --name redis_ambassador -p 6379:6379 ambassador --allow <client-server's address>"
    start big env -i REDIS_PORT_6379_TCP=tcp://127.0.0.1:16379 "$bin" --allow "$CLIENT_IP"
    wait_port big "$BIG_IP" 6379 || die "the server-side ambassador did not start"

    step client-server "REDIS_PORT_6379_TCP=tcp://$BIG_IP:6379 ambassador     # docker run -d --name redis_ambassador --expose 6379 -e REDIS_PORT_6379_TCP=tcp://192.168.1.52:6379 ambassador"
    start client env -i REDIS_PORT_6379_TCP=tcp://$BIG_IP:6379 "$bin"
    wait_port client 127.0.0.1 6379 || die "the client-side ambassador did not start"

    step client-server "redis-cli -h 127.0.0.1 -p 6379 ping                    # docker run -i -t --rm --link redis_ambassador:redis relateiq/redis-cli"
    reply=$(on client timeout 10 redis-cli -h 127.0.0.1 -p 6379 ping 2>&1)
    echo "$reply"
    [ "$reply" = PONG ] || die "expected PONG, got: $reply"

    echo
    echo "# A third host, other-host ($OTHER_IP), reaches big-server at $BIG_OTHER_IP but is not in --allow."
    step other-host "redis-cli -h $BIG_OTHER_IP -p 6379 ping"
    reply=$(on other timeout 10 redis-cli -h "$BIG_OTHER_IP" -p 6379 ping 2>&1)
    echo "$reply"
    case $reply in
        *PONG*) die "other-host got PONG: --allow did not keep it out" ;;
        *reset*|*"Connection reset"*|*"Server closed"*) ;;
        *) die "other-host: expected a reset, got: $reply" ;;
    esac
    # The ambassador is still serving the allowed client.
    reply=$(on client timeout 10 redis-cli -h 127.0.0.1 -p 6379 ping 2>&1)
    [ "$reply" = PONG ] || die "client-server: expected PONG after the refused host, got: $reply"
    echo "# refused; client-server still gets $reply"
    proxy_demo
    local_name_demo
}

# The far host by its name instead of an address written by hand (the
# seed articles' weak point): avahi on big-server publishes vm1.local, as
# Raspberry Pi OS and desktop images do out of the box, and the client's
# ambassador asks the link for it.
local_name_demo() {
    source scripts/lib/avahi.sh
    trap 'hosts_down; avahi_clean' EXIT
    echo
    echo "# The far host by its name: no address written by hand."
    step big-server "avahi-daemon        # host-name=vm1: vm1.local is $BIG_IP on the link"
    avahi_start big vm1 "$BIG_IF" || die "avahi-daemon did not start"
    step client-server "ambassador 6381:vm1.local:6379"
    start client env -i "$bin" 6381:vm1.local:6379
    wait_port client 127.0.0.1 6381 || die "the near ambassador did not start"
    step client-server "redis-cli -h 127.0.0.1 -p 6381 ping"
    reply=$(on client timeout 10 redis-cli -h 127.0.0.1 -p 6381 ping 2>&1)
    echo "$reply"
    [ "$reply" = PONG ] || die "expected PONG from vm1.local, got: $reply"
}

# The client's address through the chain: the near ambassador begins each
# connection with a PROXY v2 header, the far one believes it from the near
# host only, logs the real client and applies --allow to it.
proxy_demo() {
    local far_log
    far_log=$(mktemp)
    echo
    echo "# The client's address through the chain (PROXY protocol), on port 6380."
    step big-server "ambassador -v --accept-proxy $CLIENT_IP --allow $CLIENT_IP 6380:127.0.0.1:16379"
    start big env -i "$bin" -v --accept-proxy "$CLIENT_IP" --allow "$CLIENT_IP" 6380:127.0.0.1:16379 2>"$far_log"
    wait_port big "$BIG_IP" 6380 || die "the far ambassador did not start"
    step client-server "ambassador --send-proxy v2 6380:$BIG_IP:6380"
    start client env -i "$bin" --send-proxy v2 "6380:$BIG_IP:6380"
    wait_port client "$CLIENT_IP" 6380 || die "the near ambassador did not start"
    step client-server "redis-cli -h $CLIENT_IP -p 6380 ping"
    reply=$(on client timeout 10 redis-cli -h "$CLIENT_IP" -p 6380 ping 2>&1)
    echo "$reply"
    [ "$reply" = PONG ] || die "expected PONG through the PROXY chain, got: $reply"
    seen=$(grep -o "$CLIENT_IP:[0-9]* via $CLIENT_IP:[0-9]* -> 127.0.0.1:16379: open" "$far_log" | head -1)
    echo "# big-server's log: $seen"
    [ -n "$seen" ] || die "the far ambassador did not log the client behind the near one: $(cat "$far_log")"
    step other-host "printf 'PROXY TCP4 $CLIENT_IP $BIG_OTHER_IP 1 6380\\r\\nPING\\r\\n' > /dev/tcp/$BIG_OTHER_IP/6380   # a forged header"
    reply=$(on other timeout 10 bash -c "exec 3<>/dev/tcp/$BIG_OTHER_IP/6380; printf 'PROXY TCP4 $CLIENT_IP $BIG_OTHER_IP 1 6380\r\nPING\r\n' >&3; cat <&3" 2>&1)
    echo "${reply:-(nothing)}"
    case $reply in *PONG*) die "other-host's forged header was believed" ;; esac
    grep -q "$OTHER_IP:[0-9]* is not allowed" "$far_log" || die "other-host was not judged by its own address: $(cat "$far_log")"
    echo "# not believed: other-host is not a trusted peer, so its header is data and --allow judges $OTHER_IP"
    rm -f "$far_log"
}

docker_demo() {
    docker info >/dev/null 2>&1 || die "no Docker engine here"
    bash scripts/build-images.sh >/dev/null 2>&1 || die "scripts/build-images.sh failed"
    redis=$(bash scripts/local-image.sh redis) || die "cannot make the redis image"
    p=demo$$
    cleanup() {
        local ids
        ids=$(docker ps -aq --filter "name=^$p-")
        [ -n "$ids" ] && docker rm -f $ids >/dev/null
        return 0
    }
    trap cleanup EXIT
    run() { "$@" >/dev/null || die "failed: $*"; }

    echo "# Both hosts are this machine's Docker engine; the client side reaches the server side's ambassador at its container address."
    step big-server "docker run -d --name redis $redis"
    run docker run -d --name "$p-redis" "$redis"
    step big-server "docker run -d --link redis:redis --name redis_ambassador -p 6379:6379 ambassador:scratch   (published on 127.0.0.1, a free port)"
    run docker run -d --link "$p-redis:redis" --name "$p-redis_ambassador" -p 127.0.0.1::6379 ambassador:scratch
    far=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$p-redis_ambassador")
    step client-server "docker run -d --name redis_ambassador2 --expose 6379 -e REDIS_PORT_6379_TCP=tcp://$far:6379 ambassador:scratch"
    run docker run -d --name "$p-redis_ambassador2" --expose 6379 -e "REDIS_PORT_6379_TCP=tcp://$far:6379" ambassador:scratch
    step client-server "docker run -i --rm --link redis_ambassador2:redis $redis redis-cli -h redis ping"
    reply=""
    for _ in $(seq 1 20); do
        reply=$(docker run -i --rm --link "$p-redis_ambassador2:redis" "$redis" redis-cli -h redis ping 2>&1 | tr -d '\r')
        [ "$reply" = PONG ] && break
        sleep 0.25
    done
    echo "$reply"
    [ "$reply" = PONG ] || die "expected PONG, got: $reply"
}

if [ "$mode" = docker ]; then docker_demo; else netns_demo; fi
echo
echo "two-host-demo ($mode): PONG through two ambassadors"
