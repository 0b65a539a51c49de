//! One test per rule, by statement type: EXPLAIN, COPY, DML, DDL, PREPARE, transaction control,
//! session commands, multi-statement strings, hints.

use super::{
    classify_uncached, Classification, Part, RouteHint, StatementKind as K,
    TransactionStatement as T,
};

fn c(sql: &str) -> Classification {
    classify_uncached(sql, &[])
}

fn kind(sql: &str) -> K {
    c(sql).kind
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[track_caller]
fn rw(sql: &str, k: K, reads: &[&str], writes: &[&str]) {
    let got = c(sql);
    assert_eq!(
        (got.kind, got.reads, got.writes),
        (k, names(reads), names(writes)),
        "{sql}"
    );
}

#[test]
fn explain() {
    rw("EXPLAIN SELECT * FROM foo", K::Read, &["foo"], &[]);
    rw("EXPLAIN ANALYZE SELECT * FROM foo", K::Read, &["foo"], &[]);
    rw(
        "EXPLAIN (ANALYZE, BUFFERS) SELECT * FROM foo",
        K::Read,
        &["foo"],
        &[],
    );
    rw(
        "EXPLAIN (COSTS FALSE, FORMAT JSON) SELECT * FROM foo",
        K::Read,
        &["foo"],
        &[],
    );
    // Not run: only planned.
    rw("EXPLAIN UPDATE foo SET a = 1", K::Read, &[], &[]);
    rw("EXPLAIN (ANALYZE false) DELETE FROM foo", K::Read, &[], &[]);
    rw("EXPLAIN VERBOSE SELECT nextval('s')", K::Read, &[], &[]);
    // Run.
    rw(
        "EXPLAIN ANALYZE UPDATE foo SET a = 1",
        K::Write,
        &[],
        &["foo"],
    );
    rw(
        "EXPLAIN ANALYZE VERBOSE DELETE FROM foo",
        K::Write,
        &[],
        &["foo"],
    );
    rw(
        "EXPLAIN (ANALYZE) INSERT INTO foo VALUES (1)",
        K::Write,
        &[],
        &["foo"],
    );
    rw(
        "EXPLAIN (BUFFERS, ANALYZE on) SELECT nextval('s')",
        K::Write,
        &[],
        &[],
    );
    assert_eq!(
        kind("EXPLAIN ANALYSE SELECT * FROM foo FOR UPDATE"),
        K::Write
    );
    assert_eq!(kind("EXPLAIN BEGIN"), K::Write);
    assert_eq!(kind("EXPLAIN EXPLAIN SELECT 1"), K::Read);
    assert_eq!(kind("EXPLAIN ANALYZE EXPLAIN SELECT 1"), K::Write);
    assert_eq!(kind("EXPLAIN"), K::Write);
}

#[test]
fn copy() {
    rw("COPY users TO STDOUT", K::Read, &["users"], &[]);
    rw(
        "COPY public.users (id, name) TO STDOUT WITH (FORMAT csv)",
        K::Read,
        &["public.users"],
        &[],
    );
    rw(
        "COPY (SELECT * FROM a JOIN b USING (id)) TO STDOUT",
        K::Read,
        &["a", "b"],
        &[],
    );
    rw("COPY users FROM STDIN", K::Write, &[], &["users"]);
    rw(
        "COPY users (a, b) FROM '/tmp/x.csv' CSV",
        K::Write,
        &[],
        &["users"],
    );
    rw("COPY users TO '/tmp/x.csv'", K::Write, &["users"], &[]);
    rw(
        "COPY users TO PROGRAM 'gzip > /tmp/x'",
        K::Write,
        &["users"],
        &[],
    );
    rw("COPY (SELECT * FROM a) TO '/tmp/a'", K::Write, &["a"], &[]);
    rw(
        "COPY (DELETE FROM a RETURNING *) TO STDOUT",
        K::Write,
        &[],
        &["a"],
    );
    assert_eq!(kind("COPY (SELECT nextval('s')) TO STDOUT"), K::Write);
    assert_eq!(kind("COPY (COPY t TO STDOUT) TO STDOUT"), K::Write);
    assert_eq!(kind("COPY (SELECT 1 TO STDOUT"), K::Write);
}

#[test]
fn dml_targets() {
    rw(
        "INSERT INTO orders (user_id, total) VALUES ($1, $2)",
        K::Write,
        &[],
        &["orders"],
    );
    rw(
        r#"INSERT INTO "public"."Post" ("title") VALUES ($1) ON CONFLICT ("id") DO UPDATE SET "title" = EXCLUDED."title" RETURNING "id""#,
        K::Write,
        &[],
        &["public.\"Post\""],
    );
    rw("INSERT INTO t SELECT * FROM u", K::Write, &["u"], &["t"]);
    rw(
        "UPDATE accounts SET balance = balance + $1 WHERE id = $2",
        K::Write,
        &[],
        &["accounts"],
    );
    rw(
        "UPDATE a SET x = b.x FROM b JOIN c ON c.id = b.c WHERE a.id = b.id",
        K::Write,
        &["b", "c"],
        &["a"],
    );
    rw(
        "UPDATE t SET x = (SELECT max(y) FROM u)",
        K::Write,
        &["u"],
        &["t"],
    );
    rw(
        "DELETE FROM sessions WHERE id = $1",
        K::Write,
        &[],
        &["sessions"],
    );
    rw(
        "DELETE FROM a USING b WHERE a.id = b.id",
        K::Write,
        &["b"],
        &["a"],
    );
    rw(
        "DELETE FROM ONLY a WHERE id IN (SELECT id FROM b)",
        K::Write,
        &["b"],
        &["a"],
    );
    rw(
        "UPDATE ONLY a SET x = (SELECT 1 FROM b)",
        K::Write,
        &["b"],
        &["a"],
    );
    rw(
        "SELECT * FROM ONLY a, (SELECT 1 FROM ONLY b) s JOIN ONLY c ON true",
        K::Read,
        &["a", "b", "c"],
        &[],
    );
    rw("TRUNCATE TABLE ONLY a, b", K::Write, &[], &["a", "b"]);
    rw(
        "MERGE INTO accounts a USING recent r ON r.id = a.id WHEN MATCHED THEN UPDATE SET balance = a.balance + r.v WHEN NOT MATCHED THEN INSERT (id, balance) VALUES (r.id, r.v)",
        K::Write,
        &["recent"],
        &["accounts"],
    );
}

#[test]
fn ddl_and_maintenance_are_writes() {
    rw(
        "CREATE TABLE films (code char(5) PRIMARY KEY, title text)",
        K::Write,
        &[],
        &["films"],
    );
    rw(
        "CREATE TABLE films2 AS SELECT * FROM films WHERE x",
        K::Write,
        &["films"],
        &["films2"],
    );
    rw(
        "CREATE INDEX CONCURRENTLY idx ON films (title)",
        K::Write,
        &[],
        &["idx", "films"],
    );
    rw(
        "ALTER TABLE films ADD COLUMN x int",
        K::Write,
        &[],
        &["films"],
    );
    rw(
        "DROP TABLE films, distributors",
        K::Write,
        &[],
        &["films", "distributors"],
    );
    rw("DROP INDEX IF EXISTS idx", K::Write, &[], &["idx"]);
    rw(
        "TRUNCATE bigtable, fattable RESTART IDENTITY",
        K::Write,
        &[],
        &["bigtable", "fattable"],
    );
    rw(
        "CREATE VIEW v AS SELECT * FROM films",
        K::Write,
        &["films"],
        &["v"],
    );
    rw(
        "REFRESH MATERIALIZED VIEW CONCURRENTLY app.summary",
        K::Write,
        &[],
        &["app.summary"],
    );
    for sql in [
        "CALL do_db_maintenance()",
        "DO $$BEGIN PERFORM 1; END$$",
        "LOCK TABLE films IN SHARE ROW EXCLUSIVE MODE",
        "LISTEN virtual",
        "UNLISTEN *",
        "NOTIFY virtual, 'payload'",
        "VACUUM (VERBOSE, ANALYZE) onek",
        "ANALYZE users",
        "CLUSTER employees USING employees_ind",
        "REINDEX INDEX my_index",
        "GRANT INSERT ON films TO PUBLIC",
        "REVOKE ALL PRIVILEGES ON kinds FROM manuel",
        "CHECKPOINT",
        "EXECUTE fooplan(1, 'x')",
        "DECLARE c CURSOR FOR SELECT * FROM t",
        "FETCH 10 FROM c",
        "CLOSE c",
        "CREATE MATERIALIZED VIEW mv AS SELECT 1",
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END",
    ] {
        assert_eq!(kind(sql), K::Write, "{sql}");
    }
}

#[test]
fn unknown_empty_and_unparsable_are_writes() {
    for sql in [
        "",
        "   ",
        ";",
        "-- just a comment",
        "/* only */ ;",
        "SELEC 1",
        "SELECT * FROM t WHERE x = 'unterminated",
        "SELECT * FROM \"unterminated",
        "FROBNICATE everything",
        "WITH x AS (SELECT 1) SELEKT",
        "SELECT 1 /* unterminated",
        "SELECT ((1) FROM t",
        "SELECT (1)) FROM t",
        "UPDATE t SET a = (1",
    ] {
        assert_eq!(kind(sql), K::Write, "{sql:?}");
    }
    assert_eq!(c("").statements, 0);
    assert_eq!(c("-- x").statements, 0);
}

#[test]
fn prepare_is_classified_by_its_statement() {
    rw(
        "PREPARE q (int) AS SELECT * FROM users WHERE id = $1",
        K::Read,
        &["users"],
        &[],
    );
    rw(
        "PREPARE fooplan (int, text) AS INSERT INTO foo VALUES ($1, $2)",
        K::Write,
        &[],
        &["foo"],
    );
    rw("PREPARE \"Q\" AS UPDATE t SET a = 1", K::Write, &[], &["t"]);
    assert_eq!(kind("PREPARE q AS SELECT nextval('s')"), K::Write);
    assert_eq!(kind("PREPARE q AS SELECT * FROM t FOR UPDATE"), K::Write);
    assert_eq!(kind("PREPARE q AS BEGIN"), K::Write);
    assert_eq!(kind("PREPARE q AS PREPARE r AS SELECT 1"), K::Write);
    assert_eq!(kind("PREPARE q (int AS SELECT 1"), K::Write);
    assert_eq!(kind("EXECUTE q(1)"), K::Write);
    assert_eq!(
        kind("PREPARE TRANSACTION 'foo'"),
        K::Transaction(T::TwoPhase)
    );
}

#[test]
fn transaction_control() {
    let tx = |sql: &str| kind(sql);
    assert_eq!(tx("BEGIN"), K::Transaction(T::Begin { read_only: false }));
    assert_eq!(
        tx("begin work"),
        K::Transaction(T::Begin { read_only: false })
    );
    assert_eq!(
        tx("BEGIN READ ONLY"),
        K::Transaction(T::Begin { read_only: true })
    );
    assert_eq!(
        tx("BEGIN ISOLATION LEVEL SERIALIZABLE, READ ONLY, DEFERRABLE"),
        K::Transaction(T::BeginSerializable),
        "a standby refuses it"
    );
    assert_eq!(
        tx("START TRANSACTION READ ONLY"),
        K::Transaction(T::Begin { read_only: true })
    );
    assert_eq!(
        tx("START TRANSACTION READ ONLY, READ WRITE"),
        K::Transaction(T::Begin { read_only: false })
    );
    assert_eq!(
        tx("START TRANSACTION"),
        K::Transaction(T::Begin { read_only: false })
    );
    assert_eq!(
        tx("SET TRANSACTION READ ONLY"),
        K::Transaction(T::SetReadOnly(true))
    );
    assert_eq!(
        tx("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE READ WRITE"),
        K::Transaction(T::SetReadOnly(false))
    );
    assert_eq!(
        tx("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"),
        K::Transaction(T::SetReadOnly(false))
    );
    assert_eq!(tx("COMMIT"), K::Transaction(T::Commit));
    assert_eq!(tx("END"), K::Transaction(T::Commit));
    assert_eq!(tx("COMMIT AND CHAIN"), K::Transaction(T::Commit));
    assert_eq!(tx("ROLLBACK"), K::Transaction(T::Rollback));
    assert_eq!(tx("ABORT"), K::Transaction(T::Rollback));
    assert_eq!(tx("ROLLBACK WORK"), K::Transaction(T::Rollback));
    assert_eq!(tx("SAVEPOINT sp1"), K::Transaction(T::Savepoint));
    assert_eq!(tx("RELEASE SAVEPOINT sp1"), K::Transaction(T::Savepoint));
    assert_eq!(tx("RELEASE sp1"), K::Transaction(T::Savepoint));
    assert_eq!(
        tx("ROLLBACK TO SAVEPOINT sp1"),
        K::Transaction(T::Savepoint)
    );
    assert_eq!(
        tx("ROLLBACK TRANSACTION TO sp1"),
        K::Transaction(T::Savepoint)
    );
    assert_eq!(tx("COMMIT PREPARED 'foo'"), K::Transaction(T::TwoPhase));
    assert_eq!(tx("ROLLBACK PREPARED 'foo'"), K::Transaction(T::TwoPhase));
    assert_eq!(tx("START something"), K::Write);
}

#[test]
fn session_commands() {
    for sql in [
        "SET search_path TO app, public",
        "SET LOCAL statement_timeout = '5s'",
        "SET SESSION timezone = 'UTC'",
        "SET TIME ZONE 'UTC'",
        "SET pgtide.route = replica",
        "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
        "RESET ALL",
        "RESET search_path",
        "DISCARD ALL",
        "DEALLOCATE fooplan",
        "DEALLOCATE ALL",
    ] {
        assert_eq!(kind(sql), K::Session, "{sql}");
    }
}

#[test]
fn multi_statement_strings_combine() {
    let m = c("SELECT * FROM a; SELECT * FROM b WHERE x = now()");
    assert_eq!((m.kind, m.statements, m.volatile), (K::Read, 2, true));
    assert_eq!(m.reads, names(&["a", "b"]));
    assert_eq!(kind("SET x = 1; SELECT 1"), K::Read);
    assert_eq!(kind("SET x = 1; RESET y"), K::Session);
    let w = c("SELECT * FROM a; UPDATE b SET x = 1; SELECT * FROM a");
    assert_eq!((w.kind, w.statements), (K::Write, 3));
    assert_eq!((w.reads, w.writes), (names(&["a"]), names(&["b"])));
    // Any transaction statement among several makes the string a write...
    assert_eq!(kind("BEGIN; SELECT 1; COMMIT"), K::Write);
    assert_eq!(kind("BEGIN READ ONLY; SELECT 1"), K::Write);
    // ...a lone one keeps its kind, trailing semicolons and comments included.
    assert_eq!(kind("COMMIT;"), K::Transaction(T::Commit));
    assert_eq!(
        kind("/* x */ BEGIN; -- y"),
        K::Transaction(T::Begin { read_only: false })
    );
    assert_eq!(c("SELECT 1;;").statements, 1);
    assert_eq!(c("SELECT ';'; SELECT 2").statements, 2);
}

#[test]
fn hints() {
    let h = |sql: &str| c(sql).hint;
    assert_eq!(h("/* pgtide:primary */ SELECT 1"), Some(RouteHint::Primary));
    assert_eq!(h("SELECT 1 -- pgtide:replica"), Some(RouteHint::Replica));
    assert_eq!(h("SELECT 1 /*PGTIDE : Replica*/"), Some(RouteHint::Replica));
    assert_eq!(
        h("SELECT 1 /*  app=x  pgtide:  primary  */"),
        Some(RouteHint::Primary)
    );
    assert_eq!(
        h("/* pgtide:replica */ SELECT 1; /* pgtide:primary */ SELECT 2"),
        Some(RouteHint::Replica)
    );
    assert_eq!(
        h("/* pgtide:bogus pgtide:primary */ SELECT 1"),
        Some(RouteHint::Primary)
    );
    assert_eq!(h("SELECT '/* pgtide:primary */'"), None);
    assert_eq!(h("SELECT 1 /* notpgtide:primary */"), None);
    assert_eq!(h("SELECT 1 /* pgtide:primaryx */"), None);
    assert_eq!(h("SELECT pgtide FROM t"), None);
    // A hint does not change the kind.
    assert_eq!(kind("/* pgtide:replica */ UPDATE t SET a = 1"), K::Write);
    let only_hint = c("/* pgtide:replica */");
    assert_eq!(
        (only_hint.kind, only_hint.hint),
        (K::Write, Some(RouteHint::Replica))
    );
}

#[test]
fn part_of_is_empty() {
    let p = Part::of(K::Session);
    assert!(p.reads.is_empty() && p.writes.is_empty() && !p.volatile);
}
