//! The client's batches in the pending list: each Query, Sync or FunctionCall sent ends with a
//! `BatchEnd` marker, settled by its ReadyForQuery; batches taken back (a replica re-run) or
//! never ended (Syncs ignored in copy-in mode) are undone here.

use super::{Change, ClientState};

impl ClientState {
    /// A client batch (Query, Sync, FunctionCall) went to the backend.
    pub(crate) fn batch_sent(&mut self) {
        self.pending.push(Change::BatchEnd);
    }

    /// The last `batches` sent were taken back unanswered (they run again elsewhere, and are
    /// observed again as they are sent): their pending changes go. Pins taken stay.
    pub(crate) fn abandon_batches(&mut self, batches: u64) {
        for _ in 0..batches {
            if self.pending.last() == Some(&Change::BatchEnd) {
                self.pending.pop();
            }
            let kept = self.pending.iter().rposition(|c| *c == Change::BatchEnd);
            self.pending.truncate(kept.map_or(0, |i| i + 1));
        }
    }

    /// The oldest `syncs` batch ends in flight will not come (Syncs the backend ignored in
    /// copy-in mode: the COPY's batch is the oldest unanswered one, and the Syncs it ignores
    /// are the next ones sent): those batches are one with the batch after them, which ends
    /// at the next ReadyForQuery. Batches the client pipelined behind keep their own ends.
    pub(crate) fn merge_oldest_batches(&mut self, syncs: usize) {
        for _ in 0..syncs {
            if let Some(i) = self.pending.iter().position(|c| *c == Change::BatchEnd) {
                self.pending.remove(i);
            }
        }
    }

    /// How many pending changes belong to the oldest unanswered batch.
    pub(super) fn batch_len(&self) -> usize {
        self.pending
            .iter()
            .position(|c| *c == Change::BatchEnd)
            .unwrap_or(self.pending.len())
    }
}
