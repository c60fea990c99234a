//! What happens to the pool's state, one method per event: each is one whole lock
//! section of the engine, and the only way the engine changes [`State`].

use std::collections::VecDeque;
use std::panic::Location;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Waker;
use std::time::Duration;

use tokio::time::Instant;

use super::{AfterUnlock, State};
use crate::config::PoolConfig;
use crate::deadline;
use crate::entry::Entry;
use crate::error::AddError;
use crate::leak::LeakReport;
use crate::metrics::DestroyReason;
use crate::waiters::{Grant, Waiter};

/// What a caller's first look found, when no idle object was there for it.
pub(crate) enum FirstLook {
    /// A slot reserved for this caller to create in.
    CreateSlot,
    /// Nothing: the caller's waiter is queued.
    Queued,
    Closed,
    /// Nothing, and the caller may not queue (`try_get`, or `max_waiting` reached).
    Exhausted,
    /// Nothing can serve the caller before its deadline: no object exists (none idle, lent
    /// or being created) and creates are paused past the deadline.
    TooLate,
}

/// Why a create made for a caller gave it no object.
pub(crate) enum CreateFailure<E> {
    /// The manager's error, for the caller to own.
    Error(E),
    /// The manager's error, already shared with the pool as its latest failure.
    Shared(Arc<E>),
    TimedOut,
    Closed,
}

/// What a maintenance pass must do once the lock is released.
pub(crate) struct MaintenancePlan {
    /// Loans that just went past `leak_threshold`.
    pub(crate) leaks: Vec<LeakReport>,
    /// `min_idle` creates to start (their slots are reserved).
    pub(crate) refills: usize,
    /// The eviction epoch to stamp on them.
    pub(crate) epoch: u64,
}

/// How long before an idle object's lifetime ends its replacement is started, when
/// `min_idle` is set: a twentieth of `max_lifetime` (objects' own lifetimes are already
/// shortened by up to 5%).
fn replace_ahead(config: &PoolConfig) -> Option<Duration> {
    config.max_lifetime.map(|lifetime| lifetime / 20)
}

impl<T, E> State<T, E> {
    /// A caller's first look, first half (the common case): an idle object, unless the
    /// pool is closed, with whether maintenance should top up `min_idle` after it.
    #[inline(always)]
    pub(crate) fn look_idle(&mut self, config: &PoolConfig) -> Option<(Box<Entry<T>>, bool)> {
        if self.closed {
            return None;
        }
        let entry = self.pop_idle(config.queue_mode)?;
        // `min_idle` is what stays ready beside what is in use: top it up.
        Some((entry, self.idle.len() < self.min_idle))
    }

    /// A caller's first look, second half, in the same lock when nothing was idle: reserve
    /// a slot to create in, or queue its `waiter` (when `may_wait`, and `max_waiting`
    /// allows), unless nothing could serve it before its `deadline`.
    pub(crate) fn look_further(
        &mut self,
        may_wait: bool,
        deadline: Option<Instant>,
        config: &PoolConfig,
        waiter: Pin<&mut Waiter<T>>,
        waker: &Waker,
    ) -> FirstLook {
        if self.closed {
            return FirstLook::Closed;
        }
        if self.try_reserve_create(may_wait) {
            return FirstLook::CreateSlot;
        }
        let queue_full = config
            .max_waiting
            .is_some_and(|max| self.waiters.len() >= max);
        if !may_wait || queue_full {
            return FirstLook::Exhausted;
        }
        // No object could come back, and no create may start before the deadline: waiting
        // would only spend it (an `add` could still come, but nothing the pool does).
        let paused_past_deadline = deadline
            .zip(self.backoff.paused_until())
            .is_some_and(|(deadline, paused_until)| paused_until >= deadline);
        if self.size == 0 && paused_past_deadline {
            return FirstLook::TooLate;
        }
        self.metrics.waits += 1;
        self.waiters.push(waiter, waker.clone());
        FirstLook::Queued
    }

    /// A queued caller found no grant without the lock: it collects one granted meanwhile,
    /// else `waker` is remembered and it waits on (`None`).
    pub(crate) fn poll_grant(
        &mut self,
        waiter: Pin<&mut Waiter<T>>,
        waker: &Waker,
    ) -> Option<Grant<T>> {
        self.waiters.poll_grant(waiter, waker)
    }

    /// A queued caller gave up (cancelled or timed out): it leaves the queue, and what it
    /// was granted meanwhile goes to the next.
    pub(crate) fn give_up(&mut self, waiter: Pin<&mut Waiter<T>>, after: &mut AfterUnlock<T>) {
        if let Some(grant) = self.waiters.remove(waiter) {
            self.regrant(grant, after);
        }
    }

    /// A caller's deadline passed: counts it, and tells the failure to report (the
    /// caller's own, else the pool's latest create failure).
    pub(crate) fn timed_out(&mut self, own: Option<Arc<E>>) -> Option<Arc<E>> {
        self.metrics.timeouts += 1;
        own.or_else(|| self.last_create_error.clone())
    }

    /// An object was lent to the caller at `caller` (tracked for `leak_threshold`).
    pub(crate) fn lent(&mut self, id: u64, now: Instant, caller: &'static Location<'static>) {
        self.loans.lend(id, now, caller);
    }

    /// An object came back from its guard (the fast path, [`keep_idle`](Self::keep_idle),
    /// did not apply): destroyed for `verdict`, else to the longest waiter or the idle
    /// list. Ends its loan at `loan_end`, returning a report if it had been reported held.
    pub(crate) fn returned(
        &mut self,
        entry: Box<Entry<T>>,
        verdict: Option<DestroyReason>,
        loan_end: Option<Instant>,
        after: &mut AfterUnlock<T>,
    ) -> Option<LeakReport> {
        let came_back = loan_end.and_then(|now| self.loans.give_back(entry.meta.id, now));
        match verdict {
            Some(reason) => self.retire(entry.object, reason, after),
            None => self.put_back(entry, after),
        }
        came_back
    }

    /// An object was given away with `Object::take`: its slot is freed.
    pub(crate) fn taken(&mut self, id: u64, loan_end: Option<Instant>, after: &mut AfterUnlock<T>) {
        if let Some(now) = loan_end {
            self.loans.give_back(id, now);
        }
        self.metrics.taken += 1;
        self.free_slot(after);
    }

    /// A create made for a caller ended: `Some(Ok)` created, `Some(Err)` failed (the error
    /// is shared with the pool as its latest failure when `share_error`), `None` timed out.
    pub(crate) fn created_for_caller(
        &mut self,
        config: &PoolConfig,
        created: Option<Result<T, E>>,
        share_error: bool,
        now: Instant,
        epoch: u64,
        after: &mut AfterUnlock<T>,
    ) -> Result<Box<Entry<T>>, CreateFailure<E>> {
        match created {
            Some(Ok(object)) => {
                self.create_succeeded();
                let outcome = if self.closed {
                    self.retire(object, DestroyReason::Closed, after);
                    Err(CreateFailure::Closed)
                } else {
                    Ok(self.new_entry(config, object, now, epoch, true))
                };
                self.creates_eased(after);
                outcome
            }
            Some(Err(error)) if share_error => {
                let error = Arc::new(error);
                self.create_failed(Some(Arc::clone(&error)), now, after);
                Err(CreateFailure::Shared(error))
            }
            Some(Err(error)) => {
                self.create_failed(None, now, after);
                Err(CreateFailure::Error(error))
            }
            None => {
                self.create_failed(None, now, after);
                Err(CreateFailure::TimedOut)
            }
        }
    }

    /// `Pool::add`: an object made elsewhere joins the pool (counted as created) and goes
    /// to the longest waiter or the idle list; refused, and handed back, when the pool is
    /// closed or has no room.
    pub(crate) fn added(
        &mut self,
        config: &PoolConfig,
        object: T,
        now: Instant,
        after: &mut AfterUnlock<T>,
    ) -> Result<(), AddError<T>> {
        if self.closed {
            return Err(AddError::Closed(object));
        }
        if !self.has_room() {
            return Err(AddError::Full(object));
        }
        self.size += 1;
        self.metrics.created += 1;
        let epoch = self.epoch;
        let entry = self.new_entry(config, object, now, epoch, false);
        self.put_back(entry, after);
        after.changed = true;
        Ok(())
    }

    /// A create ended without an outcome (cancelled or panicked): its slot is freed.
    pub(crate) fn create_abandoned(&mut self, after: &mut AfterUnlock<T>) {
        self.abandon_create(after);
    }

    /// A `min_idle` create made an object: to the longest waiter first, before any waiter
    /// is handed a slot to create another.
    pub(crate) fn refill_created(
        &mut self,
        config: &PoolConfig,
        object: T,
        now: Instant,
        epoch: u64,
        after: &mut AfterUnlock<T>,
    ) {
        self.refilling -= 1;
        self.create_succeeded();
        if self.closed {
            self.retire(object, DestroyReason::Closed, after);
        } else {
            let entry = self.new_entry(config, object, now, epoch, false);
            self.put_back(entry, after);
        }
        self.creates_eased(after);
    }

    /// A `min_idle` create failed (timed out or panicked, when `error` is `None`).
    pub(crate) fn refill_failed(
        &mut self,
        error: Option<Arc<E>>,
        now: Instant,
        after: &mut AfterUnlock<T>,
    ) {
        self.refilling -= 1;
        self.create_failed(error, now, after);
    }

    /// A `min_idle` create was dropped before it ended (its runtime shut down).
    pub(crate) fn refill_abandoned(&mut self, after: &mut AfterUnlock<T>) {
        self.refilling -= 1;
        self.abandon_create(after);
    }

    /// An object taken off the idle list to be readied or checked is destroyed for
    /// `reason`. With `keep_slot`, its slot becomes the caller's create slot when a create
    /// may start now (returned `true`), so the caller does not lose its turn.
    pub(crate) fn readying_rejected(
        &mut self,
        object: T,
        reason: DestroyReason,
        background: bool,
        keep_slot: bool,
        after: &mut AfterUnlock<T>,
    ) -> bool {
        if background {
            self.checking -= 1;
        }
        match reason {
            DestroyReason::RecycleFailed => self.metrics.recycle_failures += 1,
            DestroyReason::HealthCheckFailed => self.metrics.health_check_failures += 1,
            _ => {}
        }
        if keep_slot {
            self.retire_keeping_slot(object, reason, after)
        } else {
            self.retire(object, reason, after);
            false
        }
    }

    /// Takes one idle object whose background health check is due off the idle list.
    pub(crate) fn take_due_check(&mut self, now: Instant) -> Option<Box<Entry<T>>> {
        if self.closed {
            return None;
        }
        let due = self
            .idle
            .iter()
            .position(|entry| entry.next_check.is_some_and(|at| at <= now))?;
        let entry = self.idle.remove(due)?;
        self.checking += 1;
        Some(entry)
    }

    /// An object passed its background health check: back to a waiter or the idle list.
    pub(crate) fn check_passed(&mut self, entry: Box<Entry<T>>, after: &mut AfterUnlock<T>) {
        self.checking -= 1;
        self.put_back(entry, after);
    }

    /// A maintenance pass: retires idle objects past their lifetime, then those idle past
    /// `idle_timeout` (longest idle first, keeping `min_idle`), collects new leaks, and
    /// reserves the `min_idle` refills. `None` once the pool is closed.
    pub(crate) fn maintenance_pass(
        &mut self,
        config: &PoolConfig,
        now: Instant,
        after: &mut AfterUnlock<T>,
    ) -> Option<MaintenancePlan> {
        if self.closed {
            return None;
        }
        if config.max_lifetime.is_some() {
            for entry in std::mem::take(&mut self.idle) {
                if entry.is_expired(now) {
                    self.retire(entry.object, DestroyReason::Lifetime, after);
                } else {
                    self.idle.push_back(entry);
                }
            }
        }
        if let Some(idle_timeout) = config.idle_timeout {
            // The front of the idle list is the longest idle in both queue modes.
            let mut removable = self.idle.len().saturating_sub(self.min_idle);
            for entry in std::mem::take(&mut self.idle) {
                let idle_for = now.saturating_duration_since(entry.meta.last_used);
                if removable > 0 && idle_for >= idle_timeout {
                    removable -= 1;
                    self.retire(entry.object, DestroyReason::IdleTimeout, after);
                } else {
                    self.idle.push_back(entry);
                }
            }
        }
        let leaks = match config.leak_threshold {
            Some(threshold) => self.loans.overdue(now, threshold),
            None => Vec::new(),
        };
        self.metrics.leaks += leaks.len() as u64;
        // Idle objects within `replace_ahead` of their lifetime get their replacements now,
        // so `min_idle` holds while they go.
        let expiring = replace_ahead(config).map_or(0, |ahead| {
            let soon = now + ahead;
            self.idle
                .iter()
                .filter(|entry| entry.expires_at.is_some_and(|at| at <= soon))
                .count()
        });
        Some(MaintenancePlan {
            leaks,
            refills: self.plan_refill(expiring),
            epoch: self.epoch,
        })
    }

    /// When maintenance should look next: an idle object's lifetime, idle timeout or
    /// health check, or a loan reaching `leak_threshold`.
    pub(crate) fn next_wake(&self, config: &PoolConfig, now: Instant) -> Option<Instant> {
        let idle_removable = self.idle.len() > self.min_idle;
        let ahead = replace_ahead(config).filter(|_| self.min_idle > 0);
        let idle_deadlines = self.idle.iter().flat_map(|entry| {
            [
                entry.expires_at,
                // Only ahead of time: once due, the replacement has been planned.
                entry
                    .expires_at
                    .zip(ahead)
                    .and_then(|(at, ahead)| at.checked_sub(ahead))
                    .filter(|replace_at| *replace_at > now),
                entry.next_check,
                config
                    .idle_timeout
                    .filter(|_| idle_removable)
                    .map(|timeout| deadline::after(entry.meta.last_used, timeout)),
            ]
        });
        let leak_deadline = config
            .leak_threshold
            .and_then(|threshold| self.loans.next_due(threshold));
        // Objects that are out, or come back, change deadlines without waking the task,
        // so it also looks again at least this often.
        let fallback = [
            config.idle_timeout,
            config.max_lifetime.map(|lifetime| lifetime / 20),
            config.health_check_interval,
            config.leak_threshold,
        ]
        .into_iter()
        .flatten()
        .min()
        .map(|period| deadline::after(now, period));
        idle_deadlines
            .chain([leak_deadline, fallback])
            .flatten()
            .min()
    }

    /// `max_size` changed: waiters may create at once; surplus idle objects are destroyed
    /// now (surplus checked-out ones when they come back).
    pub(crate) fn resized(&mut self, max_size: usize, after: &mut AfterUnlock<T>) {
        self.max_size = max_size;
        self.grant_creates(after);
        while self.size > self.max_size {
            let Some(entry) = self.idle.pop_front() else {
                break;
            };
            self.retire(entry.object, DestroyReason::Evicted, after);
        }
    }

    /// The idle object with the least `rank`, for a keyed pool making room: its rank and
    /// id.
    pub(crate) fn least_idle_by<R: Ord>(&self, rank: impl Fn(&T) -> R) -> Option<(R, u64)> {
        self.idle
            .iter()
            .map(|entry| (rank(&entry.object), entry.meta.id))
            .min_by(|a, b| a.0.cmp(&b.0))
    }

    /// Destroys the idle object `id` to make room in a keyed pool; whether it was idle.
    pub(crate) fn evict_idle(&mut self, id: u64, after: &mut AfterUnlock<T>) -> bool {
        let Some(index) = self.idle.iter().position(|entry| entry.meta.id == id) else {
            return false;
        };
        let entry = self.idle.remove(index).expect("the index was just found");
        self.retire(entry.object, DestroyReason::Evicted, after);
        true
    }

    /// Takes every idle object aside for `retain` to look at (they count as in use).
    pub(crate) fn take_idle(&mut self) -> VecDeque<Box<Entry<T>>> {
        std::mem::take(&mut self.idle)
    }

    /// `retain` looked: the objects kept go back, the others are destroyed.
    pub(crate) fn retained(
        &mut self,
        looked_at: impl IntoIterator<Item = (Box<Entry<T>>, bool)>,
        after: &mut AfterUnlock<T>,
    ) {
        for (entry, kept) in looked_at {
            if kept {
                self.put_back(entry, after);
            } else {
                self.retire(entry.object, DestroyReason::RetainedOut, after);
            }
        }
    }

    /// `evict_all`: idle objects are destroyed now, checked-out ones when they come back
    /// (their epoch is now old).
    pub(crate) fn evicted_all(&mut self, after: &mut AfterUnlock<T>) {
        self.epoch += 1;
        while let Some(entry) = self.idle.pop_front() {
            self.retire(entry.object, DestroyReason::Evicted, after);
        }
    }

    /// Marks the pool closed, retiring idle objects and releasing every waiter.
    pub(crate) fn close(&mut self, after: &mut AfterUnlock<T>) {
        if self.closed {
            return;
        }
        self.closed = true;
        while let Some(entry) = self.idle.pop_front() {
            self.retire(entry.object, DestroyReason::Closed, after);
        }
        while let Some(waiter) = self.waiters.longest() {
            after.wake(waiter.grant(Grant::Closed));
        }
        after.changed = true;
        after.wake_maintenance = true;
    }

    /// Backoff delay number `delay` ended: the next create may probe (unless a success
    /// ended that delay early and a later one runs).
    pub(crate) fn backoff_elapsed(&mut self, delay: u64, after: &mut AfterUnlock<T>) {
        self.backoff.delay_elapsed(delay);
        self.creates_eased(after);
    }

    /// A `destroy` finished (or was given up).
    pub(crate) fn destroy_finished(&mut self, after: &mut AfterUnlock<T>) {
        self.destroying -= 1;
        after.changed = true;
    }
}
