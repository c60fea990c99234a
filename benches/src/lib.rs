//! The no-op managers every benchmark uses, so ours and the rivals do the same work.

use std::convert::Infallible;

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
