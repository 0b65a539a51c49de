#!/usr/bin/env bash
# Throughput of pgbench's read-only workload (-S: one primary-key SELECT per transaction)
# straight to PostgreSQL, through PgBouncer and through pgtide, both in transaction mode with
# 20 backend connections, in each query mode. Self-contained: installs what is missing
# (Debian/Ubuntu), starts a throwaway PostgreSQL in a temp dir, prints a markdown report,
# and removes everything it started on exit.
#
#   benches/pgbench_compare.sh                 # 15 s per run
#   DURATION=5 CLIENTS=64 benches/pgbench_compare.sh
#   SECTIONS=cache benches/pgbench_compare.sh   # only the result-cache section
#
# Two more sections measure what pgtide's own features cost or give: pgbench -S through pgtide
# with [insights] off and on (alternating runs), and a cacheable point query (a
# [[cache.rules]] entry) through pgtide's result cache against PostgreSQL directly.
#
# Env: SECTIONS (any of "proxies insights cache", default all), DURATION (s, default 15), WARMUP (s per target, default 3), CLIENTS (default 32),
#      THREADS (default 2), POOL_SIZE (default 20), SCALE (pgbench -s, default 10).
# Every process here shares one machine: on a small box the numbers say as much about
# CPU contention as about the proxies; compare them relative to "direct".
set -euo pipefail

DURATION=${DURATION:-15}
WARMUP=${WARMUP:-3}
CLIENTS=${CLIENTS:-32}
THREADS=${THREADS:-2}
POOL_SIZE=${POOL_SIZE:-20}
SCALE=${SCALE:-10}
SECTIONS=" ${SECTIONS:-proxies insights cache} "
want() { [[ "$SECTIONS" == *" $1 "* ]]; }
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_USER=bench
BENCH_PW=bench-secret
BENCH_DB=bench

log() { echo "[pgbench_compare] $*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------------------------------------
# Install what is missing.
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

PGBIN=$(pg_bindir)
if [ -z "$PGBIN" ]; then
    apt_install postgresql postgresql-contrib
    PGBIN=$(pg_bindir)
    [ -n "$PGBIN" ] || die "PostgreSQL binaries not found after installing"
fi
PGBENCH="$PGBIN/pgbench"
[ -x "$PGBENCH" ] || PGBENCH=$(command -v pgbench) || die "pgbench not found"

PGBOUNCER=$(command -v pgbouncer || ls /usr/sbin/pgbouncer 2>/dev/null || true)
if [ -z "$PGBOUNCER" ]; then
    apt_install pgbouncer
    PGBOUNCER=$(command -v pgbouncer || echo /usr/sbin/pgbouncer)
fi
[ -x "$PGBOUNCER" ] || die "pgbouncer not found"

log "building pgtide (release)"
(cd "$ROOT" && cargo build --release -p pgtide -q)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
PGTIDE="$TARGET_DIR/release/pgtide"
[ -x "$PGTIDE" ] || die "no pgtide binary at $PGTIDE"

# ---------------------------------------------------------------------------------------------
# Scratch space, processes, cleanup.
WORK=$(mktemp -d -t pgtide-pgbench.XXXXXX)
chmod 0755 "$WORK"
PG_STARTED=0
PGTIDE_PID=""
BOUNCER_PID=""

# PostgreSQL and PgBouncer refuse to run as root: drop to the postgres OS user then.
if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir "$WORK" --shell /bin/sh postgres
    as_pg() { runuser -u postgres -- "$@"; }
else
    as_pg() { "$@"; }
fi

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

cleanup() {
    local rc=$?
    set +e
    [ -n "$PGTIDE_PID" ] && stop_pid "$PGTIDE_PID"
    for p in ${EXTRA_PIDS:-}; do stop_pid "$p"; done
    [ -n "$BOUNCER_PID" ] && stop_pid "$BOUNCER_PID"
    if [ "$PG_STARTED" -eq 1 ]; then
        as_pg "$PGBIN/pg_ctl" -D "$WORK/pgdata" -m immediate -w stop >/dev/null 2>&1
    fi
    if [ "$rc" -ne 0 ]; then
        for f in pg.log pgbouncer.log pgtide.log; do
            [ -s "$WORK/$f" ] && { log "--- tail of $f"; tail -n 20 "$WORK/$f" >&2; }
        done
    fi
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A port nothing listens on (a bash /dev/tcp connect that fails), not one of the others taken.
TAKEN=" "
free_port() {
    local p
    for _ in $(seq 200); do
        p=$((20000 + RANDOM % 40000))
        case "$TAKEN" in *" $p "*) continue ;; esac
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            TAKEN="$TAKEN$p "
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

PG_PORT=$(free_port)
BOUNCER_PORT=$(free_port)
PGTIDE_PORT=$(free_port)
PGTIDE_HTTP_PORT=$(free_port)

# ---------------------------------------------------------------------------------------------
# PostgreSQL.
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
"$PGBIN/psql" -q -h 127.0.0.1 -p "$PG_PORT" -U "$BENCH_USER" -d postgres -c "CREATE DATABASE $BENCH_DB" >/dev/null
log "pgbench -i -s $SCALE"
"$PGBENCH" -i -q -s "$SCALE" -h 127.0.0.1 -p "$PG_PORT" -U "$BENCH_USER" "$BENCH_DB" >"$WORK/init.log" 2>&1 ||
    { cat "$WORK/init.log" >&2; die "pgbench -i failed"; }

# ---------------------------------------------------------------------------------------------
# PgBouncer: transaction mode, SCRAM for clients and to the server (plain password in userlist).
BOUNCER_VERSION=$("$PGBOUNCER" --version | head -n1 | awk '{print $2}')
version_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]; }
BOUNCER_PREPARED=0
version_ge "$BOUNCER_VERSION" 1.21.0 && BOUNCER_PREPARED=1
printf '"%s" "%s"\n' "$BENCH_USER" "$BENCH_PW" >"$WORK/userlist.txt"
cat >"$WORK/pgbouncer.ini" <<EOF
[databases]
$BENCH_DB = host=127.0.0.1 port=$PG_PORT dbname=$BENCH_DB

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $BOUNCER_PORT
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $WORK/userlist.txt
pool_mode = transaction
default_pool_size = $POOL_SIZE
min_pool_size = 0
max_client_conn = 1000
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
wait_ready "$BOUNCER_PORT" pgbouncer

# ---------------------------------------------------------------------------------------------
# pgtide: the sidecar flags plus a small file for what has no flag (pool, HTTP port).
cat >"$WORK/pgtide.toml" <<EOF
[server]
http_listen = "127.0.0.1:$PGTIDE_HTTP_PORT"

[pool]
mode = "transaction"
size = $POOL_SIZE
EOF
PGTIDE_LOG=${PGTIDE_LOG:-warn} "$PGTIDE" --config "$WORK/pgtide.toml" \
    --primary "postgres://$BENCH_USER:$BENCH_PW@127.0.0.1:$PG_PORT/$BENCH_DB" \
    --listen "127.0.0.1:$PGTIDE_PORT" >"$WORK/pgtide.log" 2>&1 &
PGTIDE_PID=$!
wait_ready "$PGTIDE_PORT" pgtide

# The same with insights off, and one with a cache rule for the point-query section.
NOINSIGHTS_PORT=$(free_port)
CACHE_PORT=$(free_port)
start_variant() { # name port extra-toml
    cat >"$WORK/$1.toml" <<EOF2
[server]
http_listen = "127.0.0.1:$(free_port)"

[pool]
mode = "transaction"
size = $POOL_SIZE
$3
EOF2
    PGTIDE_LOG=${PGTIDE_LOG:-warn} "$PGTIDE" --config "$WORK/$1.toml" \
        --primary "postgres://$BENCH_USER:$BENCH_PW@127.0.0.1:$PG_PORT/$BENCH_DB" \
        --listen "127.0.0.1:$2" >"$WORK/$1.log" 2>&1 &
    EXTRA_PIDS="$EXTRA_PIDS $!"
    wait_ready "$2" "$1"
}
EXTRA_PIDS=""
start_variant pgtide-noinsights "$NOINSIGHTS_PORT" $'[insights]\nenabled = false'
start_variant pgtide-cache "$CACHE_PORT" $'[[cache.rules]]\ntables = ["pgbench_accounts"]\nttl = "10m"'

# ---------------------------------------------------------------------------------------------
# Runs.
declare -A PORT=([direct]=$PG_PORT [pgbouncer]=$BOUNCER_PORT [pgtide]=$PGTIDE_PORT)
TARGETS=(direct pgbouncer pgtide)
MODES=(simple extended prepared)
declare -A TPS LAT NOTE

run_pgbench() { # target mode seconds -> output file
    local out="$WORK/run-$1-$2.log"
    "$PGBENCH" -n -S -M "$2" -c "$CLIENTS" -j "$THREADS" -T "$3" \
        -h 127.0.0.1 -p "${PORT[$1]}" -U "$BENCH_USER" "$BENCH_DB" >"$out" 2>&1
}

LOADAVG_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")
cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo 2>/dev/null || true)
mem=$(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576; exit}' /proc/meminfo 2>/dev/null || true)
if want proxies; then
for target in "${TARGETS[@]}"; do
    if [ "$WARMUP" -gt 0 ]; then
        log "$target: warm-up ${WARMUP}s"
        run_pgbench "$target" simple "$WARMUP" || true
    fi
    for mode in "${MODES[@]}"; do
        key="$target/$mode"
        if [ "$target" = pgbouncer ] && [ "$mode" = prepared ] && [ "$BOUNCER_PREPARED" -eq 0 ]; then
            TPS[$key]="—"
            LAT[$key]="—"
            NOTE[$key]="skipped: PgBouncer $BOUNCER_VERSION has no prepared statements in transaction mode (needs ≥ 1.21)"
            continue
        fi
        log "$target: -M $mode, ${DURATION}s"
        out="$WORK/run-$target-$mode.log"
        if run_pgbench "$target" "$mode" "$DURATION" && grep -q '^tps = ' "$out"; then
            TPS[$key]=$(awk '/^tps = / {printf "%.0f", $3; exit}' "$out")
            LAT[$key]=$(awk '/^latency average = / {printf "%.3f", $4; exit}' "$out")
            failed=$(awk '/^number of failed transactions: / {print $5; exit}' "$out")
            NOTE[$key]=""
            if [ -n "$failed" ] && [ "$failed" != 0 ]; then
                NOTE[$key]="$failed failed transactions"
            fi
        else
            TPS[$key]="failed"
            LAT[$key]="—"
            NOTE[$key]="failed: $(grep -m1 -iE 'error|fatal|abort' "$out" | cut -c1-120 || tail -n1 "$out")"
        fi
    done
done

# ---------------------------------------------------------------------------------------------
# Report.
echo
echo "## pgbench -S: direct vs PgBouncer vs pgtide"
echo
echo "- machine: $(nproc) CPU(s), ${cpu:-unknown CPU}, ${mem:-? GiB} RAM, $(uname -sr)"
echo "- PostgreSQL: $("$PGBIN/postgres" --version | sed 's/^postgres (PostgreSQL) //') (fsync off, max_connections 300, scale $SCALE)"
echo "- PgBouncer: $BOUNCER_VERSION (pool_mode transaction, default_pool_size $POOL_SIZE, auth scram-sha-256)"
echo "- pgtide: $("$PGTIDE" --version | awk '{print $2}') release build (pool mode transaction, size $POOL_SIZE)"
echo "- load average before the runs: $LOADAVG_BEFORE, after: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?") (anything else running skews the numbers)"
echo "- load: \`pgbench -n -S -M <mode> -c $CLIENTS -j $THREADS -T $DURATION\`, ${WARMUP}s warm-up per target; all processes on this one machine"
echo
echo "| target | mode | tps | avg latency (ms) | tps vs direct | note |"
echo "|---|---|---:|---:|---:|---|"
for target in "${TARGETS[@]}"; do
    for mode in "${MODES[@]}"; do
        key="$target/$mode"
        base=${TPS[direct/$mode]:-}
        rel="—"
        if [[ "${TPS[$key]}" =~ ^[0-9]+$ && "$base" =~ ^[0-9]+$ && "$base" -gt 0 ]]; then
            rel=$(awk -v a="${TPS[$key]}" -v b="$base" 'BEGIN {printf "%.0f%%", 100 * a / b}')
        fi
        echo "| $target | $mode | ${TPS[$key]} | ${LAT[$key]} | $rel | ${NOTE[$key]} |"
    done
done
echo

fi

# ---------------------------------------------------------------------------------------------
# What pgtide's features cost or give.
PORT[pgtide-noinsights]=$NOINSIGHTS_PORT
PORT[pgtide-cache]=$CACHE_PORT
tps_of() { awk '/^tps = / {printf "%.0f", $3; exit}' "$1"; }

if want insights; then
log "insights off/on: 2 x ${DURATION}s each, alternating"
ON=0; OFF=0
for round in 1 2; do
    run_pgbench pgtide-noinsights simple "$DURATION"
    OFF=$((OFF + $(tps_of "$WORK/run-pgtide-noinsights-simple.log")))
    run_pgbench pgtide simple "$DURATION"
    ON=$((ON + $(tps_of "$WORK/run-pgtide-simple.log")))
done
echo "## pgtide with query insights on vs off (pgbench -n -S -M simple -c $CLIENTS, 2 alternating runs of ${DURATION}s each)"
echo
echo "| insights | tps (mean) |"
echo "|---|---:|"
echo "| off | $((OFF / 2)) |"
echo "| on | $((ON / 2)) |"
awk -v on="$ON" -v off="$OFF" 'BEGIN {printf "\nthroughput with insights on: %.1f%% of off\n\n", 100 * on / off}'

fi

# A point query the cache may answer: 1000 hot accounts, read again and again, in each query
# mode (extended and prepared are answered from the cache too).
if want cache; then
cat >"$WORK/point.sql" <<'EOF2'
\set aid random(1, 1000)
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
EOF2
run_point() { # target mode -> tps
    "$PGBENCH" -n -f "$WORK/point.sql" -M "$2" -c "$CLIENTS" -j "$THREADS" -T "$DURATION" \
        -h 127.0.0.1 -p "${PORT[$1]}" -U "$BENCH_USER" "$BENCH_DB" >"$WORK/point-$1-$2.log" 2>&1
    tps_of "$WORK/point-$1-$2.log"
}
log "cache: warm-up, then direct vs pgtide-cache per mode, ${DURATION}s each"
"$PGBENCH" -n -f "$WORK/point.sql" -M simple -c 4 -j 2 -T 3 -h 127.0.0.1 -p "$CACHE_PORT" \
    -U "$BENCH_USER" "$BENCH_DB" >/dev/null 2>&1 || true
echo "## Cached point query (\`SELECT abalance FROM pgbench_accounts WHERE aid = :aid\`, 1000 hot rows, -c $CLIENTS -j $THREADS)"
echo
echo "- machine: $(nproc) CPU(s), ${cpu:-unknown CPU}, ${mem:-? GiB} RAM; load average before: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")"
echo
echo "| mode | direct tps | pgtide (result cache) tps | cache / direct |"
echo "|---|---:|---:|---:|"
for mode in ${CACHE_MODES:-simple extended prepared}; do
    d=$(run_point direct "$mode")
    c=$(run_point pgtide-cache "$mode")
    ratio=$(awk -v c="$c" -v d="$d" 'BEGIN {if (d > 0) printf "%.2fx", c / d; else print "—"}')
    echo "| $mode | $d | $c | $ratio |"
done
fi
