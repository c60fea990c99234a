//! A pool of warm workers.

use std::future::Future;
use std::time::Duration;

use pool_core::{
    BuildError, Metrics, Pool, PoolConfig, PoolError, QueueMode, ShutdownReport, Status,
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

impl<P: Protocol> std::fmt::Debug for SubprocessPool<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubprocessPool")
            .field("protocol", &std::any::type_name::<P>())
            .field("status", &self.status())
            .finish()
    }
}

impl<P: Protocol> SubprocessPool<P> {
    /// Starts configuring a pool of workers started from `spec`, speaking `protocol`.
    pub fn builder(spec: WorkerSpec, protocol: P) -> SubprocessPoolBuilder<P> {
        SubprocessPoolBuilder {
            manager: RunnerManager::new(spec, protocol),
            config: PoolConfig::default(),
        }
    }

    /// Sends `request` to a worker and returns its response.
    ///
    /// A leak report (`leak_threshold`) for the worker names the line that called `call`.
    // Written out so the signature promises a `Send` future (callers spawn it), and so the
    // `get` is made here, where `#[track_caller]` still sees the caller's location.
    #[allow(clippy::manual_async_fn)]
    #[track_caller]
    pub fn call(
        &self,
        request: P::Request,
    ) -> impl Future<Output = Result<P::Response, CallError>> + Send + '_ {
        let get = self.pool.get();
        async move {
            let mut runner = get.await?;
            // Fresh from `recycle`, which looked at its stdout just now.
            Ok(runner.call_just_checked(request).await?)
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

/// Configures a [`SubprocessPool`]: every [`pool_core::PoolConfig`] setting, then
/// [`build`](SubprocessPoolBuilder::build).
#[must_use = "a builder does nothing until build() is called"]
pub struct SubprocessPoolBuilder<P: Protocol> {
    manager: RunnerManager<P>,
    config: PoolConfig,
}

impl<P: Protocol> std::fmt::Debug for SubprocessPoolBuilder<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubprocessPoolBuilder")
            .field("manager", &self.manager)
            .field("config", &self.config)
            .finish()
    }
}

/// Generates a setter of a `PoolConfig` field: plain, or wrapped in `Some`.
macro_rules! setting {
    ($(#[$doc:meta])* $name:ident: Some($ty:ty)) => {
        $(#[$doc])*
        pub fn $name(mut self, value: $ty) -> Self {
            self.config.$name = Some(value);
            self
        }
    };
    ($(#[$doc:meta])* $name:ident: $ty:ty) => {
        $(#[$doc])*
        pub fn $name(mut self, value: $ty) -> Self {
            self.config.$name = value;
            self
        }
    };
}

impl<P: Protocol> SubprocessPoolBuilder<P> {
    setting!(
        /// The most workers at once.
        max_size: usize
    );
    setting!(
        /// Workers kept started and idle.
        min_idle: usize
    );
    setting!(
        /// The most callers waiting at once.
        max_waiting: Some(usize)
    );
    setting!(
        /// One deadline for getting a worker (waiting, starting, checking).
        wait_timeout: Some(Duration)
    );
    setting!(
        /// Bounds starting a worker.
        create_timeout: Some(Duration)
    );
    setting!(
        /// Bounds checking a worker before a call.
        recycle_timeout: Some(Duration)
    );
    setting!(
        /// Idle workers unused for longer are stopped, keeping `min_idle`.
        idle_timeout: Some(Duration)
    );
    setting!(
        /// The longest a worker lives (jittered per worker).
        max_lifetime: Some(Duration)
    );
    setting!(
        /// The most calls a worker serves (prefer [`WorkerSpec::max_requests`]).
        max_uses: Some(usize)
    );
    setting!(
        /// Idle workers older than this are health-checked before a call.
        health_check_after: Some(Duration)
    );
    setting!(
        /// How often idle workers are health-checked in the background.
        health_check_interval: Some(Duration)
    );
    setting!(
        /// The most workers starting at once.
        max_concurrent_creates: usize
    );
    setting!(
        /// Report a worker held longer than this.
        leak_threshold: Some(Duration)
    );
    setting!(
        /// Which idle worker serves next.
        queue_mode: QueueMode
    );

    /// Every pool setting at once.
    pub fn config(mut self, config: PoolConfig) -> Self {
        self.config = config;
        self
    }

    /// Health checks (see `health_check_after` and `health_check_interval`) also send
    /// `request` to the worker and require an answer.
    pub fn ping(mut self, request: P::Request) -> Self
    where
        P::Request: Clone + Sync,
    {
        self.manager = self.manager.with_ping(request);
        self
    }

    /// Builds the pool (no worker starts until needed, or for `min_idle`); refuses a bad
    /// setting naming it, as [`pool_core::PoolBuilder::build`] does.
    pub fn build(self) -> Result<SubprocessPool<P>, BuildError> {
        self.manager.spec().validate()?;
        Ok(SubprocessPool {
            pool: Pool::builder(self.manager).config(self.config).build()?,
        })
    }
}
