//! A pool outlives the runtime it was built on: background work moves to the runtime of
//! whoever uses the pool next, and nothing is lost when a runtime drops a background task.

mod support;

use std::time::Duration;

use pool_core::PoolError;
use support::{Fault, Hook, builder, fill_idle, settle};
use tokio::runtime::{Builder, Runtime};

fn paused_runtime() -> Runtime {
    Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap()
}

#[test]
fn the_create_backoff_ends_even_when_the_build_runtime_is_gone() {
    let (builder, probe) = builder();
    let pool = paused_runtime().block_on(async { builder.max_size(2).build().unwrap() });
    paused_runtime().block_on(async {
        probe.fail_next(Hook::Create, Fault::Fail);
        assert!(matches!(pool.get().await, Err(PoolError::Backend(_))));
        tokio::time::sleep(Duration::from_secs(60)).await;
        let got = tokio::time::timeout(Duration::from_secs(60), pool.get()).await;
        assert!(got.is_ok(), "creates stayed paused: {:?}", pool.status());
    });
}

#[test]
fn maintenance_restarts_on_the_next_runtime_after_its_own_shut_down() {
    let (builder, _probe) = builder();
    let pool = paused_runtime().block_on(async {
        let pool = builder.max_size(4).min_idle(2).build().unwrap();
        settle().await;
        assert_eq!(pool.status().idle, 2);
        pool
    });
    paused_runtime().block_on(async {
        let mut taken = pool.get().await.unwrap();
        taken.broken = true;
        drop(taken);
        settle().await;
        assert_eq!(
            pool.status().idle,
            2,
            "min_idle kept by a task on this runtime"
        );
    });
}

#[test]
fn a_background_check_cut_off_by_a_runtime_shutdown_leaks_nothing() {
    let (builder, probe) = builder();
    let first = paused_runtime();
    let pool = first.block_on(async {
        let pool = builder
            .max_size(3)
            .health_check_interval(Duration::from_secs(10))
            .build()
            .unwrap();
        fill_idle(&pool, 3).await;
        probe.set_always(Hook::HealthCheck, Some(Fault::Hang));
        tokio::time::sleep(Duration::from_secs(40)).await; // a check is hanging now
        settle().await;
        pool
    });
    drop(first);
    paused_runtime().block_on(async {
        settle().await;
        let status = pool.status();
        assert_eq!(
            status.in_use, 0,
            "no object left out with no owner: {status:?}"
        );
        let metrics = pool.metrics();
        assert_eq!(
            metrics.created,
            metrics.destroyed + status.size as u64,
            "{metrics:?}"
        );
    });
}
