//! Building a pool that is already filled to `min_idle`.

use std::pin::pin;
use std::sync::Arc;

use tokio::time::Instant;

use crate::builder::PoolBuilder;
use crate::error::BuildError;
use crate::manager::Manager;
use crate::pool::Pool;

/// What [`PoolBuilder::build_filled`] does when a create fails while filling `min_idle`.
///
/// (The third start mode, lazy, is plain [`PoolBuilder::build`]: `min_idle` objects are
/// then created in the background while the pool already serves callers.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FillMode {
    /// Keep trying, paced by the pool's create backoff, until `min_idle` objects are ready
    /// or `wait_timeout` (if set) passes.
    WaitUntilFilled,
    /// Give up at the first failed create.
    FailFast,
}

/// Why [`PoolBuilder::build_filled`] returned no pool.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FillError<E: std::error::Error + 'static> {
    /// The configuration was refused.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// A create failed and the mode was [`FillMode::FailFast`]. `None` when the create
    /// timed out or panicked rather than returning an error.
    #[error("filling min_idle failed")]
    Create {
        /// The manager's error (this error's `source()`).
        #[source]
        error: Option<Arc<E>>,
    },
    /// `wait_timeout` passed before `min_idle` objects were ready.
    #[error("timed out filling min_idle")]
    Timeout {
        /// The latest create failure, if any (this error's `source()`).
        #[source]
        last_error: Option<Arc<E>>,
    },
}

impl<M: Manager> PoolBuilder<M> {
    /// Builds the pool and waits until `min_idle` objects are ready, so the first callers
    /// find warm objects. Needs a tokio runtime (it is `async`). On error the pool is
    /// closed and whatever it had created is destroyed.
    ///
    /// # Example
    ///
    /// ```
    /// # use pool_core::{FillMode, Manager, Pool};
    /// # struct M;
    /// # impl Manager for M {
    /// #     type Object = ();
    /// #     type Error = std::io::Error;
    /// #     async fn create(&self) -> Result<(), Self::Error> { Ok(()) }
    /// # }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let pool = Pool::builder(M)
    ///     .max_size(8)
    ///     .min_idle(3)
    ///     .build_filled(FillMode::FailFast)
    ///     .await?;
    /// assert_eq!(pool.status().idle, 3);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn build_filled(self, mode: FillMode) -> Result<Pool<M>, FillError<M::Error>> {
        let deadline = self
            .settings()
            .wait_timeout
            .map(|limit| crate::deadline::after(Instant::now(), limit));
        let pool = self.build()?;
        let shared = pool.shared();
        loop {
            let mut changed = pin!(shared.changed.notified());
            changed.as_mut().enable();
            let filled = shared.lock().filled();
            match filled {
                Ok(true) => break,
                Err(error) if mode == FillMode::FailFast => {
                    pool.close();
                    return Err(FillError::Create { error });
                }
                Ok(false) | Err(_) => {}
            }
            match deadline {
                None => changed.await,
                Some(deadline) => {
                    if tokio::time::timeout_at(deadline, changed).await.is_err() {
                        let last_error = shared.lock().last_create_error();
                        pool.close();
                        return Err(FillError::Timeout { last_error });
                    }
                }
            }
        }
        Ok(pool)
    }
}
