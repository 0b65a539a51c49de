//! Unit tests of the client state (client_state.rs).
use super::*;

fn startup(pairs: &[(&str, &str)]) -> ClientState {
    let params: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    ClientState::from_startup(&params).expect("valid names")
}

#[test]
fn startup_parameters_become_settings() {
    let s = startup(&[
        ("user", "app"),
        ("database", "app"),
        ("application_name", "web"),
        ("TimeZone", "UTC"),
        ("options", "-c search_path=tenant1"),
    ]);
    let list = startup(&[("search_path", "tenant, public")]);
    assert_eq!(
        list.settings().get("search_path").map(String::as_str),
        Some("tenant, public"),
        "a list, not the single name 'tenant, public'"
    );
    assert_eq!(
        s.settings().get("application_name").map(String::as_str),
        Some("'web'")
    );
    assert_eq!(
        s.settings().get("timezone").map(String::as_str),
        Some("'UTC'")
    );
    assert_eq!(
        s.settings().get("search_path").map(String::as_str),
        Some("tenant1")
    );
    assert!(!s.settings().contains_key("user"));
    let custom = startup(&[("jit", "off"), ("work_mem", "7MB"), ("myapp.tenant", "a")]);
    assert_eq!(custom.settings().len(), 3, "every setting is carried");
    let bad = [("x to 1; drop table t; set y".to_string(), "1".to_string())];
    assert!(ClientState::from_startup(&bad).is_err(), "no SQL in names");
}

#[test]
fn committed_set_is_carried_and_rolled_back_set_is_not() {
    let mut s = ClientState::default();
    let mut backend = Settings::new();
    s.observe_sql("SET search_path TO a", false);
    s.on_ready(b'I', &mut backend);
    assert_eq!(
        s.settings().get("search_path").map(String::as_str),
        Some("a")
    );
    assert_eq!(backend.get("search_path").map(String::as_str), Some("a"));

    s.observe_sql("BEGIN", false);
    s.observe_sql("SET search_path TO b", false);
    s.on_ready(b'T', &mut backend);
    s.observe_sql("ROLLBACK", false);
    s.on_command_complete(&mut backend, "ROLLBACK");
    s.on_ready(b'I', &mut backend);
    assert_eq!(
        s.settings().get("search_path").map(String::as_str),
        Some("a")
    );

    s.observe_sql("SET statement_timeout = 5; SELECT 1/0", false);
    s.on_error();
    s.on_ready(b'I', &mut backend);
    assert!(!s.settings().contains_key("statement_timeout"));
}

#[test]
fn rollback_to_savepoint_undoes_only_what_came_after_it() {
    let mut s = ClientState::default();
    let mut backend = Settings::new();
    s.observe_sql("BEGIN; SET search_path TO a; SAVEPOINT sp", false);
    s.observe_sql("SET TimeZone TO 'UTC'", false);
    s.on_error(); // e.g. a unique violation inside the savepoint
    s.observe_sql("ROLLBACK TO SAVEPOINT sp", false);
    s.observe_sql("SET statement_timeout TO 5", false);
    s.observe_sql("RELEASE sp; COMMIT", false);
    s.on_command_complete(&mut backend, "COMMIT");
    s.on_ready(b'I', &mut backend);
    assert_eq!(
        s.settings().get("search_path").map(String::as_str),
        Some("a")
    );
    assert_eq!(
        s.settings().get("statement_timeout").map(String::as_str),
        Some("5")
    );
    assert!(
        !s.settings().contains_key("timezone"),
        "undone by ROLLBACK TO"
    );
    assert_eq!(
        backend,
        *s.settings(),
        "the backend's record matches what it really has"
    );
}

#[test]
fn sync_sql_is_the_difference() {
    let mut s = startup(&[("application_name", "web")]);
    let mut backend = Settings::new();
    assert_eq!(
        crate::session::settings_replay::sync_sql(&s, &backend).as_deref(),
        Some("SET application_name TO 'web';")
    );
    backend.insert("application_name".into(), "'web'".into());
    assert_eq!(
        crate::session::settings_replay::sync_sql(&s, &backend),
        None
    );
    backend.insert("search_path".into(), "other".into());
    assert_eq!(
        crate::session::settings_replay::sync_sql(&s, &backend).as_deref(),
        Some("RESET search_path;")
    );
    s.observe_sql("RESET ALL", false);
    let mut b2 = Settings::new();
    s.on_ready(b'I', &mut b2);
    assert_eq!(
        s.settings().get("application_name").map(String::as_str),
        Some("'web'")
    );
}

#[test]
fn uncarriable_state_pins_until_undone() {
    let mut s = ClientState::default();
    assert_eq!(s.observe_sql("LISTEN jobs", false).pinned, Some("listen"));
    assert!(s.is_pinned());
    s.observe_sql("UNLISTEN *", false);
    s.on_ready(b'I', &mut Settings::new());
    assert!(!s.is_pinned());
    s.observe_sql("SELECT pg_advisory_lock(1)", false);
    s.observe_sql("CREATE TEMP TABLE t (x int)", false);
    assert_eq!(s.pins().len(), 2);
    s.observe_sql("DISCARD ALL", false);
    assert!(s.is_pinned(), "undone only once it ran");
    s.on_ready(b'I', &mut Settings::new());
    assert!(!s.is_pinned());
    assert!(s
        .observe_sql("SELECT pg_advisory_xact_lock(1)", false)
        .pinned
        .is_none());
}

/// Issue 11 item 4: what undoes a pin counts only once it committed.
#[test]
fn a_rolled_back_or_failed_undo_keeps_the_pin() {
    let mut s = ClientState::default();
    let mut backend = Settings::new();
    s.observe_sql("LISTEN ch", false);
    s.on_ready(b'I', &mut backend);
    s.observe_sql("BEGIN", false);
    s.observe_sql("UNLISTEN *", false);
    s.on_ready(b'T', &mut backend);
    s.observe_sql("ROLLBACK", false);
    s.on_command_complete(&mut backend, "ROLLBACK");
    s.on_ready(b'I', &mut backend);
    assert_eq!(s.pins().iter().copied().collect::<Vec<_>>(), ["listen"]);

    s.observe_sql("SELECT pg_advisory_lock(1)", false);
    s.on_ready(b'I', &mut backend);
    s.observe_sql("BEGIN; SELECT 1/0; SELECT pg_advisory_unlock_all()", false);
    s.on_error();
    s.observe_sql("ROLLBACK", false);
    s.on_command_complete(&mut backend, "ROLLBACK");
    s.on_ready(b'I', &mut backend);
    assert!(s.pins().contains("advisory_lock"));

    s.observe_sql(
        "BEGIN; SAVEPOINT a; DISCARD TEMP; ROLLBACK TO a; COMMIT",
        false,
    );
    s.on_command_complete(&mut backend, "COMMIT");
    s.observe_sql("CREATE TEMP TABLE t (x int)", false);
    s.on_ready(b'I', &mut backend);
    s.observe_sql(
        "BEGIN; SAVEPOINT a; DISCARD TEMP; ROLLBACK TO a; COMMIT",
        false,
    );
    s.on_command_complete(&mut backend, "COMMIT");
    s.on_ready(b'I', &mut backend);
    assert!(s.pins().contains("temp_table"), "undone by ROLLBACK TO");
    s.observe_sql(
        "UNLISTEN *; SELECT pg_advisory_unlock_all(); DISCARD TEMP",
        false,
    );
    s.on_ready(b'I', &mut backend);
    assert!(!s.is_pinned());
}

/// Issue 11 item 5: a client whose SQL pgtide cannot read is pinned.
#[test]
fn standard_conforming_strings_off_pins() {
    let mut s = ClientState::default();
    assert_eq!(
        s.observe_sql("SET standard_conforming_strings = off", false)
            .pinned,
        Some("standard_conforming_strings")
    );
    let started_off = startup(&[("standard_conforming_strings", "off")]);
    assert!(!started_off.vouched());
    let on = startup(&[("standard_conforming_strings", "on")]);
    assert!(on.vouched());
}

/// A reported setting that changed without a statement naming it pins the client.
#[test]
fn unannounced_parameter_status_pins() {
    let mut s = ClientState::default();
    let mut backend = Settings::new();
    s.observe_sql("SET TimeZone = 'UTC'", false);
    assert_eq!(
        s.on_parameter_status("TimeZone", Some("GMT"), "UTC").pinned,
        None
    );
    assert_eq!(
        s.on_parameter_status("in_hot_standby", Some("off"), "on")
            .pinned,
        None
    );
    s.on_ready(b'I', &mut backend);
    s.observe_sql("SELECT my_function_that_sets_datestyle()", false);
    assert_eq!(
        s.on_parameter_status("DateStyle", Some("ISO, MDY"), "SQL, DMY")
            .pinned,
        Some("untracked_set")
    );
    let mut r = ClientState::default();
    r.observe_sql("SET ROLE other", false);
    assert_eq!(
        r.on_parameter_status("is_superuser", Some("off"), "on")
            .pinned,
        None
    );
    r.observe_sql("RESET ALL", false);
    assert_eq!(
        r.on_parameter_status("application_name", Some("a"), "")
            .pinned,
        None
    );
}

/// Found by the session checker: an undo and a new pin in one transaction end pinned, and
/// SET SESSION AUTHORIZATION ends a SET ROLE before it (a later SET ROLE is kept).
#[test]
fn order_within_a_transaction_counts() {
    let mut s = ClientState::default();
    let mut backend = Settings::new();
    s.observe_sql("SELECT pg_advisory_lock(1)", false);
    s.on_ready(b'I', &mut backend);
    s.observe_sql("BEGIN", false);
    s.observe_sql("SELECT pg_advisory_unlock_all()", false);
    s.observe_sql("SELECT pg_advisory_lock(2)", false);
    s.observe_sql("COMMIT", false);
    s.on_command_complete(&mut backend, "COMMIT");
    s.on_ready(b'I', &mut backend);
    assert!(s.pins().contains("advisory_lock"));

    let mut r = ClientState::default();
    r.observe_sql("SET ROLE a; SET SESSION AUTHORIZATION app", false);
    r.on_ready(b'I', &mut backend);
    assert!(!r.settings().contains_key("role"));
    r.observe_sql("SET SESSION AUTHORIZATION app; SET ROLE b", false);
    r.on_ready(b'I', &mut backend);
    assert_eq!(r.settings().get("role").map(String::as_str), Some("b"));
    assert_eq!(
        crate::session::settings_replay::checked_sync_sql(&r, &Settings::new()).as_deref(),
        Some("SET session_authorization TO app;SET role TO b;")
    );
}

/// Found by the session checker: COMMIT AND CHAIN ends a transaction inside a batch; what
/// follows it in a failed chained transaction does not undo what it committed. And a batch
/// pipelined behind another is settled by its own ReadyForQuery.
#[test]
fn transaction_ends_come_from_the_server() {
    let mut s = ClientState::default();
    let mut backend = Settings::new();
    s.observe_sql(
        "BEGIN; SET default_transaction_isolation = serializable; COMMIT AND CHAIN; \
         PREPARE x AS SELECT 1; COMMIT",
        false,
    );
    s.batch_sent();
    s.on_command_complete(&mut backend, "COMMIT");
    s.on_error(); // the PREPARE: the chained transaction fails, its COMMIT never runs
    s.on_ready(b'E', &mut backend);
    s.observe_sql("ABORT", false);
    s.batch_sent();
    s.on_command_complete(&mut backend, "ROLLBACK");
    s.on_ready(b'I', &mut backend);
    assert_eq!(
        backend
            .get("default_transaction_isolation")
            .map(String::as_str),
        Some("serializable"),
        "committed by COMMIT AND CHAIN"
    );

    let mut p = ClientState::default();
    let mut backend = Settings::new();
    p.observe_sql("BEGIN; SET a.x = 1; ROLLBACK", false);
    p.batch_sent();
    p.observe_sql("SET a.y = 2", false);
    p.batch_sent();
    p.on_command_complete(&mut backend, "ROLLBACK");
    p.on_ready(b'I', &mut backend);
    assert!(p.settings().is_empty(), "the second batch has not run yet");
    p.on_error();
    p.on_ready(b'I', &mut backend);
    assert!(p.settings().is_empty(), "and it failed");
    p.observe_sql("SET a.z = 3", false);
    p.batch_sent();
    p.on_ready(b'I', &mut backend);
    assert_eq!(p.settings().len(), 1);
}

/// Found by the session checker (seed 8): RESET ALL keeps SET ROLE (PostgreSQL marks role and
/// session_authorization as not reset by RESET ALL); DISCARD ALL resets them.
#[test]
fn reset_all_keeps_the_role_and_discard_all_does_not() {
    let mut s = ClientState::default();
    let mut backend = Settings::new();
    s.observe_sql("SET ROLE r2; SET bytea_output TO 'escape'", false);
    s.on_ready(b'I', &mut backend);
    s.observe_sql("RESET ALL", false);
    s.on_ready(b'I', &mut backend);
    assert_eq!(s.settings().get("role").map(String::as_str), Some("r2"));
    assert!(!s.settings().contains_key("bytea_output"));
    assert_eq!(backend.get("role").map(String::as_str), Some("r2"));
    s.observe_sql("DISCARD ALL", false);
    s.on_ready(b'I', &mut backend);
    assert!(s.settings().is_empty());
}

/// Review finding F13: a SET LOCAL announces a report but not a session-level change.
#[test]
fn a_function_changing_a_setting_under_set_local_pins() {
    let mut s = ClientState::default();
    let mut backend = Settings::new();
    s.observe_sql("BEGIN; SET LOCAL TimeZone = 'UTC'", false);
    assert_eq!(
        s.on_parameter_status("TimeZone", Some("GMT"), "UTC").pinned,
        None
    );
    s.observe_sql("SELECT tokyo(); COMMIT", false);
    s.on_parameter_status("TimeZone", Some("UTC"), "Asia/Tokyo");
    s.on_command_complete(&mut backend, "COMMIT");
    assert_eq!(s.on_ready(b'I', &mut backend).pinned, Some("untracked_set"));

    let mut l = ClientState::default();
    l.observe_sql("BEGIN; SET LOCAL TimeZone = 'UTC'", false);
    l.on_parameter_status("TimeZone", Some("GMT"), "UTC");
    l.observe_sql("COMMIT", false);
    l.on_parameter_status("TimeZone", Some("UTC"), "GMT");
    l.on_command_complete(&mut backend, "COMMIT");
    assert_eq!(l.on_ready(b'I', &mut backend).pinned, None, "reverted");
}
