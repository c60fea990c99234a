//! Background maintenance: keeps `min_idle` objects ready, retires idle objects past
//! `idle_timeout` or their lifetime, health-checks idle objects every
//! `health_check_interval`, and reports objects held past `leak_threshold`.
//!
//! One task per pool, started only when a setting needs it. Between passes it holds only a
//! `Weak` to the pool and sleeps until the next deadline or a signal (a destroyed object
//! to replace, a new object, the pool closing), so it ends with the pool. Every hook it
//! calls is bounded, and a panic in one counts as a failure of that hook.

use std::future::{Future, poll_fn};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::task::Poll;

use tokio::runtime::Handle;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::deadline;
use crate::entry::Entry;
use crate::error_chain::ErrorChain;
use crate::guards::Readying;
use crate::leak;
use crate::manager::Manager;
use crate::metrics::DestroyReason;
use crate::shared::Shared;

impl<M: Manager> Shared<M> {
    /// Remembers the first runtime seen (for work started outside any runtime, such as a
    /// drop on a plain thread), and (re)starts maintenance on the current runtime if a
    /// setting needs it and no task runs (none yet, or its runtime shut down).
    #[inline]
    pub(crate) fn adopt_runtime(self: &Arc<Self>) {
        let maintenance_missing =
            self.wants_maintenance && !self.maintenance_running.load(Ordering::Acquire);
        if self.runtime.get().is_none() || maintenance_missing {
            self.adopt_current_runtime();
        }
    }

    #[cold]
    fn adopt_current_runtime(self: &Arc<Self>) {
        let Ok(handle) = Handle::try_current() else {
            return;
        };
        let _ = self.runtime.set(handle.clone());
        if self.wants_maintenance && !self.maintenance_running.swap(true, Ordering::AcqRel) {
            handle.spawn(run(
                Arc::downgrade(self),
                Arc::clone(&self.maintenance_signal),
                Arc::clone(&self.maintenance_running),
            ));
        }
    }
}

/// The maintenance task's loop; ends when the pool is closed or gone.
///
/// `running` is cleared if the task is dropped before that (its runtime shut down), so
/// the next `get` starts maintenance again on its own runtime.
async fn run<M: Manager>(pool: Weak<Shared<M>>, signal: Arc<Notify>, running: Arc<AtomicBool>) {
    let mut task = Running {
        flag: running,
        ended_normally: false,
    };
    loop {
        let wake_at = {
            let Some(shared) = pool.upgrade() else {
                task.ended_normally = true;
                return;
            };
            match shared.maintain().await {
                Some(wake_at) => wake_at,
                None => {
                    task.ended_normally = true;
                    return;
                }
            }
        };
        // A signal sent during the pass left a permit, so nothing is missed here.
        match wake_at {
            Some(at) => {
                let _ = tokio::time::timeout_at(at, signal.notified()).await;
            }
            None => signal.notified().await,
        }
    }
}

/// Clears the "maintenance running" flag unless the task ended because the pool did.
struct Running {
    flag: Arc<AtomicBool>,
    ended_normally: bool,
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.ended_normally {
            self.flag.store(false, Ordering::Release);
        }
    }
}

impl<M: Manager> Shared<M> {
    /// One pass. Returns when to look again (`None` inside: only when signalled), or `None`
    /// once the pool is closed.
    async fn maintain(self: &Arc<Self>) -> Option<Option<Instant>> {
        let now = Instant::now();
        let plan =
            self.with_state(|state, after| state.maintenance_pass(&self.config, now, after))?;
        for report in &plan.leaks {
            leak::report_held(&self.name, report);
        }
        for _ in 0..plan.refills {
            self.spawn_refill(plan.epoch);
        }
        // One object at a time: the others stay available to callers meanwhile, and if
        // this task is dropped mid-check only the object in hand is at stake (its guard
        // destroys it).
        while let Some(entry) = self.take_one_due_check(Instant::now()) {
            self.check_in_background(entry).await;
        }
        let now = Instant::now();
        Some(self.lock().next_wake(&self.config, now))
    }

    /// Takes one idle object whose background health check is due off the idle list.
    fn take_one_due_check(&self, now: Instant) -> Option<Box<Entry<M::Object>>> {
        self.config.health_check_interval?;
        self.lock().take_due_check(now)
    }

    /// Health-checks one idle object off every caller's path; it goes back (to a waiter
    /// first) if it passes and is destroyed if it fails, times out or panics.
    async fn check_in_background(self: &Arc<Self>, entry: Box<Entry<M::Object>>) {
        let mut readying = Readying::for_background_check(self, entry);
        let Some(entry) = readying.entry_mut() else {
            return;
        };
        let check = self.manager.health_check(&mut entry.object, &entry.meta);
        let bounded = tokio::time::timeout(self.background_bound(), check);
        match catch_panic(bounded).await {
            Some(Ok(Ok(()))) => {
                entry.next_check = self
                    .config
                    .health_check_interval
                    .map(|interval| deadline::after(Instant::now(), interval));
                if let Some(entry) = readying.release() {
                    self.with_state(|state, after| state.check_passed(entry, after));
                }
            }
            outcome => {
                match outcome {
                    Some(Ok(Err(error))) => {
                        tracing::warn!(target: "pool_core", pool = %self.name, error = %ErrorChain(&error), "background health check failed");
                    }
                    Some(Err(_)) => {
                        tracing::warn!(target: "pool_core", pool = %self.name, "background health check timed out");
                    }
                    _ => {
                        tracing::warn!(target: "pool_core", pool = %self.name, "background health check panicked")
                    }
                }
                readying.reject(DestroyReason::HealthCheckFailed);
            }
        }
    }

    /// Creates one object for `min_idle` in a slot `plan_refill` reserved.
    fn spawn_refill(self: &Arc<Self>, epoch: u64) {
        let slot = RefillSlot {
            shared: Some(Arc::clone(self)),
            epoch,
        };
        match self.runtime() {
            Some(runtime) => drop(runtime.spawn(slot.fill())),
            None => drop(slot), // gives the slot back
        }
    }
}

/// A slot reserved for a `min_idle` create; given back if the task is dropped unfinished.
struct RefillSlot<M: Manager> {
    shared: Option<Arc<Shared<M>>>,
    /// The eviction epoch when the refill was planned.
    epoch: u64,
}

impl<M: Manager> RefillSlot<M> {
    async fn fill(mut self) {
        let Some(shared) = self.shared.clone() else {
            return;
        };
        let bound = shared
            .config
            .create_timeout
            .unwrap_or_else(|| shared.background_bound());
        let outcome = catch_panic(tokio::time::timeout(bound, shared.manager.create())).await;
        self.shared = None; // settled below
        let now = Instant::now();
        let config = &shared.config;
        match outcome {
            Some(Ok(Ok(object))) => shared.with_state(|state, after| {
                state.refill_created(config, object, now, self.epoch, after);
            }),
            Some(Ok(Err(error))) => {
                tracing::warn!(target: "pool_core", pool = %shared.name, error = %ErrorChain(&error), "create for min_idle failed");
                let error = Some(Arc::new(error));
                shared.with_state(|state, after| state.refill_failed(error, now, after));
            }
            failed => {
                match failed {
                    Some(_) => {
                        tracing::warn!(target: "pool_core", pool = %shared.name, ?bound, "create for min_idle timed out");
                    }
                    None => {
                        tracing::warn!(target: "pool_core", pool = %shared.name, "create for min_idle panicked")
                    }
                }
                shared.with_state(|state, after| state.refill_failed(None, now, after));
            }
        }
    }
}

impl<M: Manager> Drop for RefillSlot<M> {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.take() {
            shared.with_state(|state, after| state.refill_abandoned(after));
        }
    }
}

/// Runs `future`, turning a panic into `None`: a background hook that panics has failed.
async fn catch_panic<F: Future>(future: F) -> Option<F::Output> {
    let mut future = pin!(future);
    poll_fn(
        |cx| match catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx))) {
            Ok(Poll::Ready(output)) => Poll::Ready(Some(output)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(_) => Poll::Ready(None),
        },
    )
    .await
}
