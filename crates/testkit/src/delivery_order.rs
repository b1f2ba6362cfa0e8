//! Orders in which Kafka may deliver a set of events, for property tests.
//!
//! Kafka keeps order within a partition only, and redelivers after a restart
//! what was consumed but not yet committed. A valid delivery is therefore a
//! merge of each partition's sequence, plus copies of events re-sent some
//! steps after their first delivery.

/// Turns any permutation of `0..lanes.len()` into a valid delivery order:
/// events of the same lane (`lanes[i]`, e.g. one order's events on one
/// topic) keep their relative order, lanes interleave as the permutation
/// says.
pub fn interleave(lanes: &[usize], permutation: &[usize]) -> Vec<usize> {
    let mut out = permutation.to_vec();
    let mut lane_ids: Vec<usize> = lanes.to_vec();
    lane_ids.sort_unstable();
    lane_ids.dedup();
    for lane in lane_ids {
        let members: Vec<usize> = (0..lanes.len()).filter(|i| lanes[*i] == lane).collect();
        let slots: Vec<usize> = (0..out.len())
            .filter(|p| lanes[permutation[*p]] == lane)
            .collect();
        for (slot, member) in slots.into_iter().zip(members) {
            out[slot] = member;
        }
    }
    out
}

/// Inserts a copy of event `event` `later` steps after its first delivery,
/// for each `(event, later)`.
pub fn redeliver(mut sequence: Vec<usize>, copies: &[(usize, usize)]) -> Vec<usize> {
    for (event, later) in copies {
        let first = sequence.iter().position(|e| e == event).unwrap_or(0);
        let at = (first + 1 + later).min(sequence.len());
        sequence.insert(at, *event);
    }
    sequence
}

/// Applies `events` in the order of `sequence` as a consumer or a replay
/// applies a partition's run: in batches ([`choreo_messaging::apply_batch`]),
/// cut after each position `cuts` marks (and after the last). Every effect,
/// in order.
///
/// # Panics
/// When a batch fails: the tests that use it feed only valid events.
pub async fn apply_in_batches<H: choreo_messaging::Handler>(
    pool: &sqlx::PgPool,
    handler: &H,
    events: &[choreo_messaging::Delivery],
    sequence: &[usize],
    cuts: &[bool],
) -> Vec<choreo_messaging::Effect> {
    let mut effects = Vec::new();
    let mut batch = Vec::new();
    for (n, i) in sequence.iter().enumerate() {
        batch.push(events[*i].clone());
        if cuts.get(n).copied().unwrap_or(true) || n + 1 == sequence.len() {
            let applied = choreo_messaging::apply_batch(pool, handler, &batch).await;
            effects.extend(applied.expect("the batch applies"));
            batch.clear();
        }
    }
    effects
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_keep_their_order_and_every_event_appears_once() {
        // Lane 0: events 0, 1, 2; lane 1: events 3, 4.
        let lanes = [0, 0, 0, 1, 1];
        let merged = interleave(&lanes, &[4, 2, 3, 0, 1]);
        assert_eq!(merged, vec![3, 0, 4, 1, 2]);
        let mut sorted = merged.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn copies_come_after_the_first_delivery() {
        assert_eq!(
            redeliver(vec![2, 0, 1], &[(0, 0), (2, 9)]),
            vec![2, 0, 0, 1, 2]
        );
    }
}
