//! Background maintenance: `min_idle`, idle and lifetime sweeps, background health checks,
//! the task's own lifetime, and `build_filled`. All on tokio's paused clock.

mod support;

use std::time::Duration;

use pool_core::{FillError, FillMode, QueueMode};
use support::{Fault, Hook, assert_balanced, builder, settle};

const SECOND: Duration = Duration::from_secs(1);

/// Lets maintenance and the tasks it spawns run, moving the paused clock by `by`.
async fn pass(by: Duration) {
    tokio::time::advance(by).await;
    settle().await;
}

#[tokio::test(start_paused = true)]
async fn min_idle_is_filled_after_build_without_any_get() {
    let (builder, probe) = builder();
    let pool = builder.max_size(5).min_idle(3).build().unwrap();
    settle().await;
    assert_eq!(pool.status().idle, 3);
    assert_eq!(probe.creates(), 3);
    assert_balanced(&pool);
}

#[tokio::test(start_paused = true)]
async fn an_object_made_for_min_idle_counts_its_first_checkout_as_its_first_use() {
    let (builder, _probe) = builder();
    let pool = builder.max_size(1).min_idle(1).max_uses(3).build().unwrap();
    settle().await;
    let mut uses = Vec::new();
    for _ in 0..3 {
        let object = pool.get().await.unwrap();
        uses.push((
            support::meta_id(&object),
            pool_core::Object::meta(&object).times_used,
        ));
    }
    // Three uses of the same object, then `max_uses` retires it.
    assert_eq!(uses, [(1, 1), (1, 2), (1, 3)]);
    settle().await;
    assert_eq!(pool.metrics().destroyed_by.max_uses, 1);
}

#[tokio::test(start_paused = true)]
async fn min_idle_holds_while_objects_reach_their_lifetime() {
    // As a database pool runs it: connections that take 50 ms to open and live 3 s.
    let (builder, probe) = builder();
    probe.set_delay(Hook::Create, Duration::from_millis(50));
    let pool = builder
        .max_size(8)
        .min_idle(4)
        .max_lifetime(3 * SECOND)
        .build()
        .unwrap();
    settle().await;
    pass(Duration::from_millis(100)).await;
    assert_eq!(pool.status().idle, 4);
    let mut lowest = usize::MAX;
    for _ in 0..2_000 {
        pass(Duration::from_millis(10)).await;
        lowest = lowest.min(pool.status().idle);
    }
    let metrics = pool.metrics();
    assert!(metrics.destroyed_by.lifetime >= 20, "{metrics:?}");
    assert!(
        lowest >= 4,
        "idle fell to {lowest} while {} objects were replaced",
        metrics.destroyed_by.lifetime
    );
    assert!(pool.status().size <= 8);
}

#[tokio::test(start_paused = true)]
async fn min_idle_is_refilled_after_destroys_and_checkouts() {
    let (builder, probe) = builder();
    let pool = builder.max_size(5).min_idle(2).build().unwrap();
    settle().await;
    let mut object = pool.get().await.unwrap();
    settle().await;
    assert_eq!(
        pool.status().idle,
        2,
        "a checkout below min_idle is topped up"
    );
    object.broken = true;
    drop(object);
    settle().await;
    let status = pool.status();
    assert_eq!((status.idle, status.in_use), (2, 0), "still min_idle ready");
    pool.evict_all();
    assert_eq!(pool.status().idle, 0);
    settle().await;
    assert_eq!(pool.status().idle, 2, "evicted objects are replaced");
    assert_eq!(pool.metrics().destroyed_by.evicted, 2);
    assert_eq!(probe.creates(), 5);
    assert_balanced(&pool);
}

#[tokio::test(start_paused = true)]
async fn idle_timeout_destroys_surplus_idle_objects_but_keeps_min_idle() {
    let (builder, _probe) = builder();
    let pool = builder
        .max_size(6)
        .min_idle(2)
        .idle_timeout(10 * SECOND)
        .build()
        .unwrap();
    support::fill_idle(&pool, 6).await;
    pass(9 * SECOND).await;
    assert_eq!(pool.status().idle, 6, "nothing is idle for 10 s yet");
    pass(2 * SECOND).await;
    assert_eq!(pool.status().idle, 2);
    assert_eq!(pool.metrics().destroyed_by.idle_timeout, 4);
    pass(60 * SECOND).await;
    assert_eq!(
        pool.status().idle,
        2,
        "min_idle objects are kept however long idle"
    );
    assert_balanced(&pool);
}

#[tokio::test(start_paused = true)]
async fn idle_timeout_spares_objects_used_recently() {
    let (builder, _probe) = builder();
    let pool = builder
        .max_size(2)
        .idle_timeout(10 * SECOND)
        .queue_mode(QueueMode::Fifo)
        .build()
        .unwrap();
    support::fill_idle(&pool, 2).await;
    pass(8 * SECOND).await;
    drop(pool.get().await.unwrap()); // FIFO: the first object, now fresh again
    pass(3 * SECOND).await;
    assert_eq!(pool.status().idle, 1, "only the object idle for 11 s went");
    pass(8 * SECOND).await;
    assert_eq!(pool.status().idle, 0);
}

#[tokio::test(start_paused = true)]
async fn lifetimes_of_objects_created_together_expire_spread_over_a_window() {
    let (builder, probe) = builder();
    let lifetime = 100 * SECOND;
    let pool = builder
        .max_size(100)
        .max_lifetime(lifetime)
        .build()
        .unwrap();
    support::fill_idle(&pool, 100).await;
    let mut expiries = Vec::new();
    let start = tokio::time::Instant::now();
    // Step through the last 6% of the lifetime in 100 ms steps, noting when objects go.
    pass(lifetime.mul_f64(0.94)).await;
    assert_eq!(
        probe.destroyed(),
        0,
        "no object goes before 95% of its lifetime"
    );
    while start.elapsed() <= lifetime {
        let before = probe.destroyed();
        pass(Duration::from_millis(100)).await;
        if probe.destroyed() > before {
            expiries.push(start.elapsed());
        }
    }
    assert_eq!(probe.destroyed(), 100, "every object went by its lifetime");
    assert_eq!(pool.metrics().destroyed_by.lifetime, 100);
    let first = expiries[0];
    let last = *expiries.last().unwrap();
    assert!(first >= lifetime.mul_f64(0.95), "first expiry at {first:?}");
    assert!(
        expiries.len() >= 20,
        "100 objects expired at only {} instants",
        expiries.len()
    );
    assert!(last - first >= 3 * SECOND, "window {first:?}..{last:?}");
}

#[tokio::test(start_paused = true)]
async fn background_health_check_replaces_a_dead_idle_object_before_any_user_sees_it() {
    let (builder, probe) = builder();
    let pool = builder
        .max_size(3)
        .min_idle(3)
        .health_check_interval(10 * SECOND)
        .build()
        .unwrap();
    settle().await;
    assert_eq!(probe.creates(), 3);
    probe.fail_next(Hook::HealthCheck, Fault::Fail);
    // First checks fall in the second half of the interval, spread out: all done by 10 s.
    pass(5 * SECOND).await;
    for _ in 0..50 {
        pass(SECOND / 10).await;
    }
    assert_eq!(probe.health_checks(), 3, "each object checked once");
    let metrics = pool.metrics();
    assert_eq!(metrics.health_check_failures, 1);
    assert_eq!(metrics.destroyed_by.health_check_failed, 1);
    assert_eq!(pool.status().idle, 3, "the dead object was replaced");
    assert_eq!(probe.creates(), 4);
    // Users only ever see healthy objects; no checkout ran a check.
    let held = support::hold(&pool, 3).await;
    assert_eq!(probe.health_checks(), 3);
    drop(held);
    assert_balanced(&pool);
}

#[tokio::test(start_paused = true)]
async fn background_health_checks_are_spread_over_the_interval() {
    let (builder, probe) = builder();
    let pool = builder
        .max_size(20)
        .health_check_interval(10 * SECOND)
        .build()
        .unwrap();
    support::fill_idle(&pool, 20).await;
    let mut instants_with_checks = 0;
    for _ in 0..100 {
        let before = probe.health_checks();
        pass(SECOND / 10).await;
        if probe.health_checks() > before {
            instants_with_checks += 1;
        }
    }
    assert_eq!(probe.health_checks(), 20);
    assert!(
        instants_with_checks >= 8,
        "checks bunched into {instants_with_checks} instants"
    );
    drop(pool);
}

#[tokio::test(start_paused = true)]
async fn a_hung_background_health_check_is_bounded_and_counts_as_failed() {
    let (builder, probe) = builder();
    let pool = builder
        .max_size(1)
        .health_check_interval(10 * SECOND)
        .recycle_timeout(2 * SECOND)
        .build()
        .unwrap();
    support::fill_idle(&pool, 1).await;
    probe.fail_next(Hook::HealthCheck, Fault::Hang);
    pass(10 * SECOND).await;
    pass(3 * SECOND).await;
    assert_eq!(pool.metrics().destroyed_by.health_check_failed, 1);
    assert_eq!(pool.status().size, 0);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_background_health_check_counts_as_failed() {
    let (builder, probe) = builder();
    let pool = builder
        .max_size(1)
        .min_idle(1)
        .health_check_interval(10 * SECOND)
        .build()
        .unwrap();
    settle().await;
    probe.fail_next(Hook::HealthCheck, Fault::Panic);
    pass(10 * SECOND).await;
    assert_eq!(pool.metrics().health_check_failures, 1);
    assert_eq!(
        pool.status().idle,
        1,
        "replaced, and maintenance still runs"
    );
    assert_balanced(&pool);
}

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

#[tokio::test(start_paused = true)]
async fn maintenance_runs_only_when_a_setting_needs_it() {
    let before = alive_tasks();
    let (builder, _probe) = builder();
    let plain = builder.max_size(2).build().unwrap();
    assert_eq!(alive_tasks(), before);
    let (builder, _probe) = support::builder();
    let maintained = builder.max_size(2).idle_timeout(SECOND).build().unwrap();
    assert_eq!(alive_tasks(), before + 1);
    drop((plain, maintained));
}

#[tokio::test(start_paused = true)]
async fn maintenance_task_ends_when_the_pool_is_dropped() {
    let before = alive_tasks();
    let (builder, probe) = builder();
    let pool = builder
        .max_size(4)
        .min_idle(2)
        .idle_timeout(10 * SECOND)
        .health_check_interval(SECOND)
        .build()
        .unwrap();
    settle().await;
    assert_eq!(alive_tasks(), before + 1);
    let held = pool.get().await.unwrap();
    drop(pool);
    settle().await;
    assert_eq!(alive_tasks(), before, "no task outlives the pool");
    drop(held);
    settle().await;
    probe.assert_each_destroyed_once_except(&[]);
}

#[tokio::test(start_paused = true)]
async fn maintenance_task_ends_when_the_pool_is_closed() {
    let before = alive_tasks();
    let (builder, _probe) = builder();
    let pool = builder.max_size(2).min_idle(1).build().unwrap();
    settle().await;
    pool.close();
    settle().await;
    assert_eq!(alive_tasks(), before);
}

#[tokio::test(start_paused = true)]
async fn a_pool_built_outside_a_runtime_starts_maintenance_on_first_get() {
    let (builder, _probe) = builder();
    let pool = std::thread::spawn(move || builder.max_size(3).min_idle(2).build().unwrap())
        .join()
        .unwrap();
    settle().await;
    assert_eq!(
        pool.status().idle,
        0,
        "no runtime at build, nothing started"
    );
    drop(pool.get().await.unwrap());
    settle().await;
    assert_eq!(pool.status().idle, 2);
}

#[tokio::test(start_paused = true)]
async fn build_filled_waits_until_min_idle_objects_are_ready() {
    let (builder, probe) = builder();
    probe.set_delay(Hook::Create, SECOND);
    let pool = builder
        .max_size(8)
        .min_idle(5)
        .build_filled(FillMode::WaitUntilFilled)
        .await
        .unwrap();
    assert_eq!(pool.status().idle, 5);
}

#[tokio::test(start_paused = true)]
async fn build_filled_retries_failures_until_filled() {
    let (builder, probe) = builder();
    probe.fail_next_n(Hook::Create, Fault::Fail, 3);
    let pool = builder
        .max_size(4)
        .min_idle(2)
        .build_filled(FillMode::WaitUntilFilled)
        .await
        .unwrap();
    assert_eq!(pool.status().idle, 2);
    assert_eq!(pool.metrics().create_failures, 3);
}

#[tokio::test(start_paused = true)]
async fn build_filled_fails_fast_on_the_first_create_error() {
    let (builder, probe) = builder();
    probe.set_always(Hook::Create, Some(Fault::Fail));
    let error = builder
        .max_size(4)
        .min_idle(2)
        .build_filled(FillMode::FailFast)
        .await
        .unwrap_err();
    match error {
        FillError::Create { error: Some(error) } => assert_eq!(error.hook, Hook::Create),
        other => panic!("expected the create error, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn build_filled_times_out_with_the_last_error() {
    let (builder, probe) = builder();
    probe.set_always(Hook::Create, Some(Fault::Fail));
    let error = builder
        .max_size(4)
        .min_idle(2)
        .wait_timeout(5 * SECOND)
        .build_filled(FillMode::WaitUntilFilled)
        .await
        .unwrap_err();
    assert!(
        matches!(
            &error,
            FillError::Timeout {
                last_error: Some(_)
            }
        ),
        "{error:?}"
    );
    // The cause is the source (not repeated in the message), so a report walking the
    // chain says why.
    let cause = std::error::Error::source(&error).expect("the last error as the source");
    assert!(cause.to_string().contains("failed on purpose"), "{cause}");
}

#[tokio::test(start_paused = true)]
async fn build_filled_refuses_a_bad_configuration() {
    let (builder, _probe) = builder();
    let error = builder
        .max_size(0)
        .build_filled(FillMode::FailFast)
        .await
        .unwrap_err();
    assert!(matches!(error, FillError::Build(ref e) if e.field() == "max_size"));
}

/// `min_idle(1)` with one create at a time, each taking `create_time`.
fn one_idle_one_create_at_a_time(
    create_time: Duration,
) -> (support::TestPool, std::sync::Arc<support::Probe>) {
    let (builder, probe) = builder();
    probe.set_delay(Hook::Create, create_time);
    let pool = builder
        .max_size(4)
        .min_idle(1)
        .max_concurrent_creates(1)
        .build()
        .unwrap();
    (pool, probe)
}

#[tokio::test(start_paused = true)]
async fn a_refilled_object_goes_to_a_waiter_instead_of_a_second_create() {
    let (pool, _probe) = one_idle_one_create_at_a_time(SECOND / 10);
    settle().await;
    assert_eq!(pool.status().creating, 1, "the refill is under way");
    let start = tokio::time::Instant::now();
    let waiter = support::spawn_waiter(&pool).await;
    let object = waiter.await.unwrap().unwrap();
    assert_eq!(
        support::meta_id(&object),
        1,
        "the waiter got the refilled object"
    );
    assert_eq!(start.elapsed(), SECOND / 10, "served when the refill ended");
}

#[tokio::test(start_paused = true)]
async fn min_idle_is_restored_once_a_callers_create_frees_the_create_permit() {
    let (pool, _probe) = one_idle_one_create_at_a_time(SECOND / 100);
    let held = pool.get().await.unwrap(); // took the only create permit first
    settle().await; // maintenance, woken when the permit came free, starts a refill
    pass(SECOND).await;
    assert_eq!(pool.status().idle, 1);
    drop(held);
}

#[tokio::test(start_paused = true)]
async fn a_hung_background_check_holds_no_other_object_hostage() {
    let (builder, probe) = builder();
    let pool = builder
        .max_size(2)
        .health_check_interval(10 * SECOND)
        .build()
        .unwrap();
    let held = support::hold(&pool, 2).await;
    pass(11 * SECOND).await;
    drop(held); // both overdue for a check now
    probe.fail_next(Hook::HealthCheck, Fault::Hang);
    pass(10 * SECOND).await;
    let object = pool.get_timeout(5 * SECOND).await;
    assert!(object.is_ok(), "{:?}", pool.status());
}

#[tokio::test(start_paused = true)]
async fn objects_under_a_background_check_still_count_toward_min_idle() {
    let (builder, probe) = builder();
    probe.set_delay(Hook::HealthCheck, SECOND / 20);
    let pool = builder
        .max_size(10)
        .min_idle(3)
        .health_check_interval(10 * SECOND)
        .build()
        .unwrap();
    settle().await;
    for _ in 0..600 {
        pass(SECOND / 10).await;
    }
    assert!(probe.health_checks() >= 9);
    assert_eq!(pool.status().size, 3, "checks made no extra objects");
}
