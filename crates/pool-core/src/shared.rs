//! The state every handle, guard and background task of one pool shares.

use std::panic::{AssertUnwindSafe, Location, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::{Mutex, MutexGuard};
use tokio::runtime::Handle;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::cache_padded::CachePadded;
use crate::config::PoolConfig;
use crate::entry::Entry;
use crate::leak;
use crate::manager::Manager;
use crate::metrics::DestroyReason;
use crate::state::{AfterUnlock, State};
use crate::striped::StripedCounters;

/// How long a background hook may run when `recycle_timeout` is unset.
const DEFAULT_BACKGROUND_BOUND: Duration = Duration::from_secs(30);

pub(crate) type PoolState<M> = State<<M as Manager>::Object, <M as Manager>::Error>;

/// Which of `Shared::counts` counts what.
const RECYCLED: usize = 0;
const WAIT_NANOS: usize = 1;

/// Aligned so that the `Arc`'s reference counts, which every lent object bumps, sit on a
/// line of their own before the fields.
#[repr(align(128))]
pub(crate) struct Shared<M: Manager> {
    pub(crate) manager: M,
    pub(crate) config: PoolConfig,
    /// The pool's name, on every event it logs.
    pub(crate) name: Arc<str>,
    /// Padded, so the lock and the state every `get` writes do not share a line with the
    /// configuration every `get` only reads.
    state: CachePadded<Mutex<PoolState<M>>>,
    /// The runtime background work runs on: the one present at build, else the first
    /// `get`'s.
    pub(crate) runtime: OnceLock<Handle>,
    /// Live `Pool` handles; the last one dropped closes the pool.
    pub(crate) handles: AtomicUsize,
    /// Counted where they happen, outside the lock: successful recycles (`RECYCLED`) and
    /// `Metrics::wait_time` in nanoseconds (`WAIT_NANOS`; a waiter takes its grant without
    /// the lock, so it counts its wait outside it too).
    counts: StripedCounters<2>,
    /// Set (under the lock) when the pool closes, for a waiter that took its grant without
    /// the lock: closed wins over what it was granted.
    closed: AtomicBool,
    /// Signalled when objects come back, creates end or destroys finish: what `shutdown`
    /// and a filling build wait for.
    pub(crate) changed: Notify,
    /// Wakes the maintenance task; shared with it so the task needs no strong reference.
    pub(crate) maintenance_signal: Arc<Notify>,
    /// Whether a setting needs maintenance.
    pub(crate) wants_maintenance: bool,
    /// Set while a maintenance task runs; cleared if its runtime drops it.
    pub(crate) maintenance_running: Arc<AtomicBool>,
    stamps_last_used: bool,
    reads_clock_on_return: bool,
}

impl<M: Manager> Shared<M> {
    pub(crate) fn new(manager: M, config: PoolConfig, name: Arc<str>) -> Self {
        let stamps_last_used = config.tracks_last_used();
        let state = State::new(&config, name.clone());
        Self {
            name,
            state: CachePadded(Mutex::new(state)),
            runtime: OnceLock::new(),
            handles: AtomicUsize::new(1),
            counts: StripedCounters::new(),
            closed: AtomicBool::new(false),
            changed: Notify::new(),
            maintenance_signal: Arc::new(Notify::new()),
            wants_maintenance: config.needs_maintenance(),
            maintenance_running: Arc::new(AtomicBool::new(false)),
            stamps_last_used,
            reads_clock_on_return: stamps_last_used
                || config.max_lifetime.is_some()
                || config.leak_threshold.is_some(),
            manager,
            config,
        }
    }

    /// Locks the state. The lock is `parking_lot`'s, which spins a little and then parks,
    /// and does not poison: measured against `std::sync::Mutex` (`contended_loop` A/B,
    /// see docs/benchmarks.md) it is faster both uncontended and with two cores taking
    /// turns. No user code runs under it, so a panic cannot leave the state half-updated.
    pub(crate) fn lock(&self) -> MutexGuard<'_, PoolState<M>> {
        self.state.0.lock()
    }

    /// One lock section: locks, lets `act` change the state (through its event methods),
    /// unlocks, then does what `act` left for after unlocking.
    pub(crate) fn with_state<R>(
        self: &Arc<Self>,
        act: impl FnOnce(&mut PoolState<M>, &mut AfterUnlock<M::Object>) -> R,
    ) -> R {
        let mut after = AfterUnlock::new();
        let result = act(&mut self.lock(), &mut after);
        self.finish(after);
        result
    }

    /// Runs what had to wait for the lock to be released.
    pub(crate) fn finish(self: &Arc<Self>, after: AfterUnlock<M::Object>) {
        if let Some(waker) = after.wake {
            waker.wake();
        }
        for waker in after.more_wakes {
            waker.wake();
        }
        for (object, reason) in after.destroy {
            tracing::debug!(target: "pool_core", pool = %self.name, ?reason, "destroying object");
            self.spawn_destroy(object);
        }
        if let Some((delay, number, failures)) = after.backoff_delay {
            // The failure itself was logged (one WARN) where it happened.
            tracing::debug!(
                target: "pool_core",
                pool = %self.name,
                ?delay,
                consecutive_failures = failures,
                "creates paused before the next probe"
            );
            self.spawn_backoff_timer(delay, number);
        }
        if after.changed {
            self.changed.notify_waiters();
        }
        if after.wake_maintenance {
            self.maintenance_signal.notify_one();
        }
    }

    /// Where background work (destroys, backoff timers, refills) is spawned: the current
    /// runtime, which is alive since we run on it, else the one adopted earlier.
    pub(crate) fn runtime(&self) -> Option<Handle> {
        Handle::try_current()
            .ok()
            .or_else(|| self.runtime.get().cloned())
    }

    /// How long a hook run off any caller's path may take.
    pub(crate) fn background_bound(&self) -> Duration {
        self.config
            .recycle_timeout
            .unwrap_or(DEFAULT_BACKGROUND_BOUND)
    }

    /// Runs `destroy` in a task of its own, bounded, so no caller ever waits for it.
    fn spawn_destroy(self: &Arc<Self>, object: M::Object) {
        // Counts the destroy as finished when dropped: after the hook, or if the hook
        // panics, or if the task is dropped unpolled (runtime shutting down).
        let done = DestroyDone(Arc::clone(self));
        let Some(runtime) = self.runtime() else {
            drop(object);
            return;
        };
        let bound = self.background_bound();
        runtime.spawn(async move {
            let shared = &done.0;
            if tokio::time::timeout(bound, shared.manager.destroy(object))
                .await
                .is_err()
            {
                tracing::warn!(target: "pool_core", pool = %shared.name, ?bound, "destroy timed out; object dropped");
            }
            drop(done);
        });
    }

    /// Ends a backoff delay after `delay`, on the pool's runtime.
    fn spawn_backoff_timer(self: &Arc<Self>, delay: Duration, number: u64) {
        let Some(runtime) = self.runtime() else {
            self.backoff_elapsed(number);
            return;
        };
        let pool = Arc::downgrade(self);
        runtime.spawn(async move {
            tokio::time::sleep(delay).await;
            if let Some(shared) = pool.upgrade() {
                shared.backoff_elapsed(number);
            }
        });
    }

    fn backoff_elapsed(self: &Arc<Self>, number: u64) {
        self.with_state(|state, after| state.backoff_elapsed(number, after));
    }

    /// Records who holds object `id` since now, for `leak_threshold`.
    #[cold]
    pub(crate) fn record_loan(&self, id: u64, caller: &'static Location<'static>) {
        let now = Instant::now();
        self.lock().lent(id, now, caller);
    }

    /// Takes back an object from its guard: to a waiter, to the idle list, or destroyed.
    #[inline]
    pub(crate) fn return_object(self: &Arc<Self>, mut entry: Box<Entry<M::Object>>) {
        let mut now = None;
        // A half-used object (its thread is panicking) is not trusted; a panicking
        // `is_broken` counts as broken.
        let verdict = if std::thread::panicking()
            || catch_unwind(AssertUnwindSafe(|| self.manager.is_broken(&entry.object)))
                .unwrap_or(true)
        {
            Some(DestroyReason::Broken)
        } else if entry
            .max_uses
            .is_some_and(|max| entry.meta.times_used >= max)
        {
            Some(DestroyReason::MaxUses)
        } else if self.reads_clock_on_return {
            let read = *now.insert(Instant::now());
            if entry.is_expired(read) {
                Some(DestroyReason::Lifetime)
            } else {
                if self.stamps_last_used {
                    entry.meta.last_used = read;
                }
                None
            }
        } else {
            None
        };
        let loan_end = self
            .config
            .leak_threshold
            .map(|_| now.unwrap_or_else(Instant::now));
        let mut state = self.lock();
        if verdict.is_none() && loan_end.is_none() {
            // The common case: back on the idle list, nothing to wake or destroy.
            match state.keep_idle(entry) {
                Ok(()) => return,
                Err(back) => entry = back,
            }
        }
        self.return_slowly(state, entry, verdict, loan_end);
    }

    /// The rest of a return, under the same lock: a waiter to serve, an object to
    /// destroy, or a loan to end.
    #[inline(never)]
    fn return_slowly(
        self: &Arc<Self>,
        mut state: MutexGuard<'_, PoolState<M>>,
        entry: Box<Entry<M::Object>>,
        verdict: Option<DestroyReason>,
        loan_end: Option<Instant>,
    ) {
        let mut after = AfterUnlock::new();
        let came_back = state.returned(entry, verdict, loan_end, &mut after);
        drop(state);
        if let Some(report) = came_back {
            leak::report_returned(&self.name, &report);
        }
        self.finish(after);
    }

    /// Frees the slot of an object given away with `Object::take`.
    pub(crate) fn object_taken(self: &Arc<Self>, id: u64) {
        let loan_end = self.config.leak_threshold.map(|_| Instant::now());
        self.with_state(|state, after| state.taken(id, loan_end, after));
    }

    /// Counters since build, as one snapshot.
    pub(crate) fn metrics(&self) -> crate::metrics::Metrics {
        let mut metrics = self.lock().metrics();
        metrics.recycled = self.counts.sum(RECYCLED);
        metrics.wait_time = Duration::from_nanos(self.counts.sum(WAIT_NANOS));
        metrics
    }

    /// Counts a successful recycle.
    pub(crate) fn recycled(&self) {
        self.counts.add(RECYCLED, 1);
    }

    /// Counts time a caller spent queued (until granted, or until it gave up).
    pub(crate) fn waited(&self, time: Duration) {
        let nanos = u64::try_from(time.as_nanos()).unwrap_or(u64::MAX);
        self.counts.add(WAIT_NANOS, nanos);
    }

    /// Whether the pool has closed, read without the lock: exact for a waiter that took its
    /// grant after `close` released the lock.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    pub(crate) fn close(self: &Arc<Self>) {
        self.with_state(|state, after| {
            self.closed.store(true, Ordering::Release);
            state.close(after);
        });
    }
}

struct DestroyDone<M: Manager>(Arc<Shared<M>>);

impl<M: Manager> Drop for DestroyDone<M> {
    fn drop(&mut self) {
        self.0
            .with_state(|state, after| state.destroy_finished(after));
    }
}
