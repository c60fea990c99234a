//! get+drop cost of pool-core side by side with deadpool 0.13 and bb8 0.9, with the same
//! no-op manager and the same sizes, plus a semaphore-and-mutex floor for reference.
//!
//! - `uncontended`: one task on a current-thread runtime, get then drop, pool of 8.
//! - `contended`: 64 tasks sharing 8 objects on a 2-worker multi-thread runtime; each holds
//!   its object across one `yield_now`, so callers really queue.
//! - `contended_short_hold`: the same 64 tasks and 8 objects, but each drops its object at
//!   once and yields after the drop: the two worker threads contend on the pool itself.
//!
//! Run: `cargo bench -p benches --bench get_drop`. Times are per get+drop.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use benches::{Bb8, Deadpool, Ours};
use criterion::{Criterion, criterion_group, criterion_main};
use tokio::runtime::{Builder, Runtime};
use tokio::sync::Semaphore;

const POOL_SIZE: usize = 8;
const TASKS: usize = 64;

/// The floor: a tokio semaphore guarding a mutex-protected Vec, with no features at all.
#[derive(Clone)]
struct Floor {
    permits: Arc<Semaphore>,
    items: Arc<Mutex<Vec<u64>>>,
}

impl Floor {
    fn new() -> Self {
        Self {
            permits: Arc::new(Semaphore::new(POOL_SIZE)),
            items: Arc::new(Mutex::new(vec![0; POOL_SIZE])),
        }
    }

    async fn get_drop(&self, hold: impl std::future::Future<Output = ()>) {
        let permit = self.permits.acquire().await.unwrap();
        let item = self.items.lock().unwrap().pop().unwrap();
        std::hint::black_box(item);
        hold.await;
        self.items.lock().unwrap().push(item);
        drop(permit);
    }
}

/// One of the pools under test, behind a common interface.
#[derive(Clone)]
enum Subject {
    Ours(pool_core::Pool<Ours>),
    Deadpool(deadpool::managed::Pool<Deadpool>),
    Bb8(bb8::Pool<Bb8>),
    Floor(Floor),
}

impl Subject {
    const NAMES: [&'static str; 4] = ["pool-core", "deadpool", "bb8", "semaphore+mutex"];

    fn build(name: &str, rt: &Runtime) -> Self {
        match name {
            "pool-core" => Self::Ours(
                pool_core::Pool::builder(Ours)
                    .max_size(POOL_SIZE)
                    .build()
                    .unwrap(),
            ),
            "deadpool" => Self::Deadpool(
                deadpool::managed::Pool::builder(Deadpool)
                    .max_size(POOL_SIZE)
                    .build()
                    .unwrap(),
            ),
            "bb8" => Self::Bb8(rt.block_on(async {
                bb8::Pool::builder()
                    .max_size(POOL_SIZE as u32)
                    .test_on_check_out(false)
                    .build(Bb8)
                    .await
                    .unwrap()
            })),
            _ => Self::Floor(Floor::new()),
        }
    }

    async fn get_drop(&self, hold: impl std::future::Future<Output = ()>) {
        match self {
            Self::Ours(pool) => {
                let object = pool.get().await.unwrap();
                hold.await;
                drop(object);
            }
            Self::Deadpool(pool) => {
                let object = pool.get().await.unwrap();
                hold.await;
                drop(object);
            }
            Self::Bb8(pool) => {
                let object = pool.get().await.unwrap();
                hold.await;
                drop(object);
            }
            Self::Floor(floor) => floor.get_drop(hold).await,
        }
    }
}

fn uncontended(c: &mut Criterion) {
    let rt = Builder::new_current_thread().enable_all().build().unwrap();
    let mut group = c.benchmark_group("get_drop/uncontended");
    for name in Subject::NAMES {
        let subject = Subject::build(name, &rt);
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        subject.get_drop(async {}).await;
                    }
                    start.elapsed()
                })
            })
        });
    }
    group.finish();
}

fn contended(c: &mut Criterion) {
    contended_group(c, "get_drop/contended_64_tasks_8_objects", true);
    contended_group(c, "get_drop/contended_short_hold_64_tasks_8_objects", false);
}

fn contended_group(c: &mut Criterion, group_name: &str, hold_across_yield: bool) {
    let rt = Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group(group_name);
    group.measurement_time(Duration::from_secs(4));
    for name in Subject::NAMES {
        let subject = Subject::build(name, &rt);
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let per_task = iters.div_ceil(TASKS as u64);
                rt.block_on(async {
                    let start = Instant::now();
                    let tasks: Vec<_> = (0..TASKS)
                        .map(|_| {
                            let subject = subject.clone();
                            tokio::spawn(async move {
                                for _ in 0..per_task {
                                    if hold_across_yield {
                                        subject.get_drop(tokio::task::yield_now()).await;
                                    } else {
                                        subject.get_drop(async {}).await;
                                        tokio::task::yield_now().await;
                                    }
                                }
                            })
                        })
                        .collect();
                    for task in tasks {
                        task.await.unwrap();
                    }
                    // Scaled to the requested count: each task ran `per_task` rounds.
                    start
                        .elapsed()
                        .mul_f64(iters as f64 / (per_task * TASKS as u64) as f64)
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, uncontended, contended);
criterion_main!(benches);
