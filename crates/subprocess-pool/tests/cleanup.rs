//! Nothing left behind: after shutdown, and after thousands of recycled workers, no process
//! of the pool's groups, no zombie child, and the same file descriptors as before. These
//! tests count the whole process's descriptors, so they run one at a time.

mod support;

use std::time::Duration;

use subprocess_pool::WorkerSpec;
use support::{
    SH_WORKER, baseline_fds, eventually, group_members, open_fds, pool_of, worker_pids,
    zombie_children,
};

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn shutdown_leaves_no_process_no_zombie_and_no_file_descriptor() {
    let _serial = ONE_AT_A_TIME.lock().await;
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_calls_with_max_requests_100_recycle_workers_cleanly() {
    let _serial = ONE_AT_A_TIME.lock().await;
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
    let report = pool.shutdown(Duration::from_secs(5)).await;
    assert!(report.is_clean(), "{report:?}");
    eventually("no zombie children", || zombie_children().is_empty()).await;
    eventually("file descriptors back to where they were", || {
        open_fds() <= fds_before
    })
    .await;
}
