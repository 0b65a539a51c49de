//! Debug-build counters of the SQL work done on this thread (lexing passes, classifications,
//! fingerprints), so tests can show that one message is analysed once. Free in release builds.

/// What this thread has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Lexers started (one per pass over a text).
    pub lexes: u64,
    /// Classifications computed (not cache hits).
    pub classifications: u64,
    /// Fingerprints computed.
    pub fingerprints: u64,
}

#[cfg(debug_assertions)]
thread_local! {
    static COUNTS: std::cell::Cell<Counts> = const { std::cell::Cell::new(Counts { lexes: 0, classifications: 0, fingerprints: 0 }) };
}

#[inline]
fn bump(f: impl FnOnce(&mut Counts)) {
    #[cfg(debug_assertions)]
    COUNTS.with(|c| {
        let mut v = c.get();
        f(&mut v);
        c.set(v);
    });
    #[cfg(not(debug_assertions))]
    let _ = f;
}

pub(crate) fn lexed() {
    bump(|c| c.lexes += 1);
}

pub(crate) fn classified() {
    bump(|c| c.classifications += 1);
}

pub(crate) fn fingerprinted() {
    bump(|c| c.fingerprints += 1);
}

/// This thread's counts (all zero in a release build).
pub fn counts() -> Counts {
    #[cfg(debug_assertions)]
    return COUNTS.with(std::cell::Cell::get);
    #[cfg(not(debug_assertions))]
    Counts::default()
}
