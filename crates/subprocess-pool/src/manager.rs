//! Worker processes as pooled objects.

use pool_core::{Manager, ObjectMeta};

use crate::error::RunnerError;
use crate::protocol::Protocol;
use crate::runner::Runner;
use crate::spec::WorkerSpec;

/// The [`pool_core::Manager`] of [`Runner`]s: create spawns a worker and waits until it is
/// ready; recycle makes sure it is alive (trusting one that answered within the last
/// 250 ms, to spare a system call per call, unless it closed its stdout), has written
/// nothing since its last answer (output already written by then would be taken for the
/// next caller's answer, so such a worker is retired) and is within its request and age
/// limits; the health check makes sure it is alive (asking the system) and within its
/// limits and, when a ping is set, sends it and expects an answer; a runner poisoned by a
/// failed call, or spent, is broken; destroy closes its stdin, waits `kill_grace`, then
/// kills and reaps its process group.
pub struct RunnerManager<P: Protocol> {
    spec: WorkerSpec,
    protocol: P,
    /// Makes a ping request for health checks.
    ping: Option<Box<dyn Fn() -> P::Request + Send + Sync>>,
}

impl<P: Protocol> std::fmt::Debug for RunnerManager<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunnerManager")
            .field("spec", &self.spec)
            .field("ping", &self.ping.is_some())
            .finish_non_exhaustive()
    }
}

impl<P: Protocol> RunnerManager<P> {
    /// A manager starting workers as `spec` says, speaking `protocol`.
    pub fn new(spec: WorkerSpec, protocol: P) -> Self {
        Self {
            spec,
            protocol,
            ping: None,
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

    /// The spec workers are started from.
    pub fn spec(&self) -> &WorkerSpec {
        &self.spec
    }
}

impl<P: Protocol> Manager for RunnerManager<P> {
    type Object = Runner<P>;
    type Error = RunnerError;

    async fn create(&self) -> Result<Runner<P>, RunnerError> {
        Runner::spawn(&self.spec, self.protocol.clone()).await
    }

    async fn recycle(&self, runner: &mut Runner<P>, _: &ObjectMeta) -> Result<(), RunnerError> {
        check(runner, Runner::is_probably_alive)?;
        runner.check_idle_output()
    }

    async fn health_check(
        &self,
        runner: &mut Runner<P>,
        _: &ObjectMeta,
    ) -> Result<(), RunnerError> {
        check(runner, Runner::is_alive)?;
        // Unasked output is left to `recycle`, which runs at every checkout (right after
        // this check, when one runs there too); a ping's `call` looks for it itself.
        if let Some(ping) = &self.ping {
            runner.call(ping()).await?;
        }
        Ok(())
    }

    fn is_broken(&self, runner: &Runner<P>) -> bool {
        runner.is_poisoned() || runner.is_spent()
    }

    async fn destroy(&self, runner: Runner<P>) {
        runner.shutdown().await;
    }
}

/// Alive (as `alive` judges), unpoisoned and within its limits.
fn check<P: Protocol>(
    runner: &mut Runner<P>,
    alive: fn(&mut Runner<P>) -> bool,
) -> Result<(), RunnerError> {
    if runner.is_poisoned() {
        Err(RunnerError::Poisoned)
    } else if !alive(runner) {
        Err(RunnerError::idle_worker_gone("has exited"))
    } else if runner.is_spent() {
        Err(RunnerError::Retired)
    } else {
        Ok(())
    }
}
