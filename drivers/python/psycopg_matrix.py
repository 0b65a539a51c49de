#!/usr/bin/env python3
"""psycopg 3 through pgtide in transaction pooling mode.

Every statement is server-side prepared (prepare_threshold=0: psycopg sends Parse with a
named statement "_pg3_N" on the first execution and only Bind/Execute after that), from more
connections than the pool has backends, so statements and session state must follow each
client from backend to backend.

Usage: psycopg_matrix.py [URL]   (or PGTIDE_URL=postgres://app:app-secret@127.0.0.1:PORT/app)
Exits 1 with a message naming the failed check; prints one summary line on success.
"""

import os
import sys
import threading
import time
import traceback
from decimal import Decimal

import psycopg

P = "psy"  # every object this script creates starts with this, so drivers can run side by side
SCHEMA = f"{P}_tenant"
ITEMS = f"{P}_items"
WHERE = f"{P}_where"
COPY_T = f"{P}_copy"

WORKERS = 8
ITERATIONS = 12
COPY_WORKERS = 3
COPY_ROWS = 400
SHORT_THREADS = 5
SHORT_EACH = 10  # 5 x 10 = 50 short connections


class Mismatch(Exception):
    pass


def eq(actual, expected, what):
    if actual != expected:
        raise Mismatch(f"{what}: expected {expected!r}, got {actual!r}")


def connect(url):
    return psycopg.connect(url, autocommit=True, prepare_threshold=0, connect_timeout=10)


def expect_error(sqlstate, what, fn):
    """Runs fn, which must fail with `sqlstate`."""
    try:
        fn()
    except psycopg.Error as e:
        eq(e.sqlstate, sqlstate, f"{what}: SQLSTATE ({e})")
        return
    raise Mismatch(f"{what}: expected an error {sqlstate}, the statement succeeded")


def setup(url):
    with connect(url) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        for t in (ITEMS, WHERE, COPY_T):
            conn.execute(f"DROP TABLE IF EXISTS public.{t}")
        conn.execute(f"CREATE SCHEMA {SCHEMA}")
        conn.execute(
            f"CREATE TABLE public.{ITEMS} (id int PRIMARY KEY, worker int NOT NULL, note text NOT NULL)"
        )
        conn.execute(f"CREATE TABLE public.{WHERE} (w text NOT NULL)")
        conn.execute(f"INSERT INTO public.{WHERE} VALUES ('public')")
        conn.execute(f"CREATE TABLE {SCHEMA}.{WHERE} (w text NOT NULL)")
        conn.execute(f"INSERT INTO {SCHEMA}.{WHERE} VALUES ('tenant')")
        conn.execute(
            f"CREATE TABLE public.{COPY_T} (id int PRIMARY KEY, label text NOT NULL, amount numeric(12,2) NOT NULL)"
        )
        return conn.execute("SELECT current_schemas(false)::text").fetchone()[0]


class Counts:
    def __init__(self):
        self.lock = threading.Lock()
        self.prepared = 0
        self.commits = 0
        self.rollbacks = 0
        self.errors = 0
        self.path_checks = 0

    def add(self, **kw):
        with self.lock:
            for k, v in kw.items():
                setattr(self, k, getattr(self, k) + v)


def check_path(conn, expected_path, expected_where, what):
    row = conn.execute(
        f"SELECT current_schemas(false)::text, (SELECT w FROM {WHERE})"
    ).fetchone()
    eq(row, (expected_path, expected_where), f"{what}: (current_schemas, table it resolves)")


def worker(url, i, default_path, barrier, counts):
    """One client: odd workers SET their own search_path (workers 3 and 7 RESET it halfway)."""
    ctx = {"where": f"worker {i} connecting"}
    try:
        with connect(url) as conn:
            worker_loop(conn, i, default_path, barrier, counts, ctx)
    except psycopg.Error as e:
        raise Mismatch(f"{ctx['where']}: {type(e).__name__} [{e.sqlstate}]: {e}") from e


def worker_loop(conn, i, default_path, barrier, counts, ctx):
    tenant_path = f"{{{SCHEMA},public}}"  # current_schemas(false) after SET
    in_tenant = i % 2 == 1
    resets_halfway = i % 4 == 3
    ctx["where"] = f"worker {i} before the first iteration"
    if in_tenant:
        conn.execute(f"SET search_path TO {SCHEMA}, public")
    barrier.wait(timeout=60)
    committed = 0
    for it in range(ITERATIONS):
        where = ctx["where"] = f"worker {i} iteration {it}"
        if resets_halfway and it == ITERATIONS // 2:
            conn.execute("RESET search_path")
            in_tenant = False
        path = tenant_path if in_tenant else default_path
        expected_where = "tenant" if in_tenant else "public"

        # Prepared, parameterised, repeated: the same statement every iteration.
        row = conn.execute(
            "SELECT %s::int * 2 AS doubled, %s::text || '#' || %s::text AS tag",
            (it + i, P, i),
        ).fetchone()
        eq(row, ((it + i) * 2, f"{P}#{i}"), f"{where}: prepared select")
        counts.add(prepared=1)

        check_path(conn, path, expected_where, f"{where}: session search_path")
        counts.add(path_checks=1)

        # A committed transaction: its rows are visible inside and after it.
        base = i * 10_000 + it * 10
        with conn.transaction():
            for k in range(2):
                conn.execute(
                    f"INSERT INTO public.{ITEMS} (id, worker, note) VALUES (%s, %s, %s)",
                    (base + k, i, f"w{i}-it{it}-{k}"),
                )
            n = conn.execute(
                f"SELECT count(*) FROM public.{ITEMS} WHERE worker = %s", (i,)
            ).fetchone()[0]
            eq(n, committed + 2, f"{where}: rows seen inside the open transaction")
            # Inside its transaction the client still has its own search_path.
            check_path(conn, path, expected_where, f"{where}: search_path inside a transaction")
        committed += 2
        counts.add(commits=1)

        # A rolled-back transaction leaves nothing behind, not even the SET inside it.
        conn.execute("BEGIN")
        conn.execute(
            f"INSERT INTO public.{ITEMS} (id, worker, note) VALUES (%s, %s, %s)",
            (base + 5, i, "rolled back"),
        )
        conn.execute("SET search_path TO pg_catalog")
        conn.execute("ROLLBACK")
        n = conn.execute(
            f"SELECT count(*) FROM public.{ITEMS} WHERE id = %s", (base + 5,)
        ).fetchone()[0]
        eq(n, 0, f"{where}: a rolled-back row is visible")
        check_path(conn, path, expected_where, f"{where}: search_path after a rolled-back SET")
        counts.add(rollbacks=1)

        # An error inside a transaction: the transaction is aborted until ROLLBACK, then the
        # connection works as before.
        conn.execute("BEGIN")
        if it % 2 == 0:
            expect_error(
                "23505",
                f"{where}: duplicate key",
                lambda: conn.execute(
                    f"INSERT INTO public.{ITEMS} (id, worker, note) VALUES (%s, %s, %s)",
                    (base, i, "duplicate"),
                ),
            )
        else:
            expect_error(
                "22012",
                f"{where}: division by zero",
                lambda: conn.execute("SELECT 1 / %s::int", (0,)),
            )
        eq(conn.info.transaction_status, psycopg.pq.TransactionStatus.INERROR,
           f"{where}: transaction status after the error")
        expect_error(
            "25P02",
            f"{where}: statement in an aborted transaction",
            lambda: conn.execute("SELECT %s::int", (1,)),
        )
        conn.execute("ROLLBACK")
        eq(conn.info.transaction_status, psycopg.pq.TransactionStatus.IDLE,
           f"{where}: transaction status after ROLLBACK")
        eq(conn.execute("SELECT %s::int + 1", (41,)).fetchone()[0], 42,
           f"{where}: query after the failed transaction")
        counts.add(errors=1)

    ctx["where"] = f"worker {i} after the last iteration"
    n = conn.execute(
        f"SELECT count(*), count(DISTINCT id) FROM public.{ITEMS} WHERE worker = %s", (i,)
    ).fetchone()
    eq(n, (committed, committed), f"worker {i}: committed rows at the end")


def copy_worker(url, c, counts):
    first = c * COPY_ROWS
    rows = [(first + k, f"label-{c}-{k}\twith tab", Decimal(k) / 4) for k in range(COPY_ROWS)]
    with connect(url) as conn:
        with conn.cursor() as cur:
            with cur.copy(f"COPY public.{COPY_T} (id, label, amount) FROM STDIN") as copy:
                for r in rows:
                    copy.write_row(r)
            eq(cur.rowcount, COPY_ROWS, f"copy {c}: rows reported by COPY FROM")

        # COPY TO STDOUT returns exactly what went in.
        got = []
        with conn.cursor() as cur:
            with cur.copy(
                f"COPY (SELECT id, label, amount FROM public.{COPY_T} "
                f"WHERE id >= {first} AND id < {first + COPY_ROWS} ORDER BY id) TO STDOUT"
            ) as copy:
                copy.set_types(["int4", "text", "numeric"])
                for r in copy.rows():
                    got.append(tuple(r))
        eq(len(got), COPY_ROWS, f"copy {c}: rows from COPY TO")
        for want, have in zip(rows, got):
            eq(have, want, f"copy {c}: row from COPY TO")

        # COPY inside a transaction that rolls back.
        conn.execute("BEGIN")
        with conn.cursor() as cur:
            with cur.copy(f"COPY public.{COPY_T} (id, label, amount) FROM STDIN") as copy:
                copy.write_row((1_000_000 + c, "rolled back", 0))
        conn.execute("ROLLBACK")
        n = conn.execute(
            f"SELECT count(*) FROM public.{COPY_T} WHERE id = %s", (1_000_000 + c,)
        ).fetchone()[0]
        eq(n, 0, f"copy {c}: row copied in a rolled-back transaction")

        # The client aborts a COPY: psycopg sends CopyFail, the server ends the COPY with an
        # error that psycopg swallows, and the client's own exception comes out of the block.
        class GiveUp(Exception):
            pass

        try:
            with conn.cursor() as cur:
                with cur.copy(f"COPY public.{COPY_T} (id, label, amount) FROM STDIN") as copy:
                    copy.write_row((2_000_000 + c, "aborted", 0))
                    raise GiveUp()
            raise Mismatch(f"copy {c}: the client's exception did not come out of the COPY block")
        except GiveUp:
            pass
        eq(conn.info.transaction_status, psycopg.pq.TransactionStatus.IDLE,
           f"copy {c}: transaction status after CopyFail")
        # Server-side error in the data: a duplicate key fails the whole COPY.
        with conn.cursor() as cur:

            def dup():
                with cur.copy(f"COPY public.{COPY_T} (id, label, amount) FROM STDIN") as copy:
                    copy.write_row((3_000_000 + c, "kept?", 0))
                    copy.write_row((first, "duplicate", 0))

            expect_error("23505", f"copy {c}: COPY with a duplicate key", dup)
        n = conn.execute(
            f"SELECT count(*) FROM public.{COPY_T} WHERE id IN (%s, %s)",
            (2_000_000 + c, 3_000_000 + c),
        ).fetchone()[0]
        eq(n, 0, f"copy {c}: rows from failed COPYs")
        eq(conn.execute("SELECT %s::text", ("still fine",)).fetchone()[0], "still fine",
           f"copy {c}: query after failed COPYs")


def short_connections(url, t, counts):
    for k in range(SHORT_EACH):
        with connect(url) as conn:
            n = t * 100 + k
            row = conn.execute("SELECT %s::int, pg_backend_pid() > 0", (n,)).fetchone()
            eq(row, (n, True), f"short connection {t}/{k}")


def run_threads(target, args_list):
    errors_seen = []

    def wrap(*args):
        try:
            target(*args)
        except BaseException as e:  # noqa: BLE001 - every failure is reported
            errors_seen.append((args, e, traceback.format_exc()))

    threads = [threading.Thread(target=wrap, args=a) for a in args_list]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
        if t.is_alive():
            errors_seen.append((None, Mismatch("a thread hung for 300 s"), ""))
    if errors_seen:
        for _, e, tb in errors_seen:
            print(tb, file=sys.stderr)
        raise errors_seen[0][1]


def main():
    url = (sys.argv[1] if len(sys.argv) > 1 else None) or os.environ.get("PGTIDE_URL")
    if not url:
        print("usage: psycopg_matrix.py URL (or set PGTIDE_URL)", file=sys.stderr)
        return 2
    started = time.monotonic()
    default_path = setup(url)
    counts = Counts()

    barrier = threading.Barrier(WORKERS)
    run_threads(worker, [(url, i, default_path, barrier, counts) for i in range(WORKERS)])
    run_threads(copy_worker, [(url, c, counts) for c in range(COPY_WORKERS)])
    run_threads(short_connections, [(url, t, counts) for t in range(SHORT_THREADS)])

    with connect(url) as conn:
        total = conn.execute(f"SELECT count(*) FROM public.{ITEMS}").fetchone()[0]
        eq(total, WORKERS * ITERATIONS * 2, "committed rows of all workers")
        copied = conn.execute(f"SELECT count(*) FROM public.{COPY_T}").fetchone()[0]
        eq(copied, COPY_WORKERS * COPY_ROWS, "rows kept by COPY")
        conn.execute(f"DROP SCHEMA {SCHEMA} CASCADE")
        for t in (ITEMS, WHERE, COPY_T):
            conn.execute(f"DROP TABLE public.{t}")

    print(
        f"psycopg {psycopg.__version__} (prepare_threshold=0): {WORKERS} connections x "
        f"{ITERATIONS} iterations: {counts.prepared} prepared selects, {counts.commits} commits, "
        f"{counts.rollbacks} rollbacks, {counts.errors} errors rolled back, "
        f"{counts.path_checks} search_path checks; COPY in/out {COPY_WORKERS * COPY_ROWS} rows "
        f"on {COPY_WORKERS} connections (+ rollback, CopyFail, duplicate key); "
        f"{SHORT_THREADS * SHORT_EACH} short connections; {time.monotonic() - started:.1f}s"
    )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Mismatch as e:
        print(f"psycopg matrix FAILED: {e}", file=sys.stderr)
        sys.exit(1)
    except psycopg.Error as e:
        print(f"psycopg matrix FAILED: {type(e).__name__} [{e.sqlstate}]: {e}", file=sys.stderr)
        sys.exit(1)
