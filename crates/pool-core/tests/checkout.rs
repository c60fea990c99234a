//! Checking objects out: `get`, `get_timeout`, `try_get`, the waiter queue, the idle
//! order, and the counters and snapshot that describe them.

mod support;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pool_core::{Object, PoolError, QueueMode, TimeoutKind};
use support::*;
use tokio::task::JoinHandle;
use tokio::time::Instant;

#[tokio::test(start_paused = true)]
async fn get_creates_an_object_and_drop_returns_it() {
    let (pool, probe) = pool(4);
    let object = pool.get().await.unwrap();
    let id = meta_id(&object);
    let status = pool.status();
    assert_eq!((status.size, status.in_use, status.idle), (1, 1, 0));
    drop(object);
    let status = pool.status();
    assert_eq!((status.size, status.in_use, status.idle), (1, 0, 1));
    let again = pool.get().await.unwrap();
    assert_eq!(meta_id(&again), id);
    assert_eq!(probe.creates(), 1);
    assert_eq!(probe.recycles(), 1);
    assert_balanced(&pool);
}

#[tokio::test(start_paused = true)]
async fn get_timeout_times_out_waiting_when_every_object_is_in_use() {
    let (pool, _probe) = pool(1);
    let _held = pool.get().await.unwrap();
    let start = Instant::now();
    let (kind, last_error) = expect_timeout(pool.get_timeout(Duration::from_secs(2)).await);
    assert_eq!(kind, TimeoutKind::Wait);
    assert!(last_error.is_none());
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    assert_eq!(pool.status().waiting, 0);
    assert_eq!(pool.metrics().timeouts, 1);
    assert_balanced(&pool);
}

#[tokio::test(start_paused = true)]
async fn get_timeout_replaces_wait_timeout() {
    let (builder, _probe) = builder();
    let pool = builder
        .max_size(1)
        .wait_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let _held = pool.get().await.unwrap();
    let start = Instant::now();
    expect_timeout(pool.get_timeout(Duration::from_secs(1)).await);
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    expect_timeout(pool.get().await);
    assert_eq!(start.elapsed(), Duration::from_secs(11));
}

#[tokio::test(start_paused = true)]
async fn get_timeout_returns_an_object_that_comes_back_in_time() {
    let (pool, _probe) = pool(1);
    let held = pool.get().await.unwrap();
    let id = meta_id(&held);
    let clone = pool.clone();
    let task = async move { clone.get_timeout(Duration::from_secs(5)).await };
    let waiter = spawn_queued(&pool, task).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    drop(held);
    assert_eq!(meta_id(&waiter.await.unwrap().unwrap()), id);
}

#[tokio::test(start_paused = true)]
async fn try_get_creates_when_there_is_room() {
    let (pool, probe) = pool(2);
    let object = pool.try_get().await.unwrap();
    assert_eq!(probe.creates(), 1);
    assert_eq!(pool.status().in_use, 1);
    drop(object);
}

#[tokio::test(start_paused = true)]
async fn try_get_reuses_and_recycles_an_idle_object() {
    let (pool, probe) = pool(2);
    fill_idle(&pool, 1).await;
    let object = pool.try_get().await.unwrap();
    assert_eq!(meta_id(&object), 1);
    assert_eq!((probe.creates(), probe.recycles()), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn try_get_never_queues_and_is_exhausted_when_full() {
    let (pool, _probe) = pool(2);
    let _held = hold(&pool, 2).await;
    let start = Instant::now();
    assert!(matches!(pool.try_get().await, Err(PoolError::Exhausted)));
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(pool.status().waiting, 0);
    assert_eq!(pool.metrics().waits, 0);
    assert_balanced(&pool);
}

#[tokio::test(start_paused = true)]
async fn try_get_reports_a_failed_create_as_a_backend_error() {
    let (pool, probe) = pool(2);
    probe.fail_next(Hook::Create, Fault::Fail);
    let error = expect_err(pool.try_get().await);
    assert!(matches!(
        error,
        PoolError::Backend(TestError {
            hook: Hook::Create,
            call: 1
        })
    ));
    assert_eq!(probe.creates(), 1);
    assert_eq!(pool.status().size, 0);
}

#[tokio::test(start_paused = true)]
async fn get_beyond_max_waiting_is_exhausted() {
    let (builder, _probe) = builder();
    let pool = builder.max_size(1).max_waiting(2).build().unwrap();
    let held = pool.get().await.unwrap();
    let first = spawn_waiter(&pool).await;
    let second = spawn_waiter(&pool).await;
    let start = Instant::now();
    assert!(matches!(pool.get().await, Err(PoolError::Exhausted)));
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(pool.status().waiting, 2);
    drop(held);
    drop(first.await.unwrap().unwrap());
    drop(second.await.unwrap().unwrap());
    assert_balanced(&pool);
}

#[tokio::test(start_paused = true)]
async fn max_waiting_zero_lets_no_caller_wait() {
    let (builder, _probe) = builder();
    let pool = builder.max_size(1).max_waiting(0).build().unwrap();
    let _held = pool.get().await.unwrap();
    assert!(matches!(pool.get().await, Err(PoolError::Exhausted)));
    assert_eq!(pool.metrics().waits, 0);
}

/// Records the order in which tasks got an object.
#[derive(Clone, Default)]
struct Served(Arc<Mutex<Vec<&'static str>>>);

impl Served {
    /// A task that gets an object, records `who`, holds the object for 1 ms, returns it.
    fn task(&self, pool: &TestPool, who: &'static str) -> impl Future<Output = ()> + use<> {
        let (pool, served) = (pool.clone(), self.clone());
        async move {
            let object = pool.get().await.unwrap();
            served.0.lock().unwrap().push(who);
            tokio::time::sleep(Duration::from_millis(1)).await;
            drop(object);
        }
    }

    /// Spawns one such task per name, each queued before the next is spawned.
    async fn queue(&self, pool: &TestPool, names: &[&'static str]) -> Vec<JoinHandle<()>> {
        let mut tasks = Vec::new();
        for &who in names {
            tasks.push(spawn_queued(pool, self.task(pool, who)).await);
        }
        tasks
    }

    fn order(&self) -> Vec<&'static str> {
        self.0.lock().unwrap().clone()
    }
}

async fn join_all(tasks: Vec<JoinHandle<()>>) {
    for task in tasks {
        task.await.unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn waiters_are_served_first_come_first_served() {
    let (pool, _probe) = pool(1);
    let held = pool.get().await.unwrap();
    let served = Served::default();
    let names = ["a", "b", "c", "d", "e"];
    let waiters = served.queue(&pool, &names).await;
    drop(held);
    join_all(waiters).await;
    assert_eq!(served.order(), names);
    assert_eq!(pool.metrics().created, 1);
}

#[tokio::test(start_paused = true)]
async fn returned_object_goes_to_the_longest_waiter() {
    let (pool, probe) = pool(1);
    let held = pool.get().await.unwrap();
    let id = meta_id(&held);
    let waiter = spawn_waiter(&pool).await;
    drop(held);
    // Handed over directly: never idle, still counted as in use.
    let status = pool.status();
    assert_eq!((status.idle, status.in_use, status.waiting), (0, 1, 0));
    let object = waiter.await.unwrap().unwrap();
    assert_eq!(meta_id(&object), id);
    assert_eq!(Object::meta(&object).times_used, 2);
    assert_eq!(probe.creates(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_new_caller_cannot_overtake_a_waiter() {
    let (pool, _probe) = pool(1);
    let held = pool.get().await.unwrap();
    let served = Served::default();
    let mut tasks = served.queue(&pool, &["waiter"]).await;
    drop(held);
    // The object is already the waiter's, although it has not run yet.
    assert!(matches!(pool.try_get().await, Err(PoolError::Exhausted)));
    tasks.push(tokio::spawn(served.task(&pool, "newcomer")));
    join_all(tasks).await;
    assert_eq!(served.order(), ["waiter", "newcomer"]);
}

#[tokio::test(start_paused = true)]
async fn a_waiter_whose_handed_over_object_fails_to_recycle_keeps_its_turn() {
    let (pool, probe) = pool(1);
    let held = pool.get().await.unwrap();
    let served = Served::default();
    let waiters = served.queue(&pool, &["first", "second"]).await;
    probe.fail_next(Hook::Recycle, Fault::Fail);
    drop(held); // handed to `first`, whose recycle fails: it must not lose its place
    join_all(waiters).await;
    assert_eq!(served.order(), ["first", "second"]);
}

/// Returns three objects in order 1, 2, 3 and reports which one `get` hands out next.
async fn next_id_after_returning_three(mode: Option<QueueMode>) -> u64 {
    let (builder, _probe) = builder();
    let builder = builder.max_size(3);
    let pool = match mode {
        Some(mode) => builder.queue_mode(mode),
        None => builder,
    }
    .build()
    .unwrap();
    let held = hold(&pool, 3).await;
    let ids: Vec<u64> = held.iter().map(meta_id).collect();
    assert_eq!(ids, [1, 2, 3]);
    drop(held); // drops in order: 1, 2, 3
    meta_id(&pool.get().await.unwrap())
}

#[tokio::test(start_paused = true)]
async fn lifo_hands_out_the_most_recently_returned_object() {
    assert_eq!(
        next_id_after_returning_three(Some(QueueMode::Lifo)).await,
        3
    );
}

#[tokio::test(start_paused = true)]
async fn fifo_hands_out_the_least_recently_returned_object() {
    assert_eq!(
        next_id_after_returning_three(Some(QueueMode::Fifo)).await,
        1
    );
}

#[tokio::test(start_paused = true)]
async fn default_queue_mode_is_lifo() {
    assert_eq!(next_id_after_returning_three(None).await, 3);
}

#[tokio::test(start_paused = true)]
async fn fifo_rotates_through_every_idle_object() {
    let (builder, _probe) = builder();
    let pool = builder
        .max_size(3)
        .queue_mode(QueueMode::Fifo)
        .build()
        .unwrap();
    fill_idle(&pool, 3).await;
    let mut seen = Vec::new();
    for _ in 0..6 {
        seen.push(meta_id(&pool.get().await.unwrap()));
    }
    assert_eq!(seen, [1, 2, 3, 1, 2, 3]);
}

#[tokio::test(start_paused = true)]
async fn status_size_is_always_idle_plus_in_use_plus_creating() {
    let (pool, probe) = pool(3);
    probe.set_delay(Hook::Create, Duration::from_secs(1));
    let creating = spawn_get(&pool);
    wait_until("a create in flight", || pool.status().creating == 1).await;
    assert_balanced(&pool);
    let first = creating.await.unwrap().unwrap();
    assert_balanced(&pool);
    let _others = hold(&pool, 2).await;
    let waiter = spawn_waiter(&pool).await;
    let status = pool.status();
    assert_eq!((status.size, status.in_use, status.waiting), (3, 3, 1));
    assert_balanced(&pool);
    drop(first);
    drop(waiter.await.unwrap().unwrap());
    let status = pool.status();
    assert_eq!(
        (status.size, status.idle, status.in_use, status.creating),
        (3, 1, 2, 0)
    );
    assert_balanced(&pool);
}

#[tokio::test(start_paused = true)]
async fn max_concurrent_creates_bounds_the_creates_in_flight() {
    let (builder, probe) = builder();
    let pool = builder
        .max_size(8)
        .max_concurrent_creates(2)
        .build()
        .unwrap();
    probe.set_delay(Hook::Create, Duration::from_secs(1));
    let gets: Vec<_> = (0..6).map(|_| spawn_get(&pool)).collect();
    settle().await;
    assert_eq!(probe.creates(), 2, "creates started at once");
    assert_balanced(&pool);
    // Held, not returned: with creation driven by demand, a returned object would
    // serve a waiter instead of a create.
    let mut held = Vec::new();
    for get in gets {
        held.push(get.await.unwrap().unwrap());
    }
    assert_eq!(probe.creates(), 6);
}

#[tokio::test(start_paused = true)]
async fn metrics_count_waits_and_wait_time() {
    let (pool, _probe) = pool(1);
    let held = pool.get().await.unwrap();
    let waiter = spawn_waiter(&pool).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    drop(held);
    drop(waiter.await.unwrap().unwrap());
    let metrics = pool.metrics();
    assert_eq!(metrics.waits, 1);
    assert_eq!(metrics.wait_time, Duration::from_secs(3));
}

#[tokio::test(start_paused = true)]
async fn metrics_wait_time_includes_callers_that_gave_up_waiting() {
    let (pool, _probe) = pool(1);
    let _held = pool.get().await.unwrap();
    expect_timeout(pool.get_timeout(Duration::from_secs(2)).await);
    let metrics = pool.metrics();
    assert_eq!(metrics.waits, 1);
    assert_eq!(metrics.wait_time, Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn metrics_count_created_and_recycled() {
    let (pool, _probe) = pool(2);
    let held = hold(&pool, 2).await;
    drop(held);
    for _ in 0..3 {
        drop(pool.get().await.unwrap());
    }
    let metrics = pool.metrics();
    assert_eq!((metrics.created, metrics.recycled), (2, 3));
    assert_eq!(
        (metrics.destroyed, metrics.waits, metrics.timeouts),
        (0, 0, 0)
    );
}

#[tokio::test(start_paused = true)]
async fn metrics_count_timeouts_of_every_kind() {
    let (builder, probe) = builder();
    let pool = builder
        .max_size(1)
        .wait_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    probe.fail_next(Hook::Create, Fault::Hang);
    expect_timeout(pool.get().await);
    fill_idle(&pool, 1).await;
    probe.fail_next(Hook::Recycle, Fault::Hang);
    expect_timeout(pool.get().await);
    let _held = pool.get().await.unwrap();
    expect_timeout(pool.get().await);
    assert_eq!(pool.metrics().timeouts, 3);
    assert_balanced(&pool);
}
