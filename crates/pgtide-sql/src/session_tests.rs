use crate::session::{
    quote_ident, quote_literal, session_effects as fx, SessionEffect as E, TxControl as T,
};

fn local(name: &str) -> E {
    E::SetLocal { name: name.into() }
}
fn tx(c: T) -> Vec<E> {
    vec![E::TransactionControl(c)]
}

#[test]
fn plain_dml_has_no_effect() {
    for sql in [
        "SELECT 1",
        "select * from users where id = $1",
        "INSERT INTO t VALUES (1)",
        "INSERT INTO temp VALUES (1)",
        "UPDATE t SET a = 1",
        "DELETE FROM t",
        "WITH x AS (SELECT 1) SELECT * FROM x",
        "SELECT 'SET search_path TO x'",
        "SELECT 'pg_advisory_lock(1)'",
        "SELECT $$ set_config('a','b',false) $$",
        "SELECT 1 -- pg_advisory_lock(1)",
        "SELECT /* set_config('a','b',false) */ 1",
        "SELECT pg_advisory_xact_lock(1)",
        "SELECT pg_try_advisory_xact_lock_shared(1)",
        "SELECT temperature FROM readings",
        "SELECT * FROM t WHERE templ = 'temp'",
        "SHOW search_path",
        "VACUUM t",
        "TABLE t",
        "ALTER ROLE r SET search_path = x",
        "ALTER DATABASE d SET timezone = 'UTC'",
        "CREATE FUNCTION f() RETURNS void LANGUAGE sql SET search_path = public AS 'SELECT 1'",
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT pg_advisory_lock(1); END",
        "CREATE VIEW v AS SELECT pg_advisory_lock(1)",
        "CREATE TABLE templates (a int)",
        "CREATE UNLOGGED TABLE u (a int)",
        "DISCARD PLANS",
        "DISCARD SEQUENCES",
        "",
        "   ",
        "-- only a comment",
        "SELECT pg_advisory_lock",
        "SELECT advisory FROM t",
        "INSERT INTO t SELECT * FROM u",
        "SELECT x INTO y FROM z",
        "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
        "SET CONSTRAINTS ALL DEFERRED",
        "RESET TRANSACTION ISOLATION LEVEL",
        "SELECT pg_advisory_unlock(1)",
        "SELECT \"PG_ADVISORY_LOCK\"(1)",
        "CLOSE",
        "DEALLOCATE",
        "LISTEN",
        "PREPARE",
        "EXECUTE",
        "START foo",
        "DO",
    ] {
        assert_eq!(fx(sql), vec![], "{sql}");
    }
}

#[test]
fn advisory_locks() {
    assert_eq!(fx("SELECT pg_advisory_lock(42)"), vec![E::AdvisoryLock]);
    assert_eq!(
        fx("select PG_ADVISORY_LOCK_SHARED(1, 2)"),
        vec![E::AdvisoryLock]
    );
    assert_eq!(
        fx("SELECT pg_try_advisory_lock(hashtext('x'))"),
        vec![E::AdvisoryLock]
    );
    assert_eq!(
        fx("SELECT pg_catalog.pg_try_advisory_lock_shared(1)"),
        vec![E::AdvisoryLock]
    );
    assert_eq!(
        fx("SELECT pg_advisory_lock(1), pg_advisory_lock(2)"),
        vec![E::AdvisoryLock]
    );
    assert_eq!(
        fx("SELECT * FROM jobs WHERE pg_try_advisory_lock(id) LIMIT 1"),
        vec![E::AdvisoryLock]
    );
    assert_eq!(
        fx("UPDATE t SET locked = pg_try_advisory_lock(id)"),
        vec![E::AdvisoryLock]
    );
    assert_eq!(
        fx("SELECT pg_advisory_unlock_all()"),
        vec![E::AdvisoryUnlockAll]
    );
    assert_eq!(
        fx("SELECT pg_advisory_unlock_all(), pg_advisory_lock(1)"),
        vec![E::AdvisoryLock],
        "a lock and an unlock in one statement only pin"
    );
    assert_eq!(
        fx("SELECT pg_advisory_xact_lock(1), pg_advisory_lock(2)"),
        vec![E::AdvisoryLock]
    );
    assert_eq!(fx("(SELECT pg_advisory_lock(1))"), vec![E::AdvisoryLock]);
    assert_eq!(
        fx("(select 1) union (select pg_advisory_lock(1))"),
        vec![E::AdvisoryLock]
    );
    assert_eq!(fx("SELECT \"pg_advisory_lock\"(1)"), vec![E::AdvisoryLock]);
    assert_eq!(
        fx("EXPLAIN ANALYZE SELECT pg_advisory_lock(1)"),
        vec![E::AdvisoryLock]
    );
    assert_eq!(
        fx("CREATE TABLE t AS SELECT pg_advisory_lock(1)"),
        vec![E::AdvisoryLock]
    );
}

#[test]
fn temp_tables() {
    for sql in [
        "CREATE TEMP TABLE t (a int)",
        "create temporary table t (a int)",
        "CREATE LOCAL TEMP TABLE t (a int)",
        "CREATE GLOBAL TEMPORARY TABLE t (a int)",
        "CREATE TEMP TABLE t AS SELECT 1",
        "CREATE TEMP VIEW v AS SELECT 1",
        "CREATE OR REPLACE TEMP VIEW v AS SELECT 1",
        "CREATE TEMP SEQUENCE s",
        "CREATE TABLE pg_temp.t (a int)",
        "CREATE FUNCTION pg_temp.f() RETURNS int AS 'SELECT 1' LANGUAGE sql",
        "SELECT * INTO TEMP t FROM u",
        "SELECT * INTO TEMPORARY TABLE t FROM u",
        "select a, b into local temp t from u",
        "WITH x AS (SELECT 1) SELECT * INTO TEMP t FROM x",
    ] {
        assert_eq!(fx(sql), vec![E::TempTable], "{sql}");
    }
    assert_eq!(fx("DISCARD TEMP"), vec![E::DiscardTemp]);
    assert_eq!(fx("discard temporary"), vec![E::DiscardTemp]);
}

#[test]
fn discard_prepare_execute_deallocate() {
    assert_eq!(fx("DISCARD ALL"), vec![E::DiscardAll]);
    assert_eq!(fx("discard all"), vec![E::DiscardAll]);
    assert_eq!(
        fx("PREPARE q1 AS SELECT 1"),
        vec![E::Prepare { name: "q1".into() }]
    );
    assert_eq!(
        fx("PREPARE Q1 (int, text) AS SELECT $1"),
        vec![E::Prepare { name: "q1".into() }]
    );
    assert_eq!(
        fx("PREPARE \"Q1\" AS SELECT pg_advisory_lock(1)"),
        vec![E::Prepare { name: "Q1".into() }]
    );
    assert_eq!(fx("EXECUTE q1"), vec![E::Execute { name: "q1".into() }]);
    assert_eq!(
        fx("EXECUTE Q1(1, 'a')"),
        vec![E::Execute { name: "q1".into() }]
    );
    assert_eq!(
        fx("DEALLOCATE q1"),
        vec![E::Deallocate {
            name: Some("q1".into())
        }]
    );
    assert_eq!(
        fx("DEALLOCATE PREPARE \"Q1\""),
        vec![E::Deallocate {
            name: Some("Q1".into())
        }]
    );
    assert_eq!(fx("DEALLOCATE ALL"), vec![E::Deallocate { name: None }]);
    assert_eq!(
        fx("deallocate prepare all"),
        vec![E::Deallocate { name: None }]
    );
}

#[test]
fn listen_unlisten() {
    assert_eq!(
        fx("LISTEN jobs"),
        vec![E::Listen {
            channel: "jobs".into()
        }]
    );
    assert_eq!(
        fx("listen \"Jobs\""),
        vec![E::Listen {
            channel: "Jobs".into()
        }]
    );
    assert_eq!(
        fx("UNLISTEN jobs"),
        vec![E::Unlisten {
            channel: Some("jobs".into())
        }]
    );
    assert_eq!(fx("UNLISTEN *"), vec![E::Unlisten { channel: None }]);
}

#[test]
fn cursors_and_load() {
    assert_eq!(
        fx("DECLARE c CURSOR WITH HOLD FOR SELECT 1"),
        vec![E::HoldCursor { name: "c".into() }]
    );
    assert_eq!(
        fx("declare \"C\" binary no scroll cursor with hold for select 1"),
        vec![E::HoldCursor { name: "C".into() }]
    );
    assert_eq!(fx("DECLARE c CURSOR FOR SELECT 1"), vec![]);
    assert_eq!(fx("DECLARE c CURSOR WITHOUT HOLD FOR SELECT 1"), vec![]);
    assert_eq!(
        fx("DECLARE c CURSOR FOR WITH hold AS (SELECT 1) SELECT * FROM hold"),
        vec![]
    );
    assert_eq!(
        fx("CLOSE c"),
        vec![E::CloseCursor {
            name: Some("c".into())
        }]
    );
    assert_eq!(fx("CLOSE ALL"), vec![E::CloseCursor { name: None }]);
    assert_eq!(fx("LOAD 'auto_explain'"), vec![E::LoadLibrary]);
}

#[test]
fn transaction_control() {
    assert_eq!(fx("BEGIN"), tx(T::Begin { read_only: false }));
    assert_eq!(fx("begin transaction"), tx(T::Begin { read_only: false }));
    assert_eq!(fx("BEGIN READ ONLY"), tx(T::Begin { read_only: true }));
    assert_eq!(
        fx("START TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ ONLY, DEFERRABLE"),
        tx(T::Begin { read_only: true })
    );
    assert_eq!(
        fx("START TRANSACTION READ WRITE"),
        tx(T::Begin { read_only: false })
    );
    assert_eq!(fx("COMMIT"), tx(T::Commit));
    assert_eq!(fx("commit work"), tx(T::Commit));
    assert_eq!(fx("COMMIT AND CHAIN"), tx(T::Commit));
    assert_eq!(fx("END"), tx(T::Commit));
    assert_eq!(fx("ROLLBACK"), tx(T::Rollback));
    assert_eq!(fx("ABORT"), tx(T::Rollback));
    assert_eq!(fx("SAVEPOINT s1"), tx(T::Savepoint("s1".into())));
    assert_eq!(fx("RELEASE SAVEPOINT s1"), tx(T::Release("s1".into())));
    assert_eq!(fx("RELEASE S1"), tx(T::Release("s1".into())));
    assert_eq!(
        fx("ROLLBACK TO SAVEPOINT s1"),
        tx(T::RollbackTo("s1".into()))
    );
    assert_eq!(
        fx("rollback transaction to \"S1\""),
        tx(T::RollbackTo("S1".into()))
    );
    assert_eq!(fx("PREPARE TRANSACTION 'gid'"), tx(T::PrepareTransaction));
    assert_eq!(fx("COMMIT PREPARED 'gid'"), tx(T::CommitPrepared));
    assert_eq!(fx("ROLLBACK PREPARED 'gid'"), tx(T::RollbackPrepared));
    // A prepared statement that happens to be called "transaction"
    assert_eq!(
        fx("PREPARE transaction AS SELECT 1"),
        vec![E::Prepare {
            name: "transaction".into()
        }]
    );
}

#[test]
fn do_blocks() {
    assert_eq!(fx("DO $$BEGIN PERFORM 1; END$$"), vec![]);
    assert_eq!(fx("DO $$BEGIN UPDATE t SET a = 1; END$$"), vec![]);
    assert_eq!(
        fx("DO $$BEGIN SET search_path = x; END$$"),
        vec![E::UntrackedSet]
    );
    assert_eq!(
        fx("DO $$BEGIN RESET search_path; END$$"),
        vec![E::UntrackedSet]
    );
    assert_eq!(fx("DO $$BEGIN SET LOCAL search_path = x; END$$"), vec![]);
    assert_eq!(
        fx("do language plpgsql $$begin perform set_config('a.b', 'v', false); end$$"),
        vec![E::UntrackedSet]
    );
    assert_eq!(
        fx("DO $$BEGIN PERFORM set_config('a.b', 'v', true); END$$"),
        vec![local("a.b")]
    );
    assert_eq!(
        fx("DO $$BEGIN EXECUTE 'SET search_path = ' || x; END$$"),
        vec![E::UntrackedSet]
    );
    assert_eq!(
        fx("DO $$BEGIN PERFORM pg_advisory_lock(1); END$$"),
        vec![E::AdvisoryLock]
    );
    assert_eq!(
        fx("DO $$BEGIN CREATE TEMP TABLE x (a int); END$$"),
        vec![E::TempTable]
    );
    assert_eq!(
        fx("DO LANGUAGE 'plpgsql' 'BEGIN SET work_mem = ''1MB''; END'"),
        vec![E::UntrackedSet]
    );
    assert_eq!(fx("DO $$BEGIN RAISE NOTICE 'SET x'; END$$"), vec![]);
    assert_eq!(
        fx("DO $$BEGIN EXECUTE format('SET %I = 1', n); END$$"),
        vec![E::UntrackedSet]
    );
    // Dynamic SQL is not followed: any EXECUTE pins (review finding F1: a DO block could
    // replace another client's prepared statement through EXECUTE 'PREPARE ...').
    assert_eq!(
        fx("DO $$BEGIN EXECUTE 'SET LOCAL a.b = 1'; END$$"),
        vec![E::UntrackedSet]
    );
    for body in [
        "DO $$BEGIN EXECUTE 'DEALLOCATE ALL'; END$$",
        "DO $$BEGIN LISTEN ch; END$$",
        "DO $$DECLARE n text; BEGIN FOR n IN SELECT 1 LOOP NULL; END LOOP; END$$",
        r#"DO $$BEGIN PERFORM U&"set\005Fconfig"('a.b', 'c', false); END$$"#,
    ] {
        assert_eq!(fx(body), vec![E::UntrackedSet], "{body}");
    }
    assert_eq!(
        fx("DO $$BEGIN IF true THEN SET a.b = 1; END IF; END$$"),
        vec![E::UntrackedSet]
    );
}

#[test]
fn quoting() {
    assert_eq!(quote_literal("abc"), "'abc'");
    assert_eq!(quote_literal("it's"), "'it''s'");
    assert_eq!(quote_literal("a\\b"), "E'a\\\\b'");
    assert_eq!(quote_literal(""), "''");
    assert_eq!(quote_ident("public"), "public");
    assert_eq!(quote_ident("my_schema2"), "my_schema2");
    assert_eq!(quote_ident("My Schema"), "\"My Schema\"");
    assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    assert_eq!(quote_ident("$user"), "\"$user\"");
    assert_eq!(quote_ident("1abc"), "\"1abc\"");
    assert_eq!(quote_ident("select"), "\"select\"");
    assert_eq!(quote_ident("user"), "\"user\"");
    assert_eq!(quote_ident("name"), "name"); // unreserved keyword
    assert_eq!(quote_ident(""), "\"\"");
}

#[test]
fn quoted_keyword_list_is_sorted() {
    // quote_ident binary-searches the list: keep it sorted.
    let kw = crate::quote::QUOTED_KEYWORDS;
    assert!(kw.windows(2).all(|w| w[0] < w[1]));
    let mut probe = Vec::new();
    for w in [
        "all",
        "xmltable",
        "json_table",
        "current_user",
        "values",
        "with",
    ] {
        probe.push(quote_ident(w));
    }
    assert!(probe.iter().all(|q| q.starts_with('"')), "{probe:?}");
}

#[test]
fn schema_changes_are_recognised() {
    use crate::changes_schema;
    assert!(changes_schema("ALTER TABLE t ADD COLUMN c int"));
    assert!(changes_schema("/* migrate */ create table t (a int)"));
    assert!(changes_schema("SELECT 1; DROP VIEW v"));
    assert!(!changes_schema("SELECT 'drop table t'"));
    assert!(!changes_schema("INSERT INTO t VALUES (1)"));
}

/// Issue 11 item 5: statements that hid a session change from the lexer.
#[test]
fn escaped_and_indirect_session_changes_are_seen() {
    assert_eq!(
        fx(r#"SELECT U&"set\005Fconfig"('search_path','evil',false)"#),
        vec![E::Set {
            name: "search_path".into(),
            value: "evil".into()
        }],
        "a Unicode-escaped set_config is a set_config"
    );
    assert_eq!(
        fx(r#"SELECT U&"pg_\0061dvisory_lock"(1)"#),
        vec![E::AdvisoryLock]
    );
    assert_eq!(
        fx(r#"SELECT U&"set!005Fconfig" UESCAPE '!' ('search_path','evil',false)"#),
        vec![E::UntrackedSet],
        "a UESCAPE character is not decoded: untrackable"
    );
    assert_eq!(fx(r#"SELECT U&"bad\zzzz"(1)"#), vec![E::UntrackedSet]);
    assert_eq!(
        fx("SELECT 42 AS secret INTO pg_temp.leak"),
        vec![E::TempTable]
    );
    assert_eq!(
        fx("EXPLAIN ANALYZE CREATE TEMP TABLE t AS SELECT 1"),
        vec![E::TempTable]
    );
    assert_eq!(
        fx(r#"EXPLAIN ("analyze", costs off) SELECT pg_advisory_lock(1)"#),
        vec![E::AdvisoryLock]
    );
    assert_eq!(
        fx("UPDATE pg_settings SET setting = 'evil' WHERE name = 'search_path'"),
        vec![E::UntrackedSet]
    );
    assert_eq!(fx("SELECT U&'caf\\00e9'"), vec![], "a plain Unicode string");
    assert_eq!(fx("EXPLAIN SELECT 1"), vec![]);
}

/// Review findings F7 and F14.
#[test]
fn lock_and_unlock_in_one_statement_and_into_table() {
    assert_eq!(
        fx("SELECT pg_advisory_lock(77) FROM (SELECT pg_advisory_unlock_all() OFFSET 0) s"),
        vec![E::AdvisoryLock]
    );
    for sql in [
        "SELECT 42 AS secret INTO TABLE pg_temp.leak",
        "SELECT 1 INTO TEMP TABLE t",
        "SELECT 1 INTO LOCAL TEMPORARY TABLE t",
    ] {
        assert_eq!(fx(sql), vec![E::TempTable], "{sql}");
    }
    assert_eq!(fx("SELECT 1 INTO UNLOGGED TABLE t"), vec![]);
}

/// Review finding: an unlock-all that may not run does not undo the pin.
#[test]
fn unlock_all_counts_only_where_it_surely_runs() {
    assert_eq!(fx("SELECT pg_advisory_unlock_all() WHERE false"), vec![]);
    assert_eq!(fx("SELECT x FROM t, pg_advisory_unlock_all()"), vec![]);
    assert_eq!(
        fx("SELECT pg_catalog.pg_advisory_unlock_all()"),
        vec![E::AdvisoryUnlockAll]
    );
}
