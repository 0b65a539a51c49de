//! Framing of the post-startup stream: a 1-byte tag, an i32 length that counts itself, a body.
//! Frames are split zero-copy from the read buffer so the proxy can relay them untouched.

use bytes::{Bytes, BytesMut};

use crate::WireError;

/// Size of the tag byte plus the length field.
pub const FRAME_HEADER_LEN: usize = 5;

/// One complete message as it appeared on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The message type byte (see [`crate::backend`] and [`crate::frontend`]).
    pub tag: u8,
    /// The whole message: tag + length + body.
    pub raw: Bytes,
}

#[allow(clippy::len_without_is_empty)] // a frame is never empty: it always holds its header
impl Frame {
    /// A message with no body (Sync, Flush, CopyDone, ParseComplete, ...).
    pub fn bodyless(tag: u8) -> Frame {
        let mut raw = Vec::with_capacity(FRAME_HEADER_LEN);
        raw.push(tag);
        raw.extend_from_slice(&4i32.to_be_bytes());
        Frame {
            tag,
            raw: Bytes::from(raw),
        }
    }

    /// The message body (the bytes after tag and length).
    pub fn body(&self) -> &[u8] {
        self.raw.get(FRAME_HEADER_LEN..).unwrap_or_default()
    }

    /// The body as a zero-copy `Bytes`, for keeping (e.g. a cached DataRow).
    pub fn body_bytes(&self) -> Bytes {
        if self.raw.len() < FRAME_HEADER_LEN {
            return Bytes::new();
        }
        self.raw.slice(FRAME_HEADER_LEN..)
    }

    /// Length of the whole message in bytes, header included.
    pub fn len(&self) -> usize {
        self.raw.len()
    }
}

/// Splits tagged messages off a read buffer, enforcing a size limit before buffering a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameDecoder {
    /// Largest accepted value of the length field (which counts itself but not the tag).
    pub max_message_size: usize,
}

impl FrameDecoder {
    pub fn new(max_message_size: usize) -> Self {
        FrameDecoder { max_message_size }
    }

    /// Takes one complete message off the front of `buf`.
    ///
    /// `Ok(None)` means more bytes are needed; `buf` is then left untouched except that room
    /// for the rest of the announced message is reserved. A length below 4 or above
    /// `max_message_size` is rejected as soon as the 5-byte header is visible, so a hostile
    /// peer cannot make the proxy buffer a huge body.
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<Frame>, WireError> {
        let Some((tag, total)) = self.header(buf)? else {
            return Ok(None);
        };
        if buf.len() < total {
            buf.reserve(total - buf.len());
            return Ok(None);
        }
        let raw = buf.split_to(total).freeze();
        Ok(Some(Frame { tag, raw }))
    }

    /// Like [`decode`](Self::decode) but over a `Bytes` holding whole messages (e.g. a cached
    /// response being replayed); advances `buf` past the frame, zero-copy.
    pub fn decode_bytes(&self, buf: &mut Bytes) -> Result<Option<Frame>, WireError> {
        let Some((tag, total)) = self.header(buf)? else {
            return Ok(None);
        };
        if buf.len() < total {
            return Ok(None);
        }
        Ok(Some(Frame {
            tag,
            raw: buf.split_to(total),
        }))
    }

    /// Validates a visible header; returns the tag and the total message size (tag included).
    fn header(&self, buf: &[u8]) -> Result<Option<(u8, usize)>, WireError> {
        let Some((tag, total)) = header(buf)? else {
            return Ok(None);
        };
        let body_len = total - 1;
        if body_len > self.max_message_size {
            return Err(WireError::MessageTooLarge {
                tag,
                len: body_len,
                max: self.max_message_size,
            });
        }
        Ok(Some((tag, total)))
    }
}

/// The tag and total size (tag included) of the message at the front of `buf`, once its
/// 5-byte header is there; a length field below 4 is an error.
fn header(buf: &[u8]) -> Result<Option<(u8, usize)>, WireError> {
    let Some(&[tag, l0, l1, l2, l3]) = buf.get(..FRAME_HEADER_LEN) else {
        return Ok(None);
    };
    let len = i32::from_be_bytes([l0, l1, l2, l3]);
    let body_len = usize::try_from(len)
        .ok()
        .filter(|&l| l >= 4)
        .ok_or(WireError::BadLength { tag, len })?;
    Ok(Some((tag, body_len + 1)))
}

/// The whole messages at the front of a byte slice, as `(tag, body)`, borrowed: for looking
/// ahead into bytes not yet decoded (a batch still in the read buffer) or walking stored replies.
/// Stops at the first message that is incomplete or has an invalid length; [`Frames::partial`]
/// tells an incomplete one from nothing or garbage.
#[derive(Debug, Clone)]
pub struct Frames<'a> {
    buf: &'a [u8],
    offset: usize,
}

impl<'a> Frames<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Frames { buf, offset: 0 }
    }

    /// Bytes taken by the messages yielded so far.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// The bytes after the messages yielded so far.
    pub fn rest(&self) -> &'a [u8] {
        self.buf.get(self.offset..).unwrap_or_default()
    }

    /// Whether [`rest`](Self::rest) is the start of a message that has not fully arrived (a
    /// partial header, or a valid header with part of its body).
    pub fn partial(&self) -> bool {
        let rest = self.rest();
        match header(rest) {
            Ok(Some((_, total))) => rest.len() < total,
            Ok(None) => !rest.is_empty(),
            Err(_) => false,
        }
    }
}

impl<'a> Iterator for Frames<'a> {
    type Item = (u8, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.rest();
        let (tag, total) = header(rest).ok()??;
        let body = rest.get(FRAME_HEADER_LEN..total)?;
        self.offset += total;
        Some((tag, body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![tag];
        v.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn a_bodyless_frame_decodes_as_itself() {
        let frame = Frame::bodyless(b'S');
        let mut buf = BytesMut::from(&frame.raw[..]);
        let decoded = FrameDecoder::new(1 << 20)
            .decode(&mut buf)
            .expect("valid")
            .expect("whole");
        assert!(frame.body().is_empty());
        assert_eq!((decoded.tag, decoded.raw), (b'S', frame.raw));
    }

    #[test]
    fn decodes_back_to_back_frames_zero_copy() {
        let mut wire = msg(b'Q', b"select 1\0");
        wire.extend(msg(b'S', b""));
        wire.push(b'X');
        let mut buf = BytesMut::from(&wire[..]);
        let d = FrameDecoder::new(1 << 20);
        let f = d.decode(&mut buf).unwrap().unwrap();
        assert_eq!(f.tag, b'Q');
        assert_eq!(f.body(), b"select 1\0");
        assert_eq!(&f.body_bytes()[..], b"select 1\0");
        assert_eq!(f.len(), 14);
        let f = d.decode(&mut buf).unwrap().unwrap();
        assert_eq!((f.tag, f.body(), f.len()), (b'S', &b""[..], 5));
        assert_eq!(d.decode(&mut buf), Ok(None));
        assert_eq!(&buf[..], b"X");
    }

    #[test]
    fn waits_for_partial_header_and_body() {
        let wire = msg(b'D', b"abcdef");
        let d = FrameDecoder::new(100);
        for cut in 0..wire.len() {
            let mut buf = BytesMut::from(&wire[..cut]);
            assert_eq!(d.decode(&mut buf), Ok(None), "cut {cut}");
            assert_eq!(buf.len(), cut, "nothing consumed");
        }
        let mut buf = BytesMut::from(&wire[..]);
        assert!(d.decode(&mut buf).unwrap().is_some());
        assert!(buf.is_empty());
    }

    #[test]
    fn rejects_bad_and_oversized_lengths_from_the_header_alone() {
        let d = FrameDecoder::new(100);
        for len in [3i32, 0, -1, i32::MIN] {
            let mut buf = BytesMut::from(&[b'Q'][..]);
            buf.extend_from_slice(&len.to_be_bytes());
            assert_eq!(
                d.decode(&mut buf),
                Err(WireError::BadLength { tag: b'Q', len })
            );
        }
        let mut buf = BytesMut::from(&[b'Q', 0, 0, 0, 101][..]);
        assert_eq!(
            d.decode(&mut buf),
            Err(WireError::MessageTooLarge {
                tag: b'Q',
                len: 101,
                max: 100
            })
        );
        let mut buf = BytesMut::from(&[b'Q', 0x7f, 0xff, 0xff, 0xff][..]);
        assert!(matches!(
            d.decode(&mut buf),
            Err(WireError::MessageTooLarge { .. })
        ));
        // Exactly at the limit is fine.
        let mut buf = BytesMut::from(&[b'Q', 0, 0, 0, 100][..]);
        assert_eq!(d.decode(&mut buf), Ok(None));
        assert!(buf.capacity() >= 101);
    }

    #[test]
    fn decode_bytes_matches_decode() {
        let mut wire = msg(b'T', b"xyz");
        wire.extend(msg(b'Z', b"I"));
        let mut b = Bytes::from(wire);
        let d = FrameDecoder::new(10);
        let f = d.decode_bytes(&mut b).unwrap().unwrap();
        assert_eq!((f.tag, f.body()), (b'T', &b"xyz"[..]));
        let f = d.decode_bytes(&mut b).unwrap().unwrap();
        assert_eq!((f.tag, f.body()), (b'Z', &b"I"[..]));
        assert_eq!(d.decode_bytes(&mut b), Ok(None));
        let mut short = Bytes::from_static(&[b'Z', 0, 0, 0, 5]);
        assert_eq!(d.decode_bytes(&mut short), Ok(None));
        let mut bad = Bytes::from_static(&[b'Z', 0, 0, 0, 1]);
        assert!(d.decode_bytes(&mut bad).is_err());
    }

    #[test]
    fn frames_walk_whole_messages_and_tell_partial_from_garbage() {
        let mut wire = msg(b'P', b"\0q\0\0\0");
        wire.extend(msg(b'S', b""));
        let mut it = Frames::new(&wire);
        assert_eq!(it.next(), Some((b'P', &b"\0q\0\0\0"[..])));
        assert_eq!(it.offset(), 10);
        assert_eq!(it.next(), Some((b'S', &b""[..])));
        assert_eq!((it.next(), it.offset(), it.partial()), (None, 15, false));
        assert!(it.rest().is_empty());
        for cut in 1..wire.len() {
            let mut it = Frames::new(&wire[..cut]);
            let whole = it.by_ref().count();
            assert_eq!(whole, usize::from(cut >= 10), "cut {cut}");
            assert_eq!(it.partial(), cut != 10, "cut {cut}");
        }
        for bad in [&[b'Q', 0, 0, 0, 3][..], &[b'Q', 0xff, 0xff, 0xff, 0xff, 0]] {
            let mut it = Frames::new(bad);
            assert_eq!((it.next(), it.partial(), it.rest()), (None, false, bad));
        }
        // Agrees with the decoder over a buffer of whole messages.
        let d = FrameDecoder::new(1 << 20);
        let mut b = Bytes::from(wire.clone());
        for (tag, body) in Frames::new(&wire) {
            let f = d.decode_bytes(&mut b).unwrap().unwrap();
            assert_eq!((f.tag, f.body()), (tag, body));
        }
    }

    #[test]
    fn hand_built_short_frame_does_not_panic() {
        let f = Frame {
            tag: b'Z',
            raw: Bytes::from_static(b"Z"),
        };
        assert_eq!(f.body(), b"");
        assert!(f.body_bytes().is_empty());
        assert_eq!(f.len(), 1);
    }
}
