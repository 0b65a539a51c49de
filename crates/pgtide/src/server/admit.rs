//! A client's way in: the opening (TLS or not), the startup packet, authentication (a
//! `[[users]]` entry, a sidecar URL's credentials, or `[auth] query`), the database it may
//! reach, and the session or admin console it gets.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use pgtide_config::{
    AuthMethod, ClientTlsMode, Config, PoolMode, Secret, UserConfig, ADMIN_DATABASE,
};
use pgtide_wire::encode;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::net::Stream;

use crate::error::{ProxyError, Result};
use crate::frontend::startup::{authenticate, read_hello, write_all, Exchange, Hello};
use crate::frontend::startup_settings;
use crate::frontend::tls::{open, Opened, TlsFacts};
use crate::metrics_names as m;
use crate::server::shared::{Phase, Shared};
use crate::session::{End, Session, SessionStart};

/// The handshake: the session to run for an admitted client; None when there is none (a
/// cancel request, a client rejected or gone, the admin console served).
pub(super) async fn admit(
    socket: TcpStream,
    shared: Arc<Shared>,
    count: usize,
) -> Option<Pin<Box<dyn Future<Output = End> + Send>>> {
    let config = shared.config.load_full();
    let over_limit = count > config.server.max_client_connections;
    let mut buf = BytesMut::with_capacity(1024);
    let startup_timeout = config.server.startup_timeout;
    let deadline = tokio::time::Instant::now() + startup_timeout;
    // A client that has said nothing by the deadline is closed without a message, as
    // PostgreSQL closes one at authentication_timeout: it may be just sending an SSLRequest,
    // and an ErrorResponse read as the answer to that fails it inside the SSL exchange.
    match tokio::time::timeout_at(deadline, socket.peek(&mut [0u8; 1])).await {
        Ok(Ok(n)) if n > 0 => {}
        Ok(_) => return None,
        Err(_) => {
            tracing::info!("client said nothing within startup_timeout: closed");
            return None;
        }
    }
    let peer = socket.peer_addr().ok();
    let tls = shared.client_tls.load_full();
    let opened = tokio::time::timeout_at(deadline, open(socket, &mut buf, tls.as_deref())).await;
    let Opened { mut stream, facts } = match opened {
        Ok(Ok(Some(opened))) => opened,
        Ok(Ok(None)) => return None,
        Ok(Err(e)) => {
            tracing::info!(error = %e, "client opening failed");
            return None;
        }
        Err(_) => {
            tracing::info!("client opening (TLS negotiation) took longer than startup_timeout");
            return None;
        }
    };
    let outcome = tokio::time::timeout_at(
        deadline,
        startup(
            &mut stream,
            peer,
            &facts,
            &mut buf,
            &shared,
            &config,
            over_limit,
        ),
    )
    .await
    .unwrap_or_else(|_| Err(ProxyError::StartupTimeout(startup_timeout.as_millis())));
    let start = match outcome {
        Ok(Some(start)) => start,
        Ok(None) => return None,
        Err(e) => {
            if !matches!(e, ProxyError::ClientIo(_)) {
                tracing::info!(error = %e, side = %e.side(), retry_safe = %e.retry_safe(),
                    "client rejected");
                metrics::counter!(m::CLIENT_ERRORS_TOTAL, "sqlstate" => e.sqlstate().to_string())
                    .increment(1);
                let mut out = BytesMut::new();
                e.write_to(&mut out);
                let _ = tokio::time::timeout(
                    Duration::from_secs(1),
                    crate::net::send_all(&mut stream, &out),
                )
                .await;
                // Bounded too: closing TLS first writes what rustls holds, which a client that
                // never reads would never take.
                let _ = tokio::time::timeout(Duration::from_secs(1), stream.shutdown()).await;
            }
            return None;
        }
    };
    let start = match start {
        Start::Session(start) => *start,
        Start::Admin { max_message_size } => {
            Box::pin(crate::admin::run(stream, buf, shared, max_message_size)).await;
            return None;
        }
    };
    let (r, w) = stream.into_split();
    Some(Box::pin(
        Box::new(Session::new(shared, start, r, w, buf)).run(),
    ))
}

async fn startup(
    stream: &mut Stream,
    peer: Option<SocketAddr>,
    tls: &TlsFacts,
    buf: &mut BytesMut,
    shared: &Arc<Shared>,
    config: &Config,
    over_limit: bool,
) -> Result<Option<Start>> {
    let request = match read_hello(stream, buf, shared).await? {
        Hello::Startup(r) => r,
        Hello::Cancelled | Hello::Gone => return Ok(None),
    };
    if config.server.tls.mode == ClientTlsMode::Require && !stream.is_tls() {
        return Err(ProxyError::TlsRequired);
    }
    if over_limit {
        return Err(ProxyError::TooManyClients {
            max: config.server.max_client_connections,
        });
    }
    if shared.phase() != Phase::Running {
        return Err(ProxyError::ShuttingDown);
    }
    let span = tracing::Span::current();
    span.record("user", request.user.as_str());
    // An unknown user goes through the same exchange as a wrong password and gets the same
    // answer (28P01), so user names cannot be probed; only with trust is there none to run.
    let (login, looked_up) = match config.login(&request.user, &request.database) {
        // A [[users]] entry without a password, under [auth]: its secret is looked up, its
        // other settings (admin, databases) stay.
        Some(entry)
            if entry.secret() == Secret::None
                && config.auth.is_some()
                && !matches!(
                    config.auth_method_for(&entry),
                    AuthMethod::Trust | AuthMethod::Cert
                ) =>
        {
            let found = find_by_auth_query(shared, config, &request).await?;
            let found = found.map(|f| UserConfig {
                password: f.password,
                ..entry
            });
            (found, true)
        }
        Some(user) => (Some(user), false),
        None => (find_by_auth_query(shared, config, &request).await?, true),
    };
    let known = login.is_some();
    let mut user = login.unwrap_or_else(|| UserConfig::new(request.user.clone(), None));
    let method = match (known, looked_up) {
        (true, false) => config.auth_method_for(&user),
        // A looked-up SCRAM verifier can only serve SCRAM, as on PostgreSQL.
        (true, true) if matches!(user.secret(), Secret::ScramVerifier(_)) => {
            AuthMethod::ScramSha256
        }
        // A [[users]] entry's own auth_method holds for the secret looked up for it.
        (true, true) => config.auth_method_for(&user),
        _ => config.server.auth_method,
    };
    if !known && method == AuthMethod::Trust {
        return Err(ProxyError::UnknownUserOrDatabase(format!(
            "no such user \"{}\"",
            request.user
        )));
    }
    let max_message_size = usize::try_from(config.server.max_message_size).unwrap_or(usize::MAX);
    let exchange = Exchange {
        method,
        max_message_size,
        end_point: tls.end_point.as_deref(),
        client_cn: tls.client_cn.as_deref(),
        known,
    };
    let proof = authenticate(stream, buf, shared, &user, exchange).await?;
    if looked_up {
        // Only what the client proved is kept, not the stored secret. Without a proof (trust)
        // pgtide could log in to PostgreSQL only as someone else: refused.
        user.password = None;
        user.pass_through = Some(proof.ok_or_else(|| ProxyError::BadPassword {
            user: user.name.clone(),
        })?);
    }

    if request.database == ADMIN_DATABASE {
        if !user.admin || !user.may_reach(ADMIN_DATABASE) {
            return Err(ProxyError::UnknownUserOrDatabase(format!(
                "user \"{}\" may not use the admin console (database \"pgtide\"): \
                 it needs admin = true (and \"pgtide\" in its databases list, if it has one)",
                user.name
            )));
        }
        return Ok(Some(Start::Admin { max_message_size }));
    }
    let db = config.database(&request.database).ok_or_else(|| {
        ProxyError::UnknownUserOrDatabase(format!(
            "database \"{}\" does not exist in pgtide's config",
            request.database
        ))
    })?;
    if !user.may_reach(&db.name) {
        return Err(ProxyError::UnknownUserOrDatabase(format!(
            "user \"{}\" may not connect to database \"{}\" (not in its databases list)",
            user.name, db.name
        )));
    }
    let pool = shared.primary_pool(config, db, &user);
    let mode = config.pool.mode;
    let (lease, params) = match mode {
        PoolMode::Session => {
            let lease = pool.checkout().await?;
            let mut params: Vec<_> = lease
                .conn
                .params
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            params.sort();
            (Some(lease), params)
        }
        PoolMode::Transaction => (None, pool.server_params().await?),
    };
    let state = match crate::session::client_state::ClientState::from_startup(&request.params) {
        Ok(state) => state,
        Err(name) => {
            if let Some(lease) = lease {
                pool.release(lease);
            }
            return Err(ProxyError::StartupSetting {
                code: crate::sqlstate::UNDEFINED_OBJECT.into(),
                message: format!("unrecognized configuration parameter \"{name}\""),
            });
        }
    };
    let mut lease = lease;
    let reported =
        match startup_settings::check(&pool, state.settings(), lease.as_mut(), &params).await {
            Ok(reported) => reported,
            Err(e) => {
                if let Some(lease) = lease {
                    match e {
                        ProxyError::StartupSetting { .. } => pool.release(lease),
                        _ => pool.discard(lease),
                    }
                }
                return Err(e);
            }
        };
    let params = client_view_of_params(params, &request.params, &reported);
    // Session mode: the client's backend is its own for the whole session, so it sees that
    // backend's real process id (pg_backend_pid(), NOTIFY sender ids, pg_terminate_backend);
    // the secret key stays pgtide's, so cancel requests still come here to be routed.
    let registration = match &lease {
        Some(lease) => shared.cancels.register_as(lease.conn.key.0),
        None => shared.cancels.register(),
    };
    let mut out = BytesMut::with_capacity(512);
    encode::authentication_ok(&mut out);
    for (k, v) in &params {
        encode::parameter_status(&mut out, k, v);
    }
    encode::backend_key_data(&mut out, registration.process_id, registration.secret_key);
    encode::ready_for_query(&mut out, pgtide_wire::status::IDLE);
    if let Err(e) = write_all(stream, &out).await {
        if let Some(lease) = lease {
            pool.release(lease);
        }
        return Err(e);
    }
    tracing::debug!(database = %db.name, user = %user.name, "client admitted");
    let application_name = request
        .params
        .iter()
        .find(|(k, _)| k == "application_name")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    Ok(Some(Start::Session(Box::new(SessionStart {
        pool,
        lease,
        mode,
        registration,
        max_message_size,
        state,
        topology: shared.topology(db),
        identity: crate::frontend::clients::Identity {
            addr: peer,
            user: user.name.clone(),
            database: db.name.clone(),
            application_name,
        },
    }))))
}

/// What startup admitted a client to.
enum Start {
    Session(Box<SessionStart>),
    /// The admin console.
    Admin {
        max_message_size: usize,
    },
}

/// The ParameterStatus set a client is greeted with: the server's, with the settings the client
/// chose in its startup packet as the server reported them when pgtide checked them (pgtide
/// applies them on every backend it uses).
fn client_view_of_params(
    mut server: Vec<(String, String)>,
    client: &[(String, String)],
    reported: &[(String, String)],
) -> Vec<(String, String)> {
    for (name, value) in &mut server {
        if let Some((_, v)) = reported.iter().find(|(k, _)| k == name) {
            *value = v.clone();
        } else if let Some((_, v)) = client.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)) {
            *value = v.clone();
        }
    }
    if let Some((_, v)) = client.iter().find(|(k, _)| k == "application_name") {
        if !server.iter().any(|(k, _)| k == "application_name") {
            server.push(("application_name".into(), v.clone()));
        }
    }
    server
}

/// The client's user as `[auth] query` finds it on the database it asked for (None: no
/// `[auth]`, no such database, or no such role).
async fn find_by_auth_query(
    shared: &Shared,
    config: &Config,
    request: &crate::frontend::startup::StartupRequest,
) -> Result<Option<UserConfig>> {
    match (&config.auth, config.database(&request.database)) {
        (Some(_), Some(db)) => shared.auth_lookups.find(config, db, &request.user).await,
        _ => Ok(None),
    }
}
