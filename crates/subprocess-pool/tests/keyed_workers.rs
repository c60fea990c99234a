//! Keyed worker pools with real processes: three keys, each with its own program line, and
//! a cap on live workers below the sum of the per-key caps.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use subprocess_pool::protocol::Lines;
use subprocess_pool::{KeyedSubprocessPool, WorkerSpec};
use support::{children, guarded};

/// A worker that answers each line prefixed with its key, after a short pause.
fn spec_for(key: &String) -> WorkerSpec {
    let script = format!("while read line; do sleep 0.01; echo \"{key}:$line\"; done");
    WorkerSpec::new("sh").args(["-c", &script])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_keys_share_a_cap_smaller_than_their_own_caps_together() {
    let pool = KeyedSubprocessPool::builder(spec_for, Lines::default())
        .max_size(2) // per key: 6 together
        .max_total(3)
        .wait_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let keys = ["tsc", "javac", "rustc"].map(String::from);

    // Watch the live workers while 90 calls run, 30 per key, 12 at a time.
    let most = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let watcher = tokio::spawn({
        let (most, done, pool) = (most.clone(), done.clone(), pool.clone());
        async move {
            while !done.load(Ordering::SeqCst) {
                // Processes, and workers the pool holds (idle or lent); its `size` also
                // counts creates still waiting for a slot among all keys.
                let status = pool.status();
                let live = children().len().max(status.idle + status.in_use);
                most.fetch_max(live, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    });
    let mut calls = tokio::task::JoinSet::new();
    for caller in 0..12 {
        let (pool, keys) = (pool.clone(), keys.clone());
        calls.spawn(async move {
            for n in 0..(90 / 12 + 1) {
                let key = &keys[(caller + n) % 3];
                let line = format!("call {caller}.{n}");
                let answer = pool.call(key, line.clone()).await.unwrap();
                assert_eq!(
                    answer,
                    format!("{key}:{line}"),
                    "answered by another key's worker"
                );
            }
        });
    }
    support::join_all("calls", calls).await;
    done.store(true, Ordering::SeqCst);
    watcher.await.unwrap();

    let most = most.load(Ordering::SeqCst);
    assert!(most <= 3, "{most} workers alive at once, over max_total 3");
    assert!(most >= 2, "the keys shared the cap: {most}");
    let metrics = pool.metrics();
    assert!(
        metrics.destroyed_by.evicted > 0,
        "keys took turns by evicting idle workers: {metrics:?}"
    );
    let status = pool.status();
    assert!(status.idle + status.in_use <= 3, "{status:?}");

    let report = guarded("shutdown", pool.shutdown(Duration::from_secs(5))).await;
    assert!(report.is_clean(), "{report:?}");
    guarded("no worker left", async {
        while !children().is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let ended: BTreeSet<_> = [pool.worker_metrics().exited, pool.worker_metrics().killed].into();
    assert_eq!(ended, BTreeSet::from([0]), "workers were stopped, not lost");
}
