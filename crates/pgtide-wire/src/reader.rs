//! A bounds-checked cursor over a message body. All view parsing goes through it so that no
//! peer-controlled byte can cause an out-of-bounds index or a huge allocation.

use crate::WireError;

/// Reads big-endian integers and C strings from a byte slice, failing instead of panicking.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    /// `what` names the message in errors, e.g. `"Bind message"`.
    pub(crate) fn new(buf: &'a [u8], what: &'static str) -> Self {
        Reader { buf, what }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// Takes exactly `n` bytes.
    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if n > self.buf.len() {
            return Err(WireError::Truncated { what: self.what });
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn i16(&mut self) -> Result<i16, WireError> {
        self.array().map(i16::from_be_bytes)
    }

    pub(crate) fn i32(&mut self) -> Result<i32, WireError> {
        self.array().map(i32::from_be_bytes)
    }

    pub(crate) fn u32(&mut self) -> Result<u32, WireError> {
        self.array().map(u32::from_be_bytes)
    }

    pub(crate) fn u16(&mut self) -> Result<u16, WireError> {
        self.array().map(u16::from_be_bytes)
    }

    /// A count of items as PostgreSQL reads it (`pq_getmsgint(msg, 2)`: unsigned, up to
    /// 65,535), checked to fit `count * item_size` in the remaining bytes so the caller may
    /// allocate `count` items safely.
    pub(crate) fn count(&mut self, item_size: usize) -> Result<usize, WireError> {
        let n = usize::from(self.u16()?);
        if n.saturating_mul(item_size) > self.buf.len() {
            return Err(WireError::Truncated { what: self.what });
        }
        Ok(n)
    }

    /// The bytes of a NUL-terminated string, without the NUL (which is consumed).
    pub(crate) fn cstr_bytes(&mut self) -> Result<&'a [u8], WireError> {
        // CStr's search is word-at-a-time (memchr), not a byte loop: SQL texts are long.
        let end = std::ffi::CStr::from_bytes_until_nul(self.buf)
            .map_err(|_| WireError::MissingNul { what: self.what })?
            .count_bytes();
        let s = self.bytes(end)?;
        self.bytes(1)?;
        Ok(s)
    }

    /// A NUL-terminated UTF-8 string.
    pub(crate) fn cstr(&mut self) -> Result<&'a str, WireError> {
        let what = self.what;
        std::str::from_utf8(self.cstr_bytes()?).map_err(|_| WireError::InvalidUtf8 { what })
    }

    /// Everything left.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }

    /// Fails if anything is left: fixed-layout messages must be consumed exactly.
    pub(crate) fn finish(self) -> Result<(), WireError> {
        match self.buf.len() {
            0 => Ok(()),
            extra => Err(WireError::TrailingBytes {
                what: self.what,
                extra,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_and_truncation() {
        let mut r = Reader::new(&[1, 0, 2, 0, 0, 0, 3, 0xff, 0xff, 0xff, 0xff, 9], "t");
        assert_eq!(r.u8(), Ok(1));
        assert_eq!(r.i16(), Ok(2));
        assert_eq!(r.i32(), Ok(3));
        assert_eq!(r.u32(), Ok(u32::MAX));
        assert_eq!(r.remaining(), 1);
        assert_eq!(r.i16(), Err(WireError::Truncated { what: "t" }));
        // A failed read consumes nothing.
        assert_eq!(r.u8(), Ok(9));
        assert_eq!(r.u8(), Err(WireError::Truncated { what: "t" }));
        assert_eq!(r.finish(), Ok(()));
    }

    #[test]
    fn cstrings() {
        let mut r = Reader::new(b"ab\0\0\xff\0cd", "t");
        assert_eq!(r.cstr(), Ok("ab"));
        assert_eq!(r.cstr(), Ok(""));
        assert_eq!(r.cstr(), Err(WireError::InvalidUtf8 { what: "t" }));
        assert_eq!(r.cstr_bytes(), Err(WireError::MissingNul { what: "t" }));
        assert_eq!(r.rest(), b"cd");
        assert_eq!(r.rest(), b"");
    }

    #[test]
    fn counts_are_unsigned_and_checked_against_remaining() {
        assert_eq!(Reader::new(&[0, 2, 1, 2, 3, 4], "t").count(2), Ok(2));
        assert_eq!(
            Reader::new(&[0, 3, 1, 2, 3, 4], "t").count(2),
            Err(WireError::Truncated { what: "t" })
        );
        // 0xffff is 65,535 items, as PostgreSQL reads it, not -1.
        assert_eq!(Reader::new(&[0xff, 0xff], "t").count(0), Ok(65535));
        assert_eq!(Reader::new(&[0x9c, 0x40], "t").count(0), Ok(40000));
        assert_eq!(
            Reader::new(&[0x9c, 0x40], "t").count(1),
            Err(WireError::Truncated { what: "t" })
        );
    }

    #[test]
    fn finish_reports_trailing_bytes() {
        let mut r = Reader::new(&[1, 2, 3], "t");
        assert!(r.bytes(4).is_err());
        assert_eq!(r.bytes(1), Ok(&[1u8][..]));
        assert_eq!(
            r.finish(),
            Err(WireError::TrailingBytes {
                what: "t",
                extra: 2
            })
        );
    }
}
