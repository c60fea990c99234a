//! The first step of a `get`: take an idle object, reserve a slot, or queue and wait.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use crate::acquire::{Found, Mode};
use crate::error::PoolError;
use crate::manager::Manager;
use crate::metrics::DestroyReason;
use crate::shared::Shared;
use crate::state::AfterUnlock;
use crate::waiters::{Grant, WaiterKey};

/// The first step of a `get`, done in one lock: take an idle object, reserve a slot, or
/// queue; then, if queued, wait for a grant.
pub(crate) struct FindOrQueue<'a, M: Manager> {
    shared: &'a Arc<Shared<M>>,
    mode: Mode,
    /// Set once queued, with when the wait began.
    waiting: Option<(WaiterKey, Instant)>,
}

impl<'a, M: Manager> FindOrQueue<'a, M> {
    pub(crate) fn new(shared: &'a Arc<Shared<M>>, mode: Mode) -> Self {
        Self {
            shared,
            mode,
            waiting: None,
        }
    }
}

impl<M: Manager> Future for FindOrQueue<'_, M> {
    type Output = Result<Found<M::Object>, PoolError<M::Error>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let shared = self.shared;
        // A queued waiter is only woken by a grant, so reading the clock for its wait time
        // before locking is almost never wasted, and keeps the read out of the lock.
        let now = self.waiting.map(|_| Instant::now());
        let mut state = shared.lock();
        let Some((key, since)) = self.waiting else {
            if state.closed {
                return Poll::Ready(Err(PoolError::Closed));
            }
            if let Some(entry) = state.pop_idle(shared.config.queue_mode) {
                // `min_idle` is what stays ready beside what is in use: top it up.
                let below_min_idle = state.idle.len() < state.min_idle;
                drop(state);
                if below_min_idle {
                    shared.maintenance_signal.notify_one();
                }
                return Poll::Ready(Ok(Found::Idle(entry)));
            }
            if state.try_reserve_create(self.mode != Mode::Try) {
                return Poll::Ready(Ok(Found::CreateSlot));
            }
            let queue_full = shared
                .config
                .max_waiting
                .is_some_and(|max| state.waiters.len() >= max);
            if self.mode == Mode::Try || queue_full {
                return Poll::Ready(Err(PoolError::Exhausted));
            }
            state.metrics.waits += 1;
            let key = state.waiters.push(cx.waker().clone());
            drop(state);
            self.waiting = Some((key, Instant::now()));
            return Poll::Pending;
        };
        let Some(grant) = state.waiters.poll_grant(key, cx.waker()) else {
            return Poll::Pending;
        };
        self.waiting = None;
        state.metrics.wait_time += now.map_or(Duration::ZERO, |now| now - since);
        let found = match grant {
            // Granted before the pool closed, collected after: closed wins.
            Grant::Object(entry) if state.closed => {
                let mut after = AfterUnlock::new();
                state.retire(entry.object, DestroyReason::Closed, &mut after);
                drop(state);
                shared.finish(after);
                Err(PoolError::Closed)
            }
            Grant::Object(entry) => Ok(Found::Idle(entry)),
            Grant::CreateSlot if state.closed => {
                let mut after = AfterUnlock::new();
                state.abandon_create(&mut after);
                drop(state);
                shared.finish(after);
                Err(PoolError::Closed)
            }
            Grant::CreateSlot => Ok(Found::CreateSlot),
            Grant::Closed => Err(PoolError::Closed),
        };
        Poll::Ready(found)
    }
}

impl<M: Manager> Drop for FindOrQueue<'_, M> {
    #[inline]
    fn drop(&mut self) {
        if let Some((key, since)) = self.waiting.take() {
            self.give_up(key, since);
        }
    }
}

impl<M: Manager> FindOrQueue<'_, M> {
    /// Leaves the queue (cancelled or timed out), passing on anything granted meanwhile.
    #[cold]
    fn give_up(&mut self, key: WaiterKey, since: Instant) {
        let waited = Instant::now() - since;
        let mut after = AfterUnlock::new();
        {
            let mut state = self.shared.lock();
            // A caller that gave up (timed out, cancelled) waited too.
            state.metrics.wait_time += waited;
            if let Some(grant) = state.waiters.cancel(key) {
                state.regrant(grant, &mut after);
            }
        }
        self.shared.finish(after);
    }
}
