//! The node's database as the services see it.

use std::future::Future;

use caravan_store::rusqlite::Connection;
use caravan_store::StoreError;

/// Reads on a reader connection, writes in the writer's next transaction.
/// A write answers once it is durable, and is kept only if it returns `Ok`
/// (it runs in a savepoint of its own).
pub trait Database: Clone + Send + Sync + 'static {
    fn read<R, E>(
        &self,
        query: impl FnOnce(&Connection) -> Result<R, E> + Send + 'static,
    ) -> impl Future<Output = Result<R, E>> + Send
    where
        R: Send + 'static,
        E: From<StoreError> + Send + 'static;

    fn write<R, E>(
        &self,
        write: impl FnOnce(&Connection) -> Result<R, E> + Send + 'static,
    ) -> impl Future<Output = Result<R, E>> + Send
    where
        R: Send + 'static,
        E: From<StoreError> + Send + 'static;
}
