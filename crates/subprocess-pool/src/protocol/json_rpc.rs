//! JSON-RPC 2.0 over the `Content-Length` framing of the LSP base protocol.

use bytes::{Buf, BytesMut};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio_util::codec::{Decoder, Encoder};

use super::{Incoming, Protocol, ProtocolError};

/// The default largest message body, each way: 16 MiB.
const DEFAULT_MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// The longest header section (all header lines and the blank line after them). Real
/// headers are a few dozen bytes; the limit stops a worker that writes something else to
/// stdout from being buffered for ever while we wait for a blank line.
const MAX_HEADER: usize = 8 * 1024;

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

/// The id of a JSON-RPC request, echoed by its response: a number, a string or `null`.
///
/// Serializes untagged, as the bare JSON number, string or `null`. The pool only sends
/// non-negative numbers; strings and `null` appear in requests from the worker.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RpcId {
    /// A numeric id. Ids that are not integers in the range of `i64` are refused.
    Number(i64),
    /// A string id.
    String(String),
    /// `null`: the id of an error response to a request whose id could not be read.
    Null,
}

/// Any JSON-RPC 2.0 message: what the host sends, and what the worker's codec decodes.
///
/// `params: None` is sent with no `"params"` member; `Some(value)` is sent as is (the
/// JSON-RPC specification asks for an array or an object, which is not checked).
#[derive(Debug, Clone, PartialEq)]
pub enum RpcMessage {
    /// A call that expects a response with the same id.
    Request {
        /// The id the response must echo. The pool overwrites it on requests the host
        /// sends (see [`Protocol::prepare`]).
        id: RpcId,
        /// The method to call.
        method: String,
        /// The arguments, if any.
        params: Option<Value>,
    },
    /// A call that expects no response.
    Notification {
        /// The method to call.
        method: String,
        /// The arguments, if any.
        params: Option<Value>,
    },
    /// The answer to a request: its result, or the error it failed with.
    Response {
        /// The id of the request it answers.
        id: RpcId,
        /// `"result"` (`Ok`) or `"error"` (`Err`) on the wire. A `"result": null` is
        /// `Ok(Value::Null)`.
        result: Result<Value, RpcError>,
    },
}

impl RpcMessage {
    /// A request to call `method` with `params` (`Value::Null` for no `"params"` member).
    ///
    /// Its id is a placeholder, `RpcId::Number(0)`: the pool gives every request the
    /// worker's next sequence number when it is sent.
    pub fn request(method: impl Into<String>, params: Value) -> Self {
        Self::Request {
            id: RpcId::Number(0),
            method: method.into(),
            params: params_member(params),
        }
    }

    /// A notification of `method` with `params` (`Value::Null` for no `"params"` member).
    pub fn notification(method: impl Into<String>, params: Value) -> Self {
        Self::Notification {
            method: method.into(),
            params: params_member(params),
        }
    }

    /// The response to the request with id `id`, typically one the worker sent to the
    /// host.
    pub fn reply(id: RpcId, result: Result<Value, RpcError>) -> Self {
        Self::Response { id, result }
    }

    /// The method of a request or notification; `None` for a response.
    pub fn method(&self) -> Option<&str> {
        match self {
            Self::Request { method, .. } | Self::Notification { method, .. } => Some(method),
            Self::Response { .. } => None,
        }
    }
}

/// `null` params mean none: JSON-RPC allows params to be omitted but not to be `null`, and
/// a constructor taking a `Value` needs some way to say "no params".
fn params_member(params: Value) -> Option<Value> {
    match params {
        Value::Null => None,
        params => Some(params),
    }
}

/// The error object of an error response: `{"code": …, "message": …, "data": …}`.
///
/// Displays as `JSON-RPC error {code}: {message}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("JSON-RPC error {code}: {message}")]
pub struct RpcError {
    /// What kind of error: one of the constants on this type, or a code of the
    /// application's (the specification reserves -32768 to -32000).
    pub code: i64,
    /// A short description of the error.
    pub message: String,
    /// Anything more about the error (omitted on the wire when `None`; a `"data": null`
    /// is read as `None`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl RpcError {
    /// The message was not valid JSON.
    pub const PARSE_ERROR: i64 = -32700;
    /// The JSON was not a valid request.
    pub const INVALID_REQUEST: i64 = -32600;
    /// No such method, or it is not available.
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// The params do not suit the method.
    pub const INVALID_PARAMS: i64 = -32602;
    /// The method failed inside.
    pub const INTERNAL_ERROR: i64 = -32603;

    /// An error with `code` and `message`, and no data.
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            data: None,
        }
    }
}

impl Protocol for JsonRpc {
    type Request = RpcMessage;
    type Response = Result<Value, RpcError>;
    type Message = RpcMessage;
    type Codec = JsonRpcFraming;

    fn codec(&self) -> JsonRpcFraming {
        JsonRpcFraming {
            max_message: self.max_message,
            state: State::default(),
        }
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

/// The codec of [`JsonRpc`]: encodes any [`RpcMessage`] (requests, notifications, and
/// replies to the worker's requests) and decodes one message per frame.
///
/// The decoder takes a message's header section from the buffer once it has read it
/// whole, and its body once that has arrived whole; it never reserves room for a body
/// before the bytes are there.
#[derive(Debug)]
pub struct JsonRpcFraming {
    max_message: usize,
    state: State,
}

/// Where the decoder is within the current message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading the header section, which stays in the buffer until the blank line ends it.
    Header {
        /// Bytes of whole header lines already read, so each byte is looked at once even
        /// when the header arrives a byte at a time.
        read: usize,
        /// The `Content-Length` read so far.
        length: Option<usize>,
    },
    /// The header section is consumed; waiting for `length` bytes of body.
    Body { length: usize },
}

impl Default for State {
    fn default() -> Self {
        Self::Header {
            read: 0,
            length: None,
        }
    }
}

impl Encoder<RpcMessage> for JsonRpcFraming {
    type Error = ProtocolError;

    fn encode(&mut self, message: RpcMessage, dst: &mut BytesMut) -> Result<(), ProtocolError> {
        let json = serde_json::to_vec(&Outgoing::from(&message)).map_err(|error| {
            ProtocolError::InvalidRequest(format!("cannot encode as JSON: {error}"))
        })?;
        if json.len() > self.max_message {
            return Err(ProtocolError::FrameTooLarge {
                direction: "request",
                size: json.len(),
                limit: self.max_message,
            });
        }
        let header = format!("Content-Length: {}\r\n\r\n", json.len());
        dst.reserve(header.len() + json.len());
        dst.extend_from_slice(header.as_bytes());
        dst.extend_from_slice(&json);
        Ok(())
    }
}

impl Decoder for JsonRpcFraming {
    type Item = RpcMessage;
    type Error = ProtocolError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<RpcMessage>, ProtocolError> {
        let length = match self.state {
            State::Body { length } => length,
            State::Header { read, length } => {
                let Some(length) = self.read_header(src, read, length)? else {
                    return Ok(None);
                };
                length
            }
        };
        // No `reserve(length)`: the buffer grows as bytes arrive, so a worker that
        // declares a large body and sends little of it costs only what it sent.
        if src.len() < length {
            return Ok(None);
        }
        let body = src.split_to(length);
        self.state = State::default();
        parse(&body).map(Some)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<RpcMessage>, ProtocolError> {
        match self.decode(src)? {
            Some(message) => Ok(Some(message)),
            // Header lines stay in `src` until the blank line, so an empty buffer in the
            // header state means the stream ended between messages.
            None if src.is_empty() && matches!(self.state, State::Header { .. }) => Ok(None),
            None => Err(ProtocolError::Malformed(format!(
                "the stream ended in the middle of a message ({} bytes of it unread)",
                src.len()
            ))),
        }
    }
}

impl JsonRpcFraming {
    /// Reads header lines from `src[read..]` until the blank line. Returns the body's
    /// length once the header section is whole (and consumed from `src`), `None` while it
    /// is not, keeping the progress in `self.state`.
    fn read_header(
        &mut self,
        src: &mut BytesMut,
        mut read: usize,
        mut length: Option<usize>,
    ) -> Result<Option<usize>, ProtocolError> {
        // `read` only counts bytes of this buffer, but a caller who emptied the buffer
        // between calls must not make it index out of range.
        if read > src.len() {
            (read, length) = (0, None);
        }
        loop {
            let rest = &src[read..src.len().min(MAX_HEADER)];
            let Some(newline) = rest.iter().position(|&byte| byte == b'\n') else {
                if src.len() >= MAX_HEADER {
                    return Err(ProtocolError::Malformed(format!(
                        "no end of the header section in its first {MAX_HEADER} bytes: {}",
                        quote(&src[..MAX_HEADER])
                    )));
                }
                self.state = State::Header { read, length };
                return Ok(None);
            };
            let line = &rest[..newline];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            read += newline + 1;
            if line.is_empty() {
                let Some(length) = length else {
                    return Err(ProtocolError::Malformed(format!(
                        "no Content-Length header in {}",
                        quote(&src[..read])
                    )));
                };
                src.advance(read);
                self.state = State::Body { length };
                return Ok(Some(length));
            }
            if let Some(declared) = self.header_line(line)? {
                if length.is_some_and(|length| length != declared) {
                    return Err(ProtocolError::Malformed(format!(
                        "two different Content-Length headers in {}",
                        quote(&src[..read])
                    )));
                }
                length = Some(declared);
            }
        }
    }

    /// Reads one header line: the declared length if it is `Content-Length`, `None` for
    /// any other header.
    fn header_line(&self, line: &[u8]) -> Result<Option<usize>, ProtocolError> {
        let bad = |what: &str| ProtocolError::Malformed(format!("{what}: {}", quote(line)));
        if !line.is_ascii() {
            return Err(bad("header line is not ASCII"));
        }
        let Some(colon) = line.iter().position(|&byte| byte == b':') else {
            return Err(bad("header line is not `Name: value`"));
        };
        let name = line[..colon].trim_ascii();
        if !name.eq_ignore_ascii_case(b"content-length") {
            return Ok(None);
        }
        let value = line[colon + 1..].trim_ascii();
        // Digits only: `usize::from_str` would also take a sign.
        if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
            return Err(bad("Content-Length is not a number"));
        }
        // All ASCII, checked above.
        let digits = std::str::from_utf8(value).unwrap_or_default();
        let declared = digits
            .parse::<usize>()
            .map_err(|_| bad("Content-Length is too large to be a length"))?;
        // Refused from the header alone, before a byte of the body is buffered.
        if declared > self.max_message {
            return Err(ProtocolError::FrameTooLarge {
                direction: "response",
                size: declared,
                limit: self.max_message,
            });
        }
        Ok(Some(declared))
    }
}

/// The wire form of an outgoing message, borrowing from it.
#[derive(Serialize)]
struct Outgoing<'a> {
    jsonrpc: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a RpcId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    method: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    params: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a RpcError>,
}

impl<'a> From<&'a RpcMessage> for Outgoing<'a> {
    fn from(message: &'a RpcMessage) -> Self {
        let mut outgoing = Outgoing {
            jsonrpc: "2.0",
            id: None,
            method: None,
            params: None,
            result: None,
            error: None,
        };
        match message {
            RpcMessage::Request { id, method, params } => {
                outgoing.id = Some(id);
                outgoing.method = Some(method);
                outgoing.params = params.as_ref();
            }
            RpcMessage::Notification { method, params } => {
                outgoing.method = Some(method);
                outgoing.params = params.as_ref();
            }
            RpcMessage::Response { id, result } => {
                outgoing.id = Some(id);
                match result {
                    Ok(value) => outgoing.result = Some(value),
                    Err(error) => outgoing.error = Some(error),
                }
            }
        }
        outgoing
    }
}

/// Reads a message body: a JSON object that is a request, a notification or a response.
/// Members other than those of JSON-RPC are ignored.
fn parse(body: &[u8]) -> Result<RpcMessage, ProtocolError> {
    let bad = |what: String| ProtocolError::Malformed(format!("{what}: {}", quote(body)));
    let value: Value =
        serde_json::from_slice(body).map_err(|error| bad(format!("body is not JSON ({error})")))?;
    let mut object: Map<String, Value> = match value {
        Value::Object(object) => object,
        Value::Array(_) => {
            return Err(ProtocolError::Malformed("batches are not supported".into()));
        }
        _ => return Err(bad("a JSON-RPC message must be an object".into())),
    };
    match object.remove("jsonrpc") {
        // Lenient: a missing version changes nothing about how the message reads.
        None => {}
        Some(Value::String(version)) if version == "2.0" => {}
        Some(version) => return Err(bad(format!("not JSON-RPC 2.0 (\"jsonrpc\": {version})"))),
    }
    let id = object.remove("id").map(id_from).transpose().map_err(bad)?;
    let method = match object.remove("method") {
        None => None,
        Some(Value::String(method)) => Some(method),
        Some(_) => return Err(bad("\"method\" is not a string".into())),
    };
    let params = object.remove("params");
    let result = object.remove("result");
    let error = object.remove("error");
    match (method, id, result, error) {
        (Some(method), Some(id), None, None) => Ok(RpcMessage::Request { id, method, params }),
        (Some(method), None, None, None) => Ok(RpcMessage::Notification { method, params }),
        (Some(_), ..) => Err(bad("both a \"method\" and a \"result\" or \"error\"".into())),
        (None, Some(id), Some(result), None) => Ok(RpcMessage::Response {
            id,
            result: Ok(result),
        }),
        (None, Some(id), None, Some(error)) => {
            let error = serde_json::from_value(error).map_err(|error| {
                bad(format!(
                    "\"error\" is not {{code, message, data}} ({error})"
                ))
            })?;
            Ok(RpcMessage::Response {
                id,
                result: Err(error),
            })
        }
        (None, Some(_), Some(_), Some(_)) => Err(bad("both a \"result\" and an \"error\"".into())),
        (None, Some(_), None, None) => {
            Err(bad("a response without \"result\" or \"error\"".into()))
        }
        (None, None, ..) => Err(bad("neither a \"method\" nor an \"id\"".into())),
    }
}

/// An id as read from the wire, with a message saying why when it is not one.
fn id_from(value: Value) -> Result<RpcId, String> {
    match value {
        Value::Null => Ok(RpcId::Null),
        Value::String(id) => Ok(RpcId::String(id)),
        Value::Number(number) => number
            .as_i64()
            .map(RpcId::Number)
            .ok_or_else(|| format!("id {number} is not an integer that fits an i64")),
        other => Err(format!("id {other} is not a number, a string or null")),
    }
}

/// An id as JSON text, for error messages: `7`, `"abc"` or `null`.
fn id_text(id: &RpcId) -> String {
    match id {
        RpcId::Number(number) => number.to_string(),
        RpcId::String(id) => quote(id.as_bytes()),
        RpcId::Null => "null".into(),
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

    fn codec(limit: usize) -> JsonRpcFraming {
        JsonRpc::with_max_message(limit).codec()
    }

    /// `body` framed with a `Content-Length` header.
    fn framed(body: &str) -> BytesMut {
        BytesMut::from(format!("Content-Length: {}\r\n\r\n{body}", body.len()).as_bytes())
    }

    fn encoded(message: RpcMessage) -> BytesMut {
        let mut wire = BytesMut::new();
        codec(1024).encode(message, &mut wire).unwrap();
        wire
    }

    fn decode_one(mut wire: BytesMut) -> Result<Option<RpcMessage>, ProtocolError> {
        codec(1024).decode(&mut wire)
    }

    fn malformed(wire: BytesMut) -> String {
        match decode_one(wire) {
            Err(ProtocolError::Malformed(message)) => message,
            other => panic!("expected a malformed response, got {other:?}"),
        }
    }

    #[test]
    fn every_kind_of_message_round_trips() {
        let messages = [
            RpcMessage::Request {
                id: RpcId::Number(3),
                method: "add".into(),
                params: Some(json!({"a": 1, "b": [true, null]})),
            },
            RpcMessage::Request {
                id: RpcId::String("abc".into()),
                method: "shutdown".into(),
                params: None,
            },
            RpcMessage::Request {
                id: RpcId::Null,
                method: "odd".into(),
                params: Some(json!([])),
            },
            RpcMessage::notification("log", json!({"text": "line\nbreak é"})),
            RpcMessage::notification("exit", Value::Null),
            RpcMessage::reply(RpcId::Number(7), Ok(json!({"sum": 3}))),
            RpcMessage::reply(RpcId::Number(8), Ok(Value::Null)),
            RpcMessage::reply(
                RpcId::String("x".into()),
                Err(RpcError {
                    code: -32000,
                    message: "boom".into(),
                    data: Some(json!({"why": "because"})),
                }),
            ),
            RpcMessage::reply(RpcId::Null, Err(RpcError::new(RpcError::PARSE_ERROR, "?"))),
        ];
        let mut sender = codec(1024);
        let mut wire = BytesMut::new();
        for message in &messages {
            sender.encode(message.clone(), &mut wire).unwrap();
        }
        let mut receiver = codec(1024);
        for message in messages {
            assert_eq!(receiver.decode(&mut wire).unwrap(), Some(message));
        }
        assert_eq!(receiver.decode(&mut wire).unwrap(), None);
        assert!(wire.is_empty());
    }

    #[test]
    fn the_wire_form_says_jsonrpc_2_0_and_omits_absent_members() {
        let wire = encoded(RpcMessage::request("shutdown", Value::Null));
        assert_eq!(
            &wire[..],
            b"Content-Length: 44\r\n\r\n{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"shutdown\"}"
        );
        let wire = encoded(RpcMessage::notification("note", json!([1])));
        assert!(
            wire.ends_with(b"\r\n\r\n{\"jsonrpc\":\"2.0\",\"method\":\"note\",\"params\":[1]}"),
            "{wire:?}"
        );
        let wire = encoded(RpcMessage::reply(RpcId::Number(1), Ok(Value::Null)));
        assert!(
            wire.ends_with(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":null}"),
            "{wire:?}"
        );
        let wire = encoded(RpcMessage::reply(
            RpcId::Number(2),
            Err(RpcError::new(-1, "no")),
        ));
        assert!(
            wire.ends_with(
                b"{\"jsonrpc\":\"2.0\",\"id\":2,\"error\":{\"code\":-1,\"message\":\"no\"}}"
            ),
            "{wire:?}"
        );
    }

    #[test]
    fn messages_arriving_a_byte_at_a_time_are_decoded_once_whole() {
        let mut wire = encoded(RpcMessage::notification("one", json!({"n": 1})));
        wire.extend_from_slice(&encoded(RpcMessage::reply(
            RpcId::Number(2),
            Ok(json!("two")),
        )));
        let mut receiver = codec(1024);
        let mut arriving = BytesMut::new();
        let mut messages = Vec::new();
        for byte in wire {
            arriving.extend_from_slice(&[byte]);
            if let Some(message) = receiver.decode(&mut arriving).unwrap() {
                messages.push(message);
            }
        }
        assert_eq!(
            messages,
            [
                RpcMessage::notification("one", json!({"n": 1})),
                RpcMessage::reply(RpcId::Number(2), Ok(json!("two"))),
            ]
        );
        assert!(arriving.is_empty());
        assert_eq!(receiver.decode_eof(&mut arriving).unwrap(), None);
    }

    #[test]
    fn header_names_are_case_insensitive_and_other_headers_are_ignored() {
        let body = r#"{"jsonrpc":"2.0","id":1,"result":true}"#;
        let wire = format!(
            "content-type: application/vscode-jsonrpc; charset=utf-8\r\n\
             CONTENT-LENGTH:{}\nX-Unknown: ignored\r\n\r\n{body}",
            body.len()
        );
        assert_eq!(
            decode_one(BytesMut::from(wire.as_bytes())).unwrap(),
            Some(RpcMessage::reply(RpcId::Number(1), Ok(json!(true))))
        );
    }

    #[test]
    fn an_oversize_response_is_refused_from_its_header_alone() {
        let mut wire = BytesMut::from(&b"Content-Length: 1000\r\n"[..]);
        let error = codec(64).decode(&mut wire).unwrap_err();
        assert!(
            matches!(
                error,
                ProtocolError::FrameTooLarge {
                    direction: "response",
                    size: 1000,
                    limit: 64
                }
            ),
            "{error}"
        );
    }

    #[test]
    fn huge_declared_lengths_neither_overflow_nor_allocate() {
        let mut wire = BytesMut::from(&b"Content-Length: 18446744073709551615\r\n\r\n{"[..]);
        let error = codec(DEFAULT_MAX_MESSAGE).decode(&mut wire).unwrap_err();
        if usize::BITS == 64 {
            assert!(
                matches!(
                    error,
                    ProtocolError::FrameTooLarge {
                        size: usize::MAX,
                        ..
                    }
                ),
                "{error}"
            );
        } else {
            assert!(matches!(error, ProtocolError::Malformed(_)), "{error}");
        }
        assert!(wire.capacity() < 1024);

        let mut wire = BytesMut::from(&b"Content-Length: 99999999999999999999999\r\n\r\n"[..]);
        let error = codec(DEFAULT_MAX_MESSAGE).decode(&mut wire).unwrap_err();
        assert!(
            error.to_string().contains("too large to be a length"),
            "{error}"
        );

        // A length under the limit, with the body still to come: nothing is reserved.
        let mut wire = BytesMut::from(&b"Content-Length: 16000000\r\n\r\n{"[..]);
        let mut receiver = codec(DEFAULT_MAX_MESSAGE);
        assert_eq!(receiver.decode(&mut wire).unwrap(), None);
        assert!(wire.capacity() < 1024, "{}", wire.capacity());
    }

    #[test]
    fn a_missing_or_unreadable_content_length_is_malformed() {
        let message = malformed(BytesMut::from(&b"Content-Type: x\r\n\r\n{}"[..]));
        assert!(message.contains("no Content-Length"), "{message}");
        for value in ["", "abc", "-1", "+5", "1.5"] {
            let wire = format!("Content-Length: {value}\r\n\r\n{{}}");
            let message = malformed(BytesMut::from(wire.as_bytes()));
            assert!(message.contains("not a number"), "{value}: {message}");
        }
        let message = malformed(BytesMut::from(
            &b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n"[..],
        ));
        assert!(message.contains("two different"), "{message}");
    }

    #[test]
    fn output_that_is_not_a_header_is_refused_at_once() {
        let message = malformed(BytesMut::from(&b"hello from a stray print\n"[..]));
        assert!(message.contains("stray print"), "{message}");
        let message = malformed(BytesMut::from(&b"N\xc3\xa4me: v\r\n"[..]));
        assert!(message.contains("not ASCII"), "{message}");
    }

    #[test]
    fn a_header_section_is_not_buffered_past_its_limit() {
        let mut wire = BytesMut::from(vec![b'x'; MAX_HEADER - 1].as_slice());
        let mut receiver = codec(1024);
        assert_eq!(receiver.decode(&mut wire).unwrap(), None);
        wire.extend_from_slice(b"x");
        let error = receiver.decode(&mut wire).unwrap_err();
        assert!(
            error.to_string().contains("no end of the header"),
            "{error}"
        );
        // The quote is short, however long the junk.
        assert!(error.to_string().len() < 400, "{error}");
    }

    #[test]
    fn a_body_that_is_not_json_is_malformed_and_quoted_briefly() {
        let message = malformed(framed("{not json"));
        assert!(
            message.contains("not JSON") && message.contains("{not json"),
            "{message}"
        );
        let long = format!("[{}", "9,".repeat(400));
        let message = malformed(framed(&long));
        assert!(message.len() < 400, "{message}");
        let message = malformed(BytesMut::from(&b"Content-Length: 3\r\n\r\n\"\xff\""[..]));
        assert!(message.contains("not JSON"), "{message}");
    }

    #[test]
    fn batches_are_refused() {
        let message = malformed(framed(r#"[{"jsonrpc":"2.0","method":"a"}]"#));
        assert_eq!(message, "batches are not supported");
    }

    #[test]
    fn the_version_may_be_missing_but_not_wrong() {
        assert_eq!(
            decode_one(framed(r#"{"method":"m","extra":1}"#)).unwrap(),
            Some(RpcMessage::Notification {
                method: "m".into(),
                params: None
            })
        );
        let message = malformed(framed(r#"{"jsonrpc":"1.0","method":"m"}"#));
        assert!(message.contains("not JSON-RPC 2.0"), "{message}");
    }

    #[test]
    fn bodies_that_are_no_message_are_malformed() {
        for (body, why) in [
            ("42", "must be an object"),
            (r#"{"jsonrpc":"2.0"}"#, "neither"),
            (r#"{"id":1}"#, r#"without "result" or "error""#),
            (
                r#"{"id":1,"result":1,"error":{"code":1,"message":"m"}}"#,
                "both",
            ),
            (r#"{"id":1,"method":"m","result":1}"#, "both"),
            (r#"{"id":1,"error":{"code":"x"}}"#, r#""error" is not"#),
            (r#"{"id":1.5,"result":1}"#, "fits an i64"),
            (r#"{"id":[1],"result":1}"#, "not a number, a string or null"),
            (r#"{"id":1,"method":7}"#, "not a string"),
        ] {
            let message = malformed(framed(body));
            assert!(message.contains(why), "{body}: {message}");
        }
    }

    #[test]
    fn the_stream_ending_inside_a_message_is_an_error() {
        let mut receiver = codec(1024);
        let mut wire = BytesMut::from(&b"Content-Length: 10\r\n\r\n{"[..]);
        assert_eq!(receiver.decode(&mut wire).unwrap(), None);
        assert!(receiver.decode_eof(&mut wire).is_err());
        let mut receiver = codec(1024);
        let mut wire = BytesMut::from(&b"Content-Len"[..]);
        assert!(receiver.decode_eof(&mut wire).is_err());
    }

    #[test]
    fn no_mangling_of_the_bytes_panics() {
        let mut wire = encoded(RpcMessage::request("m", json!({"k": [1, "é"]})));
        wire.extend_from_slice(&encoded(RpcMessage::reply(
            RpcId::Number(1),
            Err(RpcError::new(1, "e")),
        )));
        // Every truncation, and every byte replaced by a few telling values, in turn.
        let mut seed = 0x2545_f491_u32;
        for cut in 0..=wire.len() {
            for replacement in [None, Some(b'\n'), Some(b':'), Some(b'9'), Some(0xff)] {
                let mut mangled = BytesMut::from(&wire[..cut]);
                if let (Some(byte), Some(last)) = (replacement, mangled.last_mut()) {
                    *last = byte;
                }
                // Arbitrary chunking, so every decoder state sees the mangled byte.
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                let step = 1 + seed as usize % 7;
                let mut receiver = codec(64);
                let mut arriving = BytesMut::new();
                for chunk in mangled.chunks(step) {
                    arriving.extend_from_slice(chunk);
                    while let Ok(Some(_)) = receiver.decode(&mut arriving) {}
                }
                let _ = receiver.decode_eof(&mut arriving);
            }
        }
    }

    #[test]
    fn an_oversize_request_is_refused_and_nothing_is_written() {
        let mut wire = BytesMut::new();
        let error = codec(16)
            .encode(
                RpcMessage::request("method", json!(["long params"])),
                &mut wire,
            )
            .unwrap_err();
        assert!(
            matches!(
                error,
                ProtocolError::FrameTooLarge {
                    direction: "request",
                    limit: 16,
                    ..
                }
            ),
            "{error}"
        );
        assert!(wire.is_empty());
    }

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

    #[test]
    fn rpc_errors_display_their_code_and_message() {
        let error = RpcError::new(RpcError::METHOD_NOT_FOUND, "method not found: x");
        assert_eq!(
            error.to_string(),
            "JSON-RPC error -32601: method not found: x"
        );
    }

    #[test]
    fn ids_serialize_untagged() {
        assert_eq!(serde_json::to_string(&RpcId::Number(-3)).unwrap(), "-3");
        assert_eq!(
            serde_json::to_string(&RpcId::String("a".into())).unwrap(),
            "\"a\""
        );
        assert_eq!(serde_json::to_string(&RpcId::Null).unwrap(), "null");
        let ids: Vec<RpcId> = serde_json::from_str(r#"[1, "b", null]"#).unwrap();
        assert_eq!(
            ids,
            [RpcId::Number(1), RpcId::String("b".into()), RpcId::Null]
        );
    }
}
