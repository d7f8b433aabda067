//! The node's database as the services see it: writes go through the
//! writer thread's queue (group commit, one fsync for many), reads run on
//! one reader connection on a blocking thread.

use std::sync::{Arc, Mutex};

use caravan_store::rusqlite::Connection;
use caravan_store::StoreError;
use caravan_writer::writer;
use tokio::sync::{mpsc, oneshot};

/// A handle on the node's database; cheap to clone.
#[derive(Clone, Debug)]
pub struct NodeDb {
    queue: mpsc::Sender<writer::Job>,
    /// Reads are rare next to writes: one connection serves them in turn.
    reader: Arc<Mutex<Connection>>,
}

impl NodeDb {
    pub(crate) fn new(queue: mpsc::Sender<writer::Job>, reader: Connection) -> NodeDb {
        NodeDb { queue, reader: Arc::new(Mutex::new(reader)) }
    }
}

impl caravan_services::Database for NodeDb {
    async fn read<R, E>(&self, query: impl FnOnce(&Connection) -> Result<R, E> + Send + 'static) -> Result<R, E>
    where
        R: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let reader = self.reader.clone();
        let run = move || query(&reader.lock().expect("reader lock"));
        let lost =
            |error: tokio::task::JoinError| E::from(StoreError::Unavailable(format!("the read task failed: {error}")));
        tokio::task::spawn_blocking(run).await.map_err(lost)?
    }

    async fn write<R, E>(&self, write: impl FnOnce(&Connection) -> Result<R, E> + Send + 'static) -> Result<R, E>
    where
        R: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let slot: Arc<Mutex<Option<Result<R, E>>>> = Arc::default();
        let (reply, answer) = oneshot::channel::<Result<R, E>>();
        let filled = slot.clone();
        let run = Box::new(move |conn: &Connection| {
            let result = write(conn);
            let keep = result.is_ok();
            *filled.lock().expect("write slot lock") = Some(result);
            keep
        });
        let deliver = Box::new(move |outcome: Result<(), writer::WriteFailed>| {
            let result = match (outcome, slot.lock().expect("write slot lock").take()) {
                (Ok(()), Some(result)) => result,
                (Err(why), _) => Err(E::from(StoreError::Unavailable(why.to_string()))),
                (Ok(()), None) => Err(E::from(StoreError::Unavailable("the write did not run".into()))),
            };
            let _ = reply.send(result);
        });
        let stopping = || E::from(StoreError::Unavailable("the node is stopping".into()));
        self.queue.send(writer::Job::Write(writer::Write { run, deliver })).await.map_err(|_| stopping())?;
        answer.await.map_err(|_| stopping())?
    }
}
