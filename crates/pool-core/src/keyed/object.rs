//! The guard a keyed pool hands out.

use std::fmt;
use std::ops::{Deref, DerefMut};

use super::for_key::ForKey;
use super::manager::KeyedManager;
use crate::meta::ObjectMeta;
use crate::object::Object;

/// An object checked out of a [`KeyedPool`](super::KeyedPool): derefs to the object, and
/// gives it back to its key's pool when dropped, as [`Object`] does.
pub struct KeyedObject<M: KeyedManager> {
    pub(crate) inner: Object<ForKey<M>>,
}

impl<M: KeyedManager> KeyedObject<M> {
    /// The key the object belongs to.
    pub fn key(this: &Self) -> &M::Key {
        &Object::manager(&this.inner).key
    }

    /// What the pool knows about the object (see [`Object::meta`]).
    pub fn meta(this: &Self) -> &ObjectMeta {
        Object::meta(&this.inner)
    }

    /// Detaches the object for good, freeing its slot in its key's pool and among all
    /// keys' objects (see [`Object::take`]).
    pub fn take(this: Self) -> M::Object {
        Object::take(this.inner).object
    }
}

impl<M: KeyedManager> Deref for KeyedObject<M> {
    type Target = M::Object;

    fn deref(&self) -> &M::Object {
        &self.inner.object
    }
}

impl<M: KeyedManager> DerefMut for KeyedObject<M> {
    fn deref_mut(&mut self) -> &mut M::Object {
        &mut self.inner.object
    }
}

impl<M: KeyedManager> fmt::Debug for KeyedObject<M>
where
    M::Object: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedObject")
            .field("key", KeyedObject::key(self))
            .field("object", &**self)
            .finish()
    }
}
