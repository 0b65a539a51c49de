//! The server's error type: which side failed, what the client is told, whether a retry is safe.
//! One place (`ProxyError::write_to`) turns an error into the ErrorResponse a client sees.

use bytes::BytesMut;
use pgtide_wire::{encode, WireError};

/// SQLSTATE codes of PRODUCT.md §6.
pub mod sqlstate {
    pub const TOO_MANY_CONNECTIONS: &str = "53300";
    pub const INVALID_PASSWORD: &str = "28P01";
    pub const INVALID_AUTHORIZATION: &str = "28000";
    pub const PROTOCOL_VIOLATION: &str = "08P01";
    pub const CONNECTION_FAILURE: &str = "08006";
    pub const ADMIN_SHUTDOWN: &str = "57P01";
    pub const FEATURE_NOT_SUPPORTED: &str = "0A000";
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The client broke the protocol (bad framing, oversized message, garbage).
    #[error("protocol violation: {0}")]
    ClientProtocol(#[from] WireError),
    #[error("{0}")]
    ClientProtocolMsg(String),
    #[error("client connection: {0}")]
    ClientIo(#[source] std::io::Error),
    #[error("password authentication failed for user \"{user}\"")]
    BadPassword { user: String },
    #[error("{0}")]
    UnknownUserOrDatabase(String),
    #[error("too many client connections (max_client_connections = {max})")]
    TooManyClients { max: usize },
    #[error("no backend connection for database \"{database}\" within checkout_timeout ({waited_ms} ms); pool size is {size}")]
    CheckoutTimeout {
        database: String,
        waited_ms: u128,
        size: usize,
    },
    #[error("client did not complete startup within startup_timeout ({0} ms)")]
    StartupTimeout(u128),
    /// The backend could not be reached or logged in to (before any query ran).
    #[error("could not connect to backend {backend}: {reason}")]
    BackendConnect { backend: String, reason: String },
    /// The backend connection broke while serving a client.
    #[error("backend connection lost: {0}")]
    BackendLost(String),
    #[error("pgtide is shutting down")]
    ShuttingDown,
    #[error("{0}")]
    Unsupported(String),
    /// A read found no replica to run on and `primary_reads = "never"`.
    #[error("no healthy replica of database \"{0}\" can take this read (primary_reads = never)")]
    NoReplica(String),
    /// PostgreSQL refused a setting from the client's startup packet (as it would have at
    /// connect): its SQLSTATE and message.
    #[error("{message}")]
    StartupSetting { code: String, message: String },
    /// The backend refused to act as the role the client had chosen (e.g. after a REVOKE):
    /// nothing of the client's statement ran.
    #[error("{message}")]
    SettingReplay { code: String, message: String },
}

impl ProxyError {
    pub fn sqlstate(&self) -> &str {
        use sqlstate::*;
        match self {
            ProxyError::StartupSetting { code, .. } | ProxyError::SettingReplay { code, .. } => {
                code
            }
            ProxyError::ClientProtocol(_) | ProxyError::ClientProtocolMsg(_) => PROTOCOL_VIOLATION,
            ProxyError::ClientIo(_) => PROTOCOL_VIOLATION,
            ProxyError::BadPassword { .. } => INVALID_PASSWORD,
            ProxyError::UnknownUserOrDatabase(_) => INVALID_AUTHORIZATION,
            ProxyError::TooManyClients { .. }
            | ProxyError::CheckoutTimeout { .. }
            | ProxyError::NoReplica(_) => TOO_MANY_CONNECTIONS,
            ProxyError::StartupTimeout(_) => PROTOCOL_VIOLATION,
            ProxyError::BackendConnect { .. } | ProxyError::BackendLost(_) => CONNECTION_FAILURE,
            ProxyError::ShuttingDown => ADMIN_SHUTDOWN,
            ProxyError::Unsupported(_) => FEATURE_NOT_SUPPORTED,
        }
    }

    /// Whether the client session can go on after this error (an ERROR rather than a FATAL).
    pub fn is_recoverable(&self) -> bool {
        matches!(
            self,
            ProxyError::CheckoutTimeout { .. }
                | ProxyError::BackendConnect { .. }
                | ProxyError::NoReplica(_)
                | ProxyError::SettingReplay { .. }
        )
    }

    /// Appends the ErrorResponse the client sees.
    pub fn write_to(&self, buf: &mut BytesMut) {
        let severity = if self.is_recoverable() {
            "ERROR"
        } else {
            "FATAL"
        };
        encode::error_response(buf, severity, self.sqlstate(), &self.to_string());
    }
}

pub type Result<T, E = ProxyError> = std::result::Result<T, E>;
