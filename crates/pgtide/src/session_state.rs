//! What a client's session looks like to the client, so transaction mode can carry it across
//! backends: session settings (startup parameters and SET / RESET / set_config) are replayed as
//! a difference on whichever backend serves the next transaction, and whatever cannot be carried
//! (LISTEN, session advisory locks, temp tables, WITH HOLD cursors, SQL-level PREPARE, ...) pins
//! the client to its backend until it is undone.
//!
//! Settings change transactionally in PostgreSQL: a SET inside a transaction that rolls back (or
//! a failing implicit transaction) disappears. Changes are therefore pending until the
//! ReadyForQuery that ends the transaction, and dropped if it failed or rolled back.

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
}

/// Why a client is pinned to its backend (shown by SHOW CLIENTS, counted in a metric).
pub type PinReason = &'static str;

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
}

/// What the session must do about one statement, beyond forwarding it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// DISCARD ALL / DEALLOCATE ALL: the backend drops every prepared statement.
    pub drops_prepared: bool,
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
        Ok(ClientState {
            settings: startup.clone(),
            startup,
            ..Default::default()
        })
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
    }

    fn observe(&mut self, effect: SessionEffect, observed: &mut Observed) {
        use SessionEffect as E;
        match effect {
            E::Set { name, value } => self.pending.push(Change::Set(name, value)),
            E::Reset { name } => self.pending.push(Change::Reset(name)),
            E::ResetAll => self.pending.push(Change::ResetAll),
            E::DiscardAll => {
                self.pending.push(Change::ResetAll);
                self.pins.clear();
                observed.drops_prepared = true;
            }
            E::Deallocate { name: None } => {
                self.pins.remove("prepare");
                observed.drops_prepared = true;
            }
            E::Prepare { .. } => self.pin("prepare", observed),
            E::Listen { .. } => self.pin("listen", observed),
            E::Unlisten { channel: None } => {
                self.pins.remove("listen");
            }
            E::AdvisoryLock => self.pin("advisory_lock", observed),
            E::AdvisoryUnlockAll => {
                self.pins.remove("advisory_lock");
            }
            E::TempTable => self.pin("temp_table", observed),
            E::DiscardTemp => {
                self.pins.remove("temp_table");
            }
            E::HoldCursor { .. } => self.pin("hold_cursor", observed),
            E::CloseCursor { name: None } => {
                self.pins.remove("hold_cursor");
            }
            E::LoadLibrary => self.pin("load", observed),
            E::UntrackedSet => self.pin("untracked_set", observed),
            E::TransactionControl(TxControl::Rollback) => self.failed = true,
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
                    // The savepoint itself stays; what came after it is undone.
                    self.savepoints.truncate(i + 1);
                    self.pending.truncate(pending);
                    self.failed = failed;
                }
            }
            E::TransactionControl(TxControl::PrepareTransaction) => {
                // PREPARE TRANSACTION ends the transaction without committing it here.
                self.failed = true
            }
            E::SetLocal { .. }
            | E::Deallocate { .. }
            | E::Execute { .. }
            | E::Unlisten { .. }
            | E::CloseCursor { .. }
            | E::TransactionControl(_) => {}
        }
    }

    /// The backend reported an error: the failing statement's (or transaction's) changes void.
    pub fn on_error(&mut self) {
        self.failed = true;
    }

    /// A ReadyForQuery: outside a transaction, pending changes either took effect or were
    /// undone. Returns the changes that took effect, for the backend's own record.
    pub fn on_ready(&mut self, status: u8, backend: &mut Settings) {
        if status != b'I' {
            return;
        }
        self.savepoints.clear();
        let pending = std::mem::take(&mut self.pending);
        if !std::mem::take(&mut self.failed) {
            for change in pending {
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
                        self.settings = self.startup.clone();
                        backend.clear();
                    }
                }
            }
        }
    }

    /// SQL that makes a backend's session settings equal to this client's, or None if they are.
    pub fn sync_sql(&self, backend: &Settings) -> Option<String> {
        let mut sql = String::new();
        for (name, value) in &self.settings {
            if backend.get(name) != Some(value) {
                sql.push_str(&format!("SET {name} TO {value};"));
            }
        }
        for name in backend.keys() {
            if !self.settings.contains_key(name) {
                sql.push_str(&format!("RESET {name};"));
            }
        }
        (!sql.is_empty()).then_some(sql)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn startup(pairs: &[(&str, &str)]) -> ClientState {
        let params: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ClientState::from_startup(&params).expect("valid names")
    }

    #[test]
    fn startup_parameters_become_settings() {
        let s = startup(&[
            ("user", "app"),
            ("database", "app"),
            ("application_name", "web"),
            ("TimeZone", "UTC"),
            ("options", "-c search_path=tenant1"),
        ]);
        let list = startup(&[("search_path", "tenant, public")]);
        assert_eq!(
            list.settings().get("search_path").map(String::as_str),
            Some("tenant, public"),
            "a list, not the single name 'tenant, public'"
        );
        assert_eq!(
            s.settings().get("application_name").map(String::as_str),
            Some("'web'")
        );
        assert_eq!(
            s.settings().get("timezone").map(String::as_str),
            Some("'UTC'")
        );
        assert_eq!(
            s.settings().get("search_path").map(String::as_str),
            Some("tenant1")
        );
        assert!(!s.settings().contains_key("user"));
        let custom = startup(&[("jit", "off"), ("work_mem", "7MB"), ("myapp.tenant", "a")]);
        assert_eq!(custom.settings().len(), 3, "every setting is carried");
        let bad = [("x to 1; drop table t; set y".to_string(), "1".to_string())];
        assert!(ClientState::from_startup(&bad).is_err(), "no SQL in names");
    }

    #[test]
    fn committed_set_is_carried_and_rolled_back_set_is_not() {
        let mut s = ClientState::default();
        let mut backend = Settings::new();
        s.observe_sql("SET search_path TO a", false);
        s.on_ready(b'I', &mut backend);
        assert_eq!(
            s.settings().get("search_path").map(String::as_str),
            Some("a")
        );
        assert_eq!(backend.get("search_path").map(String::as_str), Some("a"));

        s.observe_sql("BEGIN", false);
        s.observe_sql("SET search_path TO b", false);
        s.on_ready(b'T', &mut backend);
        s.observe_sql("ROLLBACK", false);
        s.on_ready(b'I', &mut backend);
        assert_eq!(
            s.settings().get("search_path").map(String::as_str),
            Some("a")
        );

        s.observe_sql("SET statement_timeout = 5; SELECT 1/0", false);
        s.on_error();
        s.on_ready(b'I', &mut backend);
        assert!(!s.settings().contains_key("statement_timeout"));
    }

    #[test]
    fn rollback_to_savepoint_undoes_only_what_came_after_it() {
        let mut s = ClientState::default();
        let mut backend = Settings::new();
        s.observe_sql("BEGIN; SET search_path TO a; SAVEPOINT sp", false);
        s.observe_sql("SET TimeZone TO 'UTC'", false);
        s.on_error(); // e.g. a unique violation inside the savepoint
        s.observe_sql("ROLLBACK TO SAVEPOINT sp", false);
        s.observe_sql("SET statement_timeout TO 5", false);
        s.observe_sql("RELEASE sp; COMMIT", false);
        s.on_ready(b'I', &mut backend);
        assert_eq!(
            s.settings().get("search_path").map(String::as_str),
            Some("a")
        );
        assert_eq!(
            s.settings().get("statement_timeout").map(String::as_str),
            Some("5")
        );
        assert!(
            !s.settings().contains_key("timezone"),
            "undone by ROLLBACK TO"
        );
        assert_eq!(
            backend,
            *s.settings(),
            "the backend's record matches what it really has"
        );
    }

    #[test]
    fn sync_sql_is_the_difference() {
        let mut s = startup(&[("application_name", "web")]);
        let mut backend = Settings::new();
        assert_eq!(
            s.sync_sql(&backend).as_deref(),
            Some("SET application_name TO 'web';")
        );
        backend.insert("application_name".into(), "'web'".into());
        assert_eq!(s.sync_sql(&backend), None);
        backend.insert("search_path".into(), "other".into());
        assert_eq!(s.sync_sql(&backend).as_deref(), Some("RESET search_path;"));
        s.observe_sql("RESET ALL", false);
        let mut b2 = Settings::new();
        s.on_ready(b'I', &mut b2);
        assert_eq!(
            s.settings().get("application_name").map(String::as_str),
            Some("'web'")
        );
    }

    #[test]
    fn uncarriable_state_pins_until_undone() {
        let mut s = ClientState::default();
        assert_eq!(s.observe_sql("LISTEN jobs", false).pinned, Some("listen"));
        assert!(s.is_pinned());
        s.observe_sql("UNLISTEN *", false);
        assert!(!s.is_pinned());
        s.observe_sql("SELECT pg_advisory_lock(1)", false);
        s.observe_sql("CREATE TEMP TABLE t (x int)", false);
        assert_eq!(s.pins().len(), 2);
        let o = s.observe_sql("DISCARD ALL", false);
        assert!(o.drops_prepared);
        assert!(!s.is_pinned());
        assert!(s
            .observe_sql("SELECT pg_advisory_xact_lock(1)", false)
            .pinned
            .is_none());
    }
}
