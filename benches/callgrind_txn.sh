#!/usr/bin/env bash
# Instructions pgtide executes per transaction (user space, valgrind's callgrind): the steady
# figure for pgtide's own work on a shared machine, where CPU time per transaction moves by
# ±10% between runs. pgbench -t N through pgtide (under valgrind, one session thread) after a
# warm-up that opens the backend connections; the counters are zeroed before the measured run
# and dumped after it. The clients' own logins are counted (pgbench connects once per client).
#
#   benches/callgrind_txn.sh                       # builds this checkout, -S simple, 10 clients
#   MODE=extended CLIENTS=10 TXNS=1000 benches/callgrind_txn.sh [PGTIDE_BINARY]
#   WORKLOAD=select1 benches/callgrind_txn.sh      # SELECT 1 instead of pgbench -S
#
# Prints "instructions/txn N" and keeps the profile (callgrind_annotate it) when KEEP_PROFILE=1.
# Needs valgrind (installed if missing, Debian/Ubuntu) and PostgreSQL server binaries.
set -euo pipefail
CLIENTS=${CLIENTS:-10}
TXNS=${TXNS:-1000}
MODE=${MODE:-simple}
WORKLOAD=${WORKLOAD:-S}
BENCH_NAME=callgrind_txn
# shellcheck source=benches/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

command -v valgrind >/dev/null || apt_install valgrind
find_postgres
if [ -n "${1:-}" ]; then PGTIDE=$1; else build_pgtide; fi
bench_init
start_postgres 10

PORT=$(free_port)
cat >"$WORK/pgtide.toml" <<TOML
[server]
http_listen = ""
worker_threads = 1

[pool]
mode = "transaction"
size = 20
# No connections opened in the background while measuring: a backend login (SCRAM, 4096
# PBKDF2 rounds) costs millions of instructions, more than a thousand transactions.
min_idle = 0
TOML
PGTIDE_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.out" \
    "$PGTIDE" --config "$WORK/pgtide.toml" \
    --primary "postgres://$BENCH_USER:$BENCH_PW@127.0.0.1:$PG_PORT/$BENCH_DB" \
    --listen "127.0.0.1:$PORT" >"$WORK/pgtide.log" 2>&1 &
PID=$!
BENCH_PIDS="$BENCH_PIDS $PID"
for _ in $(seq 300); do
    "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" -d "$BENCH_DB" -U "$BENCH_USER" && break
    sleep 0.2
done
printf 'SELECT 1;\n' >"$WORK/select1.sql"
workload=(-S)
[ "$WORKLOAD" = select1 ] && workload=(-f "$WORK/select1.sql")
args=(-n "${workload[@]}" -M "$MODE" -c "$CLIENTS" -j 2 -h 127.0.0.1 -p "$PORT" -U "$BENCH_USER" "$BENCH_DB")
log "warm-up (connections, pool)"
"$PGBENCH" "${args[@]}" -t 500 >"$WORK/warmup.log" 2>&1
callgrind_control -z "$PID" >/dev/null
log "measuring $CLIENTS x $TXNS transactions ($WORKLOAD, $MODE)"
"$PGBENCH" "${args[@]}" -t "$TXNS" >"$WORK/run.log" 2>&1
callgrind_control -d "$PID" >/dev/null
sleep 1
dump=$(ls -t "$WORK"/cg.out.* | head -n1)
ir=$(callgrind_annotate "$dump" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
done_txns=$(awk '/number of transactions actually processed/ {split($NF, a, "/"); print a[1]}' "$WORK/run.log")
[ -n "$ir" ] && [ -n "$done_txns" ] && [ "$done_txns" -gt 0 ] || die "no measurement: $(tail -n2 "$WORK/run.log")"
echo "instructions/txn $((ir / done_txns)) ($done_txns transactions, $WORKLOAD, $MODE, $CLIENTS clients)"
if [ "${KEEP_PROFILE:-0}" = 1 ]; then
    cp "$dump" "./callgrind.pgtide.out"
    log "profile kept: ./callgrind.pgtide.out"
fi
