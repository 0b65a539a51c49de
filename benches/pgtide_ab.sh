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
BENCH_NAME=pgtide_ab
# shellcheck source=benches/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

find_postgres
bench_init
start_postgres 10

declare -A PORT PID
for name in base new; do
    PGTIDE=$BASE
    [ "$name" = new ] && PGTIDE=$NEW
    PORT[$name]=$(free_port)
    start_pgtide "$name" "${PORT[$name]}" 20
    PID[$name]=${PGTIDE_PIDS[$name]}
done

echo "| round | mode | build | tps | pgtide CPU µs / transaction |"
echo "|---:|---|---|---:|---:|"
for round in $(seq "$ROUNDS"); do
    for mode in $MODES; do
        for name in base new; do
            args=(-n -S -M "$mode" -c "$CLIENTS" -j 2 -h 127.0.0.1 -p "${PORT[$name]}" -U "$BENCH_USER" "$BENCH_DB")
            "$PGBENCH" "${args[@]}" -T 2 >/dev/null 2>&1 # warm the pool and caches
            before=$(cpu_ticks "${PID[$name]}")
            out=$("$PGBENCH" "${args[@]}" -T "$DURATION" 2>&1)
            after=$(cpu_ticks "${PID[$name]}")
            tps=$(echo "$out" | awk '/^tps = /{printf "%d", $3}')
            txns=$(echo "$out" | awk '/number of transactions actually processed/{print $NF}' | cut -d/ -f1)
            us=$(awk -v t=$((after - before)) -v hz="$CLK_TCK" -v n="$txns" 'BEGIN{printf "%.1f", t / hz * 1e6 / n}')
            echo "| $round | $mode | $name | $tps | $us |"
        done
    done
done
