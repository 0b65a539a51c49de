//! Encoders that append one complete message to a caller's buffer, so building output never
//! touches a socket and can be tested byte for byte.
//!
//! Nothing is ever written with a wrong length or count. A message whose size depends on its
//! arguments returns an error when its length would not fit the protocol's i32 length field or a
//! count would not fit its unsigned 16-bit count ([`WireError::TooLong`], [`WireError::TooMany`]),
//! and then leaves the buffer as it was. The exceptions are the messages pgtide writes to clients
//! from its own text (errors, notices, parameters, command tags): each text field is cut to
//! [`MAX_TEXT`] bytes, so they always fit and cannot fail. Strings are C strings: an interior NUL
//! (which the protocol cannot carry) ends them rather than corrupting the framing.

mod backend;
mod frontend;

pub use backend::*;
pub use frontend::*;

use bytes::{BufMut, BytesMut};

use crate::startup::{CANCEL_REQUEST_CODE, PROTOCOL_3_0, SSL_REQUEST_CODE};
use crate::WireError;

/// Type OID of `text`, used for every column the proxy describes itself.
pub const TEXT_OID: u32 = 25;

/// Longest text field of a message pgtide writes to a client; longer text is cut (at a character
/// boundary). Four such fields still fit one message.
pub const MAX_TEXT: usize = 1 << 28;

/// Writes `tag` (if any), the length and the body from `f`. On any error the buffer is restored.
fn framed(
    buf: &mut BytesMut,
    tag: Option<u8>,
    what: &'static str,
    f: impl FnOnce(&mut BytesMut) -> Result<(), WireError>,
) -> Result<(), WireError> {
    let start = buf.len();
    if let Some(tag) = tag {
        buf.put_u8(tag);
    }
    let len_at = buf.len();
    buf.put_i32(0);
    let len = f(buf).and_then(|()| {
        let len = buf.len() - len_at;
        i32::try_from(len).map_err(|_| WireError::TooLong { what, len })
    });
    match len {
        Ok(len) => {
            if let Some(slot) = buf.get_mut(len_at..len_at + 4) {
                slot.copy_from_slice(&len.to_be_bytes());
            }
            Ok(())
        }
        Err(e) => {
            buf.truncate(start);
            Err(e)
        }
    }
}

/// A message whose body is a few fixed bytes.
fn fixed<const N: usize>(buf: &mut BytesMut, tag: u8, body: [u8; N]) {
    const { assert!(N <= 16) };
    buf.put_u8(tag);
    buf.put_u32(4 + N as u32);
    buf.put_slice(&body);
}

/// A message of text fields each cut to [`MAX_TEXT`]: it always fits.
fn text_message(buf: &mut BytesMut, tag: u8, f: impl FnOnce(&mut BytesMut)) {
    // Cannot fail: at most four MAX_TEXT fields and a few bytes.
    let _ = framed(buf, Some(tag), "message", |b| {
        f(b);
        Ok(())
    });
}

/// `s` cut to [`MAX_TEXT`] bytes at a character boundary.
fn cut(s: &str) -> &str {
    cut_to(s, MAX_TEXT)
}

fn cut_to(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

fn cstr(buf: &mut BytesMut, s: &[u8]) {
    let end = s.iter().position(|&b| b == 0).unwrap_or(s.len());
    buf.put_slice(s.get(..end).unwrap_or_default());
    buf.put_u8(0);
}

/// A count as the protocol's unsigned 16-bit field (PostgreSQL reads it with
/// `pq_getmsgint(msg, 2)`: up to 65,535).
fn count16(buf: &mut BytesMut, n: usize, what: &'static str) -> Result<(), WireError> {
    let n16 = u16::try_from(n).map_err(|_| WireError::TooMany { what, count: n })?;
    buf.put_u16(n16);
    Ok(())
}

/// Length-prefixed bytes (i32 length, then data).
fn counted(buf: &mut BytesMut, data: &[u8], what: &'static str) -> Result<(), WireError> {
    let len = i32::try_from(data.len()).map_err(|_| WireError::TooLong {
        what,
        len: data.len(),
    })?;
    buf.put_i32(len);
    buf.put_slice(data);
    Ok(())
}

/// StartupMessage for protocol 3.0 (untagged).
pub fn startup_message(buf: &mut BytesMut, params: &[(&str, &str)]) -> Result<(), WireError> {
    framed(buf, None, "StartupMessage", |b| {
        b.put_i32(PROTOCOL_3_0);
        for (k, v) in params.iter().filter(|(k, _)| !k.is_empty()) {
            cstr(b, k.as_bytes());
            cstr(b, v.as_bytes());
        }
        b.put_u8(0);
        Ok(())
    })
}

pub fn ssl_request(buf: &mut BytesMut) {
    buf.put_i32(8);
    buf.put_i32(SSL_REQUEST_CODE);
}

pub fn cancel_request(buf: &mut BytesMut, process_id: i32, secret_key: i32) {
    buf.put_i32(16);
    buf.put_i32(CANCEL_REQUEST_CODE);
    buf.put_i32(process_id);
    buf.put_i32(secret_key);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Frame, FrameDecoder, StartupPacket};

    /// Encodes with `f` and decodes exactly one frame, checking nothing is left over.
    pub(super) fn one(f: impl FnOnce(&mut BytesMut)) -> Frame {
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
    fn startup_packets_round_trip() {
        let mut b = BytesMut::new();
        startup_message(&mut b, &[("user", "u"), ("database", "d"), ("", "skipped")]).unwrap();
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
        let mut b = BytesMut::new();
        ssl_request(&mut b);
        assert_eq!(&b[..], [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);
    }

    #[test]
    fn a_failed_encoder_leaves_the_buffer_as_it_was() {
        let mut b = BytesMut::from(&b"kept"[..]);
        let e = framed(&mut b, Some(b'Q'), "Query message", |b| {
            b.put_slice(b"partial");
            Err(WireError::TooMany {
                what: "Query message",
                count: 1,
            })
        });
        assert!(e.is_err());
        assert_eq!(&b[..], b"kept");
        let mut b = BytesMut::new();
        assert_eq!(
            count16(&mut b, 65_536, "x"),
            Err(WireError::TooMany {
                what: "x",
                count: 65_536
            })
        );
        count16(&mut b, 65_535, "x").unwrap();
        count16(&mut b, 40_000, "x").unwrap();
        assert_eq!(&b[..], [0xff, 0xff, 0x9c, 0x40]);
    }

    #[test]
    fn text_is_cut_at_nul_and_at_the_limit_on_a_char_boundary() {
        let f = one(|b| crate::encode::command_complete(b, "SELECT\0 1"));
        assert_eq!(f.body(), b"SELECT\0");
        assert_eq!(cut_to("ééé", 5), "éé");
        assert_eq!(cut_to("ééé", 4), "éé");
        assert_eq!(cut_to("abc", 0), "");
        assert_eq!(cut("short"), "short");
    }
}
