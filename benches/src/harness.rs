//! What every bench file sets up the same way: criterion's settings, the tokio runtime of the
//! get+drop benches, and the timing loops (tasks sharing rounds, and one job after another).

use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, SamplingMode};
use tokio::runtime::{Builder, Runtime};

use crate::plan;
use crate::subject::Subject;

/// Short runs: the report runs every bench several times and compares medians; the spawning
/// benches are slow per iteration, the others quick.
pub fn criterion_config() -> Criterion {
    Criterion::default()
        .warm_up_time(plan::WARM_UP)
        .measurement_time(plan::MEASUREMENT)
        .sample_size(plan::SAMPLE_SIZE)
        .nresamples(plan::RESAMPLES)
        .without_plots()
}

/// The 2-worker multi-thread runtime every get+drop bench runs on.
pub fn multi_thread_runtime() -> Runtime {
    Builder::new_multi_thread()
        .worker_threads(plan::WORKER_THREADS)
        .enable_all()
        .build()
        .unwrap()
}

/// Few samples ([`plan::SLOW_SAMPLE_SIZE`]), one iteration count each (flat sampling), for
/// the benches that spawn a process per iteration.
pub fn spawn_sampling(group: &mut BenchmarkGroup<'_, WallTime>) {
    group.sample_size(plan::SLOW_SAMPLE_SIZE);
    group.sampling_mode(SamplingMode::Flat);
}

/// Times rounds shared by `tasks` tasks spawned on `rt` (at least `iters`, see
/// [`plan::rounds_per_task`]), scaled to `iters`: `task(per_task)` is one task, running
/// `per_task` rounds.
pub fn time_tasks<F>(
    rt: &Runtime,
    tasks: usize,
    iters: u64,
    mut task: impl FnMut(u64) -> F,
) -> Duration
where
    F: Future<Output = ()> + Send + 'static,
{
    let per_task = plan::rounds_per_task(iters, tasks);
    rt.block_on(async {
        let start = Instant::now();
        let handles: Vec<_> = (0..tasks).map(|_| tokio::spawn(task(per_task))).collect();
        for handle in handles {
            handle.await.unwrap();
        }
        // Scaled to the requested count: each task ran `per_task` rounds.
        start
            .elapsed()
            .mul_f64(iters as f64 / (per_task * tasks as u64) as f64)
    })
}

/// Times `iters` runs of `job`, one after the other, on `rt`.
pub fn time_iters(rt: &Runtime, iters: u64, mut job: impl AsyncFnMut()) -> Duration {
    rt.block_on(async {
        let start = Instant::now();
        for _ in 0..iters {
            job().await;
        }
        start.elapsed()
    })
}

/// Times `iters` uncontended get+drop rounds in one task spawned on `rt` (so it runs on a
/// worker thread, as a server's request handler would).
pub fn time_uncontended(rt: &Runtime, subject: &Subject, iters: u64) -> Duration {
    let subject = subject.clone();
    rt.block_on(async move {
        tokio::spawn(async move {
            let start = Instant::now();
            for _ in 0..iters {
                subject.get_drop(async {}).await;
            }
            start.elapsed()
        })
        .await
        .unwrap()
    })
}
