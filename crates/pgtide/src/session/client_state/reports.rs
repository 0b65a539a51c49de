//! What PostgreSQL itself reports about the client's session (ParameterStatus), checked
//! against what pgtide saw the client's statements announce.

use super::{ClientState, Observed, SERVER_REPORTS};

impl ClientState {
    /// PostgreSQL reported a setting's new value while the client's statements ran. A
    /// reported setting no statement named was changed where pgtide could not see it (inside a
    /// function, say): the client is pinned, its backend now holds state pgtide cannot carry.
    pub(crate) fn on_parameter_status(
        &mut self,
        name: &str,
        before: Option<&str>,
        after: &str,
    ) -> Observed {
        let name = name.to_ascii_lowercase();
        let mut observed = Observed::default();
        self.reported
            .entry(name.clone())
            .or_insert_with(|| (before.map(str::to_string), String::new()))
            .1 = after.to_string();
        let role_changed = ["role", "session_authorization"]
            .iter()
            .any(|r| self.announced.contains(*r));
        let expected = self.announced_all
            || self.announced.contains(&name)
            || SERVER_REPORTS.contains(&name.as_str())
            || (name == "is_superuser" && role_changed);
        if !expected {
            self.pin("untracked_set", &mut observed);
        }
        observed
    }
}
