//! Messages pgtide writes to its clients (and, in tests, plays as a server).

use bytes::{BufMut, BytesMut};

use super::{count16, counted, cstr, cut, fixed, framed, text_message, TEXT_OID};
use crate::startup::PROTOCOL_3_0;
use crate::tags::backend;
use crate::WireError;

/// ParseComplete as a static message, for replies pgtide queues without allocating.
pub const PARSE_COMPLETE_MESSAGE: &[u8] = &[backend::PARSE_COMPLETE, 0, 0, 0, 4];
/// CloseComplete as a static message.
pub const CLOSE_COMPLETE_MESSAGE: &[u8] = &[backend::CLOSE_COMPLETE, 0, 0, 0, 4];

fn fields(buf: &mut BytesMut, tag: u8, severity: &str, code: &str, message_text: &str) {
    text_message(buf, tag, |b| {
        for (field, value) in [
            (b'S', severity),
            (b'V', severity),
            (b'C', code),
            (b'M', message_text),
        ] {
            b.put_u8(field);
            cstr(b, cut(value).as_bytes());
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
    text_message(buf, backend::AUTHENTICATION, |b| {
        b.put_i32(code);
        f(b);
    });
}

pub fn authentication_ok(buf: &mut BytesMut) {
    fixed(buf, backend::AUTHENTICATION, 0i32.to_be_bytes());
}

pub fn authentication_cleartext(buf: &mut BytesMut) {
    fixed(buf, backend::AUTHENTICATION, 3i32.to_be_bytes());
}

pub fn authentication_md5(buf: &mut BytesMut, salt: [u8; 4]) {
    let [c0, c1, c2, c3] = 5i32.to_be_bytes();
    fixed(
        buf,
        backend::AUTHENTICATION,
        [c0, c1, c2, c3, salt[0], salt[1], salt[2], salt[3]],
    );
}

pub fn authentication_sasl(buf: &mut BytesMut, mechanisms: &[&str]) -> Result<(), WireError> {
    framed(
        buf,
        Some(backend::AUTHENTICATION),
        "AuthenticationSASL",
        |b| {
            b.put_i32(10);
            mechanisms
                .iter()
                .filter(|m| !m.is_empty())
                .for_each(|m| cstr(b, m.as_bytes()));
            b.put_u8(0);
            Ok(())
        },
    )
}

/// SASL data of pgtide's own SCRAM exchange (a few hundred bytes).
pub fn authentication_sasl_continue(buf: &mut BytesMut, data: &[u8]) {
    auth(buf, 11, |b| {
        b.put_slice(data.get(..super::MAX_TEXT).unwrap_or(data))
    });
}

pub fn authentication_sasl_final(buf: &mut BytesMut, data: &[u8]) {
    auth(buf, 12, |b| {
        b.put_slice(data.get(..super::MAX_TEXT).unwrap_or(data))
    });
}

pub fn parameter_status(buf: &mut BytesMut, name: &str, value: &str) {
    text_message(buf, backend::PARAMETER_STATUS, |b| {
        cstr(b, cut(name).as_bytes());
        cstr(b, cut(value).as_bytes());
    });
}

pub fn backend_key_data(buf: &mut BytesMut, process_id: i32, secret_key: i32) {
    let [p0, p1, p2, p3] = process_id.to_be_bytes();
    let [k0, k1, k2, k3] = secret_key.to_be_bytes();
    fixed(
        buf,
        backend::BACKEND_KEY_DATA,
        [p0, p1, p2, p3, k0, k1, k2, k3],
    );
}

/// ReadyForQuery; `status` is one of [`crate::status`].
pub fn ready_for_query(buf: &mut BytesMut, status: u8) {
    fixed(buf, backend::READY_FOR_QUERY, [status]);
}

/// RowDescription of text columns (type 25, text format), not tied to a table.
pub fn row_description(buf: &mut BytesMut, columns: &[&str]) -> Result<(), WireError> {
    framed(buf, Some(backend::ROW_DESCRIPTION), "RowDescription", |b| {
        count16(b, columns.len(), "RowDescription")?;
        for name in columns {
            cstr(b, name.as_bytes());
            b.put_u32(0); // table OID
            b.put_i16(0); // column attribute number
            b.put_u32(TEXT_OID);
            b.put_i16(-1); // type size: variable
            b.put_i32(-1); // type modifier
            b.put_i16(0); // format: text
        }
        Ok(())
    })
}

/// DataRow; `None` is SQL NULL.
pub fn data_row<V: AsRef<[u8]>>(buf: &mut BytesMut, values: &[Option<V>]) -> Result<(), WireError> {
    framed(buf, Some(backend::DATA_ROW), "DataRow", |b| {
        count16(b, values.len(), "DataRow")?;
        for value in values {
            match value {
                Some(v) => counted(b, v.as_ref(), "DataRow")?,
                None => b.put_i32(-1),
            }
        }
        Ok(())
    })
}

pub fn command_complete(buf: &mut BytesMut, tag: &str) {
    text_message(buf, backend::COMMAND_COMPLETE, |b| {
        cstr(b, cut(tag).as_bytes())
    });
}

/// NotificationResponse: the notifying backend's process id, the channel and the payload.
pub fn notification_response(
    buf: &mut BytesMut,
    process_id: i32,
    channel: &str,
    payload: &str,
) -> Result<(), WireError> {
    framed(
        buf,
        Some(backend::NOTIFICATION_RESPONSE),
        "NotificationResponse",
        |b| {
            b.put_i32(process_id);
            cstr(b, channel.as_bytes());
            cstr(b, payload.as_bytes());
            Ok(())
        },
    )
}

pub fn empty_query_response(buf: &mut BytesMut) {
    fixed(buf, backend::EMPTY_QUERY_RESPONSE, []);
}

pub fn parse_complete(buf: &mut BytesMut) {
    fixed(buf, backend::PARSE_COMPLETE, []);
}

pub fn bind_complete(buf: &mut BytesMut) {
    fixed(buf, backend::BIND_COMPLETE, []);
}

pub fn close_complete(buf: &mut BytesMut) {
    fixed(buf, backend::CLOSE_COMPLETE, []);
}

pub fn no_data(buf: &mut BytesMut) {
    fixed(buf, backend::NO_DATA, []);
}

/// NegotiateProtocolVersion: the newest 3.x minor supported and the `_pq_` options not
/// recognized, sent when a client asks for a newer minor version or unknown options.
pub fn negotiate_protocol_version(
    buf: &mut BytesMut,
    newest_minor: u16,
    unrecognized: &[&str],
) -> Result<(), WireError> {
    const WHAT: &str = "NegotiateProtocolVersion";
    framed(buf, Some(backend::NEGOTIATE_PROTOCOL_VERSION), WHAT, |b| {
        let n = i32::try_from(unrecognized.len()).map_err(|_| WireError::TooMany {
            what: WHAT,
            count: unrecognized.len(),
        })?;
        b.put_i32(PROTOCOL_3_0 | i32::from(newest_minor));
        b.put_i32(n);
        unrecognized.iter().for_each(|o| cstr(b, o.as_bytes()));
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::tests::one;
    use crate::AuthRequest;

    #[test]
    fn exact_bytes_of_small_messages() {
        let mut b = BytesMut::new();
        ready_for_query(&mut b, b'I');
        crate::encode::sync(&mut b);
        crate::encode::terminate(&mut b);
        crate::encode::flush(&mut b);
        authentication_ok(&mut b);
        assert_eq!(
            &b[..],
            b"Z\0\0\0\x05IS\0\0\0\x04X\0\0\0\x04H\0\0\0\x04R\0\0\0\x08\0\0\0\0"
        );
        let mut b = BytesMut::new();
        parse_complete(&mut b);
        assert_eq!(&b[..], PARSE_COMPLETE_MESSAGE);
        let mut b = BytesMut::new();
        close_complete(&mut b);
        assert_eq!(&b[..], CLOSE_COMPLETE_MESSAGE);
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
            auth(|b| authentication_sasl(b, &["SCRAM-SHA-256", ""]).unwrap()),
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
        let f = one(|b| negotiate_protocol_version(b, 0, &["_pq_.x"]).unwrap());
        assert_eq!(f.body(), b"\0\x03\0\0\0\0\0\x01_pq_.x\0");
        let f = one(|b| notification_response(b, 42, "chan", "{}").unwrap());
        let n = crate::notification_response(f.body()).unwrap();
        assert_eq!(
            (n.process_id, n.channel, n.payload),
            (42, &b"chan"[..], &b"{}"[..])
        );
    }

    #[test]
    fn row_description_and_data_row_layout() {
        let f = one(|b| row_description(b, &["a", "bc"]).unwrap());
        assert_eq!(f.tag, b'T');
        let mut expect = vec![0, 2];
        for name in [&b"a"[..], b"bc"] {
            expect.extend_from_slice(name);
            // NUL, table OID, attribute number, type OID 25, type size -1
            expect.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 25, 0xff, 0xff]);
            expect.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0, 0]);
        }
        assert_eq!(f.body(), &expect[..]);
        let f = one(|b| data_row(b, &[Some("1"), None, Some("")]).unwrap());
        assert_eq!(f.tag, b'D');
        assert_eq!(f.body(), b"\0\x03\0\0\0\x011\xff\xff\xff\xff\0\0\0\0");
        let row = crate::data_row(f.body()).unwrap();
        assert_eq!(row.columns, vec![Some(&b"1"[..]), None, Some(&b""[..])]);
    }

    #[test]
    fn data_rows_of_up_to_65535_columns_and_no_more() {
        let values: Vec<Option<&[u8]>> = (0..65_535)
            .map(|i| (i % 2 == 0).then_some(&b"x"[..]))
            .collect();
        let mut b = BytesMut::new();
        data_row(&mut b, &values).unwrap();
        let f = crate::FrameDecoder::new(1 << 20)
            .decode(&mut b)
            .unwrap()
            .unwrap();
        assert_eq!(crate::data_row(f.body()).unwrap().columns, values);
        let mut b = BytesMut::from(&b"kept"[..]);
        let more: Vec<Option<&str>> = vec![None; 65_536];
        assert_eq!(
            data_row(&mut b, &more),
            Err(WireError::TooMany {
                what: "DataRow",
                count: 65_536
            })
        );
        assert_eq!(&b[..], b"kept");
        let names = vec![""; 65_536];
        assert!(row_description(&mut b, &names).is_err());
        assert_eq!(&b[..], b"kept");
    }
}
