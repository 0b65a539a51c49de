//! What the messages that open a transaction intend, for routing: a simple Query is
//! classified as a whole; an extended-protocol batch only counts as a read when it is complete
//! (its Sync already arrived) and every statement it parses or binds is a certain read. A
//! batch that is not all there yet goes to the primary: a later message could be a write.

use std::sync::Arc;

use pgtide_sql::{Classification, StatementKind, TransactionStatement};
use pgtide_wire::{frontend as ftag, target, Frame, Frames};

use crate::routing::Intent;
use crate::session::client_state::Settings;

/// The intent of one classified statement text.
pub(crate) fn of_classification(c: &Classification) -> Intent {
    match c.kind {
        StatementKind::Read => Intent {
            read: true,
            read_only_transaction: false,
            hint: c.hint,
        },
        StatementKind::Transaction(TransactionStatement::Begin { read_only: true }) => Intent {
            read: true,
            read_only_transaction: true,
            hint: c.hint,
        },
        _ => Intent {
            read: false,
            read_only_transaction: false,
            hint: c.hint,
        },
    }
}

/// Whether a statement writes (for read-your-writes): anything that is not a read, a
/// transaction statement or a session command.
pub(crate) fn writes(c: &Classification) -> bool {
    c.kind == StatementKind::Write
}

/// A statement pgtide cannot account for: a write to unknown tables (read-your-writes is taken
/// after it, and the result cache flushes everything when it commits).
pub(crate) fn unknown_write() -> Classification {
    Classification {
        kind: StatementKind::Write,
        hint: None,
        reads: Vec::new(),
        writes: Vec::new(),
        volatile: true,
        statements: 1,
    }
}

/// Whether the client's session lets its reads run on a replica at all: its text must lex as
/// pgtide reads it (`lexes_as_sent`, from [`crate::session::client_state::ClientState::lexes_as_sent`]),
/// and a standby refuses every transaction (0A000) when `default_transaction_isolation` is
/// serializable.
pub(crate) fn settings_allow_replica(settings: &Settings, lexes_as_sent: bool) -> bool {
    lexes_as_sent
        && settings
            .get("default_transaction_isolation")
            .is_none_or(|v| {
                matches!(
                    setting_word(v).as_str(),
                    "read committed" | "repeatable read" | "read uncommitted" | "default"
                )
            })
}

/// The classification routing and write tracking use for a statement: anything pgtide cannot
/// lex as PostgreSQL will (`lexes_as_sent` false) is an [`unknown_write`].
pub(crate) fn under_settings(c: Arc<Classification>, lexes_as_sent: bool) -> Arc<Classification> {
    if lexes_as_sent {
        c
    } else {
        Arc::new(unknown_write())
    }
}

/// A setting's SQL text (`'Serializable'`, `off`, `"on"`) as one lower-case word or phrase.
fn setting_word(value: &str) -> String {
    let v = value.trim();
    let v = v
        .strip_prefix('\'')
        .and_then(|v| v.strip_suffix('\''))
        .or_else(|| v.strip_prefix('"').and_then(|v| v.strip_suffix('"')))
        .unwrap_or(v);
    v.trim().to_ascii_lowercase()
}

/// The intent of an extended-protocol batch starting with `first`, whose following bytes (not
/// yet decoded) are `rest`. `classify` gives a statement text's classification; `known`
/// gives the text of a statement the client prepared earlier ("" for the unnamed one).
pub(crate) fn of_batch(
    first: &Frame,
    rest: &[u8],
    classify: &dyn Fn(&str) -> Arc<Classification>,
    known: &dyn Fn(&str) -> Option<String>,
) -> Intent {
    let mut intent = Intent {
        read: true,
        read_only_transaction: false,
        hint: None,
    };
    let mut parsed: Vec<(String, Intent)> = Vec::new();
    let mut statements = 0usize;
    let note = |i: Intent, intent: &mut Intent| {
        intent.read &= i.read && !i.read_only_transaction;
        if intent.hint.is_none() {
            intent.hint = i.hint;
        }
    };
    let frames = std::iter::once((first.tag, first.body())).chain(Frames::new(rest));
    for (tag, body) in frames {
        match tag {
            ftag::PARSE => {
                let Ok(view) = pgtide_wire::parse_message(body) else {
                    return Intent::default();
                };
                let i = of_classification(&classify(view.query));
                statements += 1;
                note(i, &mut intent);
                parsed.push((view.statement.to_string(), i));
            }
            ftag::BIND | ftag::DESCRIBE => {
                let name = if tag == ftag::BIND {
                    let Some((_, name)) = crate::session::prepared::bind_names(body) else {
                        return Intent::default();
                    };
                    name
                } else {
                    // A Describe of a statement prepared earlier (its Parse answered by pgtide
                    // alone).
                    let Ok(described) = pgtide_wire::close_or_describe(body) else {
                        return Intent::default();
                    };
                    if described.kind != target::STATEMENT {
                        continue;
                    }
                    described.name
                };
                let found = parsed
                    .iter()
                    .rev()
                    .find(|(n, _)| n == name)
                    .map(|(_, i)| *i);
                let Some(i) =
                    found.or_else(|| known(name).map(|text| of_classification(&classify(&text))))
                else {
                    return Intent::default();
                };
                statements += 1;
                note(i, &mut intent);
            }
            ftag::EXECUTE | ftag::CLOSE | ftag::FLUSH => {}
            ftag::SYNC => {
                if statements == 0 {
                    intent.read = false;
                }
                return intent;
            }
            _ => return Intent::default(),
        }
    }
    // No Sync yet: the rest of the batch is unknown.
    Intent {
        read: false,
        ..intent
    }
}

/// Whether `buf` starts an extended-protocol batch whose next message has only partly arrived
/// before its Sync: the client is still writing it, and routing waits for the rest rather than
/// sending a read to the primary for want of its Sync. (A batch that ends at a message
/// boundary without Sync is decided at once: that client may be waiting for replies.)
pub(crate) fn batch_arriving(buf: &[u8]) -> bool {
    const MAX_WAIT_BYTES: usize = 1 << 20;
    if buf.len() > MAX_WAIT_BYTES
        || !matches!(
            buf.first(),
            Some(&(ftag::PARSE | ftag::BIND | ftag::DESCRIBE | ftag::EXECUTE | ftag::CLOSE))
        )
    {
        return false;
    }
    let mut frames = Frames::new(buf);
    if frames.any(|(tag, _)| tag == ftag::SYNC) {
        return false;
    }
    frames.partial()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    use bytes::BytesMut;
    use pgtide_wire::{encode, BindView};

    fn msg(f: impl FnOnce(&mut BytesMut) -> Result<(), pgtide_wire::WireError>) -> Vec<u8> {
        let mut out = BytesMut::new();
        f(&mut out).expect("encodable");
        out.to_vec()
    }

    fn parse(name: &str, sql: &str) -> Vec<u8> {
        msg(|b| encode::parse(b, name, sql, &[]))
    }

    fn bind(name: &str) -> Vec<u8> {
        let view = BindView {
            portal: "",
            statement: name,
            param_formats: Vec::new(),
            params: Vec::new(),
            result_formats: Vec::new(),
        };
        msg(|b| encode::bind(b, &view))
    }

    fn sync() -> Vec<u8> {
        msg(|b| {
            encode::sync(b);
            Ok(())
        })
    }

    fn exec() -> Vec<u8> {
        msg(|b| encode::execute(b, "", 0))
    }

    fn frame(bytes: &[u8]) -> Frame {
        Frame {
            tag: bytes[0],
            raw: Bytes::copy_from_slice(bytes),
        }
    }

    fn classify(sql: &str) -> Arc<Classification> {
        Arc::new(pgtide_sql::classify_uncached(sql, &[]))
    }

    fn intent(batch: &[Vec<u8>], known: &dyn Fn(&str) -> Option<String>) -> Intent {
        let first = frame(&batch[0]);
        let rest: Vec<u8> = batch[1..].concat();
        of_batch(&first, &rest, &classify, known)
    }

    #[test]
    fn settings_that_keep_reads_off_replicas() {
        let with = |k: &str, v: &str| Settings::from([(k.to_string(), v.to_string())]);
        let lexes = |v: &str| {
            let startup = [("standard_conforming_strings".to_string(), v.to_string())];
            crate::session::client_state::ClientState::from_startup(&startup)
                .expect("valid")
                .lexes_as_sent()
        };
        assert!(settings_allow_replica(&Settings::new(), true));
        for v in ["on", "'on'", "true", "'Yes'", "1"] {
            let s = with("standard_conforming_strings", v);
            assert!(lexes(v) && settings_allow_replica(&s, lexes(v)), "{v}");
        }
        for v in ["off", "'off'", "false", "0", "'of'"] {
            let s = with("standard_conforming_strings", v);
            assert!(!lexes(v) && !settings_allow_replica(&s, lexes(v)), "{v}");
            let c = under_settings(classify("SELECT 1"), lexes(v));
            assert_eq!(c.kind, StatementKind::Write, "{v}");
        }
        let iso = |v: &str| settings_allow_replica(&with("default_transaction_isolation", v), true);
        assert!(iso("'repeatable read'") && iso("'read committed'"));
        assert!(!iso("serializable") && !iso("'SERIALIZABLE'") && !iso("'something else'"));
    }

    #[test]
    fn waits_only_for_a_message_cut_in_the_middle() {
        let mut batch = [parse("", "SELECT 1"), bind(""), sync()].concat();
        assert!(!batch_arriving(&batch), "complete");
        batch.truncate(batch.len() - 2);
        assert!(batch_arriving(&batch), "the Sync is half there");
        let flush = msg(|b| {
            encode::flush(b);
            Ok(())
        });
        let flushed = [parse("", "SELECT 1"), flush].concat();
        assert!(
            !batch_arriving(&flushed),
            "a Flush: the client waits for replies"
        );
        assert!(
            !batch_arriving(&msg(|b| encode::query(b, "SELECT 1"))),
            "simple queries decode whole anyway"
        );
        let mut garbage = parse("", "SELECT 1");
        garbage.extend_from_slice(&[ftag::BIND, 0, 0, 0, 1]);
        assert!(!batch_arriving(&garbage), "an invalid length is no batch");
    }

    #[test]
    fn a_complete_batch_of_reads_is_a_read() {
        let none = |_: &str| None;
        let (sync, exec) = (sync(), exec());
        let read = intent(
            &[parse("", "SELECT 1"), bind(""), exec.clone(), sync.clone()],
            &none,
        );
        assert!(read.read);
        let write = intent(
            &[
                parse("", "SELECT 1"),
                bind(""),
                exec.clone(),
                parse("", "INSERT INTO t VALUES (1)"),
                bind(""),
                exec.clone(),
                sync.clone(),
            ],
            &none,
        );
        assert!(!write.read, "any write sends the batch to the primary");
        let unfinished = intent(&[parse("", "SELECT 1"), bind(""), exec.clone()], &none);
        assert!(!unfinished.read, "no Sync yet");
        let known = |name: &str| (name == "s1").then(|| "SELECT * FROM t".to_string());
        assert!(intent(&[bind("s1"), exec.clone(), sync.clone()], &known).read);
        assert!(
            !intent(&[bind("s2"), exec.clone(), sync.clone()], &known).read,
            "unknown statement"
        );
        let describe = |name: &str| msg(|b| encode::describe(b, target::STATEMENT, name));
        let portal = msg(|b| encode::describe(b, target::PORTAL, ""));
        assert!(intent(&[describe("s1"), sync.clone()], &known).read);
        assert!(intent(&[bind("s1"), portal, exec.clone(), sync.clone()], &known).read);
        assert!(
            !intent(&[describe("s2"), sync.clone()], &known).read,
            "a Describe of an unknown statement"
        );
        let bad_describe = msg(|b| {
            encode::describe(b, target::STATEMENT, "s1")?;
            b.truncate(b.len() - 1);
            Ok(())
        });
        assert!(!intent(&[bad_describe, sync], &known).read, "malformed");
    }
}
