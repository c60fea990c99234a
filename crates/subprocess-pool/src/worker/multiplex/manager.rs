//! Workers shared by many calls, as pool-core objects: pool-core starts them (with its
//! start-up backoff and a failing program's probation) and stops them; a
//! [`MultiplexPool`](super::MultiplexPool) lends each one out once, for its whole life.

use std::sync::Arc;

use pool_core::{Manager, ObjectMeta};

use crate::process_group::kill_group;
use crate::protocol::Protocol;
use crate::worker::error::RunnerError;
use crate::worker::manager::RunnerManager;
use crate::worker::runner::{Fate, MuxRunner};

/// Starts workers as a [`RunnerManager`] does, and hands them out as [`MuxRunner`]s.
pub(crate) struct MuxManager<P: Protocol>(pub(crate) RunnerManager<P>);

impl<P: Protocol> Manager for MuxManager<P> {
    type Object = Arc<MuxRunner<P>>;
    type Error = RunnerError;

    async fn create(&self) -> Result<Self::Object, RunnerError> {
        Ok(Arc::new(MuxRunner::new(self.0.create().await?)))
    }

    /// Only workers that were never lent are recycled (kept for `min_idle`).
    async fn recycle(&self, worker: &mut Self::Object, _: &ObjectMeta) -> Result<(), RunnerError> {
        match worker.is_usable() {
            true => Ok(()),
            false => Err(RunnerError::Poisoned),
        }
    }

    fn is_broken(&self, worker: &Self::Object) -> bool {
        !worker.is_usable()
    }

    async fn destroy(&self, worker: Self::Object) {
        match Arc::try_unwrap(worker) {
            Ok(worker) => self.0.destroy(worker.into_runner()).await,
            // A call still holds it (shutdown's grace ran out): no goodbye, then. The
            // last holder's drop reaps it.
            Err(shared) => {
                let fate = match shared.fate() {
                    Fate::Stopped => Fate::Killed,
                    fate => fate,
                };
                kill_group(shared.pid());
                self.0.counters().worker_ended(shared.pid(), fate);
            }
        }
    }
}
