//! A scriptable test manager and helpers shared by the integration tests.
//!
//! [`TestManager`] hands out [`TestObject`]s numbered from 1 and records every hook call
//! in a [`Probe`] the test keeps after the manager has moved into the pool. The probe also
//! scripts faults: the next call (or every call) of a hook can fail, panic or hang, and
//! `is_broken` / `destroy` can be switched to misbehave.
#![allow(dead_code)]

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Poll;
use std::time::Duration;

use pool_core::{Manager, Metrics, Object, ObjectMeta, Pool, PoolBuilder, PoolError, TimeoutKind};
use tokio::task::JoinHandle;

/// How long a hanging hook sleeps: far beyond any timeout a test sets.
pub(crate) const HANG: Duration = Duration::from_secs(24 * 60 * 60);

pub(crate) type TestPool = Pool<TestManager>;
pub(crate) type TestGuard = Object<TestManager>;
pub(crate) type GetResult = Result<TestGuard, PoolError<TestError>>;

/// The scriptable hooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hook {
    Create = 0,
    Recycle = 1,
    HealthCheck = 2,
}

/// What a scripted hook call does instead of succeeding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Returns a [`TestError`].
    Fail,
    /// Panics.
    Panic,
    /// Sleeps for [`HANG`], then succeeds.
    Hang,
}

/// What `is_broken` answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Broken {
    /// Only objects whose own `broken` flag is set.
    #[default]
    Flagged,
    /// Every object.
    Always,
    /// Panics.
    Panic,
}

/// How `destroy` behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Destroy {
    #[default]
    Normal,
    /// Sleeps this long before finishing.
    Slow(Duration),
    /// Panics (after the call is counted, before the id is recorded).
    Panic,
}

/// The error every failing hook returns: which hook, and which call of it (from 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TestError {
    pub(crate) hook: Hook,
    pub(crate) call: usize,
}

impl fmt::Display for TestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} call {} failed on purpose", self.hook, self.call)
    }
}

impl std::error::Error for TestError {}

/// A pooled object.
#[derive(Debug)]
pub(crate) struct TestObject {
    /// The manager's own number for it, from 1 in creation order.
    pub(crate) id: u64,
    /// Set while a user holds it (see [`TestObject::claim`]).
    pub(crate) in_use: Arc<AtomicBool>,
    /// Makes `is_broken` say yes for this object.
    pub(crate) broken: bool,
}

impl TestObject {
    /// Marks the object as held, panicking if another user already holds it.
    pub(crate) fn claim(&self) {
        let was = self.in_use.swap(true, Ordering::SeqCst);
        assert!(!was, "object {} handed to two users at once", self.id);
    }

    /// Clears the mark set by [`TestObject::claim`].
    pub(crate) fn release(&self) {
        let was = self.in_use.swap(false, Ordering::SeqCst);
        assert!(was, "object {} released without being claimed", self.id);
    }
}

#[derive(Default)]
struct Script {
    next: [VecDeque<Fault>; 3],
    always: [Option<Fault>; 3],
    delay: [Duration; 3],
    broken: Broken,
    destroy: Destroy,
}

/// What the test keeps of the manager: call counters, fault switches, destroyed ids.
#[derive(Default)]
pub(crate) struct Probe {
    calls: [AtomicUsize; 3],
    broken_checks: AtomicUsize,
    destroy_calls: AtomicUsize,
    next_id: AtomicU64,
    script: Mutex<Script>,
    destroyed_ids: Mutex<Vec<u64>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Probe {
    /// The next call of `hook` does `fault` (queued after earlier scripted faults).
    pub(crate) fn fail_next(&self, hook: Hook, fault: Fault) {
        self.fail_next_n(hook, fault, 1);
    }

    /// The next `n` calls of `hook` do `fault`.
    pub(crate) fn fail_next_n(&self, hook: Hook, fault: Fault, n: usize) {
        lock(&self.script).next[hook as usize].extend(std::iter::repeat_n(fault, n));
    }

    /// Every call of `hook` not otherwise scripted does `fault` (`None`: succeeds).
    pub(crate) fn set_always(&self, hook: Hook, fault: Option<Fault>) {
        lock(&self.script).always[hook as usize] = fault;
    }

    /// Every call of `hook` sleeps `delay` first.
    pub(crate) fn set_delay(&self, hook: Hook, delay: Duration) {
        lock(&self.script).delay[hook as usize] = delay;
    }

    pub(crate) fn set_broken(&self, broken: Broken) {
        lock(&self.script).broken = broken;
    }

    pub(crate) fn set_destroy(&self, destroy: Destroy) {
        lock(&self.script).destroy = destroy;
    }

    /// Calls of `hook` so far, whatever they did.
    pub(crate) fn calls(&self, hook: Hook) -> usize {
        self.calls[hook as usize].load(Ordering::SeqCst)
    }

    pub(crate) fn creates(&self) -> usize {
        self.calls(Hook::Create)
    }

    pub(crate) fn recycles(&self) -> usize {
        self.calls(Hook::Recycle)
    }

    pub(crate) fn health_checks(&self) -> usize {
        self.calls(Hook::HealthCheck)
    }

    pub(crate) fn broken_checks(&self) -> usize {
        self.broken_checks.load(Ordering::SeqCst)
    }

    /// Objects the manager handed to the pool.
    pub(crate) fn created(&self) -> u64 {
        self.next_id.load(Ordering::SeqCst)
    }

    /// `destroy` calls started (including slow and panicking ones).
    pub(crate) fn destroy_calls(&self) -> usize {
        self.destroy_calls.load(Ordering::SeqCst)
    }

    /// Ids of the objects whose `destroy` finished, in that order.
    pub(crate) fn destroyed_ids(&self) -> Vec<u64> {
        lock(&self.destroyed_ids).clone()
    }

    /// `destroy` calls finished.
    pub(crate) fn destroyed(&self) -> usize {
        lock(&self.destroyed_ids).len()
    }

    /// Every object the manager created was destroyed exactly once, except those in
    /// `taken`, which were never destroyed.
    pub(crate) fn assert_each_destroyed_once_except(&self, taken: &[u64]) {
        let mut times: BTreeMap<u64, usize> = (1..=self.created()).map(|id| (id, 0)).collect();
        for id in self.destroyed_ids() {
            *times
                .get_mut(&id)
                .expect("destroyed an object never created") += 1;
        }
        for (id, count) in times {
            let expected = usize::from(!taken.contains(&id));
            assert_eq!(count, expected, "object {id} destroyed {count} times");
        }
    }

    /// Counts a call of `hook` and does what the script says.
    async fn run(&self, hook: Hook) -> Result<(), TestError> {
        let call = self.calls[hook as usize].fetch_add(1, Ordering::SeqCst) + 1;
        let (delay, fault) = {
            let mut script = lock(&self.script);
            let fault = script.next[hook as usize]
                .pop_front()
                .or(script.always[hook as usize]);
            (script.delay[hook as usize], fault)
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        match fault {
            None => Ok(()),
            Some(Fault::Fail) => Err(TestError { hook, call }),
            Some(Fault::Panic) => panic!("{hook:?} call {call} panicked on purpose"),
            Some(Fault::Hang) => {
                tokio::time::sleep(HANG).await;
                Ok(())
            }
        }
    }
}

/// The manager under test; all its state lives in the shared [`Probe`].
pub(crate) struct TestManager {
    probe: Arc<Probe>,
}

impl TestManager {
    pub(crate) fn new() -> (Self, Arc<Probe>) {
        let probe = Arc::new(Probe::default());
        (
            Self {
                probe: Arc::clone(&probe),
            },
            probe,
        )
    }
}

impl Manager for TestManager {
    type Object = TestObject;
    type Error = TestError;

    async fn create(&self) -> Result<TestObject, TestError> {
        self.probe.run(Hook::Create).await?;
        Ok(TestObject {
            id: self.probe.next_id.fetch_add(1, Ordering::SeqCst) + 1,
            in_use: Arc::default(),
            broken: false,
        })
    }

    async fn recycle(&self, _: &mut TestObject, _: &ObjectMeta) -> Result<(), TestError> {
        self.probe.run(Hook::Recycle).await
    }

    async fn health_check(&self, _: &mut TestObject, _: &ObjectMeta) -> Result<(), TestError> {
        self.probe.run(Hook::HealthCheck).await
    }

    fn is_broken(&self, object: &TestObject) -> bool {
        self.probe.broken_checks.fetch_add(1, Ordering::SeqCst);
        match lock(&self.probe.script).broken {
            Broken::Flagged => object.broken,
            Broken::Always => true,
            Broken::Panic => panic!("is_broken panicked on purpose"),
        }
    }

    async fn destroy(&self, object: TestObject) {
        self.probe.destroy_calls.fetch_add(1, Ordering::SeqCst);
        let mode = lock(&self.probe.script).destroy;
        match mode {
            Destroy::Normal => {}
            Destroy::Slow(delay) => tokio::time::sleep(delay).await,
            Destroy::Panic => panic!("destroy of object {} panicked on purpose", object.id),
        }
        lock(&self.probe.destroyed_ids).push(object.id);
    }
}

/// A builder for a pool of [`TestManager`] objects, and its probe.
pub(crate) fn builder() -> (PoolBuilder<TestManager>, Arc<Probe>) {
    let (manager, probe) = TestManager::new();
    (Pool::builder(manager), probe)
}

/// A pool of at most `max_size` objects with every other setting at its default.
pub(crate) fn pool(max_size: usize) -> (TestPool, Arc<Probe>) {
    let (builder, probe) = builder();
    (builder.max_size(max_size).build().unwrap(), probe)
}

/// The pool's id for a checked-out object.
pub(crate) fn meta_id(object: &TestGuard) -> u64 {
    Object::meta(object).id
}

/// Checks out `n` objects one after another.
pub(crate) async fn hold(pool: &TestPool, n: usize) -> Vec<TestGuard> {
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        held.push(pool.get().await.unwrap());
    }
    held
}

/// Makes `n` objects and returns them, oldest first, so the pool holds `n` idle objects.
pub(crate) async fn fill_idle(pool: &TestPool, n: usize) {
    drop(hold(pool, n).await);
    assert_eq!(pool.status().idle, n);
}

/// Spawns `task` and waits until it has queued in `pool` (one more waiter than before),
/// so tasks spawned one after another queue in that order.
pub(crate) async fn spawn_queued<T: Send + 'static>(
    pool: &TestPool,
    task: impl Future<Output = T> + Send + 'static,
) -> JoinHandle<T> {
    let before = pool.status().waiting;
    let handle = tokio::spawn(task);
    wait_until("the task to queue", || pool.status().waiting > before).await;
    handle
}

/// Spawns a `get` on a clone of `pool` and waits until it has queued.
pub(crate) async fn spawn_waiter(pool: &TestPool) -> JoinHandle<GetResult> {
    let clone = pool.clone();
    spawn_queued(pool, async move { clone.get().await }).await
}

/// Spawns a `get` on a clone of `pool` without waiting for anything.
pub(crate) fn spawn_get(pool: &TestPool) -> JoinHandle<GetResult> {
    let clone = pool.clone();
    tokio::spawn(async move { clone.get().await })
}

/// Yields to other tasks until `done` holds, without moving the clock.
pub(crate) async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..10_000 {
        if done() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("gave up waiting for {what}");
}

/// Lets spawned tasks (e.g. `destroy` hooks) run for a while, without moving the clock.
pub(crate) async fn settle() {
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
}

/// Polls `future` exactly once.
pub(crate) async fn poll_once<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *future).poll(cx))).await
}

/// Asserts the accounting invariants: `size == idle + in_use + creating`, `destroyed` is
/// the sum of its reasons, and `created == destroyed + taken + size` (less the creates in
/// flight, which hold a slot but no object yet).
pub(crate) fn assert_balanced(pool: &TestPool) {
    let status = pool.status();
    let metrics = pool.metrics();
    assert_eq!(
        status.size,
        status.idle + status.in_use + status.creating,
        "{status:?}"
    );
    assert_eq!(
        metrics.destroyed,
        destroyed_by_total(&metrics),
        "{metrics:?}"
    );
    assert_eq!(
        metrics.created,
        metrics.destroyed + metrics.taken + (status.size - status.creating) as u64,
        "{metrics:?} {status:?}"
    );
}

/// Checks the pool is balanced, holds `size` objects with no create or waiter left over,
/// and still serves a `get` (within a second).
pub(crate) async fn assert_recovered(pool: &TestPool, size: usize) {
    assert_balanced(pool);
    let status = pool.status();
    assert_eq!(
        (status.size, status.creating, status.waiting),
        (size, 0, 0),
        "{status:?}"
    );
    let object = tokio::time::timeout(Duration::from_secs(1), pool.get())
        .await
        .expect("a get works again")
        .unwrap();
    drop(object);
    assert_balanced(pool);
}

fn destroyed_by_total(metrics: &Metrics) -> u64 {
    let by = metrics.destroyed_by;
    by.broken
        + by.recycle_failed
        + by.health_check_failed
        + by.idle_timeout
        + by.lifetime
        + by.max_uses
        + by.evicted
        + by.closed
        + by.retained_out
        + by.abandoned
}

/// The parts of a [`PoolError::Timeout`], panicking on anything else.
pub(crate) fn expect_timeout(result: GetResult) -> (TimeoutKind, Option<Arc<TestError>>) {
    match result {
        Err(PoolError::Timeout { kind, last_error }) => (kind, last_error),
        other => panic!("expected a timeout, got {other:?}"),
    }
}

/// The error of a failed `get`, panicking if it succeeded.
pub(crate) fn expect_err(result: GetResult) -> PoolError<TestError> {
    match result {
        Err(error) => error,
        Ok(object) => panic!("expected an error, got {object:?}"),
    }
}
