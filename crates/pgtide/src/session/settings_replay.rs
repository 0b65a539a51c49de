//! What to send a backend so that its session settings are a client's: the difference as one
//! SET / RESET query in the same write as the client's first message, and apart from it, run
//! and checked first, the settings whose replay can fail (see [`checked_sync_sql`]).

use crate::session::client_state::{ClientState, Settings, IDENTITY};

/// Settings replayed and checked before the client's statement (see
/// [`checked_sync_sql`]): who the client is, and settings PostgreSQL checks against
/// the catalog when they are set.
const CHECKED: [&str; 5] = [
    "session_authorization",
    "role",
    "default_text_search_config",
    "default_tablespace",
    "temp_tablespaces",
];

/// The client has a setting whose replay can fail long after the client set it (a role
/// whose grant was revoked, a text search configuration or tablespace dropped since): its
/// statements must then not run as someone else or without its settings, so those are
/// replayed apart and checked first ([`checked_sync_sql`]).
fn checked_apart(state: &ClientState) -> bool {
    CHECKED.iter().any(|n| state.settings().contains_key(*n))
}

fn carried_here(state: &ClientState, name: &str) -> bool {
    !(checked_apart(state) && CHECKED.contains(&name))
}

/// SQL that makes a backend's session settings equal to this client's, or None if they
/// are; without the role when that is checked apart.
pub(crate) fn sync_sql(state: &ClientState, backend: &Settings) -> Option<String> {
    if state.settings() == backend {
        // The usual case at every attach: nothing to compare name by name.
        return None;
    }
    let mut sql = String::new();
    for (name, value) in state.settings() {
        if backend.get(name) != Some(value) && carried_here(state, name) {
            sql.push_str(&format!("SET {name} TO {value};"));
        }
    }
    for name in backend.keys() {
        if !state.settings().contains_key(name) && carried_here(state, name) {
            sql.push_str(&format!("RESET {name};"));
        }
    }
    (!sql.is_empty()).then_some(sql)
}

/// The backend's record once [`sync_sql`] ran.
pub(crate) fn synced(state: &ClientState, backend: &mut Settings) {
    backend.retain(|name, _| !carried_here(state, name) || state.settings().contains_key(name));
    for (name, value) in state.settings() {
        if carried_here(state, name) {
            backend.insert(name.clone(), value.clone());
        }
    }
}

/// SQL that makes the backend act as the client's chosen role, to run and check before
/// anything of the client's is sent; None if it does already or the client chose none.
/// Session authorization goes first (setting it resets the role).
pub(crate) fn checked_sync_sql(state: &ClientState, backend: &Settings) -> Option<String> {
    if state.settings() == backend
        || !checked_apart(state)
        || CHECKED
            .iter()
            .all(|n| state.settings().get(*n) == backend.get(*n))
    {
        return None;
    }
    let identity_differs = IDENTITY
        .iter()
        .any(|n| state.settings().get(*n) != backend.get(*n));
    let mut sql = String::new();
    for name in CHECKED {
        let differs = state.settings().get(name) != backend.get(name);
        if !(differs || identity_differs && IDENTITY.contains(&name)) {
            continue;
        }
        match state.settings().get(name) {
            Some(value) => sql.push_str(&format!("SET {name} TO {value};")),
            None => sql.push_str(&format!("RESET {name};")),
        }
    }
    Some(sql)
}

/// The backend now acts as the client's role (after [`checked_sync_sql`] ran).
pub(crate) fn checked_synced(state: &ClientState, backend: &mut Settings) {
    for name in CHECKED {
        match state.settings().get(name) {
            Some(v) => backend.insert(name.to_string(), v.clone()),
            None => backend.remove(name),
        };
    }
}
