//! Worker pools by key: the key picks the `WorkerSpec` (as Bazel keeps one set of
//! persistent workers per mnemonic and flags), with a cap on live workers of all keys.

use std::fmt;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use pool_core::{
    BuildError, KeyedManager, KeyedPool, KeyedStatus, Metrics, ObjectMeta, PoolConfig,
    ShutdownReport, Status,
};

use super::error::RunnerError;
use super::metrics::{Counters, WorkerMetrics};
use super::pool::CallError;
use super::runner::Runner;
use super::spec::WorkerSpec;
use crate::protocol::Protocol;

/// Makes the spec of a key's workers.
type SpecFor<K> = Arc<dyn Fn(&K) -> WorkerSpec + Send + Sync>;

/// Warm worker pools by key: `spec_for(key)` says how a key's workers start (program,
/// arguments, flags, environment), each key has up to `max_size` workers, and all keys
/// together up to `max_total` live workers. At the cap, a key that needs a worker stops
/// the idle worker of another key that was used longest ago; when none is idle, calls of
/// every key wait first come, first served (see [`pool_core::KeyedPool`]). Each call has
/// a key's worker to itself, as [`SubprocessPool::call`](crate::SubprocessPool::call).
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use subprocess_pool::protocol::Lines;
/// use subprocess_pool::{KeyedSubprocessPool, WorkerSpec};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // One `sed` per script (each flushes every answer line), at most 4 processes in all.
/// let tools = KeyedSubprocessPool::builder(
///     |script: &String| WorkerSpec::new("sed").args(["-u", script.as_str()]),
///     Lines::default(),
/// )
/// .max_size(2)
/// .max_total(4)
/// .build()?;
/// let shout = "s/l/L/g".to_string();
/// assert_eq!(tools.call(&shout, "hello".to_string()).await?, "heLLo");
/// tools.shutdown(Duration::from_secs(1)).await;
/// # Ok(())
/// # }
/// ```
pub struct KeyedSubprocessPool<K, P>
where
    K: Eq + Hash + Clone + fmt::Debug + Send + Sync + 'static,
    P: Protocol,
{
    pool: KeyedPool<KeyedRunners<K, P>>,
    counters: Arc<Counters>,
}

impl<K, P> Clone for KeyedSubprocessPool<K, P>
where
    K: Eq + Hash + Clone + fmt::Debug + Send + Sync + 'static,
    P: Protocol,
{
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            counters: self.counters.clone(),
        }
    }
}

impl<K, P> fmt::Debug for KeyedSubprocessPool<K, P>
where
    K: Eq + Hash + Clone + fmt::Debug + Send + Sync + 'static,
    P: Protocol,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedSubprocessPool")
            .field("pool", &self.pool)
            .finish()
    }
}

/// Starts, checks and stops the workers of each key.
struct KeyedRunners<K, P: Protocol> {
    spec_for: SpecFor<K>,
    protocol: P,
    counters: Arc<Counters>,
}

impl<K, P> KeyedManager for KeyedRunners<K, P>
where
    K: Eq + Hash + Clone + fmt::Debug + Send + Sync + 'static,
    P: Protocol,
{
    type Key = K;
    type Object = Runner<P>;
    type Error = RunnerError;

    async fn create(&self, key: &K) -> Result<Runner<P>, RunnerError> {
        let spec = (self.spec_for)(key);
        if let Err(error) = spec.validate() {
            return Err(RunnerError::Startup {
                reason: format!("the spec for {key:?} is refused: {error}"),
                stderr: String::new(),
            });
        }
        Runner::start(&spec, self.protocol.clone(), None, self.counters.clone()).await
    }

    async fn recycle(
        &self,
        _: &K,
        runner: &mut Runner<P>,
        _: &ObjectMeta,
    ) -> Result<(), RunnerError> {
        runner.check_idle().await
    }

    fn is_broken(&self, _: &K, runner: &Runner<P>) -> bool {
        runner.is_poisoned()
    }

    async fn destroy(&self, _: &K, runner: Runner<P>) {
        let fate = runner.fate();
        runner.retire(fate, &self.counters).await;
    }
}

impl<K, P> KeyedSubprocessPool<K, P>
where
    K: Eq + Hash + Clone + fmt::Debug + Send + Sync + 'static,
    P: Protocol,
{
    /// Starts configuring pools whose workers `spec_for(key)` describes, speaking
    /// `protocol`.
    pub fn builder(
        spec_for: impl Fn(&K) -> WorkerSpec + Send + Sync + 'static,
        protocol: P,
    ) -> KeyedSubprocessPoolBuilder<K, P> {
        KeyedSubprocessPoolBuilder {
            spec_for: Arc::new(spec_for),
            protocol,
            config: PoolConfig::default(),
            max_total: None,
            name: None,
        }
    }

    /// Sends `request` to a worker of `key` and returns its response.
    pub async fn call(&self, key: &K, request: P::Request) -> Result<P::Response, CallError> {
        let mut runner = self.pool.get(key).await?;
        // Fresh from `recycle`, which caught up with the worker's output just now.
        Ok(runner.call_caught_up(request).await?)
    }

    /// Every key's occupancy added up, and how many keys have workers.
    pub fn status(&self) -> KeyedStatus {
        self.pool.status()
    }

    /// One key's occupancy, if it has workers or callers now.
    pub fn status_of(&self, key: &K) -> Option<Status> {
        self.pool.status_of(key)
    }

    /// Every key's counters added up.
    pub fn metrics(&self) -> Metrics {
        self.pool.metrics()
    }

    /// What the workers of all keys did (see [`WorkerMetrics`]).
    pub fn worker_metrics(&self) -> WorkerMetrics {
        self.counters.snapshot()
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        self.pool.name()
    }

    /// Closes the pools of every key.
    pub fn close(&self) {
        self.pool.close();
    }

    /// Closes every key's pool, waits up to `grace` for calls in flight, and stops every
    /// worker.
    pub async fn shutdown(&self, grace: Duration) -> ShutdownReport {
        self.pool.shutdown(grace).await
    }

    /// The underlying keyed pool.
    pub fn pool(&self) -> &KeyedPool<impl KeyedManager<Key = K, Object = Runner<P>>> {
        &self.pool
    }
}

/// Configures a [`KeyedSubprocessPool`].
#[must_use = "a builder does nothing until build() is called"]
pub struct KeyedSubprocessPoolBuilder<K, P: Protocol> {
    spec_for: SpecFor<K>,
    protocol: P,
    config: PoolConfig,
    max_total: Option<usize>,
    name: Option<String>,
}

impl<K, P> KeyedSubprocessPoolBuilder<K, P>
where
    K: Eq + Hash + Clone + fmt::Debug + Send + Sync + 'static,
    P: Protocol,
{
    /// The most workers of one key (default 10).
    pub fn max_size(mut self, max_size: usize) -> Self {
        self.config.max_size = max_size;
        self
    }

    /// The most live workers of all keys together (default: `max_size`).
    pub fn max_total(mut self, max_total: usize) -> Self {
        self.max_total = Some(max_total);
        self
    }

    /// One deadline for getting a worker, starting it included.
    pub fn wait_timeout(mut self, timeout: Duration) -> Self {
        self.config.wait_timeout = Some(timeout);
        self
    }

    /// Every setting of each key's pool (see [`PoolConfig`]). Its `max_uses` and
    /// `max_lifetime` are how requests and age retire workers here: a spec's
    /// `max_requests` and `max_age` differ per key, so they are not read.
    pub fn config(mut self, config: PoolConfig) -> Self {
        self.config = config;
        self
    }

    /// The pool's name, in every event it logs (default: the protocol's type name).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Builds the pools (no worker starts until a call needs one); refuses what
    /// [`pool_core::KeyedPoolBuilder::build`] refuses.
    pub fn build(self) -> Result<KeyedSubprocessPool<K, P>, BuildError> {
        let name = self.name.unwrap_or_else(|| "workers".to_string());
        let counters = Arc::new(Counters::named(&name));
        let manager = KeyedRunners {
            spec_for: self.spec_for,
            protocol: self.protocol,
            counters: counters.clone(),
        };
        let mut builder = KeyedPool::builder(manager).config(self.config);
        if let Some(max_total) = self.max_total {
            builder = builder.max_total(max_total);
        }
        let pool = builder.name(name).build()?;
        Ok(KeyedSubprocessPool { pool, counters })
    }
}

impl<K, P: Protocol> fmt::Debug for KeyedSubprocessPoolBuilder<K, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedSubprocessPoolBuilder")
            .field("config", &self.config)
            .field("max_total", &self.max_total)
            .finish_non_exhaustive()
    }
}
