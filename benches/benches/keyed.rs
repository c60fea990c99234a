//! What a key costs: get+drop on a `KeyedPool` (the key's pool found in a map under a
//! lock, and a slot among all keys held by each object) against get+drop on a plain
//! `Pool`, one task, the same no-op object, on the same 2-worker multi-thread runtime as
//! `get_drop`. Each pool has its 8 objects created and idle first; the keyed pool holds
//! 64 keys, the one measured among them. Run: `cargo bench -p benches --bench keyed`.
//! Times are per get+drop.

use std::time::Instant;

use benches::Ours;
use criterion::{Criterion, criterion_group, criterion_main};
use pool_core::{KeyedManager, KeyedPool, Pool};

struct ByKey;

impl KeyedManager for ByKey {
    type Key = u32;
    type Object = u64;
    type Error = std::convert::Infallible;

    async fn create(&self, _: &u32) -> Result<u64, Self::Error> {
        Ok(0)
    }
}

fn get_drop(c: &mut Criterion) {
    let rt = benches::harness::multi_thread_runtime();
    let mut group = c.benchmark_group("keyed/uncontended");

    let plain = Pool::builder(Ours).max_size(8).build().unwrap();
    let keyed = KeyedPool::builder(ByKey)
        .max_size(8)
        .max_total(8 * 64)
        .build()
        .unwrap();
    rt.block_on(async {
        let held: Vec<_> = futures_held(&plain).await;
        drop(held);
        for key in 0..64 {
            let mut held = Vec::new();
            for _ in 0..8 {
                held.push(keyed.get(&key).await.unwrap());
            }
        }
    });

    group.bench_function("pool", |b| {
        b.iter_custom(|iters| {
            let plain = plain.clone();
            rt.block_on(async move {
                tokio::spawn(async move {
                    let start = Instant::now();
                    for _ in 0..iters {
                        drop(plain.get().await.unwrap());
                    }
                    start.elapsed()
                })
                .await
                .unwrap()
            })
        })
    });
    group.bench_function("keyed_pool", |b| {
        b.iter_custom(|iters| {
            let keyed = keyed.clone();
            rt.block_on(async move {
                tokio::spawn(async move {
                    let start = Instant::now();
                    for _ in 0..iters {
                        drop(keyed.get(&17).await.unwrap());
                    }
                    start.elapsed()
                })
                .await
                .unwrap()
            })
        })
    });
    group.finish();
}

async fn futures_held(pool: &Pool<Ours>) -> Vec<pool_core::Object<Ours>> {
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(pool.get().await.unwrap());
    }
    held
}

criterion_group! {
    name = benches;
    config = benches::harness::criterion_config();
    targets = get_drop
}
criterion_main!(benches);
