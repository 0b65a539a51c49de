//! Extended-protocol batches whose replies interleave with what the client is still sending.
//! After an error PostgreSQL ignores everything up to the client's Sync; pgtide must owe
//! nothing for those messages, or the client's backend is never given back.

use std::time::Duration;

use pgtide_config::PoolMode;
use pgtide_suite as s;
use s::raw::{add_trust_user, bind, execute, first_column, msg, parse, Raw};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_after_an_error_and_before_the_sync_are_owed_nothing() {
    let cluster = tokio::task::spawn_blocking(|| s::cluster(0))
        .await
        .expect("cluster task");
    let mut config = s::config(&cluster, PoolMode::Transaction, 1);
    config.pool.checkout_timeout = Duration::from_secs(2);
    add_trust_user(&mut config);
    let server = s::start(config).await;
    let mut raw = Raw::login(&server).await;
    // Parse/Bind/Execute + Flush: the error comes back before the client sends its Sync.
    let mut batch = parse("", "SELECT 1 / $1::int");
    batch.extend(bind("", &["0"]));
    batch.extend(execute());
    batch.extend(msg(b'H', &[]));
    raw.send(&batch).await;
    let err = raw.reader.error().await.expect("division by zero");
    assert_eq!(err.code, "22012", "{err:?}");
    // The client goes on as if it had not seen it yet; the backend ignores all of this.
    let mut rest = parse("named_after_error", "SELECT 2");
    rest.extend(bind("named_after_error", &[]));
    rest.extend(execute());
    rest.extend(msg(b'S', &[]));
    raw.send(&rest).await;
    let reply = raw.reader.until_ready().await.expect("ready");
    assert!(reply.is_empty(), "nothing but ReadyForQuery: {reply:?}");
    // The backend went back to the pool: another client of the same pool gets it.
    let mut other = Raw::login(&server).await;
    assert_eq!(other.simple("SELECT 'free'").await, "free");
    // The ignored Parse created nothing, as in PostgreSQL; the session still works.
    let mut again = bind("named_after_error", &[]);
    again.extend(execute());
    again.extend(msg(b'S', &[]));
    raw.send(&again).await;
    let err = raw.reader.error().await.expect("no such statement");
    assert_eq!(err.code, "26000", "{err:?}");
    raw.reader.until_ready().await.expect("ready");
    let mut ok = parse("s", "SELECT 3");
    ok.extend(bind("s", &[]));
    ok.extend(execute());
    ok.extend(msg(b'S', &[]));
    raw.send(&ok).await;
    let reply = raw.reader.until_ready().await.expect("ready");
    assert_eq!(first_column(&reply), ["3"]);
    server.shutdown(s::Shutdown::Immediate).await;
}
