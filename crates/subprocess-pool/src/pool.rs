//! A pool of warm workers.

use std::future::Future;
use std::time::Duration;

use pool_core::{
    BuildError, Metrics, Pool, PoolBuilder, PoolConfig, PoolError, QueueMode, ShutdownReport,
    Status,
};

use crate::error::RunnerError;
use crate::manager::RunnerManager;
use crate::protocol::Protocol;
use crate::spec::WorkerSpec;

/// Why a [`SubprocessPool::call`] failed: no worker could be had, or the worker failed
/// this call (it is then replaced; the next call gets another).
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// No worker: the pool is closed or exhausted, its deadline passed, or a worker could
    /// not be started (the cause is inside).
    #[error(transparent)]
    Pool(#[from] PoolError<RunnerError>),
    /// The worker failed this call: timed out, exited, broke the protocol; or the request
    /// was refused before it was sent.
    #[error(transparent)]
    Worker(#[from] RunnerError),
}

/// A pool of warm worker processes speaking protocol `P`.
///
/// `call` borrows a worker, sends one request, reads its response and gives the worker
/// back. A worker that times out, crashes or writes garbage fails only that call: its
/// process group is killed and reaped (within `kill_grace` and a moment) and the pool
/// keeps serving with the others. `Clone` is cheap: clones share the pool.
///
/// # Example
///
/// ```
/// use subprocess_pool::protocol::Lines;
/// use subprocess_pool::{SubprocessPool, WorkerSpec};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let workers = SubprocessPool::builder(WorkerSpec::new("cat"), Lines::default())
///     .max_size(2)
///     .build()?;
/// let reply = workers.call("resize in.png 800x600".to_string()).await?;
/// assert_eq!(reply, "resize in.png 800x600");
/// workers.shutdown(std::time::Duration::from_secs(1)).await;
/// # Ok(())
/// # }
/// ```
pub struct SubprocessPool<P: Protocol> {
    pool: Pool<RunnerManager<P>>,
}

impl<P: Protocol> Clone for SubprocessPool<P> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
        }
    }
}

impl<P: Protocol> SubprocessPool<P> {
    /// Starts configuring a pool of workers started from `spec`, speaking `protocol`.
    pub fn builder(spec: WorkerSpec, protocol: P) -> SubprocessPoolBuilder<P> {
        SubprocessPoolBuilder {
            inner: Pool::builder(RunnerManager::new(spec, protocol)),
        }
    }

    /// Sends `request` to a worker and returns its response.
    // Written out so the signature promises a `Send` future (callers spawn it).
    #[allow(clippy::manual_async_fn)]
    pub fn call(
        &self,
        request: P::Request,
    ) -> impl Future<Output = Result<P::Response, CallError>> + Send + '_ {
        async move {
            let mut runner = self.pool.get().await?;
            Ok(runner.call(request).await?)
        }
    }

    /// The pool's occupancy (see [`pool_core::Status`]).
    pub fn status(&self) -> Status {
        self.pool.status()
    }

    /// The pool's counters (see [`pool_core::Metrics`]).
    pub fn metrics(&self) -> Metrics {
        self.pool.metrics()
    }

    /// Closes the pool: no new calls; idle workers are stopped now, busy ones when their
    /// call ends.
    pub fn close(&self) {
        self.pool.close();
    }

    /// Closes the pool, waits up to `grace` for calls in flight, and stops every worker.
    pub async fn shutdown(&self, grace: Duration) -> ShutdownReport {
        self.pool.shutdown(grace).await
    }

    /// The underlying pool, for direct access to runners.
    pub fn pool(&self) -> &Pool<RunnerManager<P>> {
        &self.pool
    }
}

/// Configures a [`SubprocessPool`]: every [`pool_core::PoolBuilder`] setting, then
/// [`build`](SubprocessPoolBuilder::build).
pub struct SubprocessPoolBuilder<P: Protocol> {
    inner: PoolBuilder<RunnerManager<P>>,
}

/// Forwards a setter to the inner pool builder.
macro_rules! forward {
    ($(#[$doc:meta])* $name:ident: $ty:ty) => {
        $(#[$doc])*
        pub fn $name(self, value: $ty) -> Self {
            Self {
                inner: self.inner.$name(value),
            }
        }
    };
}

impl<P: Protocol> SubprocessPoolBuilder<P> {
    forward!(
        /// The most workers at once.
        max_size: usize
    );
    forward!(
        /// Workers kept started and idle.
        min_idle: usize
    );
    forward!(
        /// The most callers waiting at once.
        max_waiting: usize
    );
    forward!(
        /// One deadline for getting a worker (waiting, starting, checking).
        wait_timeout: Duration
    );
    forward!(
        /// Bounds starting a worker.
        create_timeout: Duration
    );
    forward!(
        /// Bounds checking a worker before a call.
        recycle_timeout: Duration
    );
    forward!(
        /// Idle workers unused for longer are stopped, keeping `min_idle`.
        idle_timeout: Duration
    );
    forward!(
        /// The longest a worker lives (jittered per worker).
        max_lifetime: Duration
    );
    forward!(
        /// The most calls a worker serves (prefer [`WorkerSpec::max_requests`]).
        max_uses: usize
    );
    forward!(
        /// Idle workers older than this are health-checked before a call.
        health_check_after: Duration
    );
    forward!(
        /// How often idle workers are health-checked in the background.
        health_check_interval: Duration
    );
    forward!(
        /// The most workers starting at once.
        max_concurrent_creates: usize
    );
    forward!(
        /// Report a worker held longer than this.
        leak_threshold: Duration
    );
    forward!(
        /// Which idle worker serves next.
        queue_mode: QueueMode
    );
    forward!(
        /// Every pool setting at once.
        config: PoolConfig
    );

    /// Builds the pool (no worker starts until needed, or for `min_idle`).
    pub fn build(self) -> Result<SubprocessPool<P>, BuildError> {
        Ok(SubprocessPool {
            pool: self.inner.build()?,
        })
    }
}
