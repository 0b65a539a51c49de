//! What pgtide holds for a client that does not read. Backend replies are already bounded (the
//! backend is not read while the client's buffer is over the high-water mark), but pgtide's own
//! replies — cache hits, answers to Sync, Close and known-statement Parse — are written without
//! a backend: a client pipelining requests for a large cached entry and never reading would
//! make them grow without bound. So the session stops taking client frames (and reading the
//! client) while what waits for it — the write buffer plus pgtide's queued replies — is over
//! the high-water mark, and takes them again once the client has read enough.

use bytes::BytesMut;
use pgtide_wire::encode;

use crate::session::replies::ReplyQueue;

#[derive(Debug, Default)]
pub(crate) struct Backlog {
    /// Client frames are waiting in the read buffer until the backlog drains.
    paused: bool,
}

/// Bytes waiting for the client: its write buffer and pgtide's replies not yet in it.
pub(crate) fn queued(to_client: &BytesMut, replies: &ReplyQueue) -> usize {
    to_client.len() + replies.synthetic_bytes()
}

impl Backlog {
    /// Before taking the next client frame: true when the backlog is over `high_water` and the
    /// session must stop (the frame stays in the read buffer). When pgtide's own replies wait
    /// behind replies the backend has not flushed (it flushes at Sync or Flush, and the Sync may
    /// be among the frames left unread), a Flush makes it answer what it has, so the backlog can
    /// drain and no client is stalled that PostgreSQL itself would have answered.
    pub(crate) fn over(
        &mut self,
        high_water: usize,
        to_client: &BytesMut,
        replies: &ReplyQueue,
        to_backend: Option<&mut BytesMut>,
    ) -> bool {
        if queued(to_client, replies) < high_water {
            return false;
        }
        if !self.paused {
            self.paused = true;
            metrics::counter!(crate::metrics_names::CLIENT_READ_PAUSES_TOTAL).increment(1);
            if let Some(out) = to_backend {
                if replies.synthetic_waits_on_backend() {
                    encode::flush(out);
                }
            }
        }
        true
    }

    pub(crate) fn is_paused(&self) -> bool {
        self.paused
    }

    /// Whether frames left in the read buffer can be taken again (the client read enough).
    pub(crate) fn resume(
        &mut self,
        high_water: usize,
        to_client: &BytesMut,
        replies: &ReplyQueue,
    ) -> bool {
        if self.paused && queued(to_client, replies) < high_water {
            self.paused = false;
            return true;
        }
        false
    }
}
