//! `get_blocking` and `try_get_blocking` from synchronous code: a plain thread, a
//! `spawn_blocking` task, a multi-thread runtime's worker; refused where it would block
//! for ever, and without a runtime. Real time, with waits far below a hang.

mod support;

use std::time::Duration;

use pool_core::{BlockingError, PoolError};
use support::{builder, meta_id};
use tokio::runtime::{Builder, Runtime};

fn multi_thread() -> Runtime {
    Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_plain_thread_gets_waits_and_times_out_like_get() {
    let runtime = multi_thread();
    let (builder, _probe) = builder();
    let pool = runtime.block_on(async {
        builder
            .max_size(1)
            .wait_timeout(Duration::from_millis(100))
            .build()
            .unwrap()
    });
    let first = std::thread::scope(|s| s.spawn(|| pool.get_blocking().unwrap()).join().unwrap());
    assert_eq!(meta_id(&first), 1);
    // Held: a second caller waits its `wait_timeout`, then times out.
    let second = std::thread::scope(|s| s.spawn(|| pool.get_blocking()).join().unwrap());
    assert!(
        matches!(second, Err(BlockingError::Pool(PoolError::Timeout { .. }))),
        "{second:?}"
    );
    let busy = std::thread::scope(|s| s.spawn(|| pool.try_get_blocking()).join().unwrap());
    assert!(
        matches!(busy, Err(BlockingError::Pool(PoolError::Exhausted))),
        "{busy:?}"
    );
    drop(first);

    // Returned from one thread, it is handed to a caller blocked on another (a deadline far
    // beyond any stall, so only the handoff can end the wait).
    let (builder, _probe) = support::builder();
    let pool = runtime.block_on(async {
        builder
            .max_size(1)
            .wait_timeout(Duration::from_secs(30))
            .build()
            .unwrap()
    });
    let held = pool.get_blocking().unwrap();
    std::thread::scope(|s| {
        let waiter = s.spawn(|| pool.get_blocking().map(|object| meta_id(&object)));
        std::thread::sleep(Duration::from_millis(20));
        drop(held);
        assert_eq!(waiter.join().unwrap().unwrap(), 1);
    });
}

#[test]
fn spawn_blocking_and_a_worker_thread_both_work() {
    let runtime = multi_thread();
    let (builder, _probe) = builder();
    let pool = runtime.block_on(async { builder.max_size(2).build().unwrap() });
    let from_blocking = {
        let pool = pool.clone();
        runtime
            .block_on(
                runtime.spawn_blocking(move || pool.get_blocking().map(|object| meta_id(&object))),
            )
            .unwrap()
    };
    assert!(from_blocking.is_ok(), "{from_blocking:?}");
    // On a worker thread, inside a task: the worker's other tasks move elsewhere.
    let from_worker = {
        let pool = pool.clone();
        runtime
            .block_on(
                runtime.spawn(async move { pool.get_blocking().map(|object| meta_id(&object)) }),
            )
            .unwrap()
    };
    assert!(from_worker.is_ok(), "{from_worker:?}");
}

#[test]
fn a_current_thread_runtime_thread_is_refused_instead_of_blocked_for_ever() {
    let runtime = Builder::new_current_thread().enable_all().build().unwrap();
    let (builder, _probe) = builder();
    let refused = runtime.block_on(async {
        let pool = builder.max_size(1).build().unwrap();
        pool.get_blocking().map(drop)
    });
    assert!(
        matches!(refused, Err(BlockingError::OnRuntimeThread)),
        "{refused:?}"
    );
    let message = refused.unwrap_err().to_string();
    assert!(message.contains("get().await"), "{message}");
}

#[test]
fn without_any_runtime_it_says_so() {
    let (builder, _probe) = builder();
    let pool = builder.max_size(1).build().unwrap();
    let refused = pool.get_blocking();
    assert!(
        matches!(refused, Err(BlockingError::NoRuntime)),
        "{refused:?}"
    );
}
