//! Views of backend (server -> client) message bodies.

use crate::reader::Reader;
use crate::WireError;

/// The transaction status of a ReadyForQuery: `b'I'` idle, `b'T'` in a transaction, `b'E'` in
/// a failed transaction.
pub fn ready_for_query_status(body: &[u8]) -> Result<u8, WireError> {
    let mut r = Reader::new(body, "ReadyForQuery message");
    let status = r.u8()?;
    r.finish()?;
    match status {
        b'I' | b'T' | b'E' => Ok(status),
        _ => Err(WireError::Malformed {
            what: "ReadyForQuery with an unknown transaction status",
        }),
    }
}

/// The fields of an ErrorResponse / NoticeResponse the proxy logs or acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorFields {
    /// The non-localized severity (`V`) when sent, otherwise the localized one (`S`).
    pub severity: String,
    /// The SQLSTATE (`C`).
    pub code: String,
    /// The primary message (`M`).
    pub message: String,
    /// `D`, if present.
    pub detail: Option<String>,
    /// `H`, if present.
    pub hint: Option<String>,
}

/// Reads an ErrorResponse or NoticeResponse body. Text is decoded lossily: it is in the
/// client's encoding, which need not be UTF-8, and is only shown or logged.
pub fn error_fields(body: &[u8]) -> Result<ErrorFields, WireError> {
    let mut r = Reader::new(body, "ErrorResponse/NoticeResponse message");
    let (mut localized, mut severity, mut code, mut message) = (None, None, None, None);
    let (mut detail, mut hint) = (None, None);
    loop {
        let field = r.u8()?;
        if field == 0 {
            break;
        }
        let value = String::from_utf8_lossy(r.cstr_bytes()?).into_owned();
        match field {
            b'S' => localized = Some(value),
            b'V' => severity = Some(value),
            b'C' => code = Some(value),
            b'M' => message = Some(value),
            b'D' => detail = Some(value),
            b'H' => hint = Some(value),
            _ => {}
        }
    }
    r.finish()?;
    match (severity.or(localized), code, message) {
        (Some(severity), Some(code), Some(message)) => Ok(ErrorFields {
            severity,
            code,
            message,
            detail,
            hint,
        }),
        _ => Err(WireError::Malformed {
            what: "ErrorResponse/NoticeResponse lacks severity, code or message",
        }),
    }
}

/// The name and value of a ParameterStatus. Strict UTF-8: the proxy may replay these values,
/// so it must not alter them.
pub fn parameter_status(body: &[u8]) -> Result<(String, String), WireError> {
    let mut r = Reader::new(body, "ParameterStatus message");
    let name = r.cstr()?.to_owned();
    let value = r.cstr()?.to_owned();
    r.finish()?;
    Ok((name, value))
}

/// The process id and secret key of a BackendKeyData (protocol 3.0: a 4-byte key).
pub fn backend_key_data(body: &[u8]) -> Result<(i32, i32), WireError> {
    let mut r = Reader::new(body, "BackendKeyData message");
    let pid = r.i32()?;
    let key = r.i32()?;
    r.finish()?;
    Ok((pid, key))
}

/// The command tag of a CommandComplete, e.g. `"INSERT 0 1"`.
pub fn command_complete_tag(body: &[u8]) -> Result<&str, WireError> {
    let mut r = Reader::new(body, "CommandComplete message");
    let tag = r.cstr()?;
    r.finish()?;
    Ok(tag)
}

/// A DataRow: each column's value, `None` for SQL NULL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataRowView<'a> {
    pub columns: Vec<Option<&'a [u8]>>,
}

pub fn data_row(body: &[u8]) -> Result<DataRowView<'_>, WireError> {
    let mut r = Reader::new(body, "DataRow message");
    // Each column takes at least its 4-byte length, so `count` bounds the allocation.
    let n = r.count(4)?;
    let mut columns = Vec::with_capacity(n);
    for _ in 0..n {
        columns.push(match r.i32()? {
            -1 => None,
            len => {
                let len = usize::try_from(len).map_err(|_| WireError::Malformed {
                    what: "DataRow message has a negative column length",
                })?;
                Some(r.bytes(len)?)
            }
        });
    }
    r.finish()?;
    Ok(DataRowView { columns })
}

/// A NotificationResponse ('A'). Channel and payload are raw bytes: they are in the server's
/// encoding, which need not be UTF-8.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationView<'a> {
    pub process_id: i32,
    pub channel: &'a [u8],
    pub payload: &'a [u8],
}

pub fn notification_response(body: &[u8]) -> Result<NotificationView<'_>, WireError> {
    let mut r = Reader::new(body, "NotificationResponse message");
    let process_id = r.i32()?;
    let channel = r.cstr_bytes()?;
    let payload = r.cstr_bytes()?;
    r.finish()?;
    Ok(NotificationView {
        process_id,
        channel,
        payload,
    })
}

/// What an Authentication ('R') message asks of the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthRequest {
    Ok,
    CleartextPassword,
    Md5Password {
        salt: [u8; 4],
    },
    Sasl {
        mechanisms: Vec<String>,
    },
    SaslContinue(Vec<u8>),
    SaslFinal(Vec<u8>),
    /// Any other request code (Kerberos, GSSAPI, SSPI, ...): the proxy does not speak it.
    Unsupported(i32),
}

/// Reads an Authentication message body.
pub fn authentication(body: &[u8]) -> Result<AuthRequest, WireError> {
    let mut r = Reader::new(body, "Authentication message");
    let request = match r.i32()? {
        0 => AuthRequest::Ok,
        3 => AuthRequest::CleartextPassword,
        5 => {
            let mut salt = [0u8; 4];
            salt.copy_from_slice(r.bytes(4)?);
            AuthRequest::Md5Password { salt }
        }
        10 => {
            let mut mechanisms = Vec::new();
            loop {
                let m = r.cstr()?;
                if m.is_empty() {
                    break;
                }
                mechanisms.push(m.to_owned());
            }
            AuthRequest::Sasl { mechanisms }
        }
        11 => AuthRequest::SaslContinue(r.rest().to_vec()),
        12 => AuthRequest::SaslFinal(r.rest().to_vec()),
        other => {
            r.rest();
            AuthRequest::Unsupported(other)
        }
    };
    r.finish()?;
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_for_query() {
        for s in [b'I', b'T', b'E'] {
            assert_eq!(ready_for_query_status(&[s]), Ok(s));
        }
        assert!(matches!(
            ready_for_query_status(b"X"),
            Err(WireError::Malformed { .. })
        ));
        assert!(matches!(
            ready_for_query_status(b""),
            Err(WireError::Truncated { .. })
        ));
        assert!(matches!(
            ready_for_query_status(b"II"),
            Err(WireError::TrailingBytes { .. })
        ));
    }

    #[test]
    fn error_response_fields() {
        let body = b"SERROR\0VERROR\0C42P01\0Mrelation \"x\" does not exist\0P15\0\0";
        let e = error_fields(body).unwrap();
        assert_eq!(e.severity, "ERROR");
        assert_eq!(e.code, "42P01");
        assert_eq!(e.message, "relation \"x\" does not exist");
        assert_eq!((e.detail, e.hint), (None, None));

        let body = b"SFEHLER\0VFATAL\0C28P01\0Mno\xff\0Dd\0Hh\0\0";
        let e = error_fields(body).unwrap();
        assert_eq!(e.severity, "FATAL", "V wins over localized S");
        assert_eq!(e.message, "no\u{fffd}");
        assert_eq!(
            (e.detail.as_deref(), e.hint.as_deref()),
            (Some("d"), Some("h"))
        );

        assert!(matches!(
            error_fields(b"SERROR\0C1\0\0"),
            Err(WireError::Malformed { .. })
        ));
        assert!(matches!(
            error_fields(b"SERROR\0"),
            Err(WireError::Truncated { .. })
        ));
        assert!(matches!(
            error_fields(b"SERROR"),
            Err(WireError::MissingNul { .. })
        ));
        assert!(matches!(
            error_fields(b""),
            Err(WireError::Truncated { .. })
        ));
        assert!(matches!(
            error_fields(b"SE\0CC\0MM\0\0x"),
            Err(WireError::TrailingBytes { .. })
        ));
    }

    #[test]
    fn parameter_status_pairs() {
        assert_eq!(
            parameter_status(b"TimeZone\0UTC\0"),
            Ok(("TimeZone".to_owned(), "UTC".to_owned()))
        );
        assert!(matches!(
            parameter_status(b"TimeZone\0UTC"),
            Err(WireError::MissingNul { .. })
        ));
        assert!(matches!(
            parameter_status(b"a\0\xff\0"),
            Err(WireError::InvalidUtf8 { .. })
        ));
        assert!(matches!(
            parameter_status(b"a\0b\0c"),
            Err(WireError::TrailingBytes { .. })
        ));
    }

    #[test]
    fn backend_key() {
        assert_eq!(
            backend_key_data(&[0, 0, 0, 7, 0xff, 0xff, 0xff, 0xfe]),
            Ok((7, -2))
        );
        assert!(matches!(
            backend_key_data(&[0; 7]),
            Err(WireError::Truncated { .. })
        ));
        assert!(matches!(
            backend_key_data(&[0; 9]),
            Err(WireError::TrailingBytes { .. })
        ));
    }

    #[test]
    fn command_complete() {
        assert_eq!(command_complete_tag(b"INSERT 0 1\0"), Ok("INSERT 0 1"));
        assert!(command_complete_tag(b"SELECT 1").is_err());
        assert!(command_complete_tag(b"A\0B\0").is_err());
    }

    #[test]
    fn data_rows() {
        let row = data_row(b"\0\x03\0\0\0\x011\xff\xff\xff\xff\0\0\0\0").unwrap();
        assert_eq!(row.columns, vec![Some(&b"1"[..]), None, Some(&b""[..])]);
        assert_eq!(
            data_row(b"\0\0").unwrap().columns,
            Vec::<Option<&[u8]>>::new()
        );
        let body = b"\0\x02\0\0\0\x02ab\0\0\0\x01c";
        for cut in 0..body.len() {
            assert!(data_row(&body[..cut]).is_err(), "cut {cut}");
        }
        assert!(matches!(
            data_row(b"\0\x01\xff\xff\xff\xfe"),
            Err(WireError::Malformed { .. })
        ));
        assert!(matches!(
            data_row(b"\0\x01\0\0\0\0x"),
            Err(WireError::TrailingBytes { .. })
        ));
        // Unsigned count with nothing behind it: refused before allocating.
        assert!(matches!(
            data_row(b"\xff\xff"),
            Err(WireError::Truncated { .. })
        ));
    }

    #[test]
    fn notifications() {
        let n = notification_response(b"\0\0\0\x2achan\0{\"i\":1}\0").unwrap();
        assert_eq!(
            (n.process_id, n.channel, n.payload),
            (42, &b"chan"[..], &b"{\"i\":1}"[..])
        );
        assert!(matches!(
            notification_response(b"\0\0"),
            Err(WireError::Truncated { .. })
        ));
        assert!(matches!(
            notification_response(b"\0\0\0\0chan"),
            Err(WireError::MissingNul { .. })
        ));
        assert!(matches!(
            notification_response(b"\0\0\0\0c\0p\0x"),
            Err(WireError::TrailingBytes { .. })
        ));
    }

    #[test]
    fn authentication_requests() {
        let code = |c: i32, rest: &[u8]| [&c.to_be_bytes()[..], rest].concat();
        assert_eq!(authentication(&code(0, b"")), Ok(AuthRequest::Ok));
        assert_eq!(
            authentication(&code(3, b"")),
            Ok(AuthRequest::CleartextPassword)
        );
        assert_eq!(
            authentication(&code(5, b"abcd")),
            Ok(AuthRequest::Md5Password { salt: *b"abcd" })
        );
        assert_eq!(
            authentication(&code(10, b"SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0")),
            Ok(AuthRequest::Sasl {
                mechanisms: vec!["SCRAM-SHA-256-PLUS".into(), "SCRAM-SHA-256".into()]
            })
        );
        assert_eq!(
            authentication(&code(11, b"r=x")),
            Ok(AuthRequest::SaslContinue(b"r=x".to_vec()))
        );
        assert_eq!(
            authentication(&code(12, b"v=y")),
            Ok(AuthRequest::SaslFinal(b"v=y".to_vec()))
        );
        assert_eq!(
            authentication(&code(7, b"")),
            Ok(AuthRequest::Unsupported(7))
        );
        assert_eq!(
            authentication(&code(8, b"gss")),
            Ok(AuthRequest::Unsupported(8))
        );

        assert!(matches!(
            authentication(b"\0\0\0"),
            Err(WireError::Truncated { .. })
        ));
        assert!(matches!(
            authentication(&code(0, b"x")),
            Err(WireError::TrailingBytes { .. })
        ));
        assert!(matches!(
            authentication(&code(5, b"abc")),
            Err(WireError::Truncated { .. })
        ));
        assert!(matches!(
            authentication(&code(5, b"abcde")),
            Err(WireError::TrailingBytes { .. })
        ));
        assert!(matches!(
            authentication(&code(10, b"SCRAM\0")),
            Err(WireError::MissingNul { .. })
        ));
        assert!(matches!(
            authentication(&code(10, b"\xff\0\0")),
            Err(WireError::InvalidUtf8 { .. })
        ));
        assert!(matches!(
            authentication(&code(10, b"\0x")),
            Err(WireError::TrailingBytes { .. })
        ));
    }
}
