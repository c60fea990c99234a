//! Keyed pools: a cap per key and for all keys together, eviction of another key's idle
//! object to make room, FIFO across keys when nothing can be evicted, forgotten keys, and a
//! property test of random operations over several keys.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pool_core::{KeyedManager, KeyedObject, KeyedPool, PoolError};
use proptest::prelude::*;

/// Objects are numbered; the manager counts, per key, what lives.
#[derive(Default)]
struct Counted {
    next: AtomicU64,
    live: Mutex<HashMap<u8, usize>>,
    created: AtomicU64,
    destroyed: AtomicU64,
}

#[derive(Debug)]
struct Conn {
    id: u64,
    key: u8,
    broken: bool,
}

#[derive(Clone, Default)]
struct Manager(Arc<Counted>);

impl KeyedManager for Manager {
    type Key = u8;
    type Object = Conn;
    type Error = std::convert::Infallible;

    async fn create(&self, key: &u8) -> Result<Conn, Self::Error> {
        *self.0.live.lock().unwrap().entry(*key).or_default() += 1;
        self.0.created.fetch_add(1, Ordering::SeqCst);
        let id = self.0.next.fetch_add(1, Ordering::SeqCst);
        Ok(Conn {
            id,
            key: *key,
            broken: false,
        })
    }

    fn is_broken(&self, _: &u8, conn: &Conn) -> bool {
        conn.broken
    }

    async fn destroy(&self, key: &u8, conn: Conn) {
        assert_eq!(conn.key, *key, "an object destroyed under another key");
        *self.0.live.lock().unwrap().get_mut(key).unwrap() -= 1;
        self.0.destroyed.fetch_add(1, Ordering::SeqCst);
    }
}

impl Manager {
    fn live(&self) -> HashMap<u8, usize> {
        self.0.live.lock().unwrap().clone()
    }

    fn live_total(&self) -> usize {
        self.live().values().sum()
    }
}

fn pool(manager: &Manager, max_size: usize, max_total: usize) -> KeyedPool<Manager> {
    KeyedPool::builder(manager.clone())
        .max_size(max_size)
        .max_total(max_total)
        .build()
        .unwrap()
}

/// Lets spawned destroys run.
async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_key_at_the_total_cap_evicts_the_oldest_idle_object_of_another() {
    let manager = Manager::default();
    let pool = pool(&manager, 2, 2);
    let a1 = pool.get(&1).await.unwrap();
    tokio::time::advance(Duration::from_secs(1)).await;
    let a2 = pool.get(&1).await.unwrap();
    let oldest = a1.id;
    drop(a1); // returned first: the oldest idle
    tokio::time::advance(Duration::from_secs(1)).await;
    drop(a2);
    let b = pool.get_timeout(&2, Duration::from_secs(1)).await.unwrap();
    assert_eq!(b.key, 2);
    settle().await;
    assert!(manager.live_total() <= 2);
    assert_eq!(pool.metrics().destroyed_by.evicted, 1);
    // The one evicted was the oldest: the newer one is still idle under key 1.
    let a = pool.get(&1).await.unwrap();
    assert_ne!(a.id, oldest);
    assert_eq!(pool.status().size, 2);
}

#[tokio::test(start_paused = true)]
async fn with_nothing_to_evict_keys_wait_first_come_first_served() {
    let manager = Manager::default();
    let pool = pool(&manager, 1, 1);
    let held = pool.get(&1).await.unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let waiter = |key: u8| {
        let (pool, order) = (pool.clone(), order.clone());
        tokio::spawn(async move {
            let object = pool
                .get_timeout(&key, Duration::from_secs(10))
                .await
                .unwrap();
            order.lock().unwrap().push(key);
            tokio::time::sleep(Duration::from_millis(100)).await;
            drop(object);
        })
    };
    let second = waiter(2);
    settle().await;
    let third = waiter(3);
    settle().await;
    assert!(order.lock().unwrap().is_empty(), "nothing is free yet");
    drop(held);
    second.await.unwrap();
    third.await.unwrap();
    assert_eq!(*order.lock().unwrap(), [2, 3]);
    assert!(manager.live_total() <= 1);
}

#[tokio::test(start_paused = true)]
async fn a_key_never_holds_more_than_its_max_size() {
    let manager = Manager::default();
    let pool = pool(&manager, 1, 10);
    let _first = pool.get(&7).await.unwrap();
    let second = pool.get_timeout(&7, Duration::from_millis(100)).await;
    assert!(
        matches!(second, Err(PoolError::Timeout { .. })),
        "{second:?}"
    );
    assert_eq!(manager.live()[&7], 1);
}

#[tokio::test(start_paused = true)]
async fn keys_with_nothing_in_them_are_forgotten_but_still_counted() {
    let manager = Manager::default();
    let pool = pool(&manager, 1, 1);
    for key in 0..100u8 {
        let object = pool
            .get_timeout(&key, Duration::from_secs(1))
            .await
            .unwrap();
        drop(object);
        settle().await;
        assert!(
            pool.status().keys <= 2,
            "keys seen pile up: {:?}",
            pool.status()
        );
    }
    let metrics = pool.metrics();
    assert_eq!(metrics.created, 100);
    assert_eq!(metrics.destroyed_by.evicted, 99);
    let report = pool.shutdown(Duration::from_secs(1)).await;
    assert!(report.is_clean(), "{report:?}");
    settle().await;
    assert_eq!(manager.0.destroyed.load(Ordering::SeqCst), 100);
}

#[tokio::test(start_paused = true)]
async fn shutdown_covers_every_key() {
    let manager = Manager::default();
    let pool = pool(&manager, 2, 6);
    let mut held = Vec::new();
    for key in 0..3u8 {
        held.push(pool.get(&key).await.unwrap());
        drop(pool.get(&key).await.unwrap());
    }
    drop(held);
    let report = pool.shutdown(Duration::from_secs(1)).await;
    assert!(report.is_clean(), "{report:?}");
    settle().await;
    assert_eq!(manager.live_total(), 0);
    assert!(matches!(pool.get(&0).await, Err(PoolError::Closed)));
}

#[test]
fn a_total_below_one_keys_max_size_is_refused() {
    let error = KeyedPool::builder(Manager::default())
        .max_size(4)
        .max_total(2)
        .build()
        .unwrap_err();
    assert!(error.to_string().contains("max_total"), "{error}");
    let error = KeyedPool::builder(Manager::default())
        .max_size(0)
        .build()
        .unwrap_err();
    assert!(error.to_string().contains("max_size"), "{error}");
}

/// One step of the property test.
#[derive(Debug, Clone)]
enum Op {
    /// Get an object of this key.
    Get(u8),
    /// Give back the i-th object held (modulo how many are held).
    Drop(usize),
    /// Mark the i-th object broken and give it back.
    Break(usize),
    /// Keep the i-th object for good.
    Take(usize),
    /// Let time pass.
    Wait(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..4).prop_map(Op::Get),
        3 => any::<usize>().prop_map(Op::Drop),
        1 => any::<usize>().prop_map(Op::Break),
        1 => any::<usize>().prop_map(Op::Take),
        1 => (1u64..200).prop_map(Op::Wait),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Random gets, returns, breaks, takes and waits over four keys, checking after every
    /// step: at most `max_total` objects live and at most `max_size` per key; no object
    /// out twice; a get that could be served (its key under its cap, fewer than
    /// `max_total` objects out, so something is free or evictable) is served; and at the
    /// end every object created was destroyed once or taken.
    #[test]
    fn several_keys_keep_every_cap_and_every_object_is_accounted_for(
        max_size in 1usize..4,
        extra in 0usize..4,
        ops in proptest::collection::vec(op(), 1..60),
    ) {
        let max_total = max_size + extra;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        runtime.block_on(async {
            let manager = Manager::default();
            let pool = pool(&manager, max_size, max_total);
            let mut held: Vec<KeyedObject<Manager>> = Vec::new();
            let mut taken = 0u64;
            for op in ops {
                match op {
                    Op::Get(key) => {
                        let out_of_key = held.iter().filter(|o| KeyedObject::key(o) == &key).count();
                        let servable = out_of_key < max_size && held.len() < max_total;
                        match pool.get_timeout(&key, Duration::from_secs(1)).await {
                            Ok(object) => {
                                let ids: HashSet<_> = held.iter().map(|o| o.id).collect();
                                prop_assert!(!ids.contains(&object.id), "object {} out twice", object.id);
                                prop_assert_eq!(object.key, key);
                                held.push(object);
                            }
                            Err(error) => prop_assert!(!servable, "a servable get failed: {:?}", error),
                        }
                    }
                    Op::Drop(i) if !held.is_empty() => drop(held.remove(i % held.len())),
                    Op::Break(i) if !held.is_empty() => {
                        let mut object = held.remove(i % held.len());
                        object.broken = true;
                    }
                    Op::Take(i) if !held.is_empty() => {
                        let conn = KeyedObject::take(held.remove(i % held.len()));
                        // A taken object leaves the pool's count: forget it here too.
                        *manager.0.live.lock().unwrap().get_mut(&conn.key).unwrap() -= 1;
                        taken += 1;
                    }
                    Op::Wait(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
                    _ => {}
                }
                settle().await;
                prop_assert!(manager.live_total() <= max_total, "{:?} over {}", manager.live(), max_total);
                for (key, live) in manager.live() {
                    prop_assert!(live <= max_size, "key {} has {} over {}", key, live, max_size);
                }
            }
            drop(held);
            let report = pool.shutdown(Duration::from_secs(5)).await;
            prop_assert!(report.is_clean(), "{:?}", report);
            settle().await;
            let created = manager.0.created.load(Ordering::SeqCst);
            let destroyed = manager.0.destroyed.load(Ordering::SeqCst);
            prop_assert_eq!(created, destroyed + taken);
            Ok(())
        })?;
    }
}
