//! `/dashboard`: one self-contained page (inline CSS and JS, nothing fetched from elsewhere:
//! the Content-Security-Policy below enforces it) that reads the JSON API and refreshes itself.

use bytes::Bytes;
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};

use super::{with_type, Body};

const PAGE: &str = include_str!("dashboard.html");

/// Inline script and style only; fetches go to this server alone.
const CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
     connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub(super) fn page() -> Response<Body> {
    let mut resp = with_type(
        StatusCode::OK,
        Bytes::from_static(PAGE.as_bytes()),
        "text/html; charset=utf-8",
    );
    resp.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    resp
}
