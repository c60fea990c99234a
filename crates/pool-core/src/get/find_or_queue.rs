//! The first step of a `get`: take an idle object, reserve a slot, or queue and wait.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tokio::time::Instant;

use crate::entry::Entry;
use crate::error::PoolError;
use crate::manager::Manager;
use crate::shared::Shared;
use crate::state::FirstLook;
use crate::waiters::{Grant, Waiter};

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

pin_project! {
    /// The first step of a `get`, done in one lock: take an idle object, reserve a slot, or
    /// queue; then, if queued, wait for a grant, which is taken without the lock.
    pub(crate) struct FindOrQueue<'a, M: Manager> {
        shared: &'a Arc<Shared<M>>,
        mode: Mode,
        // The caller's deadline.
        deadline: Option<Instant>,
        // Set once queued: when the wait began.
        since: Option<Instant>,
        // The caller's place in line, made once it found nothing idle, and linked into the
        // pool's queue while it waits.
        #[pin]
        waiter: Option<Waiter<M::Object>>,
    }

    impl<'a, M: Manager> PinnedDrop for FindOrQueue<'a, M> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(waiter) = this.waiter.as_pin_mut() {
                if waiter.is_waiting() {
                    give_up(this.shared, waiter, *this.since);
                }
            }
        }
    }
}

impl<'a, M: Manager> FindOrQueue<'a, M> {
    pub(crate) fn new(shared: &'a Arc<Shared<M>>, mode: Mode, deadline: Option<Instant>) -> Self {
        Self {
            shared,
            mode,
            deadline,
            since: None,
            waiter: None,
        }
    }
}

impl<M: Manager> Future for FindOrQueue<'_, M> {
    type Output = Result<Found<M::Object>, PoolError<M::Error>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let shared = *this.shared;
        let queued = (*this.since).zip(this.waiter.as_mut().as_pin_mut());
        let Some((since, mut waiter)) = queued else {
            let mut state = shared.lock();
            if let Some((entry, below_min_idle)) = state.look_idle(&shared.config) {
                drop(state);
                if below_min_idle {
                    shared.maintenance_signal.notify_one();
                }
                return Poll::Ready(Ok(Found::Idle(entry)));
            }
            let may_wait = *this.mode == Mode::Wait;
            let look = state.look_further(
                may_wait,
                *this.deadline,
                &shared.config,
                Waiter::place(this.waiter.as_mut()),
                cx.waker(),
            );
            drop(state);
            return match look {
                FirstLook::CreateSlot => Poll::Ready(Ok(Found::CreateSlot)),
                FirstLook::Queued => {
                    *this.since = Some(Instant::now());
                    Poll::Pending
                }
                FirstLook::Closed => Poll::Ready(Err(PoolError::Closed)),
                FirstLook::Exhausted => Poll::Ready(Err(PoolError::Exhausted)),
                FirstLook::TooLate => Poll::Ready(Ok(Found::TooLate)),
            };
        };
        // A waiter is woken by its grant, so it almost always finds it without the lock;
        // woken otherwise (a timer, a `select!`), it looks under the lock, which also
        // remembers the new waker.
        let grant = match waiter.as_mut().try_take() {
            Some(grant) => grant,
            None => match shared.lock().poll_grant(waiter, cx.waker()) {
                Some(grant) => grant,
                None => return Poll::Pending,
            },
        };
        *this.since = None;
        shared.waited(Instant::now() - since);
        Poll::Ready(match grant {
            Grant::Closed => Err(PoolError::Closed),
            // Closed wins over an object or a slot granted before `close`: passed on (the
            // object destroyed, the slot freed).
            grant if shared.is_closed() => {
                shared.with_state(|state, after| state.regrant(grant, after));
                Err(PoolError::Closed)
            }
            Grant::Object(entry) => Ok(Found::Idle(entry)),
            Grant::CreateSlot => Ok(Found::CreateSlot),
        })
    }
}

/// Leaves the queue (cancelled or timed out), passing on anything granted meanwhile.
#[cold]
fn give_up<M: Manager>(
    shared: &Arc<Shared<M>>,
    waiter: Pin<&mut Waiter<M::Object>>,
    since: Option<Instant>,
) {
    // Out of the queue first: nothing may stand between a queued node and its unlinking.
    shared.with_state(|state, after| state.give_up(waiter, after));
    // A caller that gave up (timed out, cancelled) waited too.
    if let Some(since) = since {
        shared.waited(Instant::now() - since);
    }
}
