//! One client's session after startup: relays frames between the client and a leased backend,
//! leasing on the first message of a transaction and returning the backend at ReadyForQuery 'I'
//! in transaction mode. One event loop per session with bounded buffers both ways, so neither a
//! slow client nor a chatty backend can stall the other direction or grow memory without bound.

use std::sync::Arc;

use bytes::{Buf, BytesMut};
use pgtide_config::PoolMode;
use pgtide_wire::{backend as btag, encode, frontend as ftag, Frame, FrameDecoder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::watch;

use crate::error::{ProxyError, Result};
use crate::frontend::cancel::Registration;
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
pub(crate) mod backlog;
pub(crate) mod client_state;
mod forward;
pub(crate) mod insights;
mod local;
pub(crate) mod prepared;
pub(crate) mod replica_replay;
mod replica_rerun;
pub(crate) mod replies;
pub(crate) mod result_cache;
pub(crate) mod settings_replay;
pub(crate) mod stale_plans;

/// Stop reading a side while this much is waiting to be written to the other.
const HIGH_WATER: usize = 256 * 1024;
const BACKEND_MAX_MESSAGE: usize = 1 << 30;

pub struct Session {
    shared: Arc<Shared>,
    pool: Arc<Pool>,
    mode: PoolMode,
    client_r: OwnedReadHalf,
    client_w: OwnedWriteHalf,
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
    /// After a failed lease, client messages up to the next Sync are answered by pgtide.
    skip_until_sync: bool,
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
    cache_capture: Option<crate::session::result_cache::Capture>,
    /// Tables written since the last commit, invalidated in the cache when it commits.
    cache_writes: crate::session::result_cache::Writes,
    /// `[routing] transactions = "first_statement"`: a BEGIN held until the transaction's first
    /// statement says where it runs.
    deferred_begin: Option<String>,
    /// What was sent to a replica, to run on the primary if the replica cannot answer.
    replica_replay: Option<ReplicaReplay>,
    /// Replies of a re-run the client already has from the first run: dropped.
    replay_drop: usize,
    /// The replica refused the read as a write: re-run it once its reply has ended.
    rerouting: bool,
    /// DDL was sent: statements prepared until it commits get a new epoch again after it.
    ddl_in_flight: bool,
    /// Portals bound to statements with session effects, noted when they are executed.
    bound_effects: Vec<(String, String)>,
    /// The Query being handled, analysed once for routing and forwarding.
    query_analysis: crate::session::analysis::QueryAnalysis,
    cancel: Registration,
    phase: watch::Receiver<Phase>,
    closing: bool,
    /// Client frames wait unread while too much waits for the client (see backlog.rs).
    backlog: crate::session::backlog::Backlog,
    /// The backend sent the client a FATAL (e.g. pg_terminate_backend): when it then closes,
    /// the client has its reason already, as from PostgreSQL, and gets no second one.
    backend_fatal: bool,
}

enum Event {
    ClientRead(std::io::Result<usize>),
    ClientWrote(std::io::Result<usize>),
    BackendRead(std::io::Result<usize>),
    BackendWrote(std::io::Result<usize>),
    PhaseChanged,
}

/// How the session ended, for logs.
#[derive(Debug)]
pub enum End {
    ClientLeft,
    Error(ProxyError),
}

/// What startup decided for a client: its pool, its backend (session mode), its cancel key,
/// its limits and the session state its startup packet asked for.
pub struct SessionStart {
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
    pub fn new(
        shared: Arc<Shared>,
        start: SessionStart,
        client_r: OwnedReadHalf,
        client_w: OwnedWriteHalf,
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
        let router = SessionRouter::new(topology, pool.database.clone(), pool.user.clone());
        let phase = shared.phase.subscribe();
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
            to_client: BytesMut::with_capacity(16 * 1024),
            to_backend: BytesMut::with_capacity(4 * 1024),
            decoder: FrameDecoder::new(max_message_size),
            lease,
            replies: ReplyQueue::default(),
            unsynced: false,
            status: b'I',
            statements,
            stale_plans: StalePlans::default(),
            router,
            session_route: SessionRoute::Auto,
            registered,
            insights: crate::session::insights::SessionInsights::new(shared_insights_enabled),
            cache_capture: None,
            cache_writes: Default::default(),
            deferred_begin: None,
            replica_replay: None,
            replay_drop: 0,
            rerouting: false,
            ddl_in_flight: false,
            bound_effects: Vec::new(),
            query_analysis: Default::default(),
            skip_until_sync: false,
            state,
            cancel,
            phase,
            closing: false,
            backlog: Default::default(),
            backend_fatal: false,
        }
    }

    pub async fn run(mut self) -> End {
        if let Some(lease) = self.lease.take() {
            if let Err(e) = self.attach(lease).await {
                return self.finish(End::Error(e)).await;
            }
        }
        // The client may have pipelined its first messages right behind the startup packet.
        if !self.crbuf.is_empty() {
            if let Err(e) = self.on_client_data().await {
                return self.finish(End::Error(e)).await;
            }
        }
        let end = loop {
            if self.closing && self.to_client.is_empty() {
                break End::ClientLeft;
            }
            if self.backlog.is_paused() {
                // Backend replies may have made pgtide's own due: out to the client first.
                self.flush_synthetic();
                if self
                    .backlog
                    .resume(HIGH_WATER, &self.to_client, &self.replies)
                {
                    if let Err(e) = self.on_client_data().await {
                        break End::Error(e);
                    }
                }
            }
            match self.next_event().await {
                Event::ClientRead(Ok(0)) => break End::ClientLeft,
                Event::ClientRead(Ok(_)) => {
                    if let Err(e) = self.on_client_data().await {
                        break End::Error(e);
                    }
                }
                Event::ClientRead(Err(e)) | Event::ClientWrote(Err(e)) => {
                    break End::Error(ProxyError::ClientIo(e))
                }
                Event::ClientWrote(Ok(n)) => self.to_client.advance(n),
                Event::BackendRead(Ok(0)) => {
                    if !self.reroute_after_loss().await {
                        break End::Error(ProxyError::BackendLost(
                            "server closed the connection".into(),
                        ));
                    }
                }
                Event::BackendRead(Ok(_)) => {
                    if let Err(e) = self.on_backend_data().await {
                        break End::Error(e);
                    }
                }
                Event::BackendRead(Err(e)) | Event::BackendWrote(Err(e)) => {
                    if !self.reroute_after_loss().await {
                        break End::Error(ProxyError::BackendLost(e.to_string()));
                    }
                }
                Event::BackendWrote(Ok(n)) => self.to_backend.advance(n),
                Event::PhaseChanged => self.on_phase_change().await,
            }
        };
        self.finish(end).await
    }

    async fn next_event(&mut self) -> Event {
        let backend = self
            .lease
            .as_mut()
            .map(|l| (&mut l.conn.reader, &mut l.conn.writer, &mut l.conn.rbuf));
        let (b_reader, b_writer, b_rbuf) = match backend {
            Some((r, w, b)) => (Some(r), Some(w), Some(b)),
            None => (None, None, None),
        };
        let has_backend = b_reader.is_some();
        let client_reads = !self.closing
            && self.to_backend.len() < HIGH_WATER
            && crate::session::backlog::queued(&self.to_client, &self.replies) < HIGH_WATER
            && !(self.router.held() && self.crbuf.len() >= HIGH_WATER);
        tokio::select! {
            biased;
            r = self.phase.changed() => {
                if r.is_err() {
                    // The server is gone: nothing will change any more.
                    std::future::pending::<()>().await;
                }
                Event::PhaseChanged
            }
            r = self.client_w.write(&self.to_client), if !self.to_client.is_empty() => Event::ClientWrote(r),
            r = write_opt(b_writer, &self.to_backend), if has_backend && !self.to_backend.is_empty() => Event::BackendWrote(r),
            r = read_opt(b_reader, b_rbuf), if has_backend && self.to_client.len() < HIGH_WATER => Event::BackendRead(r),
            r = self.client_r.read_buf(&mut self.crbuf), if client_reads => Event::ClientRead(r),
        }
    }

    /// Handles every complete frame the client sent.
    async fn on_client_data(&mut self) -> Result<()> {
        while !self.closing {
            let to_backend = self.lease.as_ref().map(|_| &mut self.to_backend);
            if self
                .backlog
                .over(HIGH_WATER, &self.to_client, &self.replies, to_backend)
            {
                break;
            }
            if self.lease.is_none()
                && self.mode == PoolMode::Transaction
                && self.router.active()
                && intent::batch_arriving(&self.crbuf)
            {
                // Routing needs the whole batch; the rest is on its way.
                break;
            }
            if self.lease.is_some()
                && self
                    .router
                    .hold_next_batch(!self.unsynced, self.replies.awaits_ready())
            {
                // A replica leased for an earlier batch takes no other: this one waits.
                break;
            }
            let frame = match self.decoder.decode(&mut self.crbuf)? {
                Some(f) => f,
                None => break,
            };
            if frame.tag == ftag::TERMINATE {
                self.closing = true;
                break;
            }
            if self.skip_until_sync {
                if frame.tag == ftag::SYNC {
                    self.skip_until_sync = false;
                    encode::ready_for_query(&mut self.to_client, b'I');
                }
                continue;
            }
            if self.answer_route_setting(&frame) {
                continue;
            }
            if self.lease.is_none() && self.defer_begin(&frame) {
                continue;
            }
            if self.lease.is_none()
                && self.deferred_begin.is_none()
                && self.answer_batch_from_cache(&frame).await
            {
                continue;
            }
            if self.lease.is_none()
                && self.deferred_begin.is_none()
                && self.answer_without_backend(&frame)
            {
                continue;
            }
            if self.lease.is_none()
                && self.deferred_begin.is_none()
                && self.answer_from_cache(&frame).await
            {
                continue;
            }
            if self.lease.is_none() {
                if !self.lease_backend(&frame).await? {
                    self.cache_capture = None;
                    continue;
                }
                if let (Some(c), Some(l)) = (&mut self.cache_capture, &self.lease) {
                    c.set_source(crate::session::result_cache::source(
                        &self.shared.cache,
                        &self.router,
                        l,
                    ));
                }
            } else if self.status == b'I' && !self.unsynced && !self.replies.awaits_ready() {
                // A new transaction on a backend the client kept (session mode, pinned).
                self.sync_settings();
            }
            self.forward(frame);
        }
        self.flush_synthetic();
        Ok(())
    }

    /// Leases a backend for the transaction this frame starts. On failure the client gets the
    /// error (and, for a simple query, ReadyForQuery) and the session goes on: false is returned.
    async fn lease_backend(&mut self, frame: &Frame) -> Result<bool> {
        if self.shared.phase() != Phase::Running {
            return Err(ProxyError::ShuttingDown);
        }
        // pgtide's answers to what came before belong to no backend: out before this lease.
        self.flush_synthetic();
        if self.shared.pause.is_paused(&self.pool.database) {
            // PAUSE (admin console): wait for RESUME; what the client sent waits with it.
            self.shared.pause.wait(&self.pool.database).await;
        }
        let lease = if self.mode == PoolMode::Transaction && self.router.active() {
            let intent = self.intent_of(frame);
            self.router
                .lease(&self.shared, intent, self.session_route)
                .await
        } else {
            self.pool.checkout().await
        };
        let lease = match lease {
            Ok(lease) => {
                self.replica_replay = self.router.on_replica().then(ReplicaReplay::default);
                self.attach(lease).await
            }
            Err(e) => Err(e),
        };
        match lease {
            Ok(()) => {
                if let Some(begin) = self.deferred_begin.take() {
                    // The held BEGIN opens the transaction where its first statement runs.
                    self.replica_replay = None;
                    encode::query(&mut self.to_backend, &begin);
                    self.replies.expect_swallowed_query();
                }
                Ok(true)
            }
            Err(e) => {
                tracing::warn!(database = %self.pool.database, error = %e, "no backend for client");
                e.write_to(&mut self.to_client);
                match frame.tag {
                    ftag::QUERY | ftag::FUNCTION_CALL => {
                        encode::ready_for_query(&mut self.to_client, b'I')
                    }
                    ftag::SYNC => encode::ready_for_query(&mut self.to_client, b'I'),
                    _ => self.skip_until_sync = true,
                }
                Ok(false)
            }
        }
    }

    /// What the transaction this frame opens intends (read or not, hints), from the frame and,
    /// for the extended protocol, the rest of its batch already read.
    fn intent_of(&mut self, frame: &Frame) -> Intent {
        if !intent::settings_allow_replica(self.state.settings(), self.state.lexes_as_sent()) {
            return Intent::default();
        }
        let classifier = self.shared.classifier.load();
        if frame.tag == ftag::QUERY {
            return self
                .query_analysis
                .of(frame, &classifier, true)
                .and_then(|a| a.classification.as_deref())
                .map(intent::of_classification)
                .unwrap_or_default();
        }
        let classify = |sql: &str| classifier.classify(sql);
        let known = |name: &str| self.statements.text_of(name);
        intent::of_batch(frame, &self.crbuf, &classify, &known)
    }

    /// Notes a statement about to run on the primary that may write (read-your-writes).
    /// Notes a statement about to run that may write: for read-your-writes (on the primary)
    /// and for the result cache's invalidation when it commits.
    /// `analysis`: the statement's, when made already (a simple Query).
    fn note_if_write(&mut self, sql: &str, analysis: Option<&pgtide_sql::Analysis>) {
        let routing = self.router.active() && !self.router.on_replica();
        let caching = self.shared.cache.in_use();
        if !routing && !caching {
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

    /// Makes a leased backend this client's: cancel requests now reach it, and its session
    /// settings are brought in line with the client's (one swallowed query, in the same write as
    /// the client's first message). A role the client chose is set and checked first: if the
    /// backend refuses it, the lease is given back and nothing of the client's runs.
    async fn attach(&mut self, mut lease: Lease) -> Result<()> {
        if let Some(sql) =
            crate::session::settings_replay::checked_sync_sql(&self.state, &lease.conn.settings)
        {
            let pool = lease.pool.clone();
            match lease.conn.run_simple(&[&sql]).await {
                Ok((b'I', None)) => crate::session::settings_replay::checked_synced(
                    &self.state,
                    &mut lease.conn.settings,
                ),
                Ok((b'I', Some((code, message)))) => {
                    // One implicit transaction: the failure left the backend as it was.
                    pool.release(lease);
                    return Err(ProxyError::SettingReplay { code, message });
                }
                Ok(_) => {
                    pool.discard(lease);
                    return Err(ProxyError::BackendLost(
                        "role replay left a transaction".into(),
                    ));
                }
                Err(e) => {
                    pool.discard(lease);
                    return Err(e);
                }
            }
        }
        *self.cancel.slot.lock().await = Some(lease.conn.cancel_target());
        let backend = (lease.pool.label.clone(), lease.conn.id);
        self.registered.info.update(|live| {
            live.state = "active";
            live.backend = Some(backend);
            live.transactions += 1;
        });
        self.status = b'I';
        self.statements.on_attach();
        // A backend whose own default makes backslashes escapes (ALTER ROLE/DATABASE ... SET
        // standard_conforming_strings = off) hides statements from pgtide's lexer.
        if lease
            .conn
            .params
            .get("standard_conforming_strings")
            .map(String::as_str)
            == Some("off")
            && !self
                .state
                .settings()
                .contains_key("standard_conforming_strings")
        {
            let pins_before = self.state.pins().len();
            let observed = self.state.backslash_escapes();
            self.note_pins(pins_before, observed);
        }
        self.lease = Some(lease);
        self.sync_settings();
        Ok(())
    }

    /// Brings the leased backend's session settings in line with the client's (one swallowed
    /// query in the same write as the client's next message). Needed at attach, and on a kept
    /// backend after RESET (which returns the backend to its own default, not to the client's
    /// startup value).
    fn sync_settings(&mut self) {
        let Some(lease) = self.lease.as_mut() else {
            return;
        };
        if let Some(sql) =
            crate::session::settings_replay::sync_sql(&self.state, &lease.conn.settings)
        {
            encode::query(&mut self.to_backend, &sql);
            self.replies.expect_swallowed_query();
            crate::session::settings_replay::synced(&self.state, &mut lease.conn.settings);
            // A simple query replaces the backend's unnamed statement.
            self.statements.on_attach();
        }
    }

    /// A client batch (Query, Sync, FunctionCall) went to the backend: its ReadyForQuery
    /// settles what it changed.
    fn batch_sent(&mut self) {
        self.state.batch_sent();
        self.statements.batch_sent();
    }

    /// Notes the session effects of SQL the client is about to run (from its analysis, or
    /// `pgtide_sql::all_session_effects`). `prepare_carried`: SQL
    /// PREPAREs in it were given pgtide names and follow the client (no pin needed).
    fn observe(&mut self, effects: &[pgtide_sql::SessionEffect], prepare_carried: bool) {
        let pins_before = self.state.pins().len();
        let observed = self.state.observe_effects(effects, prepare_carried);
        for _ in 0..observed.drops_all {
            let backend = self
                .lease
                .as_ref()
                .map(|l| l.conn.prepared.names())
                .unwrap_or_default();
            self.statements.drop_all_sent(backend);
        }
        self.note_pins(pins_before, observed);
    }

    /// Shows a change of the client's pins in SHOW CLIENTS and counts a new one.
    fn note_pins(&mut self, pins_before: usize, observed: crate::session::client_state::Observed) {
        show_pins(&self.state, &self.registered, pins_before, observed);
    }

    /// Writes pgtide's own replies that are now due.
    fn flush_synthetic(&mut self) {
        let mut due = Vec::new();
        self.replies.take_due_synthetic(&mut due);
        for reply in due {
            self.emit(&reply);
        }
    }

    /// One whole message for the client (tag first), unless a re-run already sent it.
    fn emit(&mut self, message: &[u8]) {
        if self.replay_drop > 0 {
            self.replay_drop -= 1;
            return;
        }
        if let (Some(replay), Some(tag)) = (&mut self.replica_replay, message.first()) {
            replay.sent(*tag);
        }
        self.to_client.extend_from_slice(message);
    }

    /// Handles every complete frame the backend sent, then returns the backend if the
    /// transaction is over.
    async fn on_backend_data(&mut self) -> Result<()> {
        let decoder = FrameDecoder::new(BACKEND_MAX_MESSAGE);
        let mut forgotten = Vec::new();
        while let Some(lease) = self.lease.as_mut() {
            let frame = match decoder.decode(&mut lease.conn.rbuf) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    return Err(ProxyError::BackendLost(format!(
                        "bad message from server: {e}"
                    )))
                }
            };
            let mut prior_parameter = None;
            match frame.tag {
                btag::READY_FOR_QUERY => {
                    self.status = pgtide_wire::ready_for_query_status(frame.body())
                        .map_err(|e| ProxyError::BackendLost(e.to_string()))?;
                }
                btag::PARAMETER_STATUS => {
                    prior_parameter = pgtide_wire::parameter_status(frame.body())
                        .ok()
                        .and_then(|(name, _)| lease.conn.params.get(&name).cloned());
                    lease.conn.note_parameter(frame.body())
                }
                _ => {}
            }
            self.flush_synthetic();
            let own_exchange = self.replies.front_is_standalone();
            if own_exchange
                && frame.tag == btag::ERROR_RESPONSE
                && self.mode == PoolMode::Transaction
            {
                // One of pgtide's own exchanges failed (a settings replay, say, whose later SETs
                // PostgreSQL then skipped): the backend is not in the state pgtide recorded. It
                // stays with this client, is given all its settings again, and is reset before
                // anyone else gets it.
                let pins_before = self.state.pins().len();
                let observed = self.state.unreadable();
                show_pins(&self.state, &self.registered, pins_before, observed);
                if let Some(lease) = self.lease.as_mut() {
                    lease.conn.settings.clear();
                }
            }
            let mut verdict = self.replies.on_backend_message(frame.tag, &mut forgotten);
            let mut rerun = None;
            let mut reroute = false;
            if frame.tag == btag::ERROR_RESPONSE
                && self.router.on_replica()
                && is_fatal(frame.body())
                && self
                    .replica_replay
                    .as_ref()
                    .is_some_and(ReplicaReplay::replayable)
            {
                // The replica is going away (shutdown, crash) before answering: the same as
                // a lost connection.
                if self.reroute_after_loss().await {
                    continue;
                }
            } else if frame.tag == btag::ERROR_RESPONSE
                && !own_exchange
                && self.refused_by_replica(frame.body())
            {
                verdict = Verdict::Swallow;
            } else if frame.tag == btag::ERROR_RESPONSE {
                if let Some((global, completion)) = self.replies.take_failed_statement() {
                    if self.stale_plans.on_error(
                        frame.body(),
                        &global,
                        completion,
                        &self.shared.epochs,
                        &mut self.statements,
                        &mut self.replies,
                    ) {
                        verdict = Verdict::Swallow;
                    }
                }
            } else if frame.tag == btag::PARAMETER_DESCRIPTION
                && !own_exchange
                && self.stale_plans.drop_parameter_description()
            {
                verdict = Verdict::Swallow;
            } else if frame.tag == btag::READY_FOR_QUERY && own_exchange {
                rerun = self.stale_plans.take_rerun();
                reroute = self.rerouting;
                if self.router.capturing_lsn() {
                    self.router.wal_position_done();
                }
            } else if frame.tag == btag::DATA_ROW && own_exchange && self.router.capturing_lsn() {
                self.router.on_wal_position(frame.body());
            }
            if verdict == Verdict::Forward {
                if frame.tag == btag::ERROR_RESPONSE && is_fatal(frame.body()) {
                    self.backend_fatal = true;
                }
                if let Some(capture) = &mut self.cache_capture {
                    capture.on_message(frame.tag, &frame.raw);
                }
                self.emit(&frame.raw);
            }
            if let Some(lease) = self.lease.as_mut() {
                for name in forgotten.drain(..) {
                    lease.conn.prepared.forget(&name);
                }
                for name in self.replies.take_prepared() {
                    self.pool.note_statement(&name);
                }
                if !own_exchange && verdict == Verdict::Forward && self.insights.enabled() {
                    if frame.tag == btag::DATA_ROW {
                        self.insights.on_row();
                    } else if matches!(
                        frame.tag,
                        btag::COMMAND_COMPLETE
                            | btag::EMPTY_QUERY_RESPONSE
                            | btag::PORTAL_SUSPENDED
                            | btag::ERROR_RESPONSE
                            | btag::READY_FOR_QUERY
                    ) {
                        let route = if self.router.on_replica() {
                            crate::insights::Route::Replica
                        } else {
                            crate::insights::Route::Primary
                        };
                        let cx = crate::session::insights::Context {
                            insights: &self.shared.insights,
                            route,
                            backend: &lease.pool.label,
                            database: &self.pool.database,
                            user: &self.pool.user,
                            application_name: &self.registered.info.application_name,
                        };
                        match frame.tag {
                            btag::ERROR_RESPONSE => self.insights.on_error(&cx),
                            btag::READY_FOR_QUERY => self.insights.on_ready(self.status, &cx),
                            _ => self.insights.on_execute_done(&cx),
                        }
                    }
                }
                if !own_exchange && verdict == Verdict::Forward {
                    match frame.tag {
                        btag::ERROR_RESPONSE => self.state.on_error(),
                        btag::COMMAND_COMPLETE => {
                            self.state
                                .on_command_complete(&mut lease.conn.settings, frame.body());
                            if drops_prepared(frame.body()) {
                                self.statements.on_drop_all(&mut lease.conn);
                            }
                            self.statements.on_command_complete(frame.body());
                        }
                        btag::PARAMETER_STATUS => {
                            if let Ok((name, value)) = pgtide_wire::parameter_status(frame.body()) {
                                let pins_before = self.state.pins().len();
                                let observed = self.state.on_parameter_status(
                                    &name,
                                    prior_parameter.as_deref(),
                                    &value,
                                );
                                self.note_pins(pins_before, observed);
                            }
                        }
                        btag::READY_FOR_QUERY => {
                            let pins_before = self.state.pins().len();
                            let observed =
                                self.state.on_ready(self.status, &mut lease.conn.settings);
                            show_pins(&self.state, &self.registered, pins_before, observed);
                            if self.status == b'I' {
                                // Portals end with their transaction.
                                self.bound_effects.clear();
                            }
                            self.statements.on_ready(&mut lease.conn);
                            self.stale_plans.on_client_ready();
                            if let Some(capture) = self.cache_capture.take() {
                                capture.finish();
                            }
                            if self.status == b'I' {
                                self.cache_writes.commit(&self.shared.cache);
                                let ryw = self.shared.config.load().routing.read_your_writes;
                                // Only between the client's batches: behind part of a pipeline
                                // it would run inside the client's batch, or be skipped with it
                                // after an error and take the client's ReadyForQuery. Else at
                                // the ReadyForQuery that ends the pipeline.
                                let between = self.replies.is_empty() && !self.unsynced;
                                if let Some(sql) = between
                                    .then(|| self.router.after_transaction(ryw))
                                    .flatten()
                                {
                                    // Asked before the backend goes back; the client does not wait.
                                    encode::query(&mut self.to_backend, sql);
                                    self.replies.expect_swallowed_query();
                                }
                            }
                            if self.ddl_in_flight && self.status == b'I' {
                                self.ddl_in_flight = false;
                                self.shared.epochs.schema_changed();
                            }
                        }
                        _ => {}
                    }
                }
            }
            for frame in rerun.into_iter().flatten() {
                self.forward(frame);
            }
            if reroute {
                self.reroute_to_primary(false).await?;
                continue;
            }
            if frame.tag == btag::READY_FOR_QUERY {
                self.flush_synthetic();
                if self.replies.is_empty() && !self.unsynced && self.to_backend.is_empty() {
                    self.cancel.running(false);
                }
                if self.transaction_done() {
                    self.release().await;
                } else if self.mode == PoolMode::Session
                    && self.shared.phase() != Phase::Running
                    && self.replies.is_empty()
                    && self.status == b'I'
                {
                    self.close_with(ProxyError::ShuttingDown);
                }
            }
        }
        if self.router.take_held() {
            // The replica's batch may be over: the held one is routed (or held again).
            self.on_client_data().await?;
        }
        Ok(())
    }

    /// Nothing is owed and the backend is idle outside a transaction.
    fn transaction_done(&self) -> bool {
        self.mode == PoolMode::Transaction
            && self.replies.is_empty()
            && !self.unsynced
            && self.status == b'I'
            && self.to_backend.is_empty()
            && !self.state.is_pinned()
    }

    async fn release(&mut self) {
        if let Some(lease) = self.lease.take() {
            *self.cancel.slot.lock().await = None;
            lease.pool.clone().release(lease);
            self.registered.info.update(|live| {
                live.state = "idle";
                live.backend = None;
            });
        }
        // Whatever ran on a replica is answered: nothing to run elsewhere any more.
        self.replica_replay = None;
        if self.shared.phase() != Phase::Running {
            self.close_with(ProxyError::ShuttingDown);
        }
    }

    async fn on_phase_change(&mut self) {
        let phase = *self.phase.borrow_and_update();
        match phase {
            Phase::Running => {}
            // Idle clients go now; a client in a transaction goes when it ends (see release).
            Phase::Draining if self.lease.is_none() || self.mode == PoolMode::Session => {
                if self.replies.is_empty() && self.status == b'I' {
                    self.close_with(ProxyError::ShuttingDown)
                }
            }
            Phase::Draining => {}
            Phase::Stopping => self.close_with(ProxyError::ShuttingDown),
        }
    }

    fn close_with(&mut self, e: ProxyError) {
        if !self.closing {
            e.write_to(&mut self.to_client);
            self.closing = true;
        }
    }

    /// Ends the session: tells the client why (when it can still hear), then makes sure the
    /// backend goes back clean or not at all.
    async fn finish(mut self, end: End) -> End {
        match &end {
            End::ClientLeft => {}
            End::Error(ProxyError::ClientIo(_)) => {}
            End::Error(ProxyError::BackendLost(_)) if self.backend_fatal => {
                let _ = tokio::time::timeout(
                    std::time::Duration::from_secs(1),
                    self.client_w.write_all(&self.to_client),
                )
                .await;
            }
            End::Error(e) => {
                e.write_to(&mut self.to_client);
                let _ = tokio::time::timeout(
                    std::time::Duration::from_secs(1),
                    self.client_w.write_all(&self.to_client),
                )
                .await;
            }
        }
        if !self.to_client.is_empty() && matches!(end, End::ClientLeft) {
            let _ = tokio::time::timeout(
                std::time::Duration::from_secs(1),
                self.client_w.write_all(&self.to_client),
            )
            .await;
        }
        let _ = self.client_w.shutdown().await;
        if let Some(lease) = self.lease.take() {
            *self.cancel.slot.lock().await = None;
            let backend_broken = matches!(end, End::Error(ProxyError::BackendLost(_)));
            let clean = self.replies.is_empty() && !self.unsynced && self.to_backend.is_empty();
            // A pinned backend holds state no other client may inherit: reset it like session mode.
            let session_mode = self.mode == PoolMode::Session || self.state.is_pinned();
            let status = self.status;
            let pool = lease.pool.clone();
            if backend_broken {
                pool.discard(lease);
            } else {
                tokio::spawn(crate::upstream::pool::reset_and_return(
                    pool,
                    lease,
                    clean,
                    status,
                    session_mode,
                ));
            }
        }
        end
    }
}

/// Shows a change of the client's pins in SHOW CLIENTS and counts a new one.
fn show_pins(
    state: &ClientState,
    registered: &crate::frontend::clients::Registered,
    pins_before: usize,
    observed: crate::session::client_state::Observed,
) {
    if observed.pinned.is_some() || state.pins().len() != pins_before {
        let pins: Vec<&'static str> = state.pins().iter().copied().collect();
        registered.info.update(|live| live.pins = pins);
    }
    if let Some(reason) = observed.pinned {
        tracing::debug!(reason, "client pinned to its backend");
        metrics::counter!(crate::metrics_names::PINNED_CLIENTS_TOTAL, "reason" => reason)
            .increment(1);
    }
}

/// The CommandComplete of DEALLOCATE ALL or DISCARD ALL: every prepared statement is gone.
fn drops_prepared(body: &[u8]) -> bool {
    body == b"DEALLOCATE ALL\0" || body == b"DISCARD ALL\0"
}

async fn read_opt(
    r: Option<&mut OwnedReadHalf>,
    buf: Option<&mut BytesMut>,
) -> std::io::Result<usize> {
    match (r, buf) {
        (Some(r), Some(buf)) => r.read_buf(buf).await,
        _ => std::future::pending().await,
    }
}

async fn write_opt(w: Option<&mut OwnedWriteHalf>, data: &[u8]) -> std::io::Result<usize> {
    match w {
        Some(w) => w.write(data).await,
        None => std::future::pending().await,
    }
}
