//! One test per rule for queries: reads, joins, names, CTEs, locks, writable CTEs, SELECT INTO,
//! side-effect and volatile functions. Statement types are in `statements_tests`, limits in
//! `limits_tests`; the annotated corpus (tests/corpus/*.sql) covers real-world statements.

use super::{classify_uncached, Classification, StatementKind as K};

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
fn plain_reads() {
    rw("SELECT 1", K::Read, &[], &[]);
    rw(
        "SELECT id, name FROM users WHERE id = $1",
        K::Read,
        &["users"],
        &[],
    );
    rw(
        "select * from Public.Users u where u.id = $1",
        K::Read,
        &["public.users"],
        &[],
    );
    rw("TABLE films", K::Read, &["films"], &[]);
    rw("VALUES (1, 'one'), (2, 'two')", K::Read, &[], &[]);
    rw("SHOW search_path", K::Read, &[], &[]);
    rw("SHOW ALL", K::Read, &[], &[]);
    rw(
        "(SELECT a FROM t) UNION (SELECT a FROM u)",
        K::Read,
        &["t", "u"],
        &[],
    );
    rw("SELECT pg_sleep(1)", K::Read, &[], &[]);
}

#[test]
fn joins_and_lists() {
    rw(
        "SELECT o.id FROM orders o JOIN users AS u ON u.id = o.user_id LEFT OUTER JOIN items i USING (order_id), audit.log l NATURAL JOIN x CROSS JOIN y WHERE o.id = $1",
        K::Read,
        &["orders", "users", "items", "audit.log", "x", "y"],
        &[],
    );
    rw("SELECT * FROM a, a", K::Read, &["a"], &[]);
    rw("SELECT x IS DISTINCT FROM y FROM t", K::Read, &["t"], &[]);
    rw(
        "SELECT extract(year FROM d), substring(s FROM 2 FOR 3) FROM t",
        K::Read,
        &["t"],
        &[],
    );
}

#[test]
fn relation_names_are_canonical() {
    rw(r#"SELECT * FROM "users""#, K::Read, &["users"], &[]);
    rw(r#"SELECT * FROM "Users""#, K::Read, &[r#""Users""#], &[]);
    rw(
        r#"SELECT * FROM "public"."User" AS "t0""#,
        K::Read,
        &[r#"public."User""#],
        &[],
    );
    rw(
        r#"SELECT * FROM "a.b", "x""y""#,
        K::Read,
        &[r#""a.b""#, r#""x""y""#],
        &[],
    );
    rw(
        "SELECT * FROM USERS, café",
        K::Read,
        &["users", "café"],
        &[],
    );
    rw("SELECT * FROM db.s.t", K::Read, &["db.s.t"], &[]);
}

#[test]
fn subqueries_and_ctes_read_their_bodies_not_cte_names() {
    rw(
        "WITH recent AS (SELECT * FROM orders WHERE created_at > $1) SELECT * FROM recent JOIN users ON users.id = recent.user_id",
        K::Read,
        &["orders", "users"],
        &[],
    );
    rw(
        "SELECT * FROM users WHERE id IN (SELECT user_id FROM orders) AND EXISTS (SELECT 1 FROM bans b WHERE b.uid = users.id)",
        K::Read,
        &["users", "orders", "bans"],
        &[],
    );
    rw(
        "WITH RECURSIVE t(n) AS (VALUES (1) UNION ALL SELECT n + 1 FROM t WHERE n < 100) SELECT sum(n) FROM t",
        K::Read,
        &[],
        &[],
    );
    // A CTE named like a table: inside its own (non-recursive) body the name is the table.
    rw(
        "WITH users AS (SELECT * FROM users WHERE active) SELECT * FROM users",
        K::Read,
        &["users"],
        &[],
    );
    rw(
        "SELECT * FROM (SELECT * FROM a) s, LATERAL (SELECT * FROM b WHERE b.x = s.x) l",
        K::Read,
        &["a", "b"],
        &[],
    );
    // A CTE name is only a CTE inside its WITH.
    rw(
        "SELECT * FROM (WITH x AS (SELECT 1) SELECT * FROM x) s, x",
        K::Read,
        &["x"],
        &[],
    );
}

#[test]
fn locking_clauses_are_writes() {
    for lock in [
        "FOR UPDATE",
        "FOR NO KEY UPDATE",
        "FOR SHARE",
        "FOR KEY SHARE",
        "for update of t skip locked",
        "FOR UPDATE NOWAIT",
    ] {
        rw(
            &format!("SELECT * FROM t WHERE id = $1 {lock}"),
            K::Write,
            &["t"],
            &[],
        );
    }
    assert_eq!(
        kind("SELECT * FROM (SELECT * FROM t FOR UPDATE) s"),
        K::Write
    );
    assert_eq!(
        kind("WITH x AS (SELECT * FROM t FOR NO KEY UPDATE) SELECT * FROM x"),
        K::Write
    );
    // Not locks.
    assert_eq!(kind("SELECT substring('abc' FROM 1 FOR 2)"), K::Read);
}

#[test]
fn data_modifying_ctes_are_writes() {
    rw(
        "WITH moved AS (DELETE FROM products WHERE obsolete RETURNING *) INSERT INTO products_log SELECT * FROM moved",
        K::Write,
        &[],
        &["products", "products_log"],
    );
    rw(
        "WITH n AS (INSERT INTO t (a) VALUES (1) RETURNING id) SELECT id FROM n",
        K::Write,
        &[],
        &["t"],
    );
    rw(
        "WITH u AS (UPDATE accounts SET b = 0 WHERE id = $1 RETURNING *) SELECT * FROM u JOIN owners o ON o.id = u.owner",
        K::Write,
        &["owners"],
        &["accounts"],
    );
}

#[test]
fn select_into_is_a_write() {
    rw(
        "SELECT * INTO films_recent FROM films WHERE d > $1",
        K::Write,
        &["films"],
        &["films_recent"],
    );
    rw("SELECT * INTO TEMP t FROM u", K::Write, &["u"], &["t"]);
}

#[test]
fn side_effect_functions_are_writes_and_volatile() {
    for f in [
        "SELECT nextval('s')",
        "SELECT setval('s', 1)",
        "SELECT currval('s')",
        "SELECT lastval()",
        "SELECT pg_advisory_lock(1)",
        "SELECT pg_advisory_xact_lock(1)",
        "SELECT pg_try_advisory_lock_shared(1)",
        "SELECT pg_advisory_unlock_all()",
        "SELECT set_config('a.b', 'c', false)",
        "SELECT txid_current()",
        "SELECT txid_current_if_assigned()",
        "SELECT pg_current_xact_id()",
        "SELECT pg_notify('ch', 'x')",
        "SELECT lo_import('/etc/motd')",
        "SELECT lo_unlink(42)",
        "SELECT lo_create(0)",
        "SELECT dblink('dbname=x', 'select 1')",
        "SELECT dblink_exec('dbname=x', 'delete from t')",
        "SELECT pg_terminate_backend(42)",
        "SELECT pg_cancel_backend(42)",
        "SELECT pg_reload_conf()",
        "SELECT pg_switch_wal()",
        "SELECT pg_create_restore_point('x')",
        "SELECT pg_start_backup('x')",
        "SELECT pg_backup_start('x')",
        "SELECT pg_catalog.nextval('s')",
        "SELECT \"nextval\"('s')",
        "SELECT NEXTVAL ('s')",
        "SELECT id FROM t WHERE id = nextval('s')",
        "SELECT * FROM t WHERE x = (SELECT nextval('s'))",
        "SELECT * FROM pg_advisory_lock(1)",
        "SELECT pg_current_wal_lsn()",
    ] {
        let got = c(f);
        assert_eq!(got.kind, K::Write, "{f}");
        assert!(got.volatile, "{f}");
    }
    // Names that only look similar.
    assert_eq!(kind("SELECT nextval FROM t"), K::Read);
    assert_eq!(kind("SELECT 'nextval(1)'"), K::Read);
    assert_eq!(kind("SELECT \"NextVal\"('s')"), K::Read);
}

#[test]
fn configured_write_functions() {
    let extra = names(&["audit.log_event", "bump"]);
    let k = |sql: &str| classify_uncached(sql, &extra).kind;
    assert_eq!(k("SELECT audit.log_event(1)"), K::Write);
    assert_eq!(k("SELECT log_event(1)"), K::Write);
    assert_eq!(k("SELECT AUDIT.LOG_EVENT(1)"), K::Write);
    assert_eq!(k("SELECT other.log_event(1)"), K::Read);
    assert_eq!(k("SELECT bump(1)"), K::Write);
    assert_eq!(k("SELECT app.bump(1)"), K::Write);
    assert_eq!(k("SELECT * FROM audit.log_event(1)"), K::Write);
    assert_eq!(k("SELECT bumpy(1)"), K::Read);
    assert_eq!(kind("SELECT bump(1)"), K::Read);
}

#[test]
fn volatile_functions_keep_reads_on_replicas_but_out_of_the_cache() {
    for sql in [
        "SELECT now()",
        "SELECT current_timestamp",
        "SELECT CURRENT_DATE",
        "SELECT localtimestamp(3)",
        "SELECT random()",
        "SELECT clock_timestamp()",
        "SELECT gen_random_uuid()",
        "SELECT * FROM t WHERE created_at > now() - interval '1 day'",
        "SELECT * FROM t WHERE d = 'today'::date",
        "SELECT 'now'::timestamptz",
        "SELECT pg_catalog.now()",
    ] {
        let got = c(sql);
        assert_eq!((got.kind, got.volatile), (K::Read, true), "{sql}");
    }
    for sql in [
        "SELECT 1",
        "SELECT * FROM t WHERE d = 'nowhere'",
        "SELECT lower(name) FROM t",
    ] {
        assert!(!c(sql).volatile, "{sql}");
    }
}
