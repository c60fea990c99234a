//! `Pools`: what the default facade holds, a command pool and named worker pools.

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use pool_core::{Metrics, ShutdownReport, Status};
use tokio::time::Instant;

use super::{GlobalError, GracefulShutdown};
use crate::protocol::Protocol;
use crate::{CommandPool, SubprocessPool};

/// The name [`Pools::reports`] gives the command pool.
pub const COMMANDS: &str = "commands";

/// A worker pool of any protocol, behind one object-safe face.
pub(super) trait AnyWorkers: Send + Sync + 'static {
    fn as_any(&self) -> &dyn Any;
    fn status(&self) -> Status;
    fn metrics(&self) -> Metrics;
    fn close(&self);
    fn shutdown(
        &self,
        grace: Duration,
    ) -> Pin<Box<dyn Future<Output = ShutdownReport> + Send + '_>>;
}

impl<P: Protocol> AnyWorkers for SubprocessPool<P> {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn status(&self) -> Status {
        SubprocessPool::status(self)
    }
    fn metrics(&self) -> Metrics {
        SubprocessPool::metrics(self)
    }
    fn close(&self) {
        SubprocessPool::close(self);
    }
    fn shutdown(
        &self,
        grace: Duration,
    ) -> Pin<Box<dyn Future<Output = ShutdownReport> + Send + '_>> {
        Box::pin(SubprocessPool::shutdown(self, grace))
    }
}

/// A command pool and named worker pools, built together by
/// [`global::init`](crate::global::init) and drained together by
/// [`global::shutdown`](crate::global::shutdown).
///
/// Worker pools may speak different protocols; [`workers`](Pools::workers) finds one by
/// name and protocol type.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use subprocess_pool::global::GlobalConfig;
/// use subprocess_pool::protocol::Lines;
/// use subprocess_pool::{SubprocessPool, WorkerSpec};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let pools = GlobalConfig::new()
///     .workers("echo", SubprocessPool::builder(WorkerSpec::new("cat"), Lines::default()))
///     .build()?;
/// let echo = pools.workers::<Lines>("echo")?;
/// assert_eq!(echo.call("hi".to_string()).await?, "hi");
/// assert!(pools.workers::<Lines>("resize").is_err());
/// let report = pools.shutdown(Duration::from_secs(1)).await;
/// assert!(report.is_clean());
/// # Ok(())
/// # }
/// ```
pub struct Pools {
    pub(super) commands: CommandPool,
    pub(super) workers: BTreeMap<String, Box<dyn AnyWorkers>>,
}

/// One pool's name, [`Status`] and [`Metrics`], as [`Pools::reports`] lists them
/// (serializable, for a status endpoint).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PoolReport {
    /// [`COMMANDS`] for the command pool, else the worker pool's name.
    pub name: String,
    /// Its sizes right now.
    pub status: Status,
    /// Its counters since it was built.
    pub metrics: Metrics,
}

impl Pools {
    /// The pool for one-shot commands.
    pub fn commands(&self) -> &CommandPool {
        &self.commands
    }

    /// The worker pool of `key` (see [`WorkersKey`](super::WorkersKey)): its protocol is
    /// the key's, checked by the compiler.
    ///
    /// Errors with [`GlobalError::UnknownPool`] if no pool was registered under the key's
    /// name, or [`GlobalError::WrongProtocol`] if one was, with another protocol, by the
    /// string-named [`GlobalConfig::workers`](super::GlobalConfig::workers).
    pub fn pool<P: Protocol>(
        &self,
        key: super::WorkersKey<P>,
    ) -> Result<&SubprocessPool<P>, GlobalError> {
        self.workers(key.name())
    }

    /// The worker pool named `name`, speaking protocol `P`.
    ///
    /// Errors with [`GlobalError::UnknownPool`] (naming the pools that exist) or
    /// [`GlobalError::WrongProtocol`].
    pub fn workers<P: Protocol>(&self, name: &str) -> Result<&SubprocessPool<P>, GlobalError> {
        let pool = self
            .workers
            .get(name)
            .ok_or_else(|| GlobalError::UnknownPool {
                name: name.to_owned(),
                configured: self.worker_names().collect::<Vec<_>>().join(", "),
            })?;
        pool.as_any()
            .downcast_ref()
            .ok_or_else(|| GlobalError::WrongProtocol {
                name: name.to_owned(),
                asked: std::any::type_name::<P>(),
            })
    }

    /// The worker pools' names, in order.
    pub fn worker_names(&self) -> impl Iterator<Item = &str> {
        self.workers.keys().map(String::as_str)
    }

    /// The status and metrics of every pool: the command pool first, then the worker pools
    /// by name.
    pub fn reports(&self) -> Vec<PoolReport> {
        let commands = PoolReport {
            name: COMMANDS.to_owned(),
            status: self.commands.status(),
            metrics: self.commands.metrics(),
        };
        let workers = self.workers.iter().map(|(name, pool)| PoolReport {
            name: name.clone(),
            status: pool.status(),
            metrics: pool.metrics(),
        });
        std::iter::once(commands).chain(workers).collect()
    }

    /// Closes every pool at once, then waits, within one shared `grace`, for each to drain;
    /// the report adds up what was still out in all of them.
    pub async fn shutdown(&self, grace: Duration) -> ShutdownReport {
        let deadline = Instant::now().checked_add(grace);
        self.commands.close();
        for pool in self.workers.values() {
            pool.close();
        }
        let left = || {
            deadline.map_or(grace, |deadline| {
                deadline.saturating_duration_since(Instant::now())
            })
        };
        let mut total = self.commands.shutdown(left()).await;
        for pool in self.workers.values() {
            let report = pool.shutdown(left()).await;
            total.still_out += report.still_out;
            total.still_destroying += report.still_destroying;
        }
        total
    }
}

impl GracefulShutdown for Pools {
    async fn shutdown(&self, grace: Duration) -> ShutdownReport {
        Pools::shutdown(self, grace).await
    }
}

impl fmt::Debug for Pools {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pools")
            .field("commands", &self.commands)
            .field("workers", &self.worker_names().collect::<Vec<_>>())
            .finish()
    }
}
