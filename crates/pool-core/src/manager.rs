//! The trait a user implements to describe the objects a pool manages.

use std::future::Future;

use crate::meta::ObjectMeta;

/// Makes, readies, checks and disposes of the objects of a [`Pool`](crate::Pool).
///
/// Only [`create`](Manager::create) is required. The async hooks are written in the trait as
/// `fn ... -> impl Future<Output = ...> + Send`, so implementations simply write `async fn` and
/// the pool calls them without boxing.
///
/// Hooks run outside the pool's lock, so they may take as long as they need; the pool bounds
/// them with `create_timeout` and `recycle_timeout` when those are set. A panic in a hook
/// never leaks a slot: the caller the hook ran for sees the panic, and the pool stays usable.
///
/// # Example
///
/// ```
/// use pool_core::{Manager, ObjectMeta};
///
/// struct Counter;
///
/// impl Manager for Counter {
///     type Object = u64;
///     type Error = std::io::Error;
///
///     async fn create(&self) -> Result<u64, std::io::Error> {
///         Ok(0)
///     }
///
///     async fn recycle(&self, n: &mut u64, meta: &ObjectMeta) -> Result<(), std::io::Error> {
///         if meta.times_used > 100 {
///             return Err(std::io::Error::other("worn out"));
///         }
///         *n = 0;
///         Ok(())
///     }
///
///     fn is_broken(&self, n: &u64) -> bool {
///         *n == u64::MAX
///     }
/// }
/// ```
pub trait Manager: Send + Sync + 'static {
    /// The pooled object.
    type Object: Send + 'static;
    /// The error the hooks report; it reaches callers as
    /// [`PoolError::Backend`](crate::PoolError::Backend) or inside a timeout.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Makes a new object.
    fn create(&self) -> impl Future<Output = Result<Self::Object, Self::Error>> + Send;

    /// Readies an idle object for its next user, right before it is handed out.
    ///
    /// An error destroys the object and the pool tries another one. Objects fresh from
    /// [`create`](Manager::create) are not recycled. The default does nothing.
    fn recycle(
        &self,
        object: &mut Self::Object,
        meta: &ObjectMeta,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        let _ = (object, meta);
        async { Ok(()) }
    }

    /// A deeper liveness probe than [`recycle`](Manager::recycle).
    ///
    /// It runs at checkout only when the object has been idle longer than
    /// `health_check_after`, and in the background on idle objects when
    /// `health_check_interval` is set. It is bounded by `recycle_timeout`; a probe that times
    /// out counts as failed. An error destroys the object. The default does nothing.
    fn health_check(
        &self,
        object: &mut Self::Object,
        meta: &ObjectMeta,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        let _ = (object, meta);
        async { Ok(()) }
    }

    /// Why an idle object cannot be reused, when that is known without asking the backend
    /// (a connection the server already closed, a client past its session's expiry): a
    /// cheap, synchronous check made at checkout, before `health_check` and `recycle`, so a
    /// refusal needs no value of the backend's error type. `Some(reason)` destroys the
    /// object (counted as `recycle_failures` and `destroyed_by.recycle_failed`, the reason
    /// logged at debug level) and the caller gets another; the default is `None`.
    ///
    /// # Example
    ///
    /// A database client whose connection task has ended, as `tokio_postgres::Client`
    /// reports it with `is_closed()`:
    ///
    /// ```
    /// use std::borrow::Cow;
    /// use pool_core::{Manager, ObjectMeta};
    ///
    /// struct Client { closed: bool }
    /// impl Client {
    ///     fn is_closed(&self) -> bool { self.closed }
    /// }
    ///
    /// struct Database;
    ///
    /// impl Manager for Database {
    ///     type Object = Client;
    ///     type Error = std::io::Error;
    ///
    ///     async fn create(&self) -> Result<Client, std::io::Error> {
    ///         Ok(Client { closed: false })
    ///     }
    ///
    ///     fn unusable(&self, client: &Client, _: &ObjectMeta) -> Option<Cow<'static, str>> {
    ///         client.is_closed().then_some(Cow::Borrowed("connection closed by the server"))
    ///     }
    /// }
    /// ```
    fn unusable(
        &self,
        object: &Self::Object,
        meta: &ObjectMeta,
    ) -> Option<std::borrow::Cow<'static, str>> {
        let _ = (object, meta);
        None
    }

    /// A cheap, synchronous check made when an object comes back to the pool; `true`
    /// destroys it instead of keeping it. A panic here counts as broken. The default is
    /// `false`.
    fn is_broken(&self, object: &Self::Object) -> bool {
        let _ = object;
        false
    }

    /// Disposes of an object. It runs in a task of its own on the pool's runtime, never on
    /// the path of a caller; with no runtime at all the object is simply dropped. The
    /// default drops it.
    fn destroy(&self, object: Self::Object) -> impl Future<Output = ()> + Send {
        async move { drop(object) }
    }
}
