//! The FIFO queue of callers waiting for an object: an intrusive list whose nodes live in
//! the waiting `get` futures themselves.
//!
//! A grant (an object, a slot to create in, or "closed") is written into the longest
//! waiter's node under the pool's lock, and a returned object goes there without passing
//! through the idle list, so no newcomer can overtake a waiter. The node is then marked
//! granted with one atomic store, and the woken waiter takes its grant without the lock:
//! one lock section less per waited `get` than a queue kept wholly inside the lock, on the
//! lock that every `get` and every return of the pool takes. Queueing allocates nothing.
//!
//! This is the one module of pool-core with `unsafe` code. Its rules, which every `unsafe`
//! block below relies on:
//!
//! - A node is in a queue exactly while its state is `QUEUED`. While `QUEUED` its fields
//!   are read and written only by a holder of that queue's lock (`&mut WaiterQueue`).
//! - A granter writes the grant, takes the waker and unlinks the node, and then stores
//!   `GRANTED` (release): that store is its last touch of the node.
//! - The node's owner (`Pin<&mut Waiter>`) touches the fields without the lock only when it
//!   is not queued: `IDLE`, or `GRANTED` as loaded with acquire.
//! - A queued node never moves (it is pinned) and is never freed: dropping a queued node
//!   aborts the process rather than leave the queue a dangling pointer. The engine removes
//!   a waiter that gives up under the lock first (`FindOrQueue`'s drop), so this never
//!   happens.

#![allow(unsafe_code)]

use std::marker::PhantomPinned;
use std::pin::Pin;
use std::ptr::NonNull;
use std::task::Waker;

use crate::entry::Entry;
use sync::{AtomicU8, Ordering, UnsafeCell};

/// Not in a queue, and holding no grant: the owner's alone.
const IDLE: u8 = 0;
/// In a queue: its fields belong to whoever holds that queue's lock.
const QUEUED: u8 = 1;
/// Out of the queue with a grant the owner has not taken yet: the owner's alone.
const GRANTED: u8 = 2;

/// What a waiter is handed.
pub(crate) enum Grant<T> {
    /// An idle object, to be recycled by the waiter like any other.
    Object(Box<Entry<T>>),
    /// A reserved slot (already counted in `size` and `creating`) to create an object in.
    CreateSlot,
    /// The pool closed.
    Closed,
}

/// A waiting caller's place in line. It lives in the caller's future, pinned, and is linked
/// into the pool's [`WaiterQueue`] while the caller waits.
pub(crate) struct Waiter<T> {
    state: AtomicU8,
    node: UnsafeCell<Node<T>>,
    _pinned: PhantomPinned,
}

struct Node<T> {
    prev: Option<NonNull<Waiter<T>>>,
    next: Option<NonNull<Waiter<T>>>,
    /// The queue the node was linked into, so it is never unlinked from another pool's.
    queue: *const (),
    waker: Option<Waker>,
    grant: Option<Grant<T>>,
}

// SAFETY: a `Waiter` is handed between threads only as a whole (inside its future); its
// fields are shared with other threads only under the queue's lock or through the
// release/acquire hand-off of `state` (see the module's rules), and what it holds (a
// `Waker`, a `Grant<T>`) is `Send` when `T` is.
unsafe impl<T: Send> Send for Waiter<T> {}

// SAFETY: a shared `&Waiter` reaches only the atomic state (`is_waiting`) and, for a queue
// holding its lock, the node's `queue` field, which nobody writes while the node is
// queued; everything else takes `Pin<&mut Waiter>` or the queue's `&mut`. So a `get`
// future stays `Sync`, as it was before its node lived in it.
unsafe impl<T: Send> Sync for Waiter<T> {}

impl<T> Waiter<T> {
    pub(crate) fn new() -> Self {
        Self {
            state: AtomicU8::new(IDLE),
            node: UnsafeCell::new(Node {
                prev: None,
                next: None,
                queue: std::ptr::null(),
                waker: None,
                grant: None,
            }),
            _pinned: PhantomPinned,
        }
    }

    /// Puts a new waiter in `slot` (a `get` makes one only once it found nothing idle, so
    /// the common path never builds or drops one) and returns it, pinned in place.
    pub(crate) fn place(slot: Pin<&mut Option<Self>>) -> Pin<&mut Self> {
        // SAFETY: the new waiter is written into the pinned place and never moved out of
        // it; the one it replaces (if any) is dropped in place, as pinning allows.
        unsafe { Pin::new_unchecked(slot.get_unchecked_mut().insert(Self::new())) }
    }

    /// Whether the waiter is in a queue or holds a grant it has not taken: either way its
    /// owner still has to settle it under the lock. Only the owner moves a waiter into or
    /// out of `IDLE`, so it reads this reliably without the lock.
    pub(crate) fn is_waiting(&self) -> bool {
        self.state.load(Ordering::Relaxed) != IDLE
    }

    /// Takes the grant if the waiter has been given one, without the lock.
    pub(crate) fn try_take(self: Pin<&mut Self>) -> Option<Grant<T>> {
        if self.state.load(Ordering::Acquire) != GRANTED {
            return None;
        }
        Some(self.take_granted())
    }

    /// Takes the grant of a waiter seen `GRANTED` (with acquire) by its owner.
    fn take_granted(self: Pin<&mut Self>) -> Grant<T> {
        // SAFETY: `GRANTED`, loaded with acquire by the owner: the granter unlinked the node
        // and made its last write before its release store, no queue points here any
        // more, and `Pin<&mut Self>` makes the caller the node's only user.
        let grant = self.node.with_mut(|node| unsafe { (*node).grant.take() });
        self.state.store(IDLE, Ordering::Relaxed);
        grant.expect("a granted waiter holds its grant")
    }
}

impl<T> Drop for Waiter<T> {
    fn drop(&mut self) {
        if self.state.load(Ordering::Acquire) == QUEUED {
            // A queue still points here; going on would leave it a dangling pointer.
            // The engine removes a waiter under the lock before dropping it, so this is
            // a bug in pool-core, and the only safe answer is to stop.
            std::process::abort();
        }
    }
}

/// The callers waiting for an object, longest first. Kept inside the pool's lock: every
/// method takes `&mut self`, which stands for holding it.
pub(crate) struct WaiterQueue<T> {
    head: Option<NonNull<Waiter<T>>>,
    tail: Option<NonNull<Waiter<T>>>,
    len: usize,
}

// SAFETY: the queue holds pointers to nodes that outlive their time in it (module rules);
// it touches them only through `&mut self`, that is, under the lock of the pool that owns
// it, whichever thread holds that lock.
unsafe impl<T: Send> Send for WaiterQueue<T> {}

impl<T> WaiterQueue<T> {
    pub(crate) fn new() -> Self {
        Self {
            head: None,
            tail: None,
            len: 0,
        }
    }

    /// Callers queued and not yet granted anything.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn id(&self) -> *const () {
        std::ptr::from_ref(self).cast()
    }

    /// Queues `waiter` at the back, to be woken with `waker` when granted.
    ///
    /// # Panics
    ///
    /// If the waiter is already queued or holds a grant (an engine bug).
    pub(crate) fn push(&mut self, waiter: Pin<&mut Waiter<T>>, waker: Waker) {
        assert!(!waiter.is_waiting(), "a waiter queued twice");
        let this = NonNull::from(&*waiter);
        let queue = self.id();
        // SAFETY: `IDLE`: no queue points at the node and `Pin<&mut>` makes us its only
        // user; from here it is `QUEUED` and ours under the lock (`&mut self`).
        waiter.node.with_mut(|node| unsafe {
            let node = &mut *node;
            node.prev = self.tail;
            node.next = None;
            node.queue = queue;
            node.waker = Some(waker);
        });
        match self.tail {
            // SAFETY: a linked node is alive and in place (module rules), and ours to
            // change under the lock.
            Some(tail) => unsafe { tail.as_ref() }
                .node
                .with_mut(|node| unsafe { (*node).next = Some(this) }),
            None => self.head = Some(this),
        }
        self.tail = Some(this);
        self.len += 1;
        waiter.state.store(QUEUED, Ordering::Relaxed);
    }

    /// The longest waiter, to be handed a grant; `None` when nobody waits.
    pub(crate) fn longest(&mut self) -> Option<Longest<'_, T>> {
        let head = self.head?;
        Some(Longest { queue: self, head })
    }

    /// For a queued waiter's owner, under the lock: its grant if it was granted meanwhile,
    /// else `waker` replaces the one it is woken with.
    pub(crate) fn poll_grant(
        &mut self,
        waiter: Pin<&mut Waiter<T>>,
        waker: &Waker,
    ) -> Option<Grant<T>> {
        match waiter.state.load(Ordering::Acquire) {
            GRANTED => Some(waiter.take_granted()),
            QUEUED => {
                self.assert_holds(&waiter);
                // SAFETY: `QUEUED` in this queue: its fields are ours under the lock.
                waiter.node.with_mut(|node| unsafe {
                    match &mut (*node).waker {
                        Some(current) if current.will_wake(waker) => {}
                        other => *other = Some(waker.clone()),
                    }
                });
                None
            }
            _ => None,
        }
    }

    /// Takes a waiter that gave up out of the queue, under the lock, returning any grant it
    /// had not taken yet, which the caller must pass on.
    pub(crate) fn remove(&mut self, waiter: Pin<&mut Waiter<T>>) -> Option<Grant<T>> {
        match waiter.state.load(Ordering::Acquire) {
            GRANTED => Some(waiter.take_granted()),
            QUEUED => {
                self.assert_holds(&waiter);
                // SAFETY: `QUEUED` in this queue: the node and its neighbours are linked,
                // alive, in place and ours under the lock (module rules).
                let waker = unsafe {
                    let (prev, next, waker) = waiter.node.with_mut(|node| {
                        let node = &mut *node;
                        (node.prev.take(), node.next.take(), node.waker.take())
                    });
                    match prev {
                        Some(prev) => prev.as_ref().node.with_mut(|node| (*node).next = next),
                        None => self.head = next,
                    }
                    match next {
                        Some(next) => next.as_ref().node.with_mut(|node| (*node).prev = prev),
                        None => self.tail = prev,
                    }
                    waker
                };
                self.len -= 1;
                waiter.state.store(IDLE, Ordering::Relaxed);
                drop(waker);
                None
            }
            _ => None,
        }
    }

    /// A queued node must be in this queue before its neighbours are touched as this
    /// queue's (two pools' locks do not exclude each other).
    fn assert_holds(&self, waiter: &Waiter<T>) {
        // SAFETY: `queue` is written only by `push`, by the owner, before the node is
        // linked; nobody writes it while the node is queued.
        let queue = waiter.node.with(|node| unsafe { (*node).queue });
        assert!(
            queue == self.id(),
            "a waiter settled in a queue it is not in"
        );
    }
}

/// The longest waiter of a queue, taken out of the line by [`grant`](Self::grant).
#[must_use = "the longest waiter stays in line until granted something"]
pub(crate) struct Longest<'a, T> {
    queue: &'a mut WaiterQueue<T>,
    head: NonNull<Waiter<T>>,
}

impl<T> Longest<'_, T> {
    /// Hands `grant` to the waiter, taking it out of the line, and returns its waker, to
    /// call once the lock is released.
    pub(crate) fn grant(self, grant: Grant<T>) -> Option<Waker> {
        let queue = self.queue;
        // SAFETY: the head is linked, so alive, in place and ours under the lock (module
        // rules). The node is unlinked and its fields written before the release store,
        // after which this function no longer touches it.
        unsafe {
            let waiter = self.head.as_ptr();
            let (next, waker) = (*waiter).node.with_mut(|node| {
                let node = &mut *node;
                node.grant = Some(grant);
                node.prev = None;
                (node.next.take(), node.waker.take())
            });
            queue.head = next;
            match next {
                Some(next) => next.as_ref().node.with_mut(|node| (*node).prev = None),
                None => queue.tail = None,
            }
            queue.len -= 1;
            (*waiter).state.store(GRANTED, Ordering::Release);
            waker
        }
    }
}

/// The atomics and cell the queue is built on: std's, or loom's in the loom models.
mod sync {
    #[cfg(all(test, pool_loom))]
    pub(super) use loom::cell::UnsafeCell;
    #[cfg(all(test, pool_loom))]
    pub(super) use loom::sync::atomic::{AtomicU8, Ordering};
    #[cfg(not(all(test, pool_loom)))]
    pub(super) use std::sync::atomic::{AtomicU8, Ordering};

    /// `std::cell::UnsafeCell` with loom's access API (`with`, `with_mut`), so the same
    /// code runs under loom, which checks every access.
    #[cfg(not(all(test, pool_loom)))]
    pub(super) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

    #[cfg(not(all(test, pool_loom)))]
    impl<T> UnsafeCell<T> {
        pub(super) const fn new(value: T) -> Self {
            Self(std::cell::UnsafeCell::new(value))
        }

        #[inline(always)]
        pub(super) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
            f(self.0.get())
        }

        #[inline(always)]
        pub(super) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }
}

#[cfg(all(test, not(pool_loom)))]
mod tests {
    use super::*;
    use std::pin::pin;
    use std::task::Waker;

    fn grant_longest(queue: &mut WaiterQueue<()>, grant: Grant<()>) {
        let longest = queue.longest().expect("somebody waits");
        let _ = longest.grant(grant);
    }

    fn granted_create_slot(waiter: Pin<&mut Waiter<()>>) -> bool {
        matches!(waiter.try_take(), Some(Grant::CreateSlot))
    }

    #[test]
    fn grants_go_to_the_longest_waiter_first() {
        let mut queue = WaiterQueue::new();
        let mut first = pin!(Waiter::new());
        let mut second = pin!(Waiter::new());
        queue.push(first.as_mut(), Waker::noop().clone());
        queue.push(second.as_mut(), Waker::noop().clone());
        grant_longest(&mut queue, Grant::CreateSlot);
        assert!(!granted_create_slot(second.as_mut()));
        assert!(granted_create_slot(first.as_mut()));
        assert_eq!(queue.len(), 1);
        assert!(queue.remove(second.as_mut()).is_none());
        assert!(queue.is_empty());
    }

    #[test]
    fn a_removed_waiter_is_skipped_wherever_it_stood() {
        let mut queue = WaiterQueue::new();
        let mut waiters = [
            Box::pin(Waiter::new()),
            Box::pin(Waiter::new()),
            Box::pin(Waiter::new()),
        ];
        for waiter in &mut waiters {
            queue.push(waiter.as_mut(), Waker::noop().clone());
        }
        assert!(queue.remove(waiters[1].as_mut()).is_none());
        grant_longest(&mut queue, Grant::CreateSlot);
        grant_longest(&mut queue, Grant::CreateSlot);
        assert!(granted_create_slot(waiters[0].as_mut()));
        assert!(!waiters[1].is_waiting());
        assert!(granted_create_slot(waiters[2].as_mut()));
        assert!(queue.is_empty());
        assert!(queue.longest().is_none());
        // The last one removed leaves the queue usable.
        queue.push(waiters[1].as_mut(), Waker::noop().clone());
        assert!(queue.remove(waiters[1].as_mut()).is_none());
        assert!(queue.head.is_none() && queue.tail.is_none());
    }

    #[test]
    fn nobody_is_granted_when_nobody_waits() {
        let mut queue = WaiterQueue::<()>::new();
        assert!(queue.longest().is_none());
    }

    #[test]
    fn removing_returns_an_uncollected_grant() {
        let mut queue = WaiterQueue::<()>::new();
        let mut waiter = pin!(Waiter::new());
        queue.push(waiter.as_mut(), Waker::noop().clone());
        grant_longest(&mut queue, Grant::CreateSlot);
        assert!(matches!(
            queue.remove(waiter.as_mut()),
            Some(Grant::CreateSlot)
        ));
        assert!(!waiter.is_waiting());
        assert!(queue.is_empty());
    }

    #[test]
    fn polling_under_the_lock_keeps_a_waiter_queued_or_hands_its_grant() {
        let mut queue = WaiterQueue::<()>::new();
        let mut waiter = pin!(Waiter::new());
        queue.push(waiter.as_mut(), Waker::noop().clone());
        assert!(queue.poll_grant(waiter.as_mut(), Waker::noop()).is_none());
        assert!(waiter.is_waiting());
        grant_longest(&mut queue, Grant::Closed);
        assert!(matches!(
            queue.poll_grant(waiter.as_mut(), Waker::noop()),
            Some(Grant::Closed)
        ));
        assert!(!waiter.is_waiting());
    }

    #[test]
    fn a_waiter_is_never_removed_from_another_queue() {
        let mut queue = WaiterQueue::<()>::new();
        let mut other = WaiterQueue::<()>::new();
        let mut waiter = Box::pin(Waiter::new());
        queue.push(waiter.as_mut(), Waker::noop().clone());
        let wrong_queue = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            other.remove(waiter.as_mut())
        }));
        assert!(wrong_queue.is_err(), "removed from a queue it was not in");
        assert!(waiter.is_waiting() && other.is_empty());
        assert!(queue.remove(waiter.as_mut()).is_none());
    }
}
