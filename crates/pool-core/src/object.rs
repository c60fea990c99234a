//! The guard that lends a pooled object to its user.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::panic::Location;
use std::sync::Arc;

use crate::entry::Entry;
use crate::manager::Manager;
use crate::meta::ObjectMeta;
use crate::shared::Shared;

/// An object checked out of a [`Pool`](crate::Pool), returned to it when dropped.
///
/// The guard owns the object, so no one else can use it while you hold it. On drop the
/// object goes straight to the longest waiting caller or back to the idle list, unless
/// [`Manager::is_broken`] says it is broken, the pool is closed, the object outlived
/// `max_lifetime` or `max_uses`, or the guard is dropped while its thread panics (a
/// half-used object is not trusted): then it is destroyed, off your path.
///
/// Helpers are associated functions (`Object::take(o)`, `Object::meta(&o)`) so they never
/// shadow methods of the object itself.
///
/// # Example
///
/// ```
/// # use pool_core::{Manager, Object, Pool};
/// # struct M;
/// # impl Manager for M {
/// #     type Object = String;
/// #     type Error = std::convert::Infallible;
/// #     async fn create(&self) -> Result<String, Self::Error> { Ok(String::new()) }
/// # }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let pool = Pool::builder(M).max_size(2).build().unwrap();
/// let mut s = pool.get().await.unwrap();
/// s.push_str("in use"); // DerefMut to the String
/// assert_eq!(Object::meta(&s).times_used, 1);
/// let mine: String = Object::take(s); // detached for good; its slot is free again
/// assert_eq!(mine, "in use");
/// assert_eq!(pool.status().size, 0);
/// # }
/// ```
#[must_use = "dropping the object returns it to the pool at once"]
pub struct Object<M: Manager> {
    /// `None` only after `take`, which consumes the guard. Boxed: see `Entry`.
    entry: Option<Box<Entry<M::Object>>>,
    shared: Arc<Shared<M>>,
}

impl<M: Manager> Object<M> {
    /// Lends `entry` to the caller of `get` who asked at `caller`.
    #[inline]
    pub(crate) fn lend(
        shared: &Arc<Shared<M>>,
        entry: Box<Entry<M::Object>>,
        caller: &'static Location<'static>,
    ) -> Self {
        if shared.config.leak_threshold.is_some() {
            shared.record_loan(entry.meta.id, caller);
        }
        Self {
            entry: Some(entry),
            shared: Arc::clone(shared),
        }
    }

    fn entry(&self) -> &Entry<M::Object> {
        self.entry
            .as_ref()
            .expect("an Object always holds its entry until taken")
    }

    fn entry_mut(&mut self) -> &mut Entry<M::Object> {
        self.entry
            .as_mut()
            .expect("an Object always holds its entry until taken")
    }

    /// Detaches the object from the pool for good, freeing its slot. The pool will neither
    /// reuse nor destroy it; it is yours.
    pub fn take(mut this: Self) -> M::Object {
        let entry = this
            .entry
            .take()
            .expect("an Object always holds its entry until taken");
        this.shared.object_taken(entry.meta.id);
        entry.object
    }

    /// The pool's manager (a keyed pool's object tells its key).
    pub(crate) fn manager(this: &Self) -> &M {
        &this.shared.manager
    }

    /// What the pool knows about this object: id, creation time, last use, times used.
    pub fn meta(this: &Self) -> &ObjectMeta {
        &this.entry().meta
    }
}

impl<M: Manager> Deref for Object<M> {
    type Target = M::Object;

    fn deref(&self) -> &M::Object {
        &self.entry().object
    }
}

impl<M: Manager> DerefMut for Object<M> {
    fn deref_mut(&mut self) -> &mut M::Object {
        &mut self.entry_mut().object
    }
}

impl<M: Manager> AsRef<M::Object> for Object<M> {
    fn as_ref(&self) -> &M::Object {
        self
    }
}

impl<M: Manager> AsMut<M::Object> for Object<M> {
    fn as_mut(&mut self) -> &mut M::Object {
        self
    }
}

impl<M: Manager> fmt::Debug for Object<M>
where
    M::Object: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let entry = self.entry();
        f.debug_struct("Object")
            .field("object", &entry.object)
            .field("meta", &entry.meta)
            .finish()
    }
}

impl<M: Manager> Drop for Object<M> {
    fn drop(&mut self) {
        if let Some(entry) = self.entry.take() {
            self.shared.return_object(entry);
        }
    }
}
