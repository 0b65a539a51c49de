//! "cached plan must not change result type": DDL changed a prepared statement's columns. In
//! transaction mode the statement may have been prepared by another client, so pgtide re-
//! prepares it and re-runs the batch once where that is safe (outside a transaction, the client
//! asked for the row description, nothing ran yet); otherwise the client gets PostgreSQL's error
//! and its next prepare of the statement works.

use pgtide_config::PoolMode;
use pgtide_suite as s;
use s::raw::{
    add_trust_user, bind, close_statement, describe, execute, first_column, parse, parse_error,
    sync, Raw,
};

fn error_code(reply: &[(u8, bytes::Bytes)]) -> Option<String> {
    reply
        .iter()
        .find(|(t, _)| *t == b'E')
        .map(|(_, body)| parse_error(body).code)
}

/// Bind + Describe portal + Execute + Sync: what libpq's PQexecPrepared sends.
fn run_described(statement: &str) -> Vec<u8> {
    let mut b = bind(statement, &[]);
    b.extend(describe(b'P', ""));
    b.extend(execute());
    b.extend(sync());
    b
}

/// Bind + Execute + Sync, relying on a row description the client already has.
fn run_bare(statement: &str) -> Vec<u8> {
    let mut b = bind(statement, &[]);
    b.extend(execute());
    b.extend(sync());
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_statement_is_reprepared_where_safe_and_reported_where_not() {
    let cluster = tokio::task::spawn_blocking(|| s::cluster(0))
        .await
        .expect("cluster task");
    let mut config = s::config(&cluster, PoolMode::Transaction, 1);
    add_trust_user(&mut config);
    let server = s::start(config).await;
    let ddl = s::connect(&s::app_url(&server)).await.expect("ddl client");
    ddl.batch_execute(
        "DROP TABLE IF EXISTS stale_t; CREATE TABLE stale_t (a int); INSERT INTO stale_t VALUES (1)",
    )
    .await
    .expect("table");

    let mut raw = Raw::login(&server).await;
    let mut prepare = parse("s1", "SELECT * FROM stale_t");
    prepare.extend(describe(b'S', "s1"));
    prepare.extend(sync());
    let (tags, _) = raw.run(prepare.clone()).await;
    assert_eq!(tags, "1tT");
    let (tags, reply) = raw.run(run_described("s1")).await;
    assert_eq!(tags, "2TDC");
    assert_eq!(first_column(&reply), ["1"]);

    // Safe: the client describes the portal, so it learns the new columns. PostgreSQL alone
    // would answer 0A000 here.
    ddl.batch_execute("ALTER TABLE stale_t ADD COLUMN b int DEFAULT 7")
        .await
        .expect("alter");
    let (tags, reply) = raw.run(run_described("s1")).await;
    assert_eq!(tags, "2TDC", "re-run transparently: {reply:?}");
    let (_, row) = reply.iter().find(|(t, _)| *t == b'D').expect("row");
    assert_eq!(&row[..2], &2i16.to_be_bytes(), "the row has the new column");

    // Not safe without a Describe (the client would misread the rows): PostgreSQL's error...
    ddl.batch_execute("ALTER TABLE stale_t ADD COLUMN c int DEFAULT 8")
        .await
        .expect("alter");
    let (tags, reply) = raw.run(run_bare("s1")).await;
    assert_eq!(tags, "E");
    assert_eq!(error_code(&reply).as_deref(), Some("0A000"));
    // ... and preparing it again (as drivers do after that error) works at once.
    let mut again = close_statement("s1");
    again.extend(parse("s1", "SELECT * FROM stale_t"));
    again.extend(describe(b'S', "s1"));
    again.extend(sync());
    let (tags, _) = raw.run(again).await;
    assert_eq!(tags, "31tT");
    let (tags, reply) = raw.run(run_bare("s1")).await;
    assert_eq!(tags, "2DC", "{reply:?}");

    // Not safe inside the client's transaction: the error aborts it, as in PostgreSQL.
    ddl.batch_execute("ALTER TABLE stale_t ADD COLUMN d int")
        .await
        .expect("alter");
    assert_eq!(raw.simple_rows("BEGIN").await.len(), 0);
    let (tags, reply) = raw.run(run_described("s1")).await;
    assert_eq!(tags, "E", "{reply:?}");
    assert_eq!(error_code(&reply).as_deref(), Some("0A000"));
    assert_eq!(raw.simple_rows("ROLLBACK").await.len(), 0);
    // Outside it, the next described run recovers.
    let (tags, _) = raw.run(run_described("s1")).await;
    assert_eq!(tags, "2TDC");
    assert_eq!(raw.simple("SELECT count(*) FROM stale_t").await, "1");
    ddl.batch_execute("DROP TABLE stale_t").await.expect("drop");
    server.shutdown(s::Shutdown::Immediate).await;
}

/// DDL made outside pgtide: a client that prepares the statement afresh afterwards must see the
/// new shape, though the backend still holds another client's stale copy of the same text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_prepare_after_out_of_band_ddl_sees_the_new_shape() {
    let cluster = tokio::task::spawn_blocking(|| s::cluster(0))
        .await
        .expect("cluster task");
    let mut config = s::config(&cluster, PoolMode::Transaction, 1);
    add_trust_user(&mut config);
    let server = s::start(config).await;
    cluster
        .primary()
        .psql_db(
            s::APP_DB,
            "CREATE TABLE oob_t (a int); INSERT INTO oob_t VALUES (1); GRANT ALL ON oob_t TO app",
        )
        .expect("table");
    let mut a = Raw::login(&server).await;
    let mut prepare = parse("s1", "SELECT * FROM oob_t");
    prepare.extend(describe(b'S', "s1"));
    prepare.extend(sync());
    let (tags, _) = a.run(prepare).await;
    assert_eq!(tags, "1tT");
    let (tags, reply) = a.run(run_bare("s1")).await;
    assert_eq!(tags, "2DC", "{reply:?}");
    cluster
        .primary()
        .psql_db(s::APP_DB, "ALTER TABLE oob_t ADD COLUMN b int DEFAULT 2")
        .expect("alter");
    let mut b = Raw::login(&server).await;
    let mut prepare = parse("other_name", "SELECT * FROM oob_t");
    prepare.extend(describe(b'S', "other_name"));
    prepare.extend(sync());
    let (tags, reply) = b.run(prepare).await;
    assert_eq!(tags, "1tT", "{reply:?}");
    let (_, row_description) = &reply[2];
    assert_eq!(
        &row_description[..2],
        &2i16.to_be_bytes(),
        "two columns now"
    );
    let (tags, reply) = b.run(run_described("other_name")).await;
    assert_eq!(tags, "2TDC", "{reply:?}");
    // The old holder still gets PostgreSQL's error, never rows of the new shape.
    let (tags, reply) = a.run(run_bare("s1")).await;
    assert_eq!(tags, "E", "{reply:?}");
    server.shutdown(s::Shutdown::Immediate).await;
}
