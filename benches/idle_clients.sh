#!/usr/bin/env bash
# Memory per idle client: opens N logged-in clients that each ran `SELECT 1` once and then sit
# idle, and reads the proxy's VmRSS from /proc before and after. pgtide (transaction mode,
# pool 20), and PgBouncer beside it when it is installed. Self-contained like
# pgbench_compare.sh: a throwaway PostgreSQL, the fd limit raised here, everything stopped on
# exit. The client is a small asyncio script (no driver needed), md5 auth on both proxies.
#
#   benches/idle_clients.sh              # N=10000
#   N=3000 benches/idle_clients.sh
#
# Env: N (default 10000), CONCURRENCY (logins in flight, default 100), SETTLE (s to wait after
# the last login before reading RSS, default 2).
set -euo pipefail

N=${N:-10000}
CONCURRENCY=${CONCURRENCY:-100}
SETTLE=${SETTLE:-2}
BENCH_NAME=idle_clients
# shellcheck source=benches/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Each proxy and the client hold N sockets.
want_fds=$((N + 1000))
if [ "$(ulimit -n)" -lt "$want_fds" ]; then
    ulimit -n "$want_fds" 2>/dev/null || ulimit -Sn "$want_fds" 2>/dev/null ||
        die "cannot raise the fd limit to $want_fds (hard limit $(ulimit -Hn)); lower N"
fi
command -v python3 >/dev/null || apt_install python3

find_postgres
find_pgbouncer optional
build_pgtide
bench_init
start_postgres 0

PGTIDE_PORT=$(free_port)
start_pgtide pgtide "$PGTIDE_PORT" 20 "" "max_client_connections = $((N + 100))
auth_method = \"md5\""

if [ -n "$PGBOUNCER" ]; then
    BOUNCER_PORT=$(free_port)
    start_pgbouncer "$BOUNCER_PORT" 20 $((N + 100)) md5
fi

cat >"$WORK/idle.py" <<'EOF'
# Holds N idle clients on a proxy; prints "rss_before rss_after" in KiB (VmRSS of PID).
import asyncio, hashlib, struct, sys, time

host, port, pid, n, conc, settle = sys.argv[1], int(sys.argv[2]), sys.argv[3], *map(int, sys.argv[4:7])
user, pw, db = (a.encode() for a in sys.argv[7:10])

def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise SystemExit(f"no VmRSS for {pid}")

def msg(tag, body):
    return tag + struct.pack("!I", len(body) + 4) + body

async def read_msg(r):
    head = await r.readexactly(5)
    (length,) = struct.unpack("!I", head[1:])
    return head[:1], await r.readexactly(length - 4)

async def reply(r):
    # The next message; an ErrorResponse fails the bench.
    tag, body = await read_msg(r)
    if tag == b"E":
        raise RuntimeError(body.decode(errors="replace"))
    return tag, body

async def until_ready(r):
    while (await reply(r))[0] != b"Z":
        pass

async def client(sem):
    async with sem:
        r, w = await asyncio.open_connection(host, port)
        params = b"user\0" + user + b"\0database\0" + db + b"\0\0"
        w.write(struct.pack("!II", len(params) + 8, 196608) + params)
        while True:
            tag, body = await reply(r)
            if tag == b"Z":
                break
            if tag != b"R":
                continue
            (code,) = struct.unpack("!I", body[:4])
            if code == 3:
                w.write(msg(b"p", pw + b"\0"))
            elif code == 5:
                inner = hashlib.md5(pw + user).hexdigest().encode()
                w.write(msg(b"p", b"md5" + hashlib.md5(inner + body[4:8]).hexdigest().encode() + b"\0"))
            elif code != 0:
                raise RuntimeError(f"auth method {code} is not one this bench speaks")
        w.write(msg(b"Q", b"SELECT 1\0"))
        await until_ready(r)
        return r, w

async def main():
    sem = asyncio.Semaphore(conc)
    # Warm-up: the pool, the allocator's arenas and the proxy's first-use tables.
    warm = await asyncio.gather(*(client(sem) for _ in range(min(n, 200))))
    for _, w in warm:
        w.write(msg(b"X", b""))
        w.close()
    await asyncio.sleep(settle)
    before = rss(pid)
    started = time.monotonic()
    conns = await asyncio.gather(*(client(sem) for _ in range(n)))
    took = time.monotonic() - started
    await asyncio.sleep(settle)
    after = rss(pid)
    print(before, after, f"{took:.1f}", flush=True)
    for _, w in conns:
        w.write(msg(b"X", b""))
        w.close()
    await asyncio.sleep(0.5)

asyncio.run(main())
EOF

measure() { # name port pid
    log "$1: $N idle clients"
    local out
    out=$(python3 "$WORK/idle.py" 127.0.0.1 "$2" "$3" "$N" "$CONCURRENCY" "$SETTLE" \
        "$BENCH_USER" "$BENCH_PW" "$BENCH_DB") || die "$1: the idle clients failed"
    read -r before after took <<<"$out"
    per=$(awk -v a="$after" -v b="$before" -v n="$N" 'BEGIN {printf "%.2f", (a - b) / n}')
    echo "| $1 | $N | $before | $after | $per | $took |"
}

echo
echo "## RSS per idle client"
echo
echo "- machine: $(nproc) CPU(s), $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), $(uname -sr)"
echo "- pgtide: $("$PGTIDE" --version | awk '{print $2}') release build (transaction mode, pool 20); PgBouncer: ${BOUNCER_VERSION:-not installed}"
echo "- each client: md5 login, \`SELECT 1\` once, then idle; RSS (VmRSS) read ${SETTLE}s after the last login, after a warm-up of 200 clients"
echo
echo "| proxy | clients | RSS before (KiB) | RSS after (KiB) | KiB per client | logins took (s) |"
echo "|---|---:|---:|---:|---:|---:|"
measure pgtide "$PGTIDE_PORT" "${PGTIDE_PIDS[pgtide]}"
if [ -n "$PGBOUNCER" ]; then
    measure pgbouncer "$BOUNCER_PORT" "$BOUNCER_PID"
fi
