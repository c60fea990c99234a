//! The first step of a `get`: take an idle object, reserve a slot, or queue and wait.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::time::Instant;

use crate::entry::Entry;
use crate::error::PoolError;
use crate::manager::Manager;
use crate::shared::Shared;
use crate::state::{Collected, FirstLook};
use crate::waiters::WaiterKey;

/// Whether a caller may queue behind others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Wait,
    Try,
}

/// What the first step found.
pub(crate) enum Found<T> {
    Idle(Box<Entry<T>>),
    /// A slot reserved for this caller to create in.
    CreateSlot,
    /// Nothing can come before the caller's deadline (see `FirstLook::TooLate`).
    TooLate,
}

/// The first step of a `get`, done in one lock: take an idle object, reserve a slot, or
/// queue; then, if queued, wait for a grant.
pub(crate) struct FindOrQueue<'a, M: Manager> {
    shared: &'a Arc<Shared<M>>,
    mode: Mode,
    /// The caller's deadline.
    deadline: Option<Instant>,
    /// Set once queued, with when the wait began.
    waiting: Option<(WaiterKey, Instant)>,
}

impl<'a, M: Manager> FindOrQueue<'a, M> {
    pub(crate) fn new(shared: &'a Arc<Shared<M>>, mode: Mode, deadline: Option<Instant>) -> Self {
        Self {
            shared,
            mode,
            deadline,
            waiting: None,
        }
    }
}

impl<M: Manager> Future for FindOrQueue<'_, M> {
    type Output = Result<Found<M::Object>, PoolError<M::Error>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let shared = self.shared;
        let Some((key, since)) = self.waiting else {
            let mut state = shared.lock();
            if let Some((entry, below_min_idle)) = state.look_idle(&shared.config) {
                drop(state);
                if below_min_idle {
                    shared.maintenance_signal.notify_one();
                }
                return Poll::Ready(Ok(Found::Idle(entry)));
            }
            let may_wait = self.mode == Mode::Wait;
            let look = state.look_further(may_wait, self.deadline, &shared.config, cx.waker());
            drop(state);
            return match look {
                FirstLook::CreateSlot => Poll::Ready(Ok(Found::CreateSlot)),
                FirstLook::Queued(key) => {
                    self.waiting = Some((key, Instant::now()));
                    Poll::Pending
                }
                FirstLook::Closed => Poll::Ready(Err(PoolError::Closed)),
                FirstLook::Exhausted => Poll::Ready(Err(PoolError::Exhausted)),
                FirstLook::TooLate => Poll::Ready(Ok(Found::TooLate)),
            };
        };
        // A queued waiter is only woken by a grant, so reading the clock for its wait time
        // before locking is almost never wasted, and keeps the read out of the lock.
        let waited = Instant::now() - since;
        let collected =
            shared.with_state(|state, after| state.collect(key, cx.waker(), waited, after));
        let Some(collected) = collected else {
            return Poll::Pending;
        };
        let found = match collected {
            Collected::Object(entry) => Ok(Found::Idle(entry)),
            Collected::CreateSlot => Ok(Found::CreateSlot),
            Collected::Closed => Err(PoolError::Closed),
        };
        self.waiting = None;
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
        // A caller that gave up (timed out, cancelled) waited too.
        let waited = Instant::now() - since;
        self.shared
            .with_state(|state, after| state.give_up(key, waited, after));
    }
}
