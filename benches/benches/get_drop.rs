//! get+drop cost of pool-core side by side with deadpool 0.13 and bb8 0.9, with the same
//! no-op manager and the same sizes, plus a semaphore-and-mutex floor for reference. Every
//! bench runs on the same 2-worker multi-thread tokio runtime.
//!
//! - `uncontended`: one task, get then drop, pool of 8.
//! - `contended_64_tasks_8_objects` and `contended_1024_tasks_128_objects`: eight tasks per
//!   object; each holds its object across one `yield_now`, so callers really queue.
//! - `contended_short_hold_64_tasks_8_objects`: 64 tasks and 8 objects, but each drops its
//!   object at once and yields after the drop: the two worker threads contend on the pool
//!   itself.
//!
//! Run: `cargo bench -p benches --bench get_drop`. Times are per get+drop. The report
//! (`cargo run -p benches --release --bin report`) runs this and writes the ratios to
//! `docs/benchmarks.md`.

use std::time::Duration;

use benches::harness;
use benches::plan::{self, POOLS};
use benches::subject::Subject;
use criterion::{Criterion, criterion_group, criterion_main};
use tokio::runtime::Runtime;

/// Times get+drop rounds shared by `tasks` tasks on `rt` (at least `iters`, see
/// [`plan::rounds_per_task`]), scaled to `iters`. With `hold_across_yield` each task holds its object across one `yield_now`;
/// otherwise it drops the object at once and yields after the drop.
fn time_contended(
    rt: &Runtime,
    subject: &Subject,
    tasks: usize,
    iters: u64,
    hold_across_yield: bool,
) -> Duration {
    harness::time_tasks(rt, tasks, iters, |per_task| {
        let subject = subject.clone();
        async move {
            for _ in 0..per_task {
                if hold_across_yield {
                    subject.get_drop(tokio::task::yield_now()).await;
                } else {
                    subject.get_drop(async {}).await;
                    tokio::task::yield_now().await;
                }
            }
        }
    })
}

/// `get_drop/uncontended/<pool>`: one task, pool of 8.
fn uncontended(c: &mut Criterion) {
    let rt = harness::multi_thread_runtime();
    let mut group = c.benchmark_group(plan::GROUP_UNCONTENDED);
    for name in POOLS {
        let subject = Subject::build(name, plan::UNCONTENDED_SIZE, &rt);
        group.bench_function(name, |b| {
            b.iter_custom(|iters| harness::time_uncontended(&rt, &subject, iters))
        });
    }
    group.finish();
}

/// The contended groups: hold across a yield at each size, and the short-hold variant.
fn contended(c: &mut Criterion) {
    for (tasks, objects) in plan::CONTENDED {
        contended_group(
            c,
            &plan::group_contended(tasks, objects),
            tasks,
            objects,
            true,
        );
    }
    let (tasks, objects) = plan::SHORT_HOLD;
    contended_group(
        c,
        &plan::group_short_hold(tasks, objects),
        tasks,
        objects,
        false,
    );
}

/// One contended group: `tasks` tasks sharing `objects` objects, every pool.
fn contended_group(
    c: &mut Criterion,
    group_name: &str,
    tasks: usize,
    objects: usize,
    hold_across_yield: bool,
) {
    let rt = harness::multi_thread_runtime();
    let mut group = c.benchmark_group(group_name);
    for name in POOLS {
        let subject = Subject::build(name, objects, &rt);
        group.bench_function(name, |b| {
            b.iter_custom(|iters| time_contended(&rt, &subject, tasks, iters, hold_across_yield))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = harness::criterion_config();
    targets = uncontended, contended
}
criterion_main!(benches);
