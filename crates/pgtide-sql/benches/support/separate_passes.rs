//! The SQL work for a simple-Query text as the server did it before the one-pass analysis: one
//! call per consumer, each lexing the text again. Shared by the `sql_pass` bench and the
//! `sql_pass_profile` example, which compare it with `Classifier::analyze`.

use std::hint::black_box;

use pgtide_sql::{
    all_session_effects, changes_schema, fingerprint::stable_hash, fingerprint_with_params,
    statement_names, Classifier,
};

/// Session effects, statement names, schema change, two classifications through the cache (as
/// routing and write bookkeeping made them) and the insights fingerprint, each on its own.
pub fn separate_passes(classifier: &Classifier, sql: &str) {
    black_box(all_session_effects(sql));
    black_box(statement_names(sql));
    black_box(changes_schema(sql));
    black_box(classifier.classify(sql));
    black_box(classifier.classify(sql));
    black_box(stable_hash(sql.as_bytes()));
    black_box(fingerprint_with_params(sql));
}
