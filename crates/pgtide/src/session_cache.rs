//! One client's use of the result cache: a cacheable simple query outside a transaction is
//! looked up before any backend is taken (a hit is answered from memory), a miss captures the
//! backend's reply to fill the entry, and the tables the client writes are invalidated once the
//! write is committed (its ReadyForQuery 'I'), here and on the other instances.

use bytes::BytesMut;
use pgtide_sql::{Classification, StatementKind};
use pgtide_wire::backend as btag;

use crate::cache::{FillGuard, Hint, Key, Lookup, ResultCache};

/// The reply being captured for a cache miss.
pub struct Capture {
    guard: FillGuard,
    reply: BytesMut,
    failed: bool,
}

impl Capture {
    pub fn new(guard: FillGuard) -> Capture {
        Capture {
            guard,
            reply: BytesMut::new(),
            failed: false,
        }
    }

    /// A backend message of the reply.
    pub fn on_message(&mut self, tag: u8, raw: &[u8]) {
        match tag {
            btag::ROW_DESCRIPTION
            | btag::DATA_ROW
            | btag::COMMAND_COMPLETE
            | btag::EMPTY_QUERY_RESPONSE => {
                if self.reply.len() + raw.len() > self.guard.max_bytes() {
                    self.failed = true;
                } else if !self.failed {
                    self.reply.extend_from_slice(raw);
                }
            }
            btag::ERROR_RESPONSE | btag::COPY_OUT_RESPONSE | btag::COPY_IN_RESPONSE => {
                self.failed = true
            }
            _ => {}
        }
    }

    /// The reply ended (ReadyForQuery): stored unless it failed or grew too large.
    pub fn finish(self) {
        if !self.failed {
            self.guard.fill(self.reply.freeze());
        }
    }
}

/// Looks a simple query up. None: not cacheable (the caller runs it normally).
pub async fn lookup(
    cache: &ResultCache,
    sql: &str,
    classification: &Classification,
    database: &str,
    user: &str,
    search_path: &str,
) -> Option<Lookup> {
    if !cache.enabled() || classification.kind != StatementKind::Read {
        return None;
    }
    let hint = Hint::of(sql);
    let fingerprint = pgtide_sql::fingerprint(sql);
    let policy = cache.policy(fingerprint.id, classification, hint)?;
    let key = Key {
        database: database.to_string(),
        user: user.to_string(),
        search_path: search_path.to_string(),
        fingerprint: fingerprint.id,
        // The exact text: its literals are the parameters.
        params: vec![Some(sql.as_bytes().to_vec())],
        param_formats: Vec::new(),
        result_formats: Vec::new(),
        simple: true,
    };
    Some(cache.get_or_wait(key, &policy).await)
}

/// Tables written by the client since its last committed transaction.
#[derive(Debug, Default)]
pub struct Writes {
    tables: Vec<String>,
    /// A write whose targets are unknown (DO, CALL, a side-effect function): flush everything.
    unknown: bool,
}

impl Writes {
    pub fn note(&mut self, c: &Classification) {
        if c.kind != StatementKind::Write {
            return;
        }
        if c.writes.is_empty() {
            self.unknown = true;
        }
        for t in &c.writes {
            if !self.tables.contains(t) {
                self.tables.push(t.clone());
            }
        }
    }

    /// The client's transaction ended: invalidate what it wrote, here and elsewhere.
    pub fn commit(&mut self, cache: &ResultCache) {
        if std::mem::take(&mut self.unknown) {
            self.tables.clear();
            cache.invalidate_all();
        } else if !self.tables.is_empty() {
            cache.invalidate_tables(&std::mem::take(&mut self.tables));
        }
    }
}

/// DataRows in a cached reply (for insights).
pub fn rows_in(reply: &[u8]) -> u64 {
    let mut rows = 0;
    let mut rest = reply;
    while let Some((&tag, after)) = rest.split_first() {
        let Some(len) = after.get(..4) else { break };
        let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]).max(4) as usize;
        if tag == btag::DATA_ROW {
            rows += 1;
        }
        rest = after.get(len..).unwrap_or_default();
    }
    rows
}
