//! The pool's mutable state and the transitions made under its lock.
//!
//! Every method here runs with the lock held and never calls user code, so it cannot
//! panic half-way through an update. Work that must wait for the lock to be released
//! (waking a waiter, running `destroy`) is collected in [`AfterUnlock`].

use std::collections::VecDeque;
use std::sync::Arc;
use std::task::Waker;

use crate::config::QueueMode;
use crate::entry::Entry;
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
    pub(crate) closed: bool,
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
    pub(crate) destroy: Vec<T>,
    /// Something a `shutdown` may be waiting for changed.
    pub(crate) drained: bool,
}

impl<T> AfterUnlock<T> {
    pub(crate) fn new() -> Self {
        Self {
            wake: None,
            more_wakes: Vec::new(),
            destroy: Vec::new(),
            drained: false,
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
    pub(crate) fn new(max_size: usize) -> Self {
        Self {
            idle: VecDeque::new(),
            waiters: WaiterQueue::new(),
            max_size,
            size: 0,
            creating: 0,
            closed: false,
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

    /// Reserves a slot for a create if one is free.
    pub(crate) fn try_reserve_create(&mut self) -> bool {
        if self.size < self.max_size {
            self.size += 1;
            self.creating += 1;
            true
        } else {
            false
        }
    }

    /// A slot was freed: it goes to the longest waiter as a create slot, or is given up.
    pub(crate) fn release_slot(&mut self, after: &mut AfterUnlock<T>) {
        if self.closed {
            self.size -= 1;
            after.drained = true;
        } else if self.size <= self.max_size && !self.waiters.is_empty() {
            self.creating += 1;
            match self.waiters.grant_front(Grant::CreateSlot) {
                Ok(waker) => after.wake(waker),
                Err(_) => unreachable!("a waiter was queued"),
            }
        } else {
            self.size -= 1;
        }
    }

    /// A create in flight ended without an object.
    pub(crate) fn abandon_create(&mut self, after: &mut AfterUnlock<T>) {
        self.creating -= 1;
        self.release_slot(after);
    }

    /// Destroys a counted object: frees its slot and queues the `destroy` hook.
    pub(crate) fn retire(&mut self, object: T, reason: DestroyReason, after: &mut AfterUnlock<T>) {
        self.metrics.destroyed_by.count(reason);
        self.release_slot(after);
        after.destroy.push(object);
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

    /// Hands free slots to waiters after the limit grew.
    pub(crate) fn grant_free_slots(&mut self, after: &mut AfterUnlock<T>) {
        while self.size < self.max_size && !self.waiters.is_empty() {
            self.size += 1;
            self.creating += 1;
            match self.waiters.grant_front(Grant::CreateSlot) {
                Ok(waker) => after.wake(waker),
                Err(_) => unreachable!("a waiter was queued"),
            }
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
        after.drained = true;
    }
}
