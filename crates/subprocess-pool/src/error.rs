//! Why a worker failed a call, or could not start.

use std::fmt;
use std::process::ExitStatus;
use std::time::Duration;

use crate::launch::SpawnError;
use crate::protocol::ProtocolError;

/// Why a worker could not start or could not answer a call. Every message says what went
/// wrong; those about a dead worker include the tail of its stderr.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// The worker process could not be started (missing program, not executable, bad
    /// working directory: the message names the path).
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    /// The worker exited or stayed silent before becoming ready.
    #[error("worker did not start: {reason}{}", StderrSuffix(stderr))]
    Startup {
        /// What happened.
        reason: String,
        /// The tail of its stderr.
        stderr: String,
    },
    /// The request took longer than the spec's `request_timeout`; the worker was killed.
    #[error("worker timed out after {after:?}; it was killed")]
    Timeout {
        /// The timeout.
        after: Duration,
    },
    /// The worker exited during the call.
    #[error("worker exited {}{}", ExitDescription(status), StderrSuffix(stderr))]
    Exited {
        /// How it ended.
        status: ExitStatus,
        /// The tail of its stderr.
        stderr: String,
    },
    /// The worker broke the protocol (garbage, an oversize frame, a mismatched id), or the
    /// request could not be encoded (then it was not sent).
    #[error("protocol error: {0}")]
    Protocol(#[from] ProtocolError),
    /// A pipe failed in a way that says nothing about the worker.
    #[error("i/o error talking to the worker: {0}")]
    Io(std::io::Error),
    /// An earlier call on this worker failed or was cancelled half-way, so its streams
    /// cannot be trusted.
    #[error("worker is unusable after an earlier failed or cancelled call")]
    Poisoned,
    /// The worker reached its `max_requests` or `max_age` and is being replaced.
    #[error("worker retired: it reached its request or age limit")]
    Retired,
}

impl RunnerError {
    /// An idle worker found unusable before it was lent (`"the idle worker {what}"`),
    /// reported as a start-up failure: the pool replaces it like one that failed to start.
    pub(crate) fn idle_worker_gone(what: &str) -> Self {
        RunnerError::Startup {
            reason: format!("the idle worker {what}"),
            stderr: String::new(),
        }
    }

    /// Whether the worker may still be used after this error: only a request refused
    /// before it was sent (invalid, or a frame over the limit) leaves it intact.
    pub fn worker_intact(&self) -> bool {
        matches!(
            self,
            RunnerError::Protocol(
                ProtocolError::InvalidRequest(_)
                    | ProtocolError::FrameTooLarge {
                        direction: "request",
                        ..
                    }
            )
        )
    }
}

struct ExitDescription<'a>(&'a ExitStatus);

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
