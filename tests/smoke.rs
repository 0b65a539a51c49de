use pgtide_config::PoolMode;
use pgtide_suite as s;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_and_extended_queries_through_pgtide() {
    let cluster = tokio::task::spawn_blocking(|| s::cluster(0)).await.unwrap();
    let server = s::start(s::config(&cluster, PoolMode::Transaction, 2)).await;
    let client = s::connect(&s::app_url(&server)).await.expect("connect");
    let rows = client.simple_query("SELECT 1 AS one").await.expect("simple");
    assert!(rows.iter().any(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(_))));
    let row = client.query_one("SELECT $1::int + 1", &[&41i32]).await.expect("extended");
    assert_eq!(row.get::<_, i32>(0), 42);
    server.shutdown(s::Shutdown::Immediate).await;
}
