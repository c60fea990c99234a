//! One key's pool inside a keyed pool: a plain [`Pool`](crate::Pool) whose manager
//! creates for that key, and whose every object holds one of the slots the keyed pool has
//! for all keys together.

use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::task::Poll;
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use super::manager::KeyedManager;
use super::pool::Keyed;
use crate::manager::Manager;
use crate::meta::ObjectMeta;

/// How often a create waiting for a slot looks again for an idle object to evict, in case
/// a return it was told of had not reached the idle list yet.
const LOOK_AGAIN: Duration = Duration::from_millis(10);

/// What every key's pool shares: the user's manager and the slots for all keys together.
pub(crate) struct Core<M: KeyedManager> {
    pub(crate) manager: M,
    /// One permit per live object, of any key: `max_total`. FIFO, so creates waiting for
    /// room are served in the order they asked, whatever their key.
    pub(crate) slots: Arc<Semaphore>,
    /// Told when an object of any key comes back, so a create waiting for a slot can look
    /// for an idle object to evict.
    pub(crate) returned: Notify,
    /// Creates waiting for a slot: returns tell `returned` only when there are some.
    pub(crate) waiting_for_slots: AtomicUsize,
    /// Numbers returns across all keys: which idle object came back longest ago, without
    /// reading the clock on every return.
    pub(crate) returns: AtomicU64,
}

/// An object and the slot it holds among all keys' objects.
pub(crate) struct Held<T> {
    pub(crate) object: T,
    _slot: OwnedSemaphorePermit,
    /// The number of its latest return (see `Core::returns`).
    returned: AtomicU64,
}

impl<T> Held<T> {
    /// The number of its latest return: the least is the idle object back longest ago.
    pub(crate) fn returned(&self) -> u64 {
        self.returned.load(Ordering::Relaxed)
    }
}

/// The manager of one key's pool.
pub(crate) struct ForKey<M: KeyedManager> {
    pub(crate) key: M::Key,
    pub(crate) core: Arc<Core<M>>,
    /// For eviction; weak, since the keyed pool owns this key's pool.
    pub(crate) keyed: Weak<Keyed<M>>,
}

impl<M: KeyedManager> ForKey<M> {
    /// A slot among all keys' objects: at once if one is free; else after evicting the
    /// oldest idle object of another key; else first come, first served among the creates
    /// of every key waiting for one.
    async fn slot(&self) -> OwnedSemaphorePermit {
        let slots = &self.core.slots;
        if let Ok(slot) = Arc::clone(slots).try_acquire_owned() {
            return slot;
        }
        // Queued once, so this create keeps its place in line while it looks for objects
        // to evict.
        let mut acquire = std::pin::pin!(Arc::clone(slots).acquire_owned());
        let _waiting = WaitingForSlot::new(&self.core.waiting_for_slots);
        loop {
            let mut returned = std::pin::pin!(self.core.returned.notified());
            returned.as_mut().enable();
            if let Some(keyed) = self.keyed.upgrade() {
                keyed.evict_oldest_idle(&self.key);
            }
            let mut look_again = std::pin::pin!(tokio::time::sleep(LOOK_AGAIN));
            let slot = std::future::poll_fn(|cx| {
                if let Poll::Ready(slot) = acquire.as_mut().poll(cx) {
                    return Poll::Ready(Some(slot));
                }
                if returned.as_mut().poll(cx).is_ready() || look_again.as_mut().poll(cx).is_ready()
                {
                    return Poll::Ready(None);
                }
                Poll::Pending
            })
            .await;
            if let Some(slot) = slot {
                return slot.expect("the slots are never closed");
            }
        }
    }
}

impl<M: KeyedManager> Manager for ForKey<M> {
    type Object = Held<M::Object>;
    type Error = M::Error;

    async fn create(&self) -> Result<Held<M::Object>, M::Error> {
        let slot = self.slot().await;
        let object = self.core.manager.create(&self.key).await?;
        Ok(Held {
            object,
            _slot: slot,
            returned: AtomicU64::new(0),
        })
    }

    async fn recycle(&self, held: &mut Held<M::Object>, meta: &ObjectMeta) -> Result<(), M::Error> {
        self.core
            .manager
            .recycle(&self.key, &mut held.object, meta)
            .await
    }

    async fn health_check(
        &self,
        held: &mut Held<M::Object>,
        meta: &ObjectMeta,
    ) -> Result<(), M::Error> {
        self.core
            .manager
            .health_check(&self.key, &mut held.object, meta)
            .await
    }

    fn is_broken(&self, held: &Held<M::Object>) -> bool {
        // Called on every return: numbers it, and tells a create of another key waiting
        // for a slot that this object may now be evicted once idle.
        let number = self.core.returns.fetch_add(1, Ordering::Relaxed) + 1;
        held.returned.store(number, Ordering::Relaxed);
        if self.core.waiting_for_slots.load(Ordering::SeqCst) > 0 {
            self.core.returned.notify_waiters();
        }
        self.core.manager.is_broken(&self.key, &held.object)
    }

    async fn destroy(&self, held: Held<M::Object>) {
        let Held { object, _slot, .. } = held;
        self.core.manager.destroy(&self.key, object).await;
        // The slot is free once the object is gone.
        drop(_slot);
    }
}

/// Counts a create waiting for a slot while it lives.
struct WaitingForSlot<'a>(&'a AtomicUsize);

impl<'a> WaitingForSlot<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self(count)
    }
}

impl Drop for WaitingForSlot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
