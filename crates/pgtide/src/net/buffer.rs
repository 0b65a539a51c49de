//! Buffers that cost nothing while a connection is idle: a session releases its buffers when
//! nothing is pending either way, and a read into a released buffer waits with a probe on the
//! stack, so the heap buffer is allocated only once the peer has sent something. At 10,000 idle
//! clients, 8 + 16 + 4 KiB each held for nothing would be most of pgtide's memory.

use std::future::poll_fn;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{ready, Poll};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

/// What a read into a released buffer may take at once (on the stack of the poll, not in any
/// future: an idle task keeps none of it).
const PROBE: usize = 2048;
/// The room a buffer gets when its connection becomes busy again; it grows from there.
pub(crate) const BUSY_CAPACITY: usize = 8 * 1024;

/// Reads what is there into `buf`, as `read_buf`. A buffer without room (a released one) is not
/// given any until bytes arrive. Ok(0) at EOF.
pub(crate) async fn read_lazy<R>(r: &mut R, buf: &mut BytesMut) -> io::Result<usize>
where
    R: AsyncRead + Unpin,
{
    if buf.capacity() > buf.len() {
        return r.read_buf(buf).await;
    }
    poll_fn(|cx| {
        let mut probe = [MaybeUninit::<u8>::uninit(); PROBE];
        let mut probe = ReadBuf::uninit(&mut probe);
        ready!(Pin::new(&mut *r).poll_read(cx, &mut probe))?;
        let got = probe.filled();
        if !got.is_empty() {
            buf.reserve(BUSY_CAPACITY.max(got.len()));
            buf.extend_from_slice(got);
        }
        Poll::Ready(Ok(got.len()))
    })
    .await
}

/// Gives an empty buffer's memory back (bytes split off it earlier keep their own share).
#[inline]
pub(crate) fn release(buf: &mut BytesMut) {
    if buf.is_empty() && buf.capacity() > 0 {
        *buf = BytesMut::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn a_released_buffer_gets_room_only_when_bytes_arrive() -> io::Result<()> {
        let (mut a, mut b) = tokio::io::duplex(64 * 1024);
        let mut buf = BytesMut::with_capacity(100);
        release(&mut buf);
        assert_eq!(buf.capacity(), 0);
        let pending = tokio::time::timeout(
            std::time::Duration::from_millis(10),
            read_lazy(&mut b, &mut buf),
        )
        .await;
        assert!(pending.is_err(), "nothing to read yet");
        assert_eq!(buf.capacity(), 0, "waiting allocated nothing");

        // More than the probe takes at once: the rest comes with the next read, into the room.
        let sent: Vec<u8> = (0..PROBE + 100).map(|i| i as u8).collect();
        a.write_all(&sent).await?;
        assert_eq!(read_lazy(&mut b, &mut buf).await?, PROBE);
        assert!(buf.capacity() >= BUSY_CAPACITY);
        assert_eq!(read_lazy(&mut b, &mut buf).await?, 100);
        assert_eq!(&buf[..], &sent[..]);

        // A buffer holding bytes is kept; an empty one is released.
        release(&mut buf);
        assert!(buf.capacity() > 0);
        buf.clear();
        release(&mut buf);
        assert_eq!(buf.capacity(), 0);
        drop(a);
        assert_eq!(read_lazy(&mut b, &mut buf).await?, 0, "EOF");
        Ok(())
    }
}
