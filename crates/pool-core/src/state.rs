//! The pool's mutable state and the transitions made under its lock.
//!
//! Every method here runs with the lock held and never calls user code, so it cannot
//! panic half-way through an update. Work that must wait for the lock to be released
//! (waking a waiter, running `destroy`) is collected in [`AfterUnlock`].

use std::collections::VecDeque;
use std::sync::Arc;
use std::task::Waker;

use std::time::Duration;

use crate::backoff::Backoff;
use crate::config::{PoolConfig, QueueMode};
use crate::entry::Entry;
use crate::leak::Loans;
use crate::metrics::{DestroyReason, Metrics};
use crate::status::Status;
use crate::waiters::{Grant, WaiterQueue};

pub(crate) struct State<T, E> {
    pub(crate) idle: VecDeque<Box<Entry<T>>>,
    pub(crate) waiters: WaiterQueue<T>,
    pub(crate) max_size: usize,
    /// Objects counted against `max_size`: idle, handed out (or granted), or being created.
    pub(crate) size: usize,
    pub(crate) creating: usize,
    /// Creates started by maintenance to reach `min_idle` (included in `creating`).
    pub(crate) refilling: usize,
    /// Idle objects taken aside for a background health check (counted as in use).
    pub(crate) checking: usize,
    pub(crate) max_concurrent_creates: usize,
    pub(crate) min_idle: usize,
    pub(crate) backoff: Backoff,
    /// Checked-out objects, tracked only when `leak_threshold` is set.
    pub(crate) loans: Loans,
    pub(crate) closed: bool,
    /// Objects retired whose `destroy` has not finished, counted from the moment they are
    /// retired, so a shutdown never sees an object in neither `size` nor here.
    pub(crate) destroying: usize,
    /// Bumped by `evict_all`; objects from an older epoch are destroyed when they return.
    pub(crate) epoch: u64,
    pub(crate) next_id: u64,
    pub(crate) metrics: Metrics,
    /// The latest create failure since the last successful create.
    pub(crate) last_create_error: Option<Arc<E>>,
}

/// Work to do once the lock is released.
pub(crate) struct AfterUnlock<T> {
    pub(crate) wake: Option<Waker>,
    pub(crate) more_wakes: Vec<Waker>,
    pub(crate) destroy: Vec<(T, DestroyReason)>,
    /// Something a `shutdown` or a filling build may be waiting for changed.
    pub(crate) changed: bool,
    /// Maintenance should look again (e.g. to refill `min_idle`).
    pub(crate) wake_maintenance: bool,
    /// A create failed and a backoff delay must be timed: the delay and the consecutive
    /// failures so far.
    pub(crate) backoff_delay: Option<(Duration, u32)>,
}

impl<T> AfterUnlock<T> {
    pub(crate) fn new() -> Self {
        Self {
            wake: None,
            more_wakes: Vec::new(),
            destroy: Vec::new(),
            changed: false,
            wake_maintenance: false,
            backoff_delay: None,
        }
    }

    fn wake(&mut self, waker: Option<Waker>) {
        if let Some(waker) = waker {
            match self.wake {
                None => self.wake = Some(waker),
                Some(_) => self.more_wakes.push(waker),
            }
        }
    }
}

impl<T, E> State<T, E> {
    pub(crate) fn new(config: &PoolConfig) -> Self {
        Self {
            idle: VecDeque::new(),
            waiters: WaiterQueue::new(),
            max_size: config.max_size,
            size: 0,
            creating: 0,
            refilling: 0,
            checking: 0,
            max_concurrent_creates: config.max_concurrent_creates,
            min_idle: config.min_idle,
            backoff: Backoff::new(),
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

    pub(crate) fn pop_idle(&mut self, mode: QueueMode) -> Option<Box<Entry<T>>> {
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
    pub(crate) fn can_start_create(&self) -> bool {
        !self.closed && self.creating < self.max_concurrent_creates && self.backoff.allows_create()
    }

    /// Reserves a slot for a caller who found nothing idle, if there is room, a create may
    /// start, and (for a caller that may wait) the `min_idle` refills in flight will not
    /// already serve every waiter. A caller that cannot wait (`try_get`) is not served by a
    /// refill, so refills never keep it from creating.
    pub(crate) fn try_reserve_create(&mut self, may_wait: bool) -> bool {
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
    /// under a background check and the refills in flight) up to `min_idle`; returns how
    /// many to start.
    pub(crate) fn plan_refill(&mut self) -> usize {
        let mut planned = 0;
        while self.idle.len() + self.checking + self.refilling < self.min_idle
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
    pub(crate) fn grant_creates(&mut self, after: &mut AfterUnlock<T>) {
        while self.waiters.len() > self.refilling && self.has_room() && self.can_start_create() {
            self.size += 1;
            self.start_create();
            match self.waiters.grant_front(Grant::CreateSlot) {
                Ok(waker) => after.wake(waker),
                Err(_) => unreachable!("a waiter was queued"),
            }
        }
    }

    /// Something that limits creates eased (a slot, a create permit, a destroy finished):
    /// waiters may create, and maintenance may refill.
    pub(crate) fn creates_eased(&mut self, after: &mut AfterUnlock<T>) {
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
    pub(crate) fn release_slot(&mut self, after: &mut AfterUnlock<T>) {
        self.size -= 1;
        self.creates_eased(after);
    }

    /// A create in flight ended without an outcome (cancelled or panicked).
    pub(crate) fn abandon_create(&mut self, after: &mut AfterUnlock<T>) {
        self.creating -= 1;
        self.backoff.create_abandoned();
        self.release_slot(after);
    }

    /// A create succeeded: creation reopens fully. The caller places the new object, then
    /// calls [`creates_eased`](Self::creates_eased), so a waiter is handed an object
    /// rather than a slot to create another in.
    pub(crate) fn create_succeeded(&mut self) {
        self.creating -= 1;
        self.metrics.created += 1;
        self.last_create_error = None;
        self.backoff.create_succeeded();
    }

    /// A create failed (`error` is kept as the pool's latest failure when given): its
    /// slot is freed and creation backs off.
    pub(crate) fn create_failed(&mut self, error: Option<Arc<E>>, after: &mut AfterUnlock<T>) {
        self.creating -= 1;
        self.metrics.create_failures += 1;
        if error.is_some() {
            self.last_create_error = error;
        }
        after.backoff_delay = self
            .backoff
            .create_failed()
            .map(|delay| (delay, self.backoff.consecutive_failures()));
        after.changed = true;
        self.release_slot(after);
    }

    /// A `destroy` finished (or was given up).
    pub(crate) fn destroy_finished(&mut self, after: &mut AfterUnlock<T>) {
        self.destroying -= 1;
        after.changed = true;
    }

    /// Destroys a counted object: frees its slot and queues the `destroy` hook.
    pub(crate) fn retire(&mut self, object: T, reason: DestroyReason, after: &mut AfterUnlock<T>) {
        self.discard(object, reason, after);
        self.release_slot(after);
    }

    /// Destroys a counted object but, when no idle object is left for the caller that held
    /// it and a create may start, turns its slot into that caller's create slot; otherwise
    /// frees the slot. Returns whether it kept it.
    pub(crate) fn retire_keeping_slot(
        &mut self,
        object: T,
        reason: DestroyReason,
        after: &mut AfterUnlock<T>,
    ) -> bool {
        self.discard(object, reason, after);
        // With idle objects left the caller simply takes one; nobody waits then.
        let fits = self.size <= self.max_size;
        if self.idle.is_empty() && fits && self.can_start_create() {
            self.start_create();
            true
        } else {
            self.release_slot(after);
            false
        }
    }

    fn discard(&mut self, object: T, reason: DestroyReason, after: &mut AfterUnlock<T>) {
        self.metrics.destroyed_by.count(reason);
        self.destroying += 1;
        after.destroy.push((object, reason));
    }

    /// Puts a returned object on the idle list if that is all there is to do (nobody
    /// waits, the pool is open and within its size, the object not evicted).
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
    pub(crate) fn put_back(&mut self, entry: Box<Entry<T>>, after: &mut AfterUnlock<T>) {
        if self.closed {
            self.retire(entry.object, DestroyReason::Closed, after);
        } else if self.size > self.max_size || entry.epoch != self.epoch {
            self.retire(entry.object, DestroyReason::Evicted, after);
        } else {
            match self.waiters.grant_front(Grant::Object(entry)) {
                Ok(waker) => after.wake(waker),
                Err(Grant::Object(entry)) => self.idle.push_back(entry),
                Err(_) => unreachable!("the grant given was an object"),
            }
        }
    }

    /// Passes on a grant its waiter will never collect.
    pub(crate) fn regrant(&mut self, grant: Grant<T>, after: &mut AfterUnlock<T>) {
        match grant {
            Grant::Object(entry) => self.put_back(entry, after),
            Grant::CreateSlot => self.abandon_create(after),
            Grant::Closed => {}
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
        while let Ok(waker) = self.waiters.grant_front(Grant::Closed) {
            after.wake(waker);
        }
        after.changed = true;
        after.wake_maintenance = true;
    }
}
