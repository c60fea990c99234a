//! Running one-shot commands with bounded concurrency, on pool-core.

use std::convert::Infallible;
use std::pin::pin;
use std::process::Stdio;
use std::time::Duration;

use pool_core::{BuildError, Manager, Metrics, Pool, PoolBuilder, ShutdownReport, Status};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use crate::command::{CommandError, CommandOutput, CommandSpec};
use crate::process_group::kill_group;

/// How long the pipes may stay open after the command itself exited (a background
/// grandchild holding them) before its group is killed.
const PIPE_GRACE: Duration = Duration::from_millis(100);

/// The pooled object of a [`CommandPool`]: a permission to run one command.
#[derive(Debug)]
pub struct Slots;

impl Manager for Slots {
    type Object = ();
    type Error = Infallible;

    async fn create(&self) -> Result<(), Infallible> {
        Ok(())
    }
}

/// Runs fresh processes with bounded concurrency, a timeout, stdin bytes, capped stdout
/// and stderr, and a process-group kill. Built on a `pool_core::Pool` of slots, so
/// `status()`, `metrics()`, `close()` and `shutdown()` behave as in pool-core. Cheap to
/// clone.
///
/// # Example
///
/// ```
/// use subprocess_pool::{CommandPool, CommandSpec};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let commands = CommandPool::builder().max_size(8).build()?;
/// let out = commands.run(CommandSpec::new("sh").args(["-c", "tr a-z A-Z"]).stdin("hello")).await?;
/// assert!(out.status.success());
/// assert_eq!(out.stdout, b"HELLO");
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct CommandPool {
    slots: Pool<Slots>,
}

impl std::fmt::Debug for CommandPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandPool")
            .field("status", &self.status())
            .finish()
    }
}

impl CommandPool {
    /// Starts configuring a command pool (by default as many slots as CPUs).
    pub fn builder() -> CommandPoolBuilder {
        let cpus = std::thread::available_parallelism().map_or(4, usize::from);
        CommandPoolBuilder {
            inner: Pool::builder(Slots).max_size(cpus),
        }
    }

    /// Runs `spec` once a slot is free and returns what it printed and how it exited.
    pub async fn run(&self, spec: CommandSpec) -> Result<CommandOutput, CommandError> {
        let _slot = self.slots.get().await?;
        run_one(&spec).await
    }

    /// Slots in use and callers waiting (see [`pool_core::Status`]).
    pub fn status(&self) -> Status {
        self.slots.status()
    }

    /// The slot pool's counters (see [`pool_core::Metrics`]).
    pub fn metrics(&self) -> Metrics {
        self.slots.metrics()
    }

    /// No new runs; commands already running finish.
    pub fn close(&self) {
        self.slots.close();
    }

    /// Closes the pool and waits up to `grace` for running commands to finish.
    pub async fn shutdown(&self, grace: Duration) -> ShutdownReport {
        self.slots.shutdown(grace).await
    }
}

/// Configures a [`CommandPool`].
#[derive(Debug)]
pub struct CommandPoolBuilder {
    inner: PoolBuilder<Slots>,
}

impl CommandPoolBuilder {
    /// The most commands running at once.
    pub fn max_size(self, max: usize) -> Self {
        Self {
            inner: self.inner.max_size(max),
        }
    }

    /// The most callers waiting for a slot; more get an error at once.
    pub fn max_waiting(self, max: usize) -> Self {
        Self {
            inner: self.inner.max_waiting(max),
        }
    }

    /// How long a caller may wait for a slot.
    pub fn wait_timeout(self, timeout: Duration) -> Self {
        Self {
            inner: self.inner.wait_timeout(timeout),
        }
    }

    /// Builds the pool.
    pub fn build(self) -> Result<CommandPool, BuildError> {
        Ok(CommandPool {
            slots: self.inner.build()?,
        })
    }
}

/// Kills the command's process group if the run ends early (cancelled, timed out).
struct GroupGuard(Option<u32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.0.take() {
            kill_group(pid);
        }
    }
}

async fn run_one(spec: &CommandSpec) -> Result<CommandOutput, CommandError> {
    let program = spec.launch.program().display().to_string();
    let io_error = |source| CommandError::Io {
        program: program.clone(),
        source,
    };
    let started = Instant::now();
    let mut child = spec
        .launch
        .command(Stdio::piped())
        .spawn()
        .map_err(|error| spec.launch.spawn_error(error))?;
    let pid = child.id().unwrap_or_default();
    let mut group = GroupGuard(Some(pid));
    let (Some(mut stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        unreachable!("the command pipes stdin, stdout and stderr");
    };
    let cap = spec.max_output;
    let input = spec.stdin.as_deref().unwrap_or_default();
    let io = async {
        let write = async {
            // A command that does not read its stdin closes it: that is not an error.
            let _ = stdin.write_all(input).await;
            drop(stdin);
        };
        let ((), out, err) =
            tokio::join!(write, read_capped(stdout, cap), read_capped(stderr, cap));
        (out, err)
    };
    let work = async {
        let mut io = pin!(io);
        let mut captured = None;
        let status = loop {
            tokio::select! {
                status = child.wait() => break status,
                done = &mut io, if captured.is_none() => captured = Some(done),
            }
        };
        let captured = match captured {
            Some(done) => done,
            // The command exited but something it started holds the pipes.
            None => match tokio::time::timeout(PIPE_GRACE, &mut io).await {
                Ok(done) => done,
                Err(_) => {
                    kill_group(pid);
                    io.await
                }
            },
        };
        (status, captured)
    };
    let finished = match spec.timeout {
        None => Some(work.await),
        Some(limit) => tokio::time::timeout(limit, work).await.ok(),
    };
    // Whatever the command started goes with it.
    kill_group(pid);
    let Some((status, (stdout, stderr))) = finished else {
        let _ = child.wait().await; // reap the killed command
        group.0 = None;
        return Err(CommandError::TimedOut {
            program,
            after: spec.timeout.unwrap_or_default(),
        });
    };
    group.0 = None;
    let status = status.map_err(io_error)?;
    let (stdout, stdout_truncated) = stdout.map_err(io_error)?;
    let (stderr, stderr_truncated) = stderr.map_err(io_error)?;
    Ok(CommandOutput {
        status,
        stdout,
        stderr,
        stdout_truncated,
        stderr_truncated,
        elapsed: started.elapsed(),
    })
}

/// Reads `pipe` to its end, keeping the first `cap` bytes and dropping the rest.
async fn read_capped(
    mut pipe: impl AsyncRead + Unpin,
    cap: usize,
) -> std::io::Result<(Vec<u8>, bool)> {
    let mut kept = Vec::new();
    let mut chunk = vec![0; 16 * 1024];
    let mut truncated = false;
    loop {
        let read = pipe.read(&mut chunk).await?;
        if read == 0 {
            return Ok((kept, truncated));
        }
        let room = cap.saturating_sub(kept.len());
        kept.extend_from_slice(&chunk[..read.min(room)]);
        truncated |= read > room;
    }
}
