//! A pool of warm workers.

use std::future::Future;
use std::time::Duration;

use pool_core::{
    BuildError, Metrics, Pool, PoolBuilder, PoolConfig, PoolError, QueueMode, ShutdownReport,
    Status,
};

use super::error::RunnerError;
use super::manager::RunnerManager;
use super::metrics::WorkerMetrics;
use super::session::{NoSession, Session};
use super::spec::WorkerSpec;
use crate::protocol::Protocol;

/// Why a [`SubprocessPool::call`] failed: no worker could be had, or the worker failed
/// this call (it is then replaced; the next call gets another).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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
pub struct SubprocessPool<P: Protocol, S: Session<P> = NoSession> {
    pool: Pool<RunnerManager<P, S>>,
    counters: std::sync::Arc<super::metrics::Counters>,
}

impl<P: Protocol, S: Session<P>> Clone for SubprocessPool<P, S> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            counters: self.counters.clone(),
        }
    }
}

impl<P: Protocol, S: Session<P>> std::fmt::Debug for SubprocessPool<P, S> {
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
            pool: Pool::builder(RunnerManager::new(spec.clone(), protocol))
                .name(spec.short_program_name()),
        }
    }
}

impl<P: Protocol, S: Session<P>> SubprocessPool<P, S> {
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
            // Fresh from `recycle`, which caught up with the worker's output just now.
            Ok(runner.call_caught_up(request).await?)
        }
    }

    /// The pool's name (see [`SubprocessPoolBuilder::name`]).
    pub fn name(&self) -> &str {
        self.pool.name()
    }

    /// The pool's occupancy (see [`pool_core::Status`]).
    pub fn status(&self) -> Status {
        self.pool.status()
    }

    /// The pool's counters (see [`pool_core::Metrics`]).
    pub fn metrics(&self) -> Metrics {
        self.pool.metrics()
    }

    /// What the workers did: messages sent and dropped, and why workers went (see
    /// [`WorkerMetrics`]).
    pub fn worker_metrics(&self) -> WorkerMetrics {
        self.counters.snapshot()
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
    pub fn pool(&self) -> &Pool<RunnerManager<P, S>> {
        &self.pool
    }
}

/// Configures a [`SubprocessPool`]: every [`pool_core::PoolBuilder`] setting (each
/// forwards to the `PoolBuilder` it wraps, which defines and checks it), the worker-side
/// extras (`ping`, `session`, `on_message`), then [`build`](SubprocessPoolBuilder::build).
#[must_use = "a builder does nothing until build() is called"]
pub struct SubprocessPoolBuilder<P: Protocol, S: Session<P> = NoSession> {
    pool: PoolBuilder<RunnerManager<P, S>>,
}

impl<P: Protocol, S: Session<P>> std::fmt::Debug for SubprocessPoolBuilder<P, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubprocessPoolBuilder")
            .field("manager", self.pool.manager())
            .field("config", self.pool.settings())
            .finish()
    }
}

/// Forwards pool settings to the wrapped `PoolBuilder`, each doc line followed by a link
/// to the `PoolBuilder` setter that defines it.
macro_rules! forward {
    ($($(#[$doc:meta])* $name:ident: $ty:ty;)*) => {$(
        $(#[$doc])*
        #[doc = concat!("\n\nSee [`PoolBuilder::", stringify!($name), "`](pool_core::PoolBuilder::", stringify!($name), ").")]
        pub fn $name(self, value: $ty) -> Self {
            Self { pool: self.pool.$name(value) }
        }
    )*};
}

impl<P: Protocol, S: Session<P>> SubprocessPoolBuilder<P, S> {
    forward! {
        /// The most workers at once.
        max_size: usize;
        /// Workers kept started and idle.
        min_idle: usize;
        /// The most callers waiting at once.
        max_waiting: usize;
        /// One deadline for getting a worker (waiting, starting, checking).
        wait_timeout: Duration;
        /// Bounds starting a worker.
        create_timeout: Duration;
        /// Bounds checking a worker before a call.
        recycle_timeout: Duration;
        /// Idle workers unused for longer are stopped, keeping `min_idle`.
        idle_timeout: Duration;
        /// The longest a worker lives (jittered per worker); with
        /// [`WorkerSpec::max_age`] too, the shorter wins.
        max_lifetime: Duration;
        /// How many times a worker is lent (jittered per worker): one per `call`; with
        /// [`WorkerSpec::max_requests`] too, the smaller wins.
        max_uses: usize;
        /// Idle workers older than this are health-checked before a call.
        health_check_after: Duration;
        /// How often idle workers are health-checked in the background.
        health_check_interval: Duration;
        /// The most workers starting at once.
        max_concurrent_creates: usize;
        /// The longest pause between start attempts while workers keep failing to start.
        create_backoff_max: Duration;
        /// Report a worker held longer than this.
        leak_threshold: Duration;
        /// Which idle worker serves next.
        queue_mode: QueueMode;
    }

    /// The pool's name, in every event it and its workers log (default: the program's
    /// file name, `python3` for `/usr/bin/python3`; the registered name in
    /// [`global`](crate::global)).
    pub fn name(self, name: impl Into<String>) -> Self {
        let name = name.into();
        self.pool.manager().counters().set_name(&name);
        Self {
            pool: self.pool.name(name),
        }
    }

    /// Every pool setting at once.
    pub fn config(self, config: PoolConfig) -> Self {
        Self {
            pool: self.pool.config(config),
        }
    }

    /// Health checks (see `health_check_after` and `health_check_interval`) also send
    /// `request` to the worker and require an answer.
    pub fn ping(self, request: P::Request) -> Self
    where
        P::Request: Clone + Sync,
    {
        Self {
            pool: self.pool.map_manager(|manager| manager.with_ping(request)),
        }
    }

    /// Runs `session`'s handshake on every new worker (inside create, within
    /// `startup_timeout`, so `min_idle` workers are ready too) and its goodbye on every
    /// worker stopped in good order (see [`Session`]).
    pub fn session<T: Session<P>>(self, session: T) -> SubprocessPoolBuilder<P, T> {
        SubprocessPoolBuilder {
            pool: self
                .pool
                .map_manager(|manager| manager.with_session(session)),
        }
    }

    /// Calls `handler` with a worker's pid and each message it sends (a frame that answers
    /// no request: a notification, a log line, a request to the host). What it returns is
    /// written back to that worker as the reply; with `None`, the protocol's
    /// [default reply](Protocol::default_reply), if any. It runs on the task reading the
    /// worker's stdout, so it should be quick (hand work to a channel). Without a
    /// handler, messages are dropped and counted in
    /// [`WorkerMetrics::messages_dropped`].
    pub fn on_message(
        self,
        handler: impl Fn(u32, &P::Message) -> Option<P::Request> + Send + Sync + 'static,
    ) -> Self {
        Self {
            pool: self
                .pool
                .map_manager(|manager| manager.with_message_handler(handler)),
        }
    }

    /// Builds the pool (no worker starts until needed, or for `min_idle`); refuses a bad
    /// setting naming it, as [`pool_core::PoolBuilder::build`] does. The spec's
    /// [`max_requests`](WorkerSpec::max_requests) and [`max_age`](WorkerSpec::max_age)
    /// become the pool's `max_uses` and `max_lifetime` (the smaller limit wins where both
    /// are set).
    pub fn build(self) -> Result<SubprocessPool<P, S>, BuildError> {
        let spec = self.pool.manager().spec();
        spec.validate()?;
        let mut config = self.pool.settings().clone();
        spec.limit_pool(&mut config);
        let counters = self.pool.manager().counters().clone();
        let pool = self.pool.config(config).build()?;
        Ok(SubprocessPool { pool, counters })
    }
}
