//! What the pool knows about each object it manages.

use tokio::time::Instant;

/// Bookkeeping the pool keeps for each object, passed to [`Manager`](crate::Manager) hooks
/// and available from [`Object::meta`](crate::Object::meta).
///
/// Times are tokio [`Instant`]s, so tests can pause and advance the clock. To keep the hot
/// path free of clock reads, `last_used` is only updated when a time-based setting needs it
/// (`idle_timeout`, `health_check_after` or `health_check_interval`); otherwise it stays equal
/// to `created`.
///
/// # Example
///
/// ```
/// # use pool_core::{Manager, Pool};
/// # struct M;
/// # impl Manager for M {
/// #     type Object = ();
/// #     type Error = std::convert::Infallible;
/// #     async fn create(&self) -> Result<(), Self::Error> { Ok(()) }
/// # }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let pool = Pool::builder(M).max_size(1).build().unwrap();
/// let first = pool.get().await.unwrap();
/// let id = pool_core::Object::meta(&first).id;
/// drop(first);
/// let again = pool.get().await.unwrap();
/// assert_eq!(pool_core::Object::meta(&again).id, id);
/// assert_eq!(pool_core::Object::meta(&again).times_used, 2);
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Identifier unique within its pool, assigned in creation order starting at 1.
    pub id: u64,
    /// When the object was created.
    pub created: Instant,
    /// When the object was last returned to the pool (see the type's documentation).
    pub last_used: Instant,
    /// How many times the object has been handed out, counting the current checkout.
    pub times_used: u64,
}
