//! A startup packet may carry any setting (asyncpg's server_settings, pgjdbc's options).
//! PostgreSQL applies them at connect and refuses the connection when one is unknown or
//! invalid; pgtide replays them on every backend its client uses, so it first tries them once
//! on a backend (SET LOCAL in a transaction it rolls back) and refuses the client the same way.
//! Accepted settings are remembered per pool: the common case costs no round trip.

use std::sync::Arc;

use crate::error::{ProxyError, Result};
use crate::pool::{Lease, Pool};
use crate::session_state::Settings;

/// Checks the client's startup settings, on its own backend in session mode (`lease`) or on
/// one borrowed from the pool.
pub async fn check(pool: &Arc<Pool>, settings: &Settings, lease: Option<&mut Lease>) -> Result<()> {
    let unchecked: Vec<(&String, &String)> = settings
        .iter()
        .filter(|(name, value)| !pool.setting_checked(name, value))
        .collect();
    if unchecked.is_empty() {
        return Ok(());
    }
    let mut statements = vec!["BEGIN".to_string()];
    statements.extend(
        unchecked
            .iter()
            .map(|(name, value)| format!("SET LOCAL {name} TO {value}")),
    );
    statements.push("ROLLBACK".to_string());
    let statements: Vec<&str> = statements.iter().map(String::as_str).collect();
    let outcome = match lease {
        Some(lease) => lease.conn.run_simple(&statements).await,
        None => {
            let mut lease = pool.checkout().await?;
            let outcome = lease.conn.run_simple(&statements).await;
            match outcome {
                Ok((b'I', _)) => pool.release(lease),
                _ => pool.discard(lease),
            }
            outcome
        }
    };
    match outcome? {
        (_, Some((code, message))) => Err(ProxyError::StartupSetting { code, message }),
        (b'I', None) => {
            for (name, value) in unchecked {
                pool.note_setting_checked(name, value);
            }
            Ok(())
        }
        (status, None) => Err(ProxyError::BackendLost(format!(
            "backend left in transaction state {} after checking startup settings",
            status as char
        ))),
    }
}
