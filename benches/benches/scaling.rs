//! How pool-core's get+drop cost changes with the pool's size: 8, 128 and 1,024 objects,
//! each pool filled to its size before it is measured, on the same 2-worker multi-thread
//! tokio runtime as the `get_drop` benches.
//!
//! - `scaling/uncontended/pool-core/<size>`: one task, get then drop.
//! - `scaling/contended_8_tasks_per_object/pool-core/<size>`: eight tasks per object (64
//!   tasks for 8 objects, 8,192 for 1,024); each holds its object across one `yield_now`.
//! - `scaling/contended_8_tasks_per_object/semaphore+mutex/<size>`: the same load on the
//!   floor (a tokio semaphore and a mutex-protected `Vec`), to tell what the pool adds from
//!   what the scheduler does with that many tasks.
//!
//! A flat line is the goal: nothing on the hot path should walk the idle objects or the
//! waiters. Run: `cargo bench -p benches --bench scaling`. Times are per get+drop.

use std::time::Duration;

use benches::subject::Subject;
use benches::{Floor, Ours};
use benches::{harness, plan};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use pool_core::Pool;
use tokio::runtime::Runtime;

/// A pool of `size` objects, all created and idle (checked out together, then returned),
/// with no background maintenance.
fn filled_pool(rt: &Runtime, size: usize) -> Pool<Ours> {
    let pool = Pool::builder(Ours).max_size(size).build().unwrap();
    rt.block_on(async {
        let mut held = Vec::with_capacity(size);
        for _ in 0..size {
            held.push(pool.get().await.unwrap());
        }
    });
    assert_eq!(pool.status().idle, size);
    pool
}

/// `scaling/uncontended/pool-core/<size>`: one task on a filled pool.
fn uncontended(c: &mut Criterion) {
    let rt = harness::multi_thread_runtime();
    let mut group = c.benchmark_group(plan::GROUP_SCALING_UNCONTENDED);
    for size in plan::SCALING_SIZES {
        // The same loop as `get_drop/uncontended`, on a pool filled to `size`.
        let subject = Subject::Ours(filled_pool(&rt, size));
        group.bench_function(BenchmarkId::new("pool-core", size), |b| {
            b.iter_custom(|iters| harness::time_uncontended(&rt, &subject, iters))
        });
    }
    group.finish();
}

/// `scaling/contended_8_tasks_per_object/<subject>/<size>`: pool-core and the floor.
fn contended(c: &mut Criterion) {
    let rt = harness::multi_thread_runtime();
    let mut group = c.benchmark_group(plan::GROUP_SCALING_CONTENDED);
    for size in plan::SCALING_SIZES {
        let tasks = size * plan::TASKS_PER_OBJECT;
        let subjects = [
            ("pool-core", Subject::Ours(filled_pool(&rt, size))),
            ("semaphore+mutex", Subject::Floor(Floor::new(size))),
        ];
        for (name, subject) in subjects {
            group.bench_function(BenchmarkId::new(name, size), |b| {
                b.iter_custom(|iters| time_contended(&rt, &subject, tasks, iters))
            });
        }
    }
    group.finish();
}

/// Times get+drop rounds shared by `tasks` tasks (at least `iters`, see
/// [`plan::rounds_per_task`]), scaled to `iters`.
fn time_contended(rt: &Runtime, subject: &Subject, tasks: usize, iters: u64) -> Duration {
    harness::time_tasks(rt, tasks, iters, |per_task| {
        let subject = subject.clone();
        async move {
            for _ in 0..per_task {
                subject.get_drop(tokio::task::yield_now()).await;
            }
        }
    })
}

criterion_group! {
    name = benches;
    config = harness::criterion_config();
    targets = uncontended, contended
}
criterion_main!(benches);
