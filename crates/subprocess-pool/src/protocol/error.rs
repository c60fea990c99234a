//! What can go wrong on the wire.

use std::fmt;

/// A request that cannot be sent, or a response that cannot be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// Reading or writing the pipe failed.
    #[error("pipe i/o failed")]
    Io(#[source] std::io::Error),
    /// The request cannot be encoded in this protocol (e.g. a newline under `Lines`); it
    /// was not sent, and the worker is unharmed.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// A frame (line, length-prefixed message) is longer than the limit.
    #[error("{direction} frame of {size} bytes exceeds the limit of {limit} bytes")]
    FrameTooLarge {
        /// Which way the frame was going: a request refused before it was sent (the
        /// worker is unharmed), or a response the worker wrote.
        direction: Direction,
        /// The frame's size, or how much was read before giving up.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The worker wrote something that is not a valid response.
    #[error("malformed response: {0}")]
    Malformed(String),
    /// The worker sent a response while no request was outstanding, or more output right
    /// after a response under a protocol without ids: which answer belongs to which
    /// request can no longer be told.
    #[error("output nobody asked for: {0}")]
    Unasked(String),
    /// The response answers another request.
    #[error("response is for request {got}, expected {expected}")]
    Mismatch {
        /// The request id sent.
        expected: u64,
        /// The request id received.
        got: u64,
    },
}

impl ProtocolError {
    /// The same error again, for each request in flight on a multiplexed worker it failed
    /// (an i/o error keeps its kind and text).
    pub(crate) fn duplicate(&self) -> Self {
        match self {
            Self::Io(error) => Self::Io(std::io::Error::new(error.kind(), error.to_string())),
            Self::InvalidRequest(text) => Self::InvalidRequest(text.clone()),
            Self::FrameTooLarge {
                direction,
                size,
                limit,
            } => Self::FrameTooLarge {
                direction: *direction,
                size: *size,
                limit: *limit,
            },
            Self::Malformed(text) => Self::Malformed(text.clone()),
            Self::Unasked(text) => Self::Unasked(text.clone()),
            Self::Mismatch { expected, got } => Self::Mismatch {
                expected: *expected,
                got: *got,
            },
        }
    }
}

/// Which way a frame crosses the pipes, in [`ProtocolError::FrameTooLarge`]. Displays as
/// `request` or `response`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// To the worker, on its stdin.
    Request,
    /// From the worker, on its stdout.
    Response,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Request => "request",
            Direction::Response => "response",
        })
    }
}

impl From<std::io::Error> for ProtocolError {
    fn from(error: std::io::Error) -> Self {
        ProtocolError::Io(error)
    }
}
