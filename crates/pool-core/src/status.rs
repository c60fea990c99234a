//! A consistent snapshot of a pool's occupancy.

/// What a pool holds right now, taken under its lock so the numbers agree with each other.
///
/// `size == idle + in_use + creating` always holds: a create in flight holds a slot. `size`
/// stays within `max_size`, except for a while after [`resize`](crate::Pool::resize) shrinks
/// the pool below what is checked out (those objects are destroyed as they come back).
/// Objects being destroyed no longer count: `get` never waits for a `destroy`, so with a
/// slow `destroy` (a process given time to exit, say) more than `max_size` objects may
/// exist for a while, the extra ones on their way out.
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
/// let pool = Pool::builder(M).max_size(4).build().unwrap();
/// let held = pool.get().await.unwrap();
/// let status = pool.status();
/// assert_eq!((status.size, status.in_use, status.idle), (1, 1, 0));
/// assert_eq!(status.size, status.idle + status.in_use + status.creating);
/// # drop(held);
/// # }
/// ```
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Status {
    /// The current size limit.
    pub max_size: usize,
    /// Objects the pool counts: idle, in use, or being created.
    pub size: usize,
    /// Objects ready in the pool.
    pub idle: usize,
    /// Objects handed out (including those being recycled or checked for a caller).
    pub in_use: usize,
    /// Creates in flight.
    pub creating: usize,
    /// Callers waiting for an object.
    pub waiting: usize,
}
