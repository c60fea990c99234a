//! What to run once: the program and its surroundings, stdin bytes, a timeout and an
//! output cap.

use std::path::PathBuf;
use std::time::Duration;

use crate::launch::Launch;

/// The default cap on captured stdout, and separately on stderr: 1 MiB.
pub const DEFAULT_MAX_OUTPUT: usize = 1024 * 1024;

/// A command to run once in a fresh process, by [`CommandPool::run`](crate::CommandPool::run).
///
/// A builder. Arguments go to the program as they are, never through a shell. The process
/// runs in a process group of its own, and when the run ends (or times out, or is
/// cancelled) that whole group is killed: a one-shot command leaves nothing running.
///
/// What it inherits unless told otherwise: this process's whole environment (secrets
/// included) and its working directory. A server should start from
/// [`env_clear`](Self::env_clear) and set only what the program needs with `env`, and
/// give the program as an absolute path (`PATH` is gone too).
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use subprocess_pool::CommandSpec;
///
/// let spec = CommandSpec::new("convert")
///     .args(["in.png", "out.jpg"])
///     .env("MAGICK_THREAD_LIMIT", "1")
///     .timeout(Duration::from_secs(30))
///     .max_output(64 * 1024);
/// # let _ = spec;
/// ```
#[derive(Debug, Clone)]
#[must_use = "a command spec does nothing until it is run"]
pub struct CommandSpec {
    pub(super) launch: Launch,
    pub(super) stdin: Option<Vec<u8>>,
    pub(super) timeout: Option<Duration>,
    pub(super) max_output: usize,
}

impl CommandSpec {
    /// A command running `program` (looked up on `PATH` unless it contains a `/`), with no
    /// arguments, the parent's environment and working directory, stdin closed at once, no
    /// timeout and output capped at [`DEFAULT_MAX_OUTPUT`].
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Self {
            launch: Launch::new(program),
            stdin: None,
            timeout: None,
            max_output: DEFAULT_MAX_OUTPUT,
        }
    }

    crate::launch::launch_setters!();

    /// Bytes written to the command's stdin while its output is read; stdin is closed
    /// after them. Without this, stdin is closed at once. A command that exits without
    /// reading them all is not an error.
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(bytes.into());
        self
    }

    /// The longest the command may run, counted from its spawn (waiting for a slot is
    /// bounded by the pool's `wait_timeout` instead). Past it, the command's whole process
    /// group is killed and the run is [`CommandError::Timeout`](crate::CommandError::Timeout),
    /// never an output.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Keeps at most `bytes` of stdout, and at most `bytes` of stderr (default
    /// [`DEFAULT_MAX_OUTPUT`]). The rest is read and dropped, so the command never blocks
    /// on a full pipe, and the output is flagged as truncated.
    pub fn max_output(mut self, bytes: usize) -> Self {
        self.max_output = bytes;
        self
    }
}
