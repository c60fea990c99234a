//! The life of objects and of the pool: when objects are destroyed and why, `resize`,
//! `retain`, `evict_all`, `close`, `shutdown`, `take`, and the settings `build` refuses.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use pool_core::{Object, PoolBuilder, PoolError};
use support::*;
use tokio::time::Instant;

#[tokio::test(start_paused = true)]
async fn max_uses_destroys_an_object_after_its_last_use() {
    let (builder, probe) = builder();
    let pool = builder.max_uses(2).build().unwrap();
    drop(pool.get().await.unwrap());
    assert_eq!(pool.status().idle, 1);
    let second_use = pool.get().await.unwrap();
    assert_eq!(
        (meta_id(&second_use), Object::meta(&second_use).times_used),
        (1, 2)
    );
    drop(second_use);
    assert_eq!(pool.status().size, 0);
    assert_eq!(pool.metrics().destroyed_by.max_uses, 1);
    assert_eq!(meta_id(&pool.get().await.unwrap()), 2);
    settle().await;
    assert_eq!(probe.destroyed_ids(), [1]);
}

#[tokio::test(start_paused = true)]
async fn max_uses_is_shortened_per_object_by_up_to_5_percent_never_lengthened() {
    let (builder, _probe) = builder();
    let pool = builder.max_size(1).max_uses(100).build().unwrap();
    let mut uses_per_object: Vec<u64> = Vec::new();
    while uses_per_object.len() < 12 {
        let object = pool.get().await.unwrap();
        let (id, uses) = (meta_id(&object), Object::meta(&object).times_used);
        drop(object);
        if pool.status().size == 0 {
            assert_eq!(id as usize, uses_per_object.len() + 1);
            uses_per_object.push(uses);
        }
    }
    assert!(
        uses_per_object.iter().all(|uses| (96..=100).contains(uses)),
        "{uses_per_object:?}"
    );
    // Objects created together are not retired together.
    assert!(
        uses_per_object
            .iter()
            .any(|uses| *uses != uses_per_object[0]),
        "{uses_per_object:?}"
    );
}

/// Connections numbered from 1; those in `closed` say so through `Manager::unusable`.
struct Connections {
    next: std::sync::atomic::AtomicU32,
    closed: Arc<Mutex<Vec<u32>>>,
}

impl pool_core::Manager for Connections {
    type Object = u32;
    type Error = std::io::Error;

    async fn create(&self) -> Result<u32, std::io::Error> {
        Ok(self.next.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1)
    }

    fn unusable(
        &self,
        id: &u32,
        _: &pool_core::ObjectMeta,
    ) -> Option<std::borrow::Cow<'static, str>> {
        let closed = self.closed.lock().unwrap().contains(id);
        closed.then_some("connection closed by the server".into())
    }
}

#[tokio::test(start_paused = true)]
async fn an_unusable_object_is_refused_at_checkout_without_a_backend_error() {
    let closed = Arc::new(Mutex::new(Vec::new()));
    let manager = Connections {
        next: Default::default(),
        closed: Arc::clone(&closed),
    };
    let pool = pool_core::Pool::builder(manager)
        .max_size(4)
        .build()
        .unwrap();
    let (first, second) = (pool.get().await.unwrap(), pool.get().await.unwrap());
    assert_eq!((*first, *second), (1, 2));
    drop(first);
    drop(second);
    closed.lock().unwrap().push(2);
    // LIFO would hand out 2: it is refused, and 1 is handed out instead.
    assert_eq!(*pool.get().await.unwrap(), 1);
    let metrics = pool.metrics();
    assert_eq!(
        (
            metrics.recycle_failures,
            metrics.destroyed_by.recycle_failed,
            metrics.recycled
        ),
        (1, 1, 1)
    );
    assert_eq!(pool.status().size, 1);
}

/// An object made outside the pool, numbered apart from the manager's.
fn made_elsewhere(id: u64) -> support::TestObject {
    support::TestObject {
        id,
        in_use: Arc::default(),
        broken: false,
    }
}

#[tokio::test(start_paused = true)]
async fn an_added_object_is_handed_out_recycled_and_destroyed_like_a_created_one() {
    let (pool, probe) = pool(2);
    pool.add(made_elsewhere(100)).unwrap();
    assert_eq!(pool.status().idle, 1);
    let object = pool.get().await.unwrap();
    assert_eq!((object.id, Object::meta(&object).times_used), (100, 1));
    assert_eq!(probe.creates(), 0, "no create was needed");
    assert_eq!(probe.recycles(), 1);
    assert_eq!(pool.metrics().created, 1);
    drop(object);
    pool.close();
    settle().await;
    assert_eq!(probe.destroyed_ids(), [100]);
}

#[tokio::test(start_paused = true)]
async fn add_refuses_a_full_or_closed_pool_and_hands_the_object_back() {
    let (pool, _probe) = pool(1);
    let held = pool.get().await.unwrap();
    match pool.add(made_elsewhere(100)) {
        Err(pool_core::AddError::Full(object)) => assert_eq!(object.id, 100),
        other => panic!("expected Full, got {other:?}"),
    }
    drop(held);
    pool.close();
    let refused = pool.add(made_elsewhere(101)).unwrap_err();
    assert!(matches!(refused, pool_core::AddError::Closed(_)));
    assert_eq!(refused.into_object().id, 101);
    assert_balanced(&pool);
}

#[tokio::test(start_paused = true)]
async fn an_added_object_goes_to_the_longest_waiter() {
    let (builder, probe) = builder();
    let pool = builder
        .max_size(2)
        .max_concurrent_creates(1)
        .build()
        .unwrap();
    probe.fail_next(Hook::Create, Fault::Hang);
    let creating = spawn_get(&pool);
    settle().await;
    let waiter = spawn_get(&pool);
    settle().await;
    assert_eq!(pool.status().waiting, 1, "{:?}", pool.status());
    pool.add(made_elsewhere(100)).unwrap();
    let object = waiter.await.unwrap().unwrap();
    assert_eq!(object.id, 100);
    creating.abort();
    assert_balanced(&pool);
}

#[tokio::test(start_paused = true)]
async fn a_recycle_error_destroys_the_object_and_another_is_tried() {
    let (pool, probe) = pool(4);
    fill_idle(&pool, 2).await;
    probe.fail_next(Hook::Recycle, Fault::Fail);
    let object = pool.get().await.unwrap();
    assert_eq!(meta_id(&object), 1, "object 2 (LIFO) failed to recycle");
    assert_eq!(probe.recycles(), 2);
    let metrics = pool.metrics();
    assert_eq!((metrics.recycle_failures, metrics.recycled), (1, 1));
    assert_eq!(metrics.destroyed_by.recycle_failed, 1);
    assert_balanced(&pool);
}

#[tokio::test(start_paused = true)]
async fn a_recycle_error_on_the_last_idle_object_creates_a_new_one() {
    let (pool, probe) = pool(1);
    fill_idle(&pool, 1).await;
    probe.fail_next(Hook::Recycle, Fault::Fail);
    assert_eq!(meta_id(&pool.get().await.unwrap()), 2);
    assert_eq!(probe.creates(), 2);
}

#[tokio::test(start_paused = true)]
async fn is_broken_destroys_the_object_on_return() {
    let (pool, probe) = pool(2);
    let mut object = pool.get().await.unwrap();
    object.broken = true;
    drop(object);
    assert_eq!(probe.broken_checks(), 1);
    assert_eq!(pool.status().size, 0);
    assert_eq!(pool.metrics().destroyed_by.broken, 1);
    settle().await;
    assert_eq!(probe.destroyed_ids(), [1]);
}

#[tokio::test(start_paused = true)]
async fn an_object_dropped_while_its_thread_panics_is_destroyed_not_returned() {
    let (pool, probe) = pool(2);
    let clone = pool.clone();
    let task = tokio::spawn(async move {
        let _object = clone.get().await.unwrap();
        panic!("user code panics while holding an object");
    });
    assert!(task.await.unwrap_err().is_panic());
    assert_eq!(pool.status().size, 0);
    assert_eq!(pool.metrics().destroyed_by.broken, 1);
    settle().await;
    assert_eq!(probe.destroyed_ids(), [1]);
}

#[tokio::test(start_paused = true)]
async fn growing_the_pool_serves_waiters_at_once() {
    let (pool, _probe) = pool(1);
    let _held = pool.get().await.unwrap();
    let waiters = [spawn_waiter(&pool).await, spawn_waiter(&pool).await];
    pool.resize(3).unwrap();
    assert_eq!(pool.status().max_size, 3);
    let mut ids = Vec::new();
    for waiter in waiters {
        ids.push(meta_id(&waiter.await.unwrap().unwrap()));
    }
    assert_eq!(ids, [2, 3]);
    assert_balanced(&pool);
}

#[tokio::test(start_paused = true)]
async fn shrinking_destroys_idle_objects_now_and_checked_out_ones_on_return() {
    let (pool, probe) = pool(3);
    let mut held = hold(&pool, 3).await;
    drop(held.remove(0));
    pool.resize(1).unwrap();
    let status = pool.status();
    assert_eq!((status.max_size, status.size, status.idle), (1, 2, 0));
    assert!(
        status.size > status.max_size,
        "allowed only while shrinking"
    );
    drop(held.remove(0));
    assert_eq!(pool.status().size, 1);
    drop(held.remove(0));
    let status = pool.status();
    assert_eq!((status.size, status.idle), (1, 1), "the last one is kept");
    assert_eq!(pool.metrics().destroyed_by.evicted, 2);
    settle().await;
    assert_eq!(probe.destroyed_ids(), [1, 2]);
    assert_balanced(&pool);
}

#[tokio::test(start_paused = true)]
async fn after_a_shrink_waiters_are_served_only_within_the_new_limit() {
    let (pool, _probe) = pool(3);
    let mut held = hold(&pool, 3).await;
    let waiter = spawn_waiter(&pool).await;
    pool.resize(2).unwrap();
    drop(held.pop()); // destroyed: still over the limit
    let status = pool.status();
    assert_eq!((status.size, status.waiting), (2, 1));
    drop(held.pop()); // within the limit now: goes to the waiter
    assert_eq!(meta_id(&waiter.await.unwrap().unwrap()), 2);
    assert_eq!(pool.metrics().destroyed_by.evicted, 1);
    assert_balanced(&pool);
}

#[tokio::test(start_paused = true)]
async fn resize_to_zero_is_refused() {
    let (pool, _probe) = pool(3);
    fill_idle(&pool, 2).await;
    let error = pool.resize(0).unwrap_err();
    assert_eq!(error.field(), "max_size");
    let status = pool.status();
    assert_eq!((status.max_size, status.idle), (3, 2));
}

#[tokio::test(start_paused = true)]
async fn retain_visits_only_idle_objects_and_destroys_the_refused_ones() {
    let (pool, probe) = pool(3);
    let mut held = hold(&pool, 3).await;
    let out = held.pop().unwrap();
    drop(held);
    let visited = Arc::new(Mutex::new(Vec::new()));
    pool.retain(|object, meta| {
        visited.lock().unwrap().push(meta.id);
        object.id == 1
    });
    visited.lock().unwrap().sort_unstable();
    assert_eq!(*visited.lock().unwrap(), [1, 2]);
    let status = pool.status();
    assert_eq!((status.size, status.idle, status.in_use), (2, 1, 1));
    assert_eq!(pool.metrics().destroyed_by.retained_out, 1);
    drop(out);
    assert_eq!(pool.status().idle, 2, "checked-out objects are not judged");
    settle().await;
    assert_eq!(probe.destroyed_ids(), [2]);
}

#[tokio::test(start_paused = true)]
async fn evict_all_destroys_idle_now_and_checked_out_on_return_but_keeps_new_objects() {
    let (pool, probe) = pool(4);
    let mut held = hold(&pool, 3).await; // 1, 2, 3
    drop(held.pop()); // 3 idle
    pool.evict_all();
    assert_eq!(pool.status().size, 2);
    let fresh = pool.get().await.unwrap();
    assert_eq!(meta_id(&fresh), 4);
    drop(held.pop()); // 2, from before the eviction
    drop(fresh);
    let status = pool.status();
    assert_eq!((status.size, status.idle, status.in_use), (2, 1, 1));
    assert_eq!(meta_id(&pool.get().await.unwrap()), 4);
    drop(held);
    assert_eq!(pool.metrics().destroyed_by.evicted, 3);
    settle().await;
    assert_eq!(probe.destroyed_ids(), [3, 2, 1]);
    assert_balanced(&pool);
}

#[tokio::test(start_paused = true)]
async fn an_evicted_object_coming_back_to_a_waiter_is_replaced_by_a_new_one() {
    let (pool, _probe) = pool(1);
    let held = pool.get().await.unwrap();
    let waiter = spawn_waiter(&pool).await;
    pool.evict_all();
    drop(held);
    assert_eq!(meta_id(&waiter.await.unwrap().unwrap()), 2);
    assert_eq!(pool.metrics().destroyed_by.evicted, 1);
}

#[tokio::test(start_paused = true)]
async fn close_gives_waiters_closed() {
    let (pool, _probe) = pool(1);
    let _held = pool.get().await.unwrap();
    let waiters = [spawn_waiter(&pool).await, spawn_waiter(&pool).await];
    pool.close();
    for waiter in waiters {
        assert!(matches!(waiter.await.unwrap(), Err(PoolError::Closed)));
    }
    assert_eq!(pool.status().waiting, 0);
}

#[tokio::test(start_paused = true)]
async fn close_gives_closed_to_a_waiter_granted_an_object_it_had_not_collected() {
    let (pool, probe) = pool(1);
    let held = pool.get().await.unwrap();
    let waiter = spawn_waiter(&pool).await;
    drop(held); // handed to the waiter, which has not run yet
    pool.close();
    let result = waiter.await.unwrap();
    assert!(matches!(result, Err(PoolError::Closed)), "{result:?}");
    settle().await;
    assert_eq!(probe.destroyed_ids(), [1]);
}

#[tokio::test(start_paused = true)]
async fn close_gives_closed_at_once_to_a_get_retrying_a_down_backend() {
    let (builder, probe) = builder();
    let pool = builder
        .wait_timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    probe.set_always(Hook::Create, Some(Fault::Fail));
    let retrying = spawn_get(&pool);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(probe.creates() > 1, "it is retrying");
    pool.close();
    let start = Instant::now();
    let result = retrying.await.unwrap();
    assert!(matches!(result, Err(PoolError::Closed)), "{result:?}");
    assert_eq!(
        start.elapsed(),
        Duration::ZERO,
        "released by close, not by its backoff"
    );
}

#[tokio::test(start_paused = true)]
async fn a_create_finishing_after_close_is_destroyed_and_its_caller_gets_closed() {
    let (pool, probe) = pool(1);
    probe.set_delay(Hook::Create, Duration::from_secs(1));
    let creating = spawn_get(&pool);
    wait_until("a create in flight", || pool.status().creating == 1).await;
    pool.close();
    assert!(matches!(creating.await.unwrap(), Err(PoolError::Closed)));
    assert_eq!(pool.status().size, 0);
    assert_eq!(pool.metrics().destroyed_by.closed, 1);
    settle().await;
    assert_eq!(probe.destroyed_ids(), [1]);
}

#[tokio::test(start_paused = true)]
async fn close_destroys_idle_objects() {
    let (pool, probe) = pool(3);
    fill_idle(&pool, 3).await;
    pool.close();
    assert!(pool.is_closed());
    assert_eq!(pool.status().size, 0);
    assert_eq!(pool.metrics().destroyed_by.closed, 3);
    settle().await;
    probe.assert_each_destroyed_once_except(&[]);
}

#[tokio::test(start_paused = true)]
async fn objects_returned_after_close_are_destroyed() {
    let (pool, probe) = pool(3);
    let held = hold(&pool, 2).await;
    pool.close();
    assert_eq!(pool.status().size, 2);
    drop(held);
    assert_eq!(pool.status().size, 0);
    assert_eq!(pool.metrics().destroyed_by.closed, 2);
    settle().await;
    probe.assert_each_destroyed_once_except(&[]);
}

#[tokio::test(start_paused = true)]
async fn get_after_close_is_closed() {
    let (pool, probe) = pool(3);
    fill_idle(&pool, 1).await;
    pool.close();
    assert!(matches!(pool.get().await, Err(PoolError::Closed)));
    assert!(matches!(pool.try_get().await, Err(PoolError::Closed)));
    let timed = pool.get_timeout(Duration::from_secs(1)).await;
    assert!(matches!(timed, Err(PoolError::Closed)));
    assert_eq!(probe.creates(), 1);
}

#[tokio::test(start_paused = true)]
async fn shutdown_waits_for_returns_and_destroys_then_reports_clean() {
    let (pool, probe) = pool(3);
    probe.set_destroy(Destroy::Slow(Duration::from_secs(1)));
    let held = pool.get().await.unwrap();
    fill_idle(&pool, 1).await;
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        drop(held);
    });
    let start = Instant::now();
    let report = pool.shutdown(Duration::from_secs(10)).await;
    assert!(report.is_clean(), "{report:?}");
    // Returned at 2 s, destroyed by 3 s.
    assert_eq!(start.elapsed(), Duration::from_secs(3));
    assert_eq!(probe.destroyed(), 2);
    assert_eq!(pool.metrics().destroyed_by.closed, 2);
}

#[tokio::test(start_paused = true)]
async fn shutdown_reports_objects_still_out_after_grace() {
    let (pool, probe) = pool(3);
    let held = pool.get().await.unwrap();
    let start = Instant::now();
    let report = pool.shutdown(Duration::from_secs(1)).await;
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    assert_eq!((report.still_out, report.still_destroying), (1, 0));
    drop(held);
    settle().await;
    assert_eq!(probe.destroyed_ids(), [1]);
    assert_eq!(pool.metrics().destroyed_by.closed, 1);
}

#[tokio::test(start_paused = true)]
async fn a_hung_destroy_does_not_hang_shutdown() {
    let (pool, probe) = pool(3);
    fill_idle(&pool, 2).await;
    probe.set_destroy(Destroy::Slow(HANG));
    let start = Instant::now();
    let report = pool.shutdown(Duration::from_secs(1)).await;
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    assert_eq!((report.still_out, report.still_destroying), (0, 2));
    assert_eq!(probe.destroy_calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_last_pool_handle_closes_the_pool() {
    let (pool, probe) = pool(3);
    let clone = pool.clone();
    let held = pool.get().await.unwrap();
    fill_idle(&pool, 1).await;
    drop(pool);
    assert!(!clone.is_closed(), "a handle is still alive");
    assert_eq!(clone.status().size, 2);
    drop(clone);
    settle().await;
    assert_eq!(probe.destroyed_ids(), [2], "the idle object");
    drop(held);
    settle().await;
    assert_eq!(probe.destroyed_ids(), [2, 1], "the returned object");
}

#[tokio::test(start_paused = true)]
async fn destroy_runs_off_the_callers_path() {
    let (pool, probe) = pool(1);
    probe.set_destroy(Destroy::Slow(Duration::from_secs(10)));
    let mut object = pool.get().await.unwrap();
    object.broken = true;
    let start = Instant::now();
    drop(object);
    let next = pool.get().await.unwrap();
    assert_eq!(
        start.elapsed(),
        Duration::ZERO,
        "neither the drop nor the get waited"
    );
    assert_eq!(meta_id(&next), 2);
    settle().await;
    assert_eq!((probe.destroy_calls(), probe.destroyed()), (1, 0));
    tokio::time::sleep(Duration::from_secs(10)).await;
    settle().await;
    assert_eq!(probe.destroyed_ids(), [1]);
}

#[tokio::test(start_paused = true)]
async fn take_frees_the_slot_and_counts_as_taken() {
    let (pool, probe) = pool(1);
    let held = pool.get().await.unwrap();
    let waiter = spawn_waiter(&pool).await;
    let mine = Object::take(held);
    assert_eq!(mine.id, 1);
    let replacement = waiter.await.unwrap().unwrap();
    assert_eq!(meta_id(&replacement), 2);
    assert_eq!(pool.metrics().taken, 1);
    assert_eq!(pool.status().size, 1);
    assert_balanced(&pool);
    drop(replacement);
    pool.shutdown(Duration::from_secs(1)).await;
    probe.assert_each_destroyed_once_except(&[1]);
}

#[tokio::test(start_paused = true)]
async fn every_created_object_is_destroyed_exactly_once_or_taken() {
    let (pool, probe) = pool(4);
    let mut held = hold(&pool, 4).await;
    held[0].broken = true;
    let taken = vec![Object::take(held.pop().unwrap()).id];
    drop(held);
    probe.fail_next(Hook::Recycle, Fault::Fail);
    let mut held = hold(&pool, 3).await;
    pool.evict_all();
    drop(held.pop());
    pool.resize(1).unwrap();
    drop(held);
    pool.resize(4).unwrap();
    let held = hold(&pool, 2).await;
    pool.retain(|_, _| false);
    assert_balanced(&pool);
    let report = pool.shutdown(Duration::from_secs(1)).await;
    assert_eq!(report.still_out, 2);
    drop(held);
    settle().await;
    assert_balanced(&pool);
    probe.assert_each_destroyed_once_except(&taken);
    let metrics = pool.metrics();
    assert_eq!(metrics.created, probe.created());
    assert_eq!(metrics.destroyed, probe.destroyed() as u64);
}

/// Builds a pool configured by `configure` and returns the field its error names.
fn refused_field(
    configure: impl FnOnce(PoolBuilder<TestManager>) -> PoolBuilder<TestManager>,
) -> &'static str {
    let (builder, _probe) = builder();
    let error = configure(builder).build().unwrap_err();
    assert!(error.to_string().contains(error.field()), "{error}");
    error.field()
}

#[test]
fn build_refuses_zero_max_size() {
    assert_eq!(refused_field(|b| b.max_size(0)), "max_size");
}

#[test]
fn build_refuses_min_idle_above_max_size() {
    assert_eq!(refused_field(|b| b.max_size(2).min_idle(3)), "min_idle");
}

#[test]
fn build_refuses_zero_max_concurrent_creates() {
    assert_eq!(
        refused_field(|b| b.max_concurrent_creates(0)),
        "max_concurrent_creates"
    );
}

#[test]
fn build_refuses_zero_max_uses() {
    assert_eq!(refused_field(|b| b.max_uses(0)), "max_uses");
}

#[test]
fn build_refuses_zero_durations_naming_the_field() {
    type Setter = fn(PoolBuilder<TestManager>, Duration) -> PoolBuilder<TestManager>;
    let setters: [(&str, Setter); 7] = [
        ("wait_timeout", PoolBuilder::wait_timeout),
        ("create_timeout", PoolBuilder::create_timeout),
        ("recycle_timeout", PoolBuilder::recycle_timeout),
        ("idle_timeout", PoolBuilder::idle_timeout),
        ("max_lifetime", PoolBuilder::max_lifetime),
        ("health_check_interval", PoolBuilder::health_check_interval),
        ("leak_threshold", PoolBuilder::leak_threshold),
    ];
    for (field, set) in setters {
        assert_eq!(refused_field(|b| set(b, Duration::ZERO)), field);
    }
}

#[test]
fn build_needs_no_runtime() {
    let (builder, _probe) = builder();
    let pool = builder.max_size(2).min_idle(1).build().unwrap();
    assert_eq!(pool.status().max_size, 2);
}

#[tokio::test(start_paused = true)]
async fn evict_all_also_evicts_an_object_whose_create_started_before_it() {
    let (pool, probe) = pool(2);
    probe.set_delay(Hook::Create, Duration::from_secs(1));
    let creating = spawn_get(&pool);
    settle().await;
    pool.evict_all();
    let object = creating.await.unwrap().unwrap();
    drop(object);
    assert_eq!(
        pool.metrics().destroyed_by.evicted,
        1,
        "made before the eviction"
    );
    assert_eq!(pool.status().size, 0);
}
