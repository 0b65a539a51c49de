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
# Sections (SECTIONS, default all):
#   compare   pgtide against PgBouncer per cell (`SELECT 1` and -S; simple, extended, prepared
#             where PgBouncer runs it; 10 and 100 clients): throughput ratio and each proxy's
#             CPU time per transaction (utime+stime from /proc over the runs / transactions),
#             ROUNDS alternating runs each; then median latency of `SELECT 1` at 1 client,
#             direct and through pgtide.
#   proxies   pgbench -S straight, through PgBouncer and through pgtide, per query mode.
#   insights  pgbench -S through pgtide with [insights] off and on (alternating runs).
#   cache     a cacheable point query through pgtide's result cache against PostgreSQL.
#
#   SECTIONS=compare DURATION=10 ROUNDS=2 benches/pgbench_compare.sh   # the issue-12 table
#   SECTIONS=compare DURATION=2 ROUNDS=1 CELLS="select1/simple/10" benches/pgbench_compare.sh
#
# Env: SECTIONS, DURATION (s, default 15), WARMUP (s per target, default 3), CLIENTS (default 32),
#      THREADS (default 2), POOL_SIZE (default 20), SCALE (pgbench -s, default 10),
#      ROUNDS (compare, default 2), CELLS (compare: workload/mode/clients, default all 12).
# Every process here shares one machine: on a small box the numbers say as much about
# CPU contention as about the proxies; compare them relative to "direct".
set -euo pipefail

DURATION=${DURATION:-15}
WARMUP=${WARMUP:-3}
CLIENTS=${CLIENTS:-32}
THREADS=${THREADS:-2}
POOL_SIZE=${POOL_SIZE:-20}
SCALE=${SCALE:-10}
SECTIONS=" ${SECTIONS:-compare proxies insights cache} "
ROUNDS=${ROUNDS:-2}
want() { [[ "$SECTIONS" == *" $1 "* ]]; }
BENCH_NAME=pgbench_compare
# shellcheck source=benches/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

find_postgres
find_pgbouncer
build_pgtide
bench_init
start_postgres "$SCALE"

BOUNCER_PORT=$(free_port)
PGTIDE_PORT=$(free_port)
start_pgbouncer "$BOUNCER_PORT" "$POOL_SIZE" 1000 scram-sha-256
start_pgtide pgtide "$PGTIDE_PORT" "$POOL_SIZE"
PGTIDE_PID=${PGTIDE_PIDS[pgtide]}
# The same with insights off, and one with a cache rule for the point-query section.
NOINSIGHTS_PORT=$(free_port)
CACHE_PORT=$(free_port)
start_pgtide pgtide-noinsights "$NOINSIGHTS_PORT" "$POOL_SIZE" $'[insights]\nenabled = false'
start_pgtide pgtide-cache "$CACHE_PORT" "$POOL_SIZE" $'[[cache.rules]]\ntables = ["pgbench_accounts"]\nttl = "10m"'

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
# ---------------------------------------------------------------------------------------------
# pgtide against PgBouncer, cell by cell: throughput and each proxy's CPU per transaction.
declare -A PROXY_PID=([pgbouncer]=$BOUNCER_PID [pgtide]=$PGTIDE_PID)
printf 'SELECT 1;\n' >"$WORK/select1.sql"
workload_args() { # select1|S
    if [ "$1" = select1 ]; then echo "-f $WORK/select1.sql"; else echo "-S"; fi
}
# One run: "tps transactions cpu_ticks user_ticks" of the target's proxy process.
measure_run() { # target workload mode clients seconds
    local out="$WORK/cmp-$1.log" before after ubefore uafter tps txns
    before=$(cpu_ticks "${PROXY_PID[$1]}")
    ubefore=$(user_ticks "${PROXY_PID[$1]}")
    # shellcheck disable=SC2046
    "$PGBENCH" -n $(workload_args "$2") -M "$3" -c "$4" -j "$THREADS" -T "$5" \
        -h 127.0.0.1 -p "${PORT[$1]}" -U "$BENCH_USER" "$BENCH_DB" >"$out" 2>&1 || true
    after=$(cpu_ticks "${PROXY_PID[$1]}")
    uafter=$(user_ticks "${PROXY_PID[$1]}")
    tps=$(awk '/^tps = / {printf "%.1f", $3; exit}' "$out")
    txns=$(awk '/number of transactions actually processed/ {split($NF, a, "/"); print a[1]; exit}' "$out")
    [ -n "$tps" ] && [ -n "$txns" ] || { log "$1 $2 $3 $4: pgbench failed: $(tail -n1 "$out")"; echo "0 0 0 0"; return; }
    echo "$tps $txns $((after - before)) $((uafter - ubefore))"
}
if want compare; then
    ALL_CELLS=""
    for w in select1 S; do for m in simple extended prepared; do for c in 10 100; do
        ALL_CELLS="$ALL_CELLS $w/$m/$c"
    done; done; done
    log "compare: warm-up"
    for t in pgbouncer pgtide; do measure_run "$t" S simple 10 2 >/dev/null; done
    echo
    echo "## pgtide vs PgBouncer, per cell (pgbench -j $THREADS, $ROUNDS x ${DURATION}s alternating rounds, pool $POOL_SIZE, transaction mode, insights on)"
    echo
    echo "- machine: $(nproc) CPU(s), ${cpu:-unknown CPU}, ${mem:-? GiB} RAM, $(uname -sr); load average before: $LOADAVG_BEFORE"
    echo "- PgBouncer $BOUNCER_VERSION, pgtide $("$PGTIDE" --version | awk '{print $2}') (release); CPU = utime+stime of the proxy process from /proc/<pid>/stat over the runs, divided by transactions; in brackets utime alone (the proxy's own code); pgtide with its default server.worker_threads ($(( $(nproc) / 2 > 1 ? $(nproc) / 2 : 1 )) session thread(s) here)"
    echo
    echo "| workload | mode | clients | PgBouncer tps | pgtide tps | pgtide / PgBouncer | PgBouncer CPU µs/txn (user) | pgtide CPU µs/txn (user) |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|"
    for cell in ${CELLS:-$ALL_CELLS}; do
        IFS=/ read -r w m c <<<"$cell"
        name=$([ "$w" = select1 ] && echo '`SELECT 1`' || echo "-S")
        if [ "$m" = prepared ] && [ "$BOUNCER_PREPARED" -eq 0 ]; then
            echo "| $name | $m | $c | — | — | — | — | — |"
            continue
        fi
        declare -A S_TPS=() S_TX=() S_TICKS=() S_UTICKS=() S_OK=()
        for round in $(seq "$ROUNDS"); do
            # Alternate who goes first, so drift over the run hits both alike.
            order="pgbouncer pgtide"
            [ $((round % 2)) -eq 0 ] && order="pgtide pgbouncer"
            for t in $order; do
                log "compare $cell round $round: $t"
                read -r tps txns ticks uticks <<<"$(measure_run "$t" "$w" "$m" "$c" "$DURATION")"
                # A failed round (pgbench error) counts in no sum: the means are over the rest.
                [ "$txns" -gt 0 ] || continue
                S_OK[$t]=$((${S_OK[$t]:-0} + 1))
                S_UTICKS[$t]=$((${S_UTICKS[$t]:-0} + uticks))
                S_TPS[$t]=$(awk -v a="${S_TPS[$t]:-0}" -v b="$tps" 'BEGIN {print a + b}')
                S_TX[$t]=$((${S_TX[$t]:-0} + txns))
                S_TICKS[$t]=$((${S_TICKS[$t]:-0} + ticks))
            done
        done
        awk -v bt="${S_TPS[pgbouncer]:-0}" -v pt="${S_TPS[pgtide]:-0}" -v r="$ROUNDS" \
            -v bo="${S_OK[pgbouncer]:-0}" -v po="${S_OK[pgtide]:-0}" \
            -v bx="${S_TX[pgbouncer]}" -v px="${S_TX[pgtide]}" \
            -v bk="${S_TICKS[pgbouncer]}" -v pk="${S_TICKS[pgtide]}" -v hz="$CLK_TCK" \
            -v bu="${S_UTICKS[pgbouncer]}" -v pu="${S_UTICKS[pgtide]}" \
            -v name="$name" -v m="$m" -v c="$c" 'BEGIN {
                # Means over the rounds that ran; a cell with failed rounds says how many ran.
                bm = bo > 0 ? bt / bo : 0
                pm = po > 0 ? pt / po : 0
                ratio = bm > 0 && pm > 0 ? sprintf("%.2fx", pm / bm) : "—"
                if (bo < r || po < r) ratio = ratio sprintf(" (rounds run: %d/%d, %d/%d)", bo, r, po, r)
                bc = bx > 0 ? sprintf("%.1f (%.1f)", bk / hz * 1e6 / bx, bu / hz * 1e6 / bx) : "—"
                pc = px > 0 ? sprintf("%.1f (%.1f)", pk / hz * 1e6 / px, pu / hz * 1e6 / px) : "—"
                printf "| %s | %s | %d | %.0f | %.0f | %s | %s | %s |\n", name, m, c, bm, pm, ratio, bc, pc
            }'
    done
    [ "$BOUNCER_PREPARED" -eq 0 ] && echo && echo "prepared: skipped, PgBouncer $BOUNCER_VERSION keeps no prepared statements in transaction mode (needs >= 1.21)"

    # Median latency at 1 client, SELECT 1, simple protocol: what pgtide adds to a round trip.
    log "compare: latency at 1 client, $ROUNDS x ${DURATION}s alternating"
    : >"$WORK/lat-direct.txt"
    : >"$WORK/lat-pgtide.txt"
    for round in $(seq "$ROUNDS"); do
        for t in direct pgtide; do
            rm -f "$WORK"/lat.*
            "$PGBENCH" -n -f "$WORK/select1.sql" -M simple -c 1 -j 1 -T "$DURATION" -l \
                --log-prefix="$WORK/lat" -h 127.0.0.1 -p "${PORT[$t]}" -U "$BENCH_USER" \
                "$BENCH_DB" >/dev/null 2>&1 || log "latency run on $t failed"
            # Per-transaction log: the third column is the latency in µs.
            cat "$WORK"/lat.* 2>/dev/null | awk '{print $3}' >>"$WORK/lat-$t.txt"
        done
    done
    median() { sort -n "$1" | awk '{v[NR] = $1} END {if (NR) print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2); else print "—"}'; }
    md=$(median "$WORK/lat-direct.txt")
    mp=$(median "$WORK/lat-pgtide.txt")
    echo
    echo "| \`SELECT 1\`, 1 client | median latency (µs) |"
    echo "|---|---:|"
    echo "| direct | $md |"
    echo "| pgtide | $mp |"
    awk -v d="$md" -v p="$mp" 'BEGIN {if (d + 0 > 0 && p + 0 > 0) printf "\nadded by pgtide: %.0f µs (median)\n\n", p - d}'
fi

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
    # A failed run (no tps line) adds 0 rather than breaking the arithmetic.
    run_pgbench pgtide-noinsights simple "$DURATION"
    OFF=$((OFF + $(tps_of "$WORK/run-pgtide-noinsights-simple.log" || true) + 0))
    run_pgbench pgtide simple "$DURATION"
    ON=$((ON + $(tps_of "$WORK/run-pgtide-simple.log" || true) + 0))
done
echo "## pgtide with query insights on vs off (pgbench -n -S -M simple -c $CLIENTS, 2 alternating runs of ${DURATION}s each)"
echo
echo "| insights | tps (mean) |"
echo "|---|---:|"
echo "| off | $((OFF / 2)) |"
echo "| on | $((ON / 2)) |"
awk -v on="$ON" -v off="$OFF" 'BEGIN {if (off > 0) printf "\nthroughput with insights on: %.1f%% of off\n\n", 100 * on / off; else print "\ninsights off: no run succeeded\n"}'

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
