//! HTTP on `server.http_listen`: metrics, health, JSON API and the dashboard.
//!
//! hyper's HTTP/1 server, one task per connection. Only GET and HEAD; requests are bounded
//! (headers in 16 KiB, read within 10 s, bodies never read) and at most [`MAX_CONNECTIONS`]
//! connections are served at once. Nothing a peer sends can panic it: every path answers
//! with a status.

mod access;
mod api;
mod dashboard;
mod insights_view;
mod prometheus;
pub(crate) use prometheus::install_recorder;
mod ready;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::server::shared::{Phase, Shared};

/// Connections served at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 128;
/// hyper's smallest allowed read buffer is 8 KiB: request line and headers must fit in this.
const MAX_REQUEST_HEAD: usize = 16 * 1024;
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// A keep-alive connection (a dashboard tab) is closed after this; the browser reconnects.
const MAX_CONNECTION_LIFE: Duration = Duration::from_secs(300);

type Body = Full<Bytes>;

/// What the handlers share: the server's state and the HTTP side's own (readiness probes).
struct Http {
    shared: Arc<Shared>,
    metrics: prometheus::Exporter,
    ready: ready::Readiness,
}

/// Serves HTTP on `listener` until the server stops (phase Stopping).
pub(crate) async fn serve(shared: Arc<Shared>, listener: TcpListener) {
    let http = Arc::new(Http {
        metrics: prometheus::Exporter::install(),
        ready: ready::Readiness::default(),
        shared,
    });
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut phase = http.shared.phase.subscribe();
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "HTTP (metrics, health, dashboard) listening");
    }
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let http = http.clone();
                    tokio::spawn(async move {
                        let _permit = permit;
                        serve_connection(http, stream).await;
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "HTTP accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            changed = phase.changed() => {
                if changed.is_err() || *phase.borrow() == Phase::Stopping {
                    return;
                }
            }
        }
    }
}

async fn serve_connection(http: Arc<Http>, stream: tokio::net::TcpStream) {
    let _ = stream.set_nodelay(true);
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let http = http.clone();
        async move { Ok::<_, Infallible>(http.handle(req).await) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_REQUEST_HEAD);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    if let Ok(Err(e)) = tokio::time::timeout(MAX_CONNECTION_LIFE, conn).await {
        tracing::debug!(error = %e, "HTTP connection ended");
    }
}

impl Http {
    async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            let mut resp = text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return resp;
        }
        let path = req.uri().path();
        let config = self.shared.config.load_full();
        let server = &config.server;
        if let Some(resp) = dashboard_login(&req, server) {
            return resp;
        }
        match access::check(path, req.headers(), server) {
            Ok(()) => {}
            Err(access::Denied::Host) => {
                return text(
                    StatusCode::FORBIDDEN,
                    "this Host is not in server.http_allowed_hosts\n",
                )
            }
            Err(access::Denied::Token) => {
                let mut resp = text(
                    StatusCode::UNAUTHORIZED,
                    "a bearer token (server.http_auth_token) is required; \
                     browsers: open /dashboard?token=...\n",
                );
                resp.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"pgtide\""),
                );
                return resp;
            }
        }
        match path {
            "/metrics" => {
                let body = self.metrics.render(&self.shared);
                with_type(
                    StatusCode::OK,
                    body,
                    "text/plain; version=0.0.4; charset=utf-8",
                )
            }
            "/healthz" => text(StatusCode::OK, "ok\n"),
            "/readyz" => match self.ready.check(&self.shared).await {
                Ok(()) => text(StatusCode::OK, "ready\n"),
                Err(reason) => {
                    tracing::debug!(%reason, "/readyz: not ready");
                    // The reason names databases, backends and connection errors: only for
                    // callers who may read /metrics (with no token set, `pgtide check` keeps
                    // the listener on loopback).
                    let body = if access::authorized(req.headers(), server) {
                        format!("not ready: {reason}\n")
                    } else {
                        "not ready\n".to_string()
                    };
                    text(StatusCode::SERVICE_UNAVAILABLE, body)
                }
            },
            "/" => {
                let mut resp = text(StatusCode::SEE_OTHER, "see /dashboard\n");
                resp.headers_mut()
                    .insert(header::LOCATION, HeaderValue::from_static("/dashboard"));
                resp
            }
            "/dashboard" => dashboard::page(),
            "/api/queries" => json(&limited(insights_view::queries(&self.shared), &req)),
            "/api/slow_queries" => json(&limited(insights_view::slow_queries(&self.shared), &req)),
            "/api/n_plus_one" => json(&limited(insights_view::n_plus_one(&self.shared), &req)),
            "/api/backends" => json(&api::backends(&self.shared, &self.ready).await),
            "/api/pools" => json(&api::pools(&self.shared)),
            "/api/summary" => json(&api::summary(&self.shared)),
            _ => text(StatusCode::NOT_FOUND, "not found\n"),
        }
    }
}

/// `/dashboard?token=..` with the right token (and an allowed Host): the token goes into an
/// HttpOnly cookie the page's own API requests carry, and the browser is sent on to
/// `/dashboard` so the token does not stay in the address bar or history.
fn dashboard_login(
    req: &Request<Incoming>,
    server: &pgtide_config::ServerConfig,
) -> Option<Response<Body>> {
    if req.uri().path() != "/dashboard" || !access::login(req.uri().query(), req.headers(), server)
    {
        return None;
    }
    let cookie = format!(
        "{}={}; Path=/; HttpOnly; SameSite=Strict",
        access::COOKIE,
        server.http_auth_token
    );
    let mut resp = text(StatusCode::SEE_OTHER, "see /dashboard\n");
    let headers = resp.headers_mut();
    headers.insert(header::LOCATION, HeaderValue::from_static("/dashboard"));
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        headers.insert(header::SET_COOKIE, v);
    }
    Some(resp)
}

/// `?limit=N` keeps the first N rows of a list (the dashboard asks for what it shows).
fn limited(mut value: serde_json::Value, req: &Request<Incoming>) -> serde_json::Value {
    let limit = req
        .uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .find_map(|kv| kv.strip_prefix("limit="))
        .and_then(|n| n.parse::<usize>().ok());
    if let (Some(limit), Some(rows)) = (limit, value.as_array_mut()) {
        rows.truncate(limit);
    }
    value
}

fn with_type(
    status: StatusCode,
    body: impl Into<Bytes>,
    content_type: &'static str,
) -> Response<Body> {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    with_type(status, body, "text/plain; charset=utf-8")
}

fn json(value: &serde_json::Value) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(body) => with_type(StatusCode::OK, body, "application/json"),
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode JSON: {e}\n"),
        ),
    }
}
