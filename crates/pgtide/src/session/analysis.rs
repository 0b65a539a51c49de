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
    /// The analysis of `frame` (a Query), made now unless it was made already; classified if
    /// `classify` (routing and the result cache need it, nothing else does). None: not a
    /// Query, or its text is not UTF-8.
    pub(crate) fn of(
        &mut self,
        frame: &Frame,
        classifier: &Classifier,
        classify: bool,
    ) -> Option<&Analysis> {
        let sql = match frame.tag {
            ftag::QUERY => pgtide_wire::query_text(frame.body()).ok()?,
            _ => return None,
        };
        let (raw, mut analysis) = match self.last.take() {
            Some((raw, analysis)) if raw[..] == frame.raw[..] => (raw, analysis),
            _ => (frame.raw.clone(), classifier.analyze_with(sql, classify)),
        };
        if classify && analysis.classification.is_none() {
            // Made unclassified, wanted classified after all (routing became active).
            analysis.classification = Some(classifier.classify(sql));
        }
        Some(&self.last.insert((raw, analysis)).1)
    }

    /// The analysis of `frame`, for its forwarding: what [`of`](Self::of) made, or made now.
    pub(crate) fn take(
        &mut self,
        frame: &Frame,
        classifier: &Classifier,
        classify: bool,
    ) -> Option<Analysis> {
        self.of(frame, classifier, classify)?;
        self.last.take().map(|(_, a)| a)
    }
}

#[cfg(test)]
#[path = "analysis_tests.rs"]
mod tests;
