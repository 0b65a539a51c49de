//! Named prepared statements in transaction mode. A client's statement names map to pgtide-wide
//! names derived from (query text, parameter types), so any backend that already prepared the same
//! statement for any client can serve it; each backend remembers what it has in a bounded LRU.

pub(crate) mod client;
pub(crate) mod inject;

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use bytes::{BufMut, Bytes, BytesMut};

/// How a backend gets a statement it lacks.
#[derive(Debug)]
pub enum Preparation {
    /// A Parse message (tag + length + body) carrying the pgtide name: extended protocol.
    Parse(Bytes),
    /// `PREPARE <pgtide name> [(types)] AS ...`: the client used SQL, whose parameter types
    /// are type names pgtide cannot turn into the OIDs a Parse needs.
    Sql(String),
}

/// A statement as the backend must see it: pgtide's name and how to prepare it.
#[derive(Debug)]
pub struct SharedStatement {
    pub global_name: String,
    pub prepare: Preparation,
    /// The query text when it has session effects (SET, LISTEN, ...), to note them at Bind.
    pub effects_sql: Option<String>,
}

impl SharedStatement {
    /// Builds the pgtide-wide statement for a client Parse body whose own name is `client_name`.
    /// The client's search_path is part of the identity: the same text can name other tables.
    pub fn from_parse(
        body: &[u8],
        client_name_len: usize,
        search_path: Option<&str>,
        epochs: &SchemaEpochs,
    ) -> SharedStatement {
        // Everything after the client's name (query, parameter types) identifies the statement.
        let rest = body.get(client_name_len + 1..).unwrap_or_default();
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        rest.hash(&mut hasher);
        search_path.hash(&mut hasher);
        // After DDL a new name: the backends' copies may have been planned for another shape.
        let global_name = match epochs.current() {
            0 => format!("pgtide_{:016x}_{}", hasher.finish(), rest.len()),
            e => format!("pgtide_{:016x}_{}_e{e}", hasher.finish(), rest.len()),
        };
        let mut parse = BytesMut::with_capacity(rest.len() + global_name.len() + 6);
        parse.put_u8(b'P');
        parse.put_i32((4 + global_name.len() + 1 + rest.len()) as i32);
        parse.put_slice(global_name.as_bytes());
        parse.put_u8(0);
        parse.put_slice(rest);
        let effects_sql = pgtide_wire::parse_message(body)
            .ok()
            .map(|v| v.query)
            .filter(|q| has_session_effects(q))
            .map(str::to_string);
        SharedStatement {
            global_name,
            prepare: Preparation::Parse(parse.freeze()),
            effects_sql,
        }
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
pub fn run_in_batch(out: &mut BytesMut, sql: &str) {
    out.put_u8(b'P');
    out.put_i32((4 + 1 + sql.len() + 1 + 2) as i32);
    out.put_u8(0);
    out.put_slice(sql.as_bytes());
    out.put_u8(0);
    out.put_i16(0);
    // Bind: unnamed portal and statement, no parameter formats, no parameters, no result formats.
    out.put_u8(b'B');
    out.put_i32(4 + 1 + 1 + 2 + 2 + 2);
    out.put_u8(0);
    out.put_u8(0);
    out.put_i16(0);
    out.put_i16(0);
    out.put_i16(0);
    out.put_u8(b'E');
    out.put_i32(4 + 1 + 4);
    out.put_u8(0);
    out.put_i32(0);
}

impl SharedStatement {
    /// The same statement under the current epoch's name (extended-protocol statements only:
    /// SQL-prepared names are the client's own and never shared).
    pub fn renewed(&self, epochs: &SchemaEpochs) -> Option<SharedStatement> {
        let Preparation::Parse(parse) = &self.prepare else {
            return None;
        };
        let body = parse.get(5..)?;
        let view = pgtide_wire::parse_message(body).ok()?;
        let name_len = view.statement.len();
        // The search_path is already part of the old name's hash; the new one only needs to
        // differ from it and be the same for every client renewing this statement.
        let mut fresh =
            SharedStatement::from_parse(body, name_len, Some(&self.global_name), epochs);
        fresh.effects_sql = self.effects_sql.clone();
        Some(fresh)
    }
}

/// Whether a statement changes session state pgtide must carry or pin for.
pub fn has_session_effects(sql: &str) -> bool {
    !pgtide_sql::all_session_effects(sql).is_empty()
}

/// The portal and statement names at the front of a Bind body, without reading the rest.
pub fn bind_names(body: &[u8]) -> Option<(&str, &str)> {
    let mut fields = body.splitn(3, |b| *b == 0);
    let portal = std::str::from_utf8(fields.next()?).ok()?;
    let stmt = std::str::from_utf8(fields.next()?).ok()?;
    // splitn yields the remainder only when both NULs were present.
    fields.next()?;
    Some((portal, stmt))
}

/// Replaces the statement name at the start of a Bind body's second field (after the portal).
pub fn rewrite_bind(body: &[u8], portal_len: usize, stmt_len: usize, new_stmt: &str) -> Bytes {
    let portal = body.get(..portal_len + 1).unwrap_or_default();
    let rest = body
        .get(portal_len + 1 + stmt_len + 1..)
        .unwrap_or_default();
    let mut out = BytesMut::with_capacity(body.len() + new_stmt.len() + 5);
    out.put_u8(b'B');
    out.put_i32((4 + portal.len() + new_stmt.len() + 1 + rest.len()) as i32);
    out.put_slice(portal);
    out.put_slice(new_stmt.as_bytes());
    out.put_u8(0);
    out.put_slice(rest);
    out.freeze()
}

/// A Describe or Close message for a statement or portal.
pub fn target_message(tag: u8, kind: u8, name: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(name.len() + 7);
    out.put_u8(tag);
    out.put_i32((4 + 1 + name.len() + 1) as i32);
    out.put_u8(kind);
    out.put_slice(name.as_bytes());
    out.put_u8(0);
    out.freeze()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_body(name: &str, query: &str) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(name.as_bytes());
        b.push(0);
        b.extend_from_slice(query.as_bytes());
        b.push(0);
        b.extend_from_slice(&0i16.to_be_bytes());
        b
    }

    #[test]
    fn same_query_same_global_name_across_clients() {
        let a = SharedStatement::from_parse(
            &parse_body("s1", "SELECT 1"),
            2,
            None,
            &SchemaEpochs::default(),
        );
        let b = SharedStatement::from_parse(
            &parse_body("other", "SELECT 1"),
            5,
            None,
            &SchemaEpochs::default(),
        );
        let c = SharedStatement::from_parse(
            &parse_body("s1", "SELECT 2"),
            2,
            None,
            &SchemaEpochs::default(),
        );
        let d = SharedStatement::from_parse(
            &parse_body("s1", "SELECT 1"),
            2,
            Some("tenant1"),
            &SchemaEpochs::default(),
        );
        assert_eq!(a.global_name, b.global_name);
        assert_ne!(a.global_name, c.global_name);
        assert_ne!(a.global_name, d.global_name);
        let Preparation::Parse(parse) = &a.prepare else {
            panic!("a Parse")
        };
        let view = pgtide_wire::parse_message(&parse[5..]).expect("valid parse");
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

    #[test]
    fn bind_rewrite_keeps_portal_and_params() {
        let mut body = Vec::new();
        body.extend_from_slice(b"p\0s1\0");
        body.extend_from_slice(&0i16.to_be_bytes());
        body.extend_from_slice(&1i16.to_be_bytes());
        body.extend_from_slice(&1i32.to_be_bytes());
        body.push(b'7');
        body.extend_from_slice(&0i16.to_be_bytes());
        let msg = rewrite_bind(&body, 1, 2, "pgtide_x");
        let view = pgtide_wire::bind_message(&msg[5..]).expect("valid bind");
        assert_eq!(view.portal, "p");
        assert_eq!(view.statement, "pgtide_x");
        assert_eq!(view.params, vec![Some(&b"7"[..])]);
    }

    #[test]
    fn bind_names_reads_only_the_front() {
        assert_eq!(bind_names(b"p\0s1\0\x00\x05"), Some(("p", "s1")));
        assert_eq!(bind_names(b"\0s1\0"), Some(("", "s1")));
        assert_eq!(bind_names(b"p\0s1"), None);
        assert_eq!(bind_names(b""), None);
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
        let before = SharedStatement::from_parse(&parse_body("s1", "SELECT 1"), 2, None, &epochs);
        epochs.schema_changed();
        let after = SharedStatement::from_parse(&parse_body("s1", "SELECT 1"), 2, None, &epochs);
        assert_ne!(before.global_name, after.global_name, "no reuse across DDL");
        assert!(!epochs.is_stale(&before.global_name));
        epochs.went_stale(&before.global_name);
        assert!(epochs.is_stale(&before.global_name));
        assert!(!epochs.is_stale(&after.global_name));
    }
}
