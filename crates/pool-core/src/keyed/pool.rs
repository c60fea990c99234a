//! `KeyedPool`: a pool per key, with a cap on all keys' objects together.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use parking_lot::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;

use super::for_key::{Core, ForKey};
use super::manager::KeyedManager;
use super::object::KeyedObject;
use crate::builder::PoolBuilder;
use crate::config::PoolConfig;
use crate::error::{BuildError, PoolError};
use crate::get::Mode;
use crate::metrics::Metrics;
use crate::pool::Pool;
use crate::shutdown::ShutdownReport;
use crate::status::Status;

/// A pool of pools: objects pooled by key (connections per tenant, worker processes per
/// tool and flags, clients per upstream host), each key with the settings and every
/// guarantee of a [`Pool`] (at most `max_size` objects, FIFO waiters, one deadline per
/// `get`, cancellation safety, maintenance), plus a cap on the objects of all keys
/// together, `max_total`.
///
/// - When all keys together hold `max_total` objects and a key needs a new one, the idle
///   object returned longest ago, of another key, is destroyed to make room (counted in
///   `destroyed_by.evicted`), so one busy key cannot starve another while idle objects
///   sit elsewhere. When nothing is idle, creates of every key wait for a slot first come,
///   first served.
/// - A key with no objects and nobody waiting is forgotten: memory does not grow with the
///   number of keys ever seen. Its counters stay in the totals of
///   [`metrics`](KeyedPool::metrics).
/// - [`status`](KeyedPool::status) and [`metrics`](KeyedPool::metrics) add up every key;
///   [`status_of`](KeyedPool::status_of) and [`metrics_of`](KeyedPool::metrics_of) give one.
///   [`shutdown`](KeyedPool::shutdown) covers every key.
///
/// `Clone` is cheap: clones share the pool.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use pool_core::{KeyedManager, KeyedPool};
///
/// /// A connection string per tenant, standing in for a connection.
/// struct Tenants;
///
/// impl KeyedManager for Tenants {
///     type Key = String;
///     type Object = String;
///     type Error = std::convert::Infallible;
///
///     async fn create(&self, tenant: &String) -> Result<String, Self::Error> {
///         Ok(format!("postgres://db/{tenant}"))
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let pool = KeyedPool::builder(Tenants)
///     .max_size(4) // per tenant
///     .max_total(16) // all tenants together
///     .wait_timeout(Duration::from_secs(5))
///     .build()?;
/// let conn = pool.get(&"acme".to_string()).await?;
/// assert_eq!(*conn, "postgres://db/acme");
/// drop(conn);
/// assert_eq!(pool.status().size, 1);
/// assert_eq!(pool.status_of(&"acme".to_string()).map(|s| s.idle), Some(1));
/// pool.shutdown(Duration::from_secs(1)).await;
/// # Ok(())
/// # }
/// ```
pub struct KeyedPool<M: KeyedManager> {
    keyed: Arc<Keyed<M>>,
}

impl<M: KeyedManager> Clone for KeyedPool<M> {
    fn clone(&self) -> Self {
        Self {
            keyed: Arc::clone(&self.keyed),
        }
    }
}

/// What a keyed pool's handles share.
pub(crate) struct Keyed<M: KeyedManager> {
    core: Arc<Core<M>>,
    /// The settings of every key's pool.
    per_key: PoolConfig,
    max_total: usize,
    name: String,
    keys: Mutex<Keys<M>>,
}

struct Keys<M: KeyedManager> {
    pools: HashMap<M::Key, Arc<KeyPool<M>>>,
    /// The counters of keys forgotten since the start, so that totals only grow.
    forgotten: Metrics,
    closed: bool,
}

struct KeyPool<M: KeyedManager> {
    pool: Pool<ForKey<M>>,
    /// Callers inside a `get` of this key: it is not forgotten under them. Raised under
    /// the map's lock, so a key found empty there with none getting stays empty.
    getting: AtomicUsize,
}

impl<M: KeyedManager> KeyPool<M> {
    /// Nothing in it and nobody getting from it (asked under the map's lock).
    fn is_forgettable(&self) -> bool {
        if self.getting.load(Ordering::SeqCst) != 0 {
            return false;
        }
        let status = self.pool.status();
        status.size == 0 && status.waiting == 0
    }
}

/// The occupancy of a [`KeyedPool`]: every key's [`Status`] added up, and how many keys
/// it holds now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct KeyedStatus {
    /// Keys with objects or callers now (others are forgotten).
    pub keys: usize,
    /// The cap on all keys' objects together.
    pub max_total: usize,
    /// Objects of all keys: idle, handed out, or being created. Creates waiting for a slot
    /// among all keys count too, so this may exceed `max_total` for a while; live objects
    /// (`idle + in_use`) never do.
    pub size: usize,
    /// Idle objects of all keys.
    pub idle: usize,
    /// Objects handed out, of all keys.
    pub in_use: usize,
    /// Creates in flight, of all keys.
    pub creating: usize,
    /// Callers waiting, of all keys.
    pub waiting: usize,
}

impl<M: KeyedManager> KeyedPool<M> {
    /// Starts configuring a keyed pool of objects made by `manager`.
    pub fn builder(manager: M) -> KeyedPoolBuilder<M> {
        KeyedPoolBuilder {
            manager,
            per_key: PoolConfig::default(),
            max_total: None,
            name: None,
        }
    }

    /// An object of `key`: idle, or created (making room among all keys if need be), or,
    /// when the key has `max_size` out, the next one back. Every guarantee of
    /// [`Pool::get`] holds for the key; `wait_timeout` bounds the whole call, the wait for
    /// a slot among all keys included.
    #[track_caller]
    pub fn get<'a>(
        &'a self,
        key: &'a M::Key,
    ) -> impl Future<Output = Result<KeyedObject<M>, PoolError<M::Error>>> + Send + 'a {
        self.get_within(key, self.keyed.per_key.wait_timeout, Location::caller())
    }

    /// [`get`](Self::get) with its own deadline instead of `wait_timeout`.
    #[track_caller]
    pub fn get_timeout<'a>(
        &'a self,
        key: &'a M::Key,
        timeout: Duration,
    ) -> impl Future<Output = Result<KeyedObject<M>, PoolError<M::Error>>> + Send + 'a {
        self.get_within(key, Some(timeout), Location::caller())
    }

    /// Both `get`s, with the user's call site for leak reports (an `async fn` would
    /// record its own).
    async fn get_within(
        &self,
        key: &M::Key,
        timeout: Option<Duration>,
        caller: &'static Location<'static>,
    ) -> Result<KeyedObject<M>, PoolError<M::Error>> {
        let mut getting = self.keyed.enter(key)?;
        let inner = getting
            .key_pool
            .pool
            .get_with(timeout, Mode::Wait, caller)
            .await?;
        getting.served = true;
        Ok(KeyedObject { inner })
    }

    /// Every key's occupancy added up.
    pub fn status(&self) -> KeyedStatus {
        let keys = self.keyed.keys();
        let mut total = KeyedStatus {
            keys: keys.pools.len(),
            max_total: self.keyed.max_total,
            ..KeyedStatus::default()
        };
        for key in keys.pools.values() {
            let status = key.pool.status();
            total.size += status.size;
            total.idle += status.idle;
            total.in_use += status.in_use;
            total.creating += status.creating;
            total.waiting += status.waiting;
        }
        total
    }

    /// One key's occupancy; `None` if the pool holds nothing for it now.
    pub fn status_of(&self, key: &M::Key) -> Option<Status> {
        self.keyed.keys().pools.get(key).map(|k| k.pool.status())
    }

    /// Every key's counters added up, forgotten keys' included.
    pub fn metrics(&self) -> Metrics {
        let keys = self.keyed.keys();
        let mut total = keys.forgotten.clone();
        for key in keys.pools.values() {
            total.add(&key.pool.metrics());
        }
        total
    }

    /// One key's counters since it was last remembered; `None` if it is not held now.
    pub fn metrics_of(&self, key: &M::Key) -> Option<Metrics> {
        self.keyed.keys().pools.get(key).map(|k| k.pool.metrics())
    }

    /// The pool's name (see [`KeyedPoolBuilder::name`]).
    pub fn name(&self) -> &str {
        &self.keyed.name
    }

    /// Closes every key's pool (see [`Pool::close`]); new `get`s fail with `Closed`.
    pub fn close(&self) {
        let mut keys = self.keyed.keys();
        keys.closed = true;
        for key in keys.pools.values() {
            key.pool.close();
        }
    }

    /// Closes every key's pool and waits, within one shared `grace`, for each to drain
    /// (see [`Pool::shutdown`]); the report adds up what was left in all of them.
    pub async fn shutdown(&self, grace: Duration) -> ShutdownReport {
        self.close();
        let deadline = Instant::now() + grace;
        let pools: Vec<_> = self
            .keyed
            .keys()
            .pools
            .values()
            .map(|k| k.pool.clone())
            .collect();
        let mut total = ShutdownReport::default();
        for pool in pools {
            let left = deadline.saturating_duration_since(Instant::now());
            let report = pool.shutdown(left).await;
            total.still_out += report.still_out;
            total.still_destroying += report.still_destroying;
        }
        total
    }
}

impl<M: KeyedManager> Keyed<M> {
    fn keys(&self) -> MutexGuard<'_, Keys<M>> {
        self.keys.lock()
    }

    /// `key`'s pool, made if the key is new, with this caller counted in it until the
    /// returned guard drops.
    fn enter<'a>(self: &'a Arc<Self>, key: &M::Key) -> Result<Getting<'a, M>, PoolError<M::Error>> {
        let mut keys = self.keys();
        if keys.closed {
            return Err(PoolError::Closed);
        }
        let key_pool = match keys.pools.get(key) {
            Some(key_pool) => Arc::clone(key_pool),
            None => {
                // A new key: forget those with nothing in them first, so the map holds
                // only keys in use.
                keys.forget_empty();
                let key_pool = Arc::new(KeyPool {
                    pool: self.new_key_pool(key),
                    getting: AtomicUsize::new(0),
                });
                keys.pools.insert(key.clone(), Arc::clone(&key_pool));
                key_pool
            }
        };
        key_pool.getting.fetch_add(1, Ordering::SeqCst);
        drop(keys);
        Ok(Getting {
            keyed: self,
            key_pool,
            served: false,
        })
    }

    fn new_key_pool(self: &Arc<Self>, key: &M::Key) -> Pool<ForKey<M>> {
        let manager = ForKey {
            key: key.clone(),
            core: Arc::clone(&self.core),
            keyed: Arc::downgrade(self),
        };
        PoolBuilder::new(manager)
            .config(self.per_key.clone())
            .name(format!("{}[{key:?}]", self.name))
            .build()
            .expect("the per-key settings were checked when the keyed pool was built")
    }

    /// Destroys the idle object returned longest ago among the keys other than `except`,
    /// if there is one.
    pub(crate) fn evict_oldest_idle(&self, except: &M::Key) {
        let pools: Vec<_> = {
            let keys = self.keys();
            let others = keys.pools.iter().filter(|(key, _)| *key != except);
            others.map(|(_, k)| k.pool.clone()).collect()
        };
        let oldest = pools
            .iter()
            .filter_map(|pool| {
                let returned = pool.least_idle_by(|held| held.returned());
                returned.map(|(returned, id)| (returned, id, pool))
            })
            .min_by_key(|(returned, _, _)| *returned);
        // Taken meanwhile, it is simply not idle any more: the caller looks again.
        if let Some((_, id, pool)) = oldest {
            pool.evict_idle(id);
        }
    }
}

impl<M: KeyedManager> Keys<M> {
    /// Forgets the keys with no object and nobody getting one, keeping their counters.
    fn forget_empty(&mut self) {
        let forgotten = &mut self.forgotten;
        self.pools.retain(|_, key_pool| {
            let empty = key_pool.is_forgettable();
            if empty {
                key_pool.forget(forgotten);
            }
            !empty
        });
    }
}

impl<M: KeyedManager> KeyPool<M> {
    /// Closes a key's pool taken out of the map, adding its counters to `forgotten`.
    fn forget(&self, forgotten: &mut Metrics) {
        forgotten.add(&self.pool.metrics());
        self.pool.close();
    }
}

/// A caller inside a `get` of `key`; when the last one leaves a key with nothing in it,
/// the key is forgotten.
struct Getting<'a, M: KeyedManager> {
    keyed: &'a Arc<Keyed<M>>,
    key_pool: Arc<KeyPool<M>>,
    /// The caller got its object: the key holds it, so it is not empty.
    served: bool,
}

impl<M: KeyedManager> Drop for Getting<'_, M> {
    fn drop(&mut self) {
        self.key_pool.getting.fetch_sub(1, Ordering::SeqCst);
        if self.served {
            return;
        }
        // Failed or cancelled: the key may be left with nothing in it.
        let mut keys = self.keyed.keys();
        let key = &self.key_pool.pool.manager().key;
        // Still this key's pool in the map (not forgotten and made again meanwhile).
        let in_map = keys
            .pools
            .get(key)
            .is_some_and(|entry| Arc::ptr_eq(entry, &self.key_pool));
        if in_map && self.key_pool.is_forgettable() {
            keys.pools.remove(key);
            self.key_pool.forget(&mut keys.forgotten);
        }
    }
}

impl<M: KeyedManager> fmt::Debug for KeyedPool<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedPool")
            .field("name", &self.keyed.name)
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

/// Configures a [`KeyedPool`]: the settings of every key's pool (those of
/// [`PoolBuilder`]), the cap on all keys' objects together, then
/// [`build`](KeyedPoolBuilder::build).
#[must_use = "a builder does nothing until `build` is called"]
pub struct KeyedPoolBuilder<M: KeyedManager> {
    manager: M,
    per_key: PoolConfig,
    max_total: Option<usize>,
    name: Option<String>,
}

impl<M: KeyedManager> KeyedPoolBuilder<M> {
    /// The most objects of one key (see [`PoolBuilder::max_size`]).
    pub fn max_size(mut self, max_size: usize) -> Self {
        self.per_key.max_size = max_size;
        self
    }

    /// The most objects of all keys together (default: `max_size`, one key's worth).
    /// At least `max_size`.
    pub fn max_total(mut self, max_total: usize) -> Self {
        self.max_total = Some(max_total);
        self
    }

    /// One deadline for a whole `get` (see [`PoolBuilder::wait_timeout`]).
    pub fn wait_timeout(mut self, timeout: Duration) -> Self {
        self.per_key.wait_timeout = Some(timeout);
        self
    }

    /// Every setting of each key's pool at once (see [`PoolConfig`]); `max_total` is
    /// this builder's own.
    pub fn config(mut self, config: PoolConfig) -> Self {
        self.per_key = config;
        self
    }

    /// The pool's name, in every event it logs (each key's pool is `name[key]`); default:
    /// the manager's type name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Checks the settings and builds the pool. Refused, naming the setting: what
    /// [`PoolBuilder::build`] refuses, and a `max_total` below `max_size` (one key could
    /// never fill its own pool) or above what a semaphore can count.
    pub fn build(self) -> Result<KeyedPool<M>, BuildError> {
        // Every key's pool is built from these settings: check them once, now.
        crate::builder::validate(&self.per_key)?;
        let max_total = self.max_total.unwrap_or(self.per_key.max_size);
        if max_total < self.per_key.max_size {
            return Err(BuildError::new(
                "max_total",
                format!(
                    "must be at least max_size ({}): one key could never fill its pool",
                    self.per_key.max_size
                ),
            ));
        }
        if max_total > Semaphore::MAX_PERMITS {
            return Err(BuildError::new("max_total", "is too large"));
        }
        let name = self
            .name
            .unwrap_or_else(crate::builder::short_type_name::<M>);
        let core = Core {
            manager: self.manager,
            slots: Arc::new(Semaphore::new(max_total)),
            returned: Notify::new(),
            waiting_for_slots: AtomicUsize::new(0),
            returns: AtomicU64::new(0),
        };
        Ok(KeyedPool {
            keyed: Arc::new(Keyed {
                core: Arc::new(core),
                per_key: self.per_key,
                max_total,
                name,
                keys: Mutex::new(Keys {
                    pools: HashMap::new(),
                    forgotten: Metrics::default(),
                    closed: false,
                }),
            }),
        })
    }
}

impl<M: KeyedManager> fmt::Debug for KeyedPoolBuilder<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedPoolBuilder")
            .field("per_key", &self.per_key)
            .field("max_total", &self.max_total)
            .finish_non_exhaustive()
    }
}
