// Operations and the case setup.

use pool_core::TimeoutKind;
use proptest::prelude::*;

use crate::manager::{Fault, Hook};

/// One step of a case. Indices are taken modulo the length of the list they pick from
/// (a step on an empty list does nothing), so every sequence is valid and shrinks well.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    /// Starts a `get` (deadline: the pool's `wait_timeout`) and polls it once.
    Get,
    /// `try_get`, ready on its first poll unless a hook it runs hangs.
    TryGet,
    /// Starts a `get_timeout(ms)` and polls it once.
    GetTimeout(u64),
    DropObject(usize),
    TakeObject(usize),
    MarkBroken(usize),
    /// Drops a pending `get` in whatever state it is: queued, granted an object or a
    /// create slot it has not collected yet, or inside a hanging hook.
    CancelPending(usize),
    /// Polls every pending `get` once, oldest first, then every pending `shutdown`.
    PollPending,
    AdvanceClock(u64),
    /// The next call of the hook fails, panics or hangs.
    Inject(Hook, Fault),
    /// Every create fails from now on (scripted faults still come first).
    BackendDown,
    BackendUp,
    Resize(usize),
    /// Keeps only the idle objects with an even id.
    Retain,
    EvictAll,
    Close,
    /// Starts `shutdown(ms)` and polls it once.
    Shutdown(u64),
    /// `Pool::add` of an object the test made itself (not by the manager).
    Add,
}

#[derive(Debug, Clone)]
pub(crate) struct Setup {
    pub(crate) max_size: usize,
    pub(crate) max_concurrent_creates: usize,
    pub(crate) min_idle: usize,
    pub(crate) fifo: bool,
    pub(crate) wait_timeout_ms: Option<u64>,
    pub(crate) create_timeout_ms: Option<u64>,
    pub(crate) recycle_timeout_ms: Option<u64>,
    pub(crate) health_check_after_ms: Option<u64>,
    pub(crate) idle_timeout_ms: Option<u64>,
    /// Under 20 ms, so the 0-5% jitter stays under a millisecond (see the docs of `main.rs`).
    pub(crate) max_lifetime_ms: Option<u64>,
    pub(crate) max_uses: Option<usize>,
}

impl Setup {
    /// A pool with only `max_size` and `wait_timeout` set.
    pub(crate) fn plain(max_size: usize, wait_timeout_ms: Option<u64>) -> Self {
        Self {
            max_size,
            max_concurrent_creates: 4,
            min_idle: 0,
            fifo: false,
            wait_timeout_ms,
            create_timeout_ms: None,
            recycle_timeout_ms: None,
            health_check_after_ms: None,
            idle_timeout_ms: None,
            max_lifetime_ms: None,
            max_uses: None,
        }
    }
}

pub(crate) fn setup_strategy() -> impl Strategy<Value = Setup> {
    let sometimes = |range: std::ops::RangeInclusive<u64>| prop::option::weighted(0.3, range);
    (
        (
            1..=4usize,
            prop_oneof![3 => Just(4usize), 1 => 1..=3usize],
            prop_oneof![3 => Just(0usize), 1 => 1..=2usize],
            any::<bool>(),
        ),
        (
            prop::option::of(1..=50u64),
            sometimes(1..=30),
            sometimes(1..=30),
            prop::option::weighted(0.4, 0..=20u64),
        ),
        (
            sometimes(2..=30),
            sometimes(5..=19),
            prop::option::weighted(0.15, 1..=3usize),
        ),
    )
        .prop_map(
            |(
                (max_size, mcc, min_idle, fifo),
                (wait, create, recycle, hca),
                (idle, life, uses),
            )| {
                Setup {
                    max_size,
                    max_concurrent_creates: mcc,
                    min_idle: min_idle.min(max_size),
                    fifo,
                    wait_timeout_ms: wait,
                    create_timeout_ms: create,
                    recycle_timeout_ms: recycle,
                    health_check_after_ms: hca,
                    idle_timeout_ms: idle,
                    max_lifetime_ms: life,
                    max_uses: uses,
                }
            },
        )
}

pub(crate) fn op_strategy() -> impl Strategy<Value = Op> {
    use Fault::{Fail, Hang, Panic};
    use Hook::{Create, HealthCheck, Recycle};
    prop_oneof![
        12 => Just(Op::Get),
        5 => Just(Op::TryGet),
        4 => (1..=50u64).prop_map(Op::GetTimeout),
        10 => (0..8usize).prop_map(Op::DropObject),
        3 => (0..8usize).prop_map(Op::TakeObject),
        3 => (0..8usize).prop_map(Op::MarkBroken),
        5 => (0..8usize).prop_map(Op::CancelPending),
        10 => Just(Op::PollPending),
        6 => (1..=10u64).prop_map(Op::AdvanceClock),
        2 => (1..=100u64).prop_map(Op::AdvanceClock),
        4 => Just(Op::Inject(Create, Fail)),
        4 => Just(Op::Inject(Recycle, Fail)),
        3 => Just(Op::Inject(HealthCheck, Fail)),
        1 => Just(Op::Inject(Create, Panic)),
        1 => Just(Op::Inject(Recycle, Panic)),
        1 => Just(Op::Inject(HealthCheck, Panic)),
        2 => Just(Op::Inject(Create, Hang)),
        2 => Just(Op::Inject(Recycle, Hang)),
        1 => Just(Op::Inject(HealthCheck, Hang)),
        1 => Just(Op::BackendDown),
        2 => Just(Op::BackendUp),
        4 => (1..=6usize).prop_map(Op::Resize),
        2 => Just(Op::Retain),
        2 => Just(Op::EvictAll),
        1 => Just(Op::Close),
        1 => (0..=50u64).prop_map(Op::Shutdown),
        4 => Just(Op::Add),
    ]
}

/// What one poll of a `get` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    Pending,
    Got(u64),
    Closed,
    Exhausted,
    Backend,
    Timeout {
        kind: TimeoutKind,
        /// Whether the timeout names a cause (`last_error`).
        cause: bool,
    },
    Panicked,
}
