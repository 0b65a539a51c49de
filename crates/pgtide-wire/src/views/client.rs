//! Views of frontend (client -> server) message bodies. These bytes are untrusted: every count
//! and length is checked against what is actually left before anything is allocated.

use crate::reader::Reader;
use crate::WireError;

/// The SQL text of a simple Query ('Q').
pub fn query_text(body: &[u8]) -> Result<&str, WireError> {
    let mut r = Reader::new(body, "Query message");
    let sql = r.cstr()?;
    r.finish()?;
    Ok(sql)
}

/// A Parse ('P') message: prepared statement name (empty = unnamed), SQL, parameter type OIDs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseView<'a> {
    pub statement: &'a str,
    pub query: &'a str,
    pub param_types: Vec<u32>,
}

/// The statement name of a Parse alone (the rest unread): enough to tell the unnamed statement.
pub fn parse_statement_name(body: &[u8]) -> Result<&str, WireError> {
    Reader::new(body, "Parse message").cstr()
}

pub fn parse_message(body: &[u8]) -> Result<ParseView<'_>, WireError> {
    let mut r = Reader::new(body, "Parse message");
    let statement = r.cstr()?;
    let query = r.cstr()?;
    let n = r.count(4)?;
    let mut param_types = Vec::with_capacity(n);
    for _ in 0..n {
        param_types.push(r.u32()?);
    }
    r.finish()?;
    Ok(ParseView {
        statement,
        query,
        param_types,
    })
}

/// A Bind ('B') message. `params[i]` is `None` for SQL NULL (length -1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindView<'a> {
    pub portal: &'a str,
    pub statement: &'a str,
    pub param_formats: Vec<i16>,
    pub params: Vec<Option<&'a [u8]>>,
    pub result_formats: Vec<i16>,
}

pub fn bind_message(body: &[u8]) -> Result<BindView<'_>, WireError> {
    let mut r = Reader::new(body, "Bind message");
    let portal = r.cstr()?;
    let statement = r.cstr()?;
    let param_formats = i16_list(&mut r)?;
    // Each parameter takes at least its 4-byte length, so `count` bounds the allocation.
    let n = r.count(4)?;
    if param_formats.len() > 1 && param_formats.len() != n {
        return Err(WireError::Malformed {
            what: "Bind message parameter format count does not match its parameter count",
        });
    }
    let mut params = Vec::with_capacity(n);
    for _ in 0..n {
        let value = match r.i32()? {
            -1 => None,
            len => {
                let len = usize::try_from(len).map_err(|_| WireError::Malformed {
                    what: "Bind message has a negative parameter length",
                })?;
                Some(r.bytes(len)?)
            }
        };
        params.push(value);
    }
    let result_formats = i16_list(&mut r)?;
    r.finish()?;
    Ok(BindView {
        portal,
        statement,
        param_formats,
        params,
        result_formats,
    })
}

/// The two names at the front of a Bind, and the rest of its body unread: what a proxy needs to
/// route or rename a Bind without the cost of reading its parameters (PostgreSQL validates them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BindNames<'a> {
    pub portal: &'a str,
    pub statement: &'a str,
    /// Formats, parameters and result formats, as sent (see [`crate::encode::bind_renamed`]).
    pub rest: &'a [u8],
}

pub fn bind_names(body: &[u8]) -> Result<BindNames<'_>, WireError> {
    let mut r = Reader::new(body, "Bind message");
    let portal = r.cstr()?;
    let statement = r.cstr()?;
    Ok(BindNames {
        portal,
        statement,
        rest: r.rest(),
    })
}

/// A count (unsigned, as PostgreSQL reads it) followed by that many i16 values.
fn i16_list(r: &mut Reader<'_>) -> Result<Vec<i16>, WireError> {
    let n = r.count(2)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(r.i16()?);
    }
    Ok(out)
}

/// An Execute ('E') message; `max_rows` 0 means no limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecuteView<'a> {
    pub portal: &'a str,
    pub max_rows: i32,
}

pub fn execute_message(body: &[u8]) -> Result<ExecuteView<'_>, WireError> {
    let mut r = Reader::new(body, "Execute message");
    let portal = r.cstr()?;
    let max_rows = r.i32()?;
    r.finish()?;
    Ok(ExecuteView { portal, max_rows })
}

/// The target of a Close ('C') or Describe ('D'): `kind` is `b'S'` (statement) or `b'P'`
/// (portal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetView<'a> {
    pub kind: u8,
    pub name: &'a str,
}

pub fn close_or_describe(body: &[u8]) -> Result<TargetView<'_>, WireError> {
    let mut r = Reader::new(body, "Close/Describe message");
    let kind = r.u8()?;
    if kind != b'S' && kind != b'P' {
        return Err(WireError::Malformed {
            what: "Close/Describe target must be 'S' (statement) or 'P' (portal)",
        });
    }
    let name = r.cstr()?;
    r.finish()?;
    Ok(TargetView { kind, name })
}

/// A SASLInitialResponse ('p' during SASL): the chosen mechanism and the first client message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaslInitialView<'a> {
    pub mechanism: &'a str,
    pub data: &'a [u8],
}

/// Reads a SASLInitialResponse; a data length of -1 (no initial response) yields empty data.
pub fn sasl_initial_response(body: &[u8]) -> Result<SaslInitialView<'_>, WireError> {
    let mut r = Reader::new(body, "SASLInitialResponse message");
    let mechanism = r.cstr()?;
    let data = match r.i32()? {
        -1 => &[][..],
        len => {
            let len = usize::try_from(len).map_err(|_| WireError::Malformed {
                what: "SASLInitialResponse has a negative data length",
            })?;
            r.bytes(len)?
        }
    };
    r.finish()?;
    Ok(SaslInitialView { mechanism, data })
}

/// The password of a PasswordMessage ('p' answering a cleartext or MD5 request).
pub fn password_text(body: &[u8]) -> Result<&str, WireError> {
    let mut r = Reader::new(body, "PasswordMessage");
    let password = r.cstr()?;
    r.finish()?;
    Ok(password)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query() {
        assert_eq!(query_text(b"select 1\0"), Ok("select 1"));
        assert_eq!(query_text(b"\0"), Ok(""));
        assert!(matches!(
            query_text(b"select 1"),
            Err(WireError::MissingNul { .. })
        ));
        assert!(matches!(
            query_text(b"a\0b"),
            Err(WireError::TrailingBytes { extra: 1, .. })
        ));
        assert!(matches!(
            query_text(b"\xc3\0"),
            Err(WireError::InvalidUtf8 { .. })
        ));
    }

    #[test]
    fn parse() {
        let body = b"s1\0select $1, $2\0\0\x02\0\0\0\x17\0\0\0\x19";
        let p = parse_message(body).unwrap();
        assert_eq!((p.statement, p.query), ("s1", "select $1, $2"));
        assert_eq!(p.param_types, vec![23, 25]);
        let p = parse_message(b"\0q\0\0\0").unwrap();
        assert_eq!((p.statement, p.param_types.len()), ("", 0));
        assert_eq!(parse_statement_name(body).unwrap(), "s1");
        assert_eq!(parse_statement_name(b"\0q\0\0\0").unwrap(), "");
        // The name alone is read: a body whose rest is broken still has one.
        assert_eq!(parse_statement_name(b"\0q").unwrap(), "");
        assert!(matches!(
            parse_statement_name(b"s1"),
            Err(WireError::MissingNul { .. })
        ));

        assert!(matches!(
            parse_message(b"\0q\0\0\x02\0\0\0\x17"),
            Err(WireError::Truncated { .. })
        ));
        // 32,768 types announced (unsigned, not negative) and none there.
        assert!(matches!(
            parse_message(b"\0q\0\x80\0"),
            Err(WireError::Truncated { .. })
        ));
        assert!(matches!(
            parse_message(b"\0q\0\x7f\xff"),
            Err(WireError::Truncated { .. })
        ));
        assert!(matches!(
            parse_message(b"\0q\0\0"),
            Err(WireError::Truncated { .. })
        ));
        assert!(matches!(
            parse_message(b"\0q"),
            Err(WireError::MissingNul { .. })
        ));
        assert!(matches!(
            parse_message(b"\0q\0\0\0\0"),
            Err(WireError::TrailingBytes { .. })
        ));
    }

    fn bind_body(formats: &[i16], params: &[Option<&[u8]>], results: &[i16]) -> Vec<u8> {
        let mut v = b"p1\0s1\0".to_vec();
        v.extend_from_slice(&(formats.len() as i16).to_be_bytes());
        formats
            .iter()
            .for_each(|f| v.extend_from_slice(&f.to_be_bytes()));
        v.extend_from_slice(&(params.len() as i16).to_be_bytes());
        for p in params {
            match p {
                None => v.extend_from_slice(&(-1i32).to_be_bytes()),
                Some(b) => {
                    v.extend_from_slice(&(b.len() as i32).to_be_bytes());
                    v.extend_from_slice(b);
                }
            }
        }
        v.extend_from_slice(&(results.len() as i16).to_be_bytes());
        results
            .iter()
            .for_each(|f| v.extend_from_slice(&f.to_be_bytes()));
        v
    }

    #[test]
    fn bind() {
        let body = bind_body(&[0, 1], &[Some(b"42"), None], &[1]);
        let b = bind_message(&body).unwrap();
        assert_eq!((b.portal, b.statement), ("p1", "s1"));
        assert_eq!(b.param_formats, vec![0, 1]);
        assert_eq!(b.params, vec![Some(&b"42"[..]), None]);
        assert_eq!(b.result_formats, vec![1]);
        let body = bind_body(&[1], &[Some(b""), Some(b"x")], &[]);
        let b = bind_message(&body).unwrap();
        assert_eq!(b.params, vec![Some(&b""[..]), Some(&b"x"[..])]);
        // Every truncation fails cleanly.
        for cut in 0..body.len() {
            assert!(bind_message(&body[..cut]).is_err(), "cut {cut}");
        }
    }

    #[test]
    fn bind_names_read_only_the_front() {
        let body = bind_body(&[1], &[Some(b"7")], &[]);
        let n = bind_names(&body).unwrap();
        assert_eq!((n.portal, n.statement), ("p1", "s1"));
        assert_eq!(n.rest, &body[6..]);
        let n = bind_names(b"\0s\0").unwrap();
        assert_eq!((n.portal, n.statement, n.rest), ("", "s", &b""[..]));
        assert!(matches!(
            bind_names(b"p\0s1"),
            Err(WireError::MissingNul { .. })
        ));
        assert!(matches!(bind_names(b""), Err(WireError::MissingNul { .. })));
        assert!(matches!(
            bind_names(b"\xff\0\0"),
            Err(WireError::InvalidUtf8 { .. })
        ));
    }

    #[test]
    fn counts_above_i16_max_as_postgresql_allows() {
        let mut body = b"\0INSERT\0".to_vec();
        body.extend_from_slice(&40000u16.to_be_bytes());
        body.extend(std::iter::repeat_n([0, 0, 0, 23], 40000).flatten());
        assert_eq!(parse_message(&body).unwrap().param_types.len(), 40000);

        let mut body = b"\0\0".to_vec();
        body.extend_from_slice(&1u16.to_be_bytes());
        body.extend_from_slice(&1i16.to_be_bytes());
        body.extend_from_slice(&40000u16.to_be_bytes());
        for i in 0..40000u32 {
            body.extend_from_slice(&4i32.to_be_bytes());
            body.extend_from_slice(&i.to_be_bytes());
        }
        body.extend_from_slice(&0u16.to_be_bytes());
        let b = bind_message(&body).unwrap();
        assert_eq!((b.params.len(), b.param_formats.len()), (40000, 1));
        assert_eq!(b.params[39999], Some(&39999u32.to_be_bytes()[..]));
    }

    #[test]
    fn bind_rejects_bad_counts_and_lengths() {
        let mismatch = bind_body(&[0, 0, 0], &[None, None], &[]);
        assert!(matches!(
            bind_message(&mismatch),
            Err(WireError::Malformed { .. })
        ));
        // Huge counts with no data behind them are refused before allocating.
        let huge = b"\0\0\x7f\xff".to_vec();
        assert!(matches!(
            bind_message(&huge),
            Err(WireError::Truncated { .. })
        ));
        let huge = b"\0\0\0\0\x7f\xff\0\0\0\0".to_vec();
        assert!(matches!(
            bind_message(&huge),
            Err(WireError::Truncated { .. })
        ));
        // Counts are unsigned: 0xffff announces 65,535 items, not -1.
        let many = b"\0\0\xff\xff".to_vec();
        assert!(matches!(
            bind_message(&many),
            Err(WireError::Truncated { .. })
        ));
        let many = b"\0\0\0\0\xff\xfe".to_vec();
        assert!(matches!(
            bind_message(&many),
            Err(WireError::Truncated { .. })
        ));
        // Parameter length -2, and a length past the end.
        let mut v = b"\0\0\0\0\0\x01".to_vec();
        v.extend_from_slice(&(-2i32).to_be_bytes());
        v.extend_from_slice(&[0, 0]);
        assert!(matches!(bind_message(&v), Err(WireError::Malformed { .. })));
        let mut v = b"\0\0\0\0\0\x01".to_vec();
        v.extend_from_slice(&i32::MAX.to_be_bytes());
        v.extend_from_slice(&[0, 0]);
        assert!(matches!(bind_message(&v), Err(WireError::Truncated { .. })));
        let mut v = bind_body(&[], &[], &[]);
        v.push(0);
        assert!(matches!(
            bind_message(&v),
            Err(WireError::TrailingBytes { .. })
        ));
    }

    #[test]
    fn execute() {
        assert_eq!(
            execute_message(b"p\0\0\0\0\x0a"),
            Ok(ExecuteView {
                portal: "p",
                max_rows: 10
            })
        );
        assert_eq!(
            execute_message(b"\0\0\0\0\0"),
            Ok(ExecuteView {
                portal: "",
                max_rows: 0
            })
        );
        assert!(matches!(
            execute_message(b"\0\0\0\0"),
            Err(WireError::Truncated { .. })
        ));
        assert!(matches!(
            execute_message(b"\0\0\0\0\0\0"),
            Err(WireError::TrailingBytes { .. })
        ));
        assert!(matches!(
            execute_message(b"p"),
            Err(WireError::MissingNul { .. })
        ));
    }

    #[test]
    fn close_describe() {
        assert_eq!(
            close_or_describe(b"Sst\0"),
            Ok(TargetView {
                kind: b'S',
                name: "st"
            })
        );
        assert_eq!(
            close_or_describe(b"P\0"),
            Ok(TargetView {
                kind: b'P',
                name: ""
            })
        );
        assert!(matches!(
            close_or_describe(b"X\0"),
            Err(WireError::Malformed { .. })
        ));
        assert!(matches!(
            close_or_describe(b""),
            Err(WireError::Truncated { .. })
        ));
        assert!(matches!(
            close_or_describe(b"S"),
            Err(WireError::MissingNul { .. })
        ));
        assert!(matches!(
            close_or_describe(b"S\0\0"),
            Err(WireError::TrailingBytes { .. })
        ));
    }

    #[test]
    fn sasl_initial() {
        let v = sasl_initial_response(b"SCRAM-SHA-256\0\0\0\0\x03n,,").unwrap();
        assert_eq!((v.mechanism, v.data), ("SCRAM-SHA-256", &b"n,,"[..]));
        let v = sasl_initial_response(b"M\0\xff\xff\xff\xff").unwrap();
        assert_eq!(v.data, b"");
        assert!(matches!(
            sasl_initial_response(b"M\0\xff\xff\xff\xfe"),
            Err(WireError::Malformed { .. })
        ));
        assert!(matches!(
            sasl_initial_response(b"M\0\0\0\0\x04abc"),
            Err(WireError::Truncated { .. })
        ));
        assert!(matches!(
            sasl_initial_response(b"M\0\0\0\0\x01ab"),
            Err(WireError::TrailingBytes { .. })
        ));
        assert!(matches!(
            sasl_initial_response(b"M\0\0\0"),
            Err(WireError::Truncated { .. })
        ));
        assert!(matches!(
            sasl_initial_response(b"M"),
            Err(WireError::MissingNul { .. })
        ));
    }

    #[test]
    fn password() {
        assert_eq!(password_text(b"secret\0"), Ok("secret"));
        assert!(matches!(
            password_text(b"secret"),
            Err(WireError::MissingNul { .. })
        ));
        assert!(matches!(
            password_text(b"a\0b\0"),
            Err(WireError::TrailingBytes { .. })
        ));
    }
}
