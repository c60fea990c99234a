//! The pool's mutable state and every transition made under its lock.
//!
//! `State`'s fields are private: the engine changes them only through the methods here,
//! one per event (`state/events.rs`: a find, a grant collected, a give-up, a return, a
//! create settled, a sweep, a resize...), built on the slot accounting below. Every method
//! runs with the lock held and never calls user code, so it cannot panic half-way through
//! an update. Work that must wait for the lock to be released (waking a waiter, running
//! `destroy`) is collected in [`AfterUnlock`]. The loom tests drive these same methods.

mod after_unlock;
mod events;
#[cfg(all(test, pool_loom))]
mod loom_tests;

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::time::Instant;

pub(crate) use after_unlock::AfterUnlock;
pub(crate) use events::{CreateFailure, FirstLook};

use crate::backoff::Backoff;
use crate::config::{PoolConfig, QueueMode};
use crate::deadline;
use crate::entry::Entry;
use crate::leak::Loans;
use crate::meta::ObjectMeta;
use crate::metrics::{DestroyReason, Metrics};
use crate::random;
use crate::shutdown::ShutdownReport;
use crate::status::Status;
use crate::waiters::{Grant, WaiterQueue};

/// Each object's lifetime and use limit are shortened by up to this fraction.
const JITTER: f64 = 0.05;

pub(crate) struct State<T, E> {
    idle: VecDeque<Box<Entry<T>>>,
    waiters: WaiterQueue<T>,
    max_size: usize,
    /// Objects counted against `max_size`: idle, handed out (or granted), or being created.
    size: usize,
    creating: usize,
    /// Creates started by maintenance to reach `min_idle` (included in `creating`).
    refilling: usize,
    /// Idle objects taken aside for a background health check (counted as in use).
    checking: usize,
    max_concurrent_creates: usize,
    min_idle: usize,
    backoff: Backoff,
    /// Checked-out objects, tracked only when `leak_threshold` is set.
    loans: Loans,
    closed: bool,
    /// Objects retired whose `destroy` has not finished, counted from the moment they are
    /// retired, so a shutdown never sees an object in neither `size` nor here.
    destroying: usize,
    /// Bumped by `evict_all`; objects from an older epoch are destroyed when they return.
    epoch: u64,
    next_id: u64,
    metrics: Metrics,
    /// The latest create failure since the last successful create.
    last_create_error: Option<Arc<E>>,
    /// The pool's name, for the events logged here.
    name: Arc<str>,
}

impl<T, E> State<T, E> {
    /// The state of a new pool named `name` (for the events logged under the lock).
    pub(crate) fn new(config: &PoolConfig, name: Arc<str>) -> Self {
        Self {
            name,
            idle: VecDeque::new(),
            waiters: WaiterQueue::new(),
            max_size: config.max_size,
            size: 0,
            creating: 0,
            refilling: 0,
            checking: 0,
            max_concurrent_creates: config.max_concurrent_creates,
            min_idle: config.min_idle,
            backoff: Backoff::new(config.create_backoff_max),
            loans: Loans::default(),
            closed: false,
            destroying: 0,
            epoch: 0,
            next_id: 1,
            metrics: Metrics::default(),
            last_create_error: None,
        }
    }

    pub(crate) fn status(&self) -> Status {
        Status {
            max_size: self.max_size,
            size: self.size,
            idle: self.idle.len(),
            in_use: self.size - self.idle.len() - self.creating,
            creating: self.creating,
            waiting: self.waiters.len(),
        }
    }

    pub(crate) fn metrics(&self) -> Metrics {
        let mut metrics = self.metrics.clone();
        metrics.destroyed = metrics.destroyed_by.total();
        metrics
    }

    /// The eviction epoch, stamped on a create when it starts.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The latest create failure since the last successful create.
    pub(crate) fn last_create_error(&self) -> Option<Arc<E>> {
        self.last_create_error.clone()
    }

    /// What a shutdown still waits for.
    pub(crate) fn shutdown_report(&self) -> ShutdownReport {
        ShutdownReport {
            still_out: self.size,
            still_destroying: self.destroying,
        }
    }

    /// Whether `min_idle` objects (within `max_size`) are idle: what a filling build waits
    /// for; `Err` with the latest failure once a create has failed.
    pub(crate) fn filled(&self) -> Result<bool, Option<Arc<E>>> {
        if self.idle.len() >= self.min_idle.min(self.max_size) {
            Ok(true)
        } else if self.metrics.create_failures > 0 {
            Err(self.last_create_error.clone())
        } else {
            Ok(false)
        }
    }

    /// Wraps a freshly created object, numbering it and drawing its own jittered lifetime,
    /// use limit and first background check. `lent`: it goes straight to the caller that
    /// created it (its first use); otherwise it joins the idle list unused.
    fn new_entry(
        &mut self,
        config: &PoolConfig,
        object: T,
        now: Instant,
        epoch: u64,
        lent: bool,
    ) -> Box<Entry<T>> {
        let id = self.next_id;
        self.next_id += 1;
        // Shortened, never lengthened: the settings are promises.
        let expires_at = config.max_lifetime.map(|lifetime| {
            deadline::after(now, lifetime.mul_f64(1.0 - JITTER * random::fraction()))
        });
        // In whole uses: a limit under 20 is exact.
        let max_uses = config.max_uses.map(|max| {
            let max = max as u64;
            let cut = (max as f64 * JITTER * random::fraction()) as u64;
            (max - cut).max(1)
        });
        // The first background check falls anywhere in the second half of the interval,
        // so objects created together are not all checked together.
        let next_check = config
            .health_check_interval
            .map(|interval| deadline::after(now, interval.mul_f64(0.5 + 0.5 * random::fraction())));
        tracing::debug!(target: "pool_core", pool = %self.name, id, "object created");
        Box::new(Entry {
            object,
            meta: ObjectMeta {
                id,
                created: now,
                last_used: now,
                times_used: u64::from(lent),
            },
            expires_at,
            max_uses,
            next_check,
            epoch,
        })
    }

    #[inline]
    fn pop_idle(&mut self, mode: QueueMode) -> Option<Box<Entry<T>>> {
        match mode {
            QueueMode::Lifo => self.idle.pop_back(),
            QueueMode::Fifo => self.idle.pop_front(),
        }
    }

    /// Whether a new slot fits. Objects being destroyed no longer count: `get` never waits
    /// for a `destroy` (a slow one may briefly leave more than `max_size` objects in
    /// existence, the extra ones on their way out).
    fn has_room(&self) -> bool {
        self.size < self.max_size
    }

    /// Whether one more create may start: the pool is open, fewer than
    /// `max_concurrent_creates` are in flight, and the backoff allows it.
    fn can_start_create(&self) -> bool {
        !self.closed && self.creating < self.max_concurrent_creates && self.backoff.allows_create()
    }

    /// Reserves a slot for a caller who found nothing idle, if there is room, a create may
    /// start, and (for a caller that may wait) the `min_idle` refills in flight will not
    /// already serve every waiter. A caller that cannot wait (`try_get`) is not served by a
    /// refill, so refills never keep it from creating.
    fn try_reserve_create(&mut self, may_wait: bool) -> bool {
        let refills_cover_demand = may_wait && self.refilling > self.waiters.len();
        if self.has_room() && self.can_start_create() && !refills_cover_demand {
            self.size += 1;
            self.start_create();
            true
        } else {
            false
        }
    }

    fn start_create(&mut self) {
        self.creating += 1;
        self.backoff.create_started();
    }

    /// Reserves slots for the creates needed to bring the idle objects (counting those
    /// under a background check and the refills in flight) up to `min_idle`, plus
    /// `expiring` (idle objects about to reach their lifetime, replaced ahead so idle does
    /// not dip when they go); returns how many to start.
    fn plan_refill(&mut self, expiring: usize) -> usize {
        let mut planned = 0;
        let target = if self.min_idle > 0 {
            self.min_idle + expiring
        } else {
            0
        };
        while self.idle.len() + self.checking + self.refilling < target
            && self.has_room()
            && self.can_start_create()
        {
            self.size += 1;
            self.start_create();
            self.refilling += 1;
            planned += 1;
        }
        planned
    }

    /// Gives waiting callers a slot to create in, while some waiter is not covered by a
    /// refill in flight, there is room and a create may start. Each waiter gets at most
    /// one, so creates never outnumber the demand.
    fn grant_creates(&mut self, after: &mut AfterUnlock<T>) {
        while self.waiters.len() > self.refilling && self.has_room() && self.can_start_create() {
            let Some(waiter) = self.waiters.longest() else {
                break;
            };
            after.wake(waiter.grant(Grant::CreateSlot));
            self.size += 1;
            self.start_create();
        }
    }

    /// Something that limits creates eased (a slot, a create permit, a destroy finished):
    /// waiters may create, and maintenance may refill.
    fn creates_eased(&mut self, after: &mut AfterUnlock<T>) {
        after.changed = true; // shutdown and `build_filled` watch these moments
        if self.closed {
            return;
        }
        self.grant_creates(after);
        if self.min_idle > 0 {
            after.wake_maintenance = true;
        }
    }

    /// A slot was freed: it goes to the longest waiter as a create slot if one may
    /// start, else it is given up.
    fn free_slot(&mut self, after: &mut AfterUnlock<T>) {
        self.size -= 1;
        self.creates_eased(after);
    }

    /// A create in flight ended without an outcome (cancelled or panicked).
    fn abandon_create(&mut self, after: &mut AfterUnlock<T>) {
        self.creating -= 1;
        self.backoff.create_abandoned();
        self.free_slot(after);
    }

    /// A create succeeded: creation reopens fully. The caller places the new object, then
    /// calls [`creates_eased`](Self::creates_eased), so a waiter is handed an object
    /// rather than a slot to create another in.
    fn create_succeeded(&mut self) {
        self.creating -= 1;
        self.metrics.created += 1;
        self.last_create_error = None;
        self.backoff.create_succeeded();
    }

    /// A create failed (`error` is kept as the pool's latest failure when given): its
    /// slot is freed and creation backs off.
    fn create_failed(&mut self, error: Option<Arc<E>>, now: Instant, after: &mut AfterUnlock<T>) {
        self.creating -= 1;
        self.metrics.create_failures += 1;
        if error.is_some() {
            self.last_create_error = error;
        }
        after.backoff_delay = self
            .backoff
            .create_failed(now)
            .map(|(delay, number)| (delay, number, self.backoff.consecutive_failures()));
        after.changed = true;
        self.free_slot(after);
    }

    /// Destroys a counted object: frees its slot and queues the `destroy` hook.
    fn retire(&mut self, object: T, reason: DestroyReason, after: &mut AfterUnlock<T>) {
        self.queue_destroy(object, reason, after);
        self.free_slot(after);
    }

    /// Destroys a counted object but, when no idle object is left for the caller that held
    /// it and a create may start, turns its slot into that caller's create slot; otherwise
    /// frees the slot. Returns whether it kept it.
    fn retire_keeping_slot(
        &mut self,
        object: T,
        reason: DestroyReason,
        after: &mut AfterUnlock<T>,
    ) -> bool {
        self.queue_destroy(object, reason, after);
        // With idle objects left the caller simply takes one; nobody waits then.
        let fits = self.size <= self.max_size;
        if self.idle.is_empty() && fits && self.can_start_create() {
            self.start_create();
            true
        } else {
            self.free_slot(after);
            false
        }
    }

    /// Counts why `object` goes and queues its `destroy` (its slot is the caller's to free).
    fn queue_destroy(&mut self, object: T, reason: DestroyReason, after: &mut AfterUnlock<T>) {
        self.metrics.destroyed_by.count(reason);
        self.destroying += 1;
        after.destroy.push((object, reason));
    }

    /// Puts a returned object on the idle list if that is all there is to do (nobody
    /// waits, the pool is open and within its size, the object not evicted): a return's
    /// fast path, with nothing to do after unlocking.
    pub(crate) fn keep_idle(&mut self, entry: Box<Entry<T>>) -> Result<(), Box<Entry<T>>> {
        if self.waiters.is_empty()
            && !self.closed
            && self.size <= self.max_size
            && entry.epoch == self.epoch
        {
            self.idle.push_back(entry);
            Ok(())
        } else {
            Err(entry)
        }
    }

    /// An object came back in good shape: to the longest waiter, else to the idle list.
    fn put_back(&mut self, entry: Box<Entry<T>>, after: &mut AfterUnlock<T>) {
        if self.closed {
            self.retire(entry.object, DestroyReason::Closed, after);
        } else if self.size > self.max_size || entry.epoch != self.epoch {
            self.retire(entry.object, DestroyReason::Evicted, after);
        } else {
            match self.waiters.longest() {
                Some(waiter) => after.wake(waiter.grant(Grant::Object(entry))),
                None => self.idle.push_back(entry),
            }
        }
    }

    /// Passes on a grant its waiter will never collect (it gave up, or took the grant
    /// after the pool closed, when the grant is destroyed or its slot freed).
    pub(crate) fn regrant(&mut self, grant: Grant<T>, after: &mut AfterUnlock<T>) {
        match grant {
            Grant::Object(entry) => self.put_back(entry, after),
            Grant::CreateSlot => self.abandon_create(after),
            Grant::Closed => {}
        }
    }
}
