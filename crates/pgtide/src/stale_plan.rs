//! "cached plan must not change result type" (SQLSTATE 0A000): DDL changed the columns of a
//! statement a backend prepared earlier, and PostgreSQL refuses to run it. In transaction mode
//! the statement may have been prepared by another client, so pgtide recovers where it is safe:
//! outside a client's transaction, when nothing of the batch has run yet and the client asked
//! for the (new) row description in the same batch, the client's statement is prepared again
//! under a fresh name and the batch re-run once. Otherwise the error goes to the client, as
//! PostgreSQL would send it; the stale name is never prepared again for a client holding it
//! (it knows the old row shape), and the client's next Parse of the text gets a fresh name.

use pgtide_wire::{frontend as ftag, Frame};

/// Beyond this many bytes of client messages a batch is not kept for a re-run.
const MAX_LOGGED_BYTES: usize = 64 * 1024;

/// The client's messages from the batch's first Bind or Describe up to its Sync.
#[derive(Debug)]
pub struct RetryLog {
    frames: Vec<Frame>,
    bytes: usize,
    describes: bool,
    synced: bool,
    /// The client pipelined more behind the Sync: a re-run would come after it, out of order.
    trailing: bool,
}

impl RetryLog {
    /// Starts at the batch's first Bind or Describe.
    pub fn start(first: &Frame) -> RetryLog {
        RetryLog {
            frames: vec![first.clone()],
            bytes: first.raw.len(),
            describes: first.tag == ftag::DESCRIBE,
            synced: false,
            trailing: false,
        }
    }

    /// Adds a message the client sent after the Bind; false when the batch cannot be re-run.
    pub fn push(&mut self, frame: &Frame) -> bool {
        if self.synced {
            self.trailing = true;
            return false;
        }
        self.bytes += frame.raw.len();
        match frame.tag {
            ftag::DESCRIBE => self.describes = true,
            ftag::SYNC => self.synced = true,
            ftag::COPY_DATA | ftag::COPY_DONE | ftag::COPY_FAIL | ftag::FUNCTION_CALL => {
                return false
            }
            _ => {}
        }
        self.frames.push(frame.clone());
        self.bytes <= MAX_LOGGED_BYTES
    }

    /// The batch is complete, and re-running it tells the client the new row shape.
    pub fn replayable(&self) -> bool {
        self.synced && self.describes && !self.trailing
    }

    pub fn into_frames(self) -> Vec<Frame> {
        self.frames
    }
}

/// Whether an ErrorResponse body is PostgreSQL's stale cached plan error.
pub fn is_stale_plan_error(body: &[u8]) -> bool {
    let Ok(fields) = pgtide_wire::error_fields(body) else {
        return false;
    };
    fields.code == "0A000"
        && fields
            .message
            .starts_with("cached plan must not change result type")
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
    fn replayable_only_with_describe_and_sync() {
        let mut log = RetryLog::start(&frame(ftag::BIND));
        assert!(log.push(&frame(ftag::EXECUTE)));
        assert!(log.push(&frame(ftag::SYNC)));
        assert!(
            !log.replayable(),
            "no Describe: the client keeps the old row shape"
        );
        let mut log = RetryLog::start(&frame(ftag::BIND));
        log.push(&frame(ftag::DESCRIBE));
        log.push(&frame(ftag::EXECUTE));
        assert!(!log.replayable(), "no Sync yet");
        log.push(&frame(ftag::SYNC));
        assert!(log.replayable());
        assert!(!log.push(&frame(ftag::BIND)), "a pipelined batch behind it");
        assert!(!log.replayable());
        assert_eq!(log.into_frames().len(), 4);
        let mut log = RetryLog::start(&frame(ftag::BIND));
        assert!(!log.push(&frame(ftag::COPY_DATA)));
    }
}
