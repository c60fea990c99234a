// The reference model.

mod get;
mod maintenance;
mod state;

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use pool_core::{DestroyedBy, TimeoutKind};

use crate::manager::{Hook, Script};
use crate::ops::{Op, Outcome, Seen, Setup};

/// An object as the model knows it. Times are milliseconds since the case began.
#[derive(Debug, Clone)]
pub(crate) struct MObj {
    pub(crate) id: u64,
    created: u64,
    last_used: u64,
    uses: u64,
    epoch: u64,
    broken: bool,
}

#[derive(Debug)]
enum MGrant {
    Object(MObj),
    CreateSlot,
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MBackoff {
    Open,
    Waiting,
    ProbeReady,
    Probing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reason {
    Broken,
    RecycleFailed,
    HealthCheckFailed,
    IdleTimeout,
    Lifetime,
    MaxUses,
    Evicted,
    Closed,
    RetainedOut,
    Abandoned,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Wait,
    Try,
}

/// Where a pending `get` stands, mirroring the engine's `get` / `acquire` loops: `acquire`
/// is the slow path entered holding a create slot, under one outer deadline.
#[derive(Debug)]
pub(crate) enum At {
    Start,
    /// In a `FindOrQueue`, queued or holding an uncollected grant.
    Find {
        acquire: bool,
        key: u64,
    },
    /// In a hanging create (always in `acquire`), cut off at `timeout_at` if set.
    Create {
        timeout_at: Option<u64>,
    },
    /// In a hanging health check or recycle of `obj`, cut off at `bound` if set.
    Hook {
        acquire: bool,
        obj: MObj,
        hook: Hook,
        bound: Option<u64>,
    },
    Done,
}

#[derive(Debug)]
pub(crate) struct MGet {
    mode: Mode,
    deadline: Option<u64>,
    phase: TimeoutKind,
    /// The caller's own latest failure (`Progress::last_error`) is set.
    last_error: bool,
    pub(crate) at: At,
}

enum Found {
    Pending(u64),
    Err(Outcome),
    Idle(MObj),
    Slot,
}

enum Ri {
    Begin,
    Resume(Hook, Option<u64>),
}

enum RiOut {
    Object(MObj),
    Rejected { kept_slot: bool },
    DeadlinePassed,
    Pending(Hook, Option<u64>, MObj),
    Panicked,
}

enum Created {
    Object(MObj),
    Closed,
    Failed,
    TimedOut,
    Panicked,
    Hanging(Option<u64>),
}

enum Main {
    FindNew,
    FindWait(u64),
    Ready(MObj, Ri),
}

enum Acq {
    Create(Option<Option<u64>>),
    FindNew,
    FindWait(u64),
    Ready(MObj, Ri),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MaintState {
    /// Asleep until signalled or until the tick (if any).
    Waiting(Option<u64>),
    Queued,
    Running,
}

#[derive(Debug, Clone, Copy)]
enum Task {
    Maintenance,
    Refill { epoch: u64 },
    RefillTimedOut,
    BackoffElapsed,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct MMetrics {
    pub(crate) created: u64,
    pub(crate) taken: u64,
    pub(crate) recycled: u64,
    pub(crate) recycle_failures: u64,
    pub(crate) health_check_failures: u64,
    pub(crate) create_failures: u64,
    pub(crate) timeouts: u64,
    pub(crate) waits: u64,
    pub(crate) destroyed_by: DestroyedBy,
}

/// The model's pool: every transition the engine makes under its lock, and its background
/// tasks, as plain code.
pub(crate) struct MPool {
    pub(crate) max_concurrent_creates: usize,
    min_idle: usize,
    fifo: bool,
    create_timeout: Option<u64>,
    recycle_timeout: Option<u64>,
    health_check_after: Option<u64>,
    idle_timeout: Option<u64>,
    max_lifetime: Option<u64>,
    max_uses: Option<u64>,

    pub(crate) now: u64,
    pub(crate) max_size: usize,
    pub(crate) size: usize,
    pub(crate) creating: usize,
    pub(crate) refilling: usize,
    closed: bool,
    epoch: u64,
    pub(crate) idle: VecDeque<MObj>,
    /// Keys of the queued waiters, longest waiting first.
    pub(crate) waiters: VecDeque<u64>,
    /// Grants written to waiters that have not collected them.
    grants: HashMap<u64, MGrant>,
    next_key: u64,
    next_id: u64,
    backoff: MBackoff,
    /// Backoff timers: (fires at, registration order).
    backoff_timers: Vec<(u64, u64)>,
    /// Refills stuck in a hanging create: (cut off at, registration order).
    hung_refills: Vec<(u64, u64)>,
    maintenance_alive: bool,
    maintenance: MaintState,
    maintenance_seq: u64,
    maintenance_permit: bool,
    queue: VecDeque<Task>,
    seq: u64,
    pub(crate) metrics: MMetrics,
    last_create_error: bool,
    destroying: usize,
    script: Script,
    /// Backoff delays the engine logged, not yet used by the model.
    pub(crate) delays: VecDeque<Duration>,
    /// An object just handed out by the poll being simulated.
    lent: Option<MObj>,
    /// Where the model could not follow the engine.
    pub(crate) trouble: Vec<String>,
}

/// The model of the whole case: the pool plus what the test holds, in the same order as
/// the test's own lists.
pub(crate) struct Model {
    pub(crate) pool: MPool,
    pub(crate) pending: Vec<MGet>,
    pub(crate) held: Vec<MObj>,
    /// Deadlines of the pending shutdowns.
    pub(crate) shutdowns: Vec<u64>,
}

impl Model {
    pub(crate) fn new(setup: &Setup) -> Self {
        Self {
            pool: MPool::new(setup),
            pending: Vec::new(),
            held: Vec::new(),
            shutdowns: Vec::new(),
        }
    }

    fn poll(&mut self, get: &mut MGet) -> Outcome {
        let outcome = self.pool.poll_get(get);
        if let Some(obj) = self.pool.lent.take() {
            self.held.push(obj);
        }
        outcome
    }

    fn start(&mut self, mode: Mode, timeout: Option<u64>) -> Seen {
        let mut get = MGet {
            mode,
            deadline: timeout.map(|ms| self.pool.now + ms),
            phase: TimeoutKind::Wait,
            last_error: false,
            at: At::Start,
        };
        let outcome = self.poll(&mut get);
        if outcome == Outcome::Pending {
            self.pending.push(get);
        }
        Seen::Get(outcome)
    }

    fn poll_pending_gets(&mut self, seen: &mut Vec<Seen>) {
        for mut get in std::mem::take(&mut self.pending) {
            let outcome = self.poll(&mut get);
            if outcome == Outcome::Pending {
                self.pending.push(get);
            }
            seen.push(Seen::Get(outcome));
        }
    }

    fn poll_shutdown(&mut self, deadline: u64) -> Option<(usize, usize)> {
        let pool = &self.pool;
        let clean = pool.size == 0 && pool.destroying == 0;
        (clean || pool.now >= deadline).then_some((pool.size, pool.destroying))
    }

    /// Applies `op` and predicts what the test sees of it.
    pub(crate) fn apply(&mut self, op: &Op, wait_timeout: Option<u64>) -> Vec<Seen> {
        let mut seen = Vec::new();
        match *op {
            Op::Get => seen.push(self.start(Mode::Wait, wait_timeout)),
            Op::GetTimeout(ms) => seen.push(self.start(Mode::Wait, Some(ms))),
            Op::TryGet => seen.push(self.start(Mode::Try, None)),
            Op::DropObject(i) => {
                if !self.held.is_empty() {
                    let obj = self.held.remove(i % self.held.len());
                    self.pool.return_object(obj);
                }
            }
            Op::TakeObject(i) => {
                if !self.held.is_empty() {
                    self.held.remove(i % self.held.len());
                    self.pool.take_object();
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
                    let mut get = self.pending.remove(i % self.pending.len());
                    self.pool.drop_get(&mut get);
                }
            }
            Op::PollPending => {
                self.poll_pending_gets(&mut seen);
                for deadline in std::mem::take(&mut self.shutdowns) {
                    let report = self.poll_shutdown(deadline);
                    if report.is_none() {
                        self.shutdowns.push(deadline);
                    }
                    seen.push(Seen::Shutdown(report));
                }
            }
            Op::AdvanceClock(ms) => self.pool.now += ms,
            Op::Inject(hook, fault) => self.pool.script.next[hook as usize] = Some(fault),
            Op::BackendDown => self.pool.script.down = true,
            Op::BackendUp => self.pool.script.down = false,
            Op::Resize(n) => self.pool.resize(n),
            Op::Retain => self.pool.retain_even(),
            Op::EvictAll => self.pool.evict_all(),
            Op::Close => {
                self.pool.close();
                self.poll_pending_gets(&mut seen);
            }
            Op::Shutdown(grace) => {
                self.pool.close();
                let deadline = self.pool.now + grace;
                let report = self.poll_shutdown(deadline);
                if report.is_none() {
                    self.shutdowns.push(deadline);
                }
                seen.push(Seen::Shutdown(report));
            }
        }
        seen
    }
}
