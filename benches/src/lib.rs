//! Shared pieces of the benchmarks: the no-op managers every get+drop bench uses (so ours and
//! the rivals do the same work), the pools under test behind one interface ([`subject`]),
//! the settings and timing loops of the bench files ([`plan`], [`harness`]), and the worker
//! programs of the subprocess benches and the `report` binary ([`workers`]).
//!
//! The numbers tables of `docs/benchmarks.md` come from
//! `cargo run -p benches --release --bin report`.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;

pub mod harness;
pub mod plan;
pub mod subject;
pub mod workers;

/// pool-core's no-op manager.
pub struct Ours;

impl pool_core::Manager for Ours {
    type Object = u64;
    type Error = Infallible;

    async fn create(&self) -> Result<u64, Infallible> {
        Ok(0)
    }
}

/// deadpool's no-op manager.
pub struct Deadpool;

impl deadpool::managed::Manager for Deadpool {
    type Type = u64;
    type Error = Infallible;

    async fn create(&self) -> Result<u64, Infallible> {
        Ok(0)
    }

    async fn recycle(
        &self,
        _: &mut u64,
        _: &deadpool::managed::Metrics,
    ) -> deadpool::managed::RecycleResult<Infallible> {
        Ok(())
    }
}

/// bb8's no-op manager.
pub struct Bb8;

impl bb8::ManageConnection for Bb8 {
    type Connection = u64;
    type Error = Infallible;

    async fn connect(&self) -> Result<u64, Infallible> {
        Ok(0)
    }

    async fn is_valid(&self, _: &mut u64) -> Result<(), Infallible> {
        Ok(())
    }

    fn has_broken(&self, _: &mut u64) -> bool {
        false
    }
}

/// The floor every pool is compared with: a tokio semaphore guarding a mutex-protected `Vec`,
/// with no pool features at all.
#[derive(Clone)]
pub struct Floor {
    permits: Arc<Semaphore>,
    items: Arc<Mutex<Vec<u64>>>,
}

impl Floor {
    /// A floor with `size` items.
    pub fn new(size: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(size)),
            items: Arc::new(Mutex::new(vec![0; size])),
        }
    }

    /// Takes an item, awaits `hold` while holding it, and puts it back.
    pub async fn get_drop(&self, hold: impl Future<Output = ()>) {
        let permit = self.permits.acquire().await.unwrap();
        let item = self.items.lock().unwrap().pop().unwrap();
        std::hint::black_box(item);
        hold.await;
        self.items.lock().unwrap().push(item);
        drop(permit);
    }
}
