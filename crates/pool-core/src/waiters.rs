//! The FIFO queue of callers waiting for an object, kept inside the pool's lock.
//!
//! Waiters live in a slab so that waiting allocates nothing once the slab has grown, and a
//! grant (an object, a slot to create in, or "closed") is written straight into the
//! waiter's entry: a returned object goes to the longest waiter without passing through the
//! idle list, so no newcomer can overtake it. A cancelled waiter leaves a stale key in the
//! order queue, skipped when reached and compacted away when stale keys pile up.

use std::collections::VecDeque;
use std::task::Waker;

use crate::entry::Entry;

/// What a waiter is handed.
pub(crate) enum Grant<T> {
    /// An idle object, to be recycled by the waiter like any other.
    Object(Box<Entry<T>>),
    /// A reserved slot (already counted in `size` and `creating`) to create an object in.
    CreateSlot,
    /// The pool closed.
    Closed,
}

/// A waiter taken out of the line by [`WaiterQueue::next_in_line`], owed a grant.
#[must_use = "a waiter taken out of the line must be given a grant"]
pub(crate) struct InLine(u32);

/// Identifies a waiter's slab entry; the generation tells a reused entry apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WaiterKey {
    index: u32,
    generation: u32,
}

struct Slot<T> {
    generation: u32,
    occupied: bool,
    queued: bool,
    waker: Option<Waker>,
    grant: Option<Grant<T>>,
}

pub(crate) struct WaiterQueue<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    order: VecDeque<WaiterKey>,
    queued: usize,
}

impl<T> WaiterQueue<T> {
    pub(crate) fn new() -> Self {
        Self {
            slots: Vec::new(),
            free: Vec::new(),
            order: VecDeque::new(),
            queued: 0,
        }
    }

    /// Callers queued and not yet granted anything.
    pub(crate) fn len(&self) -> usize {
        self.queued
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.queued == 0
    }

    /// Queues a new waiter at the back.
    pub(crate) fn push(&mut self, waker: Waker) -> WaiterKey {
        let index = match self.free.pop() {
            Some(index) => index,
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    occupied: false,
                    queued: false,
                    waker: None,
                    grant: None,
                });
                u32::try_from(self.slots.len() - 1).expect("more than u32::MAX waiters")
            }
        };
        let slot = &mut self.slots[index as usize];
        slot.occupied = true;
        slot.queued = true;
        slot.waker = Some(waker);
        let key = WaiterKey {
            index,
            generation: slot.generation,
        };
        self.order.push_back(key);
        self.queued += 1;
        key
    }

    /// Takes the longest waiter out of the line, for [`give`](Self::give) to hand it
    /// something; `None` when nobody waits.
    pub(crate) fn next_in_line(&mut self) -> Option<InLine> {
        while let Some(key) = self.order.pop_front() {
            let slot = &mut self.slots[key.index as usize];
            if slot.generation != key.generation || !slot.queued {
                continue; // cancelled; its entry was freed or reused
            }
            slot.queued = false;
            self.queued -= 1;
            return Some(InLine(key.index));
        }
        None
    }

    /// Hands `grant` to the waiter taken out of the line, and returns the waker to call
    /// once the pool's lock is released.
    pub(crate) fn give(&mut self, waiter: InLine, grant: Grant<T>) -> Option<Waker> {
        let slot = &mut self.slots[waiter.0 as usize];
        slot.grant = Some(grant);
        slot.waker.take()
    }

    /// Takes the waiter's grant if it has one (freeing its entry), else remembers `waker`.
    pub(crate) fn poll_grant(&mut self, key: WaiterKey, waker: &Waker) -> Option<Grant<T>> {
        let slot = self.slot_mut(key);
        match slot.grant.take() {
            Some(grant) => {
                self.release(key);
                Some(grant)
            }
            None => {
                match &mut slot.waker {
                    Some(current) if current.will_wake(waker) => {}
                    other => *other = Some(waker.clone()),
                }
                None
            }
        }
    }

    /// Removes a waiter that gave up, returning any grant it had not collected yet, which
    /// the caller must pass on.
    pub(crate) fn cancel(&mut self, key: WaiterKey) -> Option<Grant<T>> {
        let slot = self.slot_mut(key);
        let grant = slot.grant.take();
        if slot.queued {
            self.queued -= 1;
        }
        self.release(key);
        self.compact_if_stale();
        grant
    }

    fn slot_mut(&mut self, key: WaiterKey) -> &mut Slot<T> {
        let slot = &mut self.slots[key.index as usize];
        debug_assert!(slot.occupied && slot.generation == key.generation);
        slot
    }

    fn release(&mut self, key: WaiterKey) {
        let slot = &mut self.slots[key.index as usize];
        slot.occupied = false;
        slot.queued = false;
        slot.waker = None;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(key.index);
    }

    fn compact_if_stale(&mut self) {
        if self.order.len() > 2 * self.queued + 32 {
            let slots = &self.slots;
            self.order.retain(|key| {
                let slot = &slots[key.index as usize];
                slot.generation == key.generation && slot.queued
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    /// Grants a create slot to the longest waiter, if any.
    fn grant_front(queue: &mut WaiterQueue<()>) -> bool {
        match queue.next_in_line() {
            Some(waiter) => {
                let _ = queue.give(waiter, Grant::CreateSlot);
                true
            }
            None => false,
        }
    }

    fn granted_index(queue: &mut WaiterQueue<()>, keys: &[WaiterKey]) -> Option<usize> {
        let waker = Waker::noop();
        keys.iter()
            .position(|&key| matches!(queue.poll_grant(key, waker), Some(Grant::CreateSlot)))
    }

    #[test]
    fn grants_go_to_the_longest_waiter_first() {
        let mut queue = WaiterQueue::new();
        let keys: Vec<_> = (0..3).map(|_| queue.push(Waker::noop().clone())).collect();
        assert!(grant_front(&mut queue));
        assert_eq!(granted_index(&mut queue, &keys), Some(0));
        assert_eq!(queue.len(), 2);
    }

    #[test]
    fn cancelled_waiters_are_skipped() {
        let mut queue = WaiterQueue::new();
        let keys: Vec<_> = (0..3).map(|_| queue.push(Waker::noop().clone())).collect();
        assert!(queue.cancel(keys[0]).is_none());
        assert!(grant_front(&mut queue));
        assert_eq!(granted_index(&mut queue, &keys[1..]), Some(0));
        assert_eq!(queue.len(), 1);
    }

    #[test]
    fn nobody_is_in_line_when_nobody_waits() {
        let mut queue = WaiterQueue::<()>::new();
        assert!(queue.next_in_line().is_none());
    }

    #[test]
    fn cancelling_returns_an_uncollected_grant() {
        let mut queue = WaiterQueue::<()>::new();
        let key = queue.push(Waker::noop().clone());
        assert!(grant_front(&mut queue));
        assert!(matches!(queue.cancel(key), Some(Grant::CreateSlot)));
        assert!(queue.is_empty());
    }

    #[test]
    fn stale_keys_are_compacted() {
        let mut queue = WaiterQueue::<()>::new();
        let live = queue.push(Waker::noop().clone());
        for _ in 0..1000 {
            let key = queue.push(Waker::noop().clone());
            queue.cancel(key);
        }
        assert!(queue.order.len() <= 2 * queue.len() + 33);
        assert!(grant_front(&mut queue));
        assert!(queue.poll_grant(live, Waker::noop()).is_some());
    }
}
