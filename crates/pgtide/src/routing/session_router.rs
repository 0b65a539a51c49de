//! One client's routing across the backends of its database: which backend its next
//! transaction leases from, and what it wrote (so read-your-writes can keep its reads off
//! replicas that have not replayed its last write).

use std::sync::Arc;
use std::time::{Duration, Instant};

use pgtide_config::ReadYourWrites;

use crate::error::{ProxyError, Result};
use crate::metrics_names as m;
use crate::routing::{self, ClientWrites, Decision, Intent, SessionRoute};
use crate::server::shared::Shared;
use crate::upstream::conn::data_row_text;
use crate::upstream::pool::{Lease, Pool};
use crate::upstream::topology::{parse_lsn, Topology};

/// What pgtide asks the primary after a client's write commits: the insert position, which is
/// past the commit record even when commits do not wait for the WAL write
/// (`synchronous_commit = off`), unlike `pg_current_wal_lsn()`.
pub(crate) const WAL_POSITION_SQL: &str = "SELECT pg_current_wal_insert_lsn()::text";

pub(crate) struct SessionRouter {
    pub topology: Arc<Topology>,
    database: String,
    user: String,
    /// An `[auth] query` user logs in to every backend with what its login proved.
    pass_through: Option<Box<pgtide_config::PassThrough>>,
    /// The pool of each backend, made on first use.
    pools: Vec<Option<Arc<Pool>>>,
    writes: ClientWrites,
    /// The current lease is on a replica.
    on_replica: bool,
    /// The current transaction (on the primary) wrote.
    wrote: bool,
    /// pgtide asked the primary for its WAL position and waits for the row.
    capturing_lsn: bool,
    /// A new batch waits in the client's buffer for the replica's earlier batch to end.
    held: bool,
    /// The replica refused the read being re-run on the primary as a write.
    refused_write: bool,
}

impl SessionRouter {
    /// The router of a session whose primary pool is `primary`.
    pub(crate) fn new(topology: Arc<Topology>, primary: &Pool) -> SessionRouter {
        let n = topology.backends.len();
        SessionRouter {
            topology,
            database: primary.database.clone(),
            user: primary.user.clone(),
            pass_through: primary.target.pass_through.clone().map(Box::new),
            pools: vec![None; n],
            writes: ClientWrites::default(),
            on_replica: false,
            wrote: false,
            capturing_lsn: false,
            held: false,
            refused_write: false,
        }
    }

    /// Whether routing has anything to decide (a database with replicas).
    pub(crate) fn active(&self) -> bool {
        self.topology.has_replicas()
    }

    pub(crate) fn on_replica(&self) -> bool {
        self.on_replica
    }

    fn pool(&mut self, shared: &Shared, index: usize) -> Result<Arc<Pool>> {
        if let Some(pool) = self.pools.get(index).cloned().flatten() {
            return Ok(pool);
        }
        let config = shared.config.load();
        let gone = || ProxyError::UnknownUserOrDatabase("the database or user was removed".into());
        let db = config.database(&self.database).ok_or_else(gone)?;
        let user = match &self.pass_through {
            Some(keys) => {
                let mut user = pgtide_config::UserConfig::new(self.user.clone(), None);
                user.pass_through = Some((**keys).clone());
                user
            }
            None => config.user(&self.user).ok_or_else(gone)?,
        };
        let backend = self.topology.backends.get(index).ok_or_else(gone)?;
        let pool = shared.backend_pool(&config, db, &user, &backend.url);
        if let Some(slot) = self.pools.get_mut(index) {
            *slot = Some(pool.clone());
        }
        Ok(pool)
    }

    /// Leases a backend for a transaction that `intent` opens. A replica that cannot give a
    /// connection is skipped for the primary (a read is never refused for that).
    pub(crate) async fn lease(
        &mut self,
        shared: &Shared,
        intent: Intent,
        session: SessionRoute,
    ) -> Result<Lease> {
        let config = shared.config.load_full();
        if intent.read && !self.topology.checked_once() {
            // Until the first health checks answer no replica qualifies: a read waits for
            // them (bounded) rather than going to the primary for want of news.
            let limit =
                crate::upstream::health::check_timeout(&config, false) + Duration::from_millis(500);
            self.topology.first_round(limit).await;
        }
        let primary = self.topology.primary();
        let chosen = match routing::decide(
            &self.topology,
            &config.routing,
            &self.writes,
            session,
            intent,
        ) {
            Decision::Backend(i) => i,
            Decision::NoReplica => return Err(ProxyError::NoReplica(self.database.clone())),
        };
        let pool = self.pool(shared, chosen)?;
        match pool.checkout().await {
            Ok(lease) => {
                self.on_replica = chosen != primary;
                Ok(lease)
            }
            Err(e) if chosen != primary => {
                tracing::warn!(backend = %self.topology.backends[chosen].label, error = %e,
                    side = %e.side(), retry_safe = %e.retry_safe(),
                    "replica gave no connection: reading from the primary");
                metrics::counter!(m::REPLICA_RETRIES_TOTAL).increment(1);
                let lease = self.pool(shared, primary)?.checkout().await?;
                self.on_replica = false;
                Ok(lease)
            }
            Err(e) => Err(e),
        }
    }

    /// A lease for a read to run again elsewhere: on the primary.
    pub(crate) async fn lease_primary(&mut self, shared: &Shared) -> Result<Lease> {
        let primary = self.topology.primary();
        let lease = self.pool(shared, primary)?.checkout().await?;
        self.on_replica = false;
        self.topology.note_primary_read();
        Ok(lease)
    }

    /// Whether a new batch must wait before it is read (issue 11, item 8): the lease is on a
    /// replica that was chosen for an earlier batch, and that batch is still running.
    /// `at_batch_start`: the next client message starts a batch (the last one forwarded was a
    /// Sync or a simple Query); `running`: a ReadyForQuery is still owed.
    ///
    /// Every later batch waits, reads included: a replica is leased for one batch at a time,
    /// so a write never lands on it, a refusal (25006) or a lost replica can re-run exactly
    /// that one batch on the primary, and the next batch is routed on its own when the lease
    /// goes back at ReadyForQuery. Inside a READ ONLY transaction on a replica the lease is
    /// kept (status 'T') and the next batch goes on to it once the earlier one answered.
    pub(crate) fn hold_next_batch(&mut self, at_batch_start: bool, running: bool) -> bool {
        self.held = self.on_replica && at_batch_start && running;
        self.held
    }

    /// Whether client messages wait for the replica's batch to end.
    pub(crate) fn held(&self) -> bool {
        self.held
    }

    /// Backend messages arrived: a held batch is looked at again (true when one was held).
    pub(crate) fn take_held(&mut self) -> bool {
        std::mem::take(&mut self.held)
    }

    /// The replica refused the read as a write (25006): it is re-run on the primary, and
    /// counts as a write there.
    pub(crate) fn refused_as_write(&mut self) {
        self.refused_write = true;
    }

    /// Whether the read now re-run on the primary was refused as a write (asked once).
    pub(crate) fn take_refused_write(&mut self) -> bool {
        std::mem::take(&mut self.refused_write)
    }

    /// The client's statement on the primary may write.
    pub(crate) fn note_write(&mut self) {
        if !self.on_replica {
            self.wrote = true;
        }
    }

    /// The client's transaction ended (ReadyForQuery 'I'). After a write, returns the query
    /// that learns the primary's WAL position for read-your-writes (lsn mode).
    pub(crate) fn after_transaction(&mut self, mode: ReadYourWrites) -> Option<&'static str> {
        if !std::mem::take(&mut self.wrote) || !self.active() {
            return None;
        }
        self.writes.at = Some(Instant::now());
        if mode == ReadYourWrites::Lsn {
            // Until the position is known no replica qualifies (if it never comes, the
            // client reads from the primary: late, never stale).
            self.writes.lsn = Some(u64::MAX);
            self.capturing_lsn = true;
            return Some(WAL_POSITION_SQL);
        }
        None
    }

    /// The client's read-your-writes position (`u64::MAX` while it is being learned), for
    /// the result cache.
    pub(crate) fn read_your_writes_lsn(&self) -> Option<u64> {
        self.writes.lsn
    }

    pub(crate) fn capturing_lsn(&self) -> bool {
        self.capturing_lsn
    }

    /// The row of [`WAL_POSITION_SQL`].
    pub(crate) fn on_wal_position(&mut self, data_row: &[u8]) {
        let lsn = data_row_text(data_row)
            .into_iter()
            .next()
            .flatten()
            .and_then(|text| parse_lsn(&text));
        if let Some(lsn) = lsn {
            // The position after the latest write covers every earlier one.
            self.writes.lsn = Some(lsn);
        }
    }

    /// pgtide's query for the WAL position is answered.
    pub(crate) fn wal_position_done(&mut self) {
        self.capturing_lsn = false;
    }
}
