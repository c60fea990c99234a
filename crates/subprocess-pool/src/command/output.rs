//! What a finished command left.

use std::process::ExitStatus;
use std::time::Duration;

/// What a command that ran to its exit left: its status and its (capped) output.
///
/// A non-zero exit status is still an output: the command ran and said it failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    /// How it exited: a code, or the signal that ended it.
    pub status: ExitStatus,
    /// Its stdout, at most the spec's `max_output` bytes.
    pub stdout: Vec<u8>,
    /// Its stderr, at most the spec's `max_output` bytes.
    pub stderr: Vec<u8>,
    /// Whether stdout was longer than the cap and cut.
    pub stdout_truncated: bool,
    /// Whether stderr was longer than the cap and cut.
    pub stderr_truncated: bool,
    /// How long it ran, from spawn until its output was collected.
    pub elapsed: Duration,
}
