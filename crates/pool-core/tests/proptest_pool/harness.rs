// The harness: the pool, what the test holds, and the checks of each operation.

mod checks;
mod polling;

use checks::*;

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use pool_core::{AddError, DestroyedBy, TimeoutKind};
use pool_core::{Metrics, Object, Pool, PoolConfig, PoolError, QueueMode, ShutdownReport, Status};
use proptest::test_runner::TestCaseError;
use proptest::{prop_assert, prop_assert_eq};
use tokio::runtime::Runtime;
use tokio::time::Instant;

use crate::manager::{End, FaultyManager, Hook, as_caller};
use crate::ops::{Op, Outcome, Setup};

pub(crate) type Step = Result<(), TestCaseError>;

type GetResult = Result<Object<FaultyManager>, PoolError<io::Error>>;

struct PendingGet {
    key: u64,
    future: Pin<Box<dyn Future<Output = GetResult>>>,
    deadline: Option<Instant>,
    is_try: bool,
}

type PendingShutdown = (Pin<Box<dyn Future<Output = ShutdownReport>>>, Instant);

/// What the test knows of an object from the outside.
struct Obj {
    created: Instant,
    /// When it last went back to the pool (or was created): `ObjectMeta::last_used`.
    idle_since: Instant,
    /// Times handed out.
    uses: usize,
    broken: bool,
    /// Out when `evict_all` ran: destroyed when it comes back.
    stale: bool,
}

/// Where a pending `get` stands in the waiter queue, as the contract lets the test know it.
enum Start {
    Get,
    Timeout(u64),
    Try,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// Queued and not served yet.
    Queued,
    /// Served (an object, a create slot or `Closed`), not polled since.
    Granted,
    /// In a hook (a hanging create, recycle or health check).
    Busy(Hook),
    New,
}

pub(crate) struct Harness<'rt> {
    rt: &'rt Runtime,
    pool: Pool<FaultyManager>,
    manager: FaultyManager,
    pub(crate) setup: Setup,
    held: Vec<Object<FaultyManager>>,
    pending: Vec<PendingGet>,
    shutdowns: Vec<PendingShutdown>,
    next_key: u64,
    /// Keys of the gets without a deadline: a failure they got as `Backend` is theirs.
    no_deadline: HashSet<u64>,
    /// The waiter queue, longest waiting first (so `waiting == queue.len()`), and the gets
    /// served from its front since they were last polled.
    queue: VecDeque<u64>,
    granted: HashSet<u64>,
    /// Gets served by `Pool::add` (from the queue's front), and the object added: the one
    /// they get, unless it was destroyed at checkout.
    handed: HashMap<u64, u64>,
    /// Objects added for a get that got another one instead: they must be destroyed.
    doomed: Vec<(u64, u64)>,
    objects: HashMap<u64, Obj>,
    /// When each idle object was first seen idle (after it went back, or was made).
    idle_seen: HashMap<u64, Instant>,
    /// When an object last joined the idle list.
    idle_changed: Instant,
    /// Ids given away with `Object::take`.
    taken: HashSet<u64>,
    closed: bool,
    /// A shrink or `evict_all` happened, so a finished refill may be evicted.
    evictions: bool,
    /// How far `size` may still exceed `max_size`: set by a resize below what is checked
    /// out, and never allowed to grow back until the next resize.
    shrink_allowance: usize,
    /// Timeouts seen, and recycled objects handed out.
    timeouts: u64,
    recycled: u64,
    /// What this step must add to some `destroyed_by` counters.
    expect: DestroyedBy,
    metrics: Metrics,
}

/// The state before a step.
struct Before {
    status: Status,
    metrics: Metrics,
    idle: Vec<u64>,
}

impl<'rt> Harness<'rt> {
    pub(crate) fn new(rt: &'rt Runtime, setup: &Setup) -> Self {
        let manager = FaultyManager::default();
        manager.backend().max_concurrent_creates = setup.max_concurrent_creates;
        let ms = |t: Option<u64>| t.map(Duration::from_millis);
        let config = PoolConfig {
            max_size: setup.max_size,
            max_concurrent_creates: setup.max_concurrent_creates,
            min_idle: setup.min_idle,
            queue_mode: if setup.fifo {
                QueueMode::Fifo
            } else {
                QueueMode::Lifo
            },
            wait_timeout: ms(setup.wait_timeout_ms),
            create_timeout: ms(setup.create_timeout_ms),
            recycle_timeout: ms(setup.recycle_timeout_ms),
            health_check_after: ms(setup.health_check_after_ms),
            idle_timeout: ms(setup.idle_timeout_ms),
            max_lifetime: ms(setup.max_lifetime_ms),
            max_uses: setup.max_uses,
            ..PoolConfig::default()
        };
        let pool = Pool::builder(manager.clone())
            .config(config)
            .build()
            .unwrap();
        manager.backend().pool = Some(pool.clone());
        Self {
            rt,
            pool,
            manager,
            setup: setup.clone(),
            held: Vec::new(),
            pending: Vec::new(),
            shutdowns: Vec::new(),
            next_key: 0,
            no_deadline: HashSet::new(),
            queue: VecDeque::new(),
            granted: HashSet::new(),
            handed: HashMap::new(),
            doomed: Vec::new(),
            objects: HashMap::new(),
            idle_seen: HashMap::new(),
            idle_changed: Instant::now(),
            taken: HashSet::new(),
            closed: false,
            evictions: false,
            shrink_allowance: 0,
            timeouts: 0,
            recycled: 0,
            expect: DestroyedBy::default(),
            metrics: Metrics::default(),
        }
    }

    /// Lets the runtime run what is ready (destroys, timers, maintenance, refills) without
    /// moving the paused clock: a yield keeps the runtime busy, so it never auto-advances.
    pub(crate) fn settle(&self) {
        self.rt.block_on(async {
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
        });
    }

    fn before(&self) -> Before {
        Before {
            status: self.pool.status(),
            metrics: self.pool.metrics(),
            idle: self.idle_ids(),
        }
    }

    /// One step, then every check.
    pub(crate) fn step(&mut self, op: &Op) -> Step {
        let before = self.before();
        self.expect = DestroyedBy::default();
        self.apply(op, &before)?;
        self.settle();
        self.sync_queue()?;
        self.check_destroys(op, &before)?;
        self.check()
    }

    fn apply(&mut self, op: &Op, before: &Before) -> Step {
        let s = &before.status;
        let destroyed_by = |harness: &Self| harness.pool.metrics().destroyed_by;
        match *op {
            Op::Get => self.start_get(Start::Get, before)?,
            Op::GetTimeout(ms) => self.start_get(Start::Timeout(ms), before)?,
            Op::TryGet => self.start_get(Start::Try, before)?,
            Op::DropObject(i) if !self.held.is_empty() => {
                let object = self.held.remove(i % self.held.len());
                self.drop_object(object, before)?;
            }
            Op::TakeObject(i) if !self.held.is_empty() => {
                let conn = Object::take(self.held.remove(i % self.held.len()));
                self.taken.insert(conn.id);
            }
            Op::MarkBroken(i) if !self.held.is_empty() => {
                let i = i % self.held.len();
                self.held[i].broken = true;
                self.obj(self.held[i].id).broken = true;
            }
            Op::CancelPending(i) if !self.pending.is_empty() => {
                let get = self.pending.remove(i % self.pending.len());
                self.queue.retain(|&key| key != get.key);
                self.granted.remove(&get.key);
                self.handed.remove(&get.key);
                drop(get);
                self.sync_queue()?;
            }
            Op::PollPending => {
                self.poll_pending()?;
                for (mut shutdown, deadline) in std::mem::take(&mut self.shutdowns) {
                    // Destroys have all run (the last step settled): the pool is clean
                    // once nothing is out.
                    let clean = self.pool.status().size == 0
                        && self.pool.metrics().destroyed == before.metrics.destroyed;
                    if !self.poll_shutdown(&mut shutdown, deadline, clean)? {
                        self.shutdowns.push((shutdown, deadline));
                    }
                }
            }
            Op::AdvanceClock(ms) => {
                self.rt
                    .block_on(tokio::time::advance(Duration::from_millis(ms)));
            }
            Op::Inject(hook, fault) => {
                self.manager.backend().script.next[hook as usize] = Some(fault);
            }
            Op::BackendDown => self.manager.backend().script.down = true,
            Op::BackendUp => self.manager.backend().script.down = false,
            Op::Resize(n) => {
                self.pool.resize(n).unwrap();
                // Surplus idle objects go now, the rest as they come back.
                let surplus = s.size.saturating_sub(n).min(s.idle);
                let evicted = destroyed_by(self).evicted - before.metrics.destroyed_by.evicted;
                prop_assert_eq!(evicted, surplus as u64, "resize({}) from {:?}", n, s);
                let status = self.pool.status();
                self.shrink_allowance = status.size.saturating_sub(status.max_size);
                self.evictions |= n < s.max_size;
                self.sync_queue()?;
            }
            Op::Retain => {
                self.pool.retain(|conn, _| conn.id % 2 == 0);
                let idle = self.idle_ids();
                let even = before.idle.iter().copied().filter(|id| id % 2 == 0);
                let even: Vec<u64> = even.collect();
                prop_assert_eq!(&idle, &even, "retain kept, of {:?}", before.idle);
                self.expect.retained_out = (before.idle.len() - even.len()) as u64;
            }
            Op::EvictAll => {
                self.pool.evict_all();
                prop_assert_eq!(self.pool.status().idle, 0, "evict_all left idle objects");
                let evicted = destroyed_by(self).evicted - before.metrics.destroyed_by.evicted;
                prop_assert_eq!(evicted, s.idle as u64, "evict_all destroyed, by evicted");
                self.evictions = true;
                // Every object alive is stale (the idle ones are gone already).
                let ids: Vec<u64> = self.manager.backend().ids().collect();
                for id in ids {
                    self.obj(id).stale = true;
                }
            }
            Op::Close => {
                self.pool.close();
                self.closed = true;
                let status = self.pool.status();
                prop_assert_eq!((status.idle, status.waiting), (0, 0), "after close");
                let closed = destroyed_by(self).closed - before.metrics.destroyed_by.closed;
                prop_assert!(
                    closed >= s.idle as u64,
                    "close left idle objects undestroyed"
                );
                // Every queued get (or one served but not yet run) gets `Closed`.
                self.sync_queue()?;
                self.poll_pending()?;
            }
            Op::Shutdown(grace) => {
                let pool = self.pool.clone();
                let deadline = Instant::now() + Duration::from_millis(grace);
                let grace = Duration::from_millis(grace);
                let mut shutdown: Pin<Box<dyn Future<Output = ShutdownReport>>> =
                    Box::pin(async move { pool.shutdown(grace).await });
                self.closed = true;
                if !self.poll_shutdown(&mut shutdown, deadline, false)? {
                    self.shutdowns.push((shutdown, deadline));
                }
                self.sync_queue()?;
            }
            Op::Add => self.add_object(before)?,
            Op::DropObject(_) | Op::TakeObject(_) | Op::MarkBroken(_) | Op::CancelPending(_) => {}
        }
        Ok(())
    }

    fn obj(&mut self, id: u64) -> &mut Obj {
        let created = self.manager.backend().born(id);
        self.objects.entry(id).or_insert(Obj {
            created,
            idle_since: created,
            uses: 0,
            broken: false,
            stale: false,
        })
    }

    /// Returns an object and checks what the contract says becomes of it.
    fn drop_object(&mut self, object: Object<FaultyManager>, before: &Before) -> Step {
        let id = object.id;
        let s = before.status;
        let now = Instant::now();
        let (max_uses, lifetime) = (self.setup.max_uses, self.setup.max_lifetime_ms);
        let closed = self.closed;
        let obj = self.obj(id);
        let age = now - obj.created;
        let (broken, used_up) = (obj.broken, max_uses.is_some_and(|max| obj.uses >= max));
        let lifetime = lifetime.map(Duration::from_millis);
        // The checks at return, in order: the reason it is destroyed for, `Some("")` if
        // kept, `None` if its lifetime (cut by up to 5%) may or may not be over.
        let reason = if broken {
            Some("broken")
        } else if used_up {
            Some("max_uses")
        } else if lifetime.is_some_and(|limit| age >= limit) {
            Some("lifetime")
        } else if lifetime.is_some_and(|limit| age >= limit * 19 / 20) {
            None
        } else if closed {
            Some("closed")
        } else if obj.stale || s.size > s.max_size {
            Some("evicted")
        } else {
            Some("")
        };
        obj.idle_since = now;
        if broken {
            self.expect.broken += 1;
        } else if used_up {
            self.expect.max_uses += 1;
        }
        drop(object);
        let after = self.pool.metrics();
        let count = after.destroyed - before.metrics.destroyed;
        let grew = reasons(&before.metrics.destroyed_by, &after.destroyed_by);
        if let Some(reason) = reason {
            let expected: Vec<&str> = [reason].into_iter().filter(|r| !r.is_empty()).collect();
            prop_assert_eq!(grew, expected, "object {} returned at age {:?}", id, age);
        }
        if count == 0 {
            // Kept: to the longest waiter if anyone waits, else back to the idle list.
            let status = self.pool.status();
            let idle = self.idle_ids();
            if s.waiting > 0 {
                prop_assert_eq!(status.waiting, s.waiting - 1, "object {} not handed on", id);
                prop_assert!(!idle.contains(&id), "object {id} kept idle beside a waiter");
            } else {
                prop_assert!(idle.contains(&id), "object {id} returned but not idle");
            }
        }
        self.sync_queue()
    }

    /// `Pool::add` of an object made outside the pool, checked against the contract:
    /// refused (`Closed`, else `Full` when `size >= max_size`), handing the same object
    /// back and changing nothing; else counted as created and handed to the longest
    /// waiter, or pushed on the idle list.
    fn add_object(&mut self, before: &Before) -> Step {
        let s = before.status;
        let conn = self.manager.make_outside();
        let id = conn.id;
        let front = self.queue.front().copied();
        let result = self.pool.add(conn);
        let now = Instant::now();
        let status = self.pool.status();
        let created = self.pool.metrics().created - before.metrics.created;
        let refusal = if self.closed {
            Some("Closed")
        } else if s.size >= s.max_size {
            Some("Full")
        } else {
            None
        };
        let refused = match result {
            Ok(()) => None,
            Err(AddError::Full(conn)) => Some(("Full", conn)),
            Err(AddError::Closed(conn)) => Some(("Closed", conn)),
        };
        let idle = self.idle_ids();
        prop_assert_eq!(
            refused.as_ref().map(|(why, _)| *why),
            refusal,
            "add of object {} to {:?} (closed: {})",
            id,
            s,
            self.closed
        );
        if let Some((_, conn)) = refused {
            prop_assert_eq!(conn.id, id, "add refused, handing back another object");
            prop_assert_eq!(created, 0, "a refused add counted as created");
            prop_assert_eq!(status, s, "a refused add changed the status");
            prop_assert_eq!(&idle, &before.idle, "a refused add changed the idle list");
            return Ok(());
        }
        self.manager.backend().added.insert(id, now);
        prop_assert_eq!(created, 1, "an accepted add counted as created");
        prop_assert_eq!(status.size, s.size + 1, "size after an add to {:?}", s);
        prop_assert_eq!(status.creating, s.creating, "creating after an add");
        if let Some(key) = front {
            // To the longest waiter, not the idle list.
            prop_assert_eq!(status.waiting, s.waiting - 1, "add with {:?}: waiting", s);
            prop_assert_eq!(status.in_use, s.in_use + 1, "add with {:?}: in_use", s);
            prop_assert_eq!(&idle, &before.idle, "object {} idle beside a waiter", id);
            self.handed.insert(key, id);
        } else {
            let mut expected = before.idle.clone();
            expected.push(id);
            prop_assert_eq!(
                &idle,
                &expected,
                "object {} added to idle {:?}",
                id,
                before.idle
            );
            prop_assert_eq!(status.in_use, s.in_use, "add without a waiter: in_use");
        }
        self.sync_queue()?;
        // `sync_queue` took the front waiter as served.
        prop_assert!(front.is_none_or(|key| self.granted.contains(&key)));
        Ok(())
    }

    /// Polls a shutdown once; `true` if it finished.
    fn poll_shutdown(
        &mut self,
        shutdown: &mut Pin<Box<dyn Future<Output = ShutdownReport>>>,
        deadline: Instant,
        clean: bool,
    ) -> Result<bool, TestCaseError> {
        let poll = shutdown
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()));
        let late = Instant::now() >= deadline;
        match poll {
            Poll::Ready(report) => {
                prop_assert!(
                    report.is_clean() || late,
                    "shutdown gave up early: {report:?}"
                );
                prop_assert_eq!(report.still_out, self.pool.status().size, "still_out");
                Ok(true)
            }
            Poll::Pending => {
                prop_assert!(
                    !late && !clean,
                    "shutdown outlived its grace, or a clean pool"
                );
                Ok(false)
            }
        }
    }

    /// The ids of the idle objects, read through `retain` with a predicate that keeps all.
    fn idle_ids(&self) -> Vec<u64> {
        let mut ids = Vec::new();
        self.pool.retain(|conn, _| {
            ids.push(conn.id);
            true
        });
        ids
    }
}

impl Drop for Harness<'_> {
    fn drop(&mut self) {
        // The manager's handle on the pool would keep it alive.
        drop(self.manager.backend().pool.take());
    }
}
