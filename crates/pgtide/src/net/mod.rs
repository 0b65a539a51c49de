//! The byte streams pgtide talks over, to clients and to backends: plain TCP or TLS.
//! Every layer past the handshake (session, admin console, backend connections) reads and
//! writes through these types, so a new transport is one more variant here plus its handshake.
//!
//! Why enums of split halves, and not `Box<dyn AsyncRead>` or `tokio::io::split`:
//! - the session polls a client's read and write side in one `select!`, so it needs two
//!   halves it can borrow mutably at once;
//! - `TcpStream::into_split` gives halves that share the socket through an `Arc` and take no
//!   lock, whereas `tokio::io::split` puts the stream in a `std::sync::Mutex` and locks it on
//!   every `poll_read` and `poll_write` (tokio 1.54, io/split.rs `with_lock`): that would be a
//!   lock per message on plain TCP, where none is needed. A TLS stream shares its session
//!   state between directions, so its variant will pay that lock; plain TCP does not;
//! - a `match` on a small enum is a predictable branch the compiler can inline; a boxed trait
//!   object is an allocation per connection and an indirect call per poll. It also keeps
//!   socket-only calls (`try_read` for the idle probe) reachable without downcasting.
//!
//! What needs the socket itself (peer address, `TCP_NODELAY`, the first-byte peek) happens on
//! the `TcpStream` before it is wrapped.

pub(crate) mod buffer;
pub(crate) mod tls;

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// A TLS connection, either side (pgtide as the server to clients, as the client to backends).
pub(crate) type TlsStream = tokio_rustls::TlsStream<TcpStream>;

/// A whole connection, as the handshake and the admin console use it.
pub(crate) enum Stream {
    Tcp(TcpStream),
    /// Boxed: rustls' state is a few KiB, and a plain connection should not carry room for it.
    Tls(Box<TlsStream>),
}

/// The read side of a connection.
pub(crate) enum ReadHalf {
    Tcp(OwnedReadHalf),
    Tls(tokio::io::ReadHalf<TlsStream>),
}

/// The write side of a connection.
pub(crate) enum WriteHalf {
    Tcp(OwnedWriteHalf),
    Tls(TlsWriter),
}

/// The write side of a TLS connection. tokio-rustls answers a write once rustls has taken the
/// plaintext, even when the socket could not take all of the encrypted records: those stay in
/// rustls until the next write or a flush. So a flush is owed after every write, and whoever
/// has nothing more to write must still flush (the session polls it: `flush_owed`), or the
/// last records of a reply would wait for the next one.
pub(crate) struct TlsWriter {
    inner: tokio::io::WriteHalf<TlsStream>,
    flush_owed: bool,
}

impl AsyncWrite for TlsWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            self.flush_owed = true;
        }
        written
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let flushed = Pin::new(&mut self.inner).poll_flush(cx);
        if matches!(flushed, Poll::Ready(Ok(()))) {
            self.flush_owed = false;
        }
        flushed
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Writes all of `bytes` and flushes: what every write outside the session's event loop
/// (handshake, admin console, pgtide's own backend exchanges) needs on TLS.
pub(crate) async fn send_all<W: AsyncWrite + Unpin>(w: &mut W, bytes: &[u8]) -> io::Result<()> {
    use tokio::io::AsyncWriteExt;
    w.write_all(bytes).await?;
    w.flush().await
}

impl Stream {
    /// Wraps a socket (set its options first).
    pub(crate) fn tcp(stream: TcpStream) -> Stream {
        Stream::Tcp(stream)
    }

    pub(crate) fn into_split(self) -> (ReadHalf, WriteHalf) {
        match self {
            Stream::Tcp(s) => {
                let (r, w) = s.into_split();
                (ReadHalf::Tcp(r), WriteHalf::Tcp(w))
            }
            Stream::Tls(s) => {
                let (r, w) = tokio::io::split(*s);
                let w = TlsWriter {
                    inner: w,
                    flush_owed: false,
                };
                (ReadHalf::Tls(r), WriteHalf::Tls(w))
            }
        }
    }

    /// Whether the connection is encrypted.
    pub(crate) fn is_tls(&self) -> bool {
        matches!(self, Stream::Tls(_))
    }
}

impl ReadHalf {
    /// Reads without waiting: Ok(0) at EOF, `WouldBlock` when nothing is there.
    /// On TLS, one poll of the stream (which may take a record off the socket): an idle
    /// connection has nothing to say either way.
    pub(crate) fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            ReadHalf::Tcp(r) => r.try_read(buf),
            ReadHalf::Tls(r) => {
                use futures_util::FutureExt;
                use tokio::io::AsyncReadExt;
                r.read(buf)
                    .now_or_never()
                    .unwrap_or(Err(io::ErrorKind::WouldBlock.into()))
            }
        }
    }
}

impl WriteHalf {
    /// Writes without waiting: `WouldBlock` when the socket has no room.
    /// TLS always answers `WouldBlock`: its writes go through the event loop.
    pub(crate) fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        match self {
            WriteHalf::Tcp(w) => w.try_write(buf),
            WriteHalf::Tls(_) => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    /// Whether written bytes may still wait inside the transport (TLS) for a flush.
    pub(crate) fn flush_owed(&self) -> bool {
        match self {
            WriteHalf::Tcp(_) => false,
            WriteHalf::Tls(w) => w.flush_owed,
        }
    }
}

/// `AsyncRead` for an enum of transports: each poll goes to the variant's stream.
macro_rules! delegate_read {
    ($ty:ident: $($variant:ident),+) => {
        impl AsyncRead for $ty {
            #[inline]
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    $($ty::$variant(s) => Pin::new(s).poll_read(cx, buf),)+
                }
            }
        }
    };
}

/// `AsyncWrite` for an enum of transports: each poll goes to the variant's stream.
macro_rules! delegate_write {
    ($ty:ident: $($variant:ident),+) => {
        impl AsyncWrite for $ty {
            #[inline]
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                match self.get_mut() {
                    $($ty::$variant(s) => Pin::new(s).poll_write(cx, buf),)+
                }
            }

            #[inline]
            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    $($ty::$variant(s) => Pin::new(s).poll_flush(cx),)+
                }
            }

            #[inline]
            fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    $($ty::$variant(s) => Pin::new(s).poll_shutdown(cx),)+
                }
            }
        }
    };
}

delegate_read!(Stream: Tcp, Tls);
delegate_write!(Stream: Tcp, Tls);
delegate_read!(ReadHalf: Tcp, Tls);
delegate_write!(WriteHalf: Tcp, Tls);

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn halves_carry_bytes_both_ways() -> io::Result<()> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let client = tokio::spawn(async move {
            let mut s = Stream::tcp(TcpStream::connect(addr).await?);
            s.write_all(b"ping").await?;
            let mut back = [0u8; 4];
            s.read_exact(&mut back).await?;
            io::Result::Ok(back)
        });
        let (sock, _) = listener.accept().await?;
        let (mut r, mut w) = Stream::tcp(sock).into_split();
        let mut got = [0u8; 4];
        r.read_exact(&mut got).await?;
        assert_eq!(&got, b"ping");
        let mut probe = [0u8; 1];
        let quiet = r.try_read(&mut probe);
        assert!(matches!(quiet, Err(ref e) if e.kind() == io::ErrorKind::WouldBlock));
        w.write_all(b"pong").await?;
        let back = client.await.map_err(io::Error::other)??;
        assert_eq!(&back, b"pong");
        Ok(())
    }
}
