#!/usr/bin/env bash
# Throwaway MariaDB server for the test suite.
#
#   scripts/mariadbserver.sh start [PORT]   start (or reuse) a server and print its URL
#   scripts/mariadbserver.sh start auto     start a new server on a free port and print its URL
#   scripts/mariadbserver.sh stop [PORT]    stop the server and delete its data directory
#   scripts/mariadbserver.sh url [PORT]     print the URL
#   scripts/mariadbserver.sh status [PORT]  exit 0 if the server is running
#
# PORT defaults to 33069.  Only the URL goes to stdout, so this works:
#
#   export SESSIONKIT_MYSQL_URL="$(scripts/mariadbserver.sh start)"
#
# `start PORT` reuses the server of /tmp/sessionkit-mariadb-PORT when it runs, and
# refuses a port that another process holds.  `start auto` never reuses: it takes the
# first port above 33069 that nothing holds and that has no directory
# /tmp/sessionkit-mariadb-PORT, creates that directory (so concurrent starts never
# pick the same port) and starts a new server there; the port is the one in the URL,
# and `stop PORT` stops that server.  A directory created by a start that fails or is
# interrupted is removed again, and the server it started is stopped.
#
# The server listens on 127.0.0.1 only, has a password-less TCP user
# 'sessionkit'@'127.0.0.1' with every privilege (the tests create and drop
# databases) and runs with durability switched off (no log flush at commit, no
# doublewrite, no binary log): it is for tests, never for data you care about.
# If mariadbd is not found and we are root, mariadb-server is installed with
# apt-get without starting the distribution's service.
# Databases created: sessionkit (main) and sessionkit_ref (reference).
set -euo pipefail

# runuser and useradd live in sbin directories, which the PATH of a root shell may lack
# (su without a login shell keeps the caller's PATH).
PATH="$PATH:/usr/sbin:/sbin"

DEFAULT_PORT=33069
DATABASES=(sessionkit sessionkit_ref)
DB_USER=sessionkit

log() { printf 'mariadbserver: %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

usage() {
    sed -n '2,8s/^# \{0,1\}//p' "$0" >&2
    exit 2
}

# The directories, files and URL of the server on port $1.
set_port() {
    port="$1"
    basedir="/tmp/sessionkit-mariadb-$port"
    datadir="$basedir/data"
    socket="$basedir/mysqld.sock"
    pidfile="$basedir/mariadbd.pid"
    logfile="$basedir/mariadbd.log"
    # ssl_disabled: this server has no TLS, and PyMySQL's default ("preferred" TLS) builds
    # an SSL context with the system's CA certificates on every connect: 40-60 ms each,
    # which would be most of the MariaDB tests' time.
    url="mysql+pymysql://$DB_USER@127.0.0.1:$port/sessionkit?charset=utf8mb4&ssl_disabled=true"
}

source "$(dirname "${BASH_SOURCE[0]}")/ports.sh"
parse_command_line "$@"

# The directory this start created, while the start has not succeeded: should the
# script fail or be interrupted, the server it started is stopped and the directory
# removed.
created=""
server_pid=""
discard_created() {
    [[ -n "$created" ]] || return 0
    log "start did not complete: removing $created"
    local pid="$server_pid" i
    [[ -n "$pid" || ! -f "$pidfile" ]] || pid="$(cat "$pidfile")"
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        for ((i = 0; i < 120; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.25
        done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -rf "$created"
    created=""
}
trap discard_created EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

# The server binary: mariadbd on PATH or in /usr/sbin (not on a non-root PATH).
find_server() {
    local candidate
    for candidate in "$(command -v mariadbd 2>/dev/null || true)" /usr/sbin/mariadbd; do
        if [[ -n "$candidate" && -x "$candidate" ]]; then
            printf '%s\n' "$candidate"
            return 0
        fi
    done
    return 1
}

# Install mariadb-server without letting its maintainer scripts start a service:
# invoke-rc.d asks /usr/sbin/policy-rc.d, and exit code 101 means "do not start".
ensure_installed() {
    if mariadbd="$(find_server)"; then
        return
    fi
    [[ $EUID -eq 0 ]] || die "mariadbd not found; install the 'mariadb-server' package (needs root)"
    command -v apt-get >/dev/null || die "mariadbd not found and no apt-get to install it"
    log "installing MariaDB with apt-get"
    local policy=/usr/sbin/policy-rc.d own_policy=0
    if [[ ! -e "$policy" ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        own_policy=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    local rc=0
    {
        apt-get update -qq >&2 &&
            apt-get install -y -qq --no-install-recommends mariadb-server mariadb-client >&2
    } || rc=$?
    ((own_policy == 0)) || rm -f "$policy"
    ((rc == 0)) || die "apt-get install mariadb-server failed"
    # Should a service have been started anyway, stop it: it would hold the
    # default socket and port and run from /var/lib/mysql.
    if [[ -S /run/mysqld/mysqld.sock ]] || pgrep -x mariadbd >/dev/null 2>&1; then
        log "stopping the MariaDB service the package started"
        service mariadb stop >&2 2>&1 || service mysql stop >&2 2>&1 || true
    fi
    mariadbd="$(find_server)" || die "apt-get installed mariadb-server but no mariadbd was found"
}

# The server refuses to run as root unless told --user; the data directory then
# belongs to mysql.  As another user, run as that user.
run_user() {
    if [[ $EUID -eq 0 ]]; then
        if ! id -u mysql >/dev/null 2>&1; then
            log "creating system user mysql"
            useradd --system --user-group --no-create-home --shell /bin/false mysql
        fi
        printf 'mysql\n'
    else
        id -un
    fi
}

admin() { mariadb-admin --no-defaults --socket="$socket" -u root "$@"; }
sql_root() { mariadb --no-defaults --socket="$socket" -u root "$@"; }

# Ping over the socket: the TCP user does not exist yet, and failed TCP logins
# would flood the server log.
is_running() {
    [[ -S "$socket" ]] && admin --connect-timeout=2 ping >/dev/null 2>&1
}

# wait_ready [PID]: PID is the server just started; give up at once if it exits.
wait_ready() {
    local i server_pid="${1:-}"
    for ((i = 0; i < 240; i++)); do
        if is_running; then
            return 0
        fi
        if [[ -n "$server_pid" ]] && ! kill -0 "$server_pid" 2>/dev/null; then
            break
        fi
        sleep 0.25
    done
    [[ -f "$logfile" ]] && tail -n 30 "$logfile" >&2
    die "server on port $port did not become ready (is the port already in use?)"
}

create_user_and_databases() {
    local db statements
    statements="CREATE USER IF NOT EXISTS '$DB_USER'@'127.0.0.1';
GRANT ALL PRIVILEGES ON *.* TO '$DB_USER'@'127.0.0.1' WITH GRANT OPTION;"
    for db in "${DATABASES[@]}"; do
        statements+="
CREATE DATABASE IF NOT EXISTS \`$db\` CHARACTER SET utf8mb4;"
    done
    sql_root -e "$statements" >&2
}

# mariadb-install-db into $datadir, as user $1.
init_datadir() {
    rm -rf "$datadir"
    mkdir -p "$datadir"
    [[ $EUID -ne 0 ]] || chown -R "$1:$1" "$basedir"
    log "initialising $datadir"
    mariadb-install-db --no-defaults --user="$1" --datadir="$datadir" \
        --auth-root-authentication-method=socket --skip-test-db --skip-name-resolve \
        >"$basedir/install-db.log" 2>&1 || {
        cat "$basedir/install-db.log" >&2
        die "mariadb-install-db failed"
    }
    rm -f "$basedir/install-db.log"
}

# Start the server from $datadir as user $1; its pid goes to server_pid.
launch() {
    [[ $EUID -ne 0 ]] || chown "$1:$1" "$basedir"
    rm -f "$socket" "$pidfile"
    log "starting server on 127.0.0.1:$port"
    # --no-defaults: nothing from /etc/mysql (no system socket, port or datadir).
    # setsid: the server outlives this script and ignores the caller's signals.
    # Without --log-error the server logs to stderr, which goes to $logfile.
    setsid "$mariadbd" --no-defaults --user="$1" --datadir="$datadir" \
        --socket="$socket" --pid-file="$pidfile" \
        --bind-address=127.0.0.1 --port="$port" \
        --character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci \
        --skip-name-resolve --skip-log-bin --max-connections=500 \
        --innodb-flush-log-at-trx-commit=0 --innodb-doublewrite=0 \
        --innodb-flush-method=nosync --innodb-buffer-pool-size=128M \
        </dev/null >>"$logfile" 2>&1 &
    server_pid=$!
    disown || true
}

start() {
    ensure_installed
    local user
    user="$(run_user)"
    if ((auto)); then
        claim_free_port /tmp/sessionkit-mariadb- 755
        init_datadir "$user"
        launch "$user"
    elif is_running; then
        log "already running on port $port (data directory $datadir)"
    else
        if command -v python3 >/dev/null && ! port_is_free "$port"; then
            die "port $port is held by another process, not by a server of $basedir; choose another port or 'start auto'"
        fi
        if [[ ! -e "$basedir" ]]; then
            mkdir "$basedir"
            created="$basedir"
        fi
        [[ -d "$datadir/mysql" ]] || init_datadir "$user"
        launch "$user"
    fi
    wait_ready "$server_pid"
    create_user_and_databases
    created=""
    printf '%s\n' "$url"
}

stop() {
    if [[ ! -e "$basedir" ]]; then
        log "nothing to stop (no $basedir)"
        return 0
    fi
    local pid="" i
    [[ -f "$pidfile" ]] && pid="$(cat "$pidfile")"
    if is_running; then
        log "stopping server on port $port"
        admin shutdown >&2 || true
    elif [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
        log "stopping server on port $port (pid $pid)"
        kill "$pid" || true
    fi
    if [[ -n "$pid" ]]; then
        for ((i = 0; i < 240; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.25
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "server (pid $pid) did not stop within 60 s; killing it"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 1
            ! kill -0 "$pid" 2>/dev/null || die "server (pid $pid) did not stop"
        fi
    fi
    rm -rf "$basedir"
    log "removed $basedir"
}

status() {
    if is_running; then
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
url) printf '%s\n' "$url" ;;
status) status ;;
*) usage ;;
esac
