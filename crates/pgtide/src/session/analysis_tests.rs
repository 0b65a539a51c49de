//! One simple Query, result-cache miss, routing on: lexed, classified and fingerprinted once for
//! all its consumers (the debug-build counters of pgtide-sql show it).

use bytes::BytesMut;
use pgtide_sql::{counts, Classifier, ClassifyMode};
use pgtide_wire::{encode, FrameDecoder};

use super::QueryAnalysis;
use crate::insights::{Insights, Route};
use crate::session::client_state::ClientState;
use crate::session::insights::{Context, SessionInsights};

/// A Query message of `sql`, as the session decodes it from the client.
fn query_message(sql: &str) -> pgtide_wire::Frame {
    let mut buf = BytesMut::new();
    encode::query(&mut buf, sql).expect("a short query encodes");
    FrameDecoder::new(1 << 20)
        .decode(&mut buf)
        .ok()
        .flatten()
        .expect("a whole Query frame")
}

#[test]
fn one_query_is_lexed_classified_and_fingerprinted_once() {
    let frame = query_message("SELECT abalance FROM pgbench_accounts WHERE aid = 4711;");
    let classifier = Classifier::new(&[]);
    let insights = Insights::new(&pgtide_config::InsightsConfig::default());
    let mut memo = QueryAnalysis::default();
    let mut state = ClientState::default();
    let mut session_insights = SessionInsights::new(true);
    let expected_id =
        pgtide_sql::fingerprint("SELECT abalance FROM pgbench_accounts WHERE aid = 1").id;
    let query = super::query_frame(&frame);
    let sql = super::query_sql(&query);
    let before = counts();

    // The result cache's lookup (a miss), routing's intent before the lease, then the
    // forward: one analysis.
    let cache_key_id = memo
        .of(&frame, sql, &classifier, ClassifyMode::Yes)
        .map(|a| a.fingerprint.id);
    assert_eq!(cache_key_id, Some(expected_id));
    let read = memo
        .of(&frame, sql, &classifier, ClassifyMode::Yes)
        .and_then(|a| a.classification.as_ref())
        .map(|c| c.kind == pgtide_sql::StatementKind::Read);
    assert_eq!(read, Some(true));
    let analysis = memo
        .take(&frame, sql, &classifier, ClassifyMode::Yes)
        .expect("analysed");
    let observed = state.observe_effects(&analysis.effects, false);
    assert_eq!(observed.pinned, None);
    assert!(analysis.names.is_empty() && !analysis.changes_schema);
    let text = super::text_bytes(&frame, sql.expect("UTF-8"));
    assert_eq!(
        &text[..],
        b"SELECT abalance FROM pgbench_accounts WHERE aid = 4711;"
    );
    let fingerprint = analysis.fingerprint.clone();
    session_insights.on_query(text, fingerprint, analysis.params_hash, false);
    let cx = Context {
        insights: &insights,
        route: Route::Replica,
        backend: "replica:5432",
        database: "db",
        user: "u",
        application_name: "pgbench",
    };
    session_insights.on_ready(b'I', &cx);

    let spent = counts();
    assert_eq!(spent.lexes - before.lexes, 1, "{spent:?} after {before:?}");
    assert_eq!(spent.classifications - before.classifications, 1);
    assert_eq!(spent.fingerprints - before.fingerprints, 1);
    let queries = insights.queries();
    assert_eq!(queries.len(), 1);
    assert_eq!(
        queries[0].fingerprint,
        "SELECT abalance FROM pgbench_accounts WHERE aid = $1"
    );
}

#[test]
fn without_routing_or_cache_a_query_is_not_classified() {
    let frame = query_message("SELECT 1");
    let classifier = Classifier::new(&[]);
    let query = super::query_frame(&frame);
    let before = counts();
    let mut memo = QueryAnalysis::default();
    let a = memo
        .take(
            &frame,
            super::query_sql(&query),
            &classifier,
            ClassifyMode::No,
        )
        .expect("analysed");
    assert!(a.classification.is_none());
    assert_eq!(counts().classifications, before.classifications);
    assert_eq!(counts().lexes - before.lexes, 1);
}

#[test]
fn parse_facts_are_read_once_per_text_and_again_for_a_new_one() {
    let mut facts = super::ParseFacts::default();
    let f = facts.of("SET search_path = app");
    assert!(f.session_effects && !f.changes_schema);
    let before = counts();
    let f = facts.of("SET search_path = app");
    assert!(f.session_effects && !f.changes_schema);
    assert_eq!(
        counts().lexes,
        before.lexes,
        "the same text is not read again"
    );
    let f = facts.of("CREATE TABLE t (id int)");
    assert!(!f.session_effects && f.changes_schema);
    assert!(counts().lexes > before.lexes, "a new text is read");
    let f = facts.of("SELECT $1");
    assert!(!f.session_effects && !f.changes_schema);
    // A text too long to keep is read each time, and leaves nothing for another to match.
    let long = format!("SET search_path = app; SELECT '{}'", "x".repeat(5000));
    assert!(facts.of(&long).session_effects);
    let f = facts.of("");
    assert!(!f.session_effects && !f.changes_schema);
}
