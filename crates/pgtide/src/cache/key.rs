//! What an entry is stored under, and where its reply was read.

/// What a cached reply is stored under: everything that can change the reply's bytes or what
/// the statement may see. The exact statement text (two statements that differ only in a
/// literal are two entries; rules still match by fingerprint), its parameter types, values and
/// formats, the login, and every session setting the client has (see
/// `session_cache::settings_key`: timezone, DateStyle, role, custom settings read by row-level
/// security, search_path, ...).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    pub database: String,
    pub user: String,
    /// The client's session settings, canonical text (`name=value` lines, sorted by name).
    pub settings: String,
    /// The statement's exact text.
    pub text: String,
    /// Parameter types of the Parse (extended protocol; they change how values are read).
    pub param_types: Vec<u32>,
    /// Bind parameter values (extended protocol; empty for a simple query).
    pub params: Vec<Option<Vec<u8>>>,
    pub param_formats: Vec<i16>,
    pub result_formats: Vec<i16>,
    /// Simple-protocol reply (no ParseComplete/BindComplete), as opposed to extended.
    pub simple: bool,
    /// Extended protocol: the batch's Describe, `P` (portal: the reply starts with
    /// RowDescription) or `S` (statement: ParameterDescription, RowDescription); 0 for none.
    pub describe: u8,
}

impl Key {
    /// Bytes this key holds (for the weigher).
    pub fn size(&self) -> usize {
        std::mem::size_of::<Key>()
            + self.database.len()
            + self.user.len()
            + self.settings.len()
            + self.text.len()
            + 4 * self.param_types.len()
            + self
                .params
                .iter()
                .map(|p| std::mem::size_of::<Option<Vec<u8>>>() + p.as_ref().map_or(0, Vec::len))
                .sum::<usize>()
            + 2 * (self.param_formats.len() + self.result_formats.len())
    }
}

/// Where a miss was filled from, as the health checks last saw it before the read started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The primary, whose WAL position was this (0: unknown).
    Primary(u64),
    /// A replica whose replay position was this.
    Replica(u64),
    /// A backend whose position cannot be vouched for: never stored.
    Unusable,
}

impl Source {
    pub fn lsn(self) -> u64 {
        match self {
            Source::Primary(l) | Source::Replica(l) => l,
            Source::Unusable => 0,
        }
    }
}
