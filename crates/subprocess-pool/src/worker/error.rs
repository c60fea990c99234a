//! Why a worker failed a call, or could not start.

use std::fmt;
use std::process::ExitStatus;
use std::time::Duration;

use crate::launch::SpawnError;
use crate::protocol::{Direction, ProtocolError};

/// Why a worker could not start or could not answer a call. Every message says what went
/// wrong; those about a worker that died or was killed include the tail of its stderr.
///
/// The messages carry their cause's text, so none of the variants returns it again from
/// [`source`](std::error::Error::source): walking the chain prints everything once.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunnerError {
    /// The worker process could not be started (missing program, not executable, bad
    /// working directory: the message names the path).
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    /// The worker could not start: it exited before its ready line, its greeting, its
    /// handshake or its first request, stayed silent past `startup_timeout`, or failed its
    /// handshake. A pool counts this as a failed create, so its backoff applies.
    #[error("worker did not start: {reason}{}", StderrSuffix(stderr))]
    Startup {
        /// What happened.
        reason: String,
        /// The tail of its stderr.
        stderr: String,
    },
    /// The request took longer than the spec's `request_timeout`; the pool killed the
    /// worker's process group.
    #[error(
        "worker timed out after {after:?} and was killed by the pool{}",
        StderrSuffix(stderr)
    )]
    Timeout {
        /// The timeout.
        after: Duration,
        /// The tail of its stderr.
        stderr: String,
    },
    /// A request in flight on a multiplexed worker took longer than the spec's
    /// `request_timeout`. The worker was told to drop it, as its protocol says (see
    /// [`Protocol::cancel`](crate::Protocol::cancel)), and goes on serving the others.
    #[error("request timed out after {after:?}; the worker goes on serving other requests")]
    RequestTimeout {
        /// The timeout.
        after: Duration,
    },
    /// The worker exited on its own during the call.
    #[error(
        "worker exited {}{}{}",
        ExitDescription(status),
        OutputSuffix(output),
        StderrSuffix(stderr)
    )]
    Exited {
        /// How it ended.
        status: ExitStatus,
        /// The tail of its stderr.
        stderr: String,
        /// The start of what it wrote on stdout that was not yet a whole response.
        output: String,
    },
    /// The pool killed the worker during the call (other than for a timeout): it closed
    /// its stdout but did not exit, say.
    #[error("worker was killed by the pool: {reason}{}", StderrSuffix(stderr))]
    Killed {
        /// Why.
        reason: String,
        /// The tail of its stderr.
        stderr: String,
    },
    /// The worker broke the protocol (garbage, an oversize frame, a mismatched id, output
    /// nobody asked for), or the request could not be encoded (then it was not sent).
    #[error("protocol error")]
    Protocol(#[source] ProtocolError),
    /// A pipe failed in a way that says nothing about the worker.
    #[error("i/o error talking to the worker")]
    Io(#[source] std::io::Error),
    /// An earlier call on this worker failed or was cancelled half-way, or the worker
    /// faulted and that was already reported, so its streams cannot be trusted.
    #[error("worker is unusable after an earlier failed or cancelled call")]
    Poisoned,
}

impl RunnerError {
    /// The fault of a multiplexed worker, for each of its requests in flight: the same
    /// error, except that a timeout of one request is, for the others, a kill.
    pub(crate) fn duplicate(&self) -> Self {
        match self {
            Self::Spawn(error) => Self::Startup {
                reason: error.to_string(),
                stderr: String::new(),
            },
            Self::Startup { reason, stderr } => Self::Startup {
                reason: reason.clone(),
                stderr: stderr.clone(),
            },
            Self::Timeout { after, stderr } => Self::Killed {
                reason: format!("another request on it timed out after {after:?}"),
                stderr: stderr.clone(),
            },
            Self::RequestTimeout { after } => Self::RequestTimeout { after: *after },
            Self::Exited {
                status,
                stderr,
                output,
            } => Self::Exited {
                status: *status,
                stderr: stderr.clone(),
                output: output.clone(),
            },
            Self::Killed { reason, stderr } => Self::Killed {
                reason: reason.clone(),
                stderr: stderr.clone(),
            },
            Self::Protocol(error) => Self::Protocol(error.duplicate()),
            Self::Io(error) => Self::Io(std::io::Error::new(error.kind(), error.to_string())),
            Self::Poisoned => Self::Poisoned,
        }
    }
}

impl From<ProtocolError> for RunnerError {
    fn from(error: ProtocolError) -> Self {
        RunnerError::Protocol(error)
    }
}

impl RunnerError {
    /// Whether the worker may still be used after this error: only a request refused
    /// before it was sent (invalid, or a frame over the limit) leaves it intact.
    pub fn worker_intact(&self) -> bool {
        matches!(
            self,
            RunnerError::Protocol(
                ProtocolError::InvalidRequest(_)
                    | ProtocolError::FrameTooLarge {
                        direction: Direction::Request,
                        ..
                    }
            )
        )
    }
}

/// "with status N" or "killed by signal S".
pub(crate) struct ExitDescription<'a>(pub(crate) &'a ExitStatus);

impl fmt::Display for ExitDescription<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use std::os::unix::process::ExitStatusExt;
        match (self.0.code(), self.0.signal()) {
            (Some(code), _) => write!(f, "with status {code}"),
            (None, Some(signal)) => write!(f, "killed by signal {signal}"),
            (None, None) => write!(f, "({})", self.0),
        }
    }
}

struct OutputSuffix<'a>(&'a str);

impl fmt::Display for OutputSuffix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            write!(f, " before answering")
        } else {
            write!(
                f,
                " before finishing its answer (it wrote {:?} so far)",
                self.0
            )
        }
    }
}

struct StderrSuffix<'a>(&'a str);

impl fmt::Display for StderrSuffix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            Ok(())
        } else {
            write!(f, "; stderr: {}", self.0)
        }
    }
}
