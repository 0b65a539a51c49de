//! The listener: accepts clients (bounded by max_client_connections), runs each one's startup
//! under startup_timeout, hands it to a `Session`, and owns reload and shutdown.

mod admit;
pub(crate) mod pause;
pub(crate) mod phase_signal;
pub(crate) mod shared;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use pgtide_config::{Config, ConfigDiff};
use tokio::net::{TcpListener, TcpStream};

use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::metrics_names as m;
use crate::server::shared::{Phase, Shared};
use crate::session::End;

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
    let Some(session) = Box::pin(admit::admit(socket, shared, count)).await else {
        return;
    };
    match session.await {
        End::ClientLeft => tracing::debug!("client left"),
        End::Error(e) => tracing::info!(error = %e, side = %e.side(),
            retry_safe = %e.retry_safe(), "session ended"),
    }
}
