//! The path of a `get`: find an idle object, a free slot or a place in the queue, then
//! create or recycle, with every step undone if the caller goes away.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use crate::entry::Entry;
use crate::error::{PoolError, TimeoutKind};
use crate::manager::Manager;
use crate::metrics::DestroyReason;
use crate::object::Object;
use crate::random;
use crate::shared::Shared;
use crate::state::AfterUnlock;
use crate::waiters::{Grant, WaiterKey};

/// Whether a caller may queue behind others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Wait,
    Try,
}

/// What a caller has been through, for the error it gets if its deadline passes.
pub(crate) struct Progress<E> {
    pub(crate) phase: TimeoutKind,
    pub(crate) last_error: Option<Arc<E>>,
}

impl<E> Progress<E> {
    pub(crate) fn new() -> Self {
        Self {
            phase: TimeoutKind::Wait,
            last_error: None,
        }
    }
}

/// What the first step found.
enum Found<T> {
    Idle(Box<Entry<T>>),
    /// A slot reserved for this caller to create in.
    CreateSlot,
}

/// Why a create gave no object.
enum CreateFailure<E> {
    /// The manager's error, for the caller to own.
    Error(E),
    /// The manager's error, already shared with the pool as its latest failure.
    Shared(Arc<E>),
    TimedOut,
    Closed,
}

const FIRST_RETRY_DELAY: Duration = Duration::from_millis(10);
const MAX_RETRY_DELAY: Duration = Duration::from_secs(1);

impl<M: Manager> Shared<M> {
    /// A whole `get`. The common case (an idle object, recycled) runs inline in a small
    /// future; creating and retrying, which are rare and slow anyway, run boxed so their
    /// state does not bloat every `get` future.
    pub(crate) async fn get(
        self: &Arc<Self>,
        timeout: Option<Duration>,
        mode: Mode,
    ) -> Result<Object<M>, PoolError<M::Error>> {
        self.capture_runtime();
        let deadline = timeout.map(|limit| Instant::now() + limit);
        let mut progress = Progress::new();
        loop {
            progress.phase = TimeoutKind::Wait;
            let find = FindOrQueue {
                shared: self,
                mode,
                waiting: None,
            };
            let found = match deadline {
                None => find.await,
                Some(deadline) => match tokio::time::timeout_at(deadline, find).await {
                    Ok(found) => found,
                    Err(_) => return Err(self.timed_out(&mut progress)),
                },
            }?;
            let entry = match found {
                Found::Idle(entry) => entry,
                Found::CreateSlot => {
                    return Box::pin(self.create_then_retry(mode, deadline, progress)).await;
                }
            };
            progress.phase = TimeoutKind::Recycle;
            match self.ready_idle(entry, deadline, &mut progress).await {
                Ready::Object(object) => return Ok(object),
                Ready::Rejected => {}
                Ready::DeadlinePassed => return Err(self.timed_out(&mut progress)),
            }
        }
    }

    /// The slow path, entered holding a create slot, under the caller's deadline if any.
    async fn create_then_retry(
        self: &Arc<Self>,
        mode: Mode,
        deadline: Option<Instant>,
        mut progress: Progress<M::Error>,
    ) -> Result<Object<M>, PoolError<M::Error>> {
        match deadline {
            None => self.acquire(mode, false, &mut progress).await,
            Some(deadline) => {
                let attempt = self.acquire(mode, true, &mut progress);
                match tokio::time::timeout_at(deadline, attempt).await {
                    Ok(outcome) => outcome,
                    Err(_) => Err(self.timed_out(&mut progress)),
                }
            }
        }
    }

    /// Creates in the slot the caller holds, then keeps looking (and creating) until it has
    /// an object. `has_deadline` means an outer timeout bounds this future, so failed
    /// creates are retried instead of returned.
    async fn acquire(
        self: &Arc<Self>,
        mode: Mode,
        has_deadline: bool,
        progress: &mut Progress<M::Error>,
    ) -> Result<Object<M>, PoolError<M::Error>> {
        let mut failed_creates = 0u32;
        let mut holding_slot = true;
        loop {
            let found = if std::mem::take(&mut holding_slot) {
                Found::CreateSlot
            } else {
                progress.phase = TimeoutKind::Wait;
                FindOrQueue {
                    shared: self,
                    mode,
                    waiting: None,
                }
                .await?
            };
            let entry = match found {
                Found::Idle(entry) => entry,
                Found::CreateSlot => {
                    progress.phase = TimeoutKind::Create;
                    match self.create_in_slot(has_deadline).await {
                        Ok(object) => return Ok(object),
                        Err(CreateFailure::Closed) => return Err(PoolError::Closed),
                        Err(CreateFailure::Error(error)) => return Err(PoolError::Backend(error)),
                        Err(CreateFailure::TimedOut) if !has_deadline => {
                            return Err(self.timed_out(progress));
                        }
                        Err(CreateFailure::TimedOut) => {}
                        Err(CreateFailure::Shared(error)) => progress.last_error = Some(error),
                    }
                    // Only reached with a deadline: retry until it passes, backing off so a
                    // down backend is not hammered.
                    tokio::time::sleep(retry_delay(failed_creates)).await;
                    failed_creates = failed_creates.saturating_add(1);
                    continue;
                }
            };
            progress.phase = TimeoutKind::Recycle;
            // The outer timeout bounds this call, so no deadline is passed down.
            if let Ready::Object(object) = self.ready_idle(entry, None, progress).await {
                return Ok(object);
            }
        }
    }

    /// Builds the timeout error for a caller, counting it.
    pub(crate) fn timed_out(&self, progress: &mut Progress<M::Error>) -> PoolError<M::Error> {
        let mut state = self.lock();
        state.metrics.timeouts += 1;
        let last_error = progress
            .last_error
            .take()
            .or_else(|| state.last_create_error.clone());
        PoolError::Timeout {
            kind: progress.phase,
            last_error,
        }
    }

    /// Creates an object in a slot this caller holds.
    async fn create_in_slot(
        self: &Arc<Self>,
        share_error: bool,
    ) -> Result<Object<M>, CreateFailure<M::Error>> {
        let slot = CreateSlotGuard { shared: self };
        let created = match self.config.create_timeout {
            None => Some(self.manager.create().await),
            Some(limit) => tokio::time::timeout(limit, self.manager.create())
                .await
                .ok(),
        };
        std::mem::forget(slot); // settled below, under the same lock as the outcome
        let now = Instant::now();
        let mut after = AfterUnlock::new();
        let outcome = {
            let mut state = self.lock();
            state.creating -= 1;
            match created {
                Some(Ok(object)) => {
                    state.metrics.created += 1;
                    state.last_create_error = None;
                    if state.closed {
                        state.retire(object, DestroyReason::Closed, &mut after);
                        Err(CreateFailure::Closed)
                    } else {
                        let entry = self.new_entry(&mut state, object, now);
                        Ok(entry)
                    }
                }
                failed => {
                    state.metrics.create_failures += 1;
                    state.release_slot(&mut after);
                    match failed {
                        Some(Err(error)) if share_error => {
                            let error = Arc::new(error);
                            state.last_create_error = Some(Arc::clone(&error));
                            Err(CreateFailure::Shared(error))
                        }
                        Some(Err(error)) => Err(CreateFailure::Error(error)),
                        _ => Err(CreateFailure::TimedOut),
                    }
                }
            }
        };
        self.finish(after);
        outcome.map(|entry| Object::new(Arc::clone(self), entry))
    }

    /// Checks and recycles an idle object for this caller, each hook bounded by
    /// `recycle_timeout` and by the caller's `deadline`, whichever comes first.
    async fn ready_idle(
        self: &Arc<Self>,
        entry: Box<Entry<M::Object>>,
        deadline: Option<Instant>,
        progress: &mut Progress<M::Error>,
    ) -> Ready<M> {
        let mut checkout = Checkout {
            shared: self,
            entry: Some(entry),
        };
        let Some(entry) = checkout.entry.as_mut() else {
            return Ready::Rejected;
        };
        entry.meta.times_used += 1;
        let config = &self.config;
        let needs_now = config.max_lifetime.is_some()
            || config.health_check_after.is_some()
            || config.recycle_timeout.is_some();
        let now = needs_now.then(Instant::now);
        let hook_deadline = match (deadline, config.recycle_timeout.zip(now)) {
            (None, None) => None,
            (Some(caller), None) => Some(caller),
            (None, Some((limit, now))) => Some(now + limit),
            (Some(caller), Some((limit, now))) => Some(caller.min(now + limit)),
        };
        if let Some(now) = now {
            if entry.is_expired(now) {
                checkout.reject(DestroyReason::Lifetime);
                return Ready::Rejected;
            }
            let idle_for = now.saturating_duration_since(entry.meta.last_used);
            if config
                .health_check_after
                .is_some_and(|window| idle_for > window)
            {
                let check = self.manager.health_check(&mut entry.object, &entry.meta);
                if let Err(failure) = within(hook_deadline, check).await {
                    return checkout.fail(
                        failure,
                        deadline,
                        progress,
                        DestroyReason::HealthCheckFailed,
                    );
                }
            }
        }
        let recycle = self.manager.recycle(&mut entry.object, &entry.meta);
        if let Err(failure) = within(hook_deadline, recycle).await {
            return checkout.fail(failure, deadline, progress, DestroyReason::RecycleFailed);
        }
        match checkout.entry.take() {
            Some(entry) => Ready::Object(Object::new(Arc::clone(self), entry)),
            None => Ready::Rejected,
        }
    }
}

/// The outcome of readying an idle object.
enum Ready<M: Manager> {
    Object(Object<M>),
    /// Destroyed (expired, failed its check or recycle); look again.
    Rejected,
    /// The caller's own deadline passed during a hook.
    DeadlinePassed,
}

/// Runs a hook until `deadline`; `Err(None)` means it timed out.
async fn within<E>(
    deadline: Option<Instant>,
    hook: impl Future<Output = Result<(), E>>,
) -> Result<(), Option<E>> {
    match deadline {
        None => hook.await.map_err(Some),
        Some(deadline) => match tokio::time::timeout_at(deadline, hook).await {
            Ok(result) => result.map_err(Some),
            Err(_) => Err(None),
        },
    }
}

/// Exponential from 10 ms, capped at 1 s, with the upper half jittered so callers that
/// failed together do not retry together.
fn retry_delay(failures: u32) -> Duration {
    let base = FIRST_RETRY_DELAY
        .saturating_mul(1 << failures.min(16))
        .min(MAX_RETRY_DELAY);
    base.mul_f64(0.5 + 0.5 * random::fraction())
}

/// The first step of a `get`, done in one lock: take an idle object, reserve a slot, or
/// queue; then, if queued, wait for a grant.
struct FindOrQueue<'a, M: Manager> {
    shared: &'a Arc<Shared<M>>,
    mode: Mode,
    /// Set once queued, with when the wait began.
    waiting: Option<(WaiterKey, Instant)>,
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
                state.metrics.recycled += 1;
                return Poll::Ready(Ok(Found::Idle(entry)));
            }
            if state.try_reserve_create() {
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
            Grant::Object(entry) => {
                state.metrics.recycled += 1;
                Ok(Found::Idle(entry))
            }
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
    fn drop(&mut self) {
        if let Some((key, _)) = self.waiting.take() {
            let mut after = AfterUnlock::new();
            {
                let mut state = self.shared.lock();
                if let Some(grant) = state.waiters.cancel(key) {
                    state.regrant(grant, &mut after);
                }
            }
            self.shared.finish(after);
        }
    }
}

/// Gives a reserved create slot back if the create is cancelled or panics.
struct CreateSlotGuard<'a, M: Manager> {
    shared: &'a Arc<Shared<M>>,
}

impl<M: Manager> Drop for CreateSlotGuard<'_, M> {
    fn drop(&mut self) {
        let mut after = AfterUnlock::new();
        self.shared.lock().abandon_create(&mut after);
        self.shared.finish(after);
    }
}

/// Holds an idle object while it is checked and recycled for a caller; an object left
/// here by a cancelled or panicking `get` is destroyed, since it may be half-recycled.
struct Checkout<'a, M: Manager> {
    shared: &'a Arc<Shared<M>>,
    entry: Option<Box<Entry<M::Object>>>,
}

impl<M: Manager> Checkout<'_, M> {
    /// A hook failed or timed out: destroy the object, and tell whether the caller's own
    /// deadline is what ran out.
    fn fail(
        &mut self,
        failure: Option<M::Error>,
        deadline: Option<Instant>,
        progress: &mut Progress<M::Error>,
        reason: DestroyReason,
    ) -> Ready<M> {
        let caller_out_of_time =
            failure.is_none() && deadline.is_some_and(|deadline| Instant::now() >= deadline);
        if caller_out_of_time {
            // Cut short by the caller's deadline, not failed: untrusted, but not a failure.
            self.reject(DestroyReason::Abandoned);
            return Ready::DeadlinePassed;
        }
        self.reject(reason);
        if let Some(error) = failure {
            progress.last_error = Some(Arc::new(error));
        }
        Ready::Rejected
    }

    fn reject(&mut self, reason: DestroyReason) {
        if let Some(entry) = self.entry.take() {
            let mut after = AfterUnlock::new();
            {
                let mut state = self.shared.lock();
                state.metrics.recycled -= 1;
                match reason {
                    DestroyReason::RecycleFailed => state.metrics.recycle_failures += 1,
                    DestroyReason::HealthCheckFailed => state.metrics.health_check_failures += 1,
                    _ => {}
                }
                state.retire(entry.object, reason, &mut after);
            }
            self.shared.finish(after);
        }
    }
}

impl<M: Manager> Drop for Checkout<'_, M> {
    fn drop(&mut self) {
        self.reject(DestroyReason::Abandoned);
    }
}
