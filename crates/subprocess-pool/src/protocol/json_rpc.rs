//! JSON-RPC 2.0 over the `Content-Length` framing of the LSP base protocol.
//!
//! [`JsonRpc`] is the protocol; its messages ([`RpcMessage`], [`RpcId`], [`RpcError`])
//! and how they read and write as JSON are in `message`, and the `Content-Length` framing
//! ([`JsonRpcFraming`]) is in `framing`.

use serde_json::Value;

pub use self::framing::JsonRpcFraming;
use self::message::id_text;
pub use self::message::{RpcError, RpcId, RpcMessage};
use super::{Cancellation, Incoming, Protocol, ProtocolError};

mod framing;
mod message;

/// The default largest message body, each way: 16 MiB.
const DEFAULT_MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// How many bytes of a bad frame an error message quotes: enough to recognise what the
/// worker wrote, never the whole of a large body.
const QUOTE: usize = 200;

/// JSON-RPC 2.0 messages framed as in the LSP base protocol: each message is a header
/// section of `Name: value` lines (`Content-Length: N` is required, `Content-Type` and
/// other headers are ignored), a blank line, then `N` bytes of UTF-8 JSON.
///
/// Requests the host sends are numbered by the pool (see [`Protocol::prepare`]): the `id`
/// given to [`RpcMessage::request`] is replaced with the worker's request sequence number,
/// and the response carrying that id is the answer. An error response is an answer like
/// any other (`Err(RpcError)` as the [`Response`](Protocol::Response)): the worker ran
/// the request and said it failed. A response whose id the host never sent retires the
/// worker.
///
/// Requests and notifications the worker sends on its own go to the pool's message
/// handler; a request from the worker that the handler does not answer is answered
/// "method not found" (see [`Protocol::default_reply`]), so the worker never waits for
/// ever.
///
/// A message body longer than the limit is refused either way, on the way in as soon as
/// its `Content-Length` header is read: memory grows with the bytes that arrive, never
/// with the length a worker declares. Batches (JSON arrays of messages) are not
/// supported.
///
/// # Example
///
/// ```
/// use bytes::BytesMut;
/// use serde_json::json;
/// use subprocess_pool::Protocol;
/// use subprocess_pool::protocol::{Incoming, JsonRpc, RpcMessage};
/// use tokio_util::codec::{Decoder, Encoder};
///
/// let protocol = JsonRpc::with_max_message(1024);
/// let mut codec = protocol.codec();
///
/// // The pool numbers each request before sending it: this is its first.
/// let mut request = RpcMessage::request("add", json!([1, 2]));
/// assert_eq!(protocol.prepare(&mut request, 1).unwrap(), Some(1));
/// let mut wire = BytesMut::new();
/// codec.encode(request, &mut wire).unwrap();
/// assert_eq!(
///     &wire[..],
///     b"Content-Length: 54\r\n\r\n{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"add\",\"params\":[1,2]}"
/// );
///
/// let mut answer = BytesMut::from(
///     &b"Content-Length: 35\r\n\r\n{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":3}"[..],
/// );
/// let frame = codec.decode(&mut answer).unwrap().unwrap();
/// assert_eq!(
///     protocol.classify(frame).unwrap(),
///     Incoming::Response { id: Some(1), response: Ok(json!(3)) }
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonRpc {
    max_message: usize,
}

impl Default for JsonRpc {
    /// Message bodies of at most 16 MiB each way.
    fn default() -> Self {
        Self::with_max_message(DEFAULT_MAX_MESSAGE)
    }
}

impl JsonRpc {
    /// Message bodies of at most `max_message` bytes of JSON each way (not counting the
    /// header section).
    pub fn with_max_message(max_message: usize) -> Self {
        Self { max_message }
    }
}

impl Protocol for JsonRpc {
    type Request = RpcMessage;
    type Response = Result<Value, RpcError>;
    type Message = RpcMessage;
    type Codec = JsonRpcFraming;

    fn codec(&self) -> JsonRpcFraming {
        JsonRpcFraming::new(self.max_message)
    }

    /// A response with a non-negative numeric id answers the request with that id; any
    /// other id is an error, since the pool only sends such ids. Requests and
    /// notifications are messages.
    fn classify(
        &self,
        frame: RpcMessage,
    ) -> Result<Incoming<Result<Value, RpcError>, RpcMessage>, ProtocolError> {
        match frame {
            RpcMessage::Response { id, result } => match &id {
                RpcId::Number(number) if *number >= 0 => Ok(Incoming::Response {
                    // Cannot fail: `number` is non-negative.
                    id: u64::try_from(*number).ok(),
                    response: result,
                }),
                // Say what the worker answered: an error response with a null id is how
                // a worker reports a request it could not read at all.
                _ => Err(ProtocolError::Malformed(format!(
                    "response with id {}, which the host never sent ({})",
                    id_text(&id),
                    match result {
                        Ok(value) => format!("result {}", quote(value.to_string().as_bytes())),
                        Err(error) => error.to_string(),
                    }
                ))),
            },
            message => Ok(Incoming::Message(message)),
        }
    }

    /// Writes `sequence` as the id of a request. Notifications and responses are refused:
    /// they get no answer to wait for.
    fn prepare(
        &self,
        request: &mut RpcMessage,
        sequence: u64,
    ) -> Result<Option<u64>, ProtocolError> {
        match request {
            RpcMessage::Request { id, .. } => {
                let number = i64::try_from(sequence).map_err(|_| {
                    ProtocolError::InvalidRequest(format!(
                        "request number {sequence} does not fit a JSON-RPC id (at most {})",
                        i64::MAX
                    ))
                })?;
                *id = RpcId::Number(number);
                Ok(Some(sequence))
            }
            RpcMessage::Notification { .. } => Err(ProtocolError::InvalidRequest(
                "a notification gets no answer; send it with Runner::send".into(),
            )),
            RpcMessage::Response { .. } => Err(ProtocolError::InvalidRequest(
                "a response is sent only as the reply to a request from the worker".into(),
            )),
        }
    }

    /// Requests carry the ids the pool gives them, so any number may be in flight.
    fn multiplexes(&self) -> bool {
        true
    }

    /// A `$/cancelRequest` notification naming the request (the LSP's cancellation; a
    /// JSON-RPC server that does not know it ignores it, as it must any unknown
    /// notification).
    fn cancel(&self, id: u64) -> Cancellation<RpcMessage> {
        Cancellation::Send(RpcMessage::notification(
            "$/cancelRequest",
            serde_json::json!({ "id": id }),
        ))
    }

    /// "Method not found" for a request from the worker; nothing for a notification.
    fn default_reply(&self, message: &RpcMessage) -> Option<RpcMessage> {
        match message {
            RpcMessage::Request { id, method, .. } => Some(RpcMessage::reply(
                id.clone(),
                Err(RpcError::new(
                    RpcError::METHOD_NOT_FOUND,
                    format!("method not found: {method}"),
                )),
            )),
            RpcMessage::Notification { .. } | RpcMessage::Response { .. } => None,
        }
    }
}

/// At most [`QUOTE`] bytes of `bytes`, quoted and escaped for an error message, with the
/// whole length when it is cut.
fn quote(bytes: &[u8]) -> String {
    let shown = String::from_utf8_lossy(&bytes[..bytes.len().min(QUOTE)]);
    if bytes.len() > QUOTE {
        format!("{shown:?}... ({} bytes)", bytes.len())
    } else {
        format!("{shown:?}")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn responses_with_numeric_ids_answer_and_anything_else_is_a_message() {
        let protocol = JsonRpc::default();
        assert_eq!(
            protocol
                .classify(RpcMessage::reply(RpcId::Number(5), Ok(json!(1))))
                .unwrap(),
            Incoming::Response {
                id: Some(5),
                response: Ok(json!(1))
            }
        );
        let failed = Err(RpcError::new(-32000, "failed"));
        assert_eq!(
            protocol
                .classify(RpcMessage::reply(RpcId::Number(6), failed.clone()))
                .unwrap(),
            Incoming::Response {
                id: Some(6),
                response: failed
            }
        );
        for message in [
            RpcMessage::request("from/worker", json!({})),
            RpcMessage::notification("progress", json!([50])),
        ] {
            assert_eq!(
                protocol.classify(message.clone()).unwrap(),
                Incoming::Message(message)
            );
        }
    }

    #[test]
    fn responses_to_ids_the_host_never_sends_are_refused_naming_the_id() {
        let protocol = JsonRpc::default();
        for (id, named) in [
            (RpcId::String("seven".into()), "id \"seven\""),
            (RpcId::Null, "id null"),
            (RpcId::Number(-1), "id -1"),
        ] {
            let error = protocol
                .classify(RpcMessage::reply(
                    id,
                    Err(RpcError::new(RpcError::PARSE_ERROR, "cannot read")),
                ))
                .unwrap_err();
            assert!(matches!(error, ProtocolError::Malformed(_)), "{error}");
            let text = error.to_string();
            assert!(
                text.contains(named) && text.contains("cannot read"),
                "{text}"
            );
        }
    }

    #[test]
    fn prepare_numbers_requests_and_refuses_what_gets_no_answer() {
        let protocol = JsonRpc::default();
        for sequence in [1, 2, i64::MAX as u64] {
            let mut request = RpcMessage::request("m", Value::Null);
            assert_eq!(
                protocol.prepare(&mut request, sequence).unwrap(),
                Some(sequence)
            );
            assert!(
                matches!(request, RpcMessage::Request { id: RpcId::Number(n), .. } if n as u64 == sequence)
            );
        }
        let mut request = RpcMessage::request("m", Value::Null);
        let error = protocol
            .prepare(&mut request, i64::MAX as u64 + 1)
            .unwrap_err();
        assert!(matches!(error, ProtocolError::InvalidRequest(_)), "{error}");

        let mut notification = RpcMessage::notification("n", Value::Null);
        let error = protocol.prepare(&mut notification, 1).unwrap_err();
        assert!(error.to_string().contains("Runner::send"), "{error}");
        let mut response = RpcMessage::reply(RpcId::Number(1), Ok(Value::Null));
        let error = protocol.prepare(&mut response, 1).unwrap_err();
        assert!(matches!(error, ProtocolError::InvalidRequest(_)), "{error}");
    }

    #[test]
    fn a_request_from_the_worker_gets_method_not_found_and_a_notification_nothing() {
        let protocol = JsonRpc::default();
        let request = RpcMessage::Request {
            id: RpcId::String("w1".into()),
            method: "workspace/configuration".into(),
            params: None,
        };
        let reply = protocol.default_reply(&request).unwrap();
        assert_eq!(
            reply,
            RpcMessage::reply(
                RpcId::String("w1".into()),
                Err(RpcError::new(
                    RpcError::METHOD_NOT_FOUND,
                    "method not found: workspace/configuration"
                ))
            )
        );
        assert_eq!(reply.method(), None);
        assert_eq!(request.method(), Some("workspace/configuration"));
        let notification = RpcMessage::notification("n", Value::Null);
        assert_eq!(protocol.default_reply(&notification), None);
    }
}
