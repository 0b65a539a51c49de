use std::error::Error as _;

use super::*;
use RetrySafe::{No, Unknown, Yes};
use Side::{Backend, Client, Pgtide};

const PAGE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../docs/reference/sqlstates.md"
));

fn io() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer")
}

/// One of each variant with what it must say: SQLSTATE, side, retry safety, severity.
fn every_variant() -> Vec<(ProxyError, &'static str, Side, RetrySafe, &'static str)> {
    use ProxyError as E;
    let s = String::new;
    vec![
        (
            E::ClientProtocol(WireError::MissingUser),
            "08P01",
            Client,
            Unknown,
            "FATAL",
        ),
        (E::ClientProtocolMsg(s()), "08P01", Client, Yes, "FATAL"),
        (E::ClientIo(io()), "08P01", Client, Unknown, "FATAL"),
        (E::BadPassword { user: s() }, "28P01", Client, Yes, "FATAL"),
        (E::UnknownUserOrDatabase(s()), "28000", Client, Yes, "FATAL"),
        (E::TooManyClients { max: 1 }, "53300", Pgtide, Yes, "FATAL"),
        (
            E::CheckoutTimeout {
                database: s(),
                waited_ms: 1,
                size: 1,
            },
            "53300",
            Pgtide,
            Yes,
            "ERROR",
        ),
        (E::StartupTimeout(1), "08P01", Client, Yes, "FATAL"),
        (
            E::BackendConnect {
                backend: s(),
                source: Lost::Io(io()),
            },
            "08006",
            Backend,
            Yes,
            "ERROR",
        ),
        (E::BackendLost(Lost::Closed), "08006", Backend, No, "FATAL"),
        (
            E::BackendSetup(Lost::Closed),
            "08006",
            Backend,
            Yes,
            "FATAL",
        ),
        (E::ShuttingDown, "57P01", Pgtide, Yes, "FATAL"),
        (E::Stopped, "57P01", Pgtide, Unknown, "FATAL"),
        (E::NoReplica(s()), "53300", Backend, Yes, "ERROR"),
        (
            E::StartupSetting {
                code: "22023".into(),
                message: s(),
            },
            "22023",
            Client,
            Yes,
            "FATAL",
        ),
        (
            E::SettingReplay {
                code: "42501".into(),
                message: s(),
            },
            "42501",
            Client,
            Yes,
            "ERROR",
        ),
        (E::AdminSimpleQueryOnly, "0A000", Client, Yes, "ERROR"),
        (E::AdminSyntax(s()), "42601", Client, Yes, "ERROR"),
        (E::ReloadUnavailable, "55000", Pgtide, Yes, "ERROR"),
        (E::ReloadRefused(s()), "F0000", Pgtide, Yes, "ERROR"),
        (E::ReloadUnanswered, "55000", Pgtide, Unknown, "ERROR"),
        (E::TlsRequired, "28000", Client, Yes, "FATAL"),
    ]
}

/// Fails to compile when a variant is added without a line above.
fn covered(e: &ProxyError) -> usize {
    use ProxyError as E;
    match e {
        E::ClientProtocol(_) => 0,
        E::ClientProtocolMsg(_) => 1,
        E::ClientIo(_) => 2,
        E::BadPassword { .. } => 3,
        E::UnknownUserOrDatabase(_) => 4,
        E::TooManyClients { .. } => 5,
        E::CheckoutTimeout { .. } => 6,
        E::StartupTimeout(_) => 7,
        E::BackendConnect { .. } => 8,
        E::BackendLost(_) => 9,
        E::BackendSetup(_) => 10,
        E::ShuttingDown => 11,
        E::Stopped => 12,
        E::NoReplica(_) => 13,
        E::StartupSetting { .. } => 14,
        E::SettingReplay { .. } => 15,
        E::AdminSimpleQueryOnly => 16,
        E::AdminSyntax(_) => 17,
        E::ReloadUnavailable => 18,
        E::ReloadRefused(_) => 19,
        E::ReloadUnanswered => 20,
        E::TlsRequired => 21,
    }
}

#[test]
fn every_variant_says_its_sqlstate_side_retry_safety_and_severity() {
    let all = every_variant();
    let indexes: Vec<usize> = all.iter().map(|(e, ..)| covered(e)).collect();
    assert_eq!(indexes, (0..all.len()).collect::<Vec<_>>());
    for (e, code, side, retry, severity) in &all {
        assert_eq!(e.sqlstate(), *code, "{e:?}");
        assert_eq!(e.side(), *side, "{e:?}");
        assert_eq!(e.retry_safe(), *retry, "{e:?}");
        let mut out = BytesMut::new();
        e.write_to(&mut out);
        let frame = pgtide_wire::FrameDecoder::new(1 << 20)
            .decode(&mut out)
            .expect("one frame")
            .expect("whole");
        let fields = pgtide_wire::error_fields(frame.body()).expect("an ErrorResponse");
        assert_eq!(fields.severity, *severity, "{e:?}");
        assert_eq!(fields.code, *code, "{e:?}");
        assert_eq!(fields.message, e.to_string());
    }
}

#[test]
fn the_failure_underneath_is_kept_as_the_source() {
    let e = ProxyError::ClientIo(io());
    assert_eq!(
        e.source().map(|s| s.to_string()),
        Some("reset by peer".into())
    );
    let e = ProxyError::BackendLost(Lost::Io(io()));
    let lost = e.source().expect("Lost");
    assert!(lost
        .source()
        .is_some_and(|io| io.to_string() == "reset by peer"));
    assert_eq!(e.to_string(), "backend connection lost: reset by peer");
    let e = ProxyError::BackendConnect {
        backend: "primary".into(),
        source: "connect timed out".into(),
    };
    assert_eq!(
        e.to_string(),
        "could not connect to backend primary: connect timed out"
    );
    assert!(ProxyError::ClientProtocol(WireError::MissingUser)
        .source()
        .is_some());
}

/// Each error's SQLSTATE, side and retry safety appear together in a row of
/// docs/reference/sqlstates.md (`| code | NAME | severity | when | side | retry safe |`).
#[test]
fn sqlstates_page_lists_every_error_with_its_side_and_retry_safety() {
    let rows: Vec<Vec<String>> = PAGE
        .lines()
        .filter(|l| l.starts_with('|'))
        .map(|l| l.split('|').skip(1).map(|c| c.trim().to_string()).collect())
        .collect();
    for (e, code, side, retry, severity) in every_variant() {
        // Codes PostgreSQL chose are documented as such, not by value.
        let code = match e {
            ProxyError::StartupSetting { .. } | ProxyError::SettingReplay { .. } => {
                "PostgreSQL's".to_string()
            }
            _ => format!("`{code}`"),
        };
        let found = rows.iter().any(|r| {
            r.len() >= 6
                && r[0] == code
                && r[2] == severity
                && r[4] == side.to_string()
                && r[5] == retry.to_string()
        });
        assert!(
            found,
            "sqlstates.md has no row {code} | .. | {severity} | .. | {side} | {retry} for {e:?}"
        );
    }
}
