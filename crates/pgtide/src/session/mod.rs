//! One client's session after startup: relays frames between the client and a leased backend,
//! leasing on the first message of a transaction and returning the backend at ReadyForQuery 'I'
//! in transaction mode. One event loop per session with bounded buffers both ways, so neither a
//! slow client nor a chatty backend can stall the other direction or grow memory without bound.

use std::sync::Arc;

use bytes::{Buf, BytesMut};
use pgtide_config::PoolMode;
use pgtide_wire::status::{FAILED, IDLE, IN_TRANSACTION};
use pgtide_wire::{backend as btag, encode, frontend as ftag, Frame, FrameDecoder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::{ProxyError, Result};
use crate::frontend::cancel::Registration;
use crate::net::{buffer, ReadHalf, WriteHalf};
use crate::routing::intent;
use crate::routing::session_router::SessionRouter;
use crate::routing::{Intent, SessionRoute};
use crate::server::shared::{Phase, Shared};
use crate::session::client_state::ClientState;
use crate::session::prepared::client::{Backendward, ClientStatements};
use crate::session::replica_replay::{is_fatal, replica_refusal, Refusal, ReplicaReplay};
use crate::session::replies::{Completion, ReplyQueue, Verdict};
use crate::session::stale_plans::StalePlans;
use crate::upstream::pool::{Lease, Pool};
use crate::upstream::topology::Topology;

mod analysis;
mod backend_replies;
pub(crate) mod backlog;
pub(crate) mod client_state;
mod forward;
pub(crate) mod insights;
mod lease;
mod local;
mod notes;
use notes::show_pins;
mod observers;
pub(crate) mod prepared;
mod release;
pub(crate) mod replica_replay;
mod replica_rerun;
use replica_rerun::ReplicaRun;
pub(crate) mod replies;
pub(crate) mod result_cache;
pub(crate) mod settings_replay;
pub(crate) mod stale_plans;

/// Stop reading a side while this much is waiting to be written to the other.
const HIGH_WATER: usize = 256 * 1024;
const BACKEND_MAX_MESSAGE: usize = 1 << 30;

pub(crate) struct Session {
    shared: Arc<Shared>,
    pool: Arc<Pool>,
    mode: PoolMode,
    client_r: ReadHalf,
    client_w: WriteHalf,
    crbuf: BytesMut,
    to_client: BytesMut,
    to_backend: BytesMut,
    decoder: FrameDecoder,
    lease: Option<Lease>,
    replies: ReplyQueue,
    /// Extended-protocol messages were sent since the last Sync: the backend holds their state.
    unsynced: bool,
    /// Transaction status of the last ReadyForQuery.
    status: u8,
    /// The client's named statements (transaction mode).
    statements: ClientStatements,
    /// What happens to the client's next message (see [`Intake`]).
    intake: Intake,
    /// Session settings to carry and reasons to stay pinned (transaction mode).
    state: ClientState,
    /// Recovery from stale cached plans (transaction mode).
    stale_plans: StalePlans,
    /// Which backend of the database each transaction runs on (transaction mode).
    router: SessionRouter,
    /// `SET pgtide.route`.
    session_route: SessionRoute,
    /// This client's entry in SHOW CLIENTS (removed when the session ends).
    registered: crate::frontend::clients::Registered,
    /// This client's executions for query insights, and its N+1 state.
    insights: crate::session::insights::SessionInsights,
    /// The reply of a cache miss, captured to fill the entry.
    /// Boxed: rarely set (a cache miss), and every idle client's session holds the field.
    cache_capture: Option<Box<crate::session::result_cache::Capture>>,
    /// Tables written since the last commit, invalidated in the cache when it commits.
    cache_writes: crate::session::result_cache::Writes,
    /// `[routing] transactions = "first_statement"`: a BEGIN held until the transaction's first
    /// statement says where it runs.
    deferred_begin: Option<String>,
    /// A read on a replica that may still have to run on the primary.
    replica_run: ReplicaRun,
    /// DDL was sent: statements prepared until it commits get a new epoch again after it.
    ddl_in_flight: bool,
    /// Portals bound to statements with session effects, noted when they are executed.
    bound_effects: Vec<(String, String)>,
    /// The Query being handled, analysed once for routing and forwarding.
    query_analysis: crate::session::analysis::QueryAnalysis,
    /// The last Parse's SQL, read once however often it is sent again.
    parse_facts: crate::session::analysis::ParseFacts,
    cancel: Registration,
    /// Client frames wait unread while too much waits for the client (see backlog.rs).
    backlog: crate::session::backlog::Backlog,
    /// The backend sent the client a FATAL (e.g. pg_terminate_backend): when it then closes,
    /// the client has its reason already, as from PostgreSQL, and gets no second one.
    backend_fatal: bool,
}

/// What the session does with the client's next message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Intake {
    /// Answered by pgtide or forwarded.
    Open,
    /// A lease failed inside an extended-protocol batch: messages up to its Sync are dropped
    /// and the Sync is answered (the client already has the error).
    SkipUntilSync,
    /// The client sent Terminate behind messages the backend has not answered yet: they run
    /// to their end (their replies dropped), then the session ends, as PostgreSQL does.
    Terminated,
    /// Terminate, shutdown or a fatal error: nothing more is read; the session ends once the
    /// client has what it is owed.
    Closing,
}

impl Intake {
    /// Whether the client's messages are read.
    fn reads(self) -> bool {
        matches!(self, Intake::Open | Intake::SkipUntilSync)
    }
}

/// How the session ended, for logs.
#[derive(Debug)]
pub(crate) enum End {
    ClientLeft,
    Error(ProxyError),
}

/// What startup decided for a client: its pool, its backend (session mode), its cancel key,
/// its limits and the session state its startup packet asked for.
pub(crate) struct SessionStart {
    pub pool: Arc<Pool>,
    pub lease: Option<Lease>,
    pub mode: PoolMode,
    pub registration: Registration,
    pub max_message_size: usize,
    pub state: ClientState,
    pub topology: Arc<Topology>,
    pub identity: crate::frontend::clients::Identity,
}

impl Session {
    pub(crate) fn new(
        shared: Arc<Shared>,
        start: SessionStart,
        client_r: ReadHalf,
        client_w: WriteHalf,
        crbuf: BytesMut,
    ) -> Session {
        let SessionStart {
            pool,
            lease,
            mode,
            registration: cancel,
            max_message_size,
            state,
            topology,
            identity,
        } = start;
        let router = SessionRouter::new(topology, &pool);
        let number = shared.next_session_number();
        let shared_insights_enabled = shared.config.load().insights.enabled;
        let statements = ClientStatements::new(number, shared.epochs.clone());
        let registered = shared.client_registry.register(number, identity);
        Session {
            shared,
            pool,
            mode,
            client_r,
            client_w,
            crbuf,
            to_client: BytesMut::new(),
            to_backend: BytesMut::new(),
            decoder: FrameDecoder::new(max_message_size),
            lease,
            replies: ReplyQueue::default(),
            unsynced: false,
            status: IDLE,
            statements,
            stale_plans: StalePlans::default(),
            router,
            session_route: SessionRoute::Auto,
            registered,
            insights: crate::session::insights::SessionInsights::new(shared_insights_enabled),
            cache_capture: None,
            cache_writes: Default::default(),
            deferred_begin: None,
            replica_run: ReplicaRun::Idle,
            ddl_in_flight: false,
            bound_effects: Vec::new(),
            intake: Intake::Open,
            query_analysis: Default::default(),
            parse_facts: Default::default(),
            state,
            cancel,
            backlog: Default::default(),
            backend_fatal: false,
        }
    }

    /// The session is boxed (an async fn keeps a by-value argument twice) and so are the
    /// handlers: an idle client's task holds the session and its wait, not room for the largest
    /// handler (an allocation per event; ~4 KiB less per idle client).
    pub(crate) async fn run(mut self: Box<Self>) -> End {
        if self.lease.is_some() {
            if let Err(e) = Box::pin(self.attach()).await {
                return Box::pin(self.finish(End::Error(e))).await;
            }
        }
        // A phase change between startup and registration signalled no one.
        if self.shared.phase() != Phase::Running {
            self.on_phase_change().await;
        }
        // The client may have pipelined its first messages right behind the startup packet.
        if !self.crbuf.is_empty() {
            if let Err(e) = Box::pin(self.on_client_data()).await {
                return Box::pin(self.finish(End::Error(e))).await;
            }
        }
        let end = loop {
            if self.intake == Intake::Terminated {
                // The client no longer reads; PostgreSQL would still run what it sent. An
                // unsynced tail gets no ReadyForQuery: once everything synced before it has
                // ended, the session ends (the backend, mid implicit transaction, is reset:
                // PostgreSQL rolls that tail back too).
                self.to_client.clear();
                if self.to_backend.is_empty()
                    && (self.replies.is_empty() || (self.unsynced && !self.replies.awaits_ready()))
                {
                    break End::ClientLeft;
                }
            }
            if self.intake == Intake::Closing && self.client_caught_up() {
                break End::ClientLeft;
            }
            if self.backlog.is_paused() {
                // Backend replies may have made pgtide's own due: out to the client first.
                self.flush_synthetic();
                if self
                    .backlog
                    .resume(HIGH_WATER, &self.to_client, &self.replies)
                {
                    if let Err(e) = Box::pin(self.on_client_data()).await {
                        break End::Error(e);
                    }
                }
            }
            match self.next_event().await {
                Event::ClientRead(Ok(0)) => {
                    // Gone without Terminate. Outside a transaction, what it sent still runs,
                    // as on PostgreSQL (an autocommit write commits). Inside one, the
                    // transaction is lost either way: the backend is cancelled and reset now,
                    // rather than held until a long statement ends.
                    let owed = !self.replies.is_empty() || !self.to_backend.is_empty();
                    if !owed || self.status != IDLE {
                        break End::ClientLeft;
                    }
                    self.intake = Intake::Terminated;
                }
                Event::ClientRead(Ok(_)) => {
                    if let Err(e) = Box::pin(self.on_client_data()).await {
                        break End::Error(e);
                    }
                    self.write_now();
                }
                Event::ClientRead(Err(e)) | Event::ClientWrote(Err(e)) => {
                    break End::Error(ProxyError::ClientIo(e))
                }
                Event::ClientWrote(Ok(n)) => self.to_client.advance(n),
                Event::BackendRead(Ok(0)) => {
                    if !Box::pin(self.reroute_after_loss()).await {
                        break End::Error(ProxyError::BackendLost(
                            "server closed the connection".into(),
                        ));
                    }
                }
                Event::BackendRead(Ok(_)) => {
                    if let Err(e) = Box::pin(self.on_backend_data()).await {
                        break End::Error(e);
                    }
                    self.write_now();
                }
                Event::BackendRead(Err(e)) | Event::BackendWrote(Err(e)) => {
                    if !Box::pin(self.reroute_after_loss()).await {
                        break End::Error(ProxyError::BackendLost(e.into()));
                    }
                }
                Event::BackendWrote(Ok(n)) => self.to_backend.advance(n),
                Event::Signal(wake) => {
                    if wake.trim {
                        self.trim_if_idle();
                    }
                    if wake.phase {
                        self.on_phase_change().await;
                    }
                }
            }
        };
        Box::pin(self.finish(end)).await
    }

    /// Handles every complete frame the client sent, each through the phases in order: intake
    /// (Terminate, skipping to Sync), answered by pgtide itself, a backend leased (or the kept
    /// one brought up to date), forwarded. Replies go through `on_backend_data`.
    async fn on_client_data(&mut self) -> Result<()> {
        if self.registered.info.phase_signal.is_trimmed() {
            // Busy again: the next periodic trim looks at this session.
            self.registered.info.phase_signal.set_trimmed(false);
        }
        buffer::make_room(&mut self.to_backend);
        buffer::make_room(&mut self.to_client);
        while self.intake.reads() {
            if self.intake_waits() {
                break;
            }
            let Some(frame) = self.decoder.decode(&mut self.crbuf)? else {
                break;
            };
            match self.intake {
                _ if frame.tag == ftag::TERMINATE => {
                    // What came before it still runs, as on a direct connection.
                    let owed = !self.replies.is_empty() || !self.to_backend.is_empty();
                    self.intake = if owed {
                        Intake::Terminated
                    } else {
                        Intake::Closing
                    };
                    break;
                }
                Intake::SkipUntilSync => {
                    if frame.tag == ftag::SYNC {
                        self.intake = Intake::Open;
                        encode::ready_for_query(&mut self.to_client, IDLE);
                    }
                    continue;
                }
                Intake::Open | Intake::Terminated | Intake::Closing => {}
            }
            // A Query's text is read once here and lent to every phase (shared bytes: the
            // frame itself moves on to the backend).
            let query = crate::session::analysis::query_frame(&frame);
            let sql = crate::session::analysis::query_sql(&query);
            if self.answer_locally(&frame, sql).await {
                continue;
            }
            if !self.backend_for(&frame, sql).await? {
                continue;
            }
            self.forward(frame, sql);
        }
        self.flush_synthetic();
        Ok(())
    }

    /// The client's next message waits unread: too much waits for the client, a routed batch
    /// is not complete yet, it names statements an earlier batch may have changed, or a
    /// replica serves an earlier batch.
    fn intake_waits(&mut self) -> bool {
        let to_backend = self.lease.as_ref().map(|_| &mut self.to_backend);
        if self
            .backlog
            .over(HIGH_WATER, &self.to_client, &self.replies, to_backend)
        {
            return true;
        }
        if self.lease.is_none()
            && self.mode == PoolMode::Transaction
            && self.router.active()
            && intent::batch_arriving(&self.crbuf)
        {
            // Routing needs the whole batch; the rest is on its way.
            return true;
        }
        let copying = self.replies.copy_data_owed();
        if self.statements.waits_for_outcome(&self.crbuf, copying) {
            return true;
        }
        // A replica leased for an earlier batch takes no other: this one waits.
        self.lease.is_some()
            && self
                .router
                .hold_next_batch(!self.unsynced, self.replies.awaits_ready())
    }

    /// A backend for this frame: the leased one (brought up to date at a new transaction on a
    /// kept backend), or a new lease. False when the lease failed (the client has the error).
    async fn backend_for(&mut self, frame: &Frame, sql: Option<&str>) -> Result<bool> {
        if self.lease.is_some() {
            if self.status == IDLE && !self.unsynced && !self.replies.awaits_ready() {
                // A new transaction on a backend the client kept (session mode, pinned).
                self.sync_settings();
            }
            return Ok(true);
        }
        if !self.lease_backend(frame, sql).await? {
            self.cache_capture = None;
            return Ok(false);
        }
        if let (Some(c), Some(l)) = (&mut self.cache_capture, &self.lease) {
            c.set_source(crate::session::result_cache::source(
                &self.shared.cache,
                &self.router,
                l,
            ));
        }
        Ok(true)
    }

    /// What the transaction this frame opens intends (read or not, hints), from the frame and,
    /// for the extended protocol, the rest of its batch already read.
    fn intent_of(&mut self, frame: &Frame, sql: Option<&str>) -> Intent {
        if !intent::settings_allow_replica(self.state.settings(), self.state.lexes_as_sent()) {
            return Intent::default();
        }
        let classifier = self.shared.classifier.load();
        if frame.tag == ftag::QUERY {
            return self
                .query_analysis
                .of(frame, sql, &classifier, pgtide_sql::ClassifyMode::Yes)
                .and_then(|a| a.classification.as_deref())
                .map(intent::of_classification)
                .unwrap_or_default();
        }
        let classify = |sql: &str| classifier.classify(sql);
        let known = |name: &str| self.statements.text_of(name);
        intent::of_batch(frame, &self.crbuf, &classify, &known)
    }

    /// Notes a statement about to run that may write: for read-your-writes (on the primary)
    /// and for the result cache's invalidation when it commits.
    /// `analysis`: the statement's, when made already (a simple Query).
    fn note_if_write(&mut self, sql: &str, analysis: Option<&pgtide_sql::Analysis>) {
        let routing = self.router.active() && !self.router.on_replica();
        let caching = self.shared.cache.tracks_writes();
        if !routing && !caching {
            return;
        }
        if analysis.is_some_and(|a| a.plain_read) && self.state.lexes_as_sent() {
            // A lone SELECT without calls, locks or INTO: nothing to note, nothing to classify.
            return;
        }
        let c = match analysis.and_then(|a| a.classification.clone()) {
            Some(c) => c,
            None => self.shared.classifier.load().classify(sql),
        };
        let c = intent::under_settings(c, self.state.lexes_as_sent());
        if routing && intent::writes(&c) {
            self.router.note_write();
        }
        if caching {
            self.cache_writes.note(sql, &c, &self.shared.cache);
        }
    }

    /// Writes pgtide's own replies that are now due.
    fn flush_synthetic(&mut self) {
        if !self.replies.has_due_synthetic() {
            return;
        }
        let mut due = Vec::new();
        self.replies.take_due_synthetic(&mut due);
        for reply in due {
            self.emit(&reply);
        }
    }

    /// One whole message for the client (tag first), unless a re-run already sent it.
    fn emit(&mut self, message: &[u8]) {
        if !self.replica_run.reaches_client(message.first().copied()) {
            return;
        }
        self.to_client.extend_from_slice(message);
    }
}

/// The CommandComplete of DEALLOCATE ALL or DISCARD ALL: every prepared statement is gone.
fn drops_prepared(tag: &str) -> bool {
    matches!(tag, "DEALLOCATE ALL" | "DISCARD ALL")
}

mod events;
use events::Event;

#[cfg(test)]
#[path = "handler_sizes_tests.rs"]
mod handler_sizes_tests;
