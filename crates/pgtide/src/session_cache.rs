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
    fingerprint_id: u64,
    sql: &str,
    classification: &Classification,
    database: &str,
    user: &str,
    search_path: &str,
) -> Option<Lookup> {
    if !cache.enabled() || classification.kind != StatementKind::Read {
        return None;
    }
    let policy = cache.policy(fingerprint_id, classification, Hint::of(sql))?;
    let key = Key {
        database: database.to_string(),
        user: user.to_string(),
        search_path: search_path.to_string(),
        fingerprint: fingerprint_id,
        // The exact text: its literals are the parameters.
        params: vec![Some(sql.as_bytes().to_vec())],
        param_formats: Vec::new(),
        result_formats: Vec::new(),
        simple: true,
        describe: false,
    };
    Some(cache.get_or_wait(key, &policy).await)
}

/// An extended-protocol batch the cache can answer: `[Parse] Bind [Describe portal] Execute
/// Sync` (what libpq's PQexecParams / PQexecPrepared and most drivers send for one query).
pub struct Batch<'a> {
    /// The Parse at its front: (statement name, query text).
    pub parse: Option<(&'a str, &'a str)>,
    pub bind: pgtide_wire::BindView<'a>,
    pub describe: bool,
    /// How many bytes after the first message the batch spans (through its Sync).
    pub rest_len: usize,
}

/// Recognises a cacheable batch starting with `first` (a Parse or Bind) whose following bytes
/// are `rest`; None for any other shape, or when its Sync has not arrived.
pub fn batch<'a>(first: &'a pgtide_wire::Frame, rest: &'a [u8]) -> Option<Batch<'a>> {
    use pgtide_wire::frontend as f;
    let mut messages =
        std::iter::once((first.tag, first.body(), 0usize)).chain(Messages { buf: rest, at: 0 });
    let (mut tag, mut body, _) = messages.next()?;
    let mut parse = None;
    if tag == f::PARSE {
        let view = pgtide_wire::parse_message(body).ok()?;
        parse = Some((view.statement, view.query));
        (tag, body, _) = messages.next()?;
    }
    if tag != f::BIND {
        return None;
    }
    let bind = pgtide_wire::bind_message(body).ok()?;
    if !bind.portal.is_empty() || parse.is_some_and(|(name, _)| name != bind.statement) {
        return None;
    }
    (tag, body, _) = messages.next()?;
    let describe = tag == f::DESCRIBE && body == b"P\0";
    if describe {
        (tag, body, _) = messages.next()?;
    }
    // Execute of the unnamed portal, all rows.
    if tag != f::EXECUTE || body != b"\0\0\0\0\0" {
        return None;
    }
    let (tag, _, end) = messages.next()?;
    (tag == f::SYNC).then_some(Batch {
        parse,
        bind,
        describe,
        rest_len: end,
    })
}

/// Whole messages in a byte buffer: tag, body, and the offset just past the message.
struct Messages<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Iterator for Messages<'a> {
    type Item = (u8, &'a [u8], usize);

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.buf.get(self.at..)?;
        let (&tag, after) = rest.split_first()?;
        let len = after.get(..4)?;
        let len = usize::try_from(i32::from_be_bytes([len[0], len[1], len[2], len[3]])).ok()?;
        let body = after.get(4..len)?;
        self.at += 1 + len;
        Some((tag, body, self.at))
    }
}

/// Looks an extended-protocol batch up (`text` is the bound statement's query text).
#[allow(clippy::too_many_arguments)]
pub async fn lookup_batch(
    cache: &ResultCache,
    fingerprint_id: u64,
    text: &str,
    classification: &Classification,
    database: &str,
    user: &str,
    search_path: &str,
    batch: &Batch<'_>,
) -> Option<Lookup> {
    if !cache.enabled() || classification.kind != StatementKind::Read {
        return None;
    }
    let policy = cache.policy(fingerprint_id, classification, Hint::of(text))?;
    let key = Key {
        database: database.to_string(),
        user: user.to_string(),
        search_path: search_path.to_string(),
        fingerprint: fingerprint_id,
        params: batch
            .bind
            .params
            .iter()
            .map(|p| p.map(<[u8]>::to_vec))
            .collect(),
        param_formats: batch.bind.param_formats.clone(),
        result_formats: batch.bind.result_formats.clone(),
        simple: false,
        describe: batch.describe,
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
    /// A write about to run: its tables are dropped on this instance now (nothing read before
    /// it is served after it, even to the writer) and everywhere at the commit.
    pub fn note(&mut self, c: &Classification, cache: &ResultCache) {
        if c.kind != StatementKind::Write {
            return;
        }
        if !c.writes.is_empty() {
            cache.invalidate_local(&c.writes);
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
