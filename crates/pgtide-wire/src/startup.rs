//! The untagged startup-phase packets: an i32 length (counting itself), an i32 request code,
//! then a code-specific payload. These arrive before any tagged message, so they have their
//! own decoder and a small hard size limit.

use bytes::BytesMut;

use crate::reader::Reader;
use crate::WireError;

/// Largest startup packet accepted, as in PostgreSQL (`MAX_STARTUP_PACKET_LENGTH`).
pub const MAX_STARTUP_PACKET: usize = 10_000;
/// Request code of a CancelRequest (1234.5678).
pub const CANCEL_REQUEST_CODE: i32 = 80_877_102;
/// Request code of an SSLRequest (1234.5679).
pub const SSL_REQUEST_CODE: i32 = 80_877_103;
/// Request code of a GSSENCRequest (1234.5680).
pub const GSSENC_REQUEST_CODE: i32 = 80_877_104;
/// Protocol version 3.0 as sent in a StartupMessage.
pub const PROTOCOL_3_0: i32 = 3 << 16;

const WHAT: &str = "startup packet";

/// One decoded startup-phase packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartupPacket {
    SslRequest,
    GssEncRequest,
    Cancel {
        process_id: i32,
        secret_key: i32,
    },
    /// Protocol 3.x; `params` in the order sent, keys unique.
    Startup {
        major: u16,
        minor: u16,
        params: Vec<(String, String)>,
    },
}

impl StartupPacket {
    /// The value of a StartupMessage parameter; `None` for other packets.
    pub fn param(&self, key: &str) -> Option<&str> {
        match self {
            StartupPacket::Startup { params, .. } => params
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str()),
            _ => None,
        }
    }

    /// The (always present, non-empty) user of a StartupMessage.
    pub fn user(&self) -> Option<&str> {
        self.param("user")
    }
}

/// Takes one startup packet off the front of `buf`.
///
/// `Ok(None)` means more bytes are needed. The length is checked as soon as its 4 bytes are
/// visible. Protocol 3.x minor versions are all accepted; the caller decides whether to answer
/// NegotiateProtocolVersion.
/// A complete packet is consumed from `buf` even when it is then rejected: the connection
/// is expected to be closed after any startup error.
pub fn decode_startup(buf: &mut BytesMut) -> Result<Option<StartupPacket>, WireError> {
    let Some(&[l0, l1, l2, l3]) = buf.get(..4) else {
        return Ok(None);
    };
    let len = i32::from_be_bytes([l0, l1, l2, l3]);
    let total = usize::try_from(len)
        .ok()
        .filter(|&l| l >= 8)
        .ok_or(WireError::StartupBadLength { len })?;
    if total > MAX_STARTUP_PACKET {
        return Err(WireError::StartupTooLarge { len: total });
    }
    if buf.len() < total {
        buf.reserve(total - buf.len());
        return Ok(None);
    }
    let packet = buf.split_to(total);
    parse_packet(packet.get(4..).unwrap_or_default()).map(Some)
}

/// The first byte of a TLS handshake record: a client starting TLS at once (PostgreSQL 17's
/// `sslnegotiation=direct`) instead of with an SSLRequest.
pub const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// What the start of a connection asks for, looked at without consuming it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opening {
    /// Fewer than 8 bytes so far, and they may still be an SSLRequest or GSSENCRequest.
    NeedMore,
    /// A whole SSLRequest (8 bytes) is at the front.
    SslRequest,
    /// A whole GSSENCRequest is at the front.
    GssEncRequest,
    /// A TLS handshake record: direct TLS.
    DirectTls,
    /// Anything else: a startup or cancel packet (or garbage) for [`decode_startup`].
    Other,
}

/// Looks at the front of what a client sent first (see [`Opening`]).
pub fn opening(buf: &[u8]) -> Opening {
    if buf.first() == Some(&TLS_HANDSHAKE_RECORD) {
        return Opening::DirectTls;
    }
    let expected = |code: i32| {
        let mut v = 8i32.to_be_bytes().to_vec();
        v.extend_from_slice(&code.to_be_bytes());
        v
    };
    let (ssl, gss) = (expected(SSL_REQUEST_CODE), expected(GSSENC_REQUEST_CODE));
    let n = buf.len().min(8);
    let could_be = |req: &[u8]| req.get(..n) == buf.get(..n);
    match () {
        _ if n == 8 && could_be(&ssl) => Opening::SslRequest,
        _ if n == 8 && could_be(&gss) => Opening::GssEncRequest,
        _ if n < 8 && (could_be(&ssl) || could_be(&gss)) => Opening::NeedMore,
        _ => Opening::Other,
    }
}

/// Parses code + payload (everything after the length).
fn parse_packet(data: &[u8]) -> Result<StartupPacket, WireError> {
    let mut r = Reader::new(data, WHAT);
    let code = r.i32()?;
    match code {
        SSL_REQUEST_CODE => r.finish().map(|()| StartupPacket::SslRequest),
        GSSENC_REQUEST_CODE => r.finish().map(|()| StartupPacket::GssEncRequest),
        CANCEL_REQUEST_CODE => {
            let process_id = r.i32()?;
            let secret_key = r.i32()?;
            r.finish()?;
            Ok(StartupPacket::Cancel {
                process_id,
                secret_key,
            })
        }
        _ => {
            let (major, minor) = ((code >> 16) as u16, code as u16);
            if major != 3 {
                return Err(WireError::UnsupportedProtocol { major, minor });
            }
            let params = parse_params(&mut r)?;
            Ok(StartupPacket::Startup {
                major,
                minor,
                params,
            })
        }
    }
}

/// Key/value C strings ended by an empty key, which must be the last byte.
fn parse_params(r: &mut Reader<'_>) -> Result<Vec<(String, String)>, WireError> {
    let mut params: Vec<(String, String)> = Vec::new();
    loop {
        let key = r.cstr()?;
        if key.is_empty() {
            break;
        }
        let value = r.cstr()?;
        if params.iter().any(|(k, _)| k == key) {
            return Err(WireError::DuplicateParameter {
                name: key.to_owned(),
            });
        }
        params.push((key.to_owned(), value.to_owned()));
    }
    if r.remaining() != 0 {
        return Err(WireError::Malformed {
            what: "invalid startup packet layout: expected terminator as last byte",
        });
    }
    if !params.iter().any(|(k, v)| k == "user" && !v.is_empty()) {
        return Err(WireError::MissingUser);
    }
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(code: i32, payload: &[u8]) -> BytesMut {
        let mut b = BytesMut::new();
        b.extend_from_slice(&(payload.len() as i32 + 8).to_be_bytes());
        b.extend_from_slice(&code.to_be_bytes());
        b.extend_from_slice(payload);
        b
    }

    fn decode(mut b: BytesMut) -> Result<Option<StartupPacket>, WireError> {
        decode_startup(&mut b)
    }

    #[test]
    fn ssl_gss_and_cancel() {
        assert_eq!(
            decode(packet(SSL_REQUEST_CODE, b"")),
            Ok(Some(StartupPacket::SslRequest))
        );
        assert_eq!(
            decode(packet(GSSENC_REQUEST_CODE, b"")),
            Ok(Some(StartupPacket::GssEncRequest))
        );
        let mut payload = 42i32.to_be_bytes().to_vec();
        payload.extend_from_slice(&(-7i32).to_be_bytes());
        assert_eq!(
            decode(packet(CANCEL_REQUEST_CODE, &payload)),
            Ok(Some(StartupPacket::Cancel {
                process_id: 42,
                secret_key: -7
            }))
        );
        // Wrong sizes for fixed-size requests.
        assert!(matches!(
            decode(packet(CANCEL_REQUEST_CODE, &payload[..6])),
            Err(WireError::Truncated { .. })
        ));
        assert!(matches!(
            decode(packet(SSL_REQUEST_CODE, b"x")),
            Err(WireError::TrailingBytes { extra: 1, .. })
        ));
        payload.push(0);
        assert!(decode(packet(CANCEL_REQUEST_CODE, &payload)).is_err());
    }

    #[test]
    fn startup_message_params() {
        let b = packet(PROTOCOL_3_0, b"user\0alice\0database\0db\0\0");
        let p = decode(b).unwrap().unwrap();
        assert_eq!(p.param("user"), Some("alice"));
        assert_eq!(p.user(), Some("alice"));
        assert_eq!(p.param("database"), Some("db"));
        assert_eq!(p.param("nope"), None);
        assert_eq!(StartupPacket::SslRequest.param("user"), None);
        match p {
            StartupPacket::Startup {
                major,
                minor,
                params,
            } => {
                assert_eq!((major, minor, params.len()), (3, 0, 2));
            }
            other => panic!("unexpected {other:?}"),
        }
        let p = decode(packet((3 << 16) | 2, b"user\0u\0\0"))
            .unwrap()
            .unwrap();
        assert!(matches!(
            p,
            StartupPacket::Startup {
                major: 3,
                minor: 2,
                ..
            }
        ));
    }

    #[test]
    fn startup_message_errors() {
        let cases: &[(&[u8], WireError)] = &[
            (b"database\0db\0\0", WireError::MissingUser),
            (b"user\0\0\0", WireError::MissingUser),
            (b"\0", WireError::MissingUser),
            (
                b"user\0a\0user\0b\0\0",
                WireError::DuplicateParameter {
                    name: "user".into(),
                },
            ),
            (b"user\0a\0", WireError::MissingNul { what: WHAT }),
            (b"user\0a", WireError::MissingNul { what: WHAT }),
            (b"user\0", WireError::MissingNul { what: WHAT }),
            (b"", WireError::MissingNul { what: WHAT }),
            (b"us\xffer\0a\0\0", WireError::InvalidUtf8 { what: WHAT }),
            (b"user\0\xff\0\0", WireError::InvalidUtf8 { what: WHAT }),
        ];
        for (payload, err) in cases {
            assert_eq!(
                decode(packet(PROTOCOL_3_0, payload)).as_ref(),
                Err(err),
                "{payload:?}"
            );
        }
        assert!(matches!(
            decode(packet(PROTOCOL_3_0, b"user\0a\0\0junk")),
            Err(WireError::Malformed { .. })
        ));
    }

    #[test]
    fn unsupported_protocols_and_codes() {
        assert_eq!(
            decode(packet(2 << 16, b"")),
            Err(WireError::UnsupportedProtocol { major: 2, minor: 0 })
        );
        assert_eq!(
            decode(packet(80_877_105, b"")),
            Err(WireError::UnsupportedProtocol {
                major: 1234,
                minor: 5681
            })
        );
        assert_eq!(
            decode(packet(-1, b"")),
            Err(WireError::UnsupportedProtocol {
                major: 0xffff,
                minor: 0xffff
            })
        );
    }

    #[test]
    fn lengths_are_checked_before_buffering() {
        for len in [0i32, 4, 7, -1, i32::MIN] {
            let mut b = BytesMut::from(&len.to_be_bytes()[..]);
            assert_eq!(
                decode_startup(&mut b),
                Err(WireError::StartupBadLength { len })
            );
        }
        let mut b = BytesMut::from(&10_001i32.to_be_bytes()[..]);
        assert_eq!(
            decode_startup(&mut b),
            Err(WireError::StartupTooLarge { len: 10_001 })
        );
        let mut b = BytesMut::from(&10_000i32.to_be_bytes()[..]);
        assert_eq!(decode_startup(&mut b), Ok(None));
    }

    #[test]
    fn partial_packets_wait_and_leave_the_rest() {
        let mut full = packet(PROTOCOL_3_0, b"user\0u\0\0");
        for cut in 0..full.len() {
            let mut b = BytesMut::from(&full[..cut]);
            assert_eq!(decode_startup(&mut b), Ok(None), "cut {cut}");
            assert_eq!(b.len(), cut);
        }
        full.extend_from_slice(b"Q");
        assert!(decode_startup(&mut full).unwrap().is_some());
        assert_eq!(&full[..], b"Q");
    }

    #[test]
    fn openings_are_told_apart_without_consuming() {
        let ssl = packet(SSL_REQUEST_CODE, b"");
        assert_eq!(opening(&ssl), Opening::SslRequest);
        assert_eq!(opening(&ssl[..5]), Opening::NeedMore);
        assert_eq!(opening(&[]), Opening::NeedMore);
        assert_eq!(
            opening(&packet(GSSENC_REQUEST_CODE, b"")),
            Opening::GssEncRequest
        );
        assert_eq!(opening(&[0x16, 3, 1]), Opening::DirectTls);
        assert_eq!(
            opening(&packet(CANCEL_REQUEST_CODE, &[0; 8])),
            Opening::Other
        );
        assert_eq!(opening(&[0, 0, 0, 9]), Opening::Other);
    }
}
