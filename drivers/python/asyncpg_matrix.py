#!/usr/bin/env python3
"""asyncpg through pgtide in transaction pooling mode.

asyncpg prepares every parameterised statement server-side under a name of its own
("__asyncpg_stmt_N__", kept in its statement cache) and also prepares explicitly with
Connection.prepare(); more connections than the pool has backends, so statements and session
state must follow each client from backend to backend.

Usage: asyncpg_matrix.py [URL]   (or PGTIDE_URL=postgres://app:app-secret@127.0.0.1:PORT/app)
Exits 1 with a message naming the failed check; prints one summary line on success.
"""

import asyncio
import io
import os
import sys
import time
from decimal import Decimal

import asyncpg

P = "apg"  # every object this script creates starts with this, so drivers can run side by side
SCHEMA = f"{P}_tenant"
ITEMS = f"{P}_items"
WHERE = f"{P}_where"
COPY_T = f"{P}_copy"
TENANT_PATH = f"{SCHEMA}, public"
TENANT_SCHEMAS = f"{{{SCHEMA},public}}"  # current_schemas(false) with TENANT_PATH

WORKERS = 8
ITERATIONS = 12
COPY_WORKERS = 3
COPY_ROWS = 400
SHORT_TASKS = 5
SHORT_EACH = 10  # 5 x 10 = 50 short connections
POOL_SIZE = 4
POOL_CHECKOUTS = 40
TIMEOUT = 30  # seconds, for connect and each command


class Mismatch(Exception):
    pass


def eq(actual, expected, what):
    if actual != expected:
        raise Mismatch(f"{what}: expected {expected!r}, got {actual!r}")


async def connect(url, **kw):
    return await asyncpg.connect(url, timeout=TIMEOUT, command_timeout=TIMEOUT, **kw)


async def expect_error(sqlstate, what, coro):
    try:
        await coro
    except asyncpg.PostgresError as e:
        eq(e.sqlstate, sqlstate, f"{what}: SQLSTATE ({e})")
        return
    raise Mismatch(f"{what}: expected an error {sqlstate}, the statement succeeded")


async def setup(url):
    conn = await connect(url)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        for t in (ITEMS, WHERE, COPY_T):
            await conn.execute(f"DROP TABLE IF EXISTS public.{t}")
        await conn.execute(
            f"""
            CREATE SCHEMA {SCHEMA};
            CREATE TABLE public.{ITEMS} (id int PRIMARY KEY, worker int NOT NULL, note text NOT NULL);
            CREATE TABLE public.{WHERE} (w text NOT NULL);
            INSERT INTO public.{WHERE} VALUES ('public');
            CREATE TABLE {SCHEMA}.{WHERE} (w text NOT NULL);
            INSERT INTO {SCHEMA}.{WHERE} VALUES ('tenant');
            CREATE TABLE public.{COPY_T} (id int PRIMARY KEY, label text NOT NULL, amount numeric(12,2) NOT NULL);
            """
        )
        row = await conn.fetchrow("SELECT current_schemas(false)::text AS path, current_setting('jit') AS jit")
        return row["path"], row["jit"]
    finally:
        await conn.close()


class Counts:
    prepared = 0
    commits = 0
    rollbacks = 0
    errors = 0
    path_checks = 0


async def check_path(conn, expected_path, expected_where, what):
    row = await conn.fetchrow(
        f"SELECT current_schemas(false)::text AS path, (SELECT w FROM {WHERE}) AS w"
    )
    eq((row["path"], row["w"]), (expected_path, expected_where),
       f"{what}: (current_schemas, table it resolves)")


async def worker(url, i, defaults, start, counts):
    # i % 4 == 1: SET search_path; i % 4 == 3: search_path (and jit, as asyncpg users commonly
    # do) as startup parameters, then RESET search_path halfway (which returns to the startup
    # value, not the server default).
    default_path, default_jit = defaults
    kind = i % 4
    kw = {"server_settings": {"search_path": TENANT_PATH, "jit": "off"}} if kind == 3 else {}
    jit = "off" if kind == 3 else default_jit
    where = f"worker {i} connecting"
    conn = await connect(url, **kw)
    try:
        where = f"worker {i} before the first iteration"
        in_tenant = kind in (1, 3)
        if kind == 1:
            await conn.execute(f"SET search_path TO {TENANT_PATH}")
        # An explicitly prepared statement, used on every iteration.
        doubled = await conn.prepare("SELECT $1::int * 2 AS doubled, $2::text || '#' || $3::text AS tag")
        await start.wait()
        committed = 0
        for it in range(ITERATIONS):
            where = f"worker {i} iteration {it}"
            if it == ITERATIONS // 2 and kind in (1, 3):
                if kind == 1:
                    await conn.execute("SET search_path TO DEFAULT")
                    in_tenant = False
                else:
                    await conn.execute("RESET search_path")
            path = TENANT_SCHEMAS if in_tenant else default_path
            expected_where = "tenant" if in_tenant else "public"

            row = await doubled.fetchrow(it + i, P, str(i))
            eq(tuple(row), ((it + i) * 2, f"{P}#{i}"), f"{where}: explicitly prepared select")
            # The statement cache prepares this one on first use and reuses it after.
            eq(await conn.fetchval("SELECT $1::bigint + $2::bigint", it, i), it + i,
               f"{where}: cached statement")
            counts.prepared += 2

            await check_path(conn, path, expected_where, f"{where}: session search_path")
            eq(await conn.fetchval("SELECT current_setting('jit')"), jit, f"{where}: jit (server_settings)")
            counts.path_checks += 1

            base = i * 10_000 + it * 10
            async with conn.transaction():
                await conn.executemany(
                    f"INSERT INTO public.{ITEMS} (id, worker, note) VALUES ($1, $2, $3)",
                    [(base + k, i, f"w{i}-it{it}-{k}") for k in range(2)],
                )
                n = await conn.fetchval(f"SELECT count(*) FROM public.{ITEMS} WHERE worker = $1", i)
                eq(n, committed + 2, f"{where}: rows seen inside the open transaction")
                await check_path(conn, path, expected_where, f"{where}: search_path inside a transaction")
            committed += 2
            counts.commits += 1

            tr = conn.transaction()
            await tr.start()
            await conn.execute(
                f"INSERT INTO public.{ITEMS} (id, worker, note) VALUES ($1, $2, $3)",
                base + 5, i, "rolled back",
            )
            await tr.rollback()
            n = await conn.fetchval(f"SELECT count(*) FROM public.{ITEMS} WHERE id = $1", base + 5)
            eq(n, 0, f"{where}: a rolled-back row is visible")
            counts.rollbacks += 1

            # An error inside a transaction, then ROLLBACK; the connection keeps working.
            tr = conn.transaction()
            await tr.start()
            if it % 2 == 0:
                await expect_error(
                    "23505", f"{where}: duplicate key",
                    conn.execute(
                        f"INSERT INTO public.{ITEMS} (id, worker, note) VALUES ($1, $2, $3)",
                        base, i, "duplicate",
                    ),
                )
            else:
                await expect_error("22012", f"{where}: division by zero",
                                   conn.fetchval("SELECT 1 / $1::int", 0))
            await expect_error("25P02", f"{where}: statement in an aborted transaction",
                               doubled.fetchrow(1, P, "x"))
            await tr.rollback()
            eq(conn.is_in_transaction(), False, f"{where}: in a transaction after ROLLBACK")
            eq(await conn.fetchval("SELECT $1::int + 1", 41), 42, f"{where}: query after the failed transaction")
            counts.errors += 1

        n = await conn.fetchrow(
            f"SELECT count(*) AS n, count(DISTINCT id) AS d FROM public.{ITEMS} WHERE worker = $1", i
        )
        eq((n["n"], n["d"]), (committed, committed), f"worker {i}: committed rows at the end")
    except asyncpg.PostgresError as e:
        raise Mismatch(f"{where}: {type(e).__name__} [{e.sqlstate}]: {e}") from e
    finally:
        await conn.close()


async def copy_worker(url, c):
    first = c * COPY_ROWS
    rows = [(first + k, f"label-{c}-{k}\twith tab", Decimal(k) / 4) for k in range(COPY_ROWS)]
    conn = await connect(url)
    try:
        status = await conn.copy_records_to_table(
            COPY_T, schema_name="public", records=rows, columns=["id", "label", "amount"]
        )
        eq(status, f"COPY {COPY_ROWS}", f"copy {c}: copy_records_to_table status")

        buf = io.BytesIO()
        status = await conn.copy_from_query(
            f"SELECT id, label, amount FROM public.{COPY_T} WHERE id >= $1 AND id < $2 ORDER BY id",
            first, first + COPY_ROWS, output=buf, format="csv",
        )
        eq(status, f"COPY {COPY_ROWS}", f"copy {c}: copy_from_query status")
        expected_csv = "".join(f"{r[0]},{r[1]},{r[2]:.2f}\n" for r in rows)
        eq(buf.getvalue().decode(), expected_csv, f"copy {c}: CSV from copy_from_query")

        # COPY in a transaction that rolls back keeps nothing.
        tr = conn.transaction()
        await tr.start()
        await conn.copy_records_to_table(
            COPY_T, schema_name="public", records=[(1_000_000 + c, "rolled back", Decimal(0))],
        )
        await tr.rollback()
        # A COPY the server fails (duplicate key) keeps nothing and the connection goes on.
        await expect_error(
            "23505", f"copy {c}: COPY with a duplicate key",
            conn.copy_records_to_table(
                COPY_T, schema_name="public",
                records=[(3_000_000 + c, "kept?", Decimal(0)), (first, "duplicate", Decimal(0))],
            ),
        )
        n = await conn.fetchval(
            f"SELECT count(*) FROM public.{COPY_T} WHERE id = ANY($1::int[])",
            [1_000_000 + c, 3_000_000 + c],
        )
        eq(n, 0, f"copy {c}: rows from rolled-back or failed COPYs")
        eq(await conn.fetchval("SELECT $1::text", "still fine"), "still fine",
           f"copy {c}: query after a failed COPY")
    finally:
        await conn.close()


async def short_connections(url, t):
    for k in range(SHORT_EACH):
        conn = await connect(url)
        try:
            n = t * 100 + k
            row = await conn.fetchrow("SELECT $1::int AS n, pg_backend_pid() > 0 AS pid", n)
            eq((row["n"], row["pid"]), (n, True), f"short connection {t}/{k}")
        finally:
            await conn.close()


async def pool_checkouts(url, default_path):
    """asyncpg's own pool resets each connection on release (RESET ALL, UNLISTEN *, ...)."""
    pool = await asyncpg.create_pool(url, min_size=POOL_SIZE, max_size=POOL_SIZE,
                                     timeout=TIMEOUT, command_timeout=TIMEOUT)
    try:
        async def one(k):
            async with pool.acquire() as conn:
                await check_path(conn, default_path, "public", f"pool checkout {k}: before SET")
                await conn.execute(f"SET search_path TO {TENANT_PATH}")
                await check_path(conn, TENANT_SCHEMAS, "tenant", f"pool checkout {k}: after SET")
                eq(await conn.fetchval("SELECT $1::int * 3", k), k * 3, f"pool checkout {k}")

        await asyncio.gather(*(one(k) for k in range(POOL_CHECKOUTS)))
    finally:
        await pool.close()


async def gather_all(coros):
    results = await asyncio.gather(*coros, return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    for f in failures[1:]:
        print(f"also failed: {type(f).__name__}: {f}", file=sys.stderr)
    if failures:
        raise failures[0]


async def main():
    url = (sys.argv[1] if len(sys.argv) > 1 else None) or os.environ.get("PGTIDE_URL")
    if not url:
        print("usage: asyncpg_matrix.py URL (or set PGTIDE_URL)", file=sys.stderr)
        return 2
    started = time.monotonic()
    defaults = await setup(url)
    default_path = defaults[0]
    counts = Counts()

    start = asyncio.Event()
    tasks = [asyncio.create_task(worker(url, i, defaults, start, counts)) for i in range(WORKERS)]
    await asyncio.sleep(0)
    start.set()
    await gather_all(tasks)
    await gather_all([copy_worker(url, c) for c in range(COPY_WORKERS)])
    await gather_all([short_connections(url, t) for t in range(SHORT_TASKS)])
    await pool_checkouts(url, default_path)

    conn = await connect(url)
    try:
        eq(await conn.fetchval(f"SELECT count(*) FROM public.{ITEMS}"), WORKERS * ITERATIONS * 2,
           "committed rows of all workers")
        eq(await conn.fetchval(f"SELECT count(*) FROM public.{COPY_T}"), COPY_WORKERS * COPY_ROWS,
           "rows kept by COPY")
        await conn.execute(
            f"DROP SCHEMA {SCHEMA} CASCADE; DROP TABLE public.{ITEMS}, public.{WHERE}, public.{COPY_T}"
        )
    finally:
        await conn.close()

    print(
        f"asyncpg {asyncpg.__version__}: {WORKERS} connections x {ITERATIONS} iterations: "
        f"{counts.prepared} prepared-statement executions, {counts.commits} commits, "
        f"{counts.rollbacks} rollbacks, {counts.errors} errors rolled back, {counts.path_checks} "
        f"search_path checks (SET, startup parameters, RESET); copy_records_to_table/copy_from_query "
        f"{COPY_WORKERS * COPY_ROWS} rows on {COPY_WORKERS} connections (+ rollback, duplicate key); "
        f"{SHORT_TASKS * SHORT_EACH} short connections; {POOL_CHECKOUTS} asyncpg pool checkouts; "
        f"{time.monotonic() - started:.1f}s"
    )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(asyncio.run(main()))
    except Mismatch as e:
        print(f"asyncpg matrix FAILED: {e}", file=sys.stderr)
        sys.exit(1)
    except asyncpg.PostgresError as e:
        print(f"asyncpg matrix FAILED: {type(e).__name__} [{e.sqlstate}]: {e}", file=sys.stderr)
        sys.exit(1)
