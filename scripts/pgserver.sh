#!/usr/bin/env bash
# Throwaway PostgreSQL server for the test suite.
#
#   scripts/pgserver.sh start [PORT]   start (or reuse) a server and print its URL
#   scripts/pgserver.sh start auto     start a new server on a free port and print its URL
#   scripts/pgserver.sh stop [PORT]    stop the server and delete its data directory
#   scripts/pgserver.sh restart [PORT] restart a running server, keeping its data
#   scripts/pgserver.sh url [PORT]     print the URL
#   scripts/pgserver.sh status [PORT]  exit 0 if the server is running
#
# PORT defaults to 54329.  Only the URL goes to stdout, so this works:
#
#   export SESSIONKIT_PG_URL="$(scripts/pgserver.sh start)"
#
# `start PORT` reuses the server of data directory /tmp/sessionkit-pg-PORT when it
# runs, and refuses a port that another process holds.  `start auto` never reuses:
# it takes the first port above 54329 that nothing holds and that has no data
# directory, creates that directory (so concurrent starts never pick the same port)
# and starts a new server there; the port is the one in the URL, and
# `stop PORT` stops that server.  A data directory created by a start that fails or
# is interrupted is removed again.
#
# The server listens on 127.0.0.1 only, trusts every local connection and runs
# with durability switched off (fsync, synchronous_commit, full_page_writes):
# it is for tests, never for data you care about.  If no PostgreSQL server
# binaries are found and we are root, they are installed with apt-get.
# Databases created: sessionkit (main) and sessionkit_ref (reference).
set -euo pipefail

# runuser and useradd live in sbin directories, which the PATH of a root shell may lack
# (su without a login shell keeps the caller's PATH).
PATH="$PATH:/usr/sbin:/sbin"

DEFAULT_PORT=54329
DATABASES=(sessionkit sessionkit_ref)

log() { printf 'pgserver: %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

usage() {
    sed -n '2,9s/^# \{0,1\}//p' "$0" >&2
    exit 2
}

# The data directory and URL of the server on port $1.
set_port() {
    port="$1"
    datadir="/tmp/sessionkit-pg-$port"
    url="postgresql+psycopg://postgres@127.0.0.1:$port/sessionkit"
}

source "$(dirname "${BASH_SOURCE[0]}")/ports.sh"
parse_command_line "$@"

# The data directory this start created, while the start has not succeeded: should the
# script fail or be interrupted, its server is stopped and the directory removed.
created=""
discard_created() {
    [[ -n "$created" ]] || return 0
    log "start did not complete: removing $created"
    if [[ -f "$created/postmaster.pid" ]]; then
        as_pg "$bindir/pg_ctl" -D "$created" -w -t 30 -m immediate stop >/dev/null 2>&1 || true
    fi
    rm -rf "$created" "$created.initdb.log"
    created=""
}
trap discard_created EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

# Highest-versioned /usr/lib/postgresql/*/bin that has initdb.
find_bindir() {
    local candidates
    shopt -s nullglob
    candidates=(/usr/lib/postgresql/*/bin/initdb)
    shopt -u nullglob
    ((${#candidates[@]} > 0)) || return 1
    dirname "$(printf '%s\n' "${candidates[@]}" | sort -V | tail -n 1)"
}

ensure_installed() {
    if bindir="$(find_bindir)"; then
        return
    fi
    [[ $EUID -eq 0 ]] || die "no PostgreSQL server binaries in /usr/lib/postgresql/*/bin; install the 'postgresql' package (needs root)"
    command -v apt-get >/dev/null || die "no PostgreSQL server binaries and no apt-get to install them"
    log "installing PostgreSQL with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends postgresql >&2
    bindir="$(find_bindir)" || die "apt-get installed postgresql but no initdb was found"
}

ensure_user() {
    [[ $EUID -eq 0 ]] || return 0
    if ! id -u postgres >/dev/null 2>&1; then
        log "creating system user postgres"
        useradd --system --user-group --no-create-home --shell /bin/sh postgres
    fi
}

# initdb and the server refuse to run as root: drop to the postgres user when root.
as_pg() {
    if [[ $EUID -eq 0 ]]; then
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

is_running() {
    [[ -f "$datadir/PG_VERSION" ]] && as_pg "$bindir/pg_ctl" -D "$datadir" status >/dev/null 2>&1
}

psql_admin() {
    "$bindir/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d postgres "$@"
}

wait_ready() {
    local i
    for ((i = 0; i < 120; i++)); do
        if "$bindir/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres; then
            return 0
        fi
        sleep 0.5
    done
    [[ -f "$datadir/log" ]] && tail -n 30 "$datadir/log" >&2
    die "server on port $port did not become ready"
}

create_databases() {
    local db exists
    for db in "${DATABASES[@]}"; do
        exists="$(psql_admin -tA -c "SELECT 1 FROM pg_database WHERE datname = '$db'")"
        if [[ "$exists" != 1 ]]; then
            psql_admin -c "CREATE DATABASE $db" >&2
        fi
    done
}

# initdb into the new, empty directory $datadir.
init_datadir() {
    [[ $EUID -ne 0 ]] || chown postgres:postgres "$datadir"
    log "initialising $datadir with $bindir"
    as_pg "$bindir/initdb" -D "$datadir" -U postgres --auth=trust \
        --encoding=UTF8 --locale=C >"$datadir.initdb.log" 2>&1 || {
        cat "$datadir.initdb.log" >&2
        die "initdb failed"
    }
    rm -f "$datadir.initdb.log"
}

launch() {
    log "starting server on 127.0.0.1:$port"
    as_pg "$bindir/pg_ctl" -D "$datadir" -l "$datadir/log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -c fsync=off -c synchronous_commit=off -c full_page_writes=off -k /tmp" \
        start >&2 || {
        [[ -f "$datadir/log" ]] && tail -n 30 "$datadir/log" >&2
        die "pg_ctl start failed (is port $port already in use?)"
    }
}

start() {
    ensure_installed
    ensure_user
    if ((auto)); then
        claim_free_port /tmp/sessionkit-pg- 700 /tmp/.s.PGSQL.
        init_datadir
        launch
    elif is_running; then
        log "already running on port $port (data directory $datadir)"
    else
        if command -v python3 >/dev/null && ! port_is_free "$port"; then
            die "port $port is held by another process, not by a server of $datadir; choose another port or 'start auto'"
        fi
        if [[ ! -f "$datadir/PG_VERSION" ]]; then
            rm -rf "$datadir"
            mkdir -m 700 "$datadir"
            created="$datadir"
            init_datadir
        fi
        launch
    fi
    wait_ready
    create_databases
    created=""
    printf '%s\n' "$url"
}

stop() {
    if [[ ! -e "$datadir" ]]; then
        log "nothing to stop (no $datadir)"
        return 0
    fi
    if bindir="$(find_bindir)" && is_running; then
        log "stopping server on port $port"
        as_pg "$bindir/pg_ctl" -D "$datadir" -w -t 60 -m fast stop >&2 || {
            log "fast shutdown failed; shutting down immediately"
            as_pg "$bindir/pg_ctl" -D "$datadir" -w -t 30 -m immediate stop >&2
        }
    fi
    rm -rf "$datadir"
    log "removed $datadir"
}

restart() {
    bindir="$(find_bindir)" || die "no PostgreSQL server binaries found"
    is_running || die "no server is running on port $port"
    log "restarting server on port $port"
    # -l: the server's output must not go to our stderr, whose reader would wait for it.
    as_pg "$bindir/pg_ctl" -D "$datadir" -l "$datadir/log" -w -t 60 -m fast restart >&2
    wait_ready
    printf '%s\n' "$url"
}

status() {
    if bindir="$(find_bindir)" && is_running && "$bindir/pg_isready" -q -h 127.0.0.1 -p "$port"; then
        log "running on port $port"
        printf '%s\n' "$url"
    else
        log "not running on port $port"
        return 1
    fi
}

case "$cmd" in
start) start ;;
stop) stop ;;
restart) restart ;;
url) printf '%s\n' "$url" ;;
status) status ;;
*) usage ;;
esac
