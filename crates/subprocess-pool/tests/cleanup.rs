//! Nothing left behind: after shutdown, and after thousands of recycled workers, no process
//! of the pool's groups, no zombie child, and the same file descriptors as before. These
//! tests count the whole process's descriptors, so they run one at a time, each on a
//! runtime built after the other's is gone (a runtime owns descriptors too: one built by
//! the other test while this one counts would look like a leak, as seen once in CI).

mod support;

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use subprocess_pool::WorkerSpec;
use support::{
    SH_WORKER, baseline_fds, eventually, group_members, open_fds, pool_of, worker_pids,
    zombie_children,
};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Runs `test` alone: the lock is taken before the runtime is built and released after it
/// is dropped.
fn alone(mut runtime: tokio::runtime::Builder, test: impl Future<Output = ()>) {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    runtime.enable_all().build().unwrap().block_on(test);
}

#[test]
fn shutdown_leaves_no_process_no_zombie_and_no_file_descriptor() {
    alone(tokio::runtime::Builder::new_current_thread(), async {
        let fds_before = baseline_fds().await;
        let pool = pool_of(WorkerSpec::new("sh").args(["-c", SH_WORKER]), 4);
        let calls: Vec<_> = (0..4)
            .map(|i| {
                let pool = pool.clone();
                tokio::spawn(async move { pool.call(format!("slow {i}")).await })
            })
            .collect();
        for call in calls {
            call.await.unwrap().unwrap();
        }
        let pids = worker_pids(&pool, 4).await;
        let report = pool.shutdown(Duration::from_secs(5)).await;
        assert!(report.is_clean(), "{report:?}");
        for pid in pids {
            assert!(group_members(pid).is_empty(), "group {pid} left behind");
        }
        eventually("no zombie children", || zombie_children().is_empty()).await;
        eventually("file descriptors back to where they were", || {
            open_fds() <= fds_before
        })
        .await;
    });
}

#[test]
fn ten_thousand_calls_with_max_requests_100_recycle_workers_cleanly() {
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.worker_threads(2);
    alone(runtime, async {
        let fds_before = baseline_fds().await;
        let pool = pool_of(WorkerSpec::new("cat").max_requests(100), 4);
        let tasks: Vec<_> = (0..4)
            .map(|task| {
                let pool = pool.clone();
                tokio::spawn(async move {
                    for i in 0..2_500 {
                        let request = format!("{task}-{i}");
                        assert_eq!(pool.call(request.clone()).await.unwrap(), request);
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let metrics = pool.metrics();
        // Each worker serves 95 to 100 calls (its limit is jittered down by up to 5%).
        assert!((100..=110).contains(&metrics.created), "{metrics:?}");
        assert!(metrics.destroyed >= 96, "{metrics:?}");
        // Every one of them retired at its limit (the pool's `max_uses`), none broken.
        assert_eq!(
            metrics.destroyed_by.max_uses, metrics.destroyed,
            "{metrics:?}"
        );
        let report = pool.shutdown(Duration::from_secs(5)).await;
        assert!(report.is_clean(), "{report:?}");
        eventually("no zombie children", || zombie_children().is_empty()).await;
        eventually("file descriptors back to where they were", || {
            open_fds() <= fds_before
        })
        .await;
    });
}
