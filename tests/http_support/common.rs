//! What the HTTP tests share: a raw HTTP/1.1 client that sends exactly the bytes given and
//! reads the whole answer, and a config whose primary is down.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use pgtide_config::{BackendUrl, Config, DatabaseConfig, UserConfig};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A response as the test sees it.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        assert_eq!(self.status, 200, "body: {}", self.body);
        assert_eq!(self.header("content-type"), Some("application/json"));
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// Sends `bytes` as they are and reads the whole answer (the server closes after it, or the
/// request asked for `Connection: close`).
pub async fn raw(addr: SocketAddr, bytes: &[u8]) -> Reply {
    let mut stream = TcpStream::connect(addr).await.expect("connect to HTTP");
    // The server may answer and close before it read everything we send (oversized heads).
    let _ = stream.write_all(bytes).await;
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), async {
        let mut chunk = [0u8; 8192];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no complete HTTP answer within 20 s");
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_string(),
    }
}

pub async fn request(addr: SocketAddr, method: &str, path: &str) -> Reply {
    request_with(addr, method, path, "localhost", &[]).await
}

/// A request with this Host and extra header lines (each "Name: value").
pub async fn request_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    host: &str,
    extra: &[String],
) -> Reply {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for h in extra {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    raw(addr, req.as_bytes()).await
}

pub async fn get(addr: SocketAddr, path: &str) -> Reply {
    request(addr, "GET", path).await
}

/// Sends a GET with extra header lines (each "Name: value").
pub async fn get_with(addr: SocketAddr, path: &str, host: &str, extra: &[String]) -> Reply {
    request_with(addr, "GET", path, host, extra).await
}

/// A config whose only primary is a port nothing listens on.
pub fn dead_primary_config() -> Config {
    let port = pgtide_devcluster::free_port();
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".into();
    config.server.http_listen = "127.0.0.1:0".into();
    let url = format!("postgres://app:secret@127.0.0.1:{port}/app");
    config.databases.push(DatabaseConfig::new(
        "app",
        BackendUrl::parse(&url).expect("url"),
    ));
    config
        .users
        .push(UserConfig::new("app", Some("secret".into())));
    config
}
