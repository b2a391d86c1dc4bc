# Helpers shared by the shell scripts, sourced after `cd` to the repository:
#   musl_binary [TARGET]      build target/TARGET/release/ambassador (cargo: a no-op when fresh); print its absolute path
#   proc_threads PID, proc_fds PID
#   settled PID THREADS FDS [SECONDS]   until the process is back to those figures (default 15 s)
#   ok WHAT / bad WHAT / check WHAT CMD...   count passes and failures in $passed and $failed

musl_binary() {
    local target=${1:-x86_64-unknown-linux-musl}
    local bin=target/$target/release/ambassador
    cargo build --release --target "$target" -q || return 1
    readlink -f "$bin"
}

proc_threads() { awk '/^Threads:/{print $2}' "/proc/$1/status" 2>/dev/null; }
proc_fds() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }

settled() {
    local i tries=$(( ${4:-15} * 10 ))
    for i in $(seq 1 "$tries"); do
        [ "$(proc_threads "$1")" = "$2" ] && [ "$(proc_fds "$1")" = "$3" ] && return 0
        sleep 0.1
    done
    echo "     pid $1: threads $(proc_threads "$1") (want $2), fds $(proc_fds "$1") (want $3)"
    return 1
}

passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok   - $*"; }
bad() { failed=$((failed + 1)); echo "FAIL - $*"; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
