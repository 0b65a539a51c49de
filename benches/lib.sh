# Shared by the shell benches (sourced, not run): installs what is missing (Debian/Ubuntu),
# starts a throwaway PostgreSQL, PgBouncer and pgtide in a temp dir, and stops only what it
# started. The sourcing script sets BENCH_NAME first and calls bench_init.

BENCH_USER=${BENCH_USER:-bench}
BENCH_PW=${BENCH_PW:-bench-secret}
BENCH_DB=${BENCH_DB:-bench}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

log() { echo "[${BENCH_NAME:-bench}] $*" >&2; }
die() { log "error: $*"; exit 1; }

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
APT_UPDATED=0
apt_install() {
    command -v apt-get >/dev/null || die "missing $*; install it (no apt-get here)"
    if [ "$APT_UPDATED" -eq 0 ]; then
        as_root apt-get update -qq
        APT_UPDATED=1
    fi
    log "installing $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

pg_bindir() {
    local d
    if command -v pg_config >/dev/null && d=$(pg_config --bindir 2>/dev/null) && [ -x "$d/initdb" ]; then
        echo "$d"
        return
    fi
    # Debian keeps server binaries out of PATH; take the newest major version.
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -n -r); do
        if [ -x "$d/initdb" ] && [ -x "$d/pgbench" ]; then
            echo "$d"
            return
        fi
    done
    if command -v initdb >/dev/null && command -v pgbench >/dev/null; then
        dirname "$(readlink -f "$(command -v initdb)")"
    fi
}

# PGBIN, PGBENCH; installs PostgreSQL when missing.
find_postgres() {
    PGBIN=$(pg_bindir)
    if [ -z "$PGBIN" ]; then
        apt_install postgresql postgresql-contrib
        PGBIN=$(pg_bindir)
        [ -n "$PGBIN" ] || die "PostgreSQL binaries not found after installing"
    fi
    PGBENCH="$PGBIN/pgbench"
    [ -x "$PGBENCH" ] || PGBENCH=$(command -v pgbench) || die "pgbench not found"
}

# PGBOUNCER (empty when absent and $1 is "optional"; else installs it).
find_pgbouncer() {
    PGBOUNCER=$(command -v pgbouncer || ls /usr/sbin/pgbouncer 2>/dev/null || true)
    if [ -z "$PGBOUNCER" ] && [ "${1:-}" != optional ]; then
        apt_install pgbouncer
        PGBOUNCER=$(command -v pgbouncer || echo /usr/sbin/pgbouncer)
        [ -x "$PGBOUNCER" ] || die "pgbouncer not found"
    fi
    BOUNCER_VERSION=""
    [ -n "$PGBOUNCER" ] && BOUNCER_VERSION=$("$PGBOUNCER" --version | head -n1 | awk '{print $2}')
    return 0
}

# PGTIDE: a release build of this checkout.
build_pgtide() {
    log "building pgtide (release)"
    (cd "$ROOT" && cargo build --release -p pgtide -q)
    PGTIDE="${CARGO_TARGET_DIR:-$ROOT/target}/release/pgtide"
    [ -x "$PGTIDE" ] || die "no pgtide binary at $PGTIDE"
}

# Scratch space and cleanup: every PID in BENCH_PIDS is stopped on exit, then PostgreSQL.
bench_init() {
    WORK=$(mktemp -d -t "pgtide-${BENCH_NAME:-bench}.XXXXXX")
    chmod 0755 "$WORK"
    PG_STARTED=0
    BENCH_PIDS=""
    # PostgreSQL and PgBouncer refuse to run as root: drop to the postgres OS user then.
    if [ "$(id -u)" -eq 0 ]; then
        id postgres >/dev/null 2>&1 || useradd --system --home-dir "$WORK" --shell /bin/sh postgres
        as_pg() { runuser -u postgres -- "$@"; }
    else
        as_pg() { "$@"; }
    fi
    trap bench_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# SIGINT, up to 5 s to exit, then SIGKILL; only ever a PID this script started.
stop_pid() {
    kill -INT "$1" 2>/dev/null || return 0
    for _ in $(seq 50); do
        kill -0 "$1" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$1" 2>/dev/null
    wait "$1" 2>/dev/null
}

bench_cleanup() {
    local rc=$?
    set +e
    for p in $BENCH_PIDS; do stop_pid "$p"; done
    if [ "$PG_STARTED" -eq 1 ]; then
        as_pg "$PGBIN/pg_ctl" -D "$WORK/pgdata" -m immediate -w stop >/dev/null 2>&1
    fi
    if [ "$rc" -ne 0 ]; then
        for f in "$WORK"/*.log; do
            [ -s "$f" ] && { log "--- tail of $(basename "$f")"; tail -n 20 "$f" >&2; }
        done
    fi
    if [ -n "${KEEP_WORK:-}" ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
    rm -f "$TAKEN_FILE"
    exit "$rc"
}

# A port nothing listens on (a bash /dev/tcp connect that fails), not one handed out before.
# Called as $(free_port), a subshell: the ports handed out are kept in a file, not a variable.
TAKEN_FILE="${TMPDIR:-/tmp}/pgtide-bench-ports.$$"
: >"$TAKEN_FILE"
free_port() {
    local p
    for _ in $(seq 200); do
        p=$((20000 + RANDOM % 40000))
        grep -qx "$p" "$TAKEN_FILE" && continue
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p" >>"$TAKEN_FILE"
            echo "$p"
            return
        fi
    done
    die "no free port found"
}

wait_ready() { # port name
    for _ in $(seq 100); do
        "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$1" -d "$BENCH_DB" -U "$BENCH_USER" && return 0
        sleep 0.1
    done
    die "$2 did not accept connections on port $1"
}

# PostgreSQL on PG_PORT with database $BENCH_DB (scram for TCP clients); $1: pgbench scale, or
# 0 for no pgbench tables.
start_postgres() {
    PG_PORT=$(free_port)
    log "initdb in $WORK/pgdata (port $PG_PORT)"
    mkdir -p "$WORK/pgdata" "$WORK/sock"
    [ "$(id -u)" -eq 0 ] && chown -R postgres: "$WORK"
    printf '%s\n' "$BENCH_PW" >"$WORK/pwfile"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$WORK/pwfile"
    as_pg "$PGBIN/initdb" -D "$WORK/pgdata" -U "$BENCH_USER" --pwfile="$WORK/pwfile" \
        --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --no-instructions >/dev/null
    cat >>"$WORK/pgdata/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$WORK/sock'
max_connections = 300
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 256MB
EOF
    as_pg "$PGBIN/pg_ctl" -D "$WORK/pgdata" -l "$WORK/pg.log" -w start >/dev/null
    PG_STARTED=1
    export PGPASSWORD="$BENCH_PW"
    "$PGBIN/psql" -q -h 127.0.0.1 -p "$PG_PORT" -U "$BENCH_USER" -d postgres \
        -c "CREATE DATABASE $BENCH_DB" >/dev/null
    if [ "${1:-0}" -gt 0 ]; then
        log "pgbench -i -s $1"
        "$PGBENCH" -i -q -s "$1" -h 127.0.0.1 -p "$PG_PORT" -U "$BENCH_USER" "$BENCH_DB" \
            >"$WORK/init.log" 2>&1 || { cat "$WORK/init.log" >&2; die "pgbench -i failed"; }
    fi
}

# PgBouncer in transaction mode on $1 with pool size $2; $3 max_client_conn, $4 auth_type
# (plain password in the userlist, so scram-sha-256 and md5 both work). Sets BOUNCER_PID and
# BOUNCER_PREPARED (1 when it keeps prepared statements in transaction mode).
start_pgbouncer() {
    version_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]; }
    BOUNCER_PREPARED=0
    version_ge "$BOUNCER_VERSION" 1.21.0 && BOUNCER_PREPARED=1
    printf '"%s" "%s"\n' "$BENCH_USER" "$BENCH_PW" >"$WORK/userlist.txt"
    cat >"$WORK/pgbouncer.ini" <<EOF
[databases]
$BENCH_DB = host=127.0.0.1 port=$PG_PORT dbname=$BENCH_DB

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $1
unix_socket_dir =
auth_type = ${4:-scram-sha-256}
auth_file = $WORK/userlist.txt
pool_mode = transaction
default_pool_size = $2
min_pool_size = 0
max_client_conn = ${3:-1000}
logfile = $WORK/pgbouncer.log
log_connections = 0
log_disconnections = 0
EOF
    [ "$BOUNCER_PREPARED" -eq 1 ] && echo "max_prepared_statements = 500" >>"$WORK/pgbouncer.ini"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$WORK/userlist.txt" "$WORK/pgbouncer.ini"
    # -u: PgBouncer will not run as root, it drops to the postgres user itself (so $! is its PID).
    if [ "$(id -u)" -eq 0 ]; then
        "$PGBOUNCER" -u postgres -q "$WORK/pgbouncer.ini" &
    else
        "$PGBOUNCER" -q "$WORK/pgbouncer.ini" &
    fi
    BOUNCER_PID=$!
    BENCH_PIDS="$BENCH_PIDS $BOUNCER_PID"
    wait_ready "$1" pgbouncer
}

# pgtide named $1 on port $2 in transaction mode with pool size $3; $4: more TOML after
# [pool], $5: more [server] keys. Sets PGTIDE_PIDS[$1].
declare -A PGTIDE_PIDS
start_pgtide() {
    cat >"$WORK/$1.toml" <<EOF
[server]
http_listen = "127.0.0.1:$(free_port)"
${5:-}

[pool]
mode = "transaction"
size = $3
${4:-}
EOF
    PGTIDE_LOG=${PGTIDE_LOG:-warn} "$PGTIDE" --config "$WORK/$1.toml" \
        --primary "postgres://$BENCH_USER:$BENCH_PW@127.0.0.1:$PG_PORT/$BENCH_DB" \
        --listen "127.0.0.1:$2" >"$WORK/$1.log" 2>&1 &
    PGTIDE_PIDS[$1]=$!
    BENCH_PIDS="$BENCH_PIDS $!"
    wait_ready "$2" "$1"
}

# utime + stime of a process, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# utime alone (the proxy's own code; the rest is the kernel's sends, receives and wake-ups).
user_ticks() { awk '{print $14}' "/proc/$1/stat"; }
CLK_TCK=$(getconf CLK_TCK)
