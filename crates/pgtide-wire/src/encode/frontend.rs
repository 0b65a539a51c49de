//! Messages pgtide writes to PostgreSQL as a client: its own statements, and clients' messages
//! it rewrites (a Parse or Bind under pgtide's statement name).

use bytes::{BufMut, BytesMut};

use super::{count16, counted, cstr, fixed, framed};
use crate::tags::{frontend, target};
use crate::{BindView, WireError};

/// PasswordMessage: a cleartext password or an `md5...` digest, NUL-terminated.
pub fn password_message(buf: &mut BytesMut, password: &[u8]) -> Result<(), WireError> {
    framed(buf, Some(frontend::PASSWORD), "PasswordMessage", |b| {
        cstr(b, password);
        Ok(())
    })
}

pub fn sasl_initial_response(
    buf: &mut BytesMut,
    mechanism: &str,
    data: &[u8],
) -> Result<(), WireError> {
    const WHAT: &str = "SASLInitialResponse";
    framed(buf, Some(frontend::PASSWORD), WHAT, |b| {
        cstr(b, mechanism.as_bytes());
        counted(b, data, WHAT)
    })
}

pub fn sasl_response(buf: &mut BytesMut, data: &[u8]) -> Result<(), WireError> {
    framed(buf, Some(frontend::PASSWORD), "SASLResponse", |b| {
        b.put_slice(data);
        Ok(())
    })
}

/// A simple Query.
pub fn query(buf: &mut BytesMut, sql: &str) -> Result<(), WireError> {
    framed(buf, Some(frontend::QUERY), "Query message", |b| {
        cstr(b, sql.as_bytes());
        Ok(())
    })
}

/// Parse: `statement` ("" for the unnamed one), the query, and parameter type OIDs (0:
/// unspecified), at most 65,535 of them.
pub fn parse(
    buf: &mut BytesMut,
    statement: &str,
    query: &str,
    param_types: &[u32],
) -> Result<(), WireError> {
    const WHAT: &str = "Parse message";
    framed(buf, Some(frontend::PARSE), WHAT, |b| {
        cstr(b, statement.as_bytes());
        cstr(b, query.as_bytes());
        count16(b, param_types.len(), WHAT)?;
        param_types.iter().for_each(|&t| b.put_u32(t));
        Ok(())
    })
}

/// Bind of the fields of `view` (what [`crate::bind_message`] reads back).
pub fn bind(buf: &mut BytesMut, view: &BindView<'_>) -> Result<(), WireError> {
    const WHAT: &str = "Bind message";
    framed(buf, Some(frontend::BIND), WHAT, |b| {
        cstr(b, view.portal.as_bytes());
        cstr(b, view.statement.as_bytes());
        i16_list(b, &view.param_formats, WHAT)?;
        count16(b, view.params.len(), WHAT)?;
        for param in &view.params {
            match param {
                Some(value) => counted(b, value, WHAT)?,
                None => b.put_i32(-1),
            }
        }
        i16_list(b, &view.result_formats, WHAT)
    })
}

/// Bind with the given names and `rest`, the formats, parameters and result formats exactly as
/// another Bind carries them after its names ([`crate::BindNames::rest`]): a client's Bind
/// renamed at the cost of one copy, its parameters left for PostgreSQL to validate.
pub fn bind_renamed(
    buf: &mut BytesMut,
    portal: &str,
    statement: &str,
    rest: &[u8],
) -> Result<(), WireError> {
    framed(buf, Some(frontend::BIND), "Bind message", |b| {
        cstr(b, portal.as_bytes());
        cstr(b, statement.as_bytes());
        b.put_slice(rest);
        Ok(())
    })
}

fn i16_list(buf: &mut BytesMut, list: &[i16], what: &'static str) -> Result<(), WireError> {
    count16(buf, list.len(), what)?;
    list.iter().for_each(|&v| buf.put_i16(v));
    Ok(())
}

/// Execute of `portal` ("" for the unnamed one); `max_rows` 0 means all rows.
pub fn execute(buf: &mut BytesMut, portal: &str, max_rows: i32) -> Result<(), WireError> {
    framed(buf, Some(frontend::EXECUTE), "Execute message", |b| {
        cstr(b, portal.as_bytes());
        b.put_i32(max_rows);
        Ok(())
    })
}

/// Describe of a statement or portal (`kind`: [`target::STATEMENT`] or [`target::PORTAL`]).
pub fn describe(buf: &mut BytesMut, kind: u8, name: &str) -> Result<(), WireError> {
    close_or_describe(buf, frontend::DESCRIBE, kind, name)
}

/// Close of a statement or portal (`kind`: [`target::STATEMENT`] or [`target::PORTAL`]).
pub fn close(buf: &mut BytesMut, kind: u8, name: &str) -> Result<(), WireError> {
    close_or_describe(buf, frontend::CLOSE, kind, name)
}

fn close_or_describe(buf: &mut BytesMut, tag: u8, kind: u8, name: &str) -> Result<(), WireError> {
    if kind != target::STATEMENT && kind != target::PORTAL {
        return Err(WireError::Malformed {
            what: "Close/Describe target must be 'S' (statement) or 'P' (portal)",
        });
    }
    framed(buf, Some(tag), "Close/Describe message", |b| {
        b.put_u8(kind);
        cstr(b, name.as_bytes());
        Ok(())
    })
}

pub fn sync(buf: &mut BytesMut) {
    fixed(buf, frontend::SYNC, []);
}

pub fn flush(buf: &mut BytesMut) {
    fixed(buf, frontend::FLUSH, []);
}

pub fn terminate(buf: &mut BytesMut) {
    fixed(buf, frontend::TERMINATE, []);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::tests::one;
    use crate::{BindNames, ExecuteView, Frames, TargetView};

    #[test]
    fn auth_messages_round_trip() {
        let f = one(|b| password_message(b, b"md5abc").unwrap());
        assert_eq!(
            (f.tag, crate::password_text(f.body())),
            (b'p', Ok("md5abc"))
        );
        let f = one(|b| sasl_initial_response(b, "SCRAM-SHA-256", b"n,,n=,r=x").unwrap());
        let v = crate::sasl_initial_response(f.body()).unwrap();
        assert_eq!((v.mechanism, v.data), ("SCRAM-SHA-256", &b"n,,n=,r=x"[..]));
        let f = one(|b| sasl_response(b, b"c=biws").unwrap());
        assert_eq!((f.tag, f.body()), (b'p', &b"c=biws"[..]));
    }

    #[test]
    fn query_parse_execute_round_trip() {
        let f = one(|b| query(b, "select 1").unwrap());
        assert_eq!((f.tag, crate::query_text(f.body())), (b'Q', Ok("select 1")));
        let f = one(|b| parse(b, "s1", "select $1, $2", &[23, 0]).unwrap());
        assert_eq!(f.tag, b'P');
        let v = crate::parse_message(f.body()).unwrap();
        assert_eq!((v.statement, v.query), ("s1", "select $1, $2"));
        assert_eq!(v.param_types, vec![23, 0]);
        let f = one(|b| execute(b, "p", 10).unwrap());
        assert_eq!(f.tag, b'E');
        assert_eq!(
            crate::execute_message(f.body()),
            Ok(ExecuteView {
                portal: "p",
                max_rows: 10
            })
        );
        assert_eq!(
            &one(|b| execute(b, "", 0).unwrap()).raw[..],
            b"E\0\0\0\x09\0\0\0\0\0"
        );
    }

    #[test]
    fn describe_and_close_round_trip() {
        for (enc, tag) in [
            (describe as fn(&mut BytesMut, u8, &str) -> _, b'D'),
            (close, b'C'),
        ] {
            for kind in [target::STATEMENT, target::PORTAL] {
                let f = one(|b| enc(b, kind, "st").unwrap());
                assert_eq!(f.tag, tag);
                assert_eq!(
                    crate::close_or_describe(f.body()),
                    Ok(TargetView { kind, name: "st" })
                );
            }
            let mut b = BytesMut::new();
            assert!(matches!(
                enc(&mut b, b'X', "st"),
                Err(WireError::Malformed { .. })
            ));
            assert!(b.is_empty());
        }
    }

    #[test]
    fn bind_round_trips_and_renames() {
        let view = BindView {
            portal: "p",
            statement: "s1",
            param_formats: vec![0, 1],
            params: vec![Some(b"42"), None],
            result_formats: vec![1],
        };
        let f = one(|b| bind(b, &view).unwrap());
        assert_eq!(f.tag, b'B');
        assert_eq!(crate::bind_message(f.body()).unwrap(), view);

        let names = crate::bind_names(f.body()).unwrap();
        assert_eq!((names.portal, names.statement), ("p", "s1"));
        let renamed = one(|b| bind_renamed(b, names.portal, "pgtide_x", names.rest).unwrap());
        let back = crate::bind_message(renamed.body()).unwrap();
        assert_eq!(
            back,
            BindView {
                statement: "pgtide_x",
                ..view
            }
        );
        let again: BindNames<'_> = crate::bind_names(renamed.body()).unwrap();
        assert_eq!(again.rest, names.rest);
    }

    #[test]
    fn counts_up_to_65535_encode_and_more_are_refused() {
        // 40,000 parameters, as a client may send (unsigned count: above i16::MAX).
        let types = vec![23u32; 40_000];
        let f = one(|b| parse(b, "", "INSERT", &types).unwrap());
        assert_eq!(
            crate::parse_message(f.body()).unwrap().param_types.len(),
            40_000
        );
        let values: Vec<[u8; 4]> = (0..40_000u32).map(u32::to_be_bytes).collect();
        let view = BindView {
            portal: "",
            statement: "",
            param_formats: vec![1],
            params: values.iter().map(|v| Some(&v[..])).collect(),
            result_formats: Vec::new(),
        };
        let f = one(|b| bind(b, &view).unwrap());
        assert_eq!(crate::bind_message(f.body()).unwrap(), view);

        let mut b = BytesMut::from(&b"kept"[..]);
        let types = vec![0u32; 65_536];
        assert_eq!(
            parse(&mut b, "", "x", &types),
            Err(WireError::TooMany {
                what: "Parse message",
                count: 65_536
            })
        );
        let too_many = BindView {
            param_formats: vec![0; 65_536],
            ..view
        };
        assert!(matches!(
            bind(&mut b, &too_many),
            Err(WireError::TooMany { count: 65_536, .. })
        ));
        assert_eq!(&b[..], b"kept", "nothing written on error");
    }

    #[test]
    fn a_batch_walks_back_as_written() {
        let mut b = BytesMut::new();
        parse(&mut b, "", "SELECT 1", &[]).unwrap();
        bind_renamed(&mut b, "", "", &[0, 0, 0, 0, 0, 0]).unwrap();
        describe(&mut b, target::PORTAL, "").unwrap();
        execute(&mut b, "", 0).unwrap();
        sync(&mut b);
        let tags: Vec<u8> = Frames::new(&b).map(|(tag, _)| tag).collect();
        assert_eq!(tags, b"PBDES");
    }
}
