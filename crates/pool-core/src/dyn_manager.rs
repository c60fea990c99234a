//! An object-safe twin of [`Manager`], for managers chosen at run time.

use std::future::Future;

use async_trait::async_trait;

use crate::manager::Manager;
use crate::meta::ObjectMeta;

/// The object-safe form of [`Manager`]: the same hooks, boxed with `async-trait`, so that a
/// pool's manager can be picked at run time as a `Box<dyn DynManager<Object = T, Error = E>>`,
/// which is itself a [`Manager`].
///
/// Every [`Manager`] is a `DynManager` already, so you normally write a plain `Manager` and
/// box it; implement `DynManager` directly only for a type that is not a `Manager`. The
/// hooks cost one allocation per call through the box, so static dispatch remains the
/// default for hot pools.
///
/// # Example
///
/// ```
/// use pool_core::{DynManager, Manager, Pool};
/// use std::convert::Infallible;
///
/// struct Fast;
/// impl Manager for Fast {
///     type Object = String;
///     type Error = Infallible;
///     async fn create(&self) -> Result<String, Infallible> {
///         Ok("fast".into())
///     }
/// }
///
/// struct Careful;
/// impl Manager for Careful {
///     type Object = String;
///     type Error = Infallible;
///     async fn create(&self) -> Result<String, Infallible> {
///         Ok("careful".into())
///     }
///     async fn recycle(&self, s: &mut String, _: &pool_core::ObjectMeta) -> Result<(), Infallible> {
///         s.truncate(7);
///         Ok(())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let from_config = "careful";
/// let manager: Box<dyn DynManager<Object = String, Error = Infallible>> = match from_config {
///     "fast" => Box::new(Fast),
///     _ => Box::new(Careful),
/// };
/// let pool = Pool::builder(manager).max_size(2).build().unwrap();
/// assert_eq!(*pool.get().await.unwrap(), "careful");
/// # }
/// ```
///
/// Implemented directly, only `create` is required, as for [`Manager`]:
///
/// ```
/// use pool_core::{DynManager, Pool};
/// use std::convert::Infallible;
///
/// struct Counter;
///
/// #[async_trait::async_trait]
/// impl DynManager for Counter {
///     type Object = u32;
///     type Error = Infallible;
///     async fn create(&self) -> Result<u32, Infallible> {
///         Ok(0)
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let manager: Box<dyn DynManager<Object = u32, Error = Infallible>> = Box::new(Counter);
/// let pool = Pool::builder(manager).build().unwrap();
/// *pool.get().await.unwrap() += 1;
/// assert_eq!(*pool.get().await.unwrap(), 1, "recycled by the default hook, unchanged");
/// # }
/// ```
#[async_trait]
pub trait DynManager: Send + Sync + 'static {
    /// The pooled object.
    type Object: Send + 'static;
    /// The error the hooks report.
    type Error: std::error::Error + Send + Sync + 'static;

    /// See [`Manager::create`].
    async fn create(&self) -> Result<Self::Object, Self::Error>;

    /// See [`Manager::recycle`]. The default does nothing.
    async fn recycle(
        &self,
        object: &mut Self::Object,
        meta: &ObjectMeta,
    ) -> Result<(), Self::Error> {
        let _ = (object, meta);
        Ok(())
    }

    /// See [`Manager::health_check`]. The default does nothing.
    async fn health_check(
        &self,
        object: &mut Self::Object,
        meta: &ObjectMeta,
    ) -> Result<(), Self::Error> {
        let _ = (object, meta);
        Ok(())
    }

    /// See [`Manager::unusable`]. The default is `None`.
    fn unusable(
        &self,
        object: &Self::Object,
        meta: &ObjectMeta,
    ) -> Option<std::borrow::Cow<'static, str>> {
        let _ = (object, meta);
        None
    }

    /// See [`Manager::is_broken`]. The default is `false`.
    fn is_broken(&self, object: &Self::Object) -> bool {
        let _ = object;
        false
    }

    /// See [`Manager::destroy`]. The default drops the object.
    async fn destroy(&self, object: Self::Object) {
        drop(object);
    }
}

#[async_trait]
impl<M: Manager> DynManager for M {
    type Object = M::Object;
    type Error = M::Error;

    async fn create(&self) -> Result<M::Object, M::Error> {
        Manager::create(self).await
    }

    async fn recycle(&self, object: &mut M::Object, meta: &ObjectMeta) -> Result<(), M::Error> {
        Manager::recycle(self, object, meta).await
    }

    async fn health_check(
        &self,
        object: &mut M::Object,
        meta: &ObjectMeta,
    ) -> Result<(), M::Error> {
        Manager::health_check(self, object, meta).await
    }

    fn unusable(
        &self,
        object: &M::Object,
        meta: &ObjectMeta,
    ) -> Option<std::borrow::Cow<'static, str>> {
        Manager::unusable(self, object, meta)
    }

    fn is_broken(&self, object: &M::Object) -> bool {
        Manager::is_broken(self, object)
    }

    async fn destroy(&self, object: M::Object) {
        Manager::destroy(self, object).await
    }
}

/// The bridge: a boxed `DynManager` manages a pool like any other manager.
impl<T, E> Manager for Box<dyn DynManager<Object = T, Error = E>>
where
    T: Send + 'static,
    E: std::error::Error + Send + Sync + 'static,
{
    type Object = T;
    type Error = E;

    fn create(&self) -> impl Future<Output = Result<T, E>> + Send {
        DynManager::create(&**self)
    }

    async fn recycle(&self, object: &mut T, meta: &ObjectMeta) -> Result<(), E> {
        DynManager::recycle(&**self, object, meta).await
    }

    async fn health_check(&self, object: &mut T, meta: &ObjectMeta) -> Result<(), E> {
        DynManager::health_check(&**self, object, meta).await
    }

    fn unusable(&self, object: &T, meta: &ObjectMeta) -> Option<std::borrow::Cow<'static, str>> {
        DynManager::unusable(&**self, object, meta)
    }

    fn is_broken(&self, object: &T) -> bool {
        DynManager::is_broken(&**self, object)
    }

    fn destroy(&self, object: T) -> impl Future<Output = ()> + Send {
        DynManager::destroy(&**self, object)
    }
}
