# Test hosts on one machine, sourced by two-host-demo.sh and faults.sh:
# network namespaces big-server (192.0.2.1) and client-server (192.0.2.2),
# joined by a veth pair, and other-host (198.51.100.2), joined to big-server
# (198.51.100.1) by a second pair: a host that may reach big-server but is
# not its ambassador's client. 192.0.2.0/24 and 198.51.100.0/24 are
# documentation ranges: these addresses exist only in the namespaces this
# run makes.
# After `hosts_up`: `on big CMD...` / `on client CMD...` run a command on a
# host; `start big CMD...` runs one in the background and records its PID in
# $started; `hosts_down` stops what was started (by PID) and removes all.

BIG_NS=amb-big-$$
CLIENT_NS=amb-client-$$
BIG_IP=192.0.2.1
CLIENT_IP=192.0.2.2
BIG_IF=vb$$
CLIENT_IF=vc$$
OTHER_NS=amb-other-$$
BIG_OTHER_IP=198.51.100.1
OTHER_IP=198.51.100.2
pids=()

ns_of() { case $1 in big) echo "$BIG_NS" ;; client) echo "$CLIENT_NS" ;; other) echo "$OTHER_NS" ;; *) echo "$1" ;; esac; }
on() { local ns; ns=$(ns_of "$1"); shift; ip netns exec "$ns" "$@"; }
start() { local ns; ns=$(ns_of "$1"); shift; ip netns exec "$ns" "$@" & started=$!; pids+=("$started"); }

hosts_up() {
    [ "$(id -u)" = 0 ] || { echo "needs root (ip netns)" >&2; return 1; }
    bash scripts/lib/needs.sh check ip || return 1
    ip netns add "$BIG_NS" && ip netns add "$CLIENT_NS" || return 1
    ip link add "$BIG_IF" type veth peer name "$CLIENT_IF" || return 1
    ip link set "$BIG_IF" netns "$BIG_NS" && ip link set "$CLIENT_IF" netns "$CLIENT_NS" || return 1
    ip -n "$BIG_NS" addr add "$BIG_IP/24" dev "$BIG_IF"
    ip -n "$CLIENT_NS" addr add "$CLIENT_IP/24" dev "$CLIENT_IF"
    for ns in "$BIG_NS" "$CLIENT_NS"; do ip -n "$ns" link set lo up; done
    ip -n "$BIG_NS" link set "$BIG_IF" up && ip -n "$CLIENT_NS" link set "$CLIENT_IF" up || return 1
    ip netns add "$OTHER_NS" || return 1
    ip link add "vbo$$" type veth peer name "vo$$" || return 1
    ip link set "vbo$$" netns "$BIG_NS" && ip link set "vo$$" netns "$OTHER_NS" || return 1
    ip -n "$BIG_NS" addr add "$BIG_OTHER_IP/24" dev "vbo$$"
    ip -n "$OTHER_NS" addr add "$OTHER_IP/24" dev "vo$$"
    ip -n "$OTHER_NS" link set lo up
    ip -n "$BIG_NS" link set "vbo$$" up && ip -n "$OTHER_NS" link set "vo$$" up
}

hosts_down() {
    local pid
    for pid in "${pids[@]:-}"; do [ -n "$pid" ] && kill "$pid" 2>/dev/null; done
    for pid in "${pids[@]:-}"; do [ -n "$pid" ] && wait "$pid" 2>/dev/null; done
    ip netns del "$BIG_NS" 2>/dev/null
    ip netns del "$CLIENT_NS" 2>/dev/null
    ip netns del "$OTHER_NS" 2>/dev/null
    return 0
}

# wait_port HOST ADDRESS PORT: until something accepts there (10 s at most).
wait_port() {
    local i
    for i in $(seq 1 100); do
        on "$1" bash -c "exec 3<>/dev/tcp/$2/$3" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on $2:$3 on $1" >&2
    return 1
}
