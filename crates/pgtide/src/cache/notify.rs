//! Cross-instance invalidation through PostgreSQL's LISTEN/NOTIFY.
//!
//! One background task per [`ResultCache`] keeps ONE dedicated backend
//! connection that `LISTEN`s on `cache.invalidate_channel` and also publishes this instance's
//! invalidations on it (`SELECT pg_notify(channel, payload)`, autocommit, so each is delivered
//! as soon as it runs). Client backends are never used for either.
//!
//! Payload: JSON, `{"l":"0/3000060","i":"<instance id>","t":["public.users","orders"]}` (tables
//! as the classifier spells them), or `{"l":"..","i":"..","all":true}` to flush everything. `l` is
//! the primary's WAL insert position taken by the publishing statement itself, after the
//! writes it reports committed: receivers (and the publisher, from the statement's row) use it
//! as the floor a replica must have replayed before its reads of those tables are cached (see
//! [`super::floors`]). A message without a readable `l` blocks replica fills of its tables. An
//! instance ignores
//! its own messages; a payload it cannot read flushes its whole cache (it may come from a newer
//! version). Table lists are split so a payload stays under PostgreSQL's 8000-byte limit.
//!
//! Correctness over availability: until the connection is listening, and from the moment it
//! is lost until it listens again, the cache serves and stores nothing, and it is flushed on
//! both edges (a message missed while down cannot leave a stale entry). Reconnects back off
//! from 100 ms to 5 s. An idle connection is pinged every 10 s; no reply within 10 s counts as
//! lost. Invalidations published while down are queued (deduplicated, collapsing into a flush
//! past 10,000 names) and sent after the reconnect.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::BytesMut;
use pgtide_wire::{backend as tag, encode};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::ResultCache;
use crate::upstream::conn::{BackendConn, BackendTarget};

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const PING_EVERY: Duration = Duration::from_secs(10);
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// Stays under NOTIFY's 8000-byte payload limit with room for the envelope.
const MAX_PAYLOAD: usize = 7_000;
const MAX_PENDING_TABLES: usize = 10_000;

/// One message on the channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Message {
    /// First, so the publishing statement can splice the position in (see [`LSN_HOLE`]).
    #[serde(rename = "l", default, skip_serializing_if = "Option::is_none")]
    pub lsn: Option<String>,
    #[serde(rename = "i")]
    pub instance: String,
    #[serde(rename = "t", default, skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all: bool,
}

/// Stands for the WAL position in a payload template; replaced by SQL when published.
const LSN_HOLE: &str = "@LSN@";

/// What to publish next.
#[derive(Debug, Default, Clone)]
struct Pending {
    tables: BTreeSet<String>,
    all: bool,
    /// The last local invalidation (floors sequence) included.
    seq: u64,
}

impl Pending {
    fn is_empty(&self) -> bool {
        !self.all && self.tables.is_empty()
    }

    /// The payloads, each under [`MAX_PAYLOAD`] bytes.
    fn payloads(&self, instance: &str) -> Vec<String> {
        let encode = |m: &Message| serde_json::to_string(m).unwrap_or_default();
        let hole = Some(LSN_HOLE.to_string());
        if self.all {
            return vec![encode(&Message {
                lsn: hole,
                instance: instance.into(),
                tables: Vec::new(),
                all: true,
            })];
        }
        let mut out = Vec::new();
        let mut batch = Message {
            lsn: hole,
            instance: instance.into(),
            tables: Vec::new(),
            all: false,
        };
        let mut size = instance.len() + 32;
        for t in &self.tables {
            let len = t.len() * 2 + 4; // worst case with JSON escapes
            if !batch.tables.is_empty() && size + len > MAX_PAYLOAD {
                out.push(encode(&batch));
                batch.tables.clear();
                size = instance.len() + 32;
            }
            batch.tables.push(t.clone());
            size += len;
        }
        if !batch.tables.is_empty() {
            out.push(encode(&batch));
        }
        out
    }
}

/// The state shared by the cache and its listener task.
pub(super) struct Channel {
    pub(super) instance: String,
    name: Mutex<String>,
    pending: Mutex<Pending>,
    wake: Notify,
    /// A listener was spawned: publish queues messages (otherwise there is no one to send them).
    started: AtomicBool,
    listening: AtomicBool,
    pid: AtomicI32,
    connects: AtomicU64,
    received: AtomicU64,
    published: AtomicU64,
}

/// The listener's state, for SHOW CACHE and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerStatus {
    pub started: bool,
    /// LISTEN is active: the cache serves and stores.
    pub listening: bool,
    /// The listening backend's process id.
    pub pid: Option<i32>,
    /// Successful connects (1 + reconnects).
    pub connects: u64,
    /// Messages from other instances applied.
    pub received: u64,
    /// Payloads sent.
    pub published: u64,
}

impl Channel {
    pub(super) fn new(name: &str) -> Channel {
        Channel {
            instance: format!("{:016x}", rand::random::<u64>()),
            name: Mutex::new(name.to_string()),
            pending: Mutex::default(),
            wake: Notify::new(),
            started: AtomicBool::new(false),
            listening: AtomicBool::new(false),
            pid: AtomicI32::new(0),
            connects: AtomicU64::new(0),
            received: AtomicU64::new(0),
            published: AtomicU64::new(0),
        }
    }

    pub(super) fn name(&self) -> String {
        lock(&self.name).clone()
    }

    /// A new channel name: the task re-listens (and flushes) on it.
    pub(super) fn set_name(&self, name: &str) {
        let mut cur = lock(&self.name);
        if *cur != name {
            *cur = name.to_string();
            drop(cur);
            self.wake.notify_one();
        }
    }

    /// Queues tables (or everything) for the other instances; `seq` is the floors' sequence
    /// number of this local invalidation.
    pub(super) fn publish(&self, tables: &[String], all: bool, seq: u64) {
        if !self.started.load(Ordering::SeqCst) {
            return;
        }
        {
            let mut p = lock(&self.pending);
            p.seq = p.seq.max(seq);
            if all || p.tables.len() + tables.len() > MAX_PENDING_TABLES {
                p.all = true;
                p.tables.clear();
            } else if !p.all {
                p.tables.extend(tables.iter().cloned());
            }
        }
        self.wake.notify_one();
    }

    fn take_pending(&self) -> Pending {
        std::mem::take(&mut *lock(&self.pending))
    }

    /// Puts back what could not be confirmed as sent.
    fn requeue(&self, batch: Pending) {
        let mut p = lock(&self.pending);
        p.seq = p.seq.max(batch.seq);
        if batch.all || p.all {
            p.all = true;
            p.tables.clear();
        } else {
            p.tables.extend(batch.tables);
        }
    }

    /// A (new) listener task is about to start: not listening yet.
    pub(super) fn mark_started(&self) {
        self.started.store(true, Ordering::SeqCst);
        self.listening.store(false, Ordering::SeqCst);
        self.pid.store(0, Ordering::SeqCst);
    }

    pub(super) fn status(&self) -> ListenerStatus {
        let pid = self.pid.load(Ordering::SeqCst);
        ListenerStatus {
            started: self.started.load(Ordering::SeqCst),
            listening: self.listening.load(Ordering::SeqCst),
            pid: (pid != 0).then_some(pid),
            connects: self.connects.load(Ordering::SeqCst),
            received: self.received.load(Ordering::SeqCst),
            published: self.published.load(Ordering::SeqCst),
        }
    }
}

/// Why one connection's service ended.
enum Exit {
    /// The cache is gone.
    Stop,
    /// The channel name changed.
    Renamed,
    Lost(String),
}

/// The listener task (see the module docs); ends when the cache is dropped.
pub(super) async fn run(cache: Weak<ResultCache>, chan: Arc<Channel>, target: BackendTarget) {
    let target = Arc::new(target);
    let mut backoff = MIN_BACKOFF;
    loop {
        let name = chan.name();
        let exit = match listen(&target, &name).await {
            Ok(mut conn) => {
                let Some(c) = cache.upgrade() else { return };
                c.set_online(true);
                drop(c);
                chan.pid.store(conn.key.0, Ordering::SeqCst);
                chan.listening.store(true, Ordering::SeqCst);
                chan.connects.fetch_add(1, Ordering::SeqCst);
                tracing::info!(backend = %target.label(), channel = %name, "cache invalidation listener connected");
                backoff = MIN_BACKOFF;
                let exit = serve(&mut conn, &cache, &chan, &name).await;
                chan.listening.store(false, Ordering::SeqCst);
                chan.pid.store(0, Ordering::SeqCst);
                match cache.upgrade() {
                    Some(c) => c.set_online(false),
                    None => return,
                }
                conn.terminate().await;
                exit
            }
            Err(e) => Exit::Lost(e),
        };
        match exit {
            Exit::Stop => return,
            Exit::Renamed => continue,
            Exit::Lost(reason) => {
                tracing::warn!(backend = %target.label(), %reason, retry_in = ?backoff,
                    "cache invalidation listener down: cache flushed and off until it reconnects");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

async fn listen(target: &Arc<BackendTarget>, name: &str) -> Result<BackendConn, String> {
    let params = [("application_name", "pgtide-cache-invalidation")];
    let mut conn = BackendConn::connect(target.clone(), &params, CONNECT_TIMEOUT, 1)
        .await
        .map_err(|e| e.to_string())?;
    let sql = format!("LISTEN {}", pgtide_sql::quote_ident(name));
    match tokio::time::timeout(REPLY_TIMEOUT, conn.run_simple(&[&sql])).await {
        Err(_) => Err("LISTEN timed out".into()),
        Ok(Err(e)) => Err(e.to_string()),
        Ok(Ok((_, Some((code, msg))))) => Err(format!("LISTEN failed: {msg} ({code})")),
        Ok(Ok((_, None))) => Ok(conn),
    }
}

/// Receives and publishes on one listening connection until it is lost, renamed or the cache
/// is gone.
async fn serve(
    conn: &mut BackendConn,
    cache: &Weak<ResultCache>,
    chan: &Channel,
    name: &str,
) -> Exit {
    // Sent and not yet confirmed: the batch (requeued if the connection is lost) and the
    // ReadyForQuery count still expected.
    let mut sent: Option<Pending> = None;
    let mut awaiting = 0usize;
    // The WAL position the publishing statements reported (the highest).
    let mut published_at: Option<u64> = None;
    let mut rows = 0usize;
    let mut deadline = Instant::now() + PING_EVERY;
    loop {
        if awaiting == 0 {
            let batch = chan.take_pending();
            if !batch.is_empty() {
                let mut out = BytesMut::new();
                let lit = pgtide_sql::quote_literal(name);
                let payloads = batch.payloads(&chan.instance);
                awaiting = 0;
                for p in &payloads {
                    // Payloads are bounded (MAX_PENDING_TABLES, then "all"): always encodable.
                    match encode::query(&mut out, &publish_sql(&lit, p)) {
                        Ok(()) => awaiting += 1,
                        Err(e) => tracing::error!(error = %e, "invalidation too long to publish"),
                    }
                }
                published_at = None;
                rows = 0;
                sent = Some(batch);
                if let Err(e) = conn.send(&out).await {
                    chan.requeue(sent.take().unwrap_or_default());
                    return Exit::Lost(e.to_string());
                }
                deadline = Instant::now() + REPLY_TIMEOUT;
            }
        }
        tokio::select! {
            frame = conn.read_frame() => {
                let frame = match frame {
                    Ok(f) => f,
                    Err(e) => {
                        if let Some(b) = sent.take() {
                            chan.requeue(b);
                        }
                        return Exit::Lost(e.to_string());
                    }
                };
                match frame.tag {
                    tag::NOTIFICATION_RESPONSE => {
                        let Some(c) = cache.upgrade() else { return Exit::Stop };
                        if let Some((channel, payload)) = notification(frame.body()) {
                            if channel == name {
                                apply(&c, chan, &payload);
                            }
                        }
                    }
                    tag::DATA_ROW => {
                        let lsn = crate::upstream::conn::data_row_text(frame.body())
                            .into_iter()
                            .nth(1)
                            .flatten()
                            .and_then(|t| crate::upstream::topology::parse_lsn(&t));
                        if let Some(lsn) = lsn {
                            rows += 1;
                            published_at = Some(published_at.map_or(lsn, |p| p.max(lsn)));
                        }
                    }
                    tag::READY_FOR_QUERY => {
                        awaiting = awaiting.saturating_sub(1);
                        if awaiting == 0 {
                            if let Some(b) = sent.take() {
                                let n = b.payloads(&chan.instance).len();
                                chan.published.fetch_add(n as u64, Ordering::SeqCst);
                                // Every statement reported its position (none failed): the
                                // floors of these tables are known. Otherwise they stay
                                // pending (replica fills of them are not stored).
                                let all_rows = rows == n;
                                if let (Some(lsn), Some(c), true) =
                                    (published_at.take(), cache.upgrade(), all_rows)
                                {
                                    let tables: Vec<String> = b.tables.into_iter().collect();
                                    c.floors().confirm(&tables, b.all, b.seq, lsn);
                                }
                            }
                            deadline = Instant::now() + PING_EVERY;
                        }
                    }
                    tag::ERROR_RESPONSE => {
                        let e = pgtide_wire::error_fields(frame.body()).ok();
                        tracing::warn!(error = ?e.map(|e| (e.code, e.message)),
                            "cache invalidation publish failed; other instances rely on TTL");
                    }
                    _ => {}
                }
            }
            _ = chan.wake.notified(), if awaiting == 0 => {
                if cache.strong_count() == 0 {
                    return Exit::Stop;
                }
                if chan.name() != name {
                    return Exit::Renamed;
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                if cache.strong_count() == 0 {
                    return Exit::Stop;
                }
                if awaiting > 0 {
                    if let Some(b) = sent.take() {
                        chan.requeue(b);
                    }
                    return Exit::Lost(format!("no reply within {REPLY_TIMEOUT:?}"));
                }
                // Idle: an empty query proves the connection is alive.
                let mut out = BytesMut::new();
                if let Err(e) = encode::query(&mut out, "") {
                    return Exit::Lost(e.to_string());
                }
                if let Err(e) = conn.send(&out).await {
                    return Exit::Lost(e.to_string());
                }
                awaiting = 1;
                deadline = Instant::now() + REPLY_TIMEOUT;
            }
        }
    }
}

/// Applies one payload from the channel.
fn apply(cache: &ResultCache, chan: &Channel, payload: &str) {
    match serde_json::from_str::<Message>(payload) {
        Ok(m) if m.instance == chan.instance => {}
        Ok(m) => {
            chan.received.fetch_add(1, Ordering::SeqCst);
            // Before the entries go: a fill that starts after this sees the floor.
            let lsn = m
                .lsn
                .as_deref()
                .and_then(crate::upstream::topology::parse_lsn)
                .unwrap_or(u64::MAX);
            cache.floors().remote(&m.tables, m.all, lsn);
            if m.all {
                cache.clear();
            } else {
                cache.invalidate_local(&m.tables);
            }
        }
        Err(e) => {
            chan.received.fetch_add(1, Ordering::SeqCst);
            tracing::warn!(error = %e, "unreadable cache invalidation payload: flushing the cache");
            cache.clear();
        }
    }
}

/// The statement that publishes one payload template: the position is spliced in by the
/// server, after every write the message reports has committed; the row also returns it.
fn publish_sql(channel_literal: &str, template: &str) -> String {
    let head = format!("{{\"l\":\"{LSN_HOLE}\"");
    match template.strip_prefix(&head) {
        Some(rest) => format!(
            "SELECT pg_notify({channel_literal}, '{{\"l\":\"' || pg_current_wal_insert_lsn()::text || {}), \
             pg_current_wal_insert_lsn()::text",
            pgtide_sql::quote_literal(&format!("\"{rest}"))
        ),
        // Not a template (cannot happen): published without a position.
        None => format!(
            "SELECT pg_notify({channel_literal}, {})",
            pgtide_sql::quote_literal(template)
        ),
    }
}

/// A NotificationResponse's channel and payload.
fn notification(body: &[u8]) -> Option<(String, String)> {
    let n = pgtide_wire::notification_response(body).ok()?;
    Some((
        String::from_utf8_lossy(n.channel).into_owned(),
        String::from_utf8_lossy(n.payload).into_owned(),
    ))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
#[path = "notify_tests.rs"]
mod tests;
