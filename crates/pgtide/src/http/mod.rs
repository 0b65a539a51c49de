//! HTTP on `server.http_listen`: metrics, health, JSON API and the dashboard.

use std::sync::Arc;

use tokio::net::TcpListener;

use crate::shared::Shared;

/// Serves HTTP on `listener` until the process ends.
pub async fn serve(shared: Arc<Shared>, listener: TcpListener) {
    let _ = (shared, listener);
}
