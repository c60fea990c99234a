//! The pool handle users hold.

use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, Location, catch_unwind, resume_unwind};
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::{AddError, BuildError, PoolError};
use crate::get::{self, Mode};
use crate::manager::Manager;
use crate::meta::ObjectMeta;
use crate::metrics::Metrics;
use crate::object::Object;
use crate::shared::Shared;
use crate::shutdown::ShutdownReport;
use crate::status::Status;

/// An async pool of objects made by a [`Manager`].
///
/// `Pool` is a cheap handle: clone it to share the pool between tasks. Dropping the last
/// handle closes the pool (like [`close`](Pool::close)); objects still checked out are
/// destroyed as they come back.
///
/// # Example
///
/// ```
/// use pool_core::{Manager, Pool, PoolError};
/// use std::time::Duration;
///
/// struct Conns;
/// impl Manager for Conns {
///     type Object = u32;
///     type Error = std::io::Error;
///     async fn create(&self) -> Result<u32, std::io::Error> {
///         Ok(42)
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let pool = Pool::builder(Conns)
///     .max_size(2)
///     .wait_timeout(Duration::from_secs(5))
///     .build()?;
/// let a = pool.get().await?;
/// let b = pool.get().await?;
/// assert!(matches!(pool.try_get().await, Err(PoolError::Exhausted)));
/// drop(a);
/// let c = pool.try_get().await?; // reuses `a`'s object
/// assert_eq!(*c + *b, 84);
/// # Ok(())
/// # }
/// ```
pub struct Pool<M: Manager> {
    shared: Arc<Shared<M>>,
}

impl<M: Manager> Pool<M> {
    pub(crate) fn from_shared(shared: Shared<M>) -> Self {
        let shared = Arc::new(shared);
        // Background work (maintenance, destroys) runs on the runtime present now, else
        // on the first `get`'s.
        shared.adopt_runtime();
        Self { shared }
    }

    pub(crate) fn shared(&self) -> &Arc<Shared<M>> {
        &self.shared
    }

    /// Gets an object, waiting for one if all are in use.
    ///
    /// The whole call (waiting, creating, recycling, checking) is bounded by
    /// `wait_timeout` when it is set; failed creates are then retried (paced by the pool's
    /// create backoff) until the deadline, and a caller whose deadline passes gets
    /// [`PoolError::Timeout`] with the latest failure. Without a deadline, a create made
    /// for this caller that fails is returned as [`PoolError::Backend`]; while the backend
    /// is down, callers without a deadline are each given one probe in turn (about one per
    /// backoff delay, at most 4 s apart), so set `wait_timeout` to bound how long they can
    /// wait. Waiters are served first come, first served; `get` never waits for a
    /// `destroy`.
    ///
    /// Cancel-safe: dropping the future at any point leaks no slot and no object.
    #[track_caller]
    pub fn get(&self) -> impl Future<Output = Result<Object<M>, PoolError<M::Error>>> + Send + '_ {
        self.get_with(
            self.shared.config.wait_timeout,
            Mode::Wait,
            Location::caller(),
        )
    }

    /// Like [`get`](Pool::get), with `timeout` as the deadline instead of `wait_timeout`.
    #[track_caller]
    pub fn get_timeout(
        &self,
        timeout: Duration,
    ) -> impl Future<Output = Result<Object<M>, PoolError<M::Error>>> + Send + '_ {
        self.get_with(Some(timeout), Mode::Wait, Location::caller())
    }

    /// Gets an object without queueing behind other callers: an idle one (recycled), or a
    /// new one if there is room; otherwise [`PoolError::Exhausted`] at once. A failed
    /// create is returned as [`PoolError::Backend`], not retried.
    #[track_caller]
    pub fn try_get(
        &self,
    ) -> impl Future<Output = Result<Object<M>, PoolError<M::Error>>> + Send + '_ {
        self.get_with(None, Mode::Try, Location::caller())
    }

    /// Every kind of `get`: until `timeout` (`None`: no deadline), queueing or not
    /// (`mode`), with `caller` as the call site a leak report names (the user's, taken by
    /// `#[track_caller]` in each public `get`, the blocking ones and a keyed pool's).
    pub(crate) fn get_with(
        &self,
        timeout: Option<Duration>,
        mode: Mode,
        caller: &'static Location<'static>,
    ) -> impl Future<Output = Result<Object<M>, PoolError<M::Error>>> + Send + '_ {
        get::get(&self.shared, timeout, mode, caller)
    }

    /// The pool's name (see [`PoolBuilder::name`](crate::PoolBuilder::name)), the `pool`
    /// field of every event it logs.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// A consistent snapshot of the pool's occupancy.
    pub fn status(&self) -> Status {
        self.shared.lock().status()
    }

    /// Counters of what the pool has done since it was built.
    pub fn metrics(&self) -> Metrics {
        self.shared.metrics()
    }

    /// The manager this pool was built with.
    pub fn manager(&self) -> &M {
        &self.shared.manager
    }

    /// Puts an object made elsewhere (a connection opened before the pool existed, say)
    /// into the pool, as if the manager had created it: it goes to the longest waiting
    /// caller, else to the idle list, and is recycled, checked and destroyed like any other
    /// (`Metrics::created` counts it). Refused, with the object handed back, when the pool
    /// is closed or already counts `max_size` objects.
    ///
    /// # Example
    ///
    /// ```
    /// # use pool_core::{Manager, Pool};
    /// # struct M;
    /// # impl Manager for M {
    /// #     type Object = String;
    /// #     type Error = std::convert::Infallible;
    /// #     async fn create(&self) -> Result<String, Self::Error> { Ok("made".into()) }
    /// # }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = Pool::builder(M).max_size(2).build().unwrap();
    /// pool.add("given".to_string()).unwrap();
    /// assert_eq!(*pool.get().await.unwrap(), "given");
    /// # }
    /// ```
    pub fn add(&self, object: M::Object) -> Result<(), AddError<M::Object>> {
        self.shared.adopt_runtime();
        let now = Instant::now();
        let config = &self.shared.config;
        self.shared
            .with_state(|state, after| state.added(config, object, now, after))
    }

    /// Changes `max_size`. Growing serves waiting callers at once; shrinking destroys
    /// surplus idle objects now and surplus checked-out ones as they come back. Zero is
    /// refused.
    pub fn resize(&self, max_size: usize) -> Result<(), BuildError> {
        if max_size == 0 {
            return Err(BuildError::new("max_size", "must be at least 1"));
        }
        self.shared
            .with_state(|state, after| state.resized(max_size, after));
        Ok(())
    }

    /// Keeps only the idle objects for which `keep` returns `true`; the others are
    /// destroyed. Checked-out objects are not visited.
    ///
    /// `keep` runs without the pool's lock (the objects it looks at are set aside
    /// meanwhile, counted as in use), so it may call back into the pool. If it panics, the
    /// object it was looking at and those after it are kept, and the panic resumes once the
    /// pool is consistent again.
    pub fn retain(&self, mut keep: impl FnMut(&M::Object, &ObjectMeta) -> bool) {
        let idle = self.shared.lock().take_idle();
        let mut panic = None;
        let verdicts: Vec<bool> = idle
            .iter()
            .map(|entry| {
                panic.is_some()
                    || catch_unwind(AssertUnwindSafe(|| keep(&entry.object, &entry.meta)))
                        .unwrap_or_else(|payload| {
                            panic = Some(payload);
                            true
                        })
            })
            .collect();
        self.shared
            .with_state(|state, after| state.retained(idle.into_iter().zip(verdicts), after));
        if let Some(payload) = panic {
            resume_unwind(payload);
        }
    }

    /// The idle object with the least `rank`: its rank and id (for a keyed pool).
    pub(crate) fn least_idle_by<R: Ord>(&self, rank: impl Fn(&M::Object) -> R) -> Option<(R, u64)> {
        self.shared.lock().least_idle_by(rank)
    }

    /// Destroys the idle object `id`, counted as evicted; whether it was idle.
    pub(crate) fn evict_idle(&self, id: u64) -> bool {
        self.shared
            .with_state(|state, after| state.evict_idle(id, after))
    }

    /// Destroys every idle object now, and every checked-out object when it comes back.
    /// Objects created afterwards are kept as usual.
    pub fn evict_all(&self) {
        self.shared
            .with_state(|state, after| state.evicted_all(after));
    }

    /// Closes the pool: no new checkouts, waiting callers get [`PoolError::Closed`], idle
    /// objects are destroyed now and checked-out ones when they come back. Idempotent.
    pub fn close(&self) {
        self.shared.close();
    }

    /// Whether the pool is closed.
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }

    /// Closes the pool, waits up to `grace` for checked-out objects to come back and for
    /// every `destroy` to finish, and reports what was still out or still being destroyed.
    ///
    /// A hung `destroy` cannot hang shutdown: it returns once `grace` has passed.
    pub async fn shutdown(&self, grace: Duration) -> ShutdownReport {
        self.close();
        drain(&self.shared, grace).await
    }
}

impl<M: Manager> Clone for Pool<M> {
    fn clone(&self) -> Self {
        self.shared.handles.fetch_add(1, Ordering::Relaxed);
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<M: Manager> Drop for Pool<M> {
    fn drop(&mut self) {
        if self.shared.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.close();
        }
    }
}

impl<M: Manager> fmt::Debug for Pool<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("name", &self.name())
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

/// Waits until a closed pool has nothing out and nothing being destroyed, or `grace` ends.
async fn drain<M: Manager>(shared: &Arc<Shared<M>>, grace: Duration) -> ShutdownReport {
    let deadline = crate::deadline::after(Instant::now(), grace);
    loop {
        // Registered before reading, so a change in between still wakes us.
        let mut changed = pin!(shared.changed.notified());
        changed.as_mut().enable();
        let report = shared.lock().shutdown_report();
        if report.is_clean() || Instant::now() >= deadline {
            return report;
        }
        let _ = tokio::time::timeout_at(deadline, changed).await;
    }
}
