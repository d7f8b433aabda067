//! The verifier stage between the network and the writer: peers' envelopes
//! and fetched pages are decoded and their signatures verified on up to
//! one thread per core, so the writer only stores.
//!
//! Events leave in the order they came in (a peer's connection before its
//! records, a fetched page before the next fetch), and the stage takes no
//! more than it has workers for: when the writer falls behind, its lane
//! fills, the stage stops reading, and the network's queue fills in turn
//! (gossip may then be dropped; reconciliation brings it back).

use std::future::Future;
use std::pin::Pin;

use caravan_model::Timestamp;
use caravan_replication::Checker;
use futures_util::stream::{FuturesOrdered, StreamExt};
use tokio::sync::mpsc;

use crate::writer::{CheckedEvent, ReplicationEvent};

/// Replication events waiting for the stage.
pub const INPUT_MAX: usize = 4_096;

type Checking = Pin<Box<dyn Future<Output = Option<CheckedEvent>> + Send>>;

/// How many events may be verified at once: one per core.
pub fn workers() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from)
}

/// Checks `events` on `workers` blocking threads and hands them, in order,
/// to `checked`. Returns when `events` closes (after the last is handed
/// on) or the writer is gone.
pub async fn run(
    checker: Checker,
    clock: fn() -> Timestamp,
    workers: usize,
    mut events: mpsc::Receiver<ReplicationEvent>,
    checked: mpsc::Sender<CheckedEvent>,
) {
    let mut in_flight: FuturesOrdered<Checking> = FuturesOrdered::new();
    let mut open = true;
    loop {
        tokio::select! {
            event = events.recv(), if open && in_flight.len() < workers => match event {
                Some(event) => in_flight.push_back(check(checker, clock, event)),
                None => open = false,
            },
            Some(result) = in_flight.next(), if !in_flight.is_empty() => {
                if let Some(event) = result {
                    if checked.send(event).await.is_err() {
                        return;
                    }
                }
            }
            else => return,
        }
    }
}

/// Verification on a blocking thread; what has nothing to verify passes
/// straight on (still in its place in the order).
fn check(checker: Checker, clock: fn() -> Timestamp, event: ReplicationEvent) -> Checking {
    if !event.carries_signatures() {
        return Box::pin(std::future::ready(Some(checker.check(event, clock()))));
    }
    let task = tokio::task::spawn_blocking(move || checker.check(event, clock()));
    Box::pin(async move {
        match task.await {
            Ok(checked) => Some(checked),
            Err(error) => {
                // Checking panicked (a bug: no input may panic it). The
                // event is lost; reconciliation brings its records again.
                tracing::error!(%error, "a replication event could not be checked");
                None
            }
        }
    })
}
