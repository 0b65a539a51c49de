//! One client's use of the result cache: a cacheable simple query outside a transaction is
//! looked up before any backend is taken (a hit is answered from memory), a miss captures the
//! backend's reply to fill the entry, and the tables the client writes are invalidated once the
//! write is committed (its ReadyForQuery 'I'), here and on the other instances.

use std::sync::Arc;

use bytes::BytesMut;
use pgtide_sql::{Classification, StatementKind};
use pgtide_wire::{backend as btag, target, Frames};

use crate::cache::{FillGuard, Hint, Key, Lookup, Policy, ResultCache, Source};
use crate::routing::session_router::SessionRouter;
use crate::session::client_state::ClientState;
use crate::upstream::conn::BackendTarget;
use crate::upstream::pool::Lease;

/// The reply being captured for a cache miss.
pub(crate) struct Capture {
    guard: FillGuard,
    reply: BytesMut,
    failed: bool,
}

impl Capture {
    pub(crate) fn new(guard: FillGuard) -> Capture {
        Capture {
            guard,
            reply: BytesMut::new(),
            failed: false,
        }
    }

    /// A backend message of the reply.
    pub(crate) fn on_message(&mut self, tag: u8, raw: &[u8]) {
        match tag {
            btag::ROW_DESCRIPTION
            | btag::PARAMETER_DESCRIPTION
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

    /// The backend it runs on (see [`source`]).
    pub(crate) fn set_source(&mut self, source: Source) {
        self.guard.set_source(source);
    }

    /// The reply ended (ReadyForQuery): stored unless it failed or grew too large.
    pub(crate) fn finish(self) {
        if !self.failed {
            self.guard.fill(self.reply.freeze());
        }
    }
}

/// Who asks: what the cache key and the read-your-writes check need from the session.
pub(crate) struct Client<'a> {
    pub database: &'a str,
    pub user: &'a str,
    pub state: &'a ClientState,
    /// The client's read-your-writes position (the primary's WAL position after its last
    /// write), if it has one: only entries read at or past it are hits.
    pub min_lsn: Option<u64>,
    /// The primary, for the catalog lookup of view dependencies.
    pub target: &'a Arc<BackendTarget>,
}

/// Whether pgtide can vouch for the client's session state, so its reads may use the cache:
/// not pinned (state pgtide cannot carry: temp tables, untracked SETs, ...), and
/// `standard_conforming_strings` on (otherwise the lexer may misread the statement). One
/// function so the session state's own verdict can replace it.
pub(crate) fn vouched(state: &ClientState) -> bool {
    state.vouched()
}

/// Every session setting the client has (startup and SET, including role and session
/// authorization), in one canonical string: two clients share entries only when all agree.
pub(crate) fn settings_key(state: &ClientState) -> String {
    let mut out = String::new();
    for (name, value) in state.settings() {
        out.push_str(name);
        out.push('\0');
        out.push_str(value);
        out.push('\0');
    }
    out
}

/// The policy and the relations it depends on (views expanded), or None: not cacheable.
/// Also the schema generation the expansion was made under (see [`get`]).
async fn admit(
    cache: &ResultCache,
    fingerprint_id: u64,
    sql: &str,
    classification: &Classification,
    client: &Client<'_>,
) -> Option<(Policy, u64)> {
    if !cache.enabled() || classification.kind != StatementKind::Read || !vouched(client.state) {
        return None;
    }
    let mut policy = cache.policy(fingerprint_id, classification, Hint::of(sql))?;
    let schema = cache.schema_generation();
    policy.tables = cache
        .expand_reads(client.database, client.target, &policy.tables)
        .await?;
    Some((policy, schema))
}

/// The lookup. A miss whose view expansion predates DDL seen since is not filled (its
/// dependencies may be wrong); DDL after the guard was made invalidates what it names, which
/// refuses the fill anyway.
async fn get(
    cache: &ResultCache,
    key: Key,
    policy: &Policy,
    schema: u64,
    client: &Client<'_>,
) -> Option<Lookup> {
    let lookup = cache
        .get_or_wait_at(key, policy, client.min_lsn.unwrap_or(0))
        .await;
    match lookup {
        Lookup::Miss(_) if cache.schema_generation() != schema => None,
        lookup => Some(lookup),
    }
}

/// Looks a simple query up. None: not cacheable (the caller runs it normally).
pub(crate) async fn lookup(
    cache: &ResultCache,
    fingerprint_id: u64,
    sql: &str,
    classification: &Classification,
    client: &Client<'_>,
) -> Option<Lookup> {
    let (policy, schema) = admit(cache, fingerprint_id, sql, classification, client).await?;
    let key = Key {
        database: client.database.to_string(),
        user: client.user.to_string(),
        settings: settings_key(client.state),
        text: sql.to_string(),
        param_types: Vec::new(),
        params: Vec::new(),
        param_formats: Vec::new(),
        result_formats: Vec::new(),
        simple: true,
        describe: 0,
    };
    get(cache, key, &policy, schema, client).await
}

/// Where a miss runs, from the health checks' last look at the leased backend (before the
/// read starts): the primary's WAL position, or a replica's replay position. A replica fill
/// is kept only if the invalidation listener publishes on that database's primary.
pub(crate) fn source(cache: &ResultCache, router: &SessionRouter, lease: &Lease) -> Source {
    let topology = &router.topology;
    let health = topology
        .backends
        .iter()
        .find(|b| *b.label == *lease.pool.label)
        .map(|b| b.health());
    if !router.on_replica() {
        return Source::Primary(health.and_then(|h| h.lsn).unwrap_or(0));
    }
    let primary = topology.backends.get(topology.primary());
    match (health.and_then(|h| h.lsn), primary) {
        (Some(lsn), Some(p)) if cache.replica_fills_from(&p.label) => Source::Replica(lsn),
        _ => Source::Unusable,
    }
}

/// An extended-protocol batch the cache can answer: `[Parse] Bind [Describe] Execute
/// Sync` (what libpq's PQexecParams / PQexecPrepared and most drivers send for one query).
pub(crate) struct Batch<'a> {
    /// The Parse at its front: (statement name, query text).
    pub parse: Option<(&'a str, &'a str)>,
    /// That Parse's parameter types.
    pub parse_types: Vec<u32>,
    pub bind: pgtide_wire::BindView<'a>,
    /// `P`: it describes its portal; `S`: its statement (tokio-postgres' `query_typed`); 0: no
    /// Describe.
    pub describe: u8,
    /// How many bytes after the first message the batch spans (through its Sync).
    pub rest_len: usize,
}

/// Recognises a cacheable batch starting with `first` (a Parse or Bind) whose following bytes
/// are `rest`; None for any other shape, or when its Sync has not arrived.
pub(crate) fn batch<'a>(first: &'a pgtide_wire::Frame, rest: &'a [u8]) -> Option<Batch<'a>> {
    use pgtide_wire::frontend as f;
    let mut frames = Frames::new(rest);
    let (mut tag, mut body) = (first.tag, first.body());
    let mut parse = None;
    let mut parse_types = Vec::new();
    if tag == f::PARSE {
        let view = pgtide_wire::parse_message(body).ok()?;
        parse = Some((view.statement, view.query));
        parse_types = view.param_types;
        (tag, body) = frames.next()?;
    }
    if tag != f::BIND {
        return None;
    }
    let bind = pgtide_wire::bind_message(body).ok()?;
    if !bind.portal.is_empty() || parse.is_some_and(|(name, _)| name != bind.statement) {
        return None;
    }
    (tag, body) = frames.next()?;
    let described = (tag == f::DESCRIBE)
        .then(|| pgtide_wire::close_or_describe(body).ok())
        .flatten();
    let describe = match described {
        Some(d) if d.kind == target::PORTAL && d.name.is_empty() => target::PORTAL,
        Some(d) if d.kind == target::STATEMENT && d.name == bind.statement => target::STATEMENT,
        _ => 0,
    };
    if describe != 0 {
        (tag, body) = frames.next()?;
    }
    // Execute of the unnamed portal, all rows.
    let execute = (tag == f::EXECUTE)
        .then(|| pgtide_wire::execute_message(body).ok())
        .flatten();
    if !execute.is_some_and(|e| e.portal.is_empty() && e.max_rows == 0) {
        return None;
    }
    let (tag, _) = frames.next()?;
    (tag == f::SYNC).then_some(Batch {
        parse,
        parse_types,
        bind,
        describe,
        rest_len: frames.offset(),
    })
}

/// Looks an extended-protocol batch up (`text` and `param_types`: the bound statement's).
pub(crate) async fn lookup_batch(
    cache: &ResultCache,
    fingerprint_id: u64,
    (text, param_types): (&str, Vec<u32>),
    classification: &Classification,
    client: &Client<'_>,
    batch: &Batch<'_>,
) -> Option<Lookup> {
    let (policy, schema) = admit(cache, fingerprint_id, text, classification, client).await?;
    let key = Key {
        database: client.database.to_string(),
        user: client.user.to_string(),
        settings: settings_key(client.state),
        text: text.to_string(),
        param_types,
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
    get(cache, key, &policy, schema, client).await
}

/// Tables written by the client since its last committed transaction.
#[derive(Debug, Default)]
pub(crate) struct Writes {
    tables: Vec<String>,
    /// A write whose targets are unknown (DO, CALL, a side-effect function): flush everything.
    unknown: bool,
}

impl Writes {
    /// A write about to run: its tables (and, for a view, its base tables) are dropped on
    /// this instance now (nothing read before it is served after it, even to the writer) and
    /// everywhere at the commit. DDL makes the view dependencies be read again.
    pub(crate) fn note(&mut self, sql: &str, c: &Classification, cache: &ResultCache) {
        if c.kind != StatementKind::Write {
            return;
        }
        if pgtide_sql::changes_schema(sql) {
            cache.schema_changed();
        }
        let writes = cache.expand_writes(&c.writes);
        if !writes.is_empty() {
            cache.invalidate_local(&writes);
        }
        if writes.is_empty() {
            self.unknown = true;
        }
        for t in &writes {
            if !self.tables.contains(t) {
                self.tables.push(t.clone());
            }
        }
    }

    /// The client's transaction ended: invalidate what it wrote, here and elsewhere.
    pub(crate) fn commit(&mut self, cache: &ResultCache) {
        if std::mem::take(&mut self.unknown) {
            self.tables.clear();
            cache.invalidate_all();
        } else if !self.tables.is_empty() {
            cache.invalidate_tables(&std::mem::take(&mut self.tables));
        }
    }
}

/// DataRows in a cached reply (for insights).
pub(crate) fn rows_in(reply: &[u8]) -> u64 {
    let rows = Frames::new(reply)
        .filter(|&(tag, _)| tag == btag::DATA_ROW)
        .count();
    u64::try_from(rows).unwrap_or(u64::MAX)
}
