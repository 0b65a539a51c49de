//! Answering the client without a backend: a held BEGIN, pgtide's own route setting, Parse/Close
//! of known statements between transactions, and result-cache hits (with the capture of a miss).

use super::*;

impl Session {
    /// The phase before any backend: true when pgtide answered the frame itself.
    pub(super) async fn answer_locally(&mut self, frame: &Frame, sql: Option<&str>) -> bool {
        if self.answer_route_setting(sql) {
            return true;
        }
        if self.lease.is_some() {
            return false;
        }
        if self.defer_begin(frame, sql) {
            return true;
        }
        self.deferred_begin.is_none()
            && ((self.cache_may_answer(frame, ftag::PARSE)
                && Box::pin(self.answer_batch_from_cache(frame)).await)
                || self.answer_without_backend(frame)
                || (self.cache_may_answer(frame, ftag::QUERY)
                    && sql.is_some_and(|sql| {
                        // No rules and nothing cached: only a /* pgtide:cache */ hint can make
                        // it cacheable.
                        self.shared.cache.in_use() || sql.contains("pgtide:cache")
                    })
                    && Box::pin(self.answer_from_cache(frame, sql)).await))
    }

    /// Whether the result cache may answer this frame (`PARSE`: a Parse or Bind batch,
    /// `QUERY`: a simple query): checked before a cache lookup's future is allocated.
    fn cache_may_answer(&self, frame: &Frame, kind: u8) -> bool {
        let tag_fits = match kind {
            ftag::PARSE => matches!(frame.tag, ftag::PARSE | ftag::BIND),
            _ => frame.tag == ftag::QUERY,
        };
        tag_fits
            && self.mode == PoolMode::Transaction
            && self.status == IDLE
            && self.shared.cache.enabled()
    }

    /// `[routing] transactions = "first_statement"`: a lone BEGIN is answered here and held
    /// until the next statement chooses the backend (a COMMIT or ROLLBACK right after it is
    /// answered here too: the transaction was empty).
    pub(super) fn defer_begin(&mut self, frame: &Frame, sql: Option<&str>) -> bool {
        use pgtide_sql::{StatementKind as K, TransactionStatement as T};
        if frame.tag != ftag::QUERY
            || self.mode != PoolMode::Transaction
            || !self.router.active()
            || self.shared.config.load().routing.transactions
                != pgtide_config::TransactionRouting::FirstStatement
        {
            return false;
        }
        let classifier = self.shared.classifier.load();
        let analysis =
            self.query_analysis
                .of(frame, sql, &classifier, pgtide_sql::ClassifyMode::Yes);
        let (Some(sql), Some(c)) = (sql, analysis.and_then(|a| a.classification.clone())) else {
            return false;
        };
        if c.statements != 1 || c.hint.is_some() {
            return false;
        }
        let (tag, status) = match (c.kind, self.deferred_begin.is_some()) {
            (K::Transaction(T::Begin { read_only: false }), false) => {
                self.deferred_begin = Some(sql.to_string());
                ("BEGIN", IN_TRANSACTION)
            }
            (K::Transaction(T::Commit), true) => ("COMMIT", IDLE),
            (K::Transaction(T::Rollback), true) => ("ROLLBACK", IDLE),
            _ => return false,
        };
        if status == IDLE {
            self.deferred_begin = None;
        }
        self.status = status;
        let mut reply = BytesMut::with_capacity(24);
        encode::command_complete(&mut reply, tag);
        encode::ready_for_query(&mut reply, status);
        self.replies.synthetic(reply.freeze());
        true
    }

    /// `SET pgtide.route = ...` is pgtide's own setting: answered here, never sent on.
    /// `sql`: the text of a Query frame (None for any other message).
    pub(super) fn answer_route_setting(&mut self, sql: Option<&str>) -> bool {
        if sql.is_none() || self.replies.awaits_ready() {
            return false;
        }
        let Some(route) = sql.and_then(SessionRoute::from_statement) else {
            return false;
        };
        self.session_route = route;
        let mut reply = BytesMut::with_capacity(16);
        encode::command_complete(&mut reply, "SET");
        encode::ready_for_query(&mut reply, self.status);
        self.replies.synthetic(reply.freeze());
        true
    }

    /// Between transactions in transaction mode, a few messages need no backend: a Parse of a
    /// statement the pool knows, a Close, and the Sync or Flush after only such messages.
    /// Answering them here keeps a client that prepares synchronously from waiting for a
    /// backend (possibly held by another client waiting on that very client's thread).
    pub(super) fn answer_without_backend(&mut self, frame: &Frame) -> bool {
        if self.mode != PoolMode::Transaction {
            return false;
        }
        match frame.tag {
            ftag::PARSE => {
                let search_path = self.search_path();
                self.statements.parse_without_backend(
                    frame,
                    search_path.as_deref(),
                    &self.pool,
                    &mut self.replies,
                )
            }
            ftag::CLOSE => self
                .statements
                .close_without_backend(frame, &mut self.replies),
            ftag::SYNC => {
                let mut ready = BytesMut::with_capacity(6);
                encode::ready_for_query(&mut ready, IDLE);
                self.replies.synthetic(ready.freeze());
                true
            }
            ftag::FLUSH => true,
            _ => false,
        }
    }

    /// A cacheable extended-protocol batch (`[Parse] Bind [Describe] Execute Sync`) outside a
    /// transaction: a hit is answered here — ParseComplete and BindComplete as the batch needs,
    /// the stored reply, ReadyForQuery — without a backend; a miss runs with its reply captured.
    pub(super) async fn answer_batch_from_cache(&mut self, frame: &Frame) -> bool {
        // Without rules or entries only a hint makes it cacheable: a Parse carrying one (a
        // Bind of a named statement waits until something is cached).
        if !self.cache_may_answer(frame, ftag::PARSE)
            || !(self.shared.cache.in_use()
                || (frame.tag == ftag::PARSE && has_cache_hint(frame.body())))
        {
            return false;
        }
        let Some(batch) = crate::session::result_cache::batch(frame, &self.crbuf) else {
            return false;
        };
        let text = match batch.parse {
            Some((_, query)) => Some((query.to_string(), batch.parse_types.clone())),
            None => self
                .statements
                .text_of(batch.bind.statement)
                .zip(self.statements.param_types_of(batch.bind.statement)),
        };
        let Some((text, types)) = text else {
            return false;
        };
        let classification = self.shared.classifier.load().classify(&text);
        let lookup = crate::session::result_cache::lookup_batch(
            &self.shared.cache,
            self.shared.insights.fingerprint_id(&text),
            (&text, types),
            &classification,
            &self.cache_client(),
            &batch,
        )
        .await;
        let (has_parse, rest_len) = (batch.parse.is_some(), batch.rest_len);
        drop(batch);
        match lookup {
            Some(crate::cache::Lookup::Hit(entry)) => {
                if has_parse {
                    let search_path = self.search_path();
                    self.statements
                        .register_parse(frame, search_path.as_deref());
                }
                self.crbuf.advance(rest_len);
                let mut reply = BytesMut::with_capacity(entry.reply.len() + 16);
                if has_parse {
                    encode::parse_complete(&mut reply);
                }
                encode::bind_complete(&mut reply);
                reply.extend_from_slice(&entry.reply);
                encode::ready_for_query(&mut reply, IDLE);
                self.replies.synthetic(reply.freeze());
                self.insights.record_cache_hit(
                    &text,
                    crate::session::result_cache::rows_in(&entry.reply),
                    &self.shared.insights,
                    &self.pool.database,
                    &self.pool.user,
                    &self.registered.info.application_name,
                );
                true
            }
            Some(crate::cache::Lookup::Miss(guard)) => {
                self.cache_capture =
                    Some(Box::new(crate::session::result_cache::Capture::new(guard)));
                false
            }
            None => false,
        }
    }

    /// A cacheable simple query outside a transaction: a hit is answered here without a
    /// backend (true); a miss goes on to a backend with its reply captured to fill the entry.
    pub(super) async fn answer_from_cache(&mut self, frame: &Frame, sql: Option<&str>) -> bool {
        let Some(sql) = sql.filter(|_| self.cache_may_answer(frame, ftag::QUERY)) else {
            return false;
        };
        let analysis = self.query_analysis.of(
            frame,
            Some(sql),
            &self.shared.classifier.load(),
            pgtide_sql::ClassifyMode::Yes,
        );
        let Some((Some(classification), fingerprint_id)) =
            analysis.map(|a| (a.classification.clone(), a.fingerprint.id))
        else {
            return false;
        };
        let lookup = crate::session::result_cache::lookup(
            &self.shared.cache,
            fingerprint_id,
            sql,
            &classification,
            &self.cache_client(),
        )
        .await;
        match lookup {
            Some(crate::cache::Lookup::Hit(entry)) => {
                self.insights.record_cache_hit(
                    sql,
                    crate::session::result_cache::rows_in(&entry.reply),
                    &self.shared.insights,
                    &self.pool.database,
                    &self.pool.user,
                    &self.registered.info.application_name,
                );
                let mut reply = BytesMut::with_capacity(entry.reply.len() + 6);
                reply.extend_from_slice(&entry.reply);
                encode::ready_for_query(&mut reply, IDLE);
                self.replies.synthetic(reply.freeze());
                true
            }
            Some(crate::cache::Lookup::Miss(guard)) => {
                self.cache_capture =
                    Some(Box::new(crate::session::result_cache::Capture::new(guard)));
                false
            }
            None => false,
        }
    }

    pub(super) fn cache_client(&self) -> crate::session::result_cache::Client<'_> {
        crate::session::result_cache::Client {
            database: &self.pool.database,
            user: &self.pool.user,
            state: &self.state,
            min_lsn: self.router.read_your_writes_lsn(),
            target: &self.pool.target,
        }
    }
}

/// Whether a Parse (or any frame body) carries a `pgtide:cache` hint: asked of every Parse
/// while nothing is cached, so a prepared searcher (a naive scan cost ~10 instructions a byte).
fn has_cache_hint(body: &[u8]) -> bool {
    static FINDER: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"pgtide:cache"));
    FINDER.find(body).is_some()
}
