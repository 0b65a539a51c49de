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

/// Startup parameters that are not settings: who connects where, and protocol options.
const NOT_SETTINGS: &[&str] = &["user", "database", "replication", "options"];

/// Session settings by lowercase GUC name, each value as SQL text for `SET name TO value`.
pub type Settings = BTreeMap<String, String>;

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
}

/// Who the client is, in the order they must be set.
const IDENTITY: [&str; 2] = ["session_authorization", "role"];

/// Settings PostgreSQL reports (ParameterStatus) that are not the client's session state.
const SERVER_REPORTS: &[&str] = &[
    "in_hot_standby",
    "server_version",
    "server_encoding",
    "integer_datetimes",
];

/// Why a client is pinned to its backend (shown by SHOW CLIENTS, counted in a metric).
pub type PinReason = &'static str;

/// `standard_conforming_strings`: off makes backslashes escapes in plain strings, which
/// pgtide's lexer does not follow, so a client with it off is pinned (also its pin reason).
const SCS: &str = "standard_conforming_strings";

fn is_on(value: &str) -> bool {
    let v = value.trim_matches('\'').to_ascii_lowercase();
    matches!(
        v.as_str(),
        "on" | "true" | "yes" | "1" | "t" | "y" | "tr" | "tru" | "ye"
    )
}

#[derive(Debug, Default)]
pub struct ClientState {
    startup: Settings,
    settings: Settings,
    pending: Vec<Change>,
    /// The statement or transaction being run failed or rolled back: its changes are void.
    failed: bool,
    /// Open savepoints: name, how many pending changes came before it, and whether the
    /// transaction had failed then (ROLLBACK TO undoes later changes and a later failure).
    savepoints: Vec<(String, usize, bool)>,
    pins: BTreeSet<PinReason>,
    /// Settings a statement of the running transaction named (SET, SET LOCAL, RESET); `all`
    /// after RESET ALL / DISCARD ALL. PostgreSQL's reports of other settings mean something
    /// pgtide did not read changed them.
    announced: BTreeSet<String>,
    announced_all: bool,
}

/// What the session must do about one statement, beyond forwarding it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// The client was newly pinned for this reason.
    pub pinned: Option<PinReason>,
}

impl ClientState {
    /// The session settings a startup packet asks for: every parameter that is not about
    /// the connection itself (PostgreSQL treats the rest as settings), plus `options -c`.
    /// Names that are not plain GUC names are returned as refused, for the caller to report
    /// the way PostgreSQL would (pgtide splices names into SQL only after this check).
    pub fn from_startup(params: &[(String, String)]) -> Result<ClientState, String> {
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
        if state.settings.get(SCS).is_some_and(|v| !is_on(v)) {
            state.pins.insert(SCS);
        }
        Ok(state)
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn pins(&self) -> &BTreeSet<PinReason> {
        &self.pins
    }

    pub fn is_pinned(&self) -> bool {
        !self.pins.is_empty()
    }

    /// pgtide knows this client's whole session state: it is carried by the tracked settings
    /// alone, so answers computed for the same settings (the result cache) are the client's.
    pub fn vouched(&self) -> bool {
        self.pins.is_empty()
    }

    /// PostgreSQL reported a setting's new value while the client's statements ran. A
    /// reported setting no statement named was changed where pgtide could not see it (inside a
    /// function, say): the client is pinned, its backend now holds state pgtide cannot carry.
    pub fn on_parameter_status(&mut self, name: &str) -> Observed {
        let name = name.to_ascii_lowercase();
        let mut observed = Observed::default();
        let role_changed = ["role", "session_authorization"]
            .iter()
            .any(|r| self.announced.contains(*r));
        let expected = self.announced_all
            || self.announced.contains(&name)
            || SERVER_REPORTS.contains(&name.as_str())
            || (name == "is_superuser" && role_changed);
        if !expected {
            self.pin("untracked_set", &mut observed);
        }
        observed
    }

    /// Notes every session effect of one SQL string (possibly several statements).
    /// `prepare_carried`: its SQL PREPAREs follow the client to any backend, so they do not pin.
    pub fn observe_sql(&mut self, sql: &str, prepare_carried: bool) -> Observed {
        let mut observed = Observed::default();
        for effect in pgtide_sql::all_session_effects(sql) {
            if prepare_carried && matches!(effect, SessionEffect::Prepare { .. }) {
                continue;
            }
            self.observe(effect, &mut observed);
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
                if name == SCS && !is_on(&value) {
                    // Backslashes in plain strings: pgtide can no longer read this client's SQL.
                    self.pin(SCS, observed);
                }
                self.announced.insert(name.clone());
                self.drop_role_with_authorization(&name);
                self.pending.push(Change::Set(name, value))
            }
            E::SetLocal { name } => {
                self.announced.insert(name);
            }
            E::Reset { name } => {
                self.announced.insert(name.clone());
                self.drop_role_with_authorization(&name);
                self.pending.push(Change::Reset(name))
            }
            E::ResetAll => {
                self.announced_all = true;
                self.pending.push(Change::ResetAll)
            }
            E::DiscardAll => {
                // DISCARD ALL is SET SESSION AUTHORIZATION DEFAULT; RESET ALL; ...
                self.announced_all = true;
                self.pending
                    .push(Change::Reset("session_authorization".into()));
                self.pending.push(Change::Reset("role".into()));
                self.pending.push(Change::ResetAll);
                self.pending.push(Change::Unpin(None));
            }
            E::Deallocate { name: None } => self.pending.push(Change::Unpin(Some("prepare"))),
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
                self.savepoints
                    .push((name, self.pending.len(), self.failed))
            }
            E::TransactionControl(TxControl::Release(name)) => {
                if let Some(i) = self.savepoints.iter().rposition(|(n, ..)| *n == name) {
                    self.savepoints.truncate(i);
                }
            }
            E::TransactionControl(TxControl::RollbackTo(name)) => {
                if let Some(i) = self.savepoints.iter().rposition(|(n, ..)| *n == name) {
                    let (_, pending, failed) = self.savepoints[i];
                    // The savepoint itself stays; what came after it is undone (but batches
                    // still owed a ReadyForQuery stay owed).
                    self.savepoints.truncate(i + 1);
                    let after = self.pending.split_off(pending.min(self.pending.len()));
                    self.pending
                        .extend(after.into_iter().filter(|c| *c == Change::BatchEnd));
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
    pub fn on_error(&mut self) {
        self.failed = true;
        // PostgreSQL skips the rest of the batch: its COMMITs and ROLLBACKs never run.
        let batch = self.batch_len();
        let mut i = 0;
        self.pending.retain(|c| {
            i += 1;
            i > batch || *c != Change::End
        });
    }

    /// A client batch (Query, Sync, FunctionCall) went to the backend.
    pub fn batch_sent(&mut self) {
        self.pending.push(Change::BatchEnd);
    }

    /// How many pending changes belong to the oldest unanswered batch.
    fn batch_len(&self) -> usize {
        self.pending
            .iter()
            .position(|c| *c == Change::BatchEnd)
            .unwrap_or(self.pending.len())
    }

    /// A CommandComplete of the client's: COMMIT, ROLLBACK and PREPARE TRANSACTION end what
    /// came before them, committed only when PostgreSQL says COMMIT (a COMMIT of a failed
    /// transaction answers ROLLBACK).
    pub fn on_command_complete(&mut self, backend: &mut Settings, tag: &[u8]) {
        let committed = match tag {
            b"COMMIT\0" => true,
            b"ROLLBACK\0" | b"PREPARE TRANSACTION\0" => false,
            _ => return,
        };
        let batch = self.batch_len();
        let Some(end) = self.pending[..batch].iter().position(|c| *c == Change::End) else {
            return;
        };
        let ended: Vec<Change> = self.pending.drain(..=end).collect();
        self.settle(ended, committed, backend);
        self.savepoints.retain(|sp| sp.1 > end);
        for sp in &mut self.savepoints {
            sp.1 -= end + 1;
        }
    }

    /// A ReadyForQuery: outside a transaction, pending changes either took effect or were
    /// undone. Returns the changes that took effect, for the backend's own record.
    pub fn on_ready(&mut self, status: u8, backend: &mut Settings) {
        let batch = self.batch_len();
        if batch < self.pending.len() {
            self.pending.remove(batch);
        }
        if status != b'I' {
            return;
        }
        self.announced.clear();
        self.announced_all = false;
        self.savepoints.clear();
        let done: Vec<Change> = self.pending.drain(..batch).collect();
        let committed = !self.failed;
        self.settle(done, committed, backend);
    }

    /// A transaction ended: its changes take effect if it committed.
    fn settle(&mut self, changes: Vec<Change>, committed: bool, backend: &mut Settings) {
        self.failed = false;
        if committed {
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
                        self.pins.remove(reason);
                    }
                    Change::Pin(reason) => {
                        self.pins.insert(reason);
                    }
                    Change::Unpin(None) => {
                        // DISCARD ALL: back to the startup settings, and their pin if any.
                        self.pins.clear();
                        if self.startup.get(SCS).is_some_and(|v| !is_on(v)) {
                            self.pins.insert(SCS);
                        }
                    }
                    Change::End | Change::BatchEnd => {}
                }
            }
        }
    }

    /// The client acts as a role of its choosing (SET ROLE / SESSION AUTHORIZATION): replaying
    /// that can fail long after the client set it (a REVOKE), and the client's statements must
    /// then not run as someone else, so it is replayed apart and checked first
    /// ([`Self::identity_sync_sql`]).
    fn identity_checked(&self) -> bool {
        IDENTITY.iter().any(|n| self.settings.contains_key(*n))
    }

    fn carried_here(&self, name: &str) -> bool {
        !(self.identity_checked() && IDENTITY.contains(&name))
    }

    /// SQL that makes a backend's session settings equal to this client's, or None if they
    /// are; without the role when that is checked apart.
    pub fn sync_sql(&self, backend: &Settings) -> Option<String> {
        let mut sql = String::new();
        for (name, value) in &self.settings {
            if backend.get(name) != Some(value) && self.carried_here(name) {
                sql.push_str(&format!("SET {name} TO {value};"));
            }
        }
        for name in backend.keys() {
            if !self.settings.contains_key(name) && self.carried_here(name) {
                sql.push_str(&format!("RESET {name};"));
            }
        }
        (!sql.is_empty()).then_some(sql)
    }

    /// The backend's record once [`Self::sync_sql`] ran.
    pub fn synced(&self, backend: &mut Settings) {
        backend.retain(|name, _| !self.carried_here(name) || self.settings.contains_key(name));
        for (name, value) in &self.settings {
            if self.carried_here(name) {
                backend.insert(name.clone(), value.clone());
            }
        }
    }

    /// SQL that makes the backend act as the client's chosen role, to run and check before
    /// anything of the client's is sent; None if it does already or the client chose none.
    /// Session authorization goes first (setting it resets the role).
    pub fn identity_sync_sql(&self, backend: &Settings) -> Option<String> {
        if !self.identity_checked()
            || IDENTITY
                .iter()
                .all(|n| self.settings.get(*n) == backend.get(*n))
        {
            return None;
        }
        let mut sql = String::new();
        for name in IDENTITY {
            match self.settings.get(name) {
                Some(value) => sql.push_str(&format!("SET {name} TO {value};")),
                None => sql.push_str(&format!("RESET {name};")),
            }
        }
        Some(sql)
    }

    /// The backend now acts as the client's role (after [`Self::identity_sync_sql`] ran).
    pub fn identity_synced(&self, backend: &mut Settings) {
        for name in IDENTITY {
            match self.settings.get(name) {
                Some(v) => backend.insert(name.to_string(), v.clone()),
                None => backend.remove(name),
            };
        }
    }
}

#[cfg(test)]
#[path = "session_state_tests.rs"]
mod tests;
