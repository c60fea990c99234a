//! Loom model tests of the pool's state transitions under concurrency.
//!
//! The engine's shared state is one mutex around [`State`], the waiters' nodes (which a
//! granter fills under the lock and a woken waiter empties without it, `waiters.rs`), and
//! the atomic count of `Pool` handles whose last decrement closes the pool. These tests
//! drive `State` through the same event methods the engine calls, one lock section each (a
//! return, a waiter giving up or looking for its grant under the lock, a create settling
//! its slot, a take, the backoff timer, close), inside a `loom::sync::Mutex`, with real
//! waiter nodes whose atomics and cells are loom's, so the lock-free hand-off of a grant is
//! checked too; loom runs every interleaving of them with up to three preemptions. After each run they
//! check the accounting: `in_use` (= `size - idle - creating`) equals what the threads still
//! hold, and every object is in exactly one place (idle, held, granted to a waiter,
//! destroyed, or taken), never lost and never in two.
//!
//! Run with (about 70 s from a cold build on 2 cores, most of it compiling loom in release;
//! the models themselves take about 5 s):
//!
//! ```text
//! RUSTFLAGS="--cfg pool_loom" CARGO_TARGET_DIR=/tmp/loom-target \
//!     cargo test -p pool-core --lib loom --release
//! ```

use std::collections::BTreeSet;
use std::pin::Pin;
use std::task::Waker;

use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::sync::{Arc, Mutex};
use loom::thread;
use tokio::time::Instant;

use super::{AfterUnlock, FirstLook, State};
use crate::config::PoolConfig;
use crate::entry::Entry;
use crate::waiters::{Grant, Waiter};

/// A waiting caller's node, pinned as its `get` future pins it.
struct TestWaiter(Option<Pin<Box<Waiter<u64>>>>);

impl TestWaiter {
    fn new() -> Self {
        Self(Some(Box::pin(Waiter::new())))
    }

    fn node(&mut self) -> Pin<&mut Waiter<u64>> {
        self.0
            .as_mut()
            .expect("the node is there until dropped")
            .as_mut()
    }
}

impl Drop for TestWaiter {
    /// A model that fails an assertion while this node is still queued unwinds past it:
    /// dropping a queued node aborts (see `waiters.rs`), which would swallow the failure's
    /// message, so the node is leaked instead (its memory stays valid for the queue).
    fn drop(&mut self) {
        if let Some(node) = self.0.take() {
            if node.is_waiting() && std::thread::panicking() {
                std::mem::forget(node);
            }
        }
    }
}

/// Runs `f` under loom with at most three preemptions per execution (tokio's loom CI uses
/// two): the four-thread models explore every interleaving within that bound in seconds,
/// where an unbounded search takes hours. `LOOM_MAX_PREEMPTIONS` overrides it.
fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(3);
    }
    builder.check(f);
}

/// Objects are their own ids.
type TestState = State<u64, ()>;

/// The pool's shared state as the engine keeps it: one lock around `State`.
struct Shared {
    state: Mutex<TestState>,
    config: PoolConfig,
    /// `Shared::closed` of the engine: set under the lock by `close`.
    closed: AtomicBool,
}

/// What one thread ends up with.
#[derive(Default)]
struct Outcome {
    /// Objects it still holds.
    held: Vec<u64>,
    /// Objects whose `destroy` its lock sections queued.
    destroyed: Vec<u64>,
    /// Objects it gave away with `take`.
    taken: Vec<u64>,
    /// What its waiter was last told.
    told: Option<Told>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Told {
    Object(u64),
    CreatedObject(u64),
    Closed,
    GaveUp,
}

impl Shared {
    fn new(max_size: usize, max_concurrent_creates: usize) -> Self {
        let config = PoolConfig {
            max_size,
            max_concurrent_creates,
            ..PoolConfig::default()
        };
        Self {
            state: Mutex::new(State::new(&config, "loom".into())),
            config,
            closed: AtomicBool::new(false),
        }
    }

    /// One lock section; the `destroy`s it queued are recorded in `outcome`.
    fn locked<R>(
        &self,
        outcome: &mut Outcome,
        f: impl FnOnce(&mut TestState, &mut AfterUnlock<u64>) -> R,
    ) -> R {
        let mut after = AfterUnlock::new();
        let result = f(&mut self.state.lock().unwrap(), &mut after);
        outcome
            .destroyed
            .extend(after.destroy.into_iter().map(|(id, _)| id));
        result
    }

    /// `Shared::return_object` for an object in good shape: the fast path, else the rest.
    fn give_back(&self, entry: Box<Entry<u64>>, outcome: &mut Outcome) {
        self.locked(outcome, |state, after| {
            if let Err(entry) = state.keep_idle(entry) {
                state.returned(entry, None, None, after);
            }
        });
    }

    /// `Object::take`.
    fn take(&self, entry: Box<Entry<u64>>, outcome: &mut Outcome) {
        outcome.taken.push(entry.object);
        self.locked(outcome, |state, after| {
            state.taken(entry.meta.id, None, after)
        });
    }

    /// `Shared::close`.
    fn close(&self, outcome: &mut Outcome) {
        self.locked(outcome, |state, after| {
            self.closed.store(true, Ordering::Release);
            state.close(after);
        });
    }

    /// A queued waiter polled once (`FindOrQueue::poll`: its grant taken without the lock,
    /// else looked for under it), then, with nothing granted, giving up
    /// (`FindOrQueue::drop`); with an object or a created one, either keeping it or using
    /// it and giving it back.
    fn wait_once(&self, mut waiter: TestWaiter, keep: bool, outcome: &mut Outcome) {
        let grant = match waiter.node().try_take() {
            Some(grant) => Some(grant),
            None => self.locked(outcome, |state, _| {
                state.poll_grant(waiter.node(), Waker::noop())
            }),
        };
        let Some(grant) = grant else {
            self.locked(outcome, |state, after| state.give_up(waiter.node(), after));
            outcome.told = Some(Told::GaveUp);
            return;
        };
        if self.closed.load(Ordering::Acquire) {
            self.locked(outcome, |state, after| state.regrant(grant, after));
            outcome.told = Some(Told::Closed);
            return;
        }
        let entry = match grant {
            Grant::Closed => {
                outcome.told = Some(Told::Closed);
                return;
            }
            Grant::Object(entry) => {
                outcome.told = Some(Told::Object(entry.object));
                entry
            }
            Grant::CreateSlot => match self.create_in_slot(outcome) {
                Some(entry) => {
                    outcome.told = Some(Told::CreatedObject(entry.object));
                    entry
                }
                None => {
                    outcome.told = Some(Told::Closed);
                    return;
                }
            },
        };
        if keep {
            outcome.held.push(entry.object);
            // Leaked on purpose: the checks look for it among what the threads hold.
            drop(entry);
        } else {
            self.give_back(entry, outcome);
        }
    }

    /// The settling half of `create_in_slot`, for a create that succeeded.
    fn create_in_slot(&self, outcome: &mut Outcome) -> Option<Box<Entry<u64>>> {
        self.locked(outcome, |state, after| create(state, &self.config, after))
    }
}

/// A create that succeeded, settled as `create_in_slot` settles it: the object is its id.
fn create(
    state: &mut TestState,
    config: &PoolConfig,
    after: &mut AfterUnlock<u64>,
) -> Option<Box<Entry<u64>>> {
    let id = state.next_id;
    let epoch = state.epoch();
    state
        .created_for_caller(config, Some(Ok(id)), false, Instant::now(), epoch, after)
        .ok()
}

/// Runs `f` on a loom thread of its own with a handle to `shared`, returning what it ends
/// up with.
fn spawn_with(
    shared: &Arc<Shared>,
    f: impl FnOnce(&Shared, &mut Outcome) + Send + 'static,
) -> thread::JoinHandle<Outcome> {
    let shared = Arc::clone(shared);
    thread::spawn(move || {
        let mut outcome = Outcome::default();
        f(&shared, &mut outcome);
        outcome
    })
}

/// Sets up `n` objects checked out, as `get` + create leave them.
fn check_out(shared: &Shared, n: usize) -> Vec<Box<Entry<u64>>> {
    let mut state = shared.state.lock().unwrap();
    let mut after = AfterUnlock::new();
    let objects = (0..n)
        .map(|_| {
            let mut waiter = TestWaiter::new();
            let look = state.look_further(true, None, &shared.config, waiter.node(), Waker::noop());
            assert!(matches!(look, FirstLook::CreateSlot));
            create(&mut state, &shared.config, &mut after).unwrap()
        })
        .collect();
    assert!(after.destroy.is_empty());
    objects
}

/// A caller that finds nothing and queues, as `get` does.
fn queue_waiter(shared: &Shared) -> TestWaiter {
    let mut waiter = TestWaiter::new();
    let look = shared.state.lock().unwrap().look_further(
        true,
        None,
        &shared.config,
        waiter.node(),
        Waker::noop(),
    );
    assert!(matches!(look, FirstLook::Queued), "expected to queue");
    waiter
}

/// Every object created is in exactly one place, and `in_use` is what is held or granted.
fn assert_accounted(shared: &Shared, outcomes: &[Outcome], granted: &[u64]) {
    let state = shared.state.lock().unwrap();
    let status = state.status();
    let held: Vec<u64> = outcomes.iter().flat_map(|o| o.held.clone()).collect();
    assert_eq!(
        status.in_use,
        held.len() + granted.len(),
        "in_use vs what the threads hold ({held:?}) and the grants ({granted:?}): {status:?}"
    );
    assert_eq!(status.size, status.idle + status.in_use + status.creating);
    assert!(status.size <= status.max_size, "{status:?}");
    let mut places = BTreeSet::new();
    let idle = state.idle.iter().map(|entry| entry.object);
    let destroyed = outcomes.iter().flat_map(|o| o.destroyed.clone());
    let taken = outcomes.iter().flat_map(|o| o.taken.clone());
    for id in idle
        .chain(held)
        .chain(granted.iter().copied())
        .chain(destroyed)
        .chain(taken)
    {
        assert!(places.insert(id), "object {id} is in two places");
    }
    let created: BTreeSet<u64> = (1..state.next_id).collect();
    assert_eq!(places, created, "objects lost");
    assert_eq!(state.metrics.created, state.next_id - 1);
    let destroyed_total = state.metrics.destroyed_by.total();
    let destroyed_here: usize = outcomes.iter().map(|o| o.destroyed.len()).sum();
    assert_eq!(destroyed_total, destroyed_here as u64);
}

/// Takes the grant of a waiter that never ran, for the final accounting (a waiter still
/// queued leaves the queue, so its node may go).
fn collect_grant(shared: &Shared, mut waiter: TestWaiter) -> Option<u64> {
    let mut state = shared.state.lock().unwrap();
    let mut after = AfterUnlock::new();
    match state.poll_grant(waiter.node(), Waker::noop()) {
        // Back to the state's books as a handed-out object: the caller counts it.
        Some(Grant::Object(entry)) => Some(entry.object),
        Some(Grant::CreateSlot) => panic!("a create slot granted with no room"),
        Some(Grant::Closed) => None,
        None => {
            state.give_up(waiter.node(), &mut after);
            None
        }
    }
}

#[test]
fn loom_a_return_racing_a_waiter_that_gives_up_leaves_the_object_in_one_place() {
    model(|| {
        let shared = Arc::new(Shared::new(1, 4));
        let object = check_out(&shared, 1).pop().unwrap();
        let (first, next) = (queue_waiter(&shared), queue_waiter(&shared));
        let returner = spawn_with(&shared, move |shared, outcome| {
            shared.give_back(object, outcome);
        });
        let waiter = spawn_with(&shared, move |shared, outcome| {
            shared.wait_once(first, false, outcome);
        });
        let outcomes = [returner.join().unwrap(), waiter.join().unwrap()];
        // Whatever the order, the object ends with the waiter behind, directly or after
        // the first waiter used it or passed its grant on: never idle beside a waiter,
        // never destroyed, never lost.
        let granted: Vec<u64> = collect_grant(&shared, next).into_iter().collect();
        assert_eq!(granted, [1], "the second waiter did not get the object");
        assert_accounted(&shared, &outcomes, &granted);
        let state = shared.state.lock().unwrap();
        assert!(state.idle.is_empty() && state.waiters.is_empty());
        assert_eq!(state.metrics.destroyed_by.total(), 0);
    });
}

#[test]
fn loom_two_returns_racing_two_waiters_hand_each_object_out_once() {
    model(|| {
        let shared = Arc::new(Shared::new(2, 4));
        let objects = check_out(&shared, 2);
        let waiters = [queue_waiter(&shared), queue_waiter(&shared)];
        let mut threads = Vec::new();
        for object in objects {
            let shared = Arc::clone(&shared);
            threads.push(thread::spawn(move || {
                let mut outcome = Outcome::default();
                shared.give_back(object, &mut outcome);
                outcome
            }));
        }
        for (n, waiter) in waiters.into_iter().enumerate() {
            let shared = Arc::clone(&shared);
            threads.push(thread::spawn(move || {
                let mut outcome = Outcome::default();
                // The first waiter keeps what it gets, the second uses it and gives it back.
                shared.wait_once(waiter, n == 0, &mut outcome);
                outcome
            }));
        }
        let outcomes: Vec<Outcome> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert_accounted(&shared, &outcomes, &[]);
        let state = shared.state.lock().unwrap();
        assert!(state.waiters.is_empty());
        assert_eq!(state.metrics.destroyed_by.total(), 0);
    });
}

#[test]
fn loom_close_racing_a_return_and_a_waiter_destroys_the_object_exactly_once() {
    model(|| {
        let shared = Arc::new(Shared::new(1, 4));
        let object = check_out(&shared, 1).pop().unwrap();
        let waiter = queue_waiter(&shared);
        let closer = spawn_with(&shared, move |shared, outcome| {
            shared.close(outcome);
        });
        let returner = spawn_with(&shared, move |shared, outcome| {
            shared.give_back(object, outcome);
        });
        let waiter = spawn_with(&shared, move |shared, outcome| {
            shared.wait_once(waiter, false, outcome);
        });
        let outcomes = [
            closer.join().unwrap(),
            returner.join().unwrap(),
            waiter.join().unwrap(),
        ];
        assert_accounted(&shared, &outcomes, &[]);
        let state = shared.state.lock().unwrap();
        assert!(state.closed && state.idle.is_empty() && state.waiters.is_empty());
        assert_eq!(state.size, 0, "a slot outlived close");
        assert_eq!(state.metrics.destroyed_by.closed, 1);
        assert_eq!(state.destroying, 1);
    });
}

#[test]
fn loom_a_freed_slot_racing_the_end_of_a_backoff_is_granted_at_most_once() {
    model(|| {
        // One slot, held by an object about to be taken; creates paused by a failure.
        let shared = Arc::new(Shared::new(1, 1));
        let object = check_out(&shared, 1).pop().unwrap();
        // As a failed create leaves it (no slot is free to fail one in here).
        let (_, delay) = shared
            .state
            .lock()
            .unwrap()
            .backoff
            .create_failed(Instant::now())
            .unwrap();
        let waiter = queue_waiter(&shared);
        let taker = spawn_with(&shared, move |shared, outcome| {
            shared.take(object, outcome);
        });
        let timer = spawn_with(&shared, move |shared, outcome| {
            shared.locked(outcome, |state, after| state.backoff_elapsed(delay, after));
        });
        let waiter = spawn_with(&shared, move |shared, outcome| {
            shared.wait_once(waiter, true, outcome);
        });
        let outcomes = [
            taker.join().unwrap(),
            timer.join().unwrap(),
            waiter.join().unwrap(),
        ];
        assert_accounted(&shared, &outcomes, &[]);
        let mut state = shared.state.lock().unwrap();
        assert_eq!(state.creating, 0, "a create slot leaked");
        assert!(state.waiters.is_empty());
        // Nothing is stuck: the waiter holds a new object, or a newcomer can create one.
        match outcomes[2].told {
            Some(Told::CreatedObject(_)) => assert_eq!(state.size, 1),
            told => {
                assert_eq!(told, Some(Told::GaveUp));
                assert_eq!(state.size, 0);
                let mut newcomer = TestWaiter::new();
                let look =
                    state.look_further(true, None, &shared.config, newcomer.node(), Waker::noop());
                if !matches!(look, FirstLook::CreateSlot) {
                    state.give_up(newcomer.node(), &mut AfterUnlock::new());
                    panic!("the pool stayed paused");
                }
            }
        }
    });
}

#[test]
fn loom_a_waiter_giving_up_a_granted_slot_passes_it_to_the_next() {
    model(|| {
        let shared = Arc::new(Shared::new(1, 4));
        let object = check_out(&shared, 1).pop().unwrap();
        let first = queue_waiter(&shared);
        let mut second = queue_waiter(&shared);
        let taker = spawn_with(&shared, move |shared, outcome| {
            shared.take(object, outcome);
        });
        let first = spawn_with(&shared, move |shared, outcome| {
            shared.wait_once(first, true, outcome);
        });
        let outcomes = [taker.join().unwrap(), first.join().unwrap()];
        // The second waiter never ran: it holds the slot the first gave up, or nothing if
        // the first created in it.
        let mut state = shared.state.lock().unwrap();
        let mut after = AfterUnlock::new();
        let granted = state.poll_grant(second.node(), Waker::noop());
        match outcomes[1].told {
            Some(Told::CreatedObject(_)) => {
                assert!(granted.is_none());
                assert_eq!((state.size, state.creating), (1, 0));
                state.give_up(second.node(), &mut after);
            }
            told => {
                assert_eq!(told, Some(Told::GaveUp));
                assert!(
                    matches!(granted, Some(Grant::CreateSlot)),
                    "the slot was lost"
                );
                assert_eq!((state.size, state.creating), (1, 1));
                state.create_abandoned(&mut after);
                assert_eq!(state.size, 0);
            }
        }
        drop(state);
        assert_accounted(&shared, &outcomes, &[]);
    });
}

/// A `Pool` handle as `pool.rs` counts them: clones add (relaxed), drops subtract, and the
/// drop that takes the count to zero closes the pool.
struct Handle {
    pool: Arc<Counted>,
}

struct Counted {
    handles: AtomicUsize,
    closes: AtomicUsize,
    shared: Shared,
}

impl Clone for Handle {
    fn clone(&self) -> Self {
        self.pool.handles.fetch_add(1, Ordering::Relaxed);
        Self {
            pool: Arc::clone(&self.pool),
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        if self.pool.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.pool.closes.fetch_add(1, Ordering::Relaxed);
            let mut outcome = Outcome::default();
            self.pool
                .shared
                .locked(&mut outcome, |state, after| state.close(after));
        }
    }
}

impl Handle {
    /// Uses the pool: it must still be open while this handle lives.
    fn use_pool(&self) {
        let mut outcome = Outcome::default();
        let closed = self
            .pool
            .shared
            .locked(&mut outcome, |state, _| state.closed);
        assert!(!closed, "the pool closed while a handle was alive");
    }
}

#[test]
fn loom_the_last_handle_dropped_closes_the_pool_exactly_once() {
    model(|| {
        let pool = Arc::new(Counted {
            handles: AtomicUsize::new(1),
            closes: AtomicUsize::new(0),
            shared: Shared::new(1, 4),
        });
        let original = Handle {
            pool: Arc::clone(&pool),
        };
        let threads: Vec<_> = (0..2)
            .map(|n| {
                let handle = original.clone();
                thread::spawn(move || {
                    if n == 0 {
                        // A clone made and dropped on another thread meanwhile.
                        let again = handle.clone();
                        drop(handle);
                        again.use_pool();
                    } else {
                        handle.use_pool();
                    }
                })
            })
            .collect();
        original.use_pool();
        drop(original);
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(pool.closes.load(Ordering::Relaxed), 1);
        assert_eq!(pool.handles.load(Ordering::Relaxed), 0);
        assert!(pool.shared.state.lock().unwrap().closed);
    });
}
