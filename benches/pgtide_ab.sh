#!/usr/bin/env bash
# Two pgtide builds side by side on one throwaway PostgreSQL: pgbench -S through each, in
# alternating rounds, reporting throughput and the proxy's own CPU time per transaction
# (utime+stime from /proc over the run; steadier than throughput on a shared machine).
#
#   benches/pgtide_ab.sh BASE_BINARY NEW_BINARY
#   ROUNDS=3 DURATION=8 MODES="simple prepared" benches/pgtide_ab.sh old/pgtide target/release/pgtide
#
# Build a baseline with: git worktree add /tmp/base <commit> && (cd /tmp/base && cargo build
# --release -p pgtide). Needs PostgreSQL server binaries and pgbench (see scripts/test).
set -euo pipefail

BASE=${1:?usage: pgtide_ab.sh BASE_BINARY NEW_BINARY}
NEW=${2:?usage: pgtide_ab.sh BASE_BINARY NEW_BINARY}
DURATION=${DURATION:-8}
ROUNDS=${ROUNDS:-2}
CLIENTS=${CLIENTS:-32}
MODES=${MODES:-simple extended prepared}
USER_=bench
PW=bench-secret
DB=bench

log() { echo "[pgtide_ab] $*" >&2; }
PGBIN=$(pg_config --bindir 2>/dev/null || ls -d /usr/lib/postgresql/*/bin | tail -n1)
PGBENCH=$(command -v pgbench || echo "$PGBIN/pgbench")
WORK=$(mktemp -d -t pgtide-ab.XXXXXX)
chmod 0755 "$WORK"
if [ "$(id -u)" -eq 0 ]; then as_pg() { runuser -u postgres -- "$@"; }; else as_pg() { "$@"; }; fi
PIDS=()
cleanup() {
    set +e
    for p in "${PIDS[@]}"; do kill -INT "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    as_pg "$PGBIN/pg_ctl" -D "$WORK/pgdata" -m immediate -w stop >/dev/null 2>&1
    rm -rf "$WORK"
}
trap cleanup EXIT

port() { # a free loopback port
    local p
    while :; do
        p=$((20000 + RANDOM % 40000))
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
    done
}
PG_PORT=$(port)
mkdir -p "$WORK/pgdata" "$WORK/sock"
printf '%s\n' "$PW" >"$WORK/pw"
[ "$(id -u)" -eq 0 ] && chown -R postgres: "$WORK"
as_pg "$PGBIN/initdb" -D "$WORK/pgdata" -U "$USER_" --pwfile="$WORK/pw" --auth-local=trust \
    --auth-host=scram-sha-256 -E UTF8 --no-instructions >/dev/null
cat >>"$WORK/pgdata/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$WORK/sock'
max_connections = 300
fsync = off
synchronous_commit = off
shared_buffers = 256MB
EOF
as_pg "$PGBIN/pg_ctl" -D "$WORK/pgdata" -l "$WORK/pg.log" -w start >/dev/null
export PGPASSWORD=$PW
"$PGBIN/psql" -q -h 127.0.0.1 -p "$PG_PORT" -U "$USER_" -d postgres -c "CREATE DATABASE $DB"
"$PGBENCH" -i -q -s 10 -h 127.0.0.1 -p "$PG_PORT" -U "$USER_" "$DB" >/dev/null 2>&1

declare -A PORT PID
for name in base new; do
    bin=$BASE
    [ "$name" = new ] && bin=$NEW
    PORT[$name]=$(port)
    cat >"$WORK/$name.toml" <<EOF
[server]
http_listen = ""
[pool]
mode = "transaction"
size = 20
EOF
    PGTIDE_LOG=warn "$bin" --config "$WORK/$name.toml" \
        --primary "postgres://$USER_:$PW@127.0.0.1:$PG_PORT/$DB" \
        --listen "127.0.0.1:${PORT[$name]}" >"$WORK/$name.log" 2>&1 &
    PID[$name]=$!
    PIDS+=("$!")
done
for name in base new; do
    for _ in $(seq 100); do
        "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "${PORT[$name]}" -d "$DB" -U "$USER_" && break
        sleep 0.1
    done
done

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)
echo "| round | mode | build | tps | pgtide CPU µs / transaction |"
echo "|---:|---|---|---:|---:|"
for round in $(seq "$ROUNDS"); do
    for mode in $MODES; do
        for name in base new; do
            args=(-n -S -M "$mode" -c "$CLIENTS" -j 2 -h 127.0.0.1 -p "${PORT[$name]}" -U "$USER_" "$DB")
            "$PGBENCH" "${args[@]}" -T 2 >/dev/null 2>&1 # warm the pool and caches
            before=$(ticks "${PID[$name]}")
            out=$("$PGBENCH" "${args[@]}" -T "$DURATION" 2>&1)
            after=$(ticks "${PID[$name]}")
            tps=$(echo "$out" | awk '/^tps = /{printf "%d", $3}')
            txns=$(echo "$out" | awk '/number of transactions actually processed/{print $NF}' | cut -d/ -f1)
            us=$(awk -v t=$((after - before)) -v hz="$HZ" -v n="$txns" 'BEGIN{printf "%.1f", t / hz * 1e6 / n}')
            echo "| $round | $mode | $name | $tps | $us |"
        done
    done
done
