//! Everything about time: the one deadline of a `get`, create and recycle timeouts,
//! retries on a down backend, the health-check bypass window and `max_lifetime`.

mod support;

use std::sync::Arc;
use std::time::Duration;

use pool_core::{PoolError, TimeoutKind};
use support::*;
use tokio::time::{Instant, advance};

const SECOND: Duration = Duration::from_secs(1);

/// A pool with `wait_timeout` set, and its probe.
fn pool_with_deadline(max_size: usize, wait_timeout: Duration) -> (TestPool, Arc<Probe>) {
    let (builder, probe) = builder();
    let pool = builder
        .max_size(max_size)
        .wait_timeout(wait_timeout)
        .build()
        .unwrap();
    (pool, probe)
}

/// A `get_timeout(limit)` in a task of its own.
fn spawn_get_timeout(pool: &TestPool, limit: Duration) -> tokio::task::JoinHandle<GetResult> {
    let pool = pool.clone();
    tokio::spawn(async move { pool.get_timeout(limit).await })
}

/// Runs `pool.get()`, checks it timed out after exactly `after`, and returns the parts.
async fn timed_out_get(pool: &TestPool, after: Duration) -> (TimeoutKind, Option<Arc<TestError>>) {
    let start = Instant::now();
    let parts = expect_timeout(pool.get().await);
    assert_eq!(start.elapsed(), after);
    parts
}

#[tokio::test(start_paused = true)]
async fn wait_timeout_passing_while_waiting_is_a_wait_timeout() {
    let (pool, _probe) = pool_with_deadline(1, SECOND);
    let _held = pool.get().await.unwrap();
    let (kind, last_error) = timed_out_get(&pool, SECOND).await;
    assert_eq!(kind, TimeoutKind::Wait);
    assert!(last_error.is_none());
    assert_balanced(&pool);
}

#[tokio::test(start_paused = true)]
async fn wait_timeout_passing_while_creating_is_a_create_timeout() {
    let (pool, probe) = pool_with_deadline(1, SECOND);
    probe.fail_next(Hook::Create, Fault::Hang);
    let (kind, _) = timed_out_get(&pool, SECOND).await;
    assert_eq!(kind, TimeoutKind::Create);
    assert_eq!(pool.status().size, 0);
    assert_balanced(&pool);
    drop(pool.get().await.unwrap());
}

#[tokio::test(start_paused = true)]
async fn wait_timeout_passing_while_recycling_is_a_recycle_timeout() {
    let (pool, probe) = pool_with_deadline(1, SECOND);
    fill_idle(&pool, 1).await;
    probe.fail_next(Hook::Recycle, Fault::Hang);
    let (kind, _) = timed_out_get(&pool, SECOND).await;
    assert_eq!(kind, TimeoutKind::Recycle);
    // The half-recycled object is not trusted.
    assert_eq!(pool.status().size, 0);
    assert_eq!(pool.metrics().destroyed, 1);
    assert_balanced(&pool);
}

#[tokio::test(start_paused = true)]
async fn wait_timeout_is_one_deadline_across_waiting_and_recycling() {
    let (pool, probe) = pool_with_deadline(1, Duration::from_secs(10));
    let held = pool.get().await.unwrap();
    let start = Instant::now();
    let waiter = spawn_waiter(&pool).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    probe.fail_next(Hook::Recycle, Fault::Hang);
    drop(held);
    let (kind, _) = expect_timeout(waiter.await.unwrap());
    assert_eq!(kind, TimeoutKind::Recycle);
    assert_eq!(start.elapsed(), Duration::from_secs(10));
}

#[tokio::test(start_paused = true)]
async fn wait_timeout_is_one_deadline_across_waiting_and_creating() {
    let (pool, probe) = pool_with_deadline(1, Duration::from_secs(10));
    let held = pool.get().await.unwrap();
    let start = Instant::now();
    let waiter = spawn_waiter(&pool).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    probe.fail_next(Hook::Create, Fault::Hang);
    drop(pool_core::Object::take(held)); // frees the slot: the waiter creates
    let (kind, _) = expect_timeout(waiter.await.unwrap());
    assert_eq!(kind, TimeoutKind::Create);
    assert_eq!(start.elapsed(), Duration::from_secs(10));
    assert_balanced(&pool);
}

#[tokio::test(start_paused = true)]
async fn with_a_deadline_failed_creates_are_retried_and_the_timeout_carries_the_error() {
    let (pool, probe) = pool_with_deadline(1, Duration::from_secs(2));
    probe.set_always(Hook::Create, Some(Fault::Fail));
    // Retried while a probe could still come before the deadline; told at once when the
    // next pause would outlast it.
    let start = Instant::now();
    let (kind, last_error) = expect_timeout(pool.get().await);
    assert!(
        start.elapsed() <= Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    // The time went into creating (and waiting to retry), not into waiting for an object.
    assert_eq!(kind, TimeoutKind::Create);
    let last_error = last_error.expect("the backend's error is kept");
    assert_eq!(last_error.hook, Hook::Create);
    assert!(probe.creates() > 1, "retried: {} creates", probe.creates());
    assert_eq!(pool.metrics().create_failures, probe.creates() as u64);
    assert_eq!(pool.status().size, 0);
    assert_balanced(&pool);
}

#[tokio::test(start_paused = true)]
async fn a_caller_nothing_could_serve_before_its_deadline_is_told_at_once() {
    let (pool, probe) = pool(2);
    probe.set_always(Hook::Create, Some(Fault::Fail));
    // Its own create fails, which pauses creates for at least 5 ms, past its 1 ms deadline.
    let start = Instant::now();
    let (kind, last_error) = expect_timeout(pool.get_timeout(Duration::from_millis(1)).await);
    assert_eq!(
        start.elapsed(),
        Duration::ZERO,
        "it did not wait for a probe past its deadline"
    );
    assert_eq!(kind, TimeoutKind::Create);
    assert!(last_error.is_some(), "the backend's failure is the cause");
    assert_eq!((probe.creates(), pool.metrics().timeouts), (1, 1));
    // A caller whose deadline lies past the pause waits for the probes as usual, until
    // the next pause would outlast its deadline.
    let start = Instant::now();
    let (kind, _) = expect_timeout(pool.get_timeout(Duration::from_secs(1)).await);
    let waited = start.elapsed();
    assert!(
        waited > Duration::ZERO && waited <= Duration::from_secs(1),
        "{waited:?}"
    );
    assert_eq!(kind, TimeoutKind::Create);
    assert!(
        probe.creates() > 1,
        "the probe ran: {} creates",
        probe.creates()
    );
    assert_balanced(&pool);
}

#[tokio::test(start_paused = true)]
async fn a_caller_waits_past_a_pause_when_an_object_could_come_back() {
    let (pool, probe) = pool(1);
    let held = pool.get().await.unwrap();
    probe.set_always(Hook::Create, Some(Fault::Fail));
    pool.resize(2).unwrap();
    // Its create fails and pauses creates, but the held object may come back: it waits.
    let waiter = spawn_get_timeout(&pool, Duration::from_secs(1));
    settle().await;
    drop(held);
    let object = waiter
        .await
        .unwrap()
        .expect("served by the returned object");
    assert_eq!(meta_id(&object), 1);
}

#[tokio::test(start_paused = true)]
async fn without_a_deadline_a_failed_create_is_a_backend_error_at_once() {
    let (pool, probe) = pool(1);
    probe.fail_next(Hook::Create, Fault::Fail);
    let start = Instant::now();
    let error = expect_err(pool.get().await);
    assert!(matches!(
        error,
        PoolError::Backend(TestError {
            hook: Hook::Create,
            call: 1
        })
    ));
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(probe.creates(), 1);
    assert_eq!(pool.metrics().create_failures, 1);
    assert_eq!(pool.status().size, 0);
    drop(pool.get().await.unwrap());
}

#[tokio::test(start_paused = true)]
async fn without_a_deadline_every_waiter_on_a_down_backend_gets_the_error() {
    let (pool, probe) = pool(1);
    probe.set_delay(Hook::Create, SECOND);
    probe.set_always(Hook::Create, Some(Fault::Fail));
    let creator = spawn_get(&pool);
    wait_until("a create in flight", || pool.status().creating == 1).await;
    let waiter = spawn_waiter(&pool).await;
    for task in [creator, waiter] {
        assert!(matches!(
            expect_err(task.await.unwrap()),
            PoolError::Backend(_)
        ));
    }
    assert_eq!(probe.creates(), 2);
    assert_balanced(&pool);
}

#[tokio::test(start_paused = true)]
async fn a_backend_that_recovers_before_the_deadline_serves_the_caller() {
    let (pool, probe) = pool_with_deadline(1, Duration::from_secs(5));
    probe.fail_next_n(Hook::Create, Fault::Fail, 3);
    let object = pool.get().await.unwrap();
    assert_eq!(probe.creates(), 4);
    assert_eq!(pool.metrics().create_failures, 3);
    assert_eq!(object.id, 1);
    assert_balanced(&pool);
}

#[tokio::test(start_paused = true)]
async fn a_timed_out_waiter_gets_the_pools_latest_create_failure() {
    let (pool, probe) = pool_with_deadline(1, Duration::from_secs(60));
    probe.set_delay(Hook::Create, SECOND);
    probe.set_always(Hook::Create, Some(Fault::Fail));
    let _retrying = spawn_get(&pool);
    // The first create fails at 1 s; the retry holds the only slot until 2 s.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let start = Instant::now();
    let result = pool.get_timeout(Duration::from_millis(300)).await;
    assert_eq!(start.elapsed(), Duration::from_millis(300));
    let (kind, last_error) = expect_timeout(result);
    assert_eq!(kind, TimeoutKind::Wait);
    assert_eq!(last_error.expect("the pool's failure").call, 1);
}

#[tokio::test(start_paused = true)]
async fn a_timeout_after_a_failed_recycle_carries_the_recycle_error() {
    let (pool, probe) = pool_with_deadline(1, SECOND);
    fill_idle(&pool, 1).await;
    probe.fail_next(Hook::Recycle, Fault::Fail);
    probe.fail_next(Hook::Create, Fault::Hang);
    let (kind, last_error) = timed_out_get(&pool, SECOND).await;
    assert_eq!(kind, TimeoutKind::Create);
    assert_eq!(
        last_error.expect("the caller's own failure").hook,
        Hook::Recycle
    );
}

#[tokio::test(start_paused = true)]
async fn a_timeout_after_the_backend_recovered_carries_no_stale_error() {
    let (pool, probe) = pool_with_deadline(1, SECOND);
    probe.fail_next(Hook::Create, Fault::Fail);
    let _held = pool.get().await.unwrap();
    let (kind, last_error) = timed_out_get(&pool, SECOND).await;
    assert_eq!(kind, TimeoutKind::Wait);
    assert!(last_error.is_none(), "{last_error:?}");
}

#[tokio::test(start_paused = true)]
async fn create_timeout_without_a_deadline_is_a_create_timeout() {
    let (builder, probe) = builder();
    let pool = builder.create_timeout(SECOND).build().unwrap();
    probe.fail_next(Hook::Create, Fault::Hang);
    let (kind, last_error) = timed_out_get(&pool, SECOND).await;
    assert_eq!(kind, TimeoutKind::Create);
    assert!(last_error.is_none());
    assert_eq!(pool.metrics().create_failures, 1);
    assert_eq!(pool.status().size, 0);
    drop(pool.get().await.unwrap());
}

#[tokio::test(start_paused = true)]
async fn create_timeout_under_a_deadline_is_retried_until_the_deadline() {
    let (builder, probe) = builder();
    let pool = builder
        .create_timeout(SECOND)
        .wait_timeout(Duration::from_millis(3500))
        .build()
        .unwrap();
    probe.set_always(Hook::Create, Some(Fault::Hang));
    timed_out_get(&pool, Duration::from_millis(3500)).await;
    assert!(probe.creates() >= 3, "{} creates", probe.creates());
    assert_balanced(&pool);
}

#[tokio::test(start_paused = true)]
async fn a_hung_recycle_past_recycle_timeout_destroys_the_object_and_another_is_tried() {
    let (builder, probe) = builder();
    let pool = builder.recycle_timeout(SECOND).build().unwrap();
    fill_idle(&pool, 2).await;
    probe.fail_next(Hook::Recycle, Fault::Hang);
    let start = Instant::now();
    let object = pool.get().await.unwrap();
    assert_eq!(start.elapsed(), SECOND);
    assert_eq!(meta_id(&object), 1, "the hung object (2, LIFO) was dropped");
    assert_eq!(probe.recycles(), 2);
    let metrics = pool.metrics();
    assert_eq!(metrics.recycle_failures, 1);
    assert_eq!(metrics.destroyed_by.recycle_failed, 1);
    assert_balanced(&pool);
}

/// A pool whose checkouts health-check objects idle longer than `window`.
fn checked_pool(window: Duration) -> (TestPool, Arc<Probe>) {
    let (builder, probe) = builder();
    let pool = builder
        .health_check_after(window)
        .recycle_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    (pool, probe)
}

#[tokio::test(start_paused = true)]
async fn health_check_runs_at_checkout_only_after_the_bypass_window() {
    let (pool, probe) = checked_pool(Duration::from_secs(10));
    fill_idle(&pool, 1).await;
    advance(Duration::from_secs(9)).await;
    drop(pool.get().await.unwrap());
    assert_eq!(probe.health_checks(), 0, "idle 9 s, within the window");
    advance(Duration::from_secs(9)).await;
    drop(pool.get().await.unwrap());
    assert_eq!(probe.health_checks(), 0, "idle since its last return");
    advance(Duration::from_secs(11)).await;
    drop(pool.get().await.unwrap());
    assert_eq!(probe.health_checks(), 1, "idle 11 s, past the window");
    assert_eq!(probe.recycles(), 3);
}

#[tokio::test(start_paused = true)]
async fn zero_health_check_after_checks_every_checkout() {
    let (pool, probe) = checked_pool(Duration::ZERO);
    fill_idle(&pool, 1).await;
    drop(pool.get().await.unwrap());
    drop(pool.get().await.unwrap());
    assert_eq!(probe.health_checks(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_failing_health_check_destroys_the_object_and_another_is_tried() {
    let (pool, probe) = checked_pool(SECOND);
    fill_idle(&pool, 2).await;
    advance(Duration::from_secs(2)).await;
    probe.fail_next(Hook::HealthCheck, Fault::Fail);
    let object = pool.get().await.unwrap();
    assert_eq!(meta_id(&object), 1, "object 2 (LIFO) failed its check");
    assert_eq!(probe.health_checks(), 2);
    let metrics = pool.metrics();
    assert_eq!(metrics.health_check_failures, 1);
    assert_eq!(metrics.destroyed_by.health_check_failed, 1);
    assert_eq!((metrics.recycle_failures, metrics.recycled), (0, 1));
    assert_balanced(&pool);
}

#[tokio::test(start_paused = true)]
async fn a_hung_health_check_is_bounded_by_recycle_timeout_and_counts_as_failed() {
    let (pool, probe) = checked_pool(SECOND);
    fill_idle(&pool, 1).await;
    advance(Duration::from_secs(2)).await;
    probe.fail_next(Hook::HealthCheck, Fault::Hang);
    let start = Instant::now();
    let object = pool.get().await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(5));
    assert_eq!(meta_id(&object), 2, "a new object replaced the hung one");
    assert_eq!(pool.metrics().health_check_failures, 1);
    assert_balanced(&pool);
}

#[tokio::test(start_paused = true)]
async fn recycle_timeout_bounds_the_health_check_and_the_recycle_each() {
    let (pool, probe) = checked_pool(SECOND);
    fill_idle(&pool, 1).await;
    advance(Duration::from_secs(2)).await;
    // Each hook takes 3 of the 5 s recycle_timeout.
    probe.set_delay(Hook::HealthCheck, Duration::from_secs(3));
    probe.set_delay(Hook::Recycle, Duration::from_secs(3));
    let start = Instant::now();
    let object = pool.get().await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(6));
    assert_eq!(meta_id(&object), 1, "the idle object passed both hooks");
    assert_eq!(pool.metrics().recycle_failures, 0);
}

/// A pool with both a caller deadline (`wait_timeout` 2 s) and a longer `recycle_timeout`
/// (10 s), and health checks at every checkout.
fn both_deadlines_pool() -> (TestPool, Arc<Probe>) {
    let (builder, probe) = builder();
    let pool = builder
        .wait_timeout(Duration::from_secs(2))
        .recycle_timeout(Duration::from_secs(10))
        .health_check_after(Duration::ZERO)
        .build()
        .unwrap();
    (pool, probe)
}

#[tokio::test(start_paused = true)]
async fn a_hung_recycle_ends_at_the_callers_deadline_when_recycle_timeout_is_longer() {
    let (pool, probe) = both_deadlines_pool();
    fill_idle(&pool, 1).await;
    probe.fail_next(Hook::Recycle, Fault::Hang);
    let (kind, _) = timed_out_get(&pool, Duration::from_secs(2)).await;
    assert_eq!(kind, TimeoutKind::Recycle);
    // Cut short by the caller's deadline, not failed: destroyed as abandoned.
    settle().await;
    let metrics = pool.metrics();
    assert_eq!(
        (metrics.destroyed_by.abandoned, metrics.recycle_failures),
        (1, 0)
    );
    assert_balanced(&pool);
}

#[tokio::test(start_paused = true)]
async fn a_hung_health_check_ends_at_the_callers_deadline_when_recycle_timeout_is_longer() {
    let (pool, probe) = both_deadlines_pool();
    fill_idle(&pool, 1).await;
    probe.fail_next(Hook::HealthCheck, Fault::Hang);
    let (kind, _) = timed_out_get(&pool, Duration::from_secs(2)).await;
    assert_eq!(kind, TimeoutKind::Recycle);
    settle().await;
    let metrics = pool.metrics();
    assert_eq!(
        (
            metrics.destroyed_by.abandoned,
            metrics.health_check_failures
        ),
        (1, 0)
    );
    assert_balanced(&pool);
}

#[tokio::test(start_paused = true)]
async fn a_hung_recycle_on_the_slow_path_ends_at_the_callers_deadline_too() {
    // The caller first creates (its create fails, so it retries under the deadline), then
    // is handed an idle object whose recycle hangs: the same one deadline ends it.
    let (pool, probe) = both_deadlines_pool();
    let held = pool.get().await.unwrap();
    probe.fail_next(Hook::Create, Fault::Fail);
    probe.fail_next(Hook::Recycle, Fault::Hang);
    let caller = spawn_get(&pool);
    settle().await;
    drop(held);
    let start = Instant::now();
    let (kind, _) = expect_timeout(caller.await.unwrap());
    assert!(
        start.elapsed() <= Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(kind, TimeoutKind::Recycle);
    settle().await;
    assert_balanced(&pool);
}

/// A pool of `max_size` objects that live at most 100 s.
fn lifetime_pool(max_size: usize) -> (TestPool, Arc<Probe>) {
    let (builder, probe) = builder();
    let pool = builder
        .max_size(max_size)
        .max_lifetime(Duration::from_secs(100))
        .build()
        .unwrap();
    (pool, probe)
}

#[tokio::test(start_paused = true)]
async fn objects_are_still_fine_before_95_percent_of_max_lifetime() {
    let (pool, _probe) = lifetime_pool(20);
    let held = hold(&pool, 20).await;
    advance(Duration::from_secs(95)).await;
    drop(held); // checked on return
    assert_eq!(pool.status().idle, 20);
    let again = hold(&pool, 20).await; // checked before handing out
    let mut ids: Vec<u64> = again.iter().map(meta_id).collect();
    ids.sort_unstable();
    assert_eq!(ids, (1..=20).collect::<Vec<_>>());
    assert_eq!(pool.metrics().destroyed, 0);
}

#[tokio::test(start_paused = true)]
async fn an_idle_object_is_never_handed_out_past_max_lifetime() {
    let (pool, _probe) = lifetime_pool(20);
    fill_idle(&pool, 20).await;
    advance(Duration::from_secs(100)).await;
    let fresh = hold(&pool, 20).await;
    assert!(fresh.iter().all(|object| meta_id(object) > 20));
    assert_eq!(pool.metrics().destroyed_by.lifetime, 20);
    assert_balanced(&pool);
}

#[tokio::test(start_paused = true)]
async fn an_object_returned_past_max_lifetime_is_destroyed() {
    let (pool, probe) = lifetime_pool(20);
    let held = hold(&pool, 20).await;
    advance(Duration::from_secs(100)).await;
    drop(held);
    assert_eq!(pool.status().size, 0);
    assert_eq!(pool.metrics().destroyed_by.lifetime, 20);
    settle().await;
    assert_eq!(probe.destroyed(), 20);
}

#[tokio::test(start_paused = true)]
async fn max_lifetime_applies_to_each_object_from_its_own_creation() {
    let (pool, _probe) = lifetime_pool(2);
    fill_idle(&pool, 1).await;
    advance(Duration::from_secs(60)).await;
    let first = pool.get().await.unwrap();
    let second = pool.get().await.unwrap(); // created at 60 s
    assert_eq!((meta_id(&first), meta_id(&second)), (1, 2));
    drop((first, second));
    advance(Duration::from_secs(60)).await; // 120 s: only the first expired
    let held = hold(&pool, 2).await;
    let ids: Vec<u64> = held.iter().map(meta_id).collect();
    assert_eq!(ids, [2, 3]);
    assert_eq!(pool.metrics().destroyed_by.lifetime, 1);
}

#[tokio::test(start_paused = true)]
async fn the_longest_timeouts_and_lifetimes_are_accepted_without_overflow() {
    let (builder, _probe) = builder();
    let pool = builder
        .max_size(1)
        .wait_timeout(Duration::MAX)
        .max_lifetime(Duration::MAX)
        .idle_timeout(Duration::MAX)
        .recycle_timeout(Duration::MAX)
        .health_check_after(Duration::MAX)
        .build()
        .unwrap();
    drop(pool.get().await.unwrap());
    drop(pool.get_timeout(Duration::MAX).await.unwrap());
    assert_balanced(&pool);
    assert_eq!(pool.status().idle, 1);
}
