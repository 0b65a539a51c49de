//! The one error type of this crate. Every decoder returns it instead of panicking, and its
//! `Display` text is written to be shown to a client in an ErrorResponse.

use std::ascii::escape_default;

use crate::startup::MAX_STARTUP_PACKET;

/// Why some bytes could not be framed or read as the message they claim to be.
///
/// `what` fields name the message (and part) being read, e.g. `"Bind message"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The length field announces more than the configured maximum; rejected before buffering.
    #[error("message '{}' of {len} bytes exceeds the maximum message size of {max} bytes", escape_default(*.tag))]
    MessageTooLarge { tag: u8, len: usize, max: usize },
    /// The length field is smaller than the 4 bytes of the length itself.
    #[error("invalid message length {len} for message '{}'", escape_default(*.tag))]
    BadLength { tag: u8, len: i32 },
    /// The bytes are present but their content breaks a rule of the protocol.
    #[error("invalid message format: {what}")]
    Malformed { what: &'static str },
    /// The message ended before a field it must contain.
    #[error("invalid message format: {what} is truncated")]
    Truncated { what: &'static str },
    /// A string field is not NUL-terminated within the message.
    #[error("invalid message format: {what} has an unterminated string")]
    MissingNul { what: &'static str },
    /// A string field the proxy must read as text is not valid UTF-8.
    #[error("invalid message format: {what} contains invalid UTF-8")]
    InvalidUtf8 { what: &'static str },
    /// Bytes remain after the last field of a fixed-layout message.
    #[error("invalid message format: {what} has {extra} unexpected trailing bytes")]
    TrailingBytes { what: &'static str, extra: usize },
    /// A startup packet longer than [`MAX_STARTUP_PACKET`]; rejected before buffering.
    #[error(
        "invalid length of startup packet: {len} bytes exceeds the maximum of {MAX_STARTUP_PACKET}"
    )]
    StartupTooLarge { len: usize },
    /// A startup packet length smaller than its 8-byte header.
    #[error("invalid length of startup packet: {len}")]
    StartupBadLength { len: i32 },
    /// A startup packet asking for a protocol other than 3.x (or an unknown request code).
    #[error("unsupported frontend protocol {major}.{minor}: server supports 3.0 to 3.x")]
    UnsupportedProtocol { major: u16, minor: u16 },
    /// A StartupMessage without a (non-empty) "user" parameter.
    #[error("no PostgreSQL user name specified in startup packet")]
    MissingUser,
    /// A StartupMessage naming the same parameter twice.
    #[error("duplicate startup parameter \"{name}\"")]
    DuplicateParameter { name: String },
    /// An encoder was asked for a message longer than its i32 length field can state.
    #[error("cannot encode {what}: {len} bytes exceed the protocol's limit of 2147483647")]
    TooLong { what: &'static str, len: usize },
    /// An encoder was asked for more items than the protocol's unsigned 16-bit count holds.
    #[error("cannot encode {what}: {count} items exceed the protocol's limit of 65535")]
    TooMany { what: &'static str, count: usize },
}

impl WireError {
    /// The SQLSTATE PostgreSQL itself reports for this kind of failure, for the ErrorResponse.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            WireError::UnsupportedProtocol { .. } => "0A000", // feature_not_supported
            WireError::MissingUser => "28000",                // invalid_authorization_specification
            WireError::TooLong { .. } | WireError::TooMany { .. } => "54000", // program_limit_exceeded
            _ => "08P01",                                                     // protocol_violation
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_escapes_tags_and_names_limits() {
        let e = WireError::MessageTooLarge {
            tag: b'Q',
            len: 10,
            max: 5,
        };
        assert_eq!(
            e.to_string(),
            "message 'Q' of 10 bytes exceeds the maximum message size of 5 bytes"
        );
        let e = WireError::BadLength { tag: 0xff, len: -1 };
        assert_eq!(
            e.to_string(),
            "invalid message length -1 for message '\\xff'"
        );
        let e = WireError::StartupTooLarge { len: 20_000 };
        assert!(e.to_string().contains("10000"));
        let e = WireError::UnsupportedProtocol { major: 2, minor: 0 };
        assert!(e
            .to_string()
            .starts_with("unsupported frontend protocol 2.0"));
    }

    #[test]
    fn sqlstates() {
        assert_eq!(WireError::MissingUser.sqlstate(), "28000");
        assert_eq!(
            WireError::UnsupportedProtocol { major: 1, minor: 0 }.sqlstate(),
            "0A000"
        );
        assert_eq!(WireError::Malformed { what: "x" }.sqlstate(), "08P01");
        let e = WireError::TooMany {
            what: "Bind message",
            count: 65536,
        };
        assert_eq!(e.sqlstate(), "54000");
        assert!(e.to_string().contains("65536 items"));
    }
}
