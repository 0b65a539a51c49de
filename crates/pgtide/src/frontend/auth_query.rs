//! `[auth] query`: clients not listed in `[[users]]` are looked up in PostgreSQL itself. pgtide
//! logs in as the auth user to the database the client asked for, runs the query with the user
//! name as `$1` (a parameter, never spliced into the text), and takes the second column as the
//! stored secret (a SCRAM verifier or an md5 hash, as pg_shadow holds it). The client proves
//! itself against that; its proof then lets pgtide log in as the client (upstream/
//! pass_through.rs), so pgtide never sees or stores the password. Answers are kept a few
//! seconds, so a burst of logins costs one lookup, and a role created later is found without
//! a reload.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use pgtide_config::{Config, DatabaseConfig, Secret, UserConfig};
use pgtide_wire::{backend as tag, encode, BindView};

use crate::error::{ProxyError, Result};
use crate::upstream::conn::{data_row_text, BackendConn, BackendTarget};

/// How long a lookup's answer is used again.
const KEEP_FOR: Duration = Duration::from_secs(5);

type Answer = (Instant, Option<String>);

/// Lookups running at once: each is a login to PostgreSQL, asked for by clients not yet
/// authenticated, so a flood of made-up names must not take the server's connections.
const MAX_LOOKUPS: usize = 4;

/// Lookups and their recent answers, by (database, user).
pub(crate) struct AuthLookups {
    recent: Mutex<HashMap<(String, String), Answer>>,
    running: tokio::sync::Semaphore,
}

impl Default for AuthLookups {
    fn default() -> Self {
        AuthLookups {
            recent: Mutex::default(),
            running: tokio::sync::Semaphore::new(MAX_LOOKUPS),
        }
    }
}

impl AuthLookups {
    /// The user `name` as `[auth] query` finds it on `db`: None when the query returns no row
    /// or no secret pgtide can check. Its `password` holds the stored secret, not a password.
    pub(crate) async fn find(
        &self,
        config: &Config,
        db: &DatabaseConfig,
        name: &str,
    ) -> Result<Option<UserConfig>> {
        let key = (db.name.clone(), name.to_string());
        let kept = || {
            self.lock()
                .get(&key)
                .filter(|(at, _)| at.elapsed() < KEEP_FOR)
                .map(|(_, secret)| secret.clone())
        };
        if let Some(secret) = kept() {
            return Ok(as_user(name, secret));
        }
        let _turn = self.running.acquire().await.map_err(|_| unavailable())?;
        // Someone may have looked the name up while this one waited.
        let secret = match kept() {
            Some(secret) => secret,
            None => {
                // The client learns only that the lookup failed; the reason goes to the log
                // (it may name the backend or the query).
                let secret = lookup(config, db, name).await.map_err(|e| {
                    tracing::warn!(error = %e, database = %db.name, "[auth] query failed");
                    unavailable()
                })?;
                let mut recent = self.lock();
                recent.retain(|_, (at, _)| at.elapsed() < KEEP_FOR);
                recent.insert(key, (Instant::now(), secret.clone()));
                secret
            }
        };
        Ok(as_user(name, secret))
    }

    /// Forgets every answer (a reload may change the auth user or query).
    pub(crate) fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Answer>> {
        self.recent.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The user a lookup found: only with a secret pgtide can check a client against.
fn as_user(name: &str, secret: Option<String>) -> Option<UserConfig> {
    secret
        .filter(|s| {
            matches!(
                Secret::classify(Some(s)),
                Secret::ScramVerifier(_) | Secret::Md5Hash(_)
            )
        })
        .map(|s| UserConfig::new(name, Some(s)))
}

fn unavailable() -> ProxyError {
    ProxyError::BackendSetup("the [auth] query could not run (pgtide's log says why)".into())
}

/// Runs the auth query for `name` on `db`'s primary as the auth user.
async fn lookup(config: &Config, db: &DatabaseConfig, name: &str) -> Result<Option<String>> {
    let Some(auth) = &config.auth else {
        return Ok(None);
    };
    let url = &db.primary;
    let target = Arc::new(BackendTarget {
        host: url.host.clone(),
        port: url.port,
        user: auth.user.clone(),
        password: auth.password.clone(),
        database: url.dbname.clone().unwrap_or_else(|| db.name.clone()),
        tls: crate::upstream::tls::BackendTls::of(db),
        pass_through: None,
    });
    let timeout = crate::server::shared::pool_settings(config).connect_timeout;
    let mut conn = BackendConn::connect(target, &[], timeout, 0).await?;
    let mut out = BytesMut::new();
    encode::parse(&mut out, "", &auth.query, &[])?;
    let bind = BindView {
        portal: "",
        statement: "",
        param_formats: vec![],
        params: vec![Some(name.as_bytes())],
        result_formats: vec![],
    };
    encode::bind(&mut out, &bind)?;
    encode::execute(&mut out, "", 1)?;
    encode::sync(&mut out);
    let answer = tokio::time::timeout(timeout, async {
        conn.send(&out).await?;
        let mut secret = None;
        loop {
            let frame = conn.read_frame().await?;
            match frame.tag {
                tag::DATA_ROW if secret.is_none() => {
                    secret = Some(data_row_text(frame.body()).into_iter().nth(1).flatten());
                }
                tag::ERROR_RESPONSE => {
                    let e = pgtide_wire::error_fields(frame.body())?;
                    return Err(ProxyError::BackendSetup(
                        format!("[auth] query failed: {} ({})", e.message, e.code).into(),
                    ));
                }
                tag::READY_FOR_QUERY => return Ok(secret.flatten()),
                _ => {}
            }
        }
    })
    .await
    .unwrap_or_else(|_| Err(ProxyError::BackendSetup("[auth] query timed out".into())));
    conn.terminate().await;
    answer
}
