//! Named prepared statements in transaction mode. A client's statement names map to pgtide-wide
//! names derived from (query text, parameter types), so any backend that already prepared the same
//! statement for any client can serve it; each backend remembers what it has in a bounded LRU.

pub(crate) mod client;
pub(crate) mod inject;

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use bytes::{Bytes, BytesMut};
use pgtide_wire::{encode, frontend as ftag, BindView, Frames, ParseView, WireError};

use crate::session::replies::Completion;

/// How a backend gets a statement it lacks.
#[derive(Debug)]
pub(crate) enum Preparation {
    /// A Parse message (tag + length + body) carrying the pgtide name: extended protocol.
    Parse(Bytes),
    /// `PREPARE <pgtide name> [(types)] AS ...`: the client used SQL, whose parameter types
    /// are type names pgtide cannot turn into the OIDs a Parse needs.
    Sql(String),
}

/// A statement as the backend must see it: pgtide's name and how to prepare it.
#[derive(Debug)]
pub(crate) struct SharedStatement {
    pub global_name: String,
    pub prepare: Preparation,
    /// The query text when it has session effects (SET, LISTEN, ...), to note them at Bind.
    pub effects_sql: Option<String>,
}

impl SharedStatement {
    /// Builds the pgtide-wide statement for a client's Parse. The client's search_path is part of
    /// the identity: the same text can name other tables. Fails when the Parse under pgtide's
    /// name no longer fits a message (see [`refuse_in_batch`]).
    pub(crate) fn from_parse(
        view: &ParseView<'_>,
        search_path: Option<&str>,
        epochs: &SchemaEpochs,
    ) -> Result<SharedStatement, WireError> {
        // The query and parameter types (not the client's name) identify the statement.
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        view.query.hash(&mut hasher);
        view.param_types.hash(&mut hasher);
        search_path.hash(&mut hasher);
        // After DDL a new name: the backends' copies may have been planned for another shape.
        let len = view.query.len();
        let global_name = match epochs.current() {
            0 => format!("pgtide_{:016x}_{len}", hasher.finish()),
            e => format!("pgtide_{:016x}_{len}_e{e}", hasher.finish()),
        };
        let mut parse =
            BytesMut::with_capacity(global_name.len() + len + 4 * view.param_types.len() + 9);
        encode::parse(&mut parse, &global_name, view.query, &view.param_types)?;
        let effects_sql = Some(view.query)
            .filter(|q| has_session_effects(q))
            .map(str::to_string);
        Ok(SharedStatement {
            global_name,
            prepare: Preparation::Parse(parse.freeze()),
            effects_sql,
        })
    }
}

/// When the shape of prepared statements may have changed. DDL seen through pgtide starts a new
/// epoch, so statements prepared afterwards get new names and never reuse a copy a backend
/// planned before it. A statement PostgreSQL reported stale ("cached plan must not change
/// result type") is never prepared again under its name for a client that still holds it:
/// that client knows the old row shape, and only a fresh Parse of its own may change it.
#[derive(Debug, Default)]
pub struct SchemaEpochs {
    epoch: AtomicU64,
    any_stale: AtomicBool,
    stale: Mutex<HashSet<String>>,
}

/// Bound on remembered stale statement names (they only matter to clients still holding them).
const MAX_STALE: usize = 10_000;

impl SchemaEpochs {
    pub fn current(&self) -> u64 {
        self.epoch.load(Ordering::Relaxed)
    }

    pub fn schema_changed(&self) {
        self.epoch.fetch_add(1, Ordering::Relaxed);
    }

    pub fn went_stale(&self, global_name: &str) {
        let mut stale = self.stale.lock().unwrap_or_else(|p| p.into_inner());
        if stale.len() >= MAX_STALE {
            stale.clear();
        }
        stale.insert(global_name.to_string());
        self.any_stale.store(true, Ordering::Relaxed);
        // Out-of-band DDL: everything prepared from now on gets a new name.
        self.schema_changed();
    }

    pub fn is_stale(&self, global_name: &str) -> bool {
        self.any_stale.load(Ordering::Relaxed)
            && self
                .stale
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains(global_name)
    }
}

/// An unnamed Parse, Bind and Execute of a utility statement, to run SQL in the middle of a
/// client's extended-protocol batch (where a simple Query would end its implicit transaction).
/// SQL too long for a Parse runs as [`refusal_sql`] instead, in the same three messages.
pub(crate) fn run_in_batch(out: &mut BytesMut, sql: &str) {
    let start = out.len();
    let unnamed = BindView {
        portal: "",
        statement: "",
        param_formats: Vec::new(),
        params: Vec::new(),
        result_formats: Vec::new(),
    };
    let written = encode::parse(out, "", sql, &[])
        .or_else(|e| encode::parse(out, "", &refusal_sql(&e), &[]))
        .and_then(|()| encode::bind(out, &unnamed))
        .and_then(|()| encode::execute(out, "", 0));
    if let Err(e) = written {
        // Unreachable: the refusal and the unnamed Bind and Execute are a few bytes.
        out.truncate(start);
        tracing::error!(error = %e, "could not encode a utility statement");
    }
}

/// A simple Query of `sql`, or of [`refusal_sql`] when `sql` is too long for one (it grew past
/// the protocol's limit when pgtide put its statement names in): either way one Query, so the
/// replies the caller expects stay in step.
pub(crate) fn query_or_refusal(out: &mut BytesMut, sql: &str) {
    if let Err(e) = encode::query(out, sql) {
        if let Err(e) = encode::query(out, &refusal_sql(&e)) {
            tracing::error!(error = %e, "could not encode a refusal"); // a few bytes: unreachable
        }
    }
}

/// SQL that fails with `54000` (program_limit_exceeded), run in place of a message pgtide cannot
/// encode, so the client's statement fails as PostgreSQL's own would.
pub(crate) fn refusal_sql(e: &WireError) -> String {
    let what = match e {
        WireError::TooMany { what, .. } | WireError::TooLong { what, .. } => what,
        _ => "message",
    };
    format!(
        "DO $pgtide$BEGIN RAISE EXCEPTION USING ERRCODE = '54000', MESSAGE = \
         '{what} too long for the protocol once pgtide named its statement'; END$pgtide$"
    )
}

/// In place of a client message that cannot be encoded under pgtide's names: [`refusal_sql`]
/// (see [`fail_in_batch`]).
pub(crate) fn refuse_in_batch(
    b: &mut client::Backendward<'_>,
    completion: Completion,
    e: &WireError,
) {
    tracing::warn!(error = %e, "client message too long once renamed: refused with 54000");
    fail_in_batch(b, completion, &refusal_sql(e));
}

/// In place of a client message: `sql`, which fails, in the batch, its Parse and Bind swallowed
/// and its error answering the client's `completion`. The backend raises the error itself, so
/// the batch fails as PostgreSQL's would (and it replaces the backend's unnamed statement).
pub(crate) fn fail_in_batch(b: &mut client::Backendward<'_>, completion: Completion, sql: &str) {
    run_in_batch(b.out, sql);
    b.replies.expect_swallowed(Completion::Parse, None);
    b.replies.expect_swallowed(Completion::Bind, None);
    b.replies.expect(completion);
}

impl SharedStatement {
    /// The same statement under the current epoch's name (extended-protocol statements only:
    /// SQL-prepared names are the client's own and never shared).
    pub(crate) fn renewed(&self, epochs: &SchemaEpochs) -> Option<SharedStatement> {
        let Preparation::Parse(parse) = &self.prepare else {
            return None;
        };
        let view = parse_of(parse)?;
        // The search_path is already part of the old name's hash; the new one only needs to
        // differ from it and be the same for every client renewing this statement.
        let mut fresh = SharedStatement::from_parse(&view, Some(&self.global_name), epochs).ok()?;
        fresh.effects_sql = self.effects_sql.clone();
        Some(fresh)
    }
}

/// The Parse in a whole stored Parse message (pgtide's or a client's unnamed one).
pub(crate) fn parse_of(message: &[u8]) -> Option<ParseView<'_>> {
    let (_, body) = Frames::new(message).next()?;
    pgtide_wire::parse_message(body).ok()
}

/// Whether a statement changes session state pgtide must carry or pin for.
pub(crate) fn has_session_effects(sql: &str) -> bool {
    !pgtide_sql::all_session_effects(sql).is_empty()
}

/// The portal and statement names at the front of a Bind body, without reading the rest.
pub(crate) fn bind_names(body: &[u8]) -> Option<(&str, &str)> {
    let names = pgtide_wire::bind_names(body).ok()?;
    Some((names.portal, names.statement))
}

/// The client's Bind under another statement name, its portal and parameters untouched.
pub(crate) fn rewrite_bind(body: &[u8], new_stmt: &str) -> Result<Bytes, WireError> {
    let names = pgtide_wire::bind_names(body)?;
    let mut out = BytesMut::with_capacity(body.len() + new_stmt.len() + 5);
    encode::bind_renamed(&mut out, names.portal, new_stmt, names.rest)?;
    Ok(out.freeze())
}

/// A Describe or Close (`tag`) of a statement or portal.
pub(crate) fn target_message(tag: u8, kind: u8, name: &str) -> Result<Bytes, WireError> {
    let mut out = BytesMut::with_capacity(name.len() + 7);
    match tag {
        ftag::CLOSE => encode::close(&mut out, kind, name)?,
        _ => encode::describe(&mut out, kind, name)?,
    }
    Ok(out.freeze())
}

/// The statements one backend connection has prepared, least recently used evicted first.
#[derive(Debug)]
pub struct PreparedLru {
    capacity: usize,
    tick: u64,
    used: HashMap<String, u64>,
}

impl PreparedLru {
    pub fn new(capacity: usize) -> Self {
        PreparedLru {
            capacity: capacity.max(1),
            tick: 0,
            used: HashMap::new(),
        }
    }

    /// Marks a statement used; true when the backend has it.
    pub fn touch(&mut self, name: &str) -> bool {
        self.tick += 1;
        match self.used.get_mut(name) {
            Some(t) => {
                *t = self.tick;
                true
            }
            None => false,
        }
    }

    /// Records a statement being prepared; returns the name to Close first if the LRU is full.
    pub fn insert(&mut self, name: &str) -> Option<String> {
        self.tick += 1;
        let evicted = if self.used.len() >= self.capacity && !self.used.contains_key(name) {
            let oldest = self
                .used
                .iter()
                .min_by_key(|(_, t)| **t)
                .map(|(n, _)| n.clone());
            if let Some(n) = &oldest {
                self.used.remove(n);
            }
            oldest
        } else {
            None
        };
        self.used.insert(name.to_string(), self.tick);
        evicted
    }

    pub fn forget(&mut self, name: &str) {
        self.used.remove(name);
    }

    pub fn clear(&mut self) {
        self.used.clear();
    }

    /// Every statement the backend has now.
    pub fn names(&self) -> Vec<String> {
        self.used.keys().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.used.len()
    }

    pub fn is_empty(&self) -> bool {
        self.used.is_empty()
    }
}

/// Does this effect drop every prepared statement of the session (DEALLOCATE ALL, DISCARD ALL)?
pub(crate) fn drops_all(e: &pgtide_sql::SessionEffect) -> bool {
    matches!(
        e,
        pgtide_sql::SessionEffect::DiscardAll
            | pgtide_sql::SessionEffect::Deallocate { name: None }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statement(
        name: &str,
        query: &str,
        search_path: Option<&str>,
        epochs: &SchemaEpochs,
    ) -> SharedStatement {
        let view = ParseView {
            statement: name,
            query,
            param_types: Vec::new(),
        };
        SharedStatement::from_parse(&view, search_path, epochs).expect("encodable")
    }

    #[test]
    fn same_query_same_global_name_across_clients() {
        let epochs = SchemaEpochs::default();
        let a = statement("s1", "SELECT 1", None, &epochs);
        let b = statement("other", "SELECT 1", None, &epochs);
        let c = statement("s1", "SELECT 2", None, &epochs);
        let d = statement("s1", "SELECT 1", Some("tenant1"), &epochs);
        assert_eq!(a.global_name, b.global_name);
        assert_ne!(a.global_name, c.global_name);
        assert_ne!(a.global_name, d.global_name);
        let Preparation::Parse(parse) = &a.prepare else {
            panic!("a Parse")
        };
        let view = parse_of(parse).expect("valid parse");
        assert_eq!(view.statement, a.global_name);
        assert_eq!(view.query, "SELECT 1");
    }

    #[test]
    fn run_in_batch_frames_three_messages() {
        let mut out = BytesMut::new();
        run_in_batch(&mut out, "PREPARE x AS SELECT 1");
        let decoder = pgtide_wire::FrameDecoder::new(1 << 20);
        let mut frames = Vec::new();
        while let Some(f) = decoder.decode(&mut out).expect("frame") {
            frames.push(f);
        }
        let tags: Vec<u8> = frames.iter().map(|f| f.tag).collect();
        assert_eq!(tags, b"PBE");
        let parse = pgtide_wire::parse_message(frames[0].body()).expect("parse");
        assert_eq!(parse.query, "PREPARE x AS SELECT 1");
        let bind = pgtide_wire::bind_message(frames[1].body()).expect("bind");
        assert_eq!((bind.portal, bind.statement), ("", ""));
    }

    fn body_of(message: &[u8]) -> &[u8] {
        Frames::new(message).next().expect("one message").1
    }

    #[test]
    fn bind_rewrite_keeps_portal_and_params() {
        let mut bind = BytesMut::new();
        let view = BindView {
            portal: "p",
            statement: "s1",
            param_formats: Vec::new(),
            params: vec![Some(b"7")],
            result_formats: Vec::new(),
        };
        encode::bind(&mut bind, &view).expect("encodable");
        let msg = rewrite_bind(body_of(&bind), "pgtide_x").expect("encodable");
        let view = pgtide_wire::bind_message(body_of(&msg)).expect("valid bind");
        assert_eq!(view.portal, "p");
        assert_eq!(view.statement, "pgtide_x");
        assert_eq!(view.params, vec![Some(&b"7"[..])]);
        assert_eq!(bind_names(body_of(&bind)), Some(("p", "s1")));
        assert_eq!(bind_names(b"p\0s1"), None);
    }

    #[test]
    fn describe_close_and_refusals() {
        let msg = target_message(ftag::CLOSE, pgtide_wire::target::STATEMENT, "pgtide_x")
            .expect("encodable");
        assert_eq!(msg.first(), Some(&ftag::CLOSE));
        let t = pgtide_wire::close_or_describe(body_of(&msg)).expect("valid");
        assert_eq!(
            (t.kind, t.name),
            (pgtide_wire::target::STATEMENT, "pgtide_x")
        );
        let msg =
            target_message(ftag::DESCRIBE, pgtide_wire::target::PORTAL, "").expect("encodable");
        assert_eq!(msg.first(), Some(&ftag::DESCRIBE));

        let e = WireError::TooMany {
            what: "Parse message",
            count: 70_000,
        };
        let mut out = BytesMut::new();
        query_or_refusal(&mut out, &refusal_sql(&e));
        let sql = pgtide_wire::query_text(body_of(&out)).expect("query");
        assert!(sql.contains("'54000'") && sql.contains("Parse message too long"));
        assert_eq!(pgtide_sql::classify_uncached(sql, &[]).statements, 1);
    }

    #[test]
    fn lru_evicts_least_recent() {
        let mut lru = PreparedLru::new(2);
        assert_eq!(lru.insert("a"), None);
        assert_eq!(lru.insert("b"), None);
        assert!(lru.touch("a"));
        assert_eq!(lru.insert("c"), Some("b".to_string()));
        assert!(!lru.touch("b"));
        assert_eq!(lru.len(), 2);
    }

    #[test]
    fn epochs_rename_new_statements_and_stale_ones_stay_out() {
        let epochs = SchemaEpochs::default();
        let before = statement("s1", "SELECT 1", None, &epochs);
        epochs.schema_changed();
        let after = statement("s1", "SELECT 1", None, &epochs);
        assert_ne!(before.global_name, after.global_name, "no reuse across DDL");
        assert!(!epochs.is_stale(&before.global_name));
        epochs.went_stale(&before.global_name);
        assert!(epochs.is_stale(&before.global_name));
        assert!(!epochs.is_stale(&after.global_name));
    }
}
