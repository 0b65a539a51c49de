use hyper::header::{HeaderMap, HeaderValue, AUTHORIZATION, COOKIE, HOST};

use super::*;

fn server(token: &str, hosts: &[&str]) -> ServerConfig {
    ServerConfig {
        http_auth_token: token.into(),
        http_allowed_hosts: hosts.iter().map(|h| h.to_string()).collect(),
        ..ServerConfig::default()
    }
}

fn headers(pairs: &[(hyper::header::HeaderName, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(k.clone(), HeaderValue::from_str(v).expect("a header value"));
    }
    h
}

const TOKEN: &str = "0123456789abcdef-token";

#[test]
fn without_a_token_everything_is_open_to_allowed_hosts() {
    let s = server("", &[]);
    for host in [
        "localhost:9930",
        "127.0.0.1:9930",
        "[::1]:9930",
        "10.1.2.3",
        "LOCALHOST",
    ] {
        assert_eq!(
            check("/api/queries", &headers(&[(HOST, host)]), &s),
            Ok(()),
            "{host}"
        );
    }
    assert_eq!(check("/dashboard", &HeaderMap::new(), &s), Ok(()));
}

#[test]
fn a_foreign_host_name_is_refused_everywhere_but_the_probes() {
    let s = server("", &[]);
    let evil = headers(&[(HOST, "attacker.example:9930")]);
    assert_eq!(check("/api/queries", &evil, &s), Err(Denied::Host));
    assert_eq!(check("/dashboard", &evil, &s), Err(Denied::Host));
    assert_eq!(check("/", &evil, &s), Err(Denied::Host));
    assert_eq!(check("/healthz", &evil, &s), Ok(()));
    assert_eq!(check("/readyz", &evil, &s), Ok(()));
    // Without a token a rebinding page could read /metrics: a scraper that names the service
    // (Prometheus's "pgtide:9930") needs it listed; by IP or `localhost` it needs nothing.
    assert_eq!(check("/metrics", &evil, &s), Err(Denied::Host));
    assert_eq!(check("/nope", &evil, &s), Err(Denied::Host));
    let listed = server("", &["pgtide"]);
    let scraper = headers(&[(HOST, "pgtide:9930")]);
    assert_eq!(check("/metrics", &scraper, &listed), Ok(()));
    assert_eq!(check("/metrics", &scraper, &s), Err(Denied::Host));
    for host in ["127.0.0.1:9930", "10.0.0.7:9930", "localhost"] {
        assert_eq!(check("/metrics", &headers(&[(HOST, host)]), &s), Ok(()));
    }
    // With a token the Host is checked first: the token does not help a rebinding page.
    let bearer = format!("Bearer {TOKEN}");
    let evil_with_token = headers(&[(HOST, "attacker.example"), (AUTHORIZATION, &bearer)]);
    assert_eq!(
        check("/metrics", &evil_with_token, &server(TOKEN, &[])),
        Err(Denied::Host)
    );
}

#[test]
fn listed_hosts_match_by_name_or_exact_host_and_port() {
    let s = server("", &["pgtide.internal", "dash.example:8080"]);
    let ok = |h: &str| check("/api/pools", &headers(&[(HOST, h)]), &s).is_ok();
    assert!(ok("pgtide.internal:9930") && ok("PGTIDE.internal"));
    assert!(ok("dash.example:8080"));
    assert!(!ok("dash.example:9930") && !ok("pgtide.internal.evil"));
    let any = server("", &["*"]);
    assert!(check("/api/pools", &headers(&[(HOST, "x.example")]), &any).is_ok());
}

#[test]
fn a_token_is_required_everywhere_but_the_probes() {
    let s = server(TOKEN, &[]);
    let none = headers(&[(HOST, "localhost")]);
    for path in ["/metrics", "/dashboard", "/api/queries", "/", "/nope"] {
        assert_eq!(check(path, &none, &s), Err(Denied::Token), "{path}");
    }
    assert_eq!(check("/healthz", &none, &s), Ok(()));
    assert_eq!(check("/readyz", &none, &s), Ok(()));
}

#[test]
fn the_token_is_accepted_as_bearer_or_cookie_and_nothing_else() {
    let s = server(TOKEN, &[]);
    let with = |pairs: &[(hyper::header::HeaderName, &str)]| check("/metrics", &headers(pairs), &s);
    assert_eq!(with(&[(AUTHORIZATION, &format!("Bearer {TOKEN}"))]), Ok(()));
    assert_eq!(with(&[(AUTHORIZATION, &format!("bearer {TOKEN}"))]), Ok(()));
    assert_eq!(
        with(&[(COOKIE, &format!("a=b; {}={TOKEN}; c=d", super::COOKIE))]),
        Ok(())
    );
    for wrong in [
        format!("Bearer {TOKEN}x"),
        format!("Bearer {}", &TOKEN[..TOKEN.len() - 1]),
        format!("Basic {TOKEN}"),
        TOKEN.to_string(),
        "Bearer ".to_string(),
    ] {
        assert_eq!(
            with(&[(AUTHORIZATION, &wrong)]),
            Err(Denied::Token),
            "{wrong}"
        );
    }
    assert_eq!(
        with(&[(COOKIE, &format!("other_{}={TOKEN}", super::COOKIE))]),
        Err(Denied::Token)
    );
}

#[test]
fn the_dashboard_login_needs_the_token_in_the_query_and_an_allowed_host() {
    let s = server(TOKEN, &[]);
    let local = headers(&[(HOST, "localhost:9930")]);
    let query = format!("a=1&token={TOKEN}");
    assert!(login(Some(&query), &local, &s));
    assert!(login(Some(&query), &HeaderMap::new(), &s));
    let evil = headers(&[(HOST, "attacker.example")]);
    assert!(!login(Some(&query), &evil, &s));
    assert!(!login(Some(&format!("token={TOKEN}x")), &local, &s));
    assert!(!login(Some("token=nope"), &local, &s));
    assert!(!login(None, &local, &s));
    // No token configured: nothing to log in with, even an empty one.
    assert!(!login(Some("token="), &local, &server("", &[])));
}

#[test]
fn only_callers_who_pass_the_checks_are_authorized_for_details() {
    let local = headers(&[(HOST, "localhost")]);
    let evil = headers(&[(HOST, "attacker.example")]);
    // No token: any allowed Host (the listener is on loopback, `pgtide check` sees to it).
    assert!(authorized(&local, &server("", &[])));
    assert!(!authorized(&evil, &server("", &[])));
    let s = server(TOKEN, &[]);
    assert!(!authorized(&local, &s));
    let bearer = format!("Bearer {TOKEN}");
    assert!(authorized(
        &headers(&[(HOST, "localhost"), (AUTHORIZATION, &bearer)]),
        &s
    ));
    assert!(!authorized(
        &headers(&[(HOST, "attacker.example"), (AUTHORIZATION, &bearer)]),
        &s
    ));
}

#[test]
fn host_parts() {
    assert_eq!(host_part("[::1]:9930"), "::1");
    assert_eq!(host_part("a.example:80"), "a.example");
    assert_eq!(host_part("a.example"), "a.example");
    assert_eq!(host_part("::1"), "::1");
}
