//! Counters of what a pool has done since it was built.

use std::time::Duration;

/// Counters since the pool was built, as a snapshot from [`Pool::metrics`](crate::Pool::metrics).
///
/// Counters only grow. Taken with no activity in between, a `Metrics` and a
/// [`Status`](crate::Status) balance: `created == destroyed + taken + (size - creating)` (a
/// create in flight holds a slot but has made nothing yet); an object counts as destroyed as
/// soon as its `destroy` starts.
///
/// # Example
///
/// ```
/// # use pool_core::{Manager, Pool};
/// # struct M;
/// # impl Manager for M {
/// #     type Object = ();
/// #     type Error = std::convert::Infallible;
/// #     async fn create(&self) -> Result<(), Self::Error> { Ok(()) }
/// # }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let pool = Pool::builder(M).build().unwrap();
/// drop(pool.get().await.unwrap());
/// drop(pool.get().await.unwrap());
/// let metrics = pool.metrics();
/// assert_eq!((metrics.created, metrics.recycled), (1, 1));
/// # }
/// ```
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Metrics {
    /// Objects created.
    pub created: u64,
    /// Objects destroyed, for any reason (the sum of `destroyed_by`).
    pub destroyed: u64,
    /// Objects given away for good with [`Object::take`](crate::Object::take).
    pub taken: u64,
    /// Idle objects handed out again after a successful
    /// [`Manager::recycle`](crate::Manager::recycle).
    pub recycled: u64,
    /// Recycles that failed or timed out.
    pub recycle_failures: u64,
    /// Health checks that failed or timed out.
    pub health_check_failures: u64,
    /// Creates that failed or timed out.
    pub create_failures: u64,
    /// `get` calls that ended in [`PoolError::Timeout`](crate::PoolError::Timeout).
    pub timeouts: u64,
    /// Times a caller queued for an object (a `get` whose create failed may queue again).
    pub waits: u64,
    /// Total time callers spent queued.
    #[cfg_attr(feature = "serde", serde(with = "crate::serde_duration::exact"))]
    pub wait_time: Duration,
    /// Objects reported as held past `leak_threshold`.
    pub leaks: u64,
    /// `destroyed` broken down by reason.
    pub destroyed_by: DestroyedBy,
}

/// Destroyed objects by the reason they were destroyed.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct DestroyedBy {
    /// [`Manager::is_broken`](crate::Manager::is_broken) said so (or panicked), or the
    /// object was dropped while its thread panicked.
    pub broken: u64,
    /// [`Manager::recycle`](crate::Manager::recycle) failed or timed out.
    pub recycle_failed: u64,
    /// [`Manager::health_check`](crate::Manager::health_check) failed or timed out.
    pub health_check_failed: u64,
    /// Idle for longer than `idle_timeout`.
    pub idle_timeout: u64,
    /// Lived longer than its `max_lifetime`.
    pub lifetime: u64,
    /// Handed out `max_uses` times.
    pub max_uses: u64,
    /// Removed by [`Pool::evict_all`](crate::Pool::evict_all) or by shrinking the pool.
    pub evicted: u64,
    /// The pool was closed.
    pub closed: u64,
    /// Refused by the predicate of [`Pool::retain`](crate::Pool::retain).
    pub retained_out: u64,
    /// A `get` was cancelled, panicked or ran out of time while recycling or checking the
    /// object, so it could not be trusted.
    pub abandoned: u64,
}

/// Why an object is being destroyed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DestroyReason {
    Broken,
    RecycleFailed,
    HealthCheckFailed,
    IdleTimeout,
    Lifetime,
    MaxUses,
    Evicted,
    Closed,
    RetainedOut,
    Abandoned,
}

impl Metrics {
    /// Adds `other`'s counters to these (a keyed pool's totals).
    pub(crate) fn add(&mut self, other: &Metrics) {
        self.created += other.created;
        self.destroyed += other.destroyed;
        self.taken += other.taken;
        self.recycled += other.recycled;
        self.recycle_failures += other.recycle_failures;
        self.health_check_failures += other.health_check_failures;
        self.create_failures += other.create_failures;
        self.timeouts += other.timeouts;
        self.waits += other.waits;
        self.wait_time += other.wait_time;
        self.leaks += other.leaks;
        let (mine, theirs) = (&mut self.destroyed_by, &other.destroyed_by);
        mine.broken += theirs.broken;
        mine.recycle_failed += theirs.recycle_failed;
        mine.health_check_failed += theirs.health_check_failed;
        mine.idle_timeout += theirs.idle_timeout;
        mine.lifetime += theirs.lifetime;
        mine.max_uses += theirs.max_uses;
        mine.evicted += theirs.evicted;
        mine.closed += theirs.closed;
        mine.retained_out += theirs.retained_out;
        mine.abandoned += theirs.abandoned;
    }
}

impl DestroyedBy {
    pub(crate) fn count(&mut self, reason: DestroyReason) {
        let counter = match reason {
            DestroyReason::Broken => &mut self.broken,
            DestroyReason::RecycleFailed => &mut self.recycle_failed,
            DestroyReason::HealthCheckFailed => &mut self.health_check_failed,
            DestroyReason::IdleTimeout => &mut self.idle_timeout,
            DestroyReason::Lifetime => &mut self.lifetime,
            DestroyReason::MaxUses => &mut self.max_uses,
            DestroyReason::Evicted => &mut self.evicted,
            DestroyReason::Closed => &mut self.closed,
            DestroyReason::RetainedOut => &mut self.retained_out,
            DestroyReason::Abandoned => &mut self.abandoned,
        };
        *counter += 1;
    }

    pub(crate) fn total(&self) -> u64 {
        self.broken
            + self.recycle_failed
            + self.health_check_failed
            + self.idle_timeout
            + self.lifetime
            + self.max_uses
            + self.evicted
            + self.closed
            + self.retained_out
            + self.abandoned
    }
}
