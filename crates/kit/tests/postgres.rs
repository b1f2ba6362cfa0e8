//! What a process says when a pool gets no connection: the server's limit,
//! what is open and who holds it, read from the real server.

use choreo_kit::postgres::{Occupancy, explain, out_of_connections};
use choreo_testkit::TestDatabase;
use sqlx::postgres::PgPoolOptions;
use std::time::Duration;

#[tokio::test]
async fn a_pool_that_times_out_says_who_holds_the_servers_connections() {
    let db = TestDatabase::create("occupancy").await.expect("a database");
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_millis(200))
        .connect(&db.url)
        .await
        .expect("a pool");
    let held = pool.acquire().await.expect("its one connection");
    let timed_out = pool.acquire().await.expect_err("no second connection");
    assert!(out_of_connections(&timed_out), "{timed_out}");

    let said = explain(&db.url, &timed_out).await;
    let occupancy = Occupancy::read(&db.url)
        .await
        .expect("the server's figures");
    assert!(
        said.starts_with(&format!(
            " (PostgreSQL at 127.0.0.1:5432 allows {} connections",
            occupancy.allowed
        )),
        "{said}"
    );
    assert!(said.contains(&format!(" to {} (", db.name)), "{said}");
    assert!(
        said.ends_with("stop what holds them, or raise max_connections)"),
        "{said}"
    );
    // The held one, and the reader's own while it reads.
    let ours = occupancy
        .holders
        .iter()
        .find(|h| h.database == db.name)
        .expect("the test database among the holders");
    assert_eq!(ours.connections, 2, "{occupancy}");
    assert!(
        occupancy.open() >= 2 && occupancy.free() < occupancy.allowed,
        "{occupancy}"
    );

    // Any other failure is explained by nothing.
    let refused = PgPoolOptions::new()
        .connect(&format!("{}_no_such_database", db.url))
        .await
        .expect_err("no such database");
    assert_eq!(explain(&db.url, &refused).await, "");
    drop(held);
    pool.close().await;
    db.drop_db().await.expect("dropped");
}
