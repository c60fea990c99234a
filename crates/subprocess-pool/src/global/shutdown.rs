//! Pools a [`Global`](crate::Global) slot knows how to drain.

use std::future::Future;
use std::time::Duration;

use pool_core::{Manager, Pool, ShutdownReport};

use crate::protocol::Protocol;
use crate::{CommandPool, SubprocessPool};

/// A pool that can be closed and drained within a grace period: what
/// [`Global::shutdown`](crate::Global::shutdown) calls on the value it holds.
///
/// Implemented for every pool of this crate and of pool-core, and for
/// [`Pools`](crate::global::Pools); implement it for your own bundle of pools to keep it
/// in a [`Global`](crate::Global).
pub trait GracefulShutdown: Send + Sync + 'static {
    /// Closes the pool (new callers get an error at once) and waits up to `grace` for what
    /// is checked out to come back and be destroyed.
    fn shutdown(&self, grace: Duration) -> impl Future<Output = ShutdownReport> + Send;
}

impl<M: Manager> GracefulShutdown for Pool<M> {
    async fn shutdown(&self, grace: Duration) -> ShutdownReport {
        Pool::shutdown(self, grace).await
    }
}

impl<P: Protocol> GracefulShutdown for SubprocessPool<P> {
    async fn shutdown(&self, grace: Duration) -> ShutdownReport {
        SubprocessPool::shutdown(self, grace).await
    }
}

impl GracefulShutdown for CommandPool {
    async fn shutdown(&self, grace: Duration) -> ShutdownReport {
        CommandPool::shutdown(self, grace).await
    }
}
