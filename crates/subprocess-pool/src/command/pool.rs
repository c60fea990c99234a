//! Running one-shot commands with bounded concurrency, on a pool-core pool of slots.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::time::Duration;

use pool_core::{BuildError, Manager, Metrics, Pool, PoolBuilder, ShutdownReport, Status};

use super::{CommandError, CommandOutput, CommandSpec, run};

/// The manager of a [`CommandPool`]'s slots: each pooled object is a permission to run one
/// command.
#[derive(Debug)]
struct Slots;

impl Manager for Slots {
    type Object = ();
    type Error = Infallible;

    async fn create(&self) -> Result<(), Infallible> {
        Ok(())
    }
}

/// Runs one-shot commands, each in a fresh process, at most `max_size` at once.
///
/// For code that must spawn a new process each time (to keep a process warm, use
/// [`SubprocessPool`](crate::SubprocessPool)). Each run gets a timeout, stdin bytes,
/// stdout and stderr capped and flagged when cut, and a process group of its own that is
/// killed when the run ends, times out or is cancelled. Built on a `pool_core::Pool` of
/// slots, so [`status`](CommandPool::status), [`metrics`](CommandPool::metrics),
/// [`close`](CommandPool::close) and [`shutdown`](CommandPool::shutdown) behave as in
/// pool-core, with one slot in use per running command. Cheap to clone; clones share the
/// slots.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use subprocess_pool::{CommandError, CommandPool, CommandSpec};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let commands = CommandPool::builder().max_size(8).build()?;
///
/// let out = commands
///     .run(CommandSpec::new("sh").args(["-c", "tr a-z A-Z"]).stdin("hello"))
///     .await?;
/// assert!(out.status.success());
/// assert_eq!(out.stdout, b"HELLO");
///
/// let slow = CommandSpec::new("sleep").arg("10").timeout(Duration::from_millis(100));
/// assert!(matches!(commands.run(slow).await, Err(CommandError::Timeout { .. })));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct CommandPool {
    slots: Pool<Slots>,
}

impl fmt::Debug for CommandPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CommandPool")
            .field("status", &self.status())
            .finish()
    }
}

impl CommandPool {
    /// Starts configuring a command pool; by default as many commands may run at once as
    /// there are CPUs.
    pub fn builder() -> CommandPoolBuilder {
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        CommandPoolBuilder {
            slots: Pool::builder(Slots).name("commands").max_size(cpus),
        }
    }

    /// Runs `spec` once a slot is free: spawns it, writes its stdin while reading its
    /// stdout and stderr, and waits for it to exit.
    ///
    /// Errors: [`CommandError::Pool`] when no slot could be had, [`CommandError::Spawn`]
    /// when it could not start, [`CommandError::Timeout`] when it ran past its timeout
    /// (its process group is then killed and it is reaped), [`CommandError::Io`] when
    /// waiting for it failed. A non-zero exit status is an `Ok` output.
    ///
    /// Every wait is bounded: once the command exits, processes it started that still hold
    /// its stdout or stderr get a moment (100 ms, within the timeout) to finish before its
    /// group is killed. Dropping the returned future kills the command's group; the
    /// command is then reaped by tokio.
    // Not an `async fn`: the slot's `get` is made here, where `#[track_caller]` still sees
    // the caller's location for leak reports.
    #[allow(clippy::manual_async_fn)]
    #[track_caller]
    pub fn run(
        &self,
        spec: CommandSpec,
    ) -> impl Future<Output = Result<CommandOutput, CommandError>> + Send + '_ {
        let slot = self.slots.get();
        async move {
            let _slot = slot.await?;
            run::run(&spec, self.slots.name()).await
        }
    }

    /// Slots in use (running commands) and callers waiting for one; see
    /// [`pool_core::Status`].
    pub fn status(&self) -> Status {
        self.slots.status()
    }

    /// The slot pool's counters since it was built (`waits`, `wait_time`, `timeouts`, ...);
    /// see [`pool_core::Metrics`].
    pub fn metrics(&self) -> Metrics {
        self.slots.metrics()
    }

    /// Changes how many commands may run at once (zero is refused). Shrinking does not
    /// stop running commands; their slots retire as they finish.
    pub fn resize(&self, max_size: usize) -> Result<(), BuildError> {
        self.slots.resize(max_size)
    }

    /// Refuses new runs from now on ([`PoolError::Closed`](pool_core::PoolError::Closed));
    /// callers waiting for a slot get that error too. Commands already running finish.
    pub fn close(&self) {
        self.slots.close();
    }

    /// Whether [`close`](CommandPool::close) or [`shutdown`](CommandPool::shutdown) was
    /// called.
    pub fn is_closed(&self) -> bool {
        self.slots.is_closed()
    }

    /// Closes the pool and waits up to `grace` for running commands to finish; the report
    /// counts those still running when it returned (they are not killed, and end with
    /// their own timeouts).
    pub async fn shutdown(&self, grace: Duration) -> ShutdownReport {
        self.slots.shutdown(grace).await
    }

    /// The pool's name (see [`CommandPoolBuilder::name`]).
    pub fn name(&self) -> &str {
        self.slots.name()
    }
}

/// Configures a [`CommandPool`]; made by [`CommandPool::builder`].
#[derive(Debug)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct CommandPoolBuilder {
    slots: PoolBuilder<Slots>,
}

impl CommandPoolBuilder {
    /// The pool's name, in every event it logs (default `commands`).
    pub fn name(self, name: impl Into<String>) -> Self {
        Self {
            slots: self.slots.name(name),
        }
    }

    /// The most commands running at once (at least 1; default: the number of CPUs).
    pub fn max_size(self, max_size: usize) -> Self {
        Self {
            slots: self.slots.max_size(max_size),
        }
    }

    /// The most callers waiting for a slot at once; more get
    /// [`PoolError::Exhausted`](pool_core::PoolError::Exhausted) at once. Zero means no
    /// caller waits. Default: no limit.
    pub fn max_waiting(self, max_waiting: usize) -> Self {
        Self {
            slots: self.slots.max_waiting(max_waiting),
        }
    }

    /// How long a caller may wait for a slot before getting
    /// [`PoolError::Timeout`](pool_core::PoolError::Timeout). Default: no limit. The
    /// command's own run time is bounded by [`CommandSpec::timeout`].
    pub fn wait_timeout(self, wait_timeout: Duration) -> Self {
        Self {
            slots: self.slots.wait_timeout(wait_timeout),
        }
    }

    /// Checks the settings and builds the pool; a zero `max_size` or `wait_timeout` is a
    /// [`BuildError`] naming the setting. Needs no runtime.
    pub fn build(self) -> Result<CommandPool, BuildError> {
        Ok(CommandPool {
            slots: self.slots.build()?,
        })
    }
}
