//! How requests and responses cross a worker's pipes.
//!
//! A [`Protocol`] names a request type, a response type, a type for the frames a worker
//! sends on its own (notifications, log lines, requests to the host), and a codec: a
//! [`tokio_util::codec::Encoder`] of requests (written to the worker's stdin) and a
//! [`tokio_util::codec::Decoder`] of frames (read from its stdout), which
//! [`Protocol::classify`] sorts into responses and messages. Ready protocols: [`Lines`],
//! [`Delimited`] (answers of several lines ending with a delimiter), [`LengthPrefixed`],
//! [`JsonRpc`] (JSON-RPC 2.0 over `Content-Length` framing, the LSP base protocol), and
//! Bazel's persistent-worker protocols [`BazelJson`] and [`BazelProto`] over
//! [`WorkRequest`] / [`WorkResponse`].
//!
//! # Which answer belongs to which request
//!
//! A caller gets the response to its own request or an error, never another call's
//! answer. The worker's stdout is read all the time, not only during a call, and:
//!
//! - a response that arrives while no request is outstanding (a second line, a stray
//!   print between requests) retires the worker as soon as it is read;
//! - before a request is sent, the runner asks the pipe whether it holds bytes not read
//!   yet and lets the reader deal with them first, and what the reader took off the pipe
//!   before the request was registered is tagged as older than it and cannot answer it, so
//!   output written before the request is never taken for its answer;
//! - responses that arrive together (in one read) cannot all be for the one outstanding
//!   request: the extra ones retire the worker, and under a protocol without ids the call
//!   fails too, since which one answers it cannot be told;
//! - where responses carry a unique id of their request ([`JsonRpc`], which numbers them),
//!   the id is checked.
//!
//! What no reader of a pipe can tell apart: a worker that writes an extra response
//! *after* the next request was sent, and before that request's own answer. The bytes
//! look exactly like the answer; only a unique id can tell them apart. [`JsonRpc`] has
//! one; the Bazel protocols only when callers give each request its own `request_id`
//! (singleplex requests all carry 0 by default); [`Lines`], [`Delimited`] and
//! [`LengthPrefixed`] have none. Use a protocol with ids for programs that may answer
//! twice.

use std::fmt::Debug;

use tokio_util::codec::{Decoder, Encoder};

pub use self::bazel::{Input, WorkRequest, WorkResponse};
pub use self::bazel_json::{BazelJson, BazelJsonFraming};
pub use self::bazel_proto::{BazelProto, BazelProtoFraming};
pub use self::cancellation::Cancellation;
pub use self::delimited::{Delimited, DelimitedFraming};
pub use self::error::{Direction, ProtocolError};
pub use self::json_rpc::{JsonRpc, JsonRpcFraming, RpcError, RpcId, RpcMessage};
pub use self::length_prefixed::{DEFAULT_MAX_FRAME, LengthPrefixed, LengthPrefixedFraming};
pub use self::lines::{DEFAULT_MAX_LINE, Lines, LinesFraming};

mod bazel;
mod bazel_json;
mod bazel_proto;
mod cancellation;
mod delimited;
mod error;
mod json_rpc;
mod length_prefixed;
mod lines;

/// What a protocol's decoder reads off a worker's stdout, before
/// [`Protocol::classify`] sorts it.
pub type Frame<P> = <<P as Protocol>::Codec as Decoder>::Item;

/// A frame from a worker, sorted: the answer to a request, or something it sent on its own.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming<R, M> {
    /// The answer to a request of the host's.
    Response {
        /// The id of the request it answers, for protocols with ids (`None` otherwise: it
        /// answers the one outstanding request).
        id: Option<u64>,
        /// The answer.
        response: R,
    },
    /// A frame that answers nothing: a notification, a log line, progress, or a request
    /// from the worker to the host. It goes to the pool's message handler, if any.
    Message(M),
}

/// A wire format for talking to a worker process.
///
/// Any error from the codec or from [`classify`](Protocol::classify) retires the worker it
/// came from, since its stream can no longer be trusted.
///
/// # Example: a protocol of your own
///
/// Lines, where the worker may also write log lines starting with `#`:
///
/// ```
/// use std::convert::Infallible;
/// use subprocess_pool::protocol::{Incoming, ProtocolError};
/// use subprocess_pool::Protocol;
/// use subprocess_pool::protocol::{Lines, LinesFraming};
///
/// #[derive(Clone)]
/// struct LinesWithLogs;
///
/// impl Protocol for LinesWithLogs {
///     type Request = String;
///     type Response = String;
///     type Message = String; // a log line
///     type Codec = LinesFraming;
///
///     fn codec(&self) -> LinesFraming {
///         Lines::default().codec()
///     }
///
///     fn classify(&self, line: String) -> Result<Incoming<String, String>, ProtocolError> {
///         Ok(match line.strip_prefix('#') {
///             Some(log) => Incoming::Message(log.trim().to_string()),
///             None => Incoming::Response { id: None, response: line },
///         })
///     }
/// }
/// # let _ = LinesWithLogs;
/// ```
pub trait Protocol: Clone + Send + Sync + 'static {
    /// What a caller sends.
    type Request: Send + 'static;
    /// What the worker answers.
    type Response: Send + Debug + 'static;
    /// What the worker sends on its own (notifications, logs, requests to the host):
    /// [`std::convert::Infallible`] for protocols where every frame is a response.
    type Message: Send + Debug + 'static;
    /// Frames requests onto stdin and frames off stdout. Its decoder must take exactly one
    /// frame's bytes from the buffer per item. One codec is made to encode the caller's
    /// requests, and one to decode what the worker sends (which also encodes the replies
    /// to the worker's own requests), so a codec's decoding state is never shared with the
    /// callers' encoding.
    type Codec: Encoder<Self::Request, Error = ProtocolError>
        + Decoder<Error = ProtocolError>
        + Send
        + 'static;

    /// A fresh codec (see [`Codec`](Protocol::Codec)).
    fn codec(&self) -> Self::Codec;

    /// Sorts a decoded frame: a response (with the id it carries, if the protocol has
    /// ids), or a message. An error retires the worker.
    fn classify(
        &self,
        frame: Frame<Self>,
    ) -> Result<Incoming<Self::Response, Self::Message>, ProtocolError>;

    /// Readies `request` to be sent as the worker's `sequence`-th request (from 1, unique
    /// per worker), and returns the id its response must carry: `None` for protocols
    /// without ids. [`JsonRpc`] writes `sequence` into the request; the Bazel protocols
    /// read the caller's `request_id`. An error refuses the request before it is sent
    /// (use [`ProtocolError::InvalidRequest`]). The default: no ids.
    fn prepare(
        &self,
        request: &mut Self::Request,
        sequence: u64,
    ) -> Result<Option<u64>, ProtocolError> {
        let _ = (request, sequence);
        Ok(None)
    }

    /// Whether several requests may be in flight on one worker at once
    /// ([`MultiplexPool`](crate::MultiplexPool)): each response carries the unique id
    /// [`prepare_multiplexed`](Protocol::prepare_multiplexed) gave its request. The
    /// default: no. [`JsonRpc`] says yes; the Bazel protocols do when built with
    /// `multiplex()`.
    fn multiplexes(&self) -> bool {
        false
    }

    /// Readies `request` to be sent as the worker's `sequence`-th request (from 1) while
    /// others may be in flight, and returns the id, unique among the worker's requests in
    /// flight, that its response will carry. The default: [`prepare`](Protocol::prepare),
    /// which must then give an id.
    fn prepare_multiplexed(
        &self,
        request: &mut Self::Request,
        sequence: u64,
    ) -> Result<u64, ProtocolError> {
        self.prepare(request, sequence)?.ok_or_else(|| {
            ProtocolError::InvalidRequest(
                "this protocol gives requests no id, so it cannot multiplex".into(),
            )
        })
    }

    /// What to do about the multiplexed request `id` when its caller gives up on it (its
    /// `request_timeout` passed, or the call was dropped). The default,
    /// [`Cancellation::Forget`], sends nothing and drops its answer when it comes.
    fn cancel(&self, id: u64) -> Cancellation<Self::Request> {
        let _ = id;
        Cancellation::Forget
    }

    /// Whether a worker speaking this protocol sends a frame before its first request (a
    /// REPL's banner and first prompt): that frame is then read and dropped while the
    /// worker starts, as [`WorkerSpec::skip_greeting`](crate::WorkerSpec::skip_greeting)
    /// asks for any protocol. Under a protocol without ids, an unread greeting would be
    /// taken for the answer to the first request, and every later answer for the one
    /// before it. The default: no greeting ([`Delimited::prompt`] says yes).
    fn greets_first(&self) -> bool {
        false
    }

    /// The reply owed to `message` when the pool's message handler gave none: a request
    /// from the worker must be answered, or the worker may wait for ever ([`JsonRpc`]
    /// answers "method not found"). The default: no reply.
    fn default_reply(&self, message: &Self::Message) -> Option<Self::Request> {
        let _ = message;
        None
    }
}
