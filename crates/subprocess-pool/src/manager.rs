//! Worker processes as pooled objects.

use pool_core::{Manager, ObjectMeta};

use crate::error::RunnerError;
use crate::protocol::Protocol;
use crate::runner::Runner;
use crate::spec::WorkerSpec;

/// The [`pool_core::Manager`] of [`Runner`]s: create spawns a worker and waits until it is
/// ready; recycle and health check make sure it is alive and within its request and age
/// limits; a runner poisoned by a failed call, or spent, is broken; destroy closes its
/// stdin, waits `kill_grace`, then kills and reaps its process group.
#[derive(Debug, Clone)]
pub struct RunnerManager<P> {
    spec: WorkerSpec,
    protocol: P,
}

impl<P: Protocol> RunnerManager<P> {
    /// A manager starting workers as `spec` says, speaking `protocol`.
    pub fn new(spec: WorkerSpec, protocol: P) -> Self {
        Self { spec, protocol }
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
        check(runner)
    }

    async fn health_check(
        &self,
        runner: &mut Runner<P>,
        _: &ObjectMeta,
    ) -> Result<(), RunnerError> {
        check(runner)
    }

    fn is_broken(&self, runner: &Runner<P>) -> bool {
        runner.is_poisoned() || runner.is_spent()
    }

    async fn destroy(&self, runner: Runner<P>) {
        runner.shutdown().await;
    }
}

/// Alive, unpoisoned and within its limits.
fn check<P: Protocol>(runner: &mut Runner<P>) -> Result<(), RunnerError> {
    if runner.is_poisoned() {
        Err(RunnerError::Poisoned)
    } else if !runner.is_alive() {
        Err(RunnerError::Startup {
            reason: "the idle worker has exited".into(),
            stderr: String::new(),
        })
    } else if runner.is_spent() {
        Err(RunnerError::Retired)
    } else {
        Ok(())
    }
}
