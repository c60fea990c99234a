//! A pool of workers that each serve several requests at once.

use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use pool_core::{
    ErrorChain, Metrics, Object, Pool, PoolError, ShutdownReport, Status, TimeoutKind,
};
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;

use self::manager::MuxManager;
use super::error::RunnerError;
use super::metrics::{Counters, WorkerMetrics};
use super::pool::CallError;
use super::runner::MuxRunner;
use super::spec::WorkerSpec;
use crate::protocol::Protocol;

mod builder;
mod manager;

pub use builder::MultiplexPoolBuilder;

/// A pool of warm workers that each have up to `max_in_flight` requests outstanding at
/// once: Bazel's multiplex workers, JSON-RPC servers, any worker that answers requests by
/// id in whatever order they finish.
///
/// Each call goes to the worker with the fewest requests outstanding; while every worker
/// has some and the pool may grow, another is started for the next calls. Responses are
/// matched to requests by the id the protocol gives them
/// ([`Protocol::prepare_multiplexed`]), so the protocol must say it
/// [multiplexes](Protocol::multiplexes): [`JsonRpc`](crate::protocol::JsonRpc), and
/// [`BazelJson`](crate::protocol::BazelJson) / [`BazelProto`](crate::protocol::BazelProto)
/// built with `multiplex()`.
///
/// - A request past the spec's `request_timeout` (or whose call is dropped) is withdrawn
///   as [`Protocol::cancel`] says (Bazel: a `cancel` request) and fails with
///   [`RunnerError::RequestTimeout`]; the worker goes on serving the others. A worker that
///   still has not answered it a further `request_timeout` later is killed.
/// - A worker that dies or breaks the protocol fails exactly the requests in flight on it,
///   and is replaced.
/// - The spec's `max_requests` (shortened by a random 0-5% per worker) and `max_age`
///   retire a worker: it takes no new requests, and is stopped once its last one is
///   answered. Dead workers are noticed at once (a task reads each worker's stdout).
/// - `shutdown` waits up to its grace for the requests in flight, then stops every worker.
///
/// # Example
///
/// ```
/// use subprocess_pool::protocol::{BazelJson, WorkRequest};
/// use subprocess_pool::{MultiplexPool, WorkerSpec};
///
/// // A Bazel multiplex worker that echoes its arguments, answering each request by id.
/// const WORKER: &str = r#"
/// import json, sys
/// for line in sys.stdin:
///     request = json.loads(line)
///     answer = {"requestId": request["requestId"], "output": " ".join(request["arguments"])}
///     print(json.dumps(answer), flush=True)
/// "#;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let spec = WorkerSpec::new("python3").args(["-c", WORKER]);
/// let workers = MultiplexPool::builder(spec, BazelJson::default().multiplex())
///     .max_size(2)
///     .max_in_flight(32)
///     .build()?;
/// let request = WorkRequest { arguments: vec!["hello".into()], ..Default::default() };
/// assert_eq!(workers.call(request).await?.output, "hello");
/// workers.shutdown(std::time::Duration::from_secs(1)).await;
/// # Ok(())
/// # }
/// ```
pub struct MultiplexPool<P: Protocol> {
    shared: Arc<Shared<P>>,
}

impl<P: Protocol> Clone for MultiplexPool<P> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<P: Protocol> std::fmt::Debug for MultiplexPool<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MultiplexPool")
            .field("protocol", &std::any::type_name::<P>())
            .field("max_in_flight", &self.shared.max_in_flight)
            .field("in_flight", &self.in_flight())
            .field("status", &self.status())
            .finish()
    }
}

struct Shared<P: Protocol> {
    pool: Pool<MuxManager<P>>,
    max_size: usize,
    max_in_flight: usize,
    /// Bounds the calls in flight on all workers together (`max_size * max_in_flight`);
    /// callers past it wait here, first come first served.
    permits: Semaphore,
    lent: Mutex<Lent<P>>,
    /// Wakes callers looking for room: a worker started or failed to, or a call ended.
    changed: Notify,
    wait_timeout: Option<Duration>,
    max_requests: Option<u64>,
    max_age: Option<Duration>,
    counters: Arc<Counters>,
    /// How often workers with nothing in flight get the ping, if both are set; the task
    /// that sends them starts with the first call (it needs a runtime).
    health_check_interval: Option<Duration>,
    checks_started: std::sync::Once,
}

/// The workers lent out of the pool, serving calls.
struct Lent<P: Protocol> {
    workers: Vec<Lender<P>>,
    /// Workers being started.
    starting: usize,
    /// Start failures so far, and the latest, for callers that were waiting for it.
    failures: u64,
    last_failure: Option<PoolError<RunnerError>>,
    closed: bool,
}

/// A worker taken out of the pool for its whole life.
struct Lender<P: Protocol> {
    object: Object<MuxManager<P>>,
    /// Calls through this pool in flight on it.
    calls: usize,
    /// Calls after which it retires (`max_requests`, jittered).
    limit: Option<u64>,
    picked: u64,
    retiring: bool,
}

impl<P: Protocol> Lender<P> {
    /// Requests it has outstanding (calls in flight, and requests given up on that it has
    /// not answered yet) if the worker is usable, with one lock of its link.
    fn usable_load(&self) -> Option<usize> {
        let load = self.object.usable_load()?;
        Some(self.calls.max(load))
    }
}

impl<P: Protocol> MultiplexPool<P> {
    /// Starts configuring a pool of multiplexed workers started from `spec`, speaking
    /// `protocol` (which must [multiplex](Protocol::multiplexes)).
    pub fn builder(spec: WorkerSpec, protocol: P) -> MultiplexPoolBuilder<P> {
        MultiplexPoolBuilder::new(spec, protocol)
    }

    /// Sends `request` to the worker with the fewest requests outstanding and returns its
    /// response. Waits (within `wait_timeout`) while every worker has `max_in_flight`
    /// requests outstanding and no more may start.
    pub async fn call(&self, request: P::Request) -> Result<P::Response, CallError> {
        let shared = &self.shared;
        shared.start_health_checks();
        let deadline = shared.wait_timeout.map(|limit| Instant::now() + limit);
        let acquire = shared.permits.acquire();
        let permit = match deadline {
            None => acquire.await,
            Some(deadline) => tokio::time::timeout_at(deadline, acquire)
                .await
                .map_err(|_| shared.timed_out(None))?,
        }
        .map_err(|_| PoolError::Closed)?;
        let runner = Shared::pick(shared, deadline).await?;
        let call = Call {
            shared,
            runner: Some(runner),
        };
        let answer = call.runner().call(request).await;
        drop(call);
        drop(permit);
        Ok(answer?)
    }

    /// The pool's name (see [`MultiplexPoolBuilder::name`]).
    pub fn name(&self) -> &str {
        self.shared.pool.name()
    }

    /// Requests in flight through this pool now.
    pub fn in_flight(&self) -> usize {
        self.shared.lent().workers.iter().map(|w| w.calls).sum()
    }

    /// The workers (see [`pool_core::Status`]): each serving worker counts as in use.
    pub fn status(&self) -> Status {
        self.shared.pool.status()
    }

    /// The pool's counters (see [`pool_core::Metrics`]): `created` and `destroyed` count
    /// workers; a worker retired after its `max_requests` counts under `max_uses`.
    pub fn metrics(&self) -> Metrics {
        self.shared.pool.metrics()
    }

    /// What the workers did (see [`WorkerMetrics`]).
    pub fn worker_metrics(&self) -> WorkerMetrics {
        self.shared.counters.snapshot()
    }

    /// Closes the pool: new calls fail with `Closed`; workers are stopped as their last
    /// request is answered.
    pub fn close(&self) {
        self.shared.permits.close();
        self.shared.lent().closed = true;
        self.shared.pool.close();
        self.shared.changed.notify_waiters();
    }

    /// Closes the pool, waits up to `grace` for the requests in flight, then stops every
    /// worker (those still busy fail their requests).
    pub async fn shutdown(&self, grace: Duration) -> ShutdownReport {
        let deadline = Instant::now() + grace;
        self.close();
        loop {
            let changed = self.shared.changed.notified();
            if self.in_flight() == 0 {
                break;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                break;
            }
        }
        let workers: Vec<_> = std::mem::take(&mut self.shared.lent().workers);
        drop(workers); // back to the pool, which stops them (it is closed)
        let left = deadline.saturating_duration_since(Instant::now());
        self.shared.pool.shutdown(left).await
    }
}

/// The default `max_in_flight`: 8 requests per worker.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 8;

impl<P: Protocol> Shared<P> {
    fn lent(&self) -> MutexGuard<'_, Lent<P>> {
        self.lent.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The timeout of a caller whose deadline passed, carrying the latest start failure.
    /// A caller that saw a start fail since `failures_before` (the count when it began)
    /// timed out waiting for workers that could not start: `TimeoutKind::Create`.
    fn timed_out(&self, failures_before: Option<u64>) -> PoolError<RunnerError> {
        let lent = self.lent();
        let kind = match failures_before {
            Some(before) if lent.failures > before => TimeoutKind::Create,
            _ => TimeoutKind::Wait,
        };
        let last_error = lent
            .last_failure
            .as_ref()
            .and_then(|failure| match failure {
                PoolError::Backend(error) => Some(Arc::new(error.duplicate())),
                PoolError::Timeout { last_error, .. } => last_error.clone(),
                _ => None,
            });
        PoolError::Timeout { kind, last_error }
    }

    /// A worker with room for one more request (counted as in flight on it), started if
    /// need be.
    async fn pick(
        self: &Arc<Self>,
        deadline: Option<Instant>,
    ) -> Result<Arc<MuxRunner<P>>, PoolError<RunnerError>> {
        // The failed starts counted when this caller began, read in its first look's lock.
        let mut failures_before = None;
        // Most calls find room at once: they never register with `changed`. A call that
        // finds none starts a worker only in the loop, once it is registered to hear of it.
        if let Some(found) = self.look(&mut failures_before, deadline, false)? {
            return Ok(found);
        }
        loop {
            // Registered before looking again, so a change in between is not missed.
            let mut changed = std::pin::pin!(self.changed.notified());
            changed.as_mut().enable();
            if let Some(found) = self.look(&mut failures_before, deadline, true)? {
                return Ok(found);
            }
            match deadline {
                None => changed.await,
                Some(deadline) => {
                    if tokio::time::timeout_at(deadline, changed).await.is_err() {
                        return Err(self.timed_out(failures_before));
                    }
                }
            }
        }
    }

    /// One look at the lent workers: the one with the fewest requests outstanding, if one
    /// has room (counted as in flight on it); else `None`, after starting a worker if
    /// `start_if_none` and the pool may grow. Workers that are done for go back to the pool
    /// on the way.
    fn look(
        self: &Arc<Self>,
        failures_before: &mut Option<u64>,
        deadline: Option<Instant>,
        start_if_none: bool,
    ) -> Result<Option<Arc<MuxRunner<P>>>, PoolError<RunnerError>> {
        let mut retired = Vec::new();
        let mut lent = self.lent();
        if lent.closed {
            return Err(PoolError::Closed);
        }
        let failures_before = *failures_before.get_or_insert(lent.failures);
        let mut index = 0;
        let mut best: Option<(usize, usize)> = None; // (load, index)
        // One clock read per look, and only when ages matter.
        let now = self.max_age.map(|_| Instant::now());
        while index < lent.workers.len() {
            let worker = &mut lent.workers[index];
            if let Some((age, now)) = self.max_age.zip(now) {
                if now.saturating_duration_since(worker.object.started()) >= age {
                    worker.retiring = true;
                }
            }
            let usable_load = worker.usable_load();
            // Dead ones go once their calls (failed already) have let go.
            if (usable_load.is_none() || worker.retiring) && worker.calls == 0 {
                retired.push(lent.workers.swap_remove(index));
                continue;
            }
            let Some(load) = usable_load else {
                index += 1;
                continue;
            };
            let fewer = best.is_none_or(|(least, _)| load < least);
            if !worker.retiring && load < self.max_in_flight && fewer {
                best = Some((load, index));
            }
            index += 1;
        }
        let can_grow = lent.workers.len() + lent.starting < self.max_size;
        let mut start = false;
        let found = match best {
            Some((load, index)) => {
                let worker = &mut lent.workers[index];
                worker.calls += 1;
                worker.picked += 1;
                if worker.limit.is_some_and(|limit| worker.picked >= limit) {
                    worker.retiring = true;
                }
                // Every worker is busy: start another for the calls to come.
                start = load > 0 && can_grow;
                Some(Arc::clone(&*worker.object))
            }
            // A start failed while this caller waited: one without a deadline gets the
            // failure (as a pool-core `get` does); one with a deadline tries again until it
            // passes (pool-core's backoff paces the starts).
            None if lent.failures > failures_before && deadline.is_none() => {
                if let Some(failure) = &lent.last_failure {
                    return Err(duplicate(failure));
                }
                None
            }
            None => {
                start = start_if_none && can_grow;
                None
            }
        };
        if start {
            lent.starting += 1;
        }
        drop(lent);
        drop(retired); // stopped by the pool, outside the lock
        if start {
            self.start_worker();
        }
        Ok(found)
    }

    /// Starts the task that pings idle workers, once, if a ping and an interval are set.
    fn start_health_checks(self: &Arc<Self>) {
        if self.checks_started.is_completed() {
            return;
        }
        let Some(interval) = self.health_check_interval else {
            return;
        };
        if !self.pool.manager().0.has_ping() {
            return;
        }
        self.checks_started.call_once(|| {
            let shared = Arc::downgrade(self);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(interval).await;
                    let Some(shared) = shared.upgrade() else {
                        return;
                    };
                    if shared.lent().closed {
                        return;
                    }
                    shared.check_idle_workers().await;
                }
            });
        });
    }

    /// Pings every worker with nothing in flight; one that fails retires.
    async fn check_idle_workers(self: &Arc<Self>) {
        let idle: Vec<_> = {
            let mut lent = self.lent();
            lent.workers
                .iter_mut()
                .filter(|w| !w.retiring && w.usable_load() == Some(0))
                .map(|worker| {
                    worker.calls += 1; // so that it is not stopped under the ping
                    Arc::clone(&*worker.object)
                })
                .collect()
        };
        for runner in idle {
            let Some(ping) = self.pool.manager().0.ping_request() else {
                return;
            };
            let pid = runner.pid();
            let call = Call {
                shared: self,
                runner: Some(runner),
            };
            if let Err(error) = call.runner().call(ping).await {
                tracing::warn!(target: "subprocess_pool", pool = %self.counters.name(), pid, error = %ErrorChain(&error), "a multiplexed worker failed its health check; it retires");
                let mut lent = self.lent();
                if let Some(worker) = lent.workers.iter_mut().find(|w| w.object.pid() == pid) {
                    worker.retiring = true;
                }
            }
            drop(call);
        }
    }

    /// Starts a worker in the background (counted in `starting` by the caller).
    fn start_worker(self: &Arc<Self>) {
        let shared = Arc::clone(self);
        tokio::spawn(async move {
            let started = shared.pool.get().await;
            let mut lent = shared.lent();
            lent.starting -= 1;
            match started {
                Ok(object) => {
                    let limit = shared.max_requests.map(|max| jittered(max, object.pid()));
                    lent.workers.push(Lender {
                        object,
                        calls: 0,
                        limit,
                        picked: 0,
                        retiring: false,
                    });
                }
                Err(error) => {
                    lent.failures += 1;
                    lent.last_failure = Some(error);
                }
            }
            drop(lent);
            shared.changed.notify_waiters();
        });
    }
}

/// A call in flight on a worker; when it ends, the worker has room again, and one that
/// is retiring and now idle (or dead) goes back to the pool to be stopped.
struct Call<'a, P: Protocol> {
    shared: &'a Arc<Shared<P>>,
    runner: Option<Arc<MuxRunner<P>>>,
}

impl<P: Protocol> Call<'_, P> {
    fn runner(&self) -> &MuxRunner<P> {
        self.runner.as_ref().expect("set until dropped")
    }
}

impl<P: Protocol> Drop for Call<'_, P> {
    fn drop(&mut self) {
        let runner = self.runner.take().expect("set until dropped");
        let pid = runner.pid();
        // The pool's stop takes the worker back only once no call holds it.
        drop(runner);
        let retired = {
            let mut lent = self.shared.lent();
            let Some(index) = lent.workers.iter().position(|w| w.object.pid() == pid) else {
                return;
            };
            let worker = &mut lent.workers[index];
            worker.calls -= 1;
            let done = worker.calls == 0 && (worker.retiring || !worker.object.is_usable());
            done.then(|| lent.workers.swap_remove(index))
        };
        drop(retired);
        self.shared.changed.notify_waiters();
    }
}

/// A start failure again, for each caller that was waiting for the start.
fn duplicate(failure: &PoolError<RunnerError>) -> PoolError<RunnerError> {
    match failure {
        PoolError::Backend(error) => PoolError::Backend(error.duplicate()),
        PoolError::Timeout { kind, last_error } => PoolError::Timeout {
            kind: *kind,
            last_error: last_error.clone(),
        },
        PoolError::Exhausted => PoolError::Exhausted,
        _ => PoolError::Closed,
    }
}

/// `max` shortened by a random 0-5%, so that workers started together do not all retire
/// together.
fn jittered(max: u64, pid: u32) -> u64 {
    let random = std::hash::RandomState::new().hash_one(pid);
    max - random % (max / 20 + 1)
}
