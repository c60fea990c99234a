//! One pool under test behind a common get+drop interface, shared by the criterion benches
//! and the `contended_loop` example so they all time exactly the same calls.

use std::sync::Arc;

use tokio::runtime::Runtime;
use tokio::sync::Semaphore;

use crate::{Bb8, Deadpool, Floor, Ours};

/// One of the pools under test.
#[derive(Clone)]
pub enum Subject {
    /// pool-core with the no-op manager.
    Ours(pool_core::Pool<Ours>),
    /// deadpool 0.13 with the no-op manager.
    Deadpool(deadpool::managed::Pool<Deadpool>),
    /// bb8 0.9 with the no-op manager.
    Bb8(bb8::Pool<Bb8>),
    /// The semaphore-and-mutex floor.
    Floor(Floor),
    /// A bare tokio semaphore, permits and nothing else: the cost of waiting alone.
    Semaphore(Arc<Semaphore>),
}

impl Subject {
    /// The pool named `name` (one of [`POOLS`](crate::plan::POOLS), or `semaphore`) with
    /// `size` objects at most; `rt` builds bb8, whose builder is async.
    pub fn build(name: &str, size: usize, rt: &Runtime) -> Self {
        match name {
            "pool-core" => Self::Ours(
                pool_core::Pool::builder(Ours)
                    .max_size(size)
                    .build()
                    .unwrap(),
            ),
            "deadpool" => Self::Deadpool(
                deadpool::managed::Pool::builder(Deadpool)
                    .max_size(size)
                    .build()
                    .unwrap(),
            ),
            "bb8" => Self::Bb8(rt.block_on(async {
                bb8::Pool::builder()
                    .max_size(u32::try_from(size).unwrap())
                    .test_on_check_out(false)
                    .build(Bb8)
                    .await
                    .unwrap()
            })),
            "semaphore+mutex" => Self::Floor(Floor::new(size)),
            "semaphore" => Self::Semaphore(Arc::new(Semaphore::new(size))),
            other => panic!("unknown pool {other:?}"),
        }
    }

    /// Gets an object, awaits `hold` while holding it, and drops it.
    pub async fn get_drop(&self, hold: impl Future<Output = ()>) {
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
            Self::Semaphore(permits) => {
                let permit = permits.acquire().await.unwrap();
                hold.await;
                drop(permit);
            }
        }
    }
}
