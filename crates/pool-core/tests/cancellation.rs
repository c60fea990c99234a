//! A `get` future dropped at any point leaks no slot and no object, and whatever it was
//! granted goes to the next caller.

mod support;

use std::time::Duration;

use pool_core::Object;
use support::*;
use tokio::time::timeout;

const SECOND: Duration = Duration::from_secs(1);

/// Runs `pool.get()` for `after` and checks that it was still pending then (and so was
/// cancelled by dropping it).
async fn cancel_get_after(pool: &TestPool, after: Duration) {
    let outcome = timeout(after, pool.get()).await;
    assert!(outcome.is_err(), "the get finished: {outcome:?}");
}

#[tokio::test(start_paused = true)]
async fn a_get_cancelled_while_waiting_leaks_nothing() {
    let (pool, _probe) = pool(1);
    let held = pool.get().await.unwrap();
    cancel_get_after(&pool, SECOND).await;
    assert_eq!(pool.status().waiting, 0);
    drop(held);
    assert_eq!(
        pool.status().idle,
        1,
        "nothing was handed to the cancelled caller"
    );
    assert_recovered(&pool, 1).await;
    assert_eq!(pool.metrics().created, 1);
}

#[tokio::test(start_paused = true)]
async fn an_aborted_task_waiting_for_an_object_leaks_nothing() {
    let (pool, _probe) = pool(1);
    let held = pool.get().await.unwrap();
    let waiter = spawn_waiter(&pool).await;
    waiter.abort();
    assert!(waiter.await.unwrap_err().is_cancelled());
    assert_eq!(pool.status().waiting, 0);
    drop(held);
    assert_recovered(&pool, 1).await;
}

#[tokio::test(start_paused = true)]
async fn a_get_cancelled_while_creating_leaks_nothing() {
    let (pool, probe) = pool(1);
    probe.fail_next(Hook::Create, Fault::Hang);
    cancel_get_after(&pool, SECOND).await;
    assert_eq!(pool.metrics().created, 0);
    assert_recovered(&pool, 0).await;
    assert_eq!(probe.creates(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_get_cancelled_while_creating_passes_the_slot_to_a_waiter() {
    let (pool, probe) = pool(1);
    probe.fail_next(Hook::Create, Fault::Hang);
    let mut creating = Box::pin(pool.get());
    assert!(poll_once(&mut creating).await.is_pending());
    assert_eq!(pool.status().creating, 1);
    let waiter = spawn_waiter(&pool).await;
    drop(creating);
    let object = waiter.await.unwrap().unwrap();
    assert_eq!(object.id, 1);
    assert_balanced(&pool);
}

#[tokio::test(start_paused = true)]
async fn a_get_cancelled_while_recycling_leaks_nothing() {
    let (pool, probe) = pool(1);
    fill_idle(&pool, 1).await;
    probe.fail_next(Hook::Recycle, Fault::Hang);
    cancel_get_after(&pool, SECOND).await;
    let metrics = pool.metrics();
    // The half-recycled object is not trusted.
    assert_eq!((metrics.destroyed_by.abandoned, metrics.recycled), (1, 0));
    assert_recovered(&pool, 0).await;
    settle().await;
    assert_eq!(probe.destroyed_ids(), [1]);
}

#[tokio::test(start_paused = true)]
async fn a_get_cancelled_while_health_checking_leaks_nothing() {
    let (builder, probe) = builder();
    let pool = builder.health_check_after(SECOND).build().unwrap();
    fill_idle(&pool, 1).await;
    tokio::time::advance(Duration::from_secs(2)).await;
    probe.fail_next(Hook::HealthCheck, Fault::Hang);
    cancel_get_after(&pool, SECOND).await;
    assert_eq!(pool.metrics().destroyed_by.abandoned, 1);
    assert_recovered(&pool, 0).await;
}

#[tokio::test(start_paused = true)]
async fn a_get_cancelled_between_create_retries_leaks_nothing() {
    let (builder, probe) = builder();
    let pool = builder
        .max_size(2)
        .wait_timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    probe.set_always(Hook::Create, Some(Fault::Fail));
    cancel_get_after(&pool, Duration::from_millis(100)).await;
    assert!(probe.creates() > 1, "it was retrying");
    probe.set_always(Hook::Create, None);
    assert_recovered(&pool, 0).await;
}

#[tokio::test(start_paused = true)]
async fn a_waiter_granted_an_object_but_cancelled_before_it_polled_passes_it_on() {
    let (pool, probe) = pool(1);
    let held = pool.get().await.unwrap();
    let mut first = Box::pin(pool.get());
    assert!(poll_once(&mut first).await.is_pending());
    let second = spawn_waiter(&pool).await;
    drop(held); // handed to `first`, which never polls again
    drop(first);
    let object = second.await.unwrap().unwrap();
    assert_eq!(meta_id(&object), 1);
    assert_eq!(probe.creates(), 1);
    drop(object);
    assert_recovered(&pool, 1).await;
}

#[tokio::test(start_paused = true)]
async fn a_waiter_granted_a_create_slot_but_cancelled_before_it_polled_passes_it_on() {
    let (pool, probe) = pool(1);
    let held = pool.get().await.unwrap();
    let mut first = Box::pin(pool.get());
    assert!(poll_once(&mut first).await.is_pending());
    let second = spawn_waiter(&pool).await;
    let _mine = Object::take(held); // the freed slot goes to `first`
    drop(first);
    let object = second.await.unwrap().unwrap();
    assert_eq!(meta_id(&object), 2);
    assert_eq!(probe.creates(), 2);
    drop(object);
    assert_recovered(&pool, 1).await;
}

#[tokio::test(start_paused = true)]
async fn an_aborted_task_granted_an_object_passes_it_on() {
    let (pool, _probe) = pool(1);
    let held = pool.get().await.unwrap();
    let first = spawn_waiter(&pool).await;
    let second = spawn_waiter(&pool).await;
    drop(held); // granted to `first`, woken but not yet run
    first.abort();
    assert!(first.await.unwrap_err().is_cancelled());
    assert_eq!(meta_id(&second.await.unwrap().unwrap()), 1);
    assert_recovered(&pool, 1).await;
}

#[tokio::test(start_paused = true)]
async fn cancelling_every_other_waiter_keeps_the_rest_in_order() {
    let (pool, _probe) = pool(1);
    let held = pool.get().await.unwrap();
    let mut waiters: Vec<_> = (0..40).map(|_| Box::pin(pool.get())).collect();
    for waiter in &mut waiters {
        assert!(poll_once(waiter).await.is_pending());
    }
    assert_eq!(pool.status().waiting, 40);
    let mut kept = Vec::new();
    for (i, waiter) in waiters.into_iter().enumerate() {
        if i % 2 == 0 {
            kept.push(waiter);
        }
    }
    assert_eq!(pool.status().waiting, 20);
    drop(held);
    for (i, mut waiter) in kept.into_iter().enumerate() {
        let object = match poll_once(&mut waiter).await {
            std::task::Poll::Ready(result) => result.unwrap(),
            std::task::Poll::Pending => panic!("kept waiter {i} was not served in turn"),
        };
        assert_eq!(Object::meta(&object).times_used, i as u64 + 2);
    }
    assert_recovered(&pool, 1).await;
}

#[tokio::test(start_paused = true)]
async fn many_timed_out_waiters_leave_the_queue_usable() {
    let (pool, _probe) = pool(1);
    let held = pool.get().await.unwrap();
    for _ in 0..200 {
        cancel_get_after(&pool, Duration::from_millis(1)).await;
    }
    let waiter = spawn_waiter(&pool).await;
    drop(held);
    drop(waiter.await.unwrap().unwrap());
    assert_recovered(&pool, 1).await;
}
