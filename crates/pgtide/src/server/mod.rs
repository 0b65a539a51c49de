//! The listener: accepts clients (bounded by max_client_connections), runs each one's startup
//! under startup_timeout, hands it to a `Session`, and owns reload and shutdown.

pub(crate) mod pause;
pub(crate) mod phase_signal;
pub(crate) mod shared;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use pgtide_config::{
    AuthMethod, ClientTlsMode, Config, ConfigDiff, PoolMode, UserConfig, ADMIN_DATABASE,
};
use pgtide_wire::encode;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use crate::net::Stream;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::error::{ProxyError, Result};
use crate::frontend::startup::{authenticate, read_hello, write_all, Exchange, Hello};
use crate::frontend::startup_settings;
use crate::frontend::tls::{open, Opened};
use crate::metrics_names as m;
use crate::server::shared::{Phase, Shared};
use crate::session::{End, Session, SessionStart};

/// A running pgtide, in-process. Dropping it does not stop it; call `shutdown`.
pub struct ServerHandle {
    pub local_addr: SocketAddr,
    /// Where HTTP (metrics, health, API, dashboard) listens; None when `http_listen` is empty.
    pub http_addr: Option<SocketAddr>,
    pub shared: Arc<Shared>,
    accept_task: JoinHandle<()>,
}

/// How to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shutdown {
    /// SIGTERM: stop accepting, let transactions finish up to shutdown_timeout, then close.
    Drain,
    /// SIGINT: close every client now.
    Immediate,
}

/// Binds the listener and starts serving.
pub async fn start(config: Config) -> std::io::Result<ServerHandle> {
    let listener = TcpListener::bind(&config.server.listen).await?;
    let local_addr = listener.local_addr()?;
    let http = match config.server.http_listen.as_str() {
        "" => None,
        addr => Some(TcpListener::bind(addr).await?),
    };
    let http_addr = http.as_ref().map(TcpListener::local_addr).transpose()?;
    if http.is_some() {
        // Before any pool or session takes a metric handle.
        crate::http::install_recorder();
    }
    let cache_listener = cache_listener_target(&config);
    let shared = Shared::new(config)?;
    if let Some(target) = cache_listener {
        shared.cache.spawn_listener(target);
    }
    if let Some(http) = http {
        tokio::spawn(crate::http::serve(shared.clone(), http));
    }
    tokio::spawn(maintain_pools(shared.clone()));
    tokio::spawn(trim_idle_sessions(shared.clone()));
    shared.start_health_checks();
    let accept_task = tokio::spawn(accept_loop(listener, shared.clone()));
    tracing::info!(%local_addr, "pgtide listening");
    Ok(ServerHandle {
        local_addr,
        http_addr,
        shared,
        accept_task,
    })
}

/// The backend the result cache listens on for other instances' invalidations: the first
/// database's primary, as the first configured user. Only when caching can happen (enabled,
/// with rules): a cache used through hints alone stays local.
fn cache_listener_target(config: &Config) -> Option<crate::upstream::conn::BackendTarget> {
    if !config.cache.enabled || config.cache.rules.is_empty() {
        return None;
    }
    let db = config.databases.first()?;
    let user = config.effective_users().into_iter().next()?;
    Some(crate::server::shared::primary_target(db, &user))
}

impl ServerHandle {
    /// Swaps in a new config; connected clients stay. Returns what changed, including keys that
    /// only take effect after a restart.
    pub fn reload(&self, new: Config) -> ConfigDiff {
        let old = self.shared.config.load_full();
        let diff = pgtide_config::diff(&old, &new);
        for key in &diff.restart_required {
            tracing::warn!(
                key,
                "changed in the config but needs a restart to take effect"
            );
        }
        self.shared.apply_config(new);
        tracing::info!(live = ?diff.live, "config reloaded");
        diff
    }

    pub fn client_count(&self) -> usize {
        self.shared.clients.load(Ordering::Relaxed)
    }

    pub async fn shutdown(self, how: Shutdown) {
        let timeout = self.shared.config.load().server.shutdown_timeout;
        if how == Shutdown::Drain {
            self.shared.set_phase(Phase::Draining);
            let drained = wait_for_no_clients(&self.shared, timeout).await;
            if !drained {
                tracing::warn!("shutdown_timeout reached with clients still in transactions");
            }
        }
        self.shared.set_phase(Phase::Stopping);
        wait_for_no_clients(&self.shared, Duration::from_secs(5)).await;
        self.accept_task.abort();
        for pool in self.shared.pools.all() {
            pool.close_idle();
        }
        tracing::info!("pgtide stopped");
    }
}

async fn wait_for_no_clients(shared: &Shared, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while shared.clients.load(Ordering::Relaxed) > 0 {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut phase = shared.phase.subscribe();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let shared = shared.clone();
                    let span = tracing::info_span!("client", %peer);
                    tokio::spawn(handle_client(stream, shared).instrument(span));
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = phase.changed() => {
                if *phase.borrow() != Phase::Running {
                    tracing::info!("no longer accepting clients");
                    return;
                }
            }
        }
    }
}

/// The clock of the once-a-second chores: waits for the next second, false once the server
/// stops.
async fn next_second(shared: &Shared, tick: &mut tokio::time::Interval) -> bool {
    tick.tick().await;
    shared.phase() != Phase::Stopping
}

fn every_second() -> tokio::time::Interval {
    tokio::time::interval(Duration::from_secs(1))
}

/// Upkeep of every pool once a second until the server stops.
async fn maintain_pools(shared: Arc<Shared>) {
    let mut tick = every_second();
    while next_second(&shared, &mut tick).await {
        for pool in shared.pools.all() {
            pool.maintain().await;
        }
    }
}

/// Once a second, sessions idle at that moment give their queues' room back (session/events.rs):
/// between trims a busy client keeps it, so it allocates nothing again per transaction, and an
/// idle one holds none for longer than a second.
async fn trim_idle_sessions(shared: Arc<Shared>) {
    let mut tick = every_second();
    while next_second(&shared, &mut tick).await {
        shared.client_registry.trim_idle();
    }
}

/// Counts a client for max_client_connections and the gauge, for as long as it lives.
struct ClientSlot(Arc<Shared>);

impl Drop for ClientSlot {
    fn drop(&mut self) {
        self.0.clients.fetch_sub(1, Ordering::Relaxed);
        metrics::gauge!(m::CLIENT_CONNECTIONS).decrement(1.0);
    }
}

async fn handle_client(socket: TcpStream, shared: Arc<Shared>) {
    let _ = socket.set_nodelay(true);
    let count = shared.clients.fetch_add(1, Ordering::Relaxed) + 1;
    metrics::gauge!(m::CLIENT_CONNECTIONS).increment(1.0);
    let _slot = ClientSlot(shared.clone());
    // Boxed, here and below: a task is as large as its largest state, and an idle client's
    // task should hold its session, not room for a finished handshake or the admin console.
    let Some(session) = Box::pin(admit(socket, shared, count)).await else {
        return;
    };
    match session.await {
        End::ClientLeft => tracing::debug!("client left"),
        End::Error(e) => tracing::info!(error = %e, side = %e.side(),
            retry_safe = %e.retry_safe(), "session ended"),
    }
}

/// The handshake: the session to run for an admitted client; None when there is none (a
/// cancel request, a client rejected or gone, the admin console served).
async fn admit(
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
    let Opened {
        mut stream,
        end_point,
    } = match opened {
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
            end_point.as_deref(),
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
                let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(&out)).await;
                let _ = stream.shutdown().await;
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
    end_point: Option<&[u8]>,
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
    let login = config.login(&request.user, &request.database);
    let known = login.is_some();
    let user = login.unwrap_or_else(|| UserConfig::new(request.user.clone(), None));
    let method = match known {
        true => config.auth_method_for(&user),
        false => config.server.auth_method,
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
        end_point,
        known,
    };
    authenticate(stream, buf, shared, &user, exchange).await?;

    if request.database == ADMIN_DATABASE {
        if !user.admin {
            return Err(ProxyError::UnknownUserOrDatabase(format!(
                "user \"{}\" may not use the admin console (database \"pgtide\"): \
                 it needs admin = true",
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
