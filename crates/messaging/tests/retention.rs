//! Retention on a real database: old published outbox rows and old inbox
//! rows go; unpublished rows and recent ones stay.

mod support;

use choreo_messaging::{RetentionSettings, retention};
use support::{enqueue_committed, numbered_event, service_database};
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_removes_only_old_published_outbox_rows_and_old_inbox_rows() -> anyhow::Result<()> {
    let (db, pool) = service_database("retention").await?;
    let order = Uuid::new_v4();
    // Outbox: seq 0 published two days ago, seq 1 published just now, seq 2
    // written two days ago and never published (the broker was away).
    for seq in 0..3 {
        enqueue_committed(&pool, &numbered_event(order, seq)).await?;
    }
    sqlx::query(
        "UPDATE outbox SET created_at = now() - interval '2 days',
                           published_at = now() - interval '2 days'
         WHERE id = (SELECT min(id) FROM outbox)",
    )
    .execute(&pool)
    .await?;
    sqlx::query(
        "UPDATE outbox SET published_at = now() WHERE id = (SELECT min(id) + 1 FROM outbox)",
    )
    .execute(&pool)
    .await?;
    sqlx::query(
        "UPDATE outbox SET created_at = now() - interval '2 days' WHERE id = (SELECT max(id) FROM outbox)",
    )
    .execute(&pool)
    .await?;
    // Inbox: one event applied twenty days ago, one an hour ago.
    let (old, recent) = (Uuid::new_v4(), Uuid::new_v4());
    for (id, age) in [(old, "20 days"), (recent, "1 hour")] {
        sqlx::query(
            "INSERT INTO inbox (event_id, event_type, topic, partition, \"offset\", received_at)
             VALUES ($1, 'OrderPlaced', 'order.events', 0, 0, now() - $2::interval)",
        )
        .bind(id)
        .bind(age)
        .execute(&pool)
        .await?;
    }

    let settings = RetentionSettings {
        outbox_hours: 24.0,
        inbox_days: 14.0,
        ..Default::default()
    };
    let purged = retention::purge(&pool, &settings).await?;
    assert_eq!((purged.outbox, purged.inbox), (1, 1));

    let outbox: Vec<(bool,)> =
        sqlx::query_as("SELECT published_at IS NULL FROM outbox ORDER BY id")
            .fetch_all(&pool)
            .await?;
    assert_eq!(
        outbox,
        vec![(false,), (true,)],
        "recent published and unpublished rows stay"
    );
    let inbox: Vec<Uuid> = sqlx::query_scalar("SELECT event_id FROM inbox")
        .fetch_all(&pool)
        .await?;
    assert_eq!(inbox, vec![recent]);

    // A second purge finds nothing more.
    assert_eq!(
        retention::purge(&pool, &settings).await?,
        Default::default()
    );
    pool.close().await;
    db.drop_db().await
}
