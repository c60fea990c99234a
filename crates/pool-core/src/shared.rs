//! The state every handle, guard and background task of one pool shares.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::config::PoolConfig;
use crate::entry::Entry;
use crate::manager::Manager;
use crate::meta::ObjectMeta;
use crate::metrics::DestroyReason;
use crate::random;
use crate::state::{AfterUnlock, State};

/// How long a background hook may run when `recycle_timeout` is unset.
const DEFAULT_BACKGROUND_BOUND: Duration = Duration::from_secs(30);

/// Each object's lifetime is shortened by up to this fraction.
const LIFETIME_JITTER: f64 = 0.05;

pub(crate) type PoolState<M> = State<<M as Manager>::Object, <M as Manager>::Error>;

pub(crate) struct Shared<M: Manager> {
    pub(crate) manager: M,
    pub(crate) config: PoolConfig,
    state: Mutex<PoolState<M>>,
    /// The runtime `destroy` runs on: the one present at build, else the first `get`'s.
    runtime: OnceLock<Handle>,
    /// Live `Pool` handles; the last one dropped closes the pool.
    pub(crate) handles: AtomicUsize,
    /// `destroy` hooks spawned and not finished.
    destroying: AtomicUsize,
    /// Signalled when a closed pool gets an object back or finishes a destroy.
    pub(crate) drained: Notify,
    stamps_last_used: bool,
    reads_clock_on_return: bool,
}

impl<M: Manager> Shared<M> {
    pub(crate) fn new(manager: M, config: PoolConfig) -> Self {
        let stamps_last_used = config.tracks_last_used();
        Self {
            state: Mutex::new(State::new(config.max_size)),
            runtime: Handle::try_current()
                .map(OnceLock::from)
                .unwrap_or_default(),
            handles: AtomicUsize::new(1),
            destroying: AtomicUsize::new(0),
            drained: Notify::new(),
            stamps_last_used,
            reads_clock_on_return: stamps_last_used || config.max_lifetime.is_some(),
            manager,
            config,
        }
    }

    /// Locks the state. No user code runs under this lock, so a poisoned lock still holds
    /// consistent state and is simply taken over.
    pub(crate) fn lock(&self) -> MutexGuard<'_, PoolState<M>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs what had to wait for the lock to be released.
    pub(crate) fn finish(self: &Arc<Self>, after: AfterUnlock<M::Object>) {
        if let Some(waker) = after.wake {
            waker.wake();
        }
        for waker in after.more_wakes {
            waker.wake();
        }
        for object in after.destroy {
            self.spawn_destroy(object);
        }
        if after.drained {
            self.drained.notify_waiters();
        }
    }

    /// Remembers the caller's runtime for `destroy` when the pool was built outside one.
    pub(crate) fn capture_runtime(&self) {
        if self.runtime.get().is_none() {
            if let Ok(handle) = Handle::try_current() {
                let _ = self.runtime.set(handle);
            }
        }
    }

    /// How long a hook run off any caller's path may take.
    pub(crate) fn background_bound(&self) -> Duration {
        self.config
            .recycle_timeout
            .unwrap_or(DEFAULT_BACKGROUND_BOUND)
    }

    pub(crate) fn destroys_in_flight(&self) -> usize {
        self.destroying.load(Ordering::Acquire)
    }

    /// Runs `destroy` in a task of its own, bounded, so no caller ever waits for it.
    fn spawn_destroy(self: &Arc<Self>, object: M::Object) {
        let runtime = self
            .runtime
            .get()
            .cloned()
            .or_else(|| Handle::try_current().ok());
        let Some(runtime) = runtime else {
            drop(object);
            return;
        };
        self.destroying.fetch_add(1, Ordering::AcqRel);
        // Owned by the task, so it counts the destroy as finished even if the task is
        // dropped unpolled (runtime shutting down) or the hook panics.
        let done = DestroyDone(Arc::clone(self));
        let bound = self.background_bound();
        runtime.spawn(async move {
            let shared = &done.0;
            let _ = tokio::time::timeout(bound, shared.manager.destroy(object)).await;
            drop(done);
        });
    }

    /// Wraps a freshly created object; called with the lock held.
    pub(crate) fn new_entry(
        &self,
        state: &mut PoolState<M>,
        object: M::Object,
        now: Instant,
    ) -> Box<Entry<M::Object>> {
        let id = state.next_id;
        state.next_id += 1;
        let expires_at = self.config.max_lifetime.map(|lifetime| {
            // Shortened, never lengthened: the setting is a promise.
            now + lifetime.mul_f64(1.0 - LIFETIME_JITTER * random::fraction())
        });
        Box::new(Entry {
            object,
            meta: ObjectMeta {
                id,
                created: now,
                last_used: now,
                times_used: 1,
            },
            expires_at,
            epoch: state.epoch,
        })
    }

    /// Takes back an object from its guard: to a waiter, to the idle list, or destroyed.
    pub(crate) fn return_object(self: &Arc<Self>, mut entry: Box<Entry<M::Object>>) {
        // A half-used object (its thread is panicking) is not trusted; a panicking
        // `is_broken` counts as broken.
        let verdict = if std::thread::panicking()
            || catch_unwind(AssertUnwindSafe(|| self.manager.is_broken(&entry.object)))
                .unwrap_or(true)
        {
            Some(DestroyReason::Broken)
        } else if self
            .config
            .max_uses
            .is_some_and(|max| entry.meta.times_used >= max)
        {
            Some(DestroyReason::MaxUses)
        } else if self.reads_clock_on_return {
            let now = Instant::now();
            if entry.is_expired(now) {
                Some(DestroyReason::Lifetime)
            } else {
                if self.stamps_last_used {
                    entry.meta.last_used = now;
                }
                None
            }
        } else {
            None
        };
        let mut state = self.lock();
        let entry = match verdict {
            None => match state.keep_idle(entry) {
                Ok(()) => return, // the common case: nothing to wake, nothing to destroy
                Err(entry) => entry,
            },
            Some(_) => entry,
        };
        let mut after = AfterUnlock::new();
        match verdict {
            Some(reason) => state.retire(entry.object, reason, &mut after),
            None => state.put_back(entry, &mut after),
        }
        drop(state);
        self.finish(after);
    }

    /// Frees the slot of an object given away with `Object::take`.
    pub(crate) fn forget_object(self: &Arc<Self>) {
        let mut after = AfterUnlock::new();
        {
            let mut state = self.lock();
            state.metrics.taken += 1;
            state.release_slot(&mut after);
        }
        self.finish(after);
    }

    pub(crate) fn close(self: &Arc<Self>) {
        let mut after = AfterUnlock::new();
        self.lock().close(&mut after);
        self.finish(after);
    }
}

struct DestroyDone<M: Manager>(Arc<Shared<M>>);

impl<M: Manager> Drop for DestroyDone<M> {
    fn drop(&mut self) {
        self.0.destroying.fetch_sub(1, Ordering::AcqRel);
        self.0.drained.notify_waiters();
    }
}
