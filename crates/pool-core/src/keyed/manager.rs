//! The trait a user implements to describe the objects of a keyed pool.

use std::fmt::Debug;
use std::future::Future;
use std::hash::Hash;

use crate::meta::ObjectMeta;

/// Creates, readies, checks and disposes of objects for a key: a connection per tenant or
/// database, a worker process per tool and flags, a client per upstream host. The hooks
/// mean what [`Manager`](crate::Manager)'s do, for the object's own key; only `create` is
/// required.
///
/// # Example
///
/// ```
/// use pool_core::KeyedManager;
///
/// /// A buffer per size class.
/// struct Buffers;
///
/// impl KeyedManager for Buffers {
///     type Key = usize;
///     type Object = Vec<u8>;
///     type Error = std::convert::Infallible;
///
///     async fn create(&self, size: &usize) -> Result<Vec<u8>, Self::Error> {
///         Ok(Vec::with_capacity(*size))
///     }
/// }
/// ```
pub trait KeyedManager: Send + Sync + 'static {
    /// What objects are pooled by: each key has a pool of its own.
    type Key: Eq + Hash + Clone + Debug + Send + Sync + 'static;
    /// The pooled object.
    type Object: Send + 'static;
    /// What the hooks fail with.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Makes a new object for `key`.
    fn create(
        &self,
        key: &Self::Key,
    ) -> impl Future<Output = Result<Self::Object, Self::Error>> + Send;

    /// Readies an idle object of `key` for its next user (see
    /// [`Manager::recycle`](crate::Manager::recycle)). Default: nothing to do.
    fn recycle(
        &self,
        key: &Self::Key,
        object: &mut Self::Object,
        meta: &ObjectMeta,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        let _ = (key, object, meta);
        async { Ok(()) }
    }

    /// Checks an object of `key` idle for a while (see
    /// [`Manager::health_check`](crate::Manager::health_check)). Default: healthy.
    fn health_check(
        &self,
        key: &Self::Key,
        object: &mut Self::Object,
        meta: &ObjectMeta,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        let _ = (key, object, meta);
        async { Ok(()) }
    }

    /// Whether a returned object of `key` must be destroyed (see
    /// [`Manager::is_broken`](crate::Manager::is_broken)). Default: no.
    fn is_broken(&self, key: &Self::Key, object: &Self::Object) -> bool {
        let _ = (key, object);
        false
    }

    /// Disposes of an object of `key` (see [`Manager::destroy`](crate::Manager::destroy)).
    /// Default: drop it.
    fn destroy(&self, key: &Self::Key, object: Self::Object) -> impl Future<Output = ()> + Send {
        let _ = key;
        async move { drop(object) }
    }
}
