//! The saga deadline: an order not CONFIRMED or CANCELLED within the deadline
//! is cancelled with reason TIMEOUT and compensated like any other. This is
//! what makes a saga finish when a service is down for long.
//!
//! Any number of replicas may sweep: each locks the overdue orders it takes
//! with `SKIP LOCKED`, and `saga::cancel` only moves a PENDING order.

use crate::{changes::OrderChanges, db, metrics::SagaMetrics, saga};
use choreo_events::cancel_reason::TIMEOUT;
use choreo_kit::CancellationToken;
use sqlx::PgPool;
use std::time::Duration;
use tracing::{Instrument, field::Empty};

const BATCH: i64 = 200;

pub(crate) async fn sweep_until(
    pool: PgPool,
    deadline: Duration,
    changes: OrderChanges,
    sagas: SagaMetrics,
    shutdown: CancellationToken,
) {
    // Check several times per deadline, but not more than every 100 ms.
    let every = (deadline / 10).clamp(Duration::from_millis(100), Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        match sweep(&pool, deadline, &sagas).await {
            Ok(cancelled) if cancelled.is_empty() => {}
            Ok(cancelled) => {
                tracing::info!(count = cancelled.len(), "overdue orders cancelled");
                for order in cancelled {
                    changes.committed(order);
                }
            }
            Err(e) => tracing::warn!(error = %e, "deadline sweep failed; retrying"),
        }
    }
}

/// Cancels the overdue orders of one batch, in one transaction; their ids.
async fn sweep(
    pool: &PgPool,
    deadline: Duration,
    sagas: &SagaMetrics,
) -> Result<Vec<uuid::Uuid>, saga::SagaError> {
    let mut tx = pool.begin().await?;
    let overdue = db::lock_overdue(&mut tx, deadline.as_secs_f64(), BATCH).await?;
    let detail = format!("not completed within the saga deadline of {deadline:?}");
    for (order_id, traceparent) in &overdue {
        // In the order's own trace, so that the timeout and every service's
        // compensation after it sit under the order's request.
        let span = tracing::info_span!("deadline", order_id = %order_id, trace_id = Empty);
        choreo_telemetry::continue_trace(&span, traceparent.as_deref());
        saga::cancel(&mut tx, *order_id, TIMEOUT, &detail, None, sagas)
            .instrument(span)
            .await?;
    }
    tx.commit().await?;
    Ok(overdue.into_iter().map(|(order_id, _)| order_id).collect())
}
