//! One-shot commands: what to run, and what came out.

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

use pool_core::PoolError;

use crate::launch::{Launch, SpawnError};

/// The default cap on captured stdout, and separately on stderr: 1 MiB.
pub const DEFAULT_MAX_OUTPUT: usize = 1024 * 1024;

/// A command to run once in a fresh process. A builder; arguments never pass through a
/// shell, and the process runs in a process group of its own.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use subprocess_pool::CommandSpec;
///
/// let spec = CommandSpec::new("convert")
///     .args(["in.png", "out.jpg"])
///     .timeout(Duration::from_secs(30))
///     .max_output(64 * 1024);
/// # let _ = spec;
/// ```
#[derive(Debug, Clone)]
pub struct CommandSpec {
    pub(crate) launch: Launch,
    pub(crate) stdin: Option<Vec<u8>>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) max_output: usize,
}

impl CommandSpec {
    /// A command running `program` (looked up on `PATH` unless it contains a `/`).
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Self {
            launch: Launch::new(program),
            stdin: None,
            timeout: None,
            max_output: DEFAULT_MAX_OUTPUT,
        }
    }

    crate::launch::launch_setters!();

    /// Bytes written to the command's stdin, which is then closed (without this, stdin is
    /// closed at once).
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(bytes.into());
        self
    }

    /// Kills the command (with its whole process group) if it runs longer; the run is then
    /// an error, not an output.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Keeps at most this many bytes of stdout, and of stderr; the rest is read and
    /// dropped (so the command never blocks on a full pipe) and the output is flagged as
    /// cut.
    pub fn max_output(mut self, bytes: usize) -> Self {
        self.max_output = bytes;
        self
    }
}

/// What a finished command left.
#[derive(Debug, Clone)]
pub struct CommandOutput {
    /// How it exited; a non-zero status is still an output, not an error.
    pub status: ExitStatus,
    /// Its stdout, up to the cap.
    pub stdout: Vec<u8>,
    /// Its stderr, up to the cap.
    pub stderr: Vec<u8>,
    /// Whether stdout was longer than the cap.
    pub stdout_truncated: bool,
    /// Whether stderr was longer than the cap.
    pub stderr_truncated: bool,
    /// How long it ran.
    pub elapsed: Duration,
}

/// Why a command produced no output.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// No slot to run in: the pool is closed, or full with `max_waiting` callers waiting,
    /// or `wait_timeout` passed.
    #[error(transparent)]
    Pool(#[from] PoolError<std::convert::Infallible>),
    /// The process could not be started; the message names the program or directory.
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    /// It ran past its timeout and was killed with its process group.
    #[error("{program} ran past its timeout of {after:?} and was killed with its process group")]
    TimedOut {
        /// The program.
        program: String,
        /// The timeout.
        after: Duration,
    },
    /// Talking to the process failed.
    #[error("i/o error running {program}: {source}")]
    Io {
        /// The program.
        program: String,
        /// The operating system's error.
        source: std::io::Error,
    },
}
