//! Statements a standby refuses or that hide what they call (issue 11, item 9): none of them
//! may be classified as a read.

use super::{classify_uncached, StatementKind as K, TransactionStatement as T};

fn kind(sql: &str) -> K {
    classify_uncached(sql, &[]).kind
}

#[test]
fn serializable_transactions_never_count_as_read_only() {
    for sql in [
        "BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY",
        "begin transaction isolation level serializable, read only, deferrable",
        "START TRANSACTION READ ONLY, ISOLATION LEVEL SERIALIZABLE",
        "BEGIN ISOLATION LEVEL SERIALIZABLE",
    ] {
        assert_eq!(kind(sql), K::Transaction(T::BeginSerializable), "{sql}");
    }
    assert_eq!(
        kind("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY"),
        K::Transaction(T::Begin { read_only: true })
    );
    assert_eq!(
        kind("BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY; SELECT 1"),
        K::Write
    );
}

#[test]
fn explain_with_a_quoted_analyze_option_runs_the_statement() {
    for sql in [
        "EXPLAIN (\"analyze\") DELETE FROM t",
        "EXPLAIN (\"analyse\", costs off) UPDATE t SET a = 1",
        "EXPLAIN (format json, \"analyze\" true) INSERT INTO t VALUES (1)",
        "EXPLAIN (\"analyze\" \"false\") DELETE FROM t",
    ] {
        assert_eq!(kind(sql), K::Write, "{sql}");
    }
    let c = classify_uncached("EXPLAIN (\"analyze\") DELETE FROM t", &[]);
    assert_eq!(c.writes, vec!["t".to_string()]);
    assert_eq!(kind("EXPLAIN (\"analyze\" false) DELETE FROM t"), K::Read);
    assert_eq!(kind("EXPLAIN (\"costs\") DELETE FROM t"), K::Read);
}

#[test]
fn unicode_escapes_are_uncertain() {
    for sql in [
        "SELECT U&\"pg_!0061dvisory_lock\" UESCAPE '!'(1)",
        "SELECT U&\"set\\005Fconfig\"('search_path', 'evil', false)",
        "SELECT u&\"nextval\"('s')",
        "SELECT * FROM U&\"t\\0061ble\"",
        "SELECT U&'d\\0061t\\+000061'",
        "SELECT U&'x!0061' UESCAPE '!'",
        "EXPLAIN (ANALYZE) SELECT U&\"gin_clean_pending_l!0069st\" UESCAPE '!'(1)",
        "SELECT 1; SELECT U&'a'",
    ] {
        let c = classify_uncached(sql, &[]);
        assert_eq!(c.kind, K::Write, "{sql}");
        assert!(c.writes.is_empty(), "{sql}: its targets are unknown");
    }
    // Not a Unicode escape.
    assert_eq!(kind("SELECT 'U&x', \"u&y\" FROM t"), K::Read);
    assert_eq!(kind("SELECT a &b FROM t"), K::Read);
}

#[test]
fn index_maintenance_functions_are_writes() {
    for sql in [
        "SELECT brin_summarize_new_values('brin_idx')",
        "SELECT brin_summarize_range('brin_idx', 0)",
        "SELECT brin_desummarize_range('brin_idx'::regclass, 0)",
        "SELECT gin_clean_pending_list('gin_idx'::regclass)",
        "SELECT pg_catalog.gin_clean_pending_list(oid) FROM pg_class WHERE relname = 'g'",
        "SELECT pg_walfile_name('0/1')",
    ] {
        assert_eq!(kind(sql), K::Write, "{sql}");
    }
}
