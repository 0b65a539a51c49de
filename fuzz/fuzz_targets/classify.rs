//! `pgtide_sql::classify_uncached` over arbitrary UTF-8: never panics, never overflows the stack
//! (deep or long input is refused before sqlparser), and keeps its invariants.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pgtide_sql::{classify_uncached, StatementKind};

fuzz_target!(|data: &[u8]| {
    let Ok(sql) = std::str::from_utf8(data) else {
        return;
    };
    let c = classify_uncached(sql, &["audit.log_event".to_string()]);
    if c.statements == 0 {
        assert_eq!(c.kind, StatementKind::Write);
    }
    if c.statements > 1 {
        assert!(!matches!(c.kind, StatementKind::Transaction(_)));
    }
    assert!(c.reads.iter().chain(&c.writes).all(|n| !n.is_empty()));
});
