use crate::session::{session_effects as fx, startup_options_to_sets, SessionEffect as E};

fn set(name: &str, value: &str) -> E {
    E::Set {
        name: name.into(),
        value: value.into(),
    }
}
fn local(name: &str) -> E {
    E::SetLocal { name: name.into() }
}
fn reset(name: &str) -> E {
    E::Reset { name: name.into() }
}

#[test]
fn set_generic() {
    assert_eq!(
        fx("SET search_path TO public"),
        vec![set("search_path", "public")]
    );
    assert_eq!(
        fx("set search_path = public"),
        vec![set("search_path", "public")]
    );
    assert_eq!(
        fx("SET SESSION search_path TO public"),
        vec![set("search_path", "public")]
    );
    assert_eq!(
        fx("SET statement_timeout = 5000"),
        vec![set("statement_timeout", "5000")]
    );
    assert_eq!(
        fx("SET statement_timeout TO '5s'"),
        vec![set("statement_timeout", "'5s'")]
    );
    assert_eq!(
        fx("SET extra_float_digits = -1"),
        vec![set("extra_float_digits", "-1")]
    );
    assert_eq!(
        fx("SET extra_float_digits=-1"),
        vec![set("extra_float_digits", "-1")]
    );
    assert_eq!(fx("SET x.y = +1.5"), vec![set("x.y", "+1.5")]);
    assert_eq!(
        fx("SET standard_conforming_strings = ON"),
        vec![set("standard_conforming_strings", "on")]
    );
    assert_eq!(
        fx("SET intervalstyle = iso_8601"),
        vec![set("intervalstyle", "iso_8601")]
    );
    assert_eq!(
        fx("SET application_name = E'it\\'s'"),
        vec![set("application_name", "E'it\\'s'")]
    );
    assert_eq!(
        fx("SET application_name = $$x$$"),
        vec![set("application_name", "$$x$$")]
    );
    assert_eq!(
        fx("SET DateStyle TO ISO, MDY"),
        vec![set("datestyle", "iso, mdy")]
    );
}

#[test]
fn set_is_case_insensitive_and_ignores_comments() {
    assert_eq!(
        fx("sEt SeArCh_PaTh To PUBLIC"),
        vec![set("search_path", "public")]
    );
    assert_eq!(
        fx("/* hint */ SET search_path TO x"),
        vec![set("search_path", "x")]
    );
    assert_eq!(
        fx("-- c\nSET /* a */ search_path /* b */ = /* c */ x -- d"),
        vec![set("search_path", "x")]
    );
    assert_eq!(
        fx("  \n\tSET search_path TO x"),
        vec![set("search_path", "x")]
    );
}

#[test]
fn set_quoted_and_custom_names() {
    assert_eq!(fx("SET \"my.guc\" = 1"), vec![set("my.guc", "1")]);
    assert_eq!(
        fx("SET \"TimeZone\" = 'UTC'"),
        vec![set("timezone", "'UTC'")]
    );
    assert_eq!(
        fx("SET myapp.tenant_id = '42'"),
        vec![set("myapp.tenant_id", "'42'")]
    );
    assert_eq!(
        fx("SET MyApp.Tenant_Id TO 42"),
        vec![set("myapp.tenant_id", "42")]
    );
    assert_eq!(
        fx("SET myapp.\"user\" = 'x'"),
        vec![set("myapp.user", "'x'")]
    );
    assert_eq!(
        fx("SET pgtide.route = replica"),
        vec![set("pgtide.route", "replica")]
    );
    // Names that are not plain identifiers could not be spliced back safely
    assert_eq!(fx("SET \"a; DROP TABLE t\" = 1"), vec![E::UntrackedSet]);
}

#[test]
fn set_search_path_lists() {
    assert_eq!(
        fx("SET search_path TO public,\"My Schema\""),
        vec![set("search_path", "public, \"My Schema\"")]
    );
    assert_eq!(
        fx("SET search_path = \"$user\", public, 'other'"),
        vec![set("search_path", "\"$user\", public, 'other'")]
    );
    assert_eq!(fx("SET search_path = ''"), vec![set("search_path", "''")]);
    assert_eq!(fx("SET SCHEMA 'app'"), vec![set("search_path", "'app'")]);
    assert_eq!(fx("SET SCHEMA app"), vec![E::UntrackedSet]);
}

#[test]
fn set_default_is_reset() {
    assert_eq!(fx("SET timezone TO DEFAULT"), vec![reset("timezone")]);
    assert_eq!(fx("SET search_path = default"), vec![reset("search_path")]);
    assert_eq!(
        fx("SET SESSION work_mem TO DEFAULT"),
        vec![reset("work_mem")]
    );
    assert_eq!(
        fx("SET search_path TO 'default'"),
        vec![set("search_path", "'default'")]
    );
    assert_eq!(fx("SET search_path TO DEFAULT, x"), vec![E::UntrackedSet]);
}

#[test]
fn set_time_zone() {
    assert_eq!(fx("SET TIME ZONE 'UTC'"), vec![set("timezone", "'UTC'")]);
    assert_eq!(
        fx("set time zone 'Europe/Paris'"),
        vec![set("timezone", "'Europe/Paris'")]
    );
    assert_eq!(fx("SET TIME ZONE -7"), vec![set("timezone", "-7")]);
    assert_eq!(fx("SET TIME ZONE UTC"), vec![set("timezone", "utc")]);
    assert_eq!(fx("SET TIME ZONE LOCAL"), vec![reset("timezone")]);
    assert_eq!(fx("SET TIME ZONE DEFAULT"), vec![reset("timezone")]);
    assert_eq!(
        fx("SET SESSION TIME ZONE 'UTC'"),
        vec![set("timezone", "'UTC'")]
    );
    assert_eq!(fx("SET LOCAL TIME ZONE 'UTC'"), vec![local("timezone")]);
    assert_eq!(
        fx("SET TIME ZONE INTERVAL '+00:00' HOUR TO MINUTE"),
        vec![E::UntrackedSet]
    );
}

#[test]
fn set_special_forms() {
    assert_eq!(
        fx("SET NAMES 'UTF8'"),
        vec![set("client_encoding", "'UTF8'")]
    );
    assert_eq!(fx("SET NAMES utf8"), vec![set("client_encoding", "utf8")]);
    assert_eq!(fx("SET NAMES"), vec![reset("client_encoding")]);
    assert_eq!(fx("SET ROLE admin"), vec![set("role", "admin")]);
    assert_eq!(fx("SET ROLE 'Admin'"), vec![set("role", "'Admin'")]);
    assert_eq!(fx("SET ROLE NONE"), vec![reset("role")]);
    assert_eq!(fx("SET LOCAL ROLE admin"), vec![local("role")]);
    assert_eq!(
        fx("SET SESSION AUTHORIZATION bob"),
        vec![set("session_authorization", "bob")]
    );
    assert_eq!(
        fx("SET SESSION AUTHORIZATION DEFAULT"),
        vec![reset("session_authorization")]
    );
    assert_eq!(
        fx("SET SESSION SESSION AUTHORIZATION 'bob'"),
        vec![set("session_authorization", "'bob'")]
    );
    assert_eq!(
        fx("SET XML OPTION DOCUMENT"),
        vec![set("xmloption", "document")]
    );
}

#[test]
fn set_session_characteristics() {
    assert_eq!(
        fx("SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"),
        vec![
            set("default_transaction_isolation", "'repeatable read'"),
            set("default_transaction_read_only", "on"),
        ]
    );
    assert_eq!(
        fx("set session characteristics as transaction read write not deferrable"),
        vec![
            set("default_transaction_read_only", "off"),
            set("default_transaction_deferrable", "off")
        ]
    );
    assert_eq!(
        fx("SET SESSION CHARACTERISTICS AS TRANSACTION BOGUS"),
        vec![E::UntrackedSet]
    );
}

#[test]
fn set_local() {
    assert_eq!(fx("SET LOCAL search_path TO x"), vec![local("search_path")]);
    assert_eq!(
        fx("set local statement_timeout = 0"),
        vec![local("statement_timeout")]
    );
    assert_eq!(fx("SET LOCAL work_mem TO DEFAULT"), vec![local("work_mem")]);
}

#[test]
fn set_untrackable_syntax_pins() {
    for sql in [
        "SET",
        "SET search_path",
        "SET search_path TO",
        "SET search_path TO (SELECT 1)",
        "SET search_path TO a b",
        "SET search_path TO a,",
        "SET search_path FROM CURRENT",
        "SET x = 'unterminated",
        "SET x = B'101'",
        "SET x = $1",
        "SET x = 1abc",
        "SET x = -abc",
    ] {
        assert_eq!(fx(sql), vec![E::UntrackedSet], "{sql}");
    }
}

#[test]
fn reset_forms() {
    assert_eq!(fx("RESET search_path"), vec![reset("search_path")]);
    assert_eq!(fx("reset \"TimeZone\""), vec![reset("timezone")]);
    assert_eq!(fx("RESET myapp.tenant_id"), vec![reset("myapp.tenant_id")]);
    assert_eq!(fx("RESET TIME ZONE"), vec![reset("timezone")]);
    assert_eq!(fx("RESET ROLE"), vec![reset("role")]);
    assert_eq!(
        fx("RESET SESSION AUTHORIZATION"),
        vec![reset("session_authorization")]
    );
    assert_eq!(fx("RESET ALL"), vec![E::ResetAll]);
    assert_eq!(fx("reset all"), vec![E::ResetAll]);
    assert_eq!(fx("RESET"), vec![E::UntrackedSet]);
}

#[test]
fn set_config_constant() {
    assert_eq!(
        fx("SELECT set_config('search_path', 'a', false)"),
        vec![set("search_path", "a")]
    );
    assert_eq!(
        fx("SELECT pg_catalog.set_config('search_path', '', false);"),
        vec![set("search_path", "''")]
    );
    assert_eq!(
        fx("select set_config('search_path', '\"$user\", Public, \"My S\"', false)"),
        vec![set("search_path", "\"$user\", public, \"My S\"")]
    );
    assert_eq!(
        fx("SELECT set_config('myapp.tenant', '42', false)"),
        vec![set("myapp.tenant", "'42'")]
    );
    assert_eq!(
        fx("SELECT set_config('MyApp.Tenant', 'it''s', 'f')"),
        vec![set("myapp.tenant", "'it''s'")]
    );
    assert_eq!(
        fx("SELECT set_config('a.b', E'x\\\\y', false)"),
        vec![set("a.b", "E'x\\\\y'")]
    );
    assert_eq!(
        fx("SELECT set_config('a.b', 'v'::text, false::boolean) AS r"),
        vec![set("a.b", "'v'")]
    );
    assert_eq!(
        fx("SELECT set_config('a.b'::text, 'v'::text, 'false') AS r"),
        vec![set("a.b", "'v'")]
    );
    assert_eq!(
        fx("SELECT set_config('a.b', NULL, false)"),
        vec![reset("a.b")]
    );
    assert_eq!(
        fx("SELECT set_config('a.x', '1', false), set_config('a.y', '2', false)"),
        vec![set("a.x", "'1'"), set("a.y", "'2'")]
    );
}

#[test]
fn set_config_local_and_untracked() {
    assert_eq!(
        fx("SELECT set_config('a.b', 'v', true)"),
        vec![local("a.b")]
    );
    assert_eq!(
        fx("SELECT * FROM t WHERE set_config('a.b', 'v', true) IS NOT NULL"),
        vec![local("a.b")]
    );
    for sql in [
        "SELECT set_config('a.b', $1, false)",
        "SELECT set_config($1, 'v', false)",
        "SELECT set_config('a.b', 'v', $1)",
        "SELECT set_config('a.b', current_user, false)",
        "SELECT set_config('a.b', 'x' || 'y', false)",
        "SELECT set_config('a.b', 'v')",
        "SELECT set_config('a.b', 'v', false) FROM t",
        "SELECT set_config('a.b', 'v', false) WHERE false",
        "SELECT CASE WHEN x THEN set_config('a.b', 'v', false) END",
        "SELECT 1 FROM t WHERE set_config('a.b', 'v', false) = 'v'",
        "WITH c AS (SELECT set_config('a.b', 'v', false)) SELECT * FROM c",
        "UPDATE t SET a = set_config('a.b', 'v', false)",
        "SELECT set_config('search_path', 'a b', false)",
        "SELECT set_config('bad name', 'v', false)",
        "SELECT set_config('a.b', 'v', 'maybe')",
        "SELECT set_config('a.b', 'v', false",
    ] {
        assert_eq!(fx(sql), vec![E::UntrackedSet], "{sql}");
    }
}

#[test]
fn startup_options() {
    let p = |a: &str, b: &str| (a.to_owned(), b.to_owned());
    assert_eq!(startup_options_to_sets(""), vec![]);
    assert_eq!(
        startup_options_to_sets("-c search_path=app -c statement_timeout=5s"),
        vec![p("search_path", "app"), p("statement_timeout", "5s")]
    );
    assert_eq!(
        startup_options_to_sets("-cgeqo=off"),
        vec![p("geqo", "off")]
    );
    assert_eq!(
        startup_options_to_sets("--search-path=a,\\ b --DateStyle=ISO"),
        vec![p("search_path", "a, b"), p("datestyle", "ISO")]
    );
    assert_eq!(
        startup_options_to_sets("  -c  application_name=my\\ app\\\\x  "),
        vec![p("application_name", "my app\\x")]
    );
    assert_eq!(startup_options_to_sets("-c x.y=a=b"), vec![p("x.y", "a=b")]);
    assert_eq!(
        startup_options_to_sets("-c novalue -c a.b="),
        vec![p("a.b", "")]
    );
    assert_eq!(
        startup_options_to_sets("-B 100 -e -c work_mem=1MB"),
        vec![p("work_mem", "1MB")]
    );
    assert_eq!(startup_options_to_sets("-c"), vec![]);
}
