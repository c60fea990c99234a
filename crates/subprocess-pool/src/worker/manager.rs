//! Worker processes as pooled objects.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use pool_core::{Manager, ObjectMeta};
use tokio::time::Instant;

use super::error::{ExitDescription, RunnerError};
use super::metrics::Counters;
use super::runner::{Fate, MessageHandler, Runner, StartFailure};
use super::session::{NoSession, Session};
use super::spec::WorkerSpec;
use crate::protocol::Protocol;

/// The shortest time a new worker is watched after one died before ever answering.
const MIN_PROBATION: Duration = Duration::from_millis(50);
/// The longest: a watch holds a create open, and callers wait for creates.
const MAX_PROBATION: Duration = Duration::from_secs(1);

/// The [`pool_core::Manager`] of [`Runner`]s.
///
/// - **create** spawns a worker, waits until it is ready (ready line, greeting) and runs
///   the [`Session`]'s handshake, all within `startup_timeout`. After a worker died before
///   ever answering, each new worker is also watched for twice as long as that one lived
///   (at least 50 ms, at most `startup_timeout`): one that exits in that time is a failed
///   create, so a program that cannot start meets the pool's backoff instead of failing
///   one call per spawn. The watch ends with the first worker that survives it.
/// - **recycle** makes sure the worker has not faulted since its last call (exited,
///   closed its stdout, broken the protocol, written output nobody asked for: the task
///   reading its stdout has been watching, so this costs at most one `poll`).
/// - **health_check** does the same and, when a ping is set, sends it and expects an
///   answer.
/// - **is_broken**: poisoned by a failed call, or faulted.
/// - **destroy** runs the session's goodbye on a worker in good order (bounded by
///   `kill_grace`), closes its stdin, waits `kill_grace`, then kills and reaps its process
///   group.
///
/// The manager enforces no request or age limit: [`WorkerSpec::max_requests`] and
/// [`WorkerSpec::max_age`] are applied as the pool's `max_uses` and `max_lifetime` by
/// [`SubprocessPoolBuilder::build`](crate::SubprocessPoolBuilder::build). A
/// `pool_core::Pool` built on a `RunnerManager` by hand gets them only by setting
/// [`max_uses`](pool_core::PoolBuilder::max_uses) and
/// [`max_lifetime`](pool_core::PoolBuilder::max_lifetime) on its own builder.
pub struct RunnerManager<P: Protocol, S: Session<P> = NoSession> {
    spec: WorkerSpec,
    protocol: P,
    session: S,
    /// Makes a ping request for health checks.
    ping: Option<Box<dyn Fn() -> P::Request + Send + Sync>>,
    handler: Option<MessageHandler<P>>,
    counters: Arc<Counters>,
    /// How long to watch a new worker, after one died before ever answering.
    probation: Mutex<Option<Probation>>,
}

impl<P: Protocol, S: Session<P>> std::fmt::Debug for RunnerManager<P, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunnerManager")
            .field("spec", &self.spec)
            .field("session", &std::any::type_name::<S>())
            .field("ping", &self.ping.is_some())
            .field("handler", &self.handler.is_some())
            .finish_non_exhaustive()
    }
}

impl<P: Protocol> RunnerManager<P> {
    /// A manager starting workers as `spec` says, speaking `protocol`, with no session.
    pub fn new(spec: WorkerSpec, protocol: P) -> Self {
        let counters = Arc::new(Counters::named(&spec.short_program_name()));
        Self {
            spec,
            protocol,
            session: NoSession,
            ping: None,
            handler: None,
            counters,
            probation: Mutex::new(None),
        }
    }
}

impl<P: Protocol, S: Session<P>> RunnerManager<P, S> {
    /// Runs `session`'s handshake on every new worker and its goodbye on every worker
    /// stopped in good order.
    pub fn with_session<T: Session<P>>(self, session: T) -> RunnerManager<P, T> {
        RunnerManager {
            spec: self.spec,
            protocol: self.protocol,
            session,
            ping: self.ping,
            handler: self.handler,
            counters: self.counters,
            probation: self.probation,
        }
    }

    /// Health checks also send `request` and require an answer (any answer: the worker
    /// proved it reads and writes its pipes). A failed ping retires the worker.
    pub fn with_ping(mut self, request: P::Request) -> Self
    where
        P::Request: Clone + Sync,
    {
        self.ping = Some(Box::new(move || request.clone()));
        self
    }

    /// Calls `handler` with the worker's pid and each message a worker sends (see
    /// [`Runner::spawn_with`]); without one, messages are dropped and counted.
    pub fn with_message_handler(
        mut self,
        handler: impl Fn(u32, &P::Message) -> Option<P::Request> + Send + Sync + 'static,
    ) -> Self {
        self.handler = Some(Arc::new(handler));
        self
    }

    /// Whether health checks send a ping (without building one).
    pub(crate) fn has_ping(&self) -> bool {
        self.ping.is_some()
    }

    /// A ping request, if health checks send one.
    pub(crate) fn ping_request(&self) -> Option<P::Request> {
        self.ping.as_ref().map(|ping| ping())
    }

    /// The protocol workers speak.
    pub(crate) fn protocol(&self) -> &P {
        &self.protocol
    }

    /// The spec workers are started from.
    pub fn spec(&self) -> &WorkerSpec {
        &self.spec
    }

    pub(crate) fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    fn probation(&self) -> std::sync::MutexGuard<'_, Option<Probation>> {
        self.probation
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Puts new workers on probation if `runner` died before it ever answered. Called
    /// wherever the pool first learns a worker is done for (its return, a failed check,
    /// its destruction): destruction runs on a task of its own, too late for a caller that
    /// asks for another worker right away.
    fn note_end(&self, runner: &Runner<P>) {
        if let Some(lived) = runner.died_young() {
            let watch = (lived * 2)
                .clamp(MIN_PROBATION, MAX_PROBATION)
                .min(self.spec.startup_timeout);
            let mut probation = self.probation();
            let started_by = probation.map_or(0, |p| p.started_by + 1);
            *probation = Some(Probation { watch, started_by });
        }
    }
}

impl<P: Protocol, S: Session<P>> Manager for RunnerManager<P, S> {
    type Object = Runner<P>;
    type Error = RunnerError;

    async fn create(&self) -> Result<Runner<P>, RunnerError> {
        let began = Instant::now();
        let mut runner = Runner::start(
            &self.spec,
            self.protocol.clone(),
            self.handler.clone(),
            self.counters.clone(),
        )
        .await?;
        let left = self.spec.startup_timeout.saturating_sub(began.elapsed());
        match tokio::time::timeout(left, self.session.start(&mut runner)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                let failure = StartFailure::Error("its handshake failed", error);
                return Err(runner.fail_start(failure).await);
            }
            Err(_) => {
                let reason = format!(
                    "its handshake did not finish within {:?}",
                    self.spec.startup_timeout
                );
                return Err(runner.fail_start(StartFailure::Reason(reason)).await);
            }
        }
        let probation = *self.probation();
        if let Some(probation) = probation {
            let watch = probation.watch;
            // A worker that survives the watch ends the probation; so does a create
            // cancelled during it (a watch that outlasts the caller's deadline must not fail
            // every create after it; the next young death starts another). One that dies
            // keeps it for the next create.
            let end = EndProbation(Some((self, probation)));
            if let Some(status) = runner.wait_exit(watch).await {
                end.keep();
                let reason = format!(
                    "it exited {} within {:?} of starting, as the one before it did",
                    ExitDescription(&status),
                    began.elapsed()
                );
                return Err(runner.fail_start(StartFailure::Reason(reason)).await);
            }
        }
        Ok(runner)
    }

    async fn recycle(&self, runner: &mut Runner<P>, _: &ObjectMeta) -> Result<(), RunnerError> {
        runner
            .check_idle()
            .await
            .inspect_err(|_| self.note_end(runner))
    }

    async fn health_check(
        &self,
        runner: &mut Runner<P>,
        _: &ObjectMeta,
    ) -> Result<(), RunnerError> {
        runner
            .check_idle()
            .await
            .inspect_err(|_| self.note_end(runner))?;
        if let Some(ping) = &self.ping {
            runner.call(ping()).await?;
        }
        Ok(())
    }

    fn is_broken(&self, runner: &Runner<P>) -> bool {
        let broken = runner.is_poisoned();
        if broken {
            self.note_end(runner);
        }
        broken
    }

    async fn destroy(&self, mut runner: Runner<P>) {
        let fate = runner.fate();
        self.note_end(&runner);
        let healthy = fate == Fate::Stopped;
        if healthy {
            let _ =
                tokio::time::timeout(self.spec.kill_grace, self.session.goodbye(&mut runner)).await;
        }
        runner.retire(fate, &self.counters).await;
    }
}

/// How long to watch each new worker, after a worker died within a second of starting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Probation {
    watch: Duration,
    /// Counts the young deaths that renewed it, so that a create ending an older watch
    /// does not end a newer one of the same length.
    started_by: u64,
}

/// Clears, when dropped, the probation a create watched for, unless a newer one replaced
/// it or [`keep`](EndProbation::keep) was called.
struct EndProbation<'a, P: Protocol, S: Session<P>>(Option<(&'a RunnerManager<P, S>, Probation)>);

impl<P: Protocol, S: Session<P>> EndProbation<'_, P, S> {
    fn keep(mut self) {
        self.0 = None;
    }
}

impl<P: Protocol, S: Session<P>> Drop for EndProbation<'_, P, S> {
    fn drop(&mut self) {
        if let Some((manager, watched)) = self.0 {
            let mut probation = manager.probation();
            if *probation == Some(watched) {
                *probation = None;
            }
        }
    }
}
