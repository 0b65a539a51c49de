//! "cached plan must not change result type" (SQLSTATE 0A000): DDL changed the columns of a
//! statement a backend prepared earlier, and PostgreSQL refuses to run it. In transaction mode
//! the statement may have been prepared by another client, so pgtide recovers where it is safe:
//! outside a client's transaction, when nothing of the batch has run yet and the client asked
//! for the (new) row description in the same batch, the client's statement is prepared again
//! under a fresh name and the batch re-run once. Otherwise the error goes to the client, as
//! PostgreSQL would send it; the stale name is never prepared again for a client holding it
//! (it knows the old row shape), and the client's next Parse of the text gets a fresh name.

use pgtide_wire::{frontend as ftag, Frame};

use crate::session::prepared::client::ClientStatements;
use crate::session::prepared::SchemaEpochs;
use crate::session::replies::{Completion, ReplyQueue};

/// One session's recovery from stale plans: the batch it may re-run, and what it owes.
#[derive(Debug, Default)]
pub(crate) struct StalePlans {
    log: Option<RetryLog>,
    /// An Execute was sent since the last Sync: a re-run could repeat its effects.
    executed_in_batch: bool,
    /// The batch began with the unnamed statement and is not logged; nothing later in it
    /// starts a log (a log from the middle would replay half a batch).
    unlogged_batch: bool,
    /// The batch being answered is a re-run; it is not re-run again.
    rerun: bool,
    /// The failed run already sent a statement's ParameterDescription; the re-run's is dropped.
    skip_parameter_description: bool,
}

/// A Bind of the unnamed statement, or a Describe of the unnamed statement or portal: a re-run
/// renews only named statements (drivers send the unnamed one's Parse with its batch), so a
/// batch that starts with one is not logged for a re-run; a stale named statement later in
/// it gets PostgreSQL's 0A000. A direct connection answers that too when the client's own
/// statement went stale; one prepared by the client after DDL made outside pgtide, but shared
/// from before it, is the case README's "Not yet" names.
fn targets_unnamed(frame: &Frame) -> bool {
    match frame.tag {
        ftag::BIND => {
            pgtide_wire::bind_names(frame.body()).is_ok_and(|names| names.statement.is_empty())
        }
        _ => pgtide_wire::close_or_describe(frame.body()).is_ok_and(|t| t.name.is_empty()),
    }
}

impl StalePlans {
    /// A client frame about to be forwarded (transaction mode). `batch_start`: outside a
    /// transaction, with nothing owed from an earlier batch.
    pub(crate) fn on_client_frame(&mut self, frame: &Frame, batch_start: bool) {
        if let Some(log) = &mut self.log {
            if !log.push(frame) {
                self.log = None;
            }
        } else if (frame.tag == ftag::BIND || frame.tag == ftag::DESCRIBE)
            && batch_start
            && !self.executed_in_batch
            && !self.unlogged_batch
            && !self.rerun
        {
            if targets_unnamed(frame) {
                self.unlogged_batch = true;
            } else {
                self.log = Some(RetryLog::start(frame));
            }
        }
        match frame.tag {
            ftag::EXECUTE => self.executed_in_batch = true,
            ftag::SYNC => {
                self.executed_in_batch = false;
                self.unlogged_batch = false;
            }
            _ => {}
        }
    }

    /// An ErrorResponse answered the client's Bind or Describe (`completion`) of `global`. If
    /// its cached plan went stale, the name is never prepared again for its holders, and where
    /// safe the client's statement is renewed under a fresh name for a re-run of the batch.
    /// Returns true when the error is to be swallowed (the re-run answers instead).
    pub(crate) fn on_error(
        &mut self,
        body: &[u8],
        global: &str,
        completion: Completion,
        epochs: &SchemaEpochs,
        statements: &mut ClientStatements,
        replies: &mut ReplyQueue,
    ) -> bool {
        if !is_stale_plan_error(body) {
            return false;
        }
        epochs.went_stale(global);
        // Only if the client has seen nothing of the logged messages' replies: a re-run would
        // send them again (a failing statement Describe's own ParameterDescription excepted,
        // dropped from the re-run).
        let replayable = self
            .log
            .as_ref()
            .is_some_and(|log| log.replayable() && log.unanswered(completion));
        if replayable && !self.rerun && statements.renew(global) && replies.swallow_next_ready() {
            tracing::debug!(
                statement = global,
                "stale cached plan: re-preparing and re-running"
            );
            self.rerun = true;
            // A statement Describe sent its ParameterDescription before failing.
            self.skip_parameter_description = completion == Completion::Describe;
            return true;
        }
        false
    }

    /// A backend message went to the client (not pgtide's own exchange): if it answers a
    /// logged message, re-running the batch would repeat it.
    pub(crate) fn on_forwarded(&mut self, tag: u8) {
        if let Some(log) = &mut self.log {
            log.answered(tag);
        }
    }

    /// Whether a ParameterDescription of the client's must be dropped (see on_error).
    pub(crate) fn drop_parameter_description(&mut self) -> bool {
        std::mem::take(&mut self.skip_parameter_description)
    }

    /// pgtide's own ReadyForQuery ended the failed run: the batch to send again, if any.
    pub(crate) fn take_rerun(&mut self) -> Option<Vec<Frame>> {
        if !self.rerun {
            return None;
        }
        self.log.take().map(RetryLog::into_frames)
    }

    /// The client's ReadyForQuery: the batch is answered.
    pub(crate) fn on_client_ready(&mut self) {
        self.log = None;
        self.rerun = false;
    }
}

/// Beyond this many bytes of client messages a batch is not kept for a re-run.
const MAX_LOGGED_BYTES: usize = 64 * 1024;

/// The client's messages from the batch's first Bind or Describe up to its Sync.
#[derive(Debug)]
pub(crate) struct RetryLog {
    frames: Vec<Frame>,
    bytes: usize,
    describes: bool,
    synced: bool,
    /// The client pipelined more behind the Sync: a re-run would come after it, out of order.
    trailing: bool,
    /// Replies to logged messages the client has: ParameterDescriptions apart (a failing
    /// statement Describe sends its own before the error), and everything else.
    parameter_descriptions: u32,
    other_replies: u32,
}

impl RetryLog {
    /// Starts at the batch's first Bind or Describe.
    pub(crate) fn start(first: &Frame) -> RetryLog {
        RetryLog {
            frames: vec![first.clone()],
            bytes: first.raw.len(),
            describes: first.tag == ftag::DESCRIBE,
            synced: false,
            trailing: false,
            parameter_descriptions: 0,
            other_replies: 0,
        }
    }

    /// A backend message went to the client. Counted: the replies of Bind, Describe, Execute
    /// and Close. Not counted: ParseComplete (it may answer a Parse sent before the log
    /// started: the log starts at the first Bind or Describe) and what is not a reply
    /// (notices, ParameterStatus, notifications).
    pub(crate) fn answered(&mut self, tag: u8) {
        use pgtide_wire::backend as btag;
        match tag {
            btag::PARAMETER_DESCRIPTION => self.parameter_descriptions += 1,
            btag::BIND_COMPLETE
            | btag::ROW_DESCRIPTION
            | btag::NO_DATA
            | btag::DATA_ROW
            | btag::COMMAND_COMPLETE
            | btag::EMPTY_QUERY_RESPONSE
            | btag::PORTAL_SUSPENDED
            | btag::CLOSE_COMPLETE
            | btag::COPY_IN_RESPONSE
            | btag::COPY_OUT_RESPONSE
            | btag::COPY_BOTH_RESPONSE
            | btag::COPY_DATA
            | btag::COPY_DONE => self.other_replies += 1,
            _ => {}
        }
    }

    /// Nothing of the logged messages reached the client before the error answering
    /// `failed` (a statement Describe's own ParameterDescription apart).
    pub(crate) fn unanswered(&self, failed: Completion) -> bool {
        let own = u32::from(failed == Completion::Describe);
        self.other_replies == 0 && self.parameter_descriptions <= own
    }

    /// Adds a message the client sent after the Bind; false when the batch cannot be re-run.
    pub(crate) fn push(&mut self, frame: &Frame) -> bool {
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
    pub(crate) fn replayable(&self) -> bool {
        self.synced && self.describes && !self.trailing
    }

    pub(crate) fn into_frames(self) -> Vec<Frame> {
        self.frames
    }
}

/// Whether an ErrorResponse body is PostgreSQL's stale cached plan error.
pub(crate) fn is_stale_plan_error(body: &[u8]) -> bool {
    let Ok(fields) = pgtide_wire::error_fields(body) else {
        return false;
    };
    fields.code == crate::sqlstate::FEATURE_NOT_SUPPORTED
        && fields
            .message
            .starts_with("cached plan must not change result type")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(tag: u8) -> Frame {
        Frame::bodyless(tag)
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

    fn encoded(build: impl FnOnce(&mut bytes::BytesMut)) -> Frame {
        let mut buf = bytes::BytesMut::new();
        build(&mut buf);
        pgtide_wire::FrameDecoder::new(1 << 20)
            .decode(&mut buf)
            .ok()
            .flatten()
            .expect("one whole frame")
    }

    fn bind_of(statement: &str) -> Frame {
        encoded(|buf| {
            pgtide_wire::encode::bind_renamed(buf, "", statement, &[0, 0, 0, 0, 0, 0])
                .expect("a short Bind encodes")
        })
    }

    #[test]
    fn a_batch_of_the_unnamed_statement_is_not_logged_and_a_named_one_after_it_is() {
        let mut plans = StalePlans::default();
        plans.on_client_frame(&bind_of(""), true);
        assert!(
            plans.log.is_none(),
            "the unnamed statement is parsed with its batch"
        );
        // Later in the same batch, a named statement starts no log: it would replay half a batch.
        plans.on_client_frame(&bind_of("s1"), true);
        assert!(plans.log.is_none());
        plans.on_client_frame(&frame(ftag::SYNC), true);
        plans.on_client_frame(&bind_of("s1"), true);
        assert!(
            plans.log.is_some(),
            "the next batch, of a named statement, is logged"
        );
        let mut plans = StalePlans::default();
        let describe_unnamed_portal = encoded(|buf| {
            pgtide_wire::encode::describe(buf, b'P', "").expect("a Describe encodes")
        });
        plans.on_client_frame(&describe_unnamed_portal, true);
        assert!(plans.log.is_none());
    }
}
