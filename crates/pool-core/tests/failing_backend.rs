//! A backend that goes down and comes back: creation is paced by one pool-wide backoff,
//! bounded by `max_concurrent_creates`, driven by demand, and every caller learns why it
//! failed. All on tokio's paused clock.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pool_core::{Manager, Pool, PoolError, TimeoutKind};
use support::{Hook, settle};
use tokio::time::Instant;

const SECOND: Duration = Duration::from_secs(1);

/// A backend that refuses every connection until `up_at`, counting the attempts.
struct FlakyBackend {
    up_at: Instant,
    attempts: Arc<AtomicUsize>,
}

#[derive(Debug, thiserror::Error)]
#[error("connection refused by the backend")]
struct Refused;

impl Manager for FlakyBackend {
    type Object = ();
    type Error = Refused;

    async fn create(&self) -> Result<(), Refused> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        if Instant::now() < self.up_at {
            Err(Refused)
        } else {
            Ok(())
        }
    }
}

fn spawn_get(pool: &Pool<FlakyBackend>) -> tokio::task::JoinHandle<Result<(), PoolError<Refused>>> {
    let pool = pool.clone();
    tokio::spawn(async move { pool.get().await.map(drop) })
}

fn flaky_pool(down_for: Duration) -> (Pool<FlakyBackend>, Arc<AtomicUsize>) {
    let attempts = Arc::new(AtomicUsize::new(0));
    let manager = FlakyBackend {
        up_at: Instant::now() + down_for,
        attempts: Arc::clone(&attempts),
    };
    let pool = Pool::builder(manager)
        .max_size(10)
        .wait_timeout(5 * SECOND)
        .build()
        .unwrap();
    (pool, attempts)
}

#[tokio::test(start_paused = true)]
async fn a_backend_down_for_a_minute_sees_few_creates_and_every_caller_learns_why() {
    // Down for a minute (and a hair, so no round ends exactly as it comes back).
    let (pool, attempts) = flaky_pool(60 * SECOND + SECOND / 10);
    let start = Instant::now();
    let mut callers = 0;
    while start.elapsed() < 60 * SECOND {
        let round: Vec<_> = (0..50).map(|_| spawn_get(&pool)).collect();
        for caller in round {
            match caller.await.unwrap() {
                Err(PoolError::Timeout {
                    last_error: Some(error),
                    ..
                }) => assert_eq!(error.to_string(), "connection refused by the backend"),
                other => panic!("expected a timeout carrying the backend's error, got {other:?}"),
            }
            callers += 1;
        }
    }
    let during_outage = attempts.load(Ordering::SeqCst);
    println!("{callers} callers over 60 s of outage: {during_outage} create attempts");
    assert_eq!(callers, 600);
    // Without a shared backoff each of the 600 callers would retry on its own; with it,
    // the backend sees one probe per backoff delay: at most 4 a second at the default cap
    // of 500 ms (each delay cut by up to half), whatever the number of callers.
    assert!(
        during_outage <= 4 * 60 + 10,
        "{during_outage} create attempts in 60 s"
    );
    assert_eq!(pool.metrics().timeouts, 600);

    // The backend is back: the pool recovers by itself, within one backoff delay of that.
    tokio::time::sleep_until(start + 60 * SECOND + SECOND / 10).await;
    let asked = Instant::now();
    let object = pool.get().await.expect("the pool recovers by itself");
    assert!(
        asked.elapsed() <= pool_core::DEFAULT_CREATE_BACKOFF_MAX,
        "recovered after {:?}",
        asked.elapsed()
    );
    drop(object);
    let status = pool.status();
    assert_eq!((status.size, status.idle), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn a_pool_with_min_idle_refills_by_itself_when_the_backend_returns() {
    let attempts = Arc::new(AtomicUsize::new(0));
    let manager = FlakyBackend {
        up_at: Instant::now() + 30 * SECOND,
        attempts: Arc::clone(&attempts),
    };
    let pool = Pool::builder(manager)
        .max_size(4)
        .min_idle(2)
        .build()
        .unwrap();
    for _ in 0..35 {
        tokio::time::advance(SECOND).await;
        settle().await;
    }
    assert_eq!(pool.status().idle, 2, "refilled with no call from outside");
    let attempts = attempts.load(Ordering::SeqCst);
    // One probe per backoff delay: at most 4 a second at the default cap.
    assert!(
        attempts <= 4 * 30 + 10,
        "{attempts} attempts in 30 s of outage"
    );
}

#[tokio::test(start_paused = true)]
async fn waiters_without_a_deadline_each_get_a_failure_instead_of_waiting_forever() {
    let (builder, probe) = support::builder();
    probe.set_always(Hook::Create, Some(support::Fault::Fail));
    let pool = builder.max_size(4).build().unwrap();
    let callers: Vec<_> = (0..8).map(|_| support::spawn_get(&pool)).collect();
    for caller in callers {
        match caller.await.unwrap() {
            Err(PoolError::Backend(error)) => assert_eq!(error.hook, Hook::Create),
            other => panic!("expected the backend's error, got {other:?}"),
        }
    }
    assert_eq!(pool.status().size, 0);
}

#[tokio::test(start_paused = true)]
async fn with_a_deadline_a_caller_is_served_when_the_backend_returns_in_time() {
    let (pool, _attempts) = flaky_pool(2 * SECOND);
    let object = pool.get().await;
    assert!(object.is_ok(), "{object:?}");
}

#[tokio::test(start_paused = true)]
async fn a_timeout_while_the_pool_backs_off_carries_the_pools_last_failure() {
    let (pool, _attempts) = flaky_pool(60 * SECOND);
    // The first caller's create fails; the second only ever waits behind the backoff.
    let first = spawn_get(&pool);
    let second = spawn_get(&pool);
    for caller in [first, second] {
        match caller.await.unwrap() {
            Err(PoolError::Timeout {
                kind: TimeoutKind::Wait | TimeoutKind::Create,
                last_error: Some(error),
            }) => assert_eq!(error.to_string(), "connection refused by the backend"),
            other => panic!("expected a timeout with the backend's error, got {other:?}"),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn at_most_max_concurrent_creates_run_at_once() {
    let (builder, probe) = support::builder();
    probe.set_delay(Hook::Create, SECOND);
    let pool = builder
        .max_size(10)
        .max_concurrent_creates(2)
        .build()
        .unwrap();
    let callers: Vec<_> = (0..6).map(|_| support::spawn_get(&pool)).collect();
    settle().await;
    let status = pool.status();
    assert_eq!((status.creating, status.waiting), (2, 4), "{status:?}");
    tokio::time::advance(SECOND).await;
    settle().await;
    assert_eq!(pool.status().creating, 2);
    let mut held = Vec::new();
    for caller in callers {
        held.push(caller.await.unwrap().unwrap()); // held, so each caller needed a create
    }
    assert_eq!(probe.creates(), 6);
}

#[tokio::test(start_paused = true)]
async fn creates_never_outnumber_the_callers_that_need_them() {
    let (builder, probe) = support::builder();
    probe.set_delay(Hook::Create, SECOND);
    let pool = builder
        .max_size(10)
        .max_concurrent_creates(8)
        .build()
        .unwrap();
    let callers: Vec<_> = (0..3).map(|_| support::spawn_get(&pool)).collect();
    settle().await;
    assert_eq!(pool.status().creating, 3);
    for caller in callers {
        drop(caller.await.unwrap().unwrap());
    }
    assert_eq!(probe.creates(), 3);
}
