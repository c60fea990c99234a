//! How requests and responses cross a worker's pipes.
//!
//! A [`Protocol`] names a request type, a response type and a codec: a
//! [`tokio_util::codec::Encoder`] of requests (written to the worker's stdin) and a
//! [`tokio_util::codec::Decoder`] of responses (read from its stdout). Ready protocols:
//! [`Lines`], [`LengthPrefixed`], and Bazel's persistent-worker protocols [`BazelJson`] and
//! [`BazelProto`] over [`WorkRequest`] / [`WorkResponse`].

use std::fmt::Debug;

use tokio_util::codec::{Decoder, Encoder};

pub use self::bazel::{Input, WorkRequest, WorkResponse};
pub use self::bazel_json::{BazelJson, BazelJsonFraming};
pub use self::bazel_proto::{BazelProto, BazelProtoFraming};
pub use self::error::ProtocolError;
pub use self::length_prefixed::{DEFAULT_MAX_FRAME, LengthPrefixed, LengthPrefixedFraming};
pub use self::lines::{DEFAULT_MAX_LINE, Lines, LinesFraming};

mod bazel;
mod bazel_json;
mod bazel_proto;
mod error;
mod length_prefixed;
mod lines;

/// A wire format for talking to a worker process: one request in, one response out.
///
/// Any error from the codec retires the worker it came from, since its stream can no
/// longer be trusted.
pub trait Protocol: Clone + Send + Sync + 'static {
    /// What a caller sends.
    type Request: Send + 'static;
    /// What the worker answers.
    type Response: Send + Debug + 'static;
    /// Frames requests onto stdin and responses off stdout. Its decoder must take exactly
    /// one response's bytes from the buffer: bytes left over after a response are output
    /// nobody asked for, and fail the call.
    type Codec: Encoder<Self::Request, Error = ProtocolError>
        + Decoder<Item = Self::Response, Error = ProtocolError>
        + Send
        + 'static;

    /// A fresh codec for one worker (one is made per worker, so codecs may keep state).
    fn codec(&self) -> Self::Codec;

    /// Checks that `response` answers `request` (e.g. Bazel's `requestId`); an error
    /// retires the worker. The default accepts any response.
    fn check_response(
        &self,
        request_id: u64,
        response: &Self::Response,
    ) -> Result<(), ProtocolError> {
        let _ = (request_id, response);
        Ok(())
    }

    /// The correlation id of `request`, handed to [`check_response`](Protocol::check_response)
    /// (0 for protocols without one).
    fn request_id(&self, request: &Self::Request) -> u64 {
        let _ = request;
        0
    }
}
