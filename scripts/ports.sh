# Port handling shared by pgserver.sh and mariadbserver.sh (sourced, not run).
# The sourcing script defines DEFAULT_PORT, die() and set_port PORT (its paths and URL).

# parse_command_line "$@": sets cmd and auto, and the port (the default, or the one given).
parse_command_line() {
    cmd="${1:-}"
    auto=0
    if [[ "${2:-}" == auto ]]; then
        [[ "$cmd" == start ]] || die "'auto' is for start only; $cmd needs the port"
        auto=1
        set_port "$DEFAULT_PORT"
    else
        [[ "${2:-$DEFAULT_PORT}" =~ ^[0-9]+$ ]] || die "port must be a number or 'auto', got '$2'"
        set_port "${2:-$DEFAULT_PORT}"
    fi
}

# Whether 127.0.0.1:PORT is free for a server: a test bind with SO_REUSEADDR, as the
# server binds, which a listening socket refuses but a connection in TIME_WAIT does not.
port_is_free() {
    python3 -c '
import socket, sys
with socket.socket() as s:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", int(sys.argv[1])))
    except OSError:
        sys.exit(1)
' "$1"
}

# claim_free_port DIR_PREFIX MODE [LOCK_PREFIX]: for start auto, claim the first port
# above the default that no process holds, with no directory DIR_PREFIX<port> (and no
# file LOCK_PREFIX<port>.lock).  mkdir is the claim: it fails when the directory exists,
# so two starts never take the same port.  Sets the port and created.
claim_free_port() {
    local prefix="$1" mode="$2" lock="${3:-}" p
    command -v python3 >/dev/null || die "start auto needs python3 to find a free port"
    for ((p = DEFAULT_PORT + 1; p <= DEFAULT_PORT + 500; p++)); do
        [[ ! -e "$prefix$p" ]] || continue
        [[ -z "$lock" || ! -e "$lock$p.lock" ]] || continue
        port_is_free "$p" || continue
        mkdir -m "$mode" "$prefix$p" 2>/dev/null || continue
        set_port "$p"
        created="$prefix$p"
        return 0
    done
    die "no free port in $((DEFAULT_PORT + 1))-$((DEFAULT_PORT + 500))"
}
