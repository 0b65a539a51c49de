//! The order of replies a backend owes a client. Every forwarded message that gets exactly one
//! completing reply is queued; pgtide's own replies (a ParseComplete for a statement the backend
//! already has, a CloseComplete for a Close it kept to itself) wait in the same queue, so they
//! reach the client in the order PostgreSQL would have sent them. Replies to messages pgtide
//! injected (a Parse re-preparing a statement) are swallowed.

use std::collections::VecDeque;

use bytes::Bytes;
use pgtide_wire::backend as tag;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    Parse,
    Bind,
    Close,
    Describe,
    Execute,
    /// Simple Query, Sync and FunctionCall end at ReadyForQuery.
    Ready,
}

impl Completion {
    fn completed_by(self, t: u8) -> bool {
        match self {
            Completion::Parse => t == tag::PARSE_COMPLETE,
            Completion::Bind => t == tag::BIND_COMPLETE,
            Completion::Close => t == tag::CLOSE_COMPLETE,
            Completion::Describe => t == tag::ROW_DESCRIPTION || t == tag::NO_DATA,
            Completion::Execute => {
                t == tag::COMMAND_COMPLETE
                    || t == tag::EMPTY_QUERY_RESPONSE
                    || t == tag::PORTAL_SUSPENDED
            }
            Completion::Ready => t == tag::READY_FOR_QUERY,
        }
    }
}

#[derive(Debug)]
pub(crate) enum Expect {
    Backend {
        completion: Completion,
        /// A reply to a message pgtide injected: not for the client's eyes.
        swallow: bool,
        /// Part of an exchange pgtide runs on its own before the client's messages (ending in its
        /// own Sync): its errors end its own implicit transaction, not the client's.
        standalone: bool,
        /// A Parse of this pgtide statement name: if it fails, the backend does not have it.
        prepares: Option<String>,
        /// A Bind or Describe of this pgtide statement name: its errors may be about the
        /// statement (a stale cached plan).
        statement: Option<String>,
    },
    /// A reply pgtide writes itself once everything before it has been answered.
    Synthetic(Bytes),
    /// Where the client ended COPY data (CopyDone/CopyFail) before the backend said it entered
    /// copy-in mode: the Syncs queued before this point will be ignored by the backend.
    CopyEnd,
}

/// What to do with one backend message.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Forward,
    Swallow,
}

#[derive(Debug, Default)]
pub struct ReplyQueue {
    queue: VecDeque<Expect>,
    /// pgtide statement names whose Parse the backend accepted, for the pool's record.
    prepared: Vec<String>,
    /// The statement of the client Bind or Describe the last ErrorResponse answered.
    failed_statement: Option<(String, Completion)>,
    /// The backend is in extended-protocol copy-in mode, where it ignores Sync and Flush.
    copy_in: bool,
    /// The backend waits for the client's COPY data (either protocol): a batch behind it
    /// ends only once the client sends its CopyDone or CopyFail, so nothing may wait for it.
    copy_data_owed: bool,
    /// An error ended the client's extended-protocol batch before its Sync arrived: the
    /// backend ignores every message until that Sync.
    discarding: bool,
    /// Bytes of pgtide's own replies queued here, counted against the client's high-water
    /// mark with what waits to be written to it.
    synthetic_bytes: usize,
    /// ReadyForQuery replies queued, so `awaits_ready` does not walk a long pipeline's queue
    /// for every message.
    readies: usize,
    /// Client Syncs the backend ignores in copy-in mode since last asked (see
    /// `take_ignored_syncs`): they end no batch.
    ignored_syncs: usize,
}

fn is_ready(e: &Expect) -> bool {
    matches!(
        e,
        Expect::Backend {
            completion: Completion::Ready,
            ..
        }
    )
}

impl ReplyQueue {
    fn push(&mut self, e: Expect) {
        self.readies += usize::from(is_ready(&e));
        self.queue.push_back(e);
    }

    fn pop(&mut self) -> Option<Expect> {
        let e = self.queue.pop_front();
        self.readies -= usize::from(e.as_ref().is_some_and(is_ready));
        e
    }

    fn remove(&mut self, i: usize) {
        let e = self.queue.remove(i);
        self.readies -= usize::from(e.as_ref().is_some_and(is_ready));
    }

    pub fn expect(&mut self, completion: Completion) {
        self.push(Expect::Backend {
            completion,
            swallow: false,
            standalone: false,
            prepares: None,
            statement: None,
        });
    }

    /// A client Bind or Describe of a named statement (pgtide's name).
    pub fn expect_on_statement(&mut self, completion: Completion, global_name: String) {
        self.push(Expect::Backend {
            completion,
            swallow: false,
            standalone: false,
            prepares: None,
            statement: Some(global_name),
        });
    }

    /// The reply to a message pgtide injected into the client's batch.
    pub fn expect_swallowed(&mut self, completion: Completion, prepares: Option<String>) {
        self.push(Expect::Backend {
            completion,
            swallow: true,
            standalone: false,
            prepares,
            statement: None,
        });
    }

    /// The reply to a message of an exchange pgtide runs on its own, ended by its own Sync.
    pub fn expect_standalone(&mut self, completion: Completion, prepares: Option<String>) {
        self.push(Expect::Backend {
            completion,
            swallow: true,
            standalone: true,
            prepares,
            statement: None,
        });
    }

    pub fn expect_parse(&mut self, prepares: String) {
        self.push(Expect::Backend {
            completion: Completion::Parse,
            swallow: false,
            standalone: false,
            prepares: Some(prepares),
            statement: None,
        });
    }

    /// The pgtide statement whose Bind or Describe the last ErrorResponse answered, if any.
    pub fn take_failed_statement(&mut self) -> Option<(String, Completion)> {
        self.failed_statement.take()
    }

    /// Makes the next expected ReadyForQuery pgtide's own (the client's batch will be re-run
    /// and answered then); false if none is queued next.
    pub fn swallow_next_ready(&mut self) -> bool {
        match self.queue.front_mut() {
            Some(Expect::Backend {
                completion: Completion::Ready,
                swallow,
                standalone,
                ..
            }) => {
                *swallow = true;
                *standalone = true;
                true
            }
            _ => false,
        }
    }

    /// Statement names the backend has accepted a Parse for since the last call.
    pub fn take_prepared(&mut self) -> std::vec::Drain<'_, String> {
        self.prepared.drain(..)
    }

    /// Whether the backend is ignoring the client's messages until its next Sync.
    pub fn is_discarding(&self) -> bool {
        self.discarding
    }

    /// Whether the backend waits for COPY data from the client.
    pub fn copy_data_owed(&self) -> bool {
        self.copy_data_owed
    }

    /// A client Sync: owed a ReadyForQuery unless the backend is in copy-in mode.
    pub fn sync(&mut self) {
        self.discarding = false;
        if self.copy_in {
            self.ignored_syncs += 1;
        } else {
            self.expect(Completion::Ready);
        }
    }

    /// How many client Syncs turned out to be ignored (copy-in mode) since the last call: the
    /// session counted each as a batch that a ReadyForQuery would end, and none will.
    pub fn take_ignored_syncs(&mut self) -> usize {
        std::mem::take(&mut self.ignored_syncs)
    }

    /// A client CopyDone or CopyFail.
    pub fn copy_end(&mut self) {
        self.copy_data_owed = false;
        if self.copy_in {
            self.copy_in = false;
        } else {
            self.push(Expect::CopyEnd);
        }
    }

    /// A simple query (or Sync) pgtide sent itself: every reply up to its ReadyForQuery is
    /// pgtide's.
    pub fn expect_swallowed_query(&mut self) {
        self.expect_standalone(Completion::Ready, None);
    }

    pub fn synthetic(&mut self, reply: Bytes) {
        self.synthetic_bytes += reply.len();
        self.push(Expect::Synthetic(reply));
    }

    /// Bytes of pgtide's own replies still queued (due or waiting behind backend replies).
    pub fn synthetic_bytes(&self) -> usize {
        self.synthetic_bytes
    }

    /// Whether some of pgtide's own replies wait behind replies the backend still owes.
    pub fn synthetic_waits_on_backend(&self) -> bool {
        self.synthetic_bytes > 0
            && !matches!(
                self.queue.front(),
                Some(Expect::Synthetic(_) | Expect::CopyEnd)
            )
    }

    /// Whether the next backend message belongs to an exchange pgtide runs on its own (whose
    /// errors and ReadyForQuery say nothing about the client's transaction).
    pub fn front_is_standalone(&self) -> bool {
        matches!(
            self.queue.front(),
            Some(Expect::Backend {
                standalone: true,
                ..
            })
        )
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Whether a ReadyForQuery is still owed (an earlier batch or query is unanswered).
    pub fn awaits_ready(&self) -> bool {
        self.readies > 0
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Nothing is owed: the empty queue's room goes back (the client is idle).
    pub fn release_idle(&mut self) {
        if self.queue.is_empty() && self.queue.capacity() > 0 {
            self.queue = VecDeque::new();
        }
    }

    /// Whether [`take_due_synthetic`](Self::take_due_synthetic) has anything to take (asked
    /// several times per message; usually not).
    pub fn has_due_synthetic(&self) -> bool {
        matches!(
            self.queue.front(),
            Some(Expect::Synthetic(_) | Expect::CopyEnd)
        )
    }

    /// Moves pgtide's own replies that are now due into `out`.
    pub fn take_due_synthetic(&mut self, out: &mut Vec<Bytes>) {
        while let Some(Expect::Synthetic(_) | Expect::CopyEnd) = self.queue.front() {
            if let Some(Expect::Synthetic(b)) = self.pop() {
                self.synthetic_bytes -= b.len();
                out.push(b);
            }
        }
    }

    /// Decides the fate of one backend message. `forgotten` collects statement names the
    /// backend turned out not to have (their Parse failed or was skipped after an error).
    pub fn on_backend_message(&mut self, t: u8, forgotten: &mut Vec<String>) -> Verdict {
        if let Some(Expect::Backend {
            completion: Completion::Ready,
            standalone: true,
            ..
        }) = self.queue.front()
        {
            if t == tag::READY_FOR_QUERY {
                self.pop();
            }
            return Verdict::Swallow;
        }
        if t == tag::COPY_IN_RESPONSE {
            self.copy_data_owed = true;
            self.enter_copy_in();
            return Verdict::Forward;
        }
        if t == tag::ERROR_RESPONSE {
            self.copy_in = false;
            self.copy_data_owed = false;
            self.failed_statement = match self.queue.front() {
                Some(Expect::Backend {
                    statement: Some(name),
                    swallow: false,
                    completion,
                    ..
                }) => Some((name.clone(), *completion)),
                _ => None,
            };
            // The backend skips everything up to the next Sync: drop what it will never answer.
            // If that Sync has not come yet, what the client sends until it is skipped too.
            self.discarding = true;
            while let Some(front) = self.queue.front() {
                match front {
                    Expect::Backend {
                        completion: Completion::Ready,
                        ..
                    } => {
                        self.discarding = false;
                        break;
                    }
                    _ => match self.pop() {
                        Some(Expect::Backend {
                            prepares: Some(name),
                            ..
                        }) => forgotten.push(name),
                        Some(Expect::Synthetic(b)) => self.synthetic_bytes -= b.len(),
                        _ => {}
                    },
                }
            }
            return Verdict::Forward;
        }
        match self.queue.front() {
            Some(Expect::Backend {
                completion,
                swallow,
                ..
            }) if completion.completed_by(t) => {
                let swallow = *swallow;
                if let Some(Expect::Backend {
                    prepares: Some(name),
                    ..
                }) = self.pop()
                {
                    self.prepared.push(name);
                }
                if swallow {
                    Verdict::Swallow
                } else {
                    Verdict::Forward
                }
            }
            _ => Verdict::Forward,
        }
    }

    /// An Execute started COPY FROM STDIN: the backend ignores the Syncs that reach it before
    /// the client's CopyDone/CopyFail, so they are owed nothing.
    fn enter_copy_in(&mut self) {
        let extended = matches!(
            self.queue.front(),
            Some(Expect::Backend {
                completion: Completion::Execute,
                ..
            })
        );
        if !extended {
            return;
        }
        let mut i = 1;
        while i < self.queue.len() {
            match self.queue.get(i) {
                Some(Expect::CopyEnd) => {
                    self.remove(i);
                    return;
                }
                Some(Expect::Backend {
                    completion: Completion::Ready,
                    ..
                }) => {
                    self.remove(i);
                    self.ignored_syncs += 1;
                }
                _ => i += 1,
            }
        }
        self.copy_in = true;
    }

    pub fn clear(&mut self) {
        self.queue.clear();
        self.discarding = false;
        self.synthetic_bytes = 0;
        self.readies = 0;
        self.ignored_syncs = 0;
        self.copy_data_owed = false;
    }
}

#[cfg(test)]
#[path = "replies_tests.rs"]
mod tests;
