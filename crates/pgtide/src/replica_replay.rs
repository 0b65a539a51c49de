//! A read sent to a replica may still have to run elsewhere: the replica refused it as a write
//! (25006: a function the classifier could not know writes), or the replica went away. If no
//! row has reached the client yet, pgtide runs the same messages on the primary and drops the
//! replies the client already has (ParseComplete, BindComplete, a RowDescription: the same
//! prefix comes back from the primary). A write is never re-run: only replica leases log.

use pgtide_wire::{backend as btag, Frame};

/// Beyond this many bytes of client messages the read is not kept for a re-run.
const MAX_LOGGED_BYTES: usize = 1 << 20;

#[derive(Debug, Default)]
pub struct ReplicaReplay {
    frames: Vec<Frame>,
    bytes: usize,
    /// Messages the client already got for these frames.
    sent: usize,
    /// A row (or COPY data) reached the client: too late to run elsewhere.
    rows_sent: bool,
    overflow: bool,
}

impl ReplicaReplay {
    pub fn log(&mut self, frame: &Frame) {
        self.bytes += frame.raw.len();
        if self.bytes > MAX_LOGGED_BYTES {
            self.overflow = true;
            self.frames.clear();
        } else if !self.overflow {
            self.frames.push(frame.clone());
        }
    }

    /// A message went to the client.
    pub fn sent(&mut self, tag: u8) {
        self.sent += 1;
        if matches!(
            tag,
            btag::DATA_ROW | btag::COPY_DATA | btag::COPY_OUT_RESPONSE | btag::COPY_IN_RESPONSE
        ) {
            self.rows_sent = true;
        }
    }

    /// Whether the messages can still run elsewhere.
    pub fn replayable(&self) -> bool {
        !self.rows_sent && !self.overflow && !self.frames.is_empty()
    }

    /// The frames to send again and how many replies to drop first.
    pub fn take(self) -> (Vec<Frame>, usize) {
        (self.frames, self.sent)
    }
}

/// Whether an ErrorResponse ends the connection (FATAL / PANIC: the replica is shutting down
/// or crashed).
pub fn is_fatal(body: &[u8]) -> bool {
    pgtide_wire::error_fields(body).is_ok_and(|e| e.severity == "FATAL" || e.severity == "PANIC")
}

/// Whether an ErrorResponse says the replica refused a write.
pub fn is_read_only_refusal(body: &[u8]) -> bool {
    pgtide_wire::error_fields(body).is_ok_and(|e| e.code == "25006")
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn frame(tag: u8) -> Frame {
        Frame {
            tag,
            raw: Bytes::from(vec![tag, 0, 0, 0, 4]),
        }
    }

    #[test]
    fn replayable_until_a_row_is_sent() {
        let mut r = ReplicaReplay::default();
        assert!(!r.replayable(), "nothing logged");
        r.log(&frame(b'P'));
        r.sent(btag::PARSE_COMPLETE);
        r.sent(btag::ROW_DESCRIPTION);
        assert!(r.replayable());
        r.sent(btag::DATA_ROW);
        assert!(!r.replayable());
        let mut r = ReplicaReplay::default();
        r.log(&frame(b'Q'));
        r.sent(btag::PARSE_COMPLETE);
        let (frames, sent) = r.take();
        assert_eq!((frames.len(), sent), (1, 1));
    }
}
