//! What a runner and the task reading its worker's stdout share: the one outstanding
//! request, why the worker can no longer be used, and how it ended.

use std::collections::HashMap;
use std::future::poll_fn;
use std::os::fd::OwnedFd;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use tokio::sync::{Notify, oneshot, watch};
use tokio::time::Instant;

use super::Fate;
use crate::protocol::Protocol;
use crate::worker::error::RunnerError;

/// The one request a singleplex runner has outstanding. Its outcome is left in
/// [`LinkState::outcome`] and its caller woken: one slot per runner, reused by every call,
/// where a channel per call would cost an allocation and its own synchronisation.
pub(crate) struct Waiter {
    /// The id its response must carry (`None`: the protocol has no ids).
    pub(crate) id: Option<u64>,
    /// When the request times out (`request_timeout` after it was sent).
    pub(crate) deadline: Option<Instant>,
    /// Its number among the worker's requests (0 for a greeting): a response the reader
    /// took off the pipe before this request was registered cannot answer it.
    pub(crate) sequence: u64,
    /// The caller's, once it waited for the outcome.
    pub(crate) waker: Option<Waker>,
}

impl Drop for Waiter {
    /// A request dropped unsettled (the reader stopped half-way, a panic in the protocol's
    /// code) wakes its caller, who then finds no outcome and no request: the call fails
    /// instead of waiting for ever.
    fn drop(&mut self) {
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }
}

impl Waiter {
    /// A request that nobody waits on yet.
    pub(crate) fn new(id: Option<u64>, deadline: Option<Instant>, sequence: u64) -> Self {
        Self {
            id,
            deadline,
            sequence,
            waker: None,
        }
    }
}

/// Where a multiplexed request's response is delivered.
pub(crate) type Reply<P> = oneshot::Sender<Result<<P as Protocol>::Response, RunnerError>>;

/// The state behind the lock.
pub(crate) struct LinkState<P: Protocol> {
    /// The one request outstanding on a singleplex runner.
    pub(crate) waiter: Option<Waiter>,
    /// How the singleplex request last outstanding ended, until its caller takes it.
    pub(crate) outcome: Option<Result<P::Response, RunnerError>>,
    /// The requests in flight on a multiplexed runner, by the id their response carries.
    pub(crate) in_flight: HashMap<u64, Reply<P>>,
    /// Multiplexed requests whose callers gave up, by id, with when the worker is killed
    /// if it has not answered by then (the answer, when it comes, is dropped).
    pub(crate) abandoned: HashMap<u64, Option<Instant>>,
    /// Responses are matched to `in_flight` by id (a [`MuxRunner`](super::MuxRunner)).
    pub(crate) multiplexed: bool,
    /// The worker can no longer be used (it broke the protocol, wrote output nobody asked
    /// for, exited, or was killed): no request is sent to it again.
    pub(crate) faulted: bool,
    /// Why, until someone reports it (a call, a recycle); later askers get `Poisoned`.
    pub(crate) fault: Option<RunnerError>,
    /// What the first fault says of the worker's end (a worker that broke the protocol
    /// and then died of the closed pipe is counted as faulty, not as exited).
    pub(crate) first_fault: Option<Fate>,
    /// A request was sent (or a greeting awaited): a death from now on is not a failed
    /// start.
    pub(crate) asked: bool,
    /// A response was delivered: the worker has answered at least once.
    pub(crate) answered: bool,
    /// Set when the pool killed the worker, with why (for the error that reports its end).
    pub(crate) killed_by_pool: Option<String>,
    /// When the worker's exit was seen.
    pub(crate) exited_at: Option<Instant>,
    /// A second handle on the worker's stdout, only to ask whether it holds bytes the
    /// reader has not read yet; closed when the reader stops, so that a worker writing to
    /// a pipe nobody reads any more gets EPIPE rather than blocking.
    pub(crate) stdout_probe: Option<OwnedFd>,
}

impl<P: Protocol> LinkState<P> {
    /// Registers the singleplex request `waiter`, the one outstanding from now on.
    pub(crate) fn register(&mut self, waiter: Waiter) {
        self.outcome = None;
        self.waiter = Some(waiter);
    }

    /// Ends the singleplex request `waiter` (taken from `self.waiter`) with `outcome`;
    /// returns its caller's waker, to wake once the lock is released.
    #[must_use = "the caller waits until woken"]
    pub(crate) fn settle(
        &mut self,
        mut waiter: Waiter,
        outcome: Result<P::Response, RunnerError>,
    ) -> Option<Waker> {
        self.outcome = Some(outcome);
        waiter.waker.take()
    }

    /// When the watchdog must act next: the singleplex request's deadline, or the earliest
    /// time a multiplexed worker must have answered a request given up on.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        match &self.waiter {
            Some(waiter) => waiter.deadline,
            None => self.abandoned.values().flatten().min().copied(),
        }
    }
}

/// Shared by a [`Runner`](crate::Runner) and its reader task.
pub(crate) struct Link<P: Protocol> {
    state: Mutex<LinkState<P>>,
    /// The sequence number of the latest request registered; the reader reads it right
    /// after each read to tag what it read (see `Waiter::sequence`).
    pub(crate) registered: AtomicU64,
    /// A call waits for the reader to catch up (see `Runner::catch_up`), woken through
    /// `routed` after each pass of the reader.
    pub(crate) catching_up: AtomicBool,
    pub(crate) routed: Notify,
    /// Set just before the exit status is published, for the reader to read with no lock.
    exit_published: AtomicBool,
    /// The exit status, once the worker exited and was reaped.
    exit: watch::Sender<Option<ExitStatus>>,
}

impl<P: Protocol> Link<P> {
    pub(crate) fn new() -> Self {
        Self {
            state: Mutex::new(LinkState {
                waiter: None,
                outcome: None,
                in_flight: HashMap::new(),
                abandoned: HashMap::new(),
                multiplexed: false,
                faulted: false,
                fault: None,
                first_fault: None,
                asked: false,
                answered: false,
                killed_by_pool: None,
                exited_at: None,
                stdout_probe: None,
            }),
            exit: watch::Sender::new(None),
            registered: AtomicU64::new(0),
            catching_up: AtomicBool::new(false),
            routed: Notify::new(),
            exit_published: AtomicBool::new(false),
        }
    }

    /// The state; no user code and no `.await` runs under this lock.
    pub(crate) fn lock(&self) -> MutexGuard<'_, LinkState<P>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Marks the worker unusable for `error`: the waiting caller gets it, else the next
    /// one to ask does. The first fault wins; later ones say nothing new.
    pub(crate) fn fault(&self, error: RunnerError) {
        let mut state = self.lock();
        let first = !state.faulted;
        state.faulted = true;
        if first {
            state.first_fault = Some(match error {
                RunnerError::Exited { .. } | RunnerError::Startup { .. } => Fate::Exited,
                RunnerError::Killed { .. } | RunnerError::Timeout { .. } => Fate::Killed,
                _ => Fate::Faulted,
            });
        }
        // Every request in flight on a multiplexed worker fails with it.
        for (_, reply) in state.in_flight.drain() {
            let _ = reply.send(Err(error.duplicate()));
        }
        state.abandoned.clear();
        let caller = match state.waiter.take() {
            Some(waiter) => state.settle(waiter, Err(error)),
            None => {
                if first {
                    state.fault = Some(error);
                }
                None
            }
        };
        drop(state);
        if let Some(caller) = caller {
            caller.wake();
        }
    }

    /// Why a runner that is no longer usable refuses: the fault not yet reported, else its
    /// exit (seen a moment ago; the reader is still collecting its last words), else
    /// `Poisoned`.
    pub(crate) fn refusal(&self, state: &mut LinkState<P>) -> RunnerError {
        if let Some(fault) = state.fault.take() {
            return fault;
        }
        match self.exit_status() {
            Some(status) if !state.faulted => RunnerError::Exited {
                status,
                stderr: String::new(),
                output: String::new(),
            },
            _ => RunnerError::Poisoned,
        }
    }

    /// The outcome of the singleplex request registered last, once it has one. A request
    /// dropped unsettled (the reader stopped half-way) ends with the fault that stopped
    /// the reader, if it left one, else `None`.
    pub(crate) fn poll_outcome(
        &self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<P::Response, RunnerError>>> {
        let mut state = self.lock();
        if let Some(outcome) = state.outcome.take() {
            return Poll::Ready(Some(outcome));
        }
        let Some(waiter) = &mut state.waiter else {
            return Poll::Ready(state.fault.take().map(Err));
        };
        match &waiter.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => waiter.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Waits for [`poll_outcome`](Link::poll_outcome).
    pub(crate) async fn outcome(&self) -> Option<Result<P::Response, RunnerError>> {
        poll_fn(|cx| self.poll_outcome(cx)).await
    }

    pub(crate) fn set_exit(&self, status: ExitStatus) {
        self.lock().exited_at = Some(Instant::now());
        // Before the send: the reader polls its exit watch again only once this is set,
        // so it must be set by the time the send wakes the reader.
        self.exit_published.store(true, Ordering::SeqCst);
        self.exit.send_replace(Some(status));
    }

    /// Whether the exit status is published (or about to be).
    pub(crate) fn exit_published(&self) -> bool {
        self.exit_published.load(Ordering::SeqCst)
    }

    /// Watches the exit status.
    pub(crate) fn exit_watch(&self) -> watch::Receiver<Option<ExitStatus>> {
        self.exit.subscribe()
    }

    pub(crate) fn exit_status(&self) -> Option<ExitStatus> {
        *self.exit.borrow()
    }

    /// Waits until the worker has exited and been reaped.
    pub(crate) async fn exited(&self) -> ExitStatus {
        let mut exit = self.exit.subscribe();
        match exit.wait_for(Option::is_some).await {
            Ok(status) => status.expect("waited for Some"),
            // The sender lives in `self`, so it cannot be gone while we borrow it.
            Err(_) => unreachable!("the exit sender outlives its subscribers"),
        }
    }
}
