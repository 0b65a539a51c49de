//! A simple Query's SQL, analysed once ([`pgtide_sql::Analysis`]: one lexing pass) for every
//! consumer: routing's intent (before the lease) and, when forwarded, session state, statement
//! names, schema changes, write bookkeeping and insights.

use bytes::Bytes;
use pgtide_sql::{Analysis, Classifier};
use pgtide_wire::{frontend as ftag, Frame};

/// The analysis of the Query frame being handled, kept from the lease to the forward.
#[derive(Debug, Default)]
pub(crate) struct QueryAnalysis {
    /// The frame it was made for and the result.
    last: Option<(Bytes, Analysis)>,
}

impl QueryAnalysis {
    /// The analysis of `frame` (a Query), made now unless it was made already. None: not a
    /// Query, or its text is not UTF-8.
    pub(crate) fn of(&mut self, frame: &Frame, classifier: &Classifier) -> Option<&Analysis> {
        if !self.holds(frame) {
            self.last = None;
            let analysis = analyze(frame, classifier)?;
            self.last = Some((frame.raw.clone(), analysis));
        }
        self.last.as_ref().map(|(_, a)| a)
    }

    /// The analysis of `frame`, for its forwarding: taken from what [`of`](Self::of) made, or
    /// made now.
    pub(crate) fn take(&mut self, frame: &Frame, classifier: &Classifier) -> Option<Analysis> {
        match self.last.take() {
            Some((raw, analysis)) if same(&raw, &frame.raw) => Some(analysis),
            _ => analyze(frame, classifier),
        }
    }

    fn holds(&self, frame: &Frame) -> bool {
        self.last
            .as_ref()
            .is_some_and(|(raw, _)| same(raw, &frame.raw))
    }
}

/// The same message: the same text has the same analysis.
fn same(a: &Bytes, b: &Bytes) -> bool {
    a[..] == b[..]
}

fn analyze(frame: &Frame, classifier: &Classifier) -> Option<Analysis> {
    if frame.tag != ftag::QUERY {
        return None;
    }
    let sql = pgtide_wire::query_text(frame.body()).ok()?;
    Some(classifier.analyze(sql))
}

#[cfg(test)]
#[path = "analysis_tests.rs"]
mod tests;
