//! A simple Query's SQL, analysed once ([`pgtide_sql::Analysis`]: one lexing pass) for every
//! consumer: routing's intent (before the lease) and, when forwarded, session state, statement
//! names, schema changes, write bookkeeping and insights.

use bytes::Bytes;
use pgtide_sql::{Analysis, Classifier, ClassifyMode};
use pgtide_wire::{frontend as ftag, Frame};

/// The analysis of the Query frame being handled, kept from the lease to the forward.
#[derive(Debug, Default)]
pub(crate) struct QueryAnalysis {
    /// The frame it was made for and the result.
    last: Option<(Bytes, Analysis)>,
}

impl QueryAnalysis {
    /// The analysis of `frame` (a Query), made now unless it was made already; classified as
    /// `classify` says (routing and the result cache need it, write bookkeeping unless it is a
    /// plain read). None: not a Query, or its text is not UTF-8.
    /// `sql` is the frame's text as the caller read it (None: not a Query, or not UTF-8).
    pub(crate) fn of(
        &mut self,
        frame: &Frame,
        sql: Option<&str>,
        classifier: &Classifier,
        classify: ClassifyMode,
    ) -> Option<&Analysis> {
        let sql = sql.filter(|_| frame.tag == ftag::QUERY)?;
        let (raw, mut analysis) = match self.last.take() {
            // The same bytes, not equal ones: `last` holds them, so they cannot have been
            // reused for another message.
            Some((raw, analysis)) if same_bytes(&raw, &frame.raw) => (raw, analysis),
            _ => (frame.raw.clone(), classifier.analyze_with(sql, classify)),
        };
        let wanted = match classify {
            ClassifyMode::No => false,
            ClassifyMode::Yes => true,
            ClassifyMode::UnlessPlainRead => !analysis.plain_read,
        };
        if wanted && analysis.classification.is_none() {
            // Made unclassified, wanted classified after all (routing became active).
            analysis.classification = Some(classifier.classify(sql));
        }
        Some(&self.last.insert((raw, analysis)).1)
    }

    /// The analysis of `frame`, for its forwarding: what [`of`](Self::of) made, or made now.
    pub(crate) fn take(
        &mut self,
        frame: &Frame,
        sql: Option<&str>,
        classifier: &Classifier,
        classify: ClassifyMode,
    ) -> Option<Analysis> {
        self.of(frame, sql, classifier, classify)?;
        self.last.take().map(|(_, a)| a)
    }
}

/// What the session needs of a Parse's SQL (does it have session effects, does it change the
/// schema), kept for the last text seen: drivers send the same unnamed statement again for
/// every execution, and reading it costs three passes over the text.
#[derive(Debug, Default)]
pub(crate) struct ParseFacts {
    /// The text the facts are of (None: not kept, or none yet).
    text: Option<String>,
    pub(crate) session_effects: bool,
    pub(crate) changes_schema: bool,
}

impl ParseFacts {
    /// The facts of `sql` (both are functions of the text alone).
    /// A text over MEMO_MAX is read each time rather than kept (a bulk statement's copy would
    /// stay with the session).
    pub(crate) fn of(&mut self, sql: &str) -> &ParseFacts {
        const MEMO_MAX: usize = 4096;
        if self.text.as_deref() != Some(sql) {
            self.session_effects = crate::session::prepared::has_session_effects(sql);
            self.changes_schema = pgtide_sql::changes_schema(sql);
            self.text = (sql.len() <= MEMO_MAX).then(|| sql.to_string());
        }
        self
    }
}

fn same_bytes(a: &Bytes, b: &Bytes) -> bool {
    a.as_ptr() == b.as_ptr() && a.len() == b.len()
}

/// A Query frame's bytes, shared (a reference count), so that its text, read once with
/// [`query_sql`], can be lent to every phase while the frame itself moves on.
pub(crate) fn query_frame(frame: &Frame) -> Option<Frame> {
    (frame.tag == ftag::QUERY).then(|| frame.clone())
}

/// The SQL text of a frame from [`query_frame`]: None when it is no Query or not UTF-8.
pub(crate) fn query_sql(query: &Option<Frame>) -> Option<&str> {
    query
        .as_ref()
        .and_then(|q| pgtide_wire::query_text(q.body()).ok())
}

/// `sql` (the text of `frame`, a Query) as shared bytes of the frame, without a copy.
pub(crate) fn text_bytes(frame: &Frame, sql: &str) -> Bytes {
    frame.body_bytes().slice_ref(sql.as_bytes())
}

#[cfg(test)]
#[path = "analysis_tests.rs"]
mod tests;
