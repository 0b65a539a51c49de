//! The server's error type: which side failed, what the client is told, whether a retry is safe.
//! One place (`ProxyError::write_to`) turns an error into the ErrorResponse a client sees;
//! docs/reference/sqlstates.md lists them all.

use std::fmt;

use bytes::BytesMut;
use pgtide_wire::{encode, WireError};

pub(crate) use crate::sqlstate;

/// Who is at fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// The client: what it sent, who it claims to be, or its own connection.
    Client,
    /// A PostgreSQL server: unreachable, gone, or refusing what pgtide ran for the client.
    Backend,
    /// pgtide itself: its limits (pool, clients), its configuration, shutting down.
    Pgtide,
}

/// Whether the client may send again what it was running when the error came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RetrySafe {
    /// Nothing of the client's work reached PostgreSQL: sending it again cannot run it twice.
    Yes,
    /// The client's work reached PostgreSQL and may have run (or committed): a blind retry may
    /// run it twice.
    No,
    /// pgtide cannot tell (the client's own connection broke, or pgtide stopped at once).
    Unknown,
}

/// How a backend connection failed (the source of the backend errors).
#[derive(Debug, thiserror::Error)]
pub enum Lost {
    #[error("server closed the connection")]
    Closed,
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Wire(#[from] WireError),
    /// What the server said, or what pgtide found wrong in its answer.
    #[error("{0}")]
    Said(String),
}

impl From<String> for Lost {
    fn from(s: String) -> Self {
        Lost::Said(s)
    }
}

impl From<&str> for Lost {
    fn from(s: &str) -> Self {
        Lost::Said(s.to_string())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The client broke the protocol (bad framing, oversized message, garbage).
    #[error("protocol violation: {0}")]
    ClientProtocol(#[from] WireError),
    /// The client broke the authentication exchange.
    #[error("{0}")]
    ClientProtocolMsg(String),
    #[error("client connection: {0}")]
    ClientIo(#[source] std::io::Error),
    #[error("password authentication failed for user \"{user}\"")]
    BadPassword { user: String },
    #[error("{0}")]
    UnknownUserOrDatabase(String),
    /// A plaintext client where `server.tls.mode = "require"`.
    #[error(
        "TLS is required: connect with sslmode=require or stronger (server.tls.mode = \"require\")"
    )]
    TlsRequired,
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
    #[error("could not connect to backend {backend}: {source}")]
    BackendConnect {
        backend: String,
        #[source]
        source: Lost,
    },
    /// The backend connection broke while serving the client's statements.
    #[error("backend connection lost: {0}")]
    BackendLost(#[source] Lost),
    /// The backend failed an exchange pgtide ran itself (settings check or replay, parameter
    /// lookup) before any of the client's statements went to it.
    #[error("backend connection lost: {0}")]
    BackendSetup(#[source] Lost),
    /// Draining: sent before anything of the client's was forwarded, or while it was idle.
    #[error("pgtide is shutting down")]
    ShuttingDown,
    /// Stopping at once (SIGINT): the client's transaction may have been in flight.
    #[error("pgtide is shutting down")]
    Stopped,
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
    /// The admin console got a message other than a simple query.
    #[error("the admin console answers simple queries only")]
    AdminSimpleQueryOnly,
    /// An admin console command the console does not know (its message says what it does).
    #[error("{0}")]
    AdminSyntax(String),
    /// RELOAD where no process owner listens (pgtide embedded without its binary).
    #[error("RELOAD needs the pgtide binary (it re-reads the config file and flags)")]
    ReloadUnavailable,
    /// RELOAD found the configuration invalid; the running one stays.
    #[error("reload refused: {0}")]
    ReloadRefused(String),
    /// RELOAD was asked for but the process owner went away without an answer.
    #[error("nobody answered the reload")]
    ReloadUnanswered,
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
            ProxyError::UnknownUserOrDatabase(_) | ProxyError::TlsRequired => INVALID_AUTHORIZATION,
            ProxyError::TooManyClients { .. }
            | ProxyError::CheckoutTimeout { .. }
            | ProxyError::NoReplica(_) => TOO_MANY_CONNECTIONS,
            ProxyError::StartupTimeout(_) => PROTOCOL_VIOLATION,
            ProxyError::BackendConnect { .. }
            | ProxyError::BackendLost(_)
            | ProxyError::BackendSetup(_) => CONNECTION_FAILURE,
            ProxyError::ShuttingDown | ProxyError::Stopped => ADMIN_SHUTDOWN,
            ProxyError::AdminSimpleQueryOnly => FEATURE_NOT_SUPPORTED,
            ProxyError::AdminSyntax(_) => SYNTAX_ERROR,
            ProxyError::ReloadUnavailable | ProxyError::ReloadUnanswered => {
                OBJECT_NOT_IN_PREREQUISITE_STATE
            }
            ProxyError::ReloadRefused(_) => CONFIG_FILE_ERROR,
        }
    }

    /// Who is at fault.
    pub(crate) fn side(&self) -> Side {
        match self {
            ProxyError::ClientProtocol(_)
            | ProxyError::ClientProtocolMsg(_)
            | ProxyError::ClientIo(_)
            | ProxyError::BadPassword { .. }
            | ProxyError::UnknownUserOrDatabase(_)
            | ProxyError::TlsRequired
            | ProxyError::StartupTimeout(_)
            | ProxyError::StartupSetting { .. }
            | ProxyError::SettingReplay { .. }
            | ProxyError::AdminSimpleQueryOnly
            | ProxyError::AdminSyntax(_) => Side::Client,
            ProxyError::BackendConnect { .. }
            | ProxyError::BackendLost(_)
            | ProxyError::BackendSetup(_)
            | ProxyError::NoReplica(_) => Side::Backend,
            ProxyError::TooManyClients { .. }
            | ProxyError::CheckoutTimeout { .. }
            | ProxyError::ShuttingDown
            | ProxyError::Stopped
            | ProxyError::ReloadUnavailable
            | ProxyError::ReloadRefused(_)
            | ProxyError::ReloadUnanswered => Side::Pgtide,
        }
    }

    /// Whether what the client was running may be sent again (see [`RetrySafe`]).
    pub(crate) fn retry_safe(&self) -> RetrySafe {
        match self {
            // Refused before anything of the client's was sent (startup, checkout, routing,
            // the settings replay in front of its first message, an admin command).
            ProxyError::BadPassword { .. }
            | ProxyError::ClientProtocolMsg(_)
            | ProxyError::UnknownUserOrDatabase(_)
            | ProxyError::TlsRequired
            | ProxyError::TooManyClients { .. }
            | ProxyError::CheckoutTimeout { .. }
            | ProxyError::StartupTimeout(_)
            | ProxyError::BackendConnect { .. }
            | ProxyError::BackendSetup(_)
            | ProxyError::ShuttingDown
            | ProxyError::NoReplica(_)
            | ProxyError::StartupSetting { .. }
            | ProxyError::SettingReplay { .. }
            | ProxyError::AdminSimpleQueryOnly
            | ProxyError::AdminSyntax(_)
            | ProxyError::ReloadUnavailable
            | ProxyError::ReloadRefused(_) => RetrySafe::Yes,
            // The client's statements were on the backend.
            ProxyError::BackendLost(_) => RetrySafe::No,
            // Messages before a broken frame may have run; a client gone, or a stop at once,
            // leaves whatever was in flight; a reload may have happened unanswered.
            ProxyError::ClientProtocol(_)
            | ProxyError::ClientIo(_)
            | ProxyError::Stopped
            | ProxyError::ReloadUnanswered => RetrySafe::Unknown,
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
                | ProxyError::AdminSimpleQueryOnly
                | ProxyError::AdminSyntax(_)
                | ProxyError::ReloadUnavailable
                | ProxyError::ReloadRefused(_)
                | ProxyError::ReloadUnanswered
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

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Client => "client",
            Side::Backend => "backend",
            Side::Pgtide => "pgtide",
        })
    }
}

impl fmt::Display for RetrySafe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RetrySafe::Yes => "yes",
            RetrySafe::No => "no",
            RetrySafe::Unknown => "unknown",
        })
    }
}

pub(crate) type Result<T, E = ProxyError> = std::result::Result<T, E>;

#[cfg(test)]
#[path = "error_tests.rs"]
mod tests;
