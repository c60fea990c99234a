//! Keyed pools: a pool per key, with a cap on all keys' objects together.

mod for_key;
mod manager;
mod object;
mod pool;

pub use manager::KeyedManager;
pub use object::KeyedObject;
pub use pool::{KeyedPool, KeyedPoolBuilder, KeyedStatus};
