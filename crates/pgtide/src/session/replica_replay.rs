//! A read sent to a replica may still have to run elsewhere: the replica refused it as a write
//! (25006: a function the classifier could not know writes; the re-run then counts as a
//! write), refused a serializable transaction (0A000: a default pgtide cannot see), or the
//! replica went away. If no row has reached the client yet, pgtide runs the same messages on
//! the primary and drops the replies the client already has (ParseComplete, BindComplete, a
//! RowDescription: the same prefix comes back from the primary). A write is never re-run: only
//! replica leases log.

use crate::sqlstate;
use pgtide_wire::{backend as btag, Frame};

/// Beyond this many bytes of client messages the read is not kept for a re-run.
const MAX_LOGGED_BYTES: usize = 1 << 20;

#[derive(Debug, Default)]
pub(crate) struct ReplicaReplay {
    frames: Vec<Frame>,
    bytes: usize,
    /// Messages the client already got for these frames.
    sent: usize,
    /// A row (or COPY data) reached the client: too late to run elsewhere.
    rows_sent: bool,
    overflow: bool,
}

impl ReplicaReplay {
    pub(crate) fn log(&mut self, frame: &Frame) {
        self.bytes += frame.raw.len();
        if self.bytes > MAX_LOGGED_BYTES {
            self.overflow = true;
            self.frames.clear();
        } else if !self.overflow {
            self.frames.push(frame.clone());
        }
    }

    /// A message went to the client.
    pub(crate) fn sent(&mut self, tag: u8) {
        self.sent += 1;
        if matches!(
            tag,
            btag::DATA_ROW | btag::COPY_DATA | btag::COPY_OUT_RESPONSE | btag::COPY_IN_RESPONSE
        ) {
            self.rows_sent = true;
        }
    }

    /// Whether the messages can still run elsewhere.
    pub(crate) fn replayable(&self) -> bool {
        !self.rows_sent && !self.overflow && !self.frames.is_empty()
    }

    /// The frames to send again and how many replies to drop first.
    pub(crate) fn take(self) -> (Vec<Frame>, usize) {
        (self.frames, self.sent)
    }
}

/// Whether an ErrorResponse ends the connection (FATAL / PANIC: the replica is shutting down
/// or crashed).
pub(crate) fn is_fatal(body: &[u8]) -> bool {
    pgtide_wire::error_fields(body).is_ok_and(|e| e.severity == "FATAL" || e.severity == "PANIC")
}

/// Why a replica refused a read before running it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// 25006: the statement writes (a function the classifier could not know writes).
    Write,
    /// 0A000: a standby runs no serializable transaction (the role's or database's
    /// `default_transaction_isolation`, which pgtide cannot see).
    Serializable,
}

/// Whether an ErrorResponse is a replica refusing what it was sent, and why.
pub(crate) fn replica_refusal(body: &[u8]) -> Option<Refusal> {
    let e = pgtide_wire::error_fields(body).ok()?;
    match e.code.as_str() {
        sqlstate::READ_ONLY_SQL_TRANSACTION => Some(Refusal::Write),
        // 0A000 says many things (a stale cached plan too): only this one (in English; a
        // translated message is left alone).
        sqlstate::FEATURE_NOT_SUPPORTED
            if e.message.contains("serializable mode in a hot standby") =>
        {
            Some(Refusal::Serializable)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(tag: u8) -> Frame {
        Frame::bodyless(tag)
    }

    fn error(code: &str, message: &str) -> Vec<u8> {
        let mut b = bytes::BytesMut::new();
        pgtide_wire::encode::error_response(&mut b, "ERROR", code, message);
        let (_, body) = pgtide_wire::Frames::new(&b).next().expect("one message");
        body.to_vec()
    }

    #[test]
    fn refusals() {
        let ro = error("25006", "cannot execute INSERT in a read-only transaction");
        assert_eq!(replica_refusal(&ro), Some(Refusal::Write));
        let ser = error("0A000", "cannot use serializable mode in a hot standby");
        assert_eq!(replica_refusal(&ser), Some(Refusal::Serializable));
        let stale = error("0A000", "cached plan must not change result type");
        assert_eq!(replica_refusal(&stale), None, "a stale plan is no refusal");
        assert_eq!(replica_refusal(&error("42P01", "no such table")), None);
        assert_eq!(replica_refusal(b"garbage"), None);
    }

    #[test]
    fn replayable_until_a_row_is_sent() {
        let mut r = ReplicaReplay::default();
        assert!(!r.replayable(), "nothing logged");
        r.log(&frame(pgtide_wire::frontend::PARSE));
        r.sent(btag::PARSE_COMPLETE);
        r.sent(btag::ROW_DESCRIPTION);
        assert!(r.replayable());
        r.sent(btag::DATA_ROW);
        assert!(!r.replayable());
        let mut r = ReplicaReplay::default();
        r.log(&frame(pgtide_wire::frontend::QUERY));
        r.sent(btag::PARSE_COMPLETE);
        let (frames, sent) = r.take();
        assert_eq!((frames.len(), sent), (1, 1));
    }
}
