//! Many tasks on a small pool, on the multi-thread runtime: an object is never held by two
//! users at once, the pool never grows past its limit, and after shutdown every created
//! object was destroyed exactly once. Nothing here measures time.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pool_core::{Object, PoolError};
use support::*;

const MAX_SIZE: usize = 4;
const TASKS: usize = 1_000;

/// Counts the tasks holding an object right now.
#[derive(Default)]
struct Holders {
    now: AtomicUsize,
    peak: AtomicUsize,
}

impl Holders {
    /// Uses `object` for a moment, checking nobody else holds it and the limits hold.
    async fn use_exclusively(&self, pool: &TestPool, object: &TestGuard) {
        object.claim();
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        assert!(now <= MAX_SIZE, "{now} concurrent holders");
        let size = pool.status().size;
        assert!(size <= MAX_SIZE, "pool size {size}");
        tokio::task::yield_now().await;
        self.now.fetch_sub(1, Ordering::SeqCst);
        object.release();
    }
}

/// Shuts the pool down and checks every created object, bar `taken`, was destroyed once.
async fn shut_down_and_check(pool: TestPool, probe: &Probe, taken: &[u64]) {
    let report = pool.shutdown(Duration::from_secs(30)).await;
    assert!(report.is_clean(), "{report:?}");
    assert_balanced(&pool);
    let metrics = pool.metrics();
    assert_eq!(metrics.created, probe.created());
    assert_eq!(metrics.destroyed, probe.destroyed() as u64);
    assert_eq!(metrics.taken, taken.len() as u64);
    probe.assert_each_destroyed_once_except(taken);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_tasks_never_share_an_object_or_exceed_four() {
    let (pool, probe) = pool(MAX_SIZE);
    let holders = Arc::new(Holders::default());
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let (pool, holders) = (pool.clone(), Arc::clone(&holders));
            tokio::spawn(async move {
                let object = pool.get().await.unwrap();
                holders.use_exclusively(&pool, &object).await;
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert!(holders.peak.load(Ordering::SeqCst) <= MAX_SIZE);
    let status = pool.status();
    assert!(status.size <= MAX_SIZE, "{status:?}");
    assert_eq!((status.in_use, status.waiting), (0, 0));
    let metrics = pool.metrics();
    assert!(metrics.created <= MAX_SIZE as u64);
    // Recycles are counted per thread and summed: none may be lost or counted twice.
    assert_eq!(
        metrics.created + metrics.recycled,
        TASKS as u64,
        "every get either created or recycled: {metrics:?}"
    );
    shut_down_and_check(pool, &probe, &[]).await;
}

/// What one task of the mixed workload does.
async fn mixed_task(i: usize, pool: TestPool, holders: Arc<Holders>, taken: Arc<Mutex<Vec<u64>>>) {
    let result = match i % 5 {
        0 => pool.try_get().await,
        1 => match tokio::time::timeout(Duration::from_millis(i as u64 % 200), pool.get()).await {
            Ok(result) => result,
            Err(_) => return, // cancelled somewhere inside the get
        },
        _ => pool.get().await,
    };
    let mut object = match result {
        Ok(object) => object,
        Err(PoolError::Exhausted | PoolError::Backend(_)) => return,
        Err(error) => panic!("task {i}: {error:?}"),
    };
    holders.use_exclusively(&pool, &object).await;
    if i % 11 == 0 {
        object.broken = true;
    } else if i % 13 == 0 {
        taken.lock().unwrap().push(Object::take(object).id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_tasks_with_faults_and_cancellations_leak_nothing() {
    let (pool, probe) = pool(MAX_SIZE);
    probe.fail_next_n(Hook::Create, Fault::Fail, 10);
    probe.fail_next_n(Hook::Recycle, Fault::Fail, 50);
    probe.set_delay(Hook::Recycle, Duration::from_micros(100)); // a window to cancel in
    // A panicking hook unwinds into the `get` it ran for: at most one task per injected panic
    // ends in a panic (fewer when a cancelled `get` dropped the hook before it ran).
    const PANICS: usize = 10;
    probe.fail_next_n(Hook::Create, Fault::Panic, PANICS / 2);
    probe.fail_next_n(Hook::Recycle, Fault::Panic, PANICS / 2);
    let holders = Arc::new(Holders::default());
    let taken = Arc::new(Mutex::new(Vec::new()));
    let tasks: Vec<_> = (0..TASKS)
        .map(|i| {
            let task = mixed_task(i, pool.clone(), Arc::clone(&holders), Arc::clone(&taken));
            tokio::spawn(task)
        })
        .collect();
    let mut panicked = 0;
    for task in tasks {
        match task.await {
            Ok(()) => {}
            Err(error) if error.is_panic() => {
                let message = error.into_panic();
                let message = message
                    .downcast_ref::<&str>()
                    .copied()
                    .or_else(|| message.downcast_ref::<String>().map(String::as_str))
                    .unwrap_or_default()
                    .to_owned();
                assert!(message.contains("on purpose"), "a task panicked: {message}");
                panicked += 1;
            }
            Err(error) => panic!("{error}"),
        }
    }
    assert!(panicked <= PANICS, "{panicked} tasks panicked");
    let status = pool.status();
    assert!(status.size <= MAX_SIZE, "{status:?}");
    assert_eq!((status.in_use, status.creating, status.waiting), (0, 0, 0));
    assert_balanced(&pool);
    let taken = taken.lock().unwrap().clone();
    shut_down_and_check(pool, &probe, &taken).await;
}
