//! A startup packet may carry any setting (asyncpg's server_settings, pgjdbc's options).
//! PostgreSQL applies them at connect and refuses the connection when one is unknown or
//! invalid; pgtide replays them on every backend its client uses, so it first tries them once
//! on a backend (SET LOCAL in a transaction it rolls back) and refuses the client the same way.
//! The same try tells how the server reports each setting it reports (ParameterStatus:
//! `client_encoding` `utf8` is `UTF8`, DateStyle `iso` is `ISO, MDY`), which is what the client
//! must be greeted with. Accepted settings and their reported spelling are remembered per pool:
//! the common case costs no round trip.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::error::{ProxyError, Result};
use crate::session::client_state::Settings;
use crate::upstream::pool::{lock, Lease, Pool};

/// Bound on remembered spellings; when full it starts over (a forgotten one costs one check).
const MAX_REPORTS: usize = 20_000;

/// How the server reported checked startup settings, per pool: "name=value" (the SET text) to
/// the ParameterStatus value.
#[derive(Debug, Default)]
pub struct Reports {
    spelled: Mutex<HashMap<String, String>>,
}

impl Reports {
    fn get(&self, name: &str, value: &str) -> Option<String> {
        lock(&self.spelled).get(&format!("{name}={value}")).cloned()
    }

    fn note(&self, name: &str, value: &str, reported: String) {
        let mut spelled = lock(&self.spelled);
        if spelled.len() >= MAX_REPORTS {
            spelled.clear();
        }
        spelled.insert(format!("{name}={value}"), reported);
    }
}

/// The name the server reports `setting` (a lowercase GUC name) under, if it reports it.
fn reported_name<'a>(server_params: &'a [(String, String)], setting: &str) -> Option<&'a str> {
    server_params
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(setting))
        .map(|(k, _)| k.as_str())
}

/// Checks the client's startup settings, on its own backend in session mode (`lease`) or on
/// one borrowed from the pool. Returns the ParameterStatus values the server reports for them
/// (by the server's parameter name), to greet the client with.
pub(crate) async fn check(
    pool: &Arc<Pool>,
    settings: &Settings,
    lease: Option<&mut Lease>,
    server_params: &[(String, String)],
) -> Result<Vec<(String, String)>> {
    let mut reported = Vec::new();
    let mut unchecked: Vec<(&String, &String)> = Vec::new();
    for (name, value) in settings {
        let report = reported_name(server_params, name);
        let known = pool.setting_checked(name, value);
        match report.map(|r| (r, pool.startup_reports.get(name, value))) {
            Some((r, Some(spelled))) if known => reported.push((r.to_string(), spelled)),
            None if known => {}
            _ => unchecked.push((name, value)),
        }
    }
    if unchecked.is_empty() {
        return Ok(reported);
    }
    let mut statements = vec!["BEGIN".to_string()];
    statements.extend(
        unchecked
            .iter()
            .map(|(name, value)| format!("SET LOCAL {name} TO {value}")),
    );
    let statements: Vec<&str> = statements.iter().map(String::as_str).collect();
    let outcome = match lease {
        Some(lease) => try_settings(lease, &statements).await,
        None => {
            let mut lease = pool.checkout().await?;
            let outcome = try_settings(&mut lease, &statements).await;
            match outcome {
                Ok((pgtide_wire::status::IDLE, _, _)) => pool.release(lease),
                _ => pool.discard(lease),
            }
            outcome
        }
    };
    match outcome? {
        (_, Some((code, message)), _) => Err(ProxyError::StartupSetting { code, message }),
        (pgtide_wire::status::IDLE, None, params) => {
            for (name, value) in unchecked {
                pool.note_setting_checked(name, value);
                let Some(r) = reported_name(server_params, name) else {
                    continue;
                };
                // The server reports a change at the end of each statement, so its value
                // after the SETs is the spelling (an unchanged one was reported at login).
                if let Some(spelled) = params.get(r) {
                    pool.startup_reports.note(name, value, spelled.clone());
                    reported.push((r.to_string(), spelled.clone()));
                }
            }
            Ok(reported)
        }
        (status, None, _) => Err(ProxyError::BackendSetup(
            format!(
                "backend left in transaction state {} after checking startup settings",
                status as char
            )
            .into(),
        )),
    }
}

/// Runs BEGIN and the SET LOCALs, notes the parameters the server reports then, and rolls back.
/// Returns the final transaction status, the first error, and those parameters.
async fn try_settings(
    lease: &mut Lease,
    statements: &[&str],
) -> Result<(u8, Option<(String, String)>, HashMap<String, String>)> {
    let (_, error) = lease.conn.run_simple(statements).await?;
    let params = lease.conn.params.clone();
    let (status, rollback_error) = lease.conn.run_simple(&["ROLLBACK"]).await?;
    Ok((status, error.or(rollback_error), params))
}
