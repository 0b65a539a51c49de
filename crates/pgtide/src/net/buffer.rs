//! Buffers that cost nothing while a connection is idle: a session releases its buffers when
//! nothing is pending either way (session/events.rs), and a read into a released buffer waits
//! with a probe on the stack, so a buffer is taken only once the peer has sent something. At 10,000 idle clients, 8 + 16 + 4 KiB each held for nothing would be most
//! of pgtide's memory.
//!
//! Released buffers go to a small per-thread spare list that the next busy session takes from,
//! instead of being freed and allocated again.

use std::cell::RefCell;
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
/// Spare buffers kept per thread (at most SPARE_MAX x KEEP_MAX bytes).
const SPARE_MAX: usize = 64;
/// A buffer that grew beyond this (a large result went through it) is freed, not kept.
const KEEP_MAX: usize = 64 * 1024;

thread_local! {
    static SPARE: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
}

/// An empty buffer with room: a spare one, or a new one.
fn busy_buffer() -> BytesMut {
    SPARE
        .try_with(|spare| spare.borrow_mut().pop())
        .ok()
        .flatten()
        .unwrap_or_else(|| BytesMut::with_capacity(BUSY_CAPACITY))
}

/// Gives a released buffer to the spare list if it is worth keeping: at least BUSY_CAPACITY of
/// room, and an allocation of at most KEEP_MAX (a buffer a large message went through is
/// freed), not shared with a frame split off it that is still alive (a spare would keep that
/// allocation, whatever its size). `capacity()` counts only the room after what was consumed,
/// so the whole allocation is probed with `try_reclaim`, which never allocates and is exact on
/// a buffer nothing shares.
fn keep_spare(mut buf: BytesMut) {
    buf.clear();
    if buf.try_reclaim(KEEP_MAX + 1) || !buf.try_reclaim(BUSY_CAPACITY) {
        return;
    }
    let _ = SPARE.try_with(|spare| {
        let mut spare = spare.borrow_mut();
        if spare.len() < SPARE_MAX {
            spare.push(buf);
        }
    });
}

/// Gives a released (capacity 0) buffer room before a busy session writes into it, so that it
/// does not grow from nothing in small steps.
#[inline]
pub(crate) fn make_room(buf: &mut BytesMut) {
    if buf.capacity() == 0 {
        *buf = busy_buffer();
    }
}

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
            if buf.capacity() == 0 {
                *buf = busy_buffer();
            }
            buf.extend_from_slice(got);
        }
        Poll::Ready(Ok(got.len()))
    })
    .await
}

/// Gives an empty buffer's memory back. For buffers nothing is split off (outgoing bytes are
/// written and advanced past); a read buffer frames are split from goes through
/// [`release_read`].
#[inline]
pub(crate) fn release(buf: &mut BytesMut) {
    if buf.is_empty() && buf.capacity() > 0 {
        keep_spare(std::mem::take(buf));
    }
}

/// [`release`] for a buffer frames were split off: kept as a spare only if no frame of it is
/// alive any more (a frame keeps its own share of the memory either way).
pub(crate) fn release_read(buf: &mut BytesMut) {
    if !buf.is_empty() || buf.capacity() == 0 {
        return;
    }
    let frozen = std::mem::take(buf).freeze();
    if frozen.is_unique() {
        if let Ok(unshared) = frozen.try_into_mut() {
            keep_spare(unshared);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Buf;
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

    #[test]
    fn spares_are_measured_by_their_whole_allocation() {
        SPARE.with(|spare| spare.borrow_mut().clear());
        // A buffer that grew to 1 MiB and was drained: little room left after the consumed
        // part, but the allocation is large: freed, not kept.
        let mut big = BytesMut::with_capacity(1 << 20);
        big.extend_from_slice(&vec![7u8; (1 << 20) - 100]);
        big.advance((1 << 20) - 100);
        release(&mut big);
        assert_eq!(SPARE.with(|spare| spare.borrow().len()), 0);
        // A read buffer a live frame still shares, however much room it has: not kept.
        let mut shared = BytesMut::with_capacity(1 << 20);
        shared.extend_from_slice(&vec![1u8; 1000]);
        let frame = shared.split_to(1000).freeze();
        release_read(&mut shared);
        assert_eq!(SPARE.with(|spare| spare.borrow().len()), 0);
        assert_eq!(frame.len(), 1000);
        // Once its frames are gone, a read buffer of the usual size is kept.
        let mut read = busy_buffer();
        read.extend_from_slice(b"frame");
        drop(read.split_to(5));
        release_read(&mut read);
        assert_eq!(SPARE.with(|spare| spare.borrow().len()), 1);
        SPARE.with(|spare| spare.borrow_mut().clear());
        // A usual one is kept and handed out again, empty, with its room.
        let mut usual = busy_buffer();
        usual.extend_from_slice(b"reply");
        usual.advance(5);
        release(&mut usual);
        assert_eq!(SPARE.with(|spare| spare.borrow().len()), 1);
        let again = busy_buffer();
        assert!(again.is_empty() && again.capacity() >= BUSY_CAPACITY);
    }
}
