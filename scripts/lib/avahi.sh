# Avahi (Debian's avahi-daemon) as a test host's mDNS responder, sourced
# after two-hosts.sh by mdns.sh and two-host-demo.sh. It runs in the host's
# network namespace and in a private mount namespace of its own, where this
# run's directory is bound over /etc/avahi (so the hosts file is ours) and a
# tmpfs over /run (its pid file and socket): the machine's /etc and /run are
# not touched, and the package's own service is never started. D-Bus is off
# and it answers on one interface only (allow-interfaces).
#   avahi_start HOST NAME IFACE [ADDRESS=NAME.local ...]   NAME.local is the
#       host's own name, with the interface's addresses; each ADDRESS=FQDN a
#       static record. Its PID in $avahi; returns once every name is
#       established (15 s at most).
#   avahi_hosts ADDRESS=FQDN ...   the hosts file rewritten and reloaded
#       (SIGHUP); returns once the records that are new are established.

AVAHI_DIR=/tmp/amb-avahi-$$

_avahi_write_hosts() {
    local entry
    for entry in "$@"; do echo "${entry%%=*} ${entry#*=}"; done >"$AVAHI_DIR/etc/hosts"
}

# _avahi_wait_for TEXT COUNT: until the log has COUNT lines with TEXT.
_avahi_wait_for() {
    local i
    for i in $(seq 1 150); do
        [ "$(grep -c "$1" "$AVAHI_DIR/log")" -ge "$2" ] && return 0
        kill -0 "$avahi" 2>/dev/null || break
        sleep 0.1
    done
    echo "avahi: no '$1' (x$2) in its log:" >&2
    tail -20 "$AVAHI_DIR/log" >&2
    return 1
}

avahi_start() {
    local host=$1 name=$2 iface=$3
    shift 3
    bash scripts/lib/needs.sh check avahi-daemon || return 1
    mkdir -p "$AVAHI_DIR/etc"
    cat >"$AVAHI_DIR/etc/avahi-daemon.conf" <<EOF
[server]
host-name=$name
allow-interfaces=$iface
use-ipv4=yes
use-ipv6=yes
enable-dbus=no
[wide-area]
enable-wide-area=no
[publish]
publish-hinfo=no
publish-workstation=no
EOF
    _avahi_write_hosts "$@"
    : >"$AVAHI_DIR/log"
    start "$host" unshare --mount --propagation private sh -c \
        "mount --bind $AVAHI_DIR/etc /etc/avahi && mount -t tmpfs avahi-run /run &&
         exec avahi-daemon --no-drop-root --no-chroot --no-rlimits --debug" 2>>"$AVAHI_DIR/log"
    avahi=$started
    _avahi_wait_for "Server startup complete" 1 && _avahi_wait_for "successfully established" $#
}

avahi_hosts() {
    local before new
    before=$(grep -c "successfully established" "$AVAHI_DIR/log")
    cp "$AVAHI_DIR/etc/hosts" "$AVAHI_DIR/hosts.before"
    _avahi_write_hosts "$@"
    # A reload establishes the records that are new; the others stay as they were.
    new=$(grep -cvxF -f "$AVAHI_DIR/hosts.before" "$AVAHI_DIR/etc/hosts")
    kill -HUP "$avahi"
    _avahi_wait_for "successfully established" $((before + new))
}

avahi_clean() { rm -rf "$AVAHI_DIR"; }
