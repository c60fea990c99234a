//! Why a command produced no output.

use std::convert::Infallible;
use std::time::Duration;

use pool_core::PoolError;

use crate::launch::SpawnError;

/// Why [`CommandPool::run`](crate::CommandPool::run) returned no [`CommandOutput`](crate::CommandOutput).
///
/// A command that ran and exited with a non-zero status is not an error. As everywhere in
/// both crates, a wrapped cause is this error's `source()`, not repeated in its message:
/// log the chain.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// No slot to run in: the pool is closed ([`PoolError::Closed`]), full with
    /// `max_waiting` callers already waiting ([`PoolError::Exhausted`]), or `wait_timeout`
    /// passed ([`PoolError::Timeout`]).
    #[error("no slot to run the command")]
    Pool(#[from] PoolError<Infallible>),
    /// The process could not be started: a missing program, a file that is not
    /// executable, a bad working directory. The message names the path at fault.
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    /// It ran past its timeout and was killed with its whole process group.
    #[error("{program} ran past its timeout of {after:?} and was killed with its process group")]
    Timeout {
        /// The program.
        program: String,
        /// The timeout it ran past.
        after: Duration,
        /// What it had written to stdout by then (at most the spec's `max_output`).
        stdout: Vec<u8>,
        /// What it had written to stderr by then (at most the spec's `max_output`).
        stderr: Vec<u8>,
    },
    /// Waiting for the process or reading its output failed.
    #[error("i/o error while running the command")]
    Io(#[source] std::io::Error),
}
