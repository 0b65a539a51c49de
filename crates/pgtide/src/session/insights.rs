//! Turning one client's traffic into [`Execution`]s for query insights: a simple Query is one
//! execution ending at its ReadyForQuery; an extended-protocol Execute is one ending at its
//! CommandComplete (or error). Rows are the DataRows in between. pgtide's own exchanges never
//! count. The client's N+1 state lives here, owned by its session: no lock on the hot path.

use bytes::Bytes;
use std::collections::VecDeque;
use std::hash::{Hash, Hasher};
use std::time::Instant;

use crate::insights::{ClientPatterns, Execution, Fp, Insights, Route};

#[derive(Debug)]
struct Pending {
    /// The statement text (a slice of the client's message: no copy); None when the message
    /// was malformed (it still ends at its reply, but is not recorded).
    sql: Option<Bytes>,
    params_hash: u64,
    /// A simple Query's fingerprint, from its analysis (None: fingerprinted when recorded).
    fp: Option<Fp>,
    started: Instant,
    rows: u64,
    /// Ends at ReadyForQuery (simple Query) rather than at CommandComplete.
    simple: bool,
    /// A simple Query that reported an error (it ends at its ReadyForQuery).
    failed: bool,
    in_transaction: bool,
}

/// Where the executions ran and for whom.
pub(crate) struct Context<'a> {
    pub insights: &'a Insights,
    pub route: Route,
    pub backend: &'a str,
    pub database: &'a str,
    pub user: &'a str,
    pub application_name: &'a str,
}

#[derive(Debug, Default)]
pub(crate) struct SessionInsights {
    /// `[insights] enabled` when the session started.
    enabled: bool,
    patterns: ClientPatterns,
    pending: VecDeque<Pending>,
    /// The statement text and parameters of the last Bind, for the Execute that follows.
    bound: Option<(Bytes, u64)>,
    /// The client was in a transaction (for the N+1 judgement at its end).
    in_transaction: bool,
}

/// A hash of a Bind's parameters (everything after its two names), to tell repeats with
/// different values apart.
pub(crate) fn bind_params_hash(body: &[u8]) -> u64 {
    let params = pgtide_wire::bind_names(body).map_or(&[][..], |names| names.rest);
    let mut h = std::collections::hash_map::DefaultHasher::new();
    params.hash(&mut h);
    h.finish()
}

impl SessionInsights {
    pub(crate) fn new(enabled: bool) -> SessionInsights {
        SessionInsights {
            enabled,
            ..Default::default()
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.enabled
    }

    /// A simple Query was sent; `text` is its SQL (the frame's bytes), `fingerprint` and
    /// `params_hash` what its analysis found (moved in, not computed again).
    pub(crate) fn on_query(
        &mut self,
        text: Bytes,
        fingerprint: pgtide_sql::Fingerprint,
        params_hash: u64,
        in_transaction: bool,
    ) {
        if !self.enabled {
            return;
        }
        self.pending.push_back(Pending {
            sql: Some(text),
            params_hash: 0,
            fp: Some(Fp::computed(fingerprint, params_hash)),
            started: Instant::now(),
            rows: 0,
            simple: true,
            failed: false,
            in_transaction,
        });
    }

    /// A Bind of a statement whose text is `sql` (None when unknown) was sent.
    pub(crate) fn on_bind(&mut self, sql: Option<String>, params_hash: u64) {
        if !self.enabled {
            return;
        }
        self.bound = sql.map(|s| (Bytes::from(s), params_hash));
    }

    /// An Execute was sent (of the last Bind's portal).
    pub(crate) fn on_execute(&mut self, in_transaction: bool) {
        if let Some((sql, params_hash)) = &self.bound {
            self.pending.push_back(Pending {
                sql: Some(sql.clone()),
                params_hash: *params_hash,
                fp: None,
                started: Instant::now(),
                rows: 0,
                simple: false,
                failed: false,
                in_transaction,
            });
        }
    }

    pub(crate) fn on_row(&mut self) {
        if let Some(p) = self.pending.front_mut() {
            p.rows += 1;
        }
    }

    /// CommandComplete / EmptyQueryResponse / PortalSuspended of an Execute.
    pub(crate) fn on_execute_done(&mut self, cx: &Context<'_>) {
        if self.pending.front().is_some_and(|p| !p.simple) {
            self.finish(cx, false);
        }
    }

    /// An ErrorResponse for the client: the running execution failed; the rest of an
    /// extended batch is skipped by the backend.
    pub(crate) fn on_error(&mut self, cx: &Context<'_>) {
        match self.pending.front_mut() {
            None => {}
            Some(p) if p.simple => p.failed = true,
            Some(_) => {
                self.finish(cx, true);
                while self.pending.front().is_some_and(|p| !p.simple) {
                    self.pending.pop_front();
                }
            }
        }
    }

    /// The client's ReadyForQuery (`status`): a simple Query ends here, and a transaction
    /// that ended is judged for N+1.
    pub(crate) fn on_ready(&mut self, status: u8, cx: &Context<'_>) {
        if let Some(failed) = self.pending.front().filter(|p| p.simple).map(|p| p.failed) {
            self.finish(cx, failed);
        }
        let in_transaction = status != pgtide_wire::status::IDLE;
        if self.in_transaction && !in_transaction {
            cx.insights
                .end_transaction(&mut self.patterns, cx.database, cx.application_name);
        }
        self.in_transaction = in_transaction;
    }

    /// A simple query answered from the result cache.
    pub(crate) fn record_cache_hit(
        &mut self,
        sql: &str,
        rows: u64,
        insights: &Insights,
        database: &str,
        user: &str,
        application_name: &str,
    ) {
        if !self.enabled {
            return;
        }
        let execution = Execution {
            sql,
            params_hash: 0,
            duration: std::time::Duration::ZERO,
            rows,
            error: false,
            route: Route::Cache,
            backend: "cache",
            database,
            user,
            application_name,
            in_transaction: false,
        };
        insights.record(&execution, &mut self.patterns);
    }

    /// The client went idle: its empty queue's room goes back (small allocations, cheap to
    /// make again; at 10,000 idle clients they add up).
    pub(crate) fn release_idle(&mut self) {
        if self.pending.is_empty() && self.pending.capacity() > 0 {
            self.pending = VecDeque::new();
        }
        self.patterns.release_idle();
    }

    /// What was sent is being run again elsewhere: nothing pending counts.
    pub(crate) fn forget_pending(&mut self) {
        self.pending.clear();
    }

    fn finish(&mut self, cx: &Context<'_>, error: bool) {
        let Some(p) = self.pending.pop_front() else {
            return;
        };
        let Some(Ok(sql)) = p.sql.as_deref().map(std::str::from_utf8) else {
            return;
        };
        // One clock read for the duration and the record's time.
        let ended = Instant::now();
        let execution = Execution {
            sql,
            params_hash: p.params_hash,
            duration: ended.saturating_duration_since(p.started),
            rows: p.rows,
            error,
            route: cx.route,
            backend: cx.backend,
            database: cx.database,
            user: cx.user,
            application_name: cx.application_name,
            in_transaction: p.in_transaction,
        };
        match &p.fp {
            Some(fp) => cx
                .insights
                .record_fingerprinted(&execution, fp, &mut self.patterns, ended),
            None => cx.insights.record_at(&execution, &mut self.patterns, ended),
        }
    }
}
