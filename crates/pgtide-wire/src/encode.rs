//! Encoders that append one complete message to a caller's buffer, so building output never
//! touches a socket and can be tested byte for byte. Strings are written as C strings and are
//! cut at an interior NUL (which the protocol cannot carry) rather than corrupting the framing.

use bytes::{BufMut, BytesMut};

use crate::startup::{CANCEL_REQUEST_CODE, PROTOCOL_3_0, SSL_REQUEST_CODE};
use crate::tags::{backend, frontend};

/// Type OID of `text`, used for every column the proxy describes itself.
pub const TEXT_OID: u32 = 25;

/// Writes `tag`, a length placeholder and the body from `f`, then patches the length.
fn message(buf: &mut BytesMut, tag: u8, f: impl FnOnce(&mut BytesMut)) {
    buf.put_u8(tag);
    untagged(buf, f);
}

/// Writes a length-prefixed body (the startup-phase packets have no tag).
fn untagged(buf: &mut BytesMut, f: impl FnOnce(&mut BytesMut)) {
    let start = buf.len();
    buf.put_i32(0);
    f(buf);
    let len = i32::try_from(buf.len() - start).unwrap_or(i32::MAX);
    if let Some(slot) = buf.get_mut(start..start + 4) {
        slot.copy_from_slice(&len.to_be_bytes());
    }
}

fn cstr(buf: &mut BytesMut, s: &[u8]) {
    let end = s.iter().position(|&b| b == 0).unwrap_or(s.len());
    buf.put_slice(s.get(..end).unwrap_or_default());
    buf.put_u8(0);
}

/// A count of items as the protocol's i16, capped (callers never come near the cap).
fn count16(n: usize) -> i16 {
    i16::try_from(n).unwrap_or(i16::MAX)
}

/// Length-prefixed bytes (i32 length, then data).
fn counted(buf: &mut BytesMut, data: &[u8]) {
    buf.put_i32(i32::try_from(data.len()).unwrap_or(i32::MAX));
    buf.put_slice(data);
}

fn fields(buf: &mut BytesMut, tag: u8, severity: &str, code: &str, message_text: &str) {
    message(buf, tag, |b| {
        for (field, value) in [
            (b'S', severity),
            (b'V', severity),
            (b'C', code),
            (b'M', message_text),
        ] {
            b.put_u8(field);
            cstr(b, value.as_bytes());
        }
        b.put_u8(0);
    });
}

/// ErrorResponse with fields S, V (same as S), C and M.
pub fn error_response(buf: &mut BytesMut, severity: &str, code: &str, message: &str) {
    fields(buf, backend::ERROR_RESPONSE, severity, code, message);
}

/// NoticeResponse with fields S, V (same as S), C and M.
pub fn notice_response(buf: &mut BytesMut, severity: &str, code: &str, message: &str) {
    fields(buf, backend::NOTICE_RESPONSE, severity, code, message);
}

fn auth(buf: &mut BytesMut, code: i32, f: impl FnOnce(&mut BytesMut)) {
    message(buf, backend::AUTHENTICATION, |b| {
        b.put_i32(code);
        f(b);
    });
}

pub fn authentication_ok(buf: &mut BytesMut) {
    auth(buf, 0, |_| {});
}

pub fn authentication_cleartext(buf: &mut BytesMut) {
    auth(buf, 3, |_| {});
}

pub fn authentication_md5(buf: &mut BytesMut, salt: [u8; 4]) {
    auth(buf, 5, |b| b.put_slice(&salt));
}

pub fn authentication_sasl(buf: &mut BytesMut, mechanisms: &[&str]) {
    auth(buf, 10, |b| {
        mechanisms
            .iter()
            .filter(|m| !m.is_empty())
            .for_each(|m| cstr(b, m.as_bytes()));
        b.put_u8(0);
    });
}

pub fn authentication_sasl_continue(buf: &mut BytesMut, data: &[u8]) {
    auth(buf, 11, |b| b.put_slice(data));
}

pub fn authentication_sasl_final(buf: &mut BytesMut, data: &[u8]) {
    auth(buf, 12, |b| b.put_slice(data));
}

pub fn parameter_status(buf: &mut BytesMut, name: &str, value: &str) {
    message(buf, backend::PARAMETER_STATUS, |b| {
        cstr(b, name.as_bytes());
        cstr(b, value.as_bytes());
    });
}

pub fn backend_key_data(buf: &mut BytesMut, process_id: i32, secret_key: i32) {
    message(buf, backend::BACKEND_KEY_DATA, |b| {
        b.put_i32(process_id);
        b.put_i32(secret_key);
    });
}

/// ReadyForQuery; `status` is `b'I'`, `b'T'` or `b'E'`.
pub fn ready_for_query(buf: &mut BytesMut, status: u8) {
    message(buf, backend::READY_FOR_QUERY, |b| b.put_u8(status));
}

/// RowDescription of text columns (type 25, text format), not tied to a table.
pub fn row_description(buf: &mut BytesMut, columns: &[&str]) {
    message(buf, backend::ROW_DESCRIPTION, |b| {
        let n = count16(columns.len());
        b.put_i16(n);
        for name in columns.iter().take(n as usize) {
            cstr(b, name.as_bytes());
            b.put_u32(0); // table OID
            b.put_i16(0); // column attribute number
            b.put_u32(TEXT_OID);
            b.put_i16(-1); // type size: variable
            b.put_i32(-1); // type modifier
            b.put_i16(0); // format: text
        }
    });
}

/// DataRow of text values; `None` is SQL NULL.
pub fn data_row(buf: &mut BytesMut, values: &[Option<&str>]) {
    message(buf, backend::DATA_ROW, |b| {
        let n = count16(values.len());
        b.put_i16(n);
        for value in values.iter().take(n as usize) {
            match value {
                Some(v) => counted(b, v.as_bytes()),
                None => b.put_i32(-1),
            }
        }
    });
}

pub fn command_complete(buf: &mut BytesMut, tag: &str) {
    message(buf, backend::COMMAND_COMPLETE, |b| cstr(b, tag.as_bytes()));
}

pub fn empty_query_response(buf: &mut BytesMut) {
    message(buf, backend::EMPTY_QUERY_RESPONSE, |_| {});
}

pub fn parse_complete(buf: &mut BytesMut) {
    message(buf, backend::PARSE_COMPLETE, |_| {});
}

pub fn bind_complete(buf: &mut BytesMut) {
    message(buf, backend::BIND_COMPLETE, |_| {});
}

pub fn close_complete(buf: &mut BytesMut) {
    message(buf, backend::CLOSE_COMPLETE, |_| {});
}

pub fn no_data(buf: &mut BytesMut) {
    message(buf, backend::NO_DATA, |_| {});
}

/// NegotiateProtocolVersion: the newest 3.x minor supported and the `_pq_` options not
/// recognized, sent when a client asks for a newer minor version or unknown options.
pub fn negotiate_protocol_version(buf: &mut BytesMut, newest_minor: u16, unrecognized: &[&str]) {
    message(buf, backend::NEGOTIATE_PROTOCOL_VERSION, |b| {
        b.put_i32(PROTOCOL_3_0 | i32::from(newest_minor));
        b.put_i32(i32::try_from(unrecognized.len()).unwrap_or(i32::MAX));
        unrecognized.iter().for_each(|o| cstr(b, o.as_bytes()));
    });
}

/// StartupMessage for protocol 3.0 (untagged).
pub fn startup_message(buf: &mut BytesMut, params: &[(&str, &str)]) {
    untagged(buf, |b| {
        b.put_i32(PROTOCOL_3_0);
        for (k, v) in params.iter().filter(|(k, _)| !k.is_empty()) {
            cstr(b, k.as_bytes());
            cstr(b, v.as_bytes());
        }
        b.put_u8(0);
    });
}

pub fn ssl_request(buf: &mut BytesMut) {
    untagged(buf, |b| b.put_i32(SSL_REQUEST_CODE));
}

pub fn cancel_request(buf: &mut BytesMut, process_id: i32, secret_key: i32) {
    untagged(buf, |b| {
        b.put_i32(CANCEL_REQUEST_CODE);
        b.put_i32(process_id);
        b.put_i32(secret_key);
    });
}

/// PasswordMessage: a cleartext password or an `md5...` digest, NUL-terminated.
pub fn password_message(buf: &mut BytesMut, password: &[u8]) {
    message(buf, frontend::PASSWORD, |b| cstr(b, password));
}

pub fn sasl_initial_response(buf: &mut BytesMut, mechanism: &str, data: &[u8]) {
    message(buf, frontend::PASSWORD, |b| {
        cstr(b, mechanism.as_bytes());
        counted(b, data);
    });
}

pub fn sasl_response(buf: &mut BytesMut, data: &[u8]) {
    message(buf, frontend::PASSWORD, |b| b.put_slice(data));
}

pub fn query(buf: &mut BytesMut, sql: &str) {
    message(buf, frontend::QUERY, |b| cstr(b, sql.as_bytes()));
}

pub fn sync(buf: &mut BytesMut) {
    message(buf, frontend::SYNC, |_| {});
}

pub fn flush(buf: &mut BytesMut) {
    message(buf, frontend::FLUSH, |_| {});
}

pub fn terminate(buf: &mut BytesMut) {
    message(buf, frontend::TERMINATE, |_| {});
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AuthRequest, Frame, FrameDecoder, StartupPacket};

    /// Encodes with `f` and decodes exactly one frame, checking nothing is left over.
    fn one(f: impl FnOnce(&mut BytesMut)) -> Frame {
        let mut buf = BytesMut::from(&b"prefix"[..]);
        let _ = buf.split_to(6); // encoders append; start from an empty but used buffer
        f(&mut buf);
        let frame = FrameDecoder::new(1 << 20)
            .decode(&mut buf)
            .unwrap()
            .unwrap();
        assert!(buf.is_empty(), "exactly one message");
        frame
    }

    #[test]
    fn exact_bytes_of_small_messages() {
        let mut b = BytesMut::new();
        ready_for_query(&mut b, b'I');
        sync(&mut b);
        terminate(&mut b);
        flush(&mut b);
        authentication_ok(&mut b);
        assert_eq!(
            &b[..],
            b"Z\0\0\0\x05IS\0\0\0\x04X\0\0\0\x04H\0\0\0\x04R\0\0\0\x08\0\0\0\0"
        );
        let mut b = BytesMut::new();
        ssl_request(&mut b);
        assert_eq!(&b[..], [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);
    }

    #[test]
    fn errors_and_notices_round_trip() {
        let f = one(|b| error_response(b, "FATAL", "08P01", "bad\0 message"));
        assert_eq!(f.tag, b'E');
        let e = crate::error_fields(f.body()).unwrap();
        assert_eq!(
            (e.severity.as_str(), e.code.as_str(), e.message.as_str()),
            ("FATAL", "08P01", "bad")
        );
        let f = one(|b| notice_response(b, "NOTICE", "00000", "hi"));
        assert_eq!(f.tag, b'N');
        assert_eq!(crate::error_fields(f.body()).unwrap().message, "hi");
    }

    #[test]
    fn authentication_round_trip() {
        let auth = |f: fn(&mut BytesMut)| crate::authentication(one(f).body()).unwrap();
        assert_eq!(auth(authentication_ok), AuthRequest::Ok);
        assert_eq!(
            auth(authentication_cleartext),
            AuthRequest::CleartextPassword
        );
        assert_eq!(
            auth(|b| authentication_md5(b, [1, 2, 3, 4])),
            AuthRequest::Md5Password { salt: [1, 2, 3, 4] }
        );
        assert_eq!(
            auth(|b| authentication_sasl(b, &["SCRAM-SHA-256", ""])),
            AuthRequest::Sasl {
                mechanisms: vec!["SCRAM-SHA-256".into()]
            }
        );
        assert_eq!(
            auth(|b| authentication_sasl_continue(b, b"r=1")),
            AuthRequest::SaslContinue(b"r=1".to_vec())
        );
        assert_eq!(
            auth(|b| authentication_sasl_final(b, b"v=2")),
            AuthRequest::SaslFinal(b"v=2".to_vec())
        );
    }

    #[test]
    fn backend_messages_round_trip() {
        let f = one(|b| parameter_status(b, "TimeZone", "UTC"));
        assert_eq!(
            crate::parameter_status(f.body()),
            Ok(("TimeZone".into(), "UTC".into()))
        );
        let f = one(|b| backend_key_data(b, 9, -9));
        assert_eq!(crate::backend_key_data(f.body()), Ok((9, -9)));
        let f = one(|b| ready_for_query(b, b'T'));
        assert_eq!(crate::ready_for_query_status(f.body()), Ok(b'T'));
        let f = one(|b| command_complete(b, "SELECT 1"));
        assert_eq!(crate::command_complete_tag(f.body()), Ok("SELECT 1"));
        for (enc, tag) in [
            (empty_query_response as fn(&mut BytesMut), b'I'),
            (parse_complete, b'1'),
            (bind_complete, b'2'),
            (close_complete, b'3'),
            (no_data, b'n'),
        ] {
            let f = one(enc);
            assert_eq!((f.tag, f.len()), (tag, 5));
        }
        let f = one(|b| negotiate_protocol_version(b, 0, &["_pq_.x"]));
        assert_eq!(f.body(), b"\0\x03\0\0\0\0\0\x01_pq_.x\0");
    }

    #[test]
    fn row_description_and_data_row_layout() {
        let f = one(|b| row_description(b, &["a", "bc"]));
        assert_eq!(f.tag, b'T');
        let mut expect = vec![0, 2];
        for name in [&b"a"[..], b"bc"] {
            expect.extend_from_slice(name);
            // NUL, table OID, attribute number, type OID 25, type size -1
            expect.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 25, 0xff, 0xff]);
            expect.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0, 0]);
        }
        assert_eq!(f.body(), &expect[..]);
        let f = one(|b| data_row(b, &[Some("1"), None, Some("")]));
        assert_eq!(f.tag, b'D');
        assert_eq!(f.body(), b"\0\x03\0\0\0\x011\xff\xff\xff\xff\0\0\0\0");
    }

    #[test]
    fn startup_packets_round_trip() {
        let mut b = BytesMut::new();
        startup_message(&mut b, &[("user", "u"), ("database", "d"), ("", "skipped")]);
        ssl_request(&mut b);
        cancel_request(&mut b, 5, 6);
        let p = crate::decode_startup(&mut b).unwrap().unwrap();
        assert_eq!(p.param("database"), Some("d"));
        assert!(matches!(
            p,
            StartupPacket::Startup {
                major: 3,
                minor: 0,
                ..
            }
        ));
        assert_eq!(
            crate::decode_startup(&mut b),
            Ok(Some(StartupPacket::SslRequest))
        );
        assert_eq!(
            crate::decode_startup(&mut b),
            Ok(Some(StartupPacket::Cancel {
                process_id: 5,
                secret_key: 6
            }))
        );
        assert!(b.is_empty());
    }

    #[test]
    fn frontend_messages_round_trip() {
        let f = one(|b| password_message(b, b"md5abc"));
        assert_eq!(
            (f.tag, crate::password_text(f.body())),
            (b'p', Ok("md5abc"))
        );
        let f = one(|b| sasl_initial_response(b, "SCRAM-SHA-256", b"n,,n=,r=x"));
        let v = crate::sasl_initial_response(f.body()).unwrap();
        assert_eq!((v.mechanism, v.data), ("SCRAM-SHA-256", &b"n,,n=,r=x"[..]));
        let f = one(|b| sasl_response(b, b"c=biws"));
        assert_eq!((f.tag, f.body()), (b'p', &b"c=biws"[..]));
        let f = one(|b| query(b, "select 1"));
        assert_eq!((f.tag, crate::query_text(f.body())), (b'Q', Ok("select 1")));
    }
}
