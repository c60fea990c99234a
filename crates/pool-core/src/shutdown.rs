//! What a shutdown reports.

/// What [`Pool::shutdown`](crate::Pool::shutdown) left behind when it returned.
///
/// # Example
///
/// ```
/// # use pool_core::{Manager, Pool};
/// # use std::time::Duration;
/// # struct M;
/// # impl Manager for M {
/// #     type Object = ();
/// #     type Error = std::convert::Infallible;
/// #     async fn create(&self) -> Result<(), Self::Error> { Ok(()) }
/// # }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let pool = Pool::builder(M).build().unwrap();
/// drop(pool.get().await.unwrap());
/// let report = pool.shutdown(Duration::from_secs(1)).await;
/// assert!(report.is_clean());
/// # }
/// ```
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ShutdownReport {
    /// Objects still checked out (or being created) when the grace period ended; each is
    /// destroyed when it comes back.
    pub still_out: usize,
    /// `destroy` hooks still running when the grace period ended.
    pub still_destroying: usize,
}

impl ShutdownReport {
    /// Whether everything came back and was destroyed in time.
    pub fn is_clean(&self) -> bool {
        self.still_out == 0 && self.still_destroying == 0
    }
}
