//! What a client's session looks like to the client, so transaction mode can carry it across
//! backends: session settings (startup parameters and SET / RESET / set_config) are replayed as
//! a difference on whichever backend serves the next transaction, and whatever cannot be carried
//! (LISTEN, session advisory locks, temp tables, WITH HOLD cursors, SQL-level PREPARE, ...) pins
//! the client to its backend until it is undone.
//!
//! Settings change transactionally in PostgreSQL: a SET inside a transaction that rolls back (or
//! a failing implicit transaction) disappears. Changes are therefore pending until the
//! ReadyForQuery that ends the transaction, and dropped if it failed or rolled back. The same
//! holds for what undoes a pin (UNLISTEN *, DISCARD TEMP, ...): a pin is taken at once and
//! given up only when the statement that undoes it committed, so a doubt keeps the client
//! pinned. Recognising SQL is how pins are taken; the server's own reports (ParameterStatus)
//! are checked against it, and a change nobody announced pins the client too (see
//! docs/correctness.md).

use std::collections::{BTreeMap, BTreeSet};

use pgtide_sql::{SessionEffect, TxControl};

mod batches;
mod reports;

/// Startup parameters that are not settings: who connects where, and protocol options.
const NOT_SETTINGS: &[&str] = &["user", "database", "replication", "options"];

/// Session settings by lowercase GUC name, each value as SQL text for `SET name TO value`.
pub(crate) type Settings = BTreeMap<String, String>;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Change {
    Set(String, String),
    Reset(String),
    ResetAll,
    /// The state behind a pin is undone (or, with None, everything: DISCARD ALL).
    Unpin(Option<PinReason>),
    /// A pin taken (it already holds; recorded so that an undo earlier in the same
    /// transaction does not cancel it at commit).
    Pin(PinReason),
    /// COMMIT / ROLLBACK / PREPARE TRANSACTION (also AND CHAIN, and inside a multi-statement
    /// query): what came before it ends with it. Its CommandComplete tag says how.
    End,
    /// The end of a client batch (a Query or a Sync): its ReadyForQuery settles what came
    /// before it.
    BatchEnd,
    /// ROLLBACK TO SAVEPOINT, whose CommandComplete also says ROLLBACK: it ends nothing.
    RollbackTo,
    /// SAVEPOINT name, and whether the transaction had failed when it was set (ROLLBACK TO
    /// undoes the changes after it and a failure after it).
    Savepoint(String, bool),
}

/// Who the client is, in the order they must be set.
pub(crate) const IDENTITY: [&str; 2] = ["session_authorization", "role"];

/// Settings PostgreSQL reports (ParameterStatus) that are not the client's session state.
const SERVER_REPORTS: &[&str] = &[
    "in_hot_standby",
    "server_version",
    "server_encoding",
    "integer_datetimes",
];

/// Why a client is pinned to its backend (shown by SHOW CLIENTS, counted in a metric).
pub(crate) type PinReason = &'static str;

/// `standard_conforming_strings`: off makes backslashes escapes in plain strings, which
/// pgtide's lexer does not follow, so a client with it off is pinned (also its pin reason).
const SCS: &str = "standard_conforming_strings";

/// A search_path that puts the session's temporary schema first (and so creates unqualified
/// objects there); its pin reason.
const TEMP_FIRST: &str = "search_path_pg_temp";

#[derive(Debug, Default)]
pub(crate) struct ClientState {
    startup: Settings,
    settings: Settings,
    pending: Vec<Change>,
    /// The statement or transaction being run failed or rolled back: its changes are void.
    failed: bool,
    pins: BTreeSet<PinReason>,
    /// Settings a statement of the running transaction named (SET, SET LOCAL, RESET); `all`
    /// after RESET ALL / DISCARD ALL. PostgreSQL's reports of other settings mean something
    /// pgtide did not read changed them.
    announced: BTreeSet<String>,
    announced_all: bool,
    /// Of those, the settings changed for the session (SET / RESET, not SET LOCAL).
    announced_session: BTreeSet<String>,
    /// Reported settings of the running transaction: the value before its first report, and
    /// the last reported. A SET LOCAL reverts by the end; a function's session-level change
    /// does not, and pins even where a SET LOCAL of the same setting announced a report.
    reported: BTreeMap<String, (Option<String>, String)>,
}

/// What the session must do about one statement, beyond forwarding it.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Observed {
    /// The client was newly pinned for this reason.
    pub pinned: Option<PinReason>,
    /// DEALLOCATE ALL / DISCARD ALL statements among those observed.
    pub drops_all: usize,
}

impl ClientState {
    /// The client is idle: no change is pending, the list's room goes back.
    pub(crate) fn release_idle(&mut self) {
        if self.pending.is_empty() && self.pending.capacity() > 0 {
            self.pending = Vec::new();
        }
    }

    /// The session settings a startup packet asks for: every parameter that is not about
    /// the connection itself (PostgreSQL treats the rest as settings), plus `options -c`.
    /// Names that are not plain GUC names are returned as refused, for the caller to report
    /// the way PostgreSQL would (pgtide splices names into SQL only after this check).
    pub(crate) fn from_startup(params: &[(String, String)]) -> Result<ClientState, String> {
        let mut startup = Settings::new();
        let mut add = |name: String, raw: &str| -> Result<(), String> {
            if !pgtide_sql::valid_guc_name(&name) {
                return Err(name);
            }
            // Startup values are raw (like set_config's): a list such as search_path
            // "a, b" must not become the single name 'a, b'.
            let text = pgtide_sql::raw_value_as_set_text(&name, raw).ok_or_else(|| name.clone())?;
            startup.insert(name, text);
            Ok(())
        };
        for (k, v) in params {
            let key = k.to_ascii_lowercase();
            if key == "options" {
                for (name, value) in pgtide_sql::startup_options_to_sets(v) {
                    add(name.to_ascii_lowercase(), &value)?;
                }
            } else if !NOT_SETTINGS.contains(&key.as_str()) && !key.starts_with("_pq_.") {
                add(key, v)?;
            }
        }
        let mut state = ClientState {
            settings: startup.clone(),
            startup,
            ..Default::default()
        };
        state.pins = state.startup_pins();
        Ok(state)
    }

    /// Pins the startup settings alone call for: SQL pgtide cannot read (backslash escapes),
    /// or unqualified objects made temporary (search_path starting with pg_temp).
    fn startup_pins(&self) -> BTreeSet<PinReason> {
        let mut pins = BTreeSet::new();
        if self
            .startup
            .get(SCS)
            .is_some_and(|v| !pgtide_sql::setting_is_on(v))
        {
            pins.insert(SCS);
        }
        if self
            .startup
            .get("search_path")
            .is_some_and(|v| pgtide_sql::search_path_starts_with_temp(v))
        {
            pins.insert(TEMP_FIRST);
        }
        pins
    }

    pub(crate) fn settings(&self) -> &Settings {
        &self.settings
    }

    pub(crate) fn pins(&self) -> &BTreeSet<PinReason> {
        &self.pins
    }

    pub(crate) fn is_pinned(&self) -> bool {
        !self.pins.is_empty()
    }

    /// pgtide knows this client's whole session state: it is carried by the tracked settings
    /// alone, so answers computed for the same settings (the result cache) are the client's.
    pub(crate) fn vouched(&self) -> bool {
        self.pins.is_empty()
    }

    /// Whether pgtide reads the client's SQL as PostgreSQL does: not with
    /// `standard_conforming_strings` off (its own, at startup or by SET, or the backend's
    /// default), where a backslash in a plain string escapes the next character.
    pub(crate) fn lexes_as_sent(&self) -> bool {
        !self.pins.contains(SCS)
    }

    /// The backend's own default turns backslash escapes on: pinned as if the client had.
    pub(crate) fn backslash_escapes(&mut self) -> Observed {
        let mut observed = Observed::default();
        self.pin(SCS, &mut observed);
        observed
    }

    /// The client sent something pgtide cannot read (a query text that is not UTF-8, say):
    /// whatever it did stays with the client's backend.
    pub(crate) fn unreadable(&mut self) -> Observed {
        let mut observed = Observed::default();
        self.pin("untracked_set", &mut observed);
        observed
    }

    /// Notes every session effect of one SQL string (possibly several statements).
    /// `prepare_carried`: its SQL PREPAREs follow the client to any backend, so they do not pin.
    #[cfg(test)]
    pub(crate) fn observe_sql(&mut self, sql: &str, prepare_carried: bool) -> Observed {
        self.observe_effects(&pgtide_sql::all_session_effects(sql), prepare_carried)
    }

    /// [`observe_sql`](Self::observe_sql) of SQL already analysed: its session effects.
    pub(crate) fn observe_effects(
        &mut self,
        effects: &[SessionEffect],
        prepare_carried: bool,
    ) -> Observed {
        let mut observed = Observed::default();
        for effect in effects {
            if prepare_carried && matches!(effect, SessionEffect::Prepare { .. }) {
                continue;
            }
            self.observe(effect.clone(), &mut observed);
        }
        observed
    }

    fn pin(&mut self, reason: PinReason, observed: &mut Observed) {
        if self.pins.insert(reason) {
            observed.pinned = Some(reason);
        }
        self.pending.push(Change::Pin(reason));
    }

    fn observe(&mut self, effect: SessionEffect, observed: &mut Observed) {
        use SessionEffect as E;
        match effect {
            E::Set { name, value } => {
                if name == SCS && !pgtide_sql::setting_is_on(&value) {
                    // Backslashes in plain strings: pgtide can no longer read this client's SQL.
                    self.pin(SCS, observed);
                }
                if name == "search_path" && pgtide_sql::search_path_starts_with_temp(&value) {
                    // Unqualified CREATE TABLE / VIEW / SELECT INTO now makes temporary objects.
                    self.pin(TEMP_FIRST, observed);
                }
                self.announced.insert(name.clone());
                self.announced_session.insert(name.clone());
                self.drop_role_with_authorization(&name);
                self.pending.push(Change::Set(name, value))
            }
            E::SetLocal { name } => {
                self.announced.insert(name);
            }
            E::Reset { name } => {
                self.announced.insert(name.clone());
                self.announced_session.insert(name.clone());
                self.drop_role_with_authorization(&name);
                self.pending.push(Change::Reset(name))
            }
            E::ResetAll => {
                self.announced_all = true;
                self.pending.push(Change::ResetAll)
            }
            E::DiscardAll => {
                // DISCARD ALL is SET SESSION AUTHORIZATION DEFAULT; RESET ALL; ...
                observed.drops_all += 1;
                self.announced_all = true;
                self.pending
                    .push(Change::Reset("session_authorization".into()));
                self.pending.push(Change::Reset("role".into()));
                self.pending.push(Change::ResetAll);
                self.pending.push(Change::Unpin(None));
            }
            E::Deallocate { name: None } => {
                observed.drops_all += 1;
                self.pending.push(Change::Unpin(Some("prepare")))
            }
            E::Prepare { .. } => self.pin("prepare", observed),
            E::Listen { .. } => self.pin("listen", observed),
            E::Unlisten { channel: None } => self.pending.push(Change::Unpin(Some("listen"))),
            E::AdvisoryLock => self.pin("advisory_lock", observed),
            E::AdvisoryUnlockAll => self.pending.push(Change::Unpin(Some("advisory_lock"))),
            E::TempTable => self.pin("temp_table", observed),
            E::DiscardTemp => self.pending.push(Change::Unpin(Some("temp_table"))),
            E::HoldCursor { .. } => self.pin("hold_cursor", observed),
            E::CloseCursor { name: None } => self.pending.push(Change::Unpin(Some("hold_cursor"))),
            E::LoadLibrary => self.pin("load", observed),
            E::UntrackedSet => self.pin("untracked_set", observed),
            E::TransactionControl(TxControl::Rollback | TxControl::Commit) => {
                self.pending.push(Change::End)
            }
            E::TransactionControl(TxControl::Savepoint(name)) => {
                self.pending.push(Change::Savepoint(name, self.failed))
            }
            E::TransactionControl(TxControl::Release(name)) => {
                // The savepoint and those after it go; their changes stay.
                if let Some(i) = self.savepoint(&name) {
                    let mut k = 0;
                    self.pending.retain(|c| {
                        k += 1;
                        k <= i || !matches!(c, Change::Savepoint(..))
                    });
                }
            }
            E::TransactionControl(TxControl::RollbackTo(name)) => {
                if let Some(i) = self.savepoint(&name) {
                    let Change::Savepoint(_, failed) = self.pending[i] else {
                        return;
                    };
                    // The savepoint itself stays; what came after it is undone (but batches
                    // still owed a ReadyForQuery stay owed).
                    let after = self.pending.split_off(i + 1);
                    self.pending.extend(
                        after
                            .into_iter()
                            .filter(|c| matches!(c, Change::BatchEnd | Change::Pin(_))),
                    );
                    self.pending.push(Change::RollbackTo);
                    self.failed = failed;
                }
            }
            E::TransactionControl(TxControl::PrepareTransaction) => self.pending.push(Change::End),
            E::Deallocate { .. }
            | E::Execute { .. }
            | E::Unlisten { .. }
            | E::CloseCursor { .. }
            | E::TransactionControl(_) => {}
        }
    }

    /// Setting the session authorization also ends any SET ROLE (PostgreSQL makes the current
    /// user the new session user).
    fn drop_role_with_authorization(&mut self, name: &str) {
        if name == "session_authorization" {
            self.pending.push(Change::Reset("role".into()));
        }
    }

    /// The backend reported an error: the failing statement's (or transaction's) changes void.
    pub(crate) fn on_error(&mut self) {
        self.failed = true;
        // PostgreSQL skips the rest of the batch: its COMMITs and ROLLBACKs never run.
        let batch = self.batch_len();
        let mut i = 0;
        self.pending.retain(|c| {
            i += 1;
            i > batch || !matches!(c, Change::End | Change::RollbackTo)
        });
    }

    /// A CommandComplete of the client's: COMMIT, ROLLBACK and PREPARE TRANSACTION end what
    /// came before them, committed only when PostgreSQL says COMMIT (a COMMIT of a failed
    /// transaction answers ROLLBACK).
    /// `tag`: the CommandComplete's command tag.
    pub(crate) fn on_command_complete(&mut self, backend: &mut Settings, tag: &str) {
        let committed = match tag {
            "COMMIT" => true,
            "ROLLBACK" | "PREPARE TRANSACTION" => false,
            _ => return,
        };
        let batch = self.batch_len();
        let Some(end) = self.pending[..batch]
            .iter()
            .position(|c| matches!(c, Change::End | Change::RollbackTo))
        else {
            return;
        };
        if self.pending[end] == Change::RollbackTo {
            // Its effect on what came before was applied when it was sent.
            self.pending.remove(end);
            return;
        }
        let ended: Vec<Change> = self.pending.drain(..=end).collect();
        self.settle(ended, committed, backend);
    }

    /// Where the latest savepoint `name` of the running transaction is in `pending`.
    fn savepoint(&self, name: &str) -> Option<usize> {
        self.pending
            .iter()
            .rposition(|c| matches!(c, Change::Savepoint(n, _) if n == name))
    }

    /// A ReadyForQuery: outside a transaction, pending changes either took effect or were
    /// undone. Returns the changes that took effect, for the backend's own record.
    pub(crate) fn on_ready(&mut self, status: u8, backend: &mut Settings) -> Observed {
        let mut observed = Observed::default();
        let batch = self.batch_len();
        if batch < self.pending.len() {
            self.pending.remove(batch);
        }
        if status != pgtide_wire::status::IDLE {
            return observed;
        }
        // A reported setting that ended the transaction changed, with no SET or RESET of it
        // for the session: a function changed it (a SET LOCAL would have reverted).
        let changed_unseen = self.reported.iter().any(|(name, (before, last))| {
            before.as_deref() != Some(last.as_str())
                && !self.announced_all
                && !self.announced_session.contains(name)
                && !SERVER_REPORTS.contains(&name.as_str())
                && name != "is_superuser"
        });
        if changed_unseen {
            self.pin("untracked_set", &mut observed);
        }
        self.reported.clear();
        self.announced.clear();
        self.announced_session.clear();
        self.announced_all = false;
        let done: Vec<Change> = self.pending.drain(..batch).collect();
        let committed = !self.failed;
        self.settle(done, committed, backend);
        observed
    }

    /// A transaction ended: its changes take effect if it committed.
    fn settle(&mut self, changes: Vec<Change>, committed: bool, backend: &mut Settings) {
        self.failed = false;
        if !committed {
            // A pin is a doubt: a rollback does not undo it (a session advisory lock taken in
            // a failed transaction is still held).
            for change in changes {
                if let Change::Pin(reason) = change {
                    self.pins.insert(reason);
                }
            }
            return;
        }
        {
            for change in changes {
                match change {
                    Change::Set(name, value) => {
                        self.settings.insert(name.clone(), value.clone());
                        backend.insert(name, value);
                    }
                    Change::Reset(name) => {
                        match self.startup.get(&name) {
                            Some(v) => self.settings.insert(name.clone(), v.clone()),
                            None => self.settings.remove(&name),
                        };
                        // RESET on the backend goes to the backend's own default.
                        backend.remove(&name);
                    }
                    Change::ResetAll => {
                        // RESET ALL leaves the role and session authorization alone.
                        let mut settings = self.startup.clone();
                        for name in IDENTITY {
                            match self.settings.get(name) {
                                Some(v) => settings.insert(name.to_string(), v.clone()),
                                None => settings.remove(name),
                            };
                        }
                        self.settings = settings;
                        backend.retain(|name, _| IDENTITY.contains(&name.as_str()));
                    }
                    Change::Unpin(Some(reason)) => {
                        // Unless a later statement, not yet settled, took the pin again.
                        if !self.pending.contains(&Change::Pin(reason)) {
                            self.pins.remove(reason);
                        }
                    }
                    Change::Pin(reason) => {
                        self.pins.insert(reason);
                    }
                    Change::Unpin(None) => {
                        // DISCARD ALL: back to the startup settings, and their pins if any.
                        self.pins = self.startup_pins();
                    }
                    Change::End | Change::BatchEnd | Change::RollbackTo | Change::Savepoint(..) => {
                    }
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "client_state_tests.rs"]
mod tests;
