//! Wakes the `?wait=` readers of one order once a change to it has
//! committed. Woken after the commit, a reader's re-read sees the change;
//! woken only for its own order, a reader is not sent back to the database
//! by every other order's change (with many waiting, each change of a busy
//! service used to wake them all, and most woke before the commit, to find
//! nothing and sleep until the next poll). Another replica's changes do not
//! reach this process, so readers also poll.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
};
use tokio::sync::Notify;
use uuid::Uuid;

#[derive(Clone, Default)]
pub(crate) struct OrderChanges(Arc<Mutex<HashMap<Uuid, Watched>>>);

struct Watched {
    notify: Arc<Notify>,
    readers: usize,
}

/// One reader's interest in an order, given up when dropped.
pub(crate) struct Watch {
    changes: OrderChanges,
    order: Uuid,
    notify: Arc<Notify>,
}

impl OrderChanges {
    fn map(&self) -> MutexGuard<'_, HashMap<Uuid, Watched>> {
        // Nothing in the map can be left half-changed by a panic.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn watch(&self, order: Uuid) -> Watch {
        let mut map = self.map();
        let watched = map.entry(order).or_insert_with(|| Watched {
            notify: Arc::new(Notify::new()),
            readers: 0,
        });
        watched.readers += 1;
        Watch {
            changes: self.clone(),
            order,
            notify: watched.notify.clone(),
        }
    }

    /// A change to `order` has committed.
    pub(crate) fn committed(&self, order: Uuid) {
        if let Some(watched) = self.map().get(&order) {
            watched.notify.notify_waiters();
        }
    }

    #[cfg(test)]
    fn watched(&self) -> usize {
        self.map().len()
    }
}

impl Watch {
    /// Resolves on the next commit to the order after this call. Call it
    /// before reading the order, so that a commit between the read and the
    /// wait is not missed.
    pub(crate) fn next_change(&self) -> impl Future<Output = ()> + '_ {
        let mut notified = Box::pin(self.notify.notified());
        notified.as_mut().enable();
        notified
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let mut map = self.changes.map();
        if let Some(watched) = map.get_mut(&self.order) {
            watched.readers -= 1;
            if watched.readers == 0 {
                map.remove(&self.order);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_commit_wakes_its_orders_readers_only_and_a_reader_leaves_nothing_behind() {
        let changes = OrderChanges::default();
        let (mine, other) = (Uuid::new_v4(), Uuid::new_v4());
        let watch = changes.watch(mine);
        // Registered before the commit, as a reader does before it reads.
        let next = watch.next_change();
        changes.committed(other);
        let mut next = Box::pin(next);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), next.as_mut())
                .await
                .is_err(),
            "another order's commit woke the reader"
        );
        changes.committed(mine);
        tokio::time::timeout(Duration::from_secs(5), next)
            .await
            .expect("its own order's commit wakes the reader");
        assert_eq!(changes.watched(), 1);
        drop(watch);
        assert_eq!(changes.watched(), 0, "a gone reader's order is forgotten");
    }
}
