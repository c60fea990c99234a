//! The path of a `get`: find an idle object, a free slot or a place in the queue
//! (`get/find_or_queue.rs`), then create or recycle, with every step undone if the caller goes
//! away (`guards.rs`), all under the caller's one deadline.

mod find_or_queue;

use std::panic::Location;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::PoolConfig;
use crate::deadline;
use crate::entry::Entry;
use crate::error::{PoolError, TimeoutKind};
use crate::error_chain::ErrorChain;
use crate::guards::{CreateSlotGuard, Readying};
use crate::manager::Manager;
use crate::metrics::DestroyReason;
use crate::object::Object;
use crate::shared::Shared;
use crate::state::CreateFailure;
use crate::timer;
pub(crate) use find_or_queue::Mode;
use find_or_queue::{FindOrQueue, Found};

/// What a caller has been through, for the error it gets if its deadline passes.
pub(crate) struct Progress<E> {
    pub(crate) phase: TimeoutKind,
    pub(crate) last_error: Option<Arc<E>>,
    /// A create made for this caller failed or timed out: time spent waiting afterwards
    /// (for the backoff's probe, or an object) went to creating.
    create_failed: bool,
}

impl<E> Progress<E> {
    pub(crate) fn new() -> Self {
        Self {
            phase: TimeoutKind::Wait,
            last_error: None,
            create_failed: false,
        }
    }

    /// The phase of a caller about to look (again) for an object.
    fn looking(&mut self) {
        self.phase = if self.create_failed {
            TimeoutKind::Create
        } else {
            TimeoutKind::Wait
        };
    }
}

/// A whole `get`: the caller's one deadline (from `wait_timeout` or `get_timeout`) bounds
/// every step, waiting, creating, recycling and checking. The common case (an idle object,
/// recycled) runs inline in a small future; creating and retrying, which are rare and slow
/// anyway, run boxed so their state does not bloat every `get` future.
pub(crate) async fn get<M: Manager>(
    shared: &Arc<Shared<M>>,
    timeout: Option<Duration>,
    mode: Mode,
    caller: &'static Location<'static>,
) -> Result<Object<M>, PoolError<M::Error>> {
    shared.adopt_runtime();
    let mut get = Get {
        shared,
        mode,
        deadline: timeout.map(|limit| deadline::after(Instant::now(), limit)),
        caller,
        progress: Progress::new(),
    };
    loop {
        get.progress.phase = TimeoutKind::Wait;
        let find = FindOrQueue::new(shared, mode, get.deadline);
        let found = match timer::bounded(get.deadline, find).await {
            Some(found) => found?,
            None => return Err(get.timed_out()),
        };
        let entry = match found {
            Found::Idle(entry) => entry,
            Found::CreateSlot => return Box::pin(get.create_then_retry()).await,
            Found::TooLate => return Err(get.too_late()),
        };
        match get.ready_idle(entry).await {
            Ready::Object(entry) => return Ok(Object::lend(shared, entry, caller)),
            Ready::Rejected { kept_slot: false } => {}
            Ready::Rejected { kept_slot: true } => {
                return Box::pin(get.create_then_retry()).await;
            }
            Ready::DeadlinePassed => return Err(get.timed_out()),
        }
    }
}

/// One caller's `get` in progress.
struct Get<'a, M: Manager> {
    shared: &'a Arc<Shared<M>>,
    mode: Mode,
    /// The caller's deadline, passed unchanged to every step.
    deadline: Option<Instant>,
    caller: &'static Location<'static>,
    progress: Progress<M::Error>,
}

impl<M: Manager> Get<'_, M> {
    /// The slow path, entered holding a create slot: creates in it, then keeps looking
    /// (and creating) until it has an object, all within the deadline.
    async fn create_then_retry(mut self) -> Result<Object<M>, PoolError<M::Error>> {
        match self.deadline {
            None => self.acquire().await,
            Some(deadline) => match tokio::time::timeout_at(deadline, self.acquire()).await {
                Ok(outcome) => outcome,
                Err(_) => Err(self.timed_out()),
            },
        }
    }

    /// With a deadline, failed creates are retried (paced by the pool's backoff) until it
    /// passes; without one, a failed create is the caller's error.
    async fn acquire(&mut self) -> Result<Object<M>, PoolError<M::Error>> {
        let mut holding_slot = true;
        loop {
            let found = if std::mem::take(&mut holding_slot) {
                Found::CreateSlot
            } else {
                self.progress.looking();
                FindOrQueue::new(self.shared, self.mode, self.deadline).await?
            };
            let entry = match found {
                Found::Idle(entry) => entry,
                Found::TooLate => return Err(self.too_late()),
                Found::CreateSlot => {
                    self.progress.phase = TimeoutKind::Create;
                    match self.create_in_slot().await {
                        Ok(entry) => return Ok(Object::lend(self.shared, entry, self.caller)),
                        Err(CreateFailure::Closed) => return Err(PoolError::Closed),
                        Err(CreateFailure::Error(error)) => return Err(PoolError::Backend(error)),
                        Err(CreateFailure::TimedOut) if self.deadline.is_none() => {
                            return Err(self.timed_out());
                        }
                        Err(CreateFailure::TimedOut) => self.progress.create_failed = true,
                        Err(CreateFailure::Shared(error)) => {
                            self.progress.last_error = Some(error);
                            self.progress.create_failed = true;
                        }
                    }
                    // Only reached with a deadline: look again. The failure paused creates
                    // pool-wide, so this caller now queues until an object comes back or
                    // the backoff lets a probe through.
                    continue;
                }
            };
            match self.ready_idle(entry).await {
                Ready::Object(entry) => return Ok(Object::lend(self.shared, entry, self.caller)),
                Ready::Rejected { kept_slot } => holding_slot = kept_slot,
                Ready::DeadlinePassed => return Err(self.timed_out()),
            }
        }
    }

    /// The timeout of a caller that nothing could serve before its deadline (the backend is
    /// down and the pool empty): the time would have gone to creating.
    fn too_late(&mut self) -> PoolError<M::Error> {
        self.progress.phase = TimeoutKind::Create;
        self.timed_out()
    }

    /// Builds the timeout error for this caller, counting it.
    fn timed_out(&mut self) -> PoolError<M::Error> {
        let kind = self.progress.phase;
        tracing::debug!(target: "pool_core", pool = %self.shared.name, ?kind, "get timed out");
        let last_error = self
            .shared
            .lock()
            .timed_out(self.progress.last_error.take());
        PoolError::Timeout { kind, last_error }
    }

    /// Creates an object in a slot this caller holds. With a deadline the error is shared
    /// with the pool (the caller may retry and report it later); without, it is the
    /// caller's own.
    async fn create_in_slot(&mut self) -> Result<Box<Entry<M::Object>>, CreateFailure<M::Error>> {
        let shared = self.shared;
        let slot = CreateSlotGuard::new(shared);
        // Stamped at the start: an object whose create began before `evict_all` is evicted
        // too (it may be connected to what was being evicted).
        let epoch = shared.lock().epoch();
        let created = match shared.config.create_timeout {
            None => Some(shared.manager.create().await),
            Some(limit) => tokio::time::timeout(limit, shared.manager.create())
                .await
                .ok(),
        };
        slot.settled(); // settled below, under the same lock as the outcome
        match &created {
            Some(Err(error)) => {
                tracing::warn!(target: "pool_core", pool = %shared.name, error = %ErrorChain(error), "create failed")
            }
            None => tracing::warn!(target: "pool_core", pool = %shared.name, "create timed out"),
            Some(Ok(_)) => {}
        }
        let share_error = self.deadline.is_some();
        let now = Instant::now();
        shared.with_state(|state, after| {
            state.created_for_caller(&shared.config, created, share_error, now, epoch, after)
        })
    }

    /// Checks and recycles an idle object for this caller, each hook bounded by
    /// `recycle_timeout` and by the caller's deadline, whichever comes first.
    async fn ready_idle(&mut self, entry: Box<Entry<M::Object>>) -> Ready<M> {
        self.progress.phase = TimeoutKind::Recycle;
        let shared = self.shared;
        let deadline = self.deadline;
        let mut readying = Readying::for_caller(shared, entry);
        let Some(entry) = readying.entry_mut() else {
            return Ready::Rejected { kept_slot: false };
        };
        entry.meta.times_used += 1;
        if let Some(reason) = shared.manager.unusable(&entry.object, &entry.meta) {
            tracing::debug!(target: "pool_core", pool = %shared.name, %reason, "object unusable at checkout");
            return Ready::Rejected {
                kept_slot: readying.reject_keeping_slot(DestroyReason::RecycleFailed),
            };
        }
        let config = &shared.config;
        let needs_now = config.max_lifetime.is_some()
            || config.health_check_after.is_some()
            || config.recycle_timeout.is_some();
        let mut now = needs_now.then(Instant::now);
        if let Some(read) = now {
            if entry.is_expired(read) {
                return Ready::Rejected {
                    kept_slot: readying.reject_keeping_slot(DestroyReason::Lifetime),
                };
            }
            let idle_for = read.saturating_duration_since(entry.meta.last_used);
            if config
                .health_check_after
                .is_some_and(|window| idle_for >= window)
            {
                // Boxed: a check (a ping, a query) is rare and slow, and inline it would
                // grow every `get` future to its size.
                let check = Box::pin(shared.manager.health_check(&mut entry.object, &entry.meta));
                let bound = hook_deadline(config, deadline, now);
                if let Err(failure) = hook_outcome(timer::bounded(bound, check).await) {
                    return fail(
                        &mut readying,
                        failure,
                        deadline,
                        &mut self.progress,
                        DestroyReason::HealthCheckFailed,
                    );
                }
                // `recycle_timeout` bounds each hook on its own.
                now = now.map(|_| Instant::now());
            }
        }
        let recycle = shared.manager.recycle(&mut entry.object, &entry.meta);
        let bound = hook_deadline(config, deadline, now);
        if let Err(failure) = hook_outcome(timer::bounded(bound, recycle).await) {
            return fail(
                &mut readying,
                failure,
                deadline,
                &mut self.progress,
                DestroyReason::RecycleFailed,
            );
        }
        match readying.release() {
            Some(entry) => {
                shared.recycled();
                Ready::Object(entry)
            }
            None => Ready::Rejected { kept_slot: false },
        }
    }
}

/// When a hook started `now` must end: `recycle_timeout` from now, or the caller's own
/// deadline if that comes first.
#[inline]
fn hook_deadline(
    config: &PoolConfig,
    caller: Option<Instant>,
    now: Option<Instant>,
) -> Option<Instant> {
    let own = config
        .recycle_timeout
        .zip(now)
        .map(|(limit, now)| deadline::after(now, limit));
    match (caller, own) {
        (Some(caller), Some(own)) => Some(caller.min(own)),
        (caller, own) => caller.or(own),
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

/// What a hook run under [`timer::bounded`] came to; `Err(None)` means it timed out.
fn hook_outcome<E>(outcome: Option<Result<(), E>>) -> Result<(), Option<E>> {
    match outcome {
        Some(result) => result.map_err(Some),
        None => Err(None),
    }
}

/// A hook failed or timed out during a caller's checkout: destroy the object, and tell
/// whether the caller's own deadline is what ran out.
fn fail<M: Manager>(
    readying: &mut Readying<'_, M>,
    failure: Option<M::Error>,
    deadline: Option<Instant>,
    progress: &mut Progress<M::Error>,
    reason: DestroyReason,
) -> Ready<M> {
    let caller_out_of_time =
        failure.is_none() && deadline.is_some_and(|deadline| Instant::now() >= deadline);
    if caller_out_of_time {
        // Cut short by the caller's deadline, not failed: untrusted, but not a failure.
        readying.reject(DestroyReason::Abandoned);
        return Ready::DeadlinePassed;
    }
    match &failure {
        Some(error) if reason == DestroyReason::HealthCheckFailed => {
            tracing::warn!(target: "pool_core", pool = %readying.pool_name(), error = %ErrorChain(error), "health check failed at checkout");
        }
        Some(error) => {
            tracing::debug!(target: "pool_core", pool = %readying.pool_name(), error = %ErrorChain(error), "recycle failed")
        }
        None => {
            tracing::debug!(target: "pool_core", pool = %readying.pool_name(), ?reason, "hook timed out")
        }
    }
    let kept_slot = readying.reject_keeping_slot(reason);
    if let Some(error) = failure {
        progress.last_error = Some(Arc::new(error));
    }
    Ready::Rejected { kept_slot }
}
