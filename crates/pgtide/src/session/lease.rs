//! The lease phase: a backend for the transaction a client message opens (routing, checkout,
//! PAUSE), made the client's (cancel target, settings replayed, checked role first).

use super::*;

impl Session {
    /// Leases a backend for the transaction this frame starts. On failure the client gets the
    /// error (and, for a simple query, ReadyForQuery) and the session goes on: false is returned.
    pub(super) async fn lease_backend(&mut self, frame: &Frame, sql: Option<&str>) -> Result<bool> {
        if self.shared.phase() != Phase::Running {
            return Err(ProxyError::ShuttingDown);
        }
        // pgtide's answers to what came before belong to no backend: out before this lease.
        self.flush_synthetic();
        if self.shared.pause.is_paused(&self.pool.database) {
            // PAUSE (admin console): wait for RESUME; what the client sent waits with it.
            Box::pin(self.shared.pause.wait(&self.pool.database)).await;
        }
        let lease = if self.mode == PoolMode::Transaction && self.router.active() {
            let intent = self.intent_of(frame, sql);
            Box::pin(self.router.lease(&self.shared, intent, self.session_route)).await
        } else {
            self.pool.checkout().await
        };
        let lease = match lease {
            Ok(lease) => {
                self.replica_run = if self.router.on_replica() {
                    ReplicaRun::Reading(ReplicaReplay::default())
                } else {
                    ReplicaRun::Idle
                };
                self.lease = Some(lease);
                self.attach().await
            }
            Err(e) => Err(e),
        };
        match lease {
            Ok(()) => {
                if let Some(begin) = self.deferred_begin.take() {
                    // The held BEGIN opens the transaction where its first statement runs.
                    self.replica_run = ReplicaRun::Idle;
                    crate::session::prepared::query_or_refusal(&mut self.to_backend, &begin);
                    self.replies.expect_swallowed_query();
                }
                Ok(true)
            }
            Err(e) => {
                tracing::warn!(database = %self.pool.database, error = %e, side = %e.side(),
                    retry_safe = %e.retry_safe(), "no backend for client");
                e.write_to(&mut self.to_client);
                match frame.tag {
                    ftag::QUERY | ftag::FUNCTION_CALL => {
                        encode::ready_for_query(&mut self.to_client, IDLE)
                    }
                    ftag::SYNC => encode::ready_for_query(&mut self.to_client, IDLE),
                    _ => self.intake = Intake::SkipUntilSync,
                }
                Ok(false)
            }
        }
    }

    /// Makes the backend just leased (`self.lease`) this client's: cancel requests now reach
    /// it, and its session settings are brought in line with the client's (one swallowed query,
    /// in the same write as the client's first message). A role the client chose is set and
    /// checked first: if the backend refuses it, the lease is given back (`self.lease` is None
    /// again) and nothing of the client's runs. The lease is in `self`, not an argument, so the
    /// handlers' futures carry no room for one.
    pub(super) async fn attach(&mut self) -> Result<()> {
        let Some(lease) = self.lease.as_ref() else {
            return Err(no_lease());
        };
        if let Some(sql) =
            crate::session::settings_replay::checked_sync_sql(&self.state, &lease.conn.settings)
        {
            Box::pin(self.replay_role(sql)).await?;
        }
        let Some(lease) = self.lease.as_ref() else {
            return Err(no_lease());
        };
        let target = lease.conn.cancel_target();
        let backend = (lease.pool.label.clone(), lease.conn.id);
        // A backend whose own default makes backslashes escapes (ALTER ROLE/DATABASE ... SET
        // standard_conforming_strings = off) hides statements from pgtide's lexer.
        let escapes = lease
            .conn
            .params
            .get("standard_conforming_strings")
            .map(String::as_str)
            == Some("off");
        self.cancel.set_target(Some(target)).await;
        self.registered.info.update(|live| {
            live.state = "active";
            live.backend = Some(backend);
            live.transactions += 1;
        });
        self.status = IDLE;
        self.statements.on_attach();
        if escapes
            && !self
                .state
                .settings()
                .contains_key("standard_conforming_strings")
        {
            let pins_before = self.state.pins().len();
            let observed = self.state.backslash_escapes();
            self.note_pins(pins_before, observed);
        }
        self.sync_settings();
        Ok(())
    }

    /// Sets and checks the role the client chose on the leased backend before anything of the
    /// client's runs there. On failure the lease is given back (or discarded if its state is
    /// unknown).
    async fn replay_role(&mut self, sql: String) -> Result<()> {
        let Some(lease) = self.lease.as_mut() else {
            return Err(no_lease());
        };
        let outcome = lease.conn.run_simple(&[&sql]).await;
        if let Ok((IDLE, None)) = outcome {
            crate::session::settings_replay::checked_synced(&self.state, &mut lease.conn.settings);
            return Ok(());
        }
        let Some(lease) = self.lease.take() else {
            return Err(no_lease());
        };
        let pool = lease.pool.clone();
        match outcome {
            Ok((IDLE, Some((code, message)))) => {
                // One implicit transaction: the failure left the backend as it was.
                pool.release(lease);
                Err(ProxyError::SettingReplay { code, message })
            }
            Ok(_) => {
                pool.discard(lease);
                Err(ProxyError::BackendSetup(
                    "role replay left a transaction".into(),
                ))
            }
            Err(e) => {
                pool.discard(lease);
                Err(e)
            }
        }
    }

    /// Brings the leased backend's session settings in line with the client's (one swallowed
    /// query in the same write as the client's next message). Needed at attach, and on a kept
    /// backend after RESET (which returns the backend to its own default, not to the client's
    /// startup value).
    pub(super) fn sync_settings(&mut self) {
        let Some(lease) = self.lease.as_mut() else {
            return;
        };
        if let Some(sql) =
            crate::session::settings_replay::sync_sql(&self.state, &lease.conn.settings)
        {
            crate::session::prepared::query_or_refusal(&mut self.to_backend, &sql);
            self.replies.expect_swallowed_query();
            crate::session::settings_replay::synced(&self.state, &mut lease.conn.settings);
            // A simple query replaces the backend's unnamed statement.
            self.statements.on_attach();
        }
    }
}

/// A backend was to be leased here and is not: the caller would forward to nothing. Never
/// expected (the lease is set just before, and only a failure takes it back, with its own
/// error); an error, not an `Ok` the caller would take for a backend.
fn no_lease() -> ProxyError {
    ProxyError::BackendSetup("no backend leased".into())
}
