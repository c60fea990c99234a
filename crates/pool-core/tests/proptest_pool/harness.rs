// The harness: the pool, what the test holds, and the model beside it.

use std::collections::HashSet;
use std::future::Future;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use pool_core::{Object, Pool, PoolConfig, PoolError, QueueMode, ShutdownReport, TimeoutKind};
use proptest::test_runner::TestCaseError;
use proptest::{prop_assert, prop_assert_eq};
use tokio::runtime::Runtime;
use tokio::time::Instant;

use crate::backoff_log::BackoffLog;
use crate::manager::FaultyManager;
use crate::model::{At, MMetrics, Model};
use crate::ops::{Op, Outcome, Seen, Setup};

type GetResult = Result<Object<FaultyManager>, PoolError<io::Error>>;

struct PendingGet {
    future: Pin<Box<dyn Future<Output = GetResult>>>,
    deadline: Option<Instant>,
    is_try: bool,
}

impl PendingGet {
    /// Polls once; `Err` if the poll panicked (the future is then done).
    fn poll(&mut self) -> Result<Poll<GetResult>, ()> {
        let future = &mut self.future;
        catch_unwind(AssertUnwindSafe(|| {
            future
                .as_mut()
                .poll(&mut Context::from_waker(Waker::noop()))
        }))
        .map_err(drop)
    }
}

type PendingShutdown = Pin<Box<dyn Future<Output = ShutdownReport>>>;

fn poll_shutdown(shutdown: &mut PendingShutdown) -> Option<(usize, usize)> {
    match shutdown
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(report) => Some((report.still_out, report.still_destroying)),
        Poll::Pending => None,
    }
}

pub(crate) struct Harness<'rt> {
    rt: &'rt Runtime,
    pool: Pool<FaultyManager>,
    manager: FaultyManager,
    log: BackoffLog,
    start: Instant,
    setup: Setup,
    held: Vec<Object<FaultyManager>>,
    pending: Vec<PendingGet>,
    shutdowns: Vec<PendingShutdown>,
    /// Ids given away with `Object::take`.
    taken: HashSet<u64>,
    /// Ids that were checked out when `evict_all` ran: none may ever be handed out again.
    evicted: HashSet<u64>,
    closed: bool,
    /// How far `size` may still exceed `max_size`: set by a resize below what is checked
    /// out, and never allowed to grow back until the next resize.
    shrink_allowance: usize,
    pub(crate) model: Model,
}

pub(crate) type Step = Result<(), TestCaseError>;

impl<'rt> Harness<'rt> {
    pub(crate) fn new(rt: &'rt Runtime, setup: &Setup, log: BackoffLog) -> Self {
        let manager = FaultyManager::default();
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
        Self {
            rt,
            pool: Pool::builder(manager.clone())
                .config(config)
                .build()
                .unwrap(),
            manager,
            log,
            start: Instant::now(),
            setup: setup.clone(),
            held: Vec::new(),
            pending: Vec::new(),
            shutdowns: Vec::new(),
            taken: HashSet::new(),
            evicted: HashSet::new(),
            closed: false,
            shrink_allowance: 0,
            model: Model::new(setup),
        }
    }

    /// Lets the runtime run what is ready (destroys, timers, maintenance, refills) without
    /// moving the paused clock: a yield keeps the runtime busy, so it never auto-advances.
    fn settle(&self) {
        self.rt.block_on(async {
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
        });
    }

    /// One step: the pool, then the model, then every check.
    pub(crate) fn step(&mut self, op: &Op) -> Step {
        let seen = self.apply(op)?;
        self.settle();
        self.model.pool.delays.extend(self.log.drain());
        let predicted = self.model.apply(op, self.setup.wait_timeout_ms);
        prop_assert_eq!(seen, predicted, "what {:?} did, vs the model", op);
        self.model.pool.settle();
        self.check()
    }

    fn apply(&mut self, op: &Op) -> Result<Vec<Seen>, TestCaseError> {
        let mut seen = Vec::new();
        match *op {
            Op::Get => {
                let pool = self.pool.clone();
                let deadline = self
                    .setup
                    .wait_timeout_ms
                    .map(|t| Instant::now() + Duration::from_millis(t));
                let future = Box::pin(async move { pool.get().await });
                seen.push(self.start(future, deadline, false)?);
            }
            Op::GetTimeout(ms) => {
                let pool = self.pool.clone();
                let timeout = Duration::from_millis(ms);
                let deadline = Some(Instant::now() + timeout);
                let future = Box::pin(async move { pool.get_timeout(timeout).await });
                seen.push(self.start(future, deadline, false)?);
            }
            Op::TryGet => {
                let before = self.pool.status();
                let destroyed = self.pool.metrics().destroyed;
                let pool = self.pool.clone();
                let future = Box::pin(async move { pool.try_get().await });
                let outcome = self.start(future, None, true)?;
                if outcome == Seen::Get(Outcome::Pending) {
                    // `try_get` never queues: it can only be caught inside a hanging hook.
                    let waiting = self.pool.status().waiting;
                    prop_assert!(waiting <= before.waiting, "try_get queued");
                }
                if outcome == Seen::Get(Outcome::Exhausted) {
                    // A free slot does not help while creates are paused (backoff) or
                    // `max_concurrent_creates` are in flight, and an idle object destroyed
                    // in this very call (failed its check or recycle, expired) was no use
                    // either.
                    let model = &self.model.pool;
                    let slot_usable = before.size < before.max_size
                        && before.creating < model.max_concurrent_creates
                        && model.backoff_allows();
                    let idle_failed = self.pool.metrics().destroyed > destroyed;
                    prop_assert!(
                        (before.idle == 0 || idle_failed) && !slot_usable,
                        "try_get said Exhausted with an idle object or a free slot: {before:?}"
                    );
                }
                seen.push(outcome);
            }
            Op::DropObject(i) => {
                if !self.held.is_empty() {
                    let i = i % self.held.len();
                    drop(self.held.remove(i));
                }
            }
            Op::TakeObject(i) => {
                if !self.held.is_empty() {
                    let i = i % self.held.len();
                    let conn = Object::take(self.held.remove(i));
                    self.taken.insert(conn.id);
                }
            }
            Op::MarkBroken(i) => {
                if !self.held.is_empty() {
                    let i = i % self.held.len();
                    self.held[i].broken = true;
                }
            }
            Op::CancelPending(i) => {
                if !self.pending.is_empty() {
                    let i = i % self.pending.len();
                    drop(self.pending.remove(i));
                }
            }
            Op::PollPending => {
                self.poll_pending(&mut seen)?;
                let mut still = Vec::new();
                for mut shutdown in std::mem::take(&mut self.shutdowns) {
                    let report = poll_shutdown(&mut shutdown);
                    if report.is_none() {
                        still.push(shutdown);
                    }
                    seen.push(Seen::Shutdown(report));
                }
                self.shutdowns = still;
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
                let status = self.pool.status();
                self.shrink_allowance = status.size.saturating_sub(status.max_size);
            }
            Op::Retain => {
                self.pool.retain(|conn, _| conn.id % 2 == 0);
                let idle = self.idle_ids();
                prop_assert!(idle.iter().all(|id| id % 2 == 0), "retain kept {idle:?}");
            }
            Op::EvictAll => {
                self.pool.evict_all();
                self.evicted.extend(self.held.iter().map(|o| o.id));
                prop_assert_eq!(self.pool.status().idle, 0, "evict_all left idle objects");
            }
            Op::Close => {
                self.pool.close();
                self.closed = true;
                // Every queued get (or one holding an uncollected grant) is released with
                // `Closed`; only a get inside a hanging hook may stay pending.
                let waiting: Vec<bool> = self
                    .model
                    .pending
                    .iter()
                    .map(|get| matches!(get.at, At::Find { .. }))
                    .collect();
                // `check` keeps the model's pending gets in step with ours after every step.
                self.poll_pending(&mut seen)?;
                for (n, (outcome, was_waiting)) in seen.iter().zip(waiting).enumerate() {
                    if was_waiting {
                        prop_assert_eq!(
                            outcome,
                            &Seen::Get(Outcome::Closed),
                            "queued get #{} was not released with Closed",
                            n
                        );
                    }
                }
            }
            Op::Shutdown(grace) => {
                let pool = self.pool.clone();
                let grace = Duration::from_millis(grace);
                let mut shutdown: PendingShutdown =
                    Box::pin(async move { pool.shutdown(grace).await });
                self.closed = true;
                let report = poll_shutdown(&mut shutdown);
                if report.is_none() {
                    self.shutdowns.push(shutdown);
                }
                seen.push(Seen::Shutdown(report));
            }
        }
        Ok(seen)
    }

    /// Polls a new get once; keeps it if it is not done.
    fn start(
        &mut self,
        future: Pin<Box<dyn Future<Output = GetResult>>>,
        deadline: Option<Instant>,
        is_try: bool,
    ) -> Result<Seen, TestCaseError> {
        let mut get = PendingGet {
            future,
            deadline,
            is_try,
        };
        match get.poll() {
            Ok(Poll::Ready(result)) => Ok(Seen::Get(self.collect(result, deadline, is_try)?)),
            Ok(Poll::Pending) => {
                prop_assert!(!self.closed, "a get on a closed pool did not fail at once");
                self.pending.push(get);
                Ok(Seen::Get(Outcome::Pending))
            }
            Err(()) => Ok(Seen::Get(Outcome::Panicked)),
        }
    }

    fn poll_pending(&mut self, seen: &mut Vec<Seen>) -> Step {
        let now = Instant::now();
        let mut still = Vec::new();
        for mut get in std::mem::take(&mut self.pending) {
            match get.poll() {
                Ok(Poll::Ready(result)) => {
                    let outcome = self.collect(result, get.deadline, get.is_try)?;
                    seen.push(Seen::Get(outcome));
                }
                Ok(Poll::Pending) => {
                    // Timers fire on millisecond ticks; one tick of slack.
                    if let Some(deadline) = get.deadline {
                        prop_assert!(
                            now < deadline + Duration::from_millis(1),
                            "a get outlived its deadline by {:?}",
                            now - deadline
                        );
                    }
                    seen.push(Seen::Get(Outcome::Pending));
                    still.push(get);
                }
                Err(()) => seen.push(Seen::Get(Outcome::Panicked)),
            }
        }
        self.pending = still;
        Ok(())
    }

    /// Checks a finished get's outcome and keeps the object.
    fn collect(
        &mut self,
        result: GetResult,
        deadline: Option<Instant>,
        is_try: bool,
    ) -> Result<Outcome, TestCaseError> {
        let outcome = match result {
            Ok(object) => {
                let id = object.id;
                prop_assert!(!self.closed, "object {id} handed out after close");
                prop_assert!(!object.broken, "broken object {id} handed out again");
                prop_assert!(
                    !self.evicted.contains(&id),
                    "evicted object {id} handed out"
                );
                self.held.push(object);
                Outcome::Got(id)
            }
            Err(PoolError::Closed) => {
                prop_assert!(self.closed, "Closed from an open pool");
                Outcome::Closed
            }
            Err(PoolError::Exhausted) => {
                prop_assert!(is_try, "Exhausted from a waiting get");
                Outcome::Exhausted
            }
            // Without a deadline a failed create is returned at once; with one it is retried.
            Err(PoolError::Backend(_)) => {
                prop_assert!(
                    deadline.is_none(),
                    "Backend error from a get with a deadline"
                );
                Outcome::Backend
            }
            Err(PoolError::Timeout { kind, last_error }) => {
                match deadline {
                    Some(deadline) => prop_assert!(
                        Instant::now() >= deadline,
                        "timed out {:?} early",
                        deadline - Instant::now()
                    ),
                    // Without a deadline, only `create_timeout` ends a get in a timeout.
                    None => prop_assert!(
                        kind == TimeoutKind::Create && self.setup.create_timeout_ms.is_some(),
                        "Timeout {kind:?} from a get without a deadline"
                    ),
                }
                Outcome::Timeout {
                    kind,
                    cause: last_error.is_some(),
                }
            }
        };
        Ok(outcome)
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

    /// The invariants and the model's predictions, checked after every step.
    pub(crate) fn check(&mut self) -> Step {
        self.settle();
        let s = self.pool.status();
        let m = self.pool.metrics();
        let model = &self.model.pool;

        // Occupancy adds up, and stays within max_size except right after a shrink.
        prop_assert_eq!(s.size, s.idle + s.in_use + s.creating, "{:?}", s);
        let over = s.size.saturating_sub(s.max_size);
        prop_assert!(
            over <= self.shrink_allowance,
            "size above max_size without a shrink in progress: {s:?}, allowance {}",
            self.shrink_allowance
        );
        self.shrink_allowance = over;
        prop_assert!(
            over == 0 || s.idle == 0,
            "surplus kept idle after a shrink: {s:?}"
        );

        // Exact accounting. A create in flight holds a slot in `size` but is not in
        // `created` yet, hence `size - creating` (equal to `size` when nothing is
        // being created); destroys are counted when the pool starts them.
        prop_assert_eq!(
            m.created,
            m.destroyed + m.taken + (s.size - s.creating) as u64,
            "created != destroyed + taken + (size - creating): {:?} {:?}",
            m,
            s
        );
        prop_assert_eq!(m.taken, self.taken.len() as u64);
        {
            let backend = self.manager.backend();
            prop_assert_eq!(m.created, backend.last_id, "metrics.created vs creates");
            // Every destroy the pool started has run by now (settle yielded to it).
            prop_assert_eq!(m.destroyed, backend.destroyed.len() as u64);
        }

        // Nobody waits while an object or a slot is free, except that a free slot may stay
        // unused while `max_concurrent_creates` creates are in flight, while the pool backs
        // off creates after a failure (the model knows exactly when), or while `min_idle`
        // refills in flight cover every waiter (creates never outnumber demand).
        if s.waiting > 0 {
            prop_assert_eq!(s.idle, 0, "a waiter waits beside an idle object: {:?}", s);
            prop_assert!(
                s.size >= s.max_size
                    || s.creating >= model.max_concurrent_creates
                    || !model.backoff_allows()
                    || model.refilling >= s.waiting,
                "a waiter waits beside a free slot: {s:?}"
            );
        }

        // Every object out is held here or sits in a pending get (an uncollected grant,
        // a hanging hook), every create in flight that is not a `min_idle` refill belongs
        // to a pending get, and each pending get is in at most one of these states.
        prop_assert!(
            self.held.len() <= s.in_use,
            "held {} > {:?}",
            self.held.len(),
            s
        );
        prop_assert!(
            s.waiting + (s.in_use - self.held.len()) + (s.creating - model.refilling)
                <= self.pending.len(),
            "{s:?} with {} held, {} refilling and {} pending gets",
            self.held.len(),
            model.refilling,
            self.pending.len()
        );

        // No object in two places: held, idle, taken, destroyed are disjoint; none twice.
        let idle = self.idle_ids();
        prop_assert_eq!(idle.len(), s.idle);
        {
            let backend = self.manager.backend();
            let mut seen = HashSet::new();
            let out = self.held.iter().map(|o| o.id).chain(idle.iter().copied());
            for id in out.chain(self.taken.iter().copied()) {
                prop_assert!(seen.insert(id), "object {id} is in two places");
            }
            for &id in &backend.destroyed {
                prop_assert!(
                    seen.insert(id),
                    "object {id} destroyed twice, or while in use"
                );
            }
        }

        // The model agrees on everything it can predict.
        prop_assert!(
            model.trouble.is_empty() && model.delays.is_empty(),
            "the model lost track: {:?}; backoff delays logged but not predicted: {:?}",
            model.trouble,
            model.delays
        );
        let elapsed = Instant::now() - self.start;
        prop_assert_eq!(elapsed, Duration::from_millis(model.now), "clock vs model");
        prop_assert_eq!(
            (s.max_size, s.size, s.idle, s.in_use, s.creating, s.waiting),
            (
                model.max_size,
                model.size,
                model.idle.len(),
                model.in_use(),
                model.creating,
                model.waiters.len()
            ),
            "status (max_size, size, idle, in_use, creating, waiting) vs the model"
        );
        let predicted = &model.metrics;
        let actual = MMetrics {
            created: m.created,
            taken: m.taken,
            recycled: m.recycled,
            recycle_failures: m.recycle_failures,
            health_check_failures: m.health_check_failures,
            create_failures: m.create_failures,
            timeouts: m.timeouts,
            waits: m.waits,
            destroyed_by: m.destroyed_by,
        };
        prop_assert_eq!(&actual, predicted, "metrics vs the model");
        let model_idle: Vec<u64> = model.idle.iter().map(|o| o.id).collect();
        prop_assert_eq!(idle, model_idle, "idle ids vs the model");
        let held: Vec<u64> = self.held.iter().map(|o| o.id).collect();
        let model_held: Vec<u64> = self.model.held.iter().map(|o| o.id).collect();
        prop_assert_eq!(held, model_held, "held ids vs the model");
        prop_assert_eq!(self.pending.len(), self.model.pending.len());
        prop_assert_eq!(self.shutdowns.len(), self.model.shutdowns.len());
        Ok(())
    }

    /// Drops everything, shuts down, and checks every object was destroyed once or taken.
    pub(crate) fn finish(mut self) -> Step {
        self.held.clear();
        self.pending.clear();
        self.shutdowns.clear();
        // Long enough for a refill stuck in a hanging create to be cut off (30 s at most);
        // the paused clock jumps there at once.
        let report = self
            .rt
            .block_on(self.pool.shutdown(Duration::from_secs(60)));
        prop_assert!(report.is_clean(), "unclean shutdown: {report:?}");
        self.settle();
        let s = self.pool.status();
        prop_assert_eq!(s.size, 0, "slots left after shutdown: {:?}", s);
        let backend = self.manager.backend();
        let mut destroyed = HashSet::new();
        for &id in &backend.destroyed {
            prop_assert!(destroyed.insert(id), "object {id} destroyed twice");
            prop_assert!(!self.taken.contains(&id), "taken object {id} destroyed");
        }
        for id in 1..=backend.last_id {
            prop_assert!(
                destroyed.contains(&id) || self.taken.contains(&id),
                "object {id} was neither destroyed nor taken"
            );
        }
        Ok(())
    }
}
