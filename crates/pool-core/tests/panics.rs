//! A panicking hook leaks no slot: the caller it ran for sees the panic, the accounting
//! balances, and the pool keeps serving.

mod support;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use support::*;

const SECOND: Duration = Duration::from_secs(1);

/// Runs a `get` in a task of its own and checks that it panicked.
async fn assert_get_panics(pool: &TestPool) {
    let error = spawn_get(pool).await.unwrap_err();
    assert!(error.is_panic(), "{error:?}");
}

#[tokio::test(start_paused = true)]
async fn a_panicking_create_leaves_the_pool_usable() {
    let (pool, probe) = pool(1);
    probe.fail_next(Hook::Create, Fault::Panic);
    assert_get_panics(&pool).await;
    assert_eq!(pool.metrics().created, 0);
    assert_recovered(&pool, 0).await;
    assert_eq!(probe.creates(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_create_under_a_deadline_leaves_the_pool_usable() {
    let (builder, probe) = builder();
    let pool = builder.max_size(1).wait_timeout(SECOND).build().unwrap();
    probe.fail_next(Hook::Create, Fault::Panic);
    assert_get_panics(&pool).await;
    assert_recovered(&pool, 0).await;
}

#[tokio::test(start_paused = true)]
async fn a_panicking_create_passes_its_slot_to_a_waiter() {
    let (pool, probe) = pool(1);
    probe.set_delay(Hook::Create, SECOND);
    probe.fail_next(Hook::Create, Fault::Panic);
    let creator = spawn_get(&pool);
    wait_until("a create in flight", || pool.status().creating == 1).await;
    let waiter = spawn_waiter(&pool).await;
    assert!(creator.await.unwrap_err().is_panic());
    let object = waiter.await.unwrap().unwrap();
    assert_eq!(object.id, 1);
    drop(object);
    assert_recovered(&pool, 1).await;
}

#[tokio::test(start_paused = true)]
async fn a_panicking_recycle_leaves_the_pool_usable() {
    let (pool, probe) = pool(1);
    fill_idle(&pool, 1).await;
    probe.fail_next(Hook::Recycle, Fault::Panic);
    assert_get_panics(&pool).await;
    // The object it was recycling is not trusted.
    assert_eq!(pool.metrics().destroyed_by.abandoned, 1);
    assert_recovered(&pool, 0).await;
    settle().await;
    assert_eq!(probe.destroyed_ids(), [1]);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_recycle_of_a_handed_over_object_passes_the_slot_on() {
    let (pool, probe) = pool(1);
    let held = pool.get().await.unwrap();
    let first = spawn_waiter(&pool).await;
    let second = spawn_waiter(&pool).await;
    probe.fail_next(Hook::Recycle, Fault::Panic);
    drop(held); // handed to `first`, whose recycle panics
    assert!(first.await.unwrap_err().is_panic());
    assert_eq!(meta_id(&second.await.unwrap().unwrap()), 2);
    assert_recovered(&pool, 1).await;
}

#[tokio::test(start_paused = true)]
async fn a_panicking_health_check_leaves_the_pool_usable() {
    let (builder, probe) = builder();
    let pool = builder.health_check_after(SECOND).build().unwrap();
    fill_idle(&pool, 1).await;
    tokio::time::advance(Duration::from_secs(2)).await;
    probe.fail_next(Hook::HealthCheck, Fault::Panic);
    assert_get_panics(&pool).await;
    assert_eq!(probe.health_checks(), 1);
    assert_eq!(pool.metrics().destroyed, 1);
    assert_recovered(&pool, 0).await;
}

#[tokio::test(start_paused = true)]
async fn a_panicking_is_broken_counts_as_broken() {
    let (pool, probe) = pool(1);
    probe.set_broken(Broken::Panic);
    drop(pool.get().await.unwrap()); // the caller does not see the panic
    assert_eq!(probe.broken_checks(), 1);
    assert_eq!(pool.metrics().destroyed_by.broken, 1);
    probe.set_broken(Broken::Flagged);
    assert_recovered(&pool, 0).await;
}

#[tokio::test(start_paused = true)]
async fn a_panicking_is_broken_passes_the_slot_to_a_waiter() {
    let (pool, probe) = pool(1);
    let held = pool.get().await.unwrap();
    let waiter = spawn_waiter(&pool).await;
    probe.set_broken(Broken::Panic);
    drop(held);
    probe.set_broken(Broken::Flagged);
    assert_eq!(meta_id(&waiter.await.unwrap().unwrap()), 2);
    assert_recovered(&pool, 1).await;
}

#[tokio::test(start_paused = true)]
async fn a_panicking_destroy_is_counted_and_does_not_break_shutdown() {
    let (pool, probe) = pool(3);
    probe.set_destroy(Destroy::Panic);
    fill_idle(&pool, 2).await;
    let mut object = pool.get().await.unwrap();
    object.broken = true;
    drop(object);
    settle().await;
    assert_eq!(probe.destroy_calls(), 1);
    assert_eq!(pool.metrics().destroyed, 1);
    assert_recovered(&pool, 1).await;
    let report = pool.shutdown(SECOND).await;
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(probe.destroy_calls(), 2);
    assert_eq!(pool.metrics().destroyed, 2);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_retain_predicate_keeps_the_pool_consistent() {
    let (pool, _probe) = pool(3);
    fill_idle(&pool, 3).await;
    let mut visited = 0;
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        pool.retain(|_, _| {
            visited += 1;
            if visited == 2 {
                panic!("retain predicate panics on purpose");
            }
            false
        })
    }));
    assert!(outcome.is_err(), "the panic reaches the caller");
    assert_eq!(visited, 2, "no object is judged after the panic");
    assert_eq!(pool.status().idle, 2, "one refused, the rest kept");
    assert_eq!(pool.metrics().destroyed_by.retained_out, 1);
    assert_recovered(&pool, 2).await;
}
