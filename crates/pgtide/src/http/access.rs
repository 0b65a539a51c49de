//! Who may read what over HTTP: `server.http_auth_token` (a bearer token, or the cookie the
//! dashboard sets from `/dashboard?token=..`) and a Host header allow-list, for everything but
//! the health probes. The Host check keeps a page on another site from reaching a listener on
//! localhost through DNS rebinding: the dashboard, the API, and `/metrics` when no token is set.

use hyper::header::{self, HeaderMap};
use sha2::{Digest, Sha256};

use pgtide_config::ServerConfig;

use crate::frontend::auth::ct_eq;

/// The cookie `/dashboard?token=..` sets, so the page's own API requests carry the token.
pub(super) const COOKIE: &str = "pgtide_token";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Denied {
    /// 403: the Host header names a site this listener does not answer for.
    Host,
    /// 401: a token is configured and the request does not carry it.
    Token,
}

/// Paths anyone may read: orchestrators probe them without credentials (by IP or any name),
/// and to those the probes say nothing but "up" or "ready" (see [`authorized`]).
fn is_probe(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz")
}

/// Whether a request for `path` with these headers may be answered.
pub(super) fn check(path: &str, headers: &HeaderMap, server: &ServerConfig) -> Result<(), Denied> {
    if is_probe(path) {
        return Ok(());
    }
    if !host_allowed(headers, server) {
        return Err(Denied::Host);
    }
    if !token_offered(headers, server) {
        return Err(Denied::Token);
    }
    Ok(())
}

/// Whether the request would pass [`check`] on a protected path: an allowed Host and, when
/// one is configured, the token. `/readyz` tells only such callers why it is not ready.
pub(super) fn authorized(headers: &HeaderMap, server: &ServerConfig) -> bool {
    host_allowed(headers, server) && token_offered(headers, server)
}

/// No token configured, or the request carries it (bearer or cookie).
fn token_offered(headers: &HeaderMap, server: &ServerConfig) -> bool {
    if server.http_auth_token.is_empty() {
        return true;
    }
    bearer(headers)
        .or_else(|| cookie(headers))
        .is_some_and(|t| token_matches(t, &server.http_auth_token))
}

/// The dashboard login: a `/dashboard` request whose query has `token=` with the configured
/// token, from an allowed Host (a rebinding page must not get the cookie set for it).
pub(super) fn login(query: Option<&str>, headers: &HeaderMap, server: &ServerConfig) -> bool {
    if server.http_auth_token.is_empty() {
        return false;
    }
    let offered = query
        .unwrap_or_default()
        .split('&')
        .find_map(|kv| kv.strip_prefix("token="));
    offered.is_some_and(|t| token_matches(t, &server.http_auth_token))
        && host_allowed(headers, server)
}

/// Compares digests, so the time taken says nothing about how much of the token was right
/// (nor, the digests being of equal length, about its length).
fn token_matches(offered: &str, token: &str) -> bool {
    ct_eq(
        &Sha256::digest(offered.as_bytes()),
        &Sha256::digest(token.as_bytes()),
    )
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == COOKIE).then_some(value)
        })
}

/// A Host header is allowed when it is missing (not a browser), names `localhost` or an IP
/// address (DNS rebinding needs a name the attacker controls), or matches an entry of
/// `http_allowed_hosts` (`host` matches any port, `host:port` only that one, `*` anything).
fn host_allowed(headers: &HeaderMap, server: &ServerConfig) -> bool {
    let Some(value) = headers.get(header::HOST) else {
        return true;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let value = value.trim();
    let host = host_part(value);
    if host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    server.http_allowed_hosts.iter().any(|allowed| {
        allowed == "*" || allowed.eq_ignore_ascii_case(value) || allowed.eq_ignore_ascii_case(host)
    })
}

/// The host of a Host header value: `[::1]:9930` gives `::1`, `a.example:80` gives `a.example`.
fn host_part(value: &str) -> &str {
    if let Some(rest) = value.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("");
    }
    match value.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            host
        }
        _ => value,
    }
}

#[cfg(test)]
#[path = "access_tests.rs"]
mod tests;
