//! The small shop schema `pgtide demo` loads so there is something to query.

/// SQL for a sample schema (countries, users, products, orders, order_items; a few hundred
/// rows each, deterministic). Idempotent: re-running it resets the data to the same state.
/// Meant for `psql -f` style execution ([`crate::Node::psql`]).
pub fn sample_schema() -> &'static str {
    include_str!("sample_schema.sql")
}
