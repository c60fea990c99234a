//! The path of a `get`: find an idle object, a free slot or a place in the queue, then
//! create or recycle, with every step undone if the caller goes away.

use std::future::Future;
use std::panic::Location;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::deadline;
use crate::entry::Entry;
use crate::error::{PoolError, TimeoutKind};
use crate::find_or_queue::{FindOrQueue, Found, Mode};
use crate::guards::{Checkout, CreateSlotGuard};
use crate::manager::Manager;
use crate::metrics::DestroyReason;
use crate::object::Object;
use crate::shared::Shared;
use crate::state::CreateFailure;
use crate::timer;

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

impl<M: Manager> Shared<M> {
    /// A whole `get`. The common case (an idle object, recycled) runs inline in a small
    /// future; creating and retrying, which are rare and slow anyway, run boxed so their
    /// state does not bloat every `get` future.
    pub(crate) async fn get(
        self: &Arc<Self>,
        timeout: Option<Duration>,
        mode: Mode,
        caller: &'static Location<'static>,
    ) -> Result<Object<M>, PoolError<M::Error>> {
        self.adopt_runtime();
        let deadline = timeout.map(|limit| deadline::after(Instant::now(), limit));
        let mut progress = Progress::new();
        loop {
            progress.phase = TimeoutKind::Wait;
            let find = FindOrQueue::new(self, mode);
            let found = match deadline {
                None => find.await,
                Some(deadline) => match timer::bounded(deadline, find).await {
                    Some(found) => found,
                    None => return Err(self.timed_out(&mut progress)),
                },
            }?;
            let entry = match found {
                Found::Idle(entry) => entry,
                Found::CreateSlot => {
                    let slow = self.create_then_retry(mode, deadline, progress, caller);
                    return Box::pin(slow).await;
                }
            };
            progress.phase = TimeoutKind::Recycle;
            match self.ready_idle(entry, deadline, &mut progress).await {
                Ready::Object(entry) => return Ok(Object::lend(self, entry, caller)),
                Ready::Rejected { kept_slot: false } => {}
                Ready::Rejected { kept_slot: true } => {
                    let slow = self.create_then_retry(mode, deadline, progress, caller);
                    return Box::pin(slow).await;
                }
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
        caller: &'static Location<'static>,
    ) -> Result<Object<M>, PoolError<M::Error>> {
        match deadline {
            None => self.acquire(mode, false, &mut progress, caller).await,
            Some(deadline) => {
                let attempt = self.acquire(mode, true, &mut progress, caller);
                match tokio::time::timeout_at(deadline, attempt).await {
                    Ok(outcome) => outcome,
                    Err(_) => Err(self.timed_out(&mut progress)),
                }
            }
        }
    }

    /// Creates in the slot the caller holds, then keeps looking (and creating) until it has
    /// an object. `has_deadline` means an outer timeout bounds this future, so failed
    /// creates are retried (paced by the pool's backoff) instead of returned.
    async fn acquire(
        self: &Arc<Self>,
        mode: Mode,
        has_deadline: bool,
        progress: &mut Progress<M::Error>,
        caller: &'static Location<'static>,
    ) -> Result<Object<M>, PoolError<M::Error>> {
        let mut holding_slot = true;
        loop {
            let found = if std::mem::take(&mut holding_slot) {
                Found::CreateSlot
            } else {
                progress.phase = TimeoutKind::Wait;
                FindOrQueue::new(self, mode).await?
            };
            let entry = match found {
                Found::Idle(entry) => entry,
                Found::CreateSlot => {
                    progress.phase = TimeoutKind::Create;
                    match self.create_in_slot(has_deadline, caller).await {
                        Ok(object) => return Ok(object),
                        Err(CreateFailure::Closed) => return Err(PoolError::Closed),
                        Err(CreateFailure::Error(error)) => return Err(PoolError::Backend(error)),
                        Err(CreateFailure::TimedOut) if !has_deadline => {
                            return Err(self.timed_out(progress));
                        }
                        Err(CreateFailure::TimedOut) => {}
                        Err(CreateFailure::Shared(error)) => progress.last_error = Some(error),
                    }
                    // Only reached with a deadline: look again. The failure paused creates
                    // pool-wide, so this caller now queues until an object comes back or
                    // the backoff lets a probe through.
                    continue;
                }
            };
            progress.phase = TimeoutKind::Recycle;
            // The outer timeout bounds this call, so no deadline is passed down.
            match self.ready_idle(entry, None, progress).await {
                Ready::Object(entry) => return Ok(Object::lend(self, entry, caller)),
                Ready::Rejected { kept_slot } => holding_slot = kept_slot,
                Ready::DeadlinePassed => {}
            }
        }
    }

    /// Builds the timeout error for a caller, counting it.
    pub(crate) fn timed_out(&self, progress: &mut Progress<M::Error>) -> PoolError<M::Error> {
        tracing::debug!(target: "pool_core", kind = ?progress.phase, "get timed out");
        let last_error = self.lock().timed_out(progress.last_error.take());
        PoolError::Timeout {
            kind: progress.phase,
            last_error,
        }
    }

    /// Creates an object in a slot this caller holds.
    async fn create_in_slot(
        self: &Arc<Self>,
        share_error: bool,
        caller: &'static Location<'static>,
    ) -> Result<Object<M>, CreateFailure<M::Error>> {
        let slot = CreateSlotGuard::new(self);
        // Stamped at the start: an object whose create began before `evict_all` is evicted
        // too (it may be connected to what was being evicted).
        let epoch = self.lock().epoch();
        let created = match self.config.create_timeout {
            None => Some(self.manager.create().await),
            Some(limit) => tokio::time::timeout(limit, self.manager.create())
                .await
                .ok(),
        };
        slot.settled(); // settled below, under the same lock as the outcome
        match &created {
            Some(Err(error)) => tracing::warn!(target: "pool_core", %error, "create failed"),
            None => tracing::warn!(target: "pool_core", "create timed out"),
            Some(Ok(_)) => {}
        }
        let now = Instant::now();
        let outcome = self.with_state(|state, after| {
            state.created_for_caller(&self.config, created, share_error, now, epoch, after)
        });
        outcome.map(|entry| Object::lend(self, entry, caller))
    }

    /// Checks and recycles an idle object for this caller, each hook bounded by
    /// `recycle_timeout` and by the caller's `deadline`, whichever comes first.
    async fn ready_idle(
        self: &Arc<Self>,
        entry: Box<Entry<M::Object>>,
        deadline: Option<Instant>,
        progress: &mut Progress<M::Error>,
    ) -> Ready<M> {
        let mut checkout = Checkout::for_caller(self, entry);
        let Some(entry) = checkout.entry_mut() else {
            return Ready::Rejected { kept_slot: false };
        };
        entry.meta.times_used += 1;
        let config = &self.config;
        let needs_now = config.max_lifetime.is_some()
            || config.health_check_after.is_some()
            || config.recycle_timeout.is_some();
        let mut now = needs_now.then(Instant::now);
        if let Some(read) = now {
            if entry.is_expired(read) {
                return Ready::Rejected {
                    kept_slot: checkout.reject_keeping_slot(DestroyReason::Lifetime),
                };
            }
            let idle_for = read.saturating_duration_since(entry.meta.last_used);
            if config
                .health_check_after
                .is_some_and(|window| idle_for >= window)
            {
                let check = self.manager.health_check(&mut entry.object, &entry.meta);
                let bound = self.hook_deadline(deadline, now);
                if let Err(failure) = within(bound, check).await {
                    return fail(
                        &mut checkout,
                        failure,
                        deadline,
                        progress,
                        DestroyReason::HealthCheckFailed,
                    );
                }
                // `recycle_timeout` bounds each hook on its own.
                now = now.map(|_| Instant::now());
            }
        }
        let recycle = self.manager.recycle(&mut entry.object, &entry.meta);
        if let Err(failure) = within(self.hook_deadline(deadline, now), recycle).await {
            return fail(
                &mut checkout,
                failure,
                deadline,
                progress,
                DestroyReason::RecycleFailed,
            );
        }
        match checkout.release() {
            Some(entry) => {
                self.recycled.increment();
                Ready::Object(entry)
            }
            None => Ready::Rejected { kept_slot: false },
        }
    }

    /// When a hook started `now` must end: `recycle_timeout` from now, or the caller's own
    /// deadline if that comes first.
    fn hook_deadline(&self, caller: Option<Instant>, now: Option<Instant>) -> Option<Instant> {
        let own = self
            .config
            .recycle_timeout
            .zip(now)
            .map(|(limit, now)| deadline::after(now, limit));
        match (caller, own) {
            (Some(caller), Some(own)) => Some(caller.min(own)),
            (caller, own) => caller.or(own),
        }
    }
}

/// The outcome of readying an idle object.
enum Ready<M: Manager> {
    /// Ready for the caller; lent at the last moment, so only a pointer travels back.
    Object(Box<Entry<M::Object>>),
    /// Destroyed (expired, failed its check or recycle); look again. When `kept_slot`, the
    /// caller kept the object's slot to create in, so it does not lose its turn.
    Rejected { kept_slot: bool },
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
        Some(deadline) => match timer::bounded(deadline, hook).await {
            Some(result) => result.map_err(Some),
            None => Err(None),
        },
    }
}

/// A hook failed or timed out during a caller's checkout: destroy the object, and tell
/// whether the caller's own deadline is what ran out.
fn fail<M: Manager>(
    checkout: &mut Checkout<'_, M>,
    failure: Option<M::Error>,
    deadline: Option<Instant>,
    progress: &mut Progress<M::Error>,
    reason: DestroyReason,
) -> Ready<M> {
    let caller_out_of_time =
        failure.is_none() && deadline.is_some_and(|deadline| Instant::now() >= deadline);
    if caller_out_of_time {
        // Cut short by the caller's deadline, not failed: untrusted, but not a failure.
        checkout.reject(DestroyReason::Abandoned);
        return Ready::DeadlinePassed;
    }
    match &failure {
        Some(error) if reason == DestroyReason::HealthCheckFailed => {
            tracing::warn!(target: "pool_core", %error, "health check failed at checkout");
        }
        Some(error) => tracing::debug!(target: "pool_core", %error, "recycle failed"),
        None => tracing::debug!(target: "pool_core", ?reason, "hook timed out"),
    }
    let kept_slot = checkout.reject_keeping_slot(reason);
    if let Some(error) = failure {
        progress.last_error = Some(Arc::new(error));
    }
    Ready::Rejected { kept_slot }
}
